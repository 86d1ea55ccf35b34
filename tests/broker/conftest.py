"""Fixtures for the IB broker adapter: ibsim gateways, the test's event loop, brokers.

The gateway runs in its own thread (tests/ibsim/conftest.py); the IBBroker runs
on the main thread's event loop, driven step by step with `run(coro)`:

    def test_x(gateway, at, make_broker, run):
        at("10:00")
        broker = make_broker(gateway)            # connected IBBroker, clientId 1
        legs = run(broker.qualify(spread, EXPIRY))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from ibsim.server import Gateway
from spreadpilot.adapters.ib.broker import IBBroker
from tests.ibsim.conftest import at, gateway, make_gateway  # noqa: F401

T = TypeVar("T")

Run = Callable[[Coroutine[Any, Any, T]], T]
MakeBroker = Callable[..., IBBroker]

#: Bounds a broken run only; tests assert outcomes, never durations.
RUN_BOUND_SECONDS = 60.0


@pytest.fixture
def loop() -> asyncio.AbstractEventLoop:
    """The main thread's event loop (the one ib_async's sync API uses too)."""
    try:
        current = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # asyncio.run() elsewhere left no current loop
        current = None
    if current is None or current.is_closed():
        current = asyncio.new_event_loop()
        asyncio.set_event_loop(current)
    return current


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Run[Any]:
    """run(coro): run one coroutine to its end on the test's loop."""

    def go(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(asyncio.wait_for(coro, RUN_BOUND_SECONDS))

    return go


@pytest.fixture
def make_broker(loop: asyncio.AbstractEventLoop) -> Iterator[MakeBroker]:
    """make_broker(gateway, client_id=1, connect=True, **IBBroker kwargs) -> IBBroker.

    Quotes are dated by the gateway's clock; every broker is disconnected at teardown.
    """
    made: list[IBBroker] = []

    def make(gw: Gateway, client_id: int = 1, *, connect: bool = True, **kw: Any) -> IBBroker:
        kw.setdefault("clock", gw.clock)
        broker = IBBroker("127.0.0.1", gw.port, client_id, **kw)
        made.append(broker)
        if connect:
            loop.run_until_complete(broker.connect())
        return broker

    yield make
    for broker in made:
        loop.run_until_complete(broker.disconnect())
