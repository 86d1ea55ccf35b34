"""Request handlers, one module per family, registered by incoming message id.

A handler gets the session that received the request and the request's
fields after the message id (all text, as on the wire). It answers through
`session.send(...)` / `session.error(...)`; shared state is on
`session.gateway`. Handlers must not block: they run on the server's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ibsim.engine import Engine
    from ibsim.instruments import Instruments
    from ibsim.market import MarketModel, QuoteBook
    from spreadpilot.ports.clock import Clock


class GatewayAPI(Protocol):
    """What handlers may use of the gateway (implemented in ibsim.server)."""

    clock: Clock
    accounts: list[str]  # managed accounts, in managedAccounts order
    market: MarketModel
    instruments: Instruments
    quotes: QuoteBook
    engine: Engine
    ib_connected: bool  # False while connectivity to IB is lost (no fills, no ticks)

    def route(self, events: Iterable[object]) -> int:
        """Send engine events to the clients that own them; the number routed."""
        ...


class SessionAPI(Protocol):
    """One client connection (implemented in ibsim.server)."""

    client_id: int
    server_version: int
    gateway: GatewayAPI

    def send(self, *fields: object) -> None:
        """Frame and queue one message; fields are formatted by ibsim.wire.fmt."""
        ...

    def error(self, req_id: int, code: int, message: str, advanced: str = "") -> None:
        """IB's error message (id 4), e.g. error(req_id, 200, 'No security definition...')."""
        ...


Handler = Callable[[SessionAPI, list[str]], Awaitable[None] | None]
HANDLERS: dict[int, Handler] = {}


def handles(msg_id: int) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if msg_id in HANDLERS:
            raise RuntimeError(f"two handlers for message id {msg_id}")
        HANDLERS[msg_id] = fn
        return fn

    return register
