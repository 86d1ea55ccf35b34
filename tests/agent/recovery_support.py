"""Helpers for the agent's recovery tests: outages of the real simulator, an agent
with any gateways, and running `Agent.run` until the simulator shows an outcome.

Everything runs on the rig's SimClock: the agent's waits move it (and with it the
simulator's quotes and fills, the bus's backoffs and the claims' leases). The
outages are driven by conditions (e.g. "the agent nacked the message"), never by
wall time, so what happens in between is the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.agent import SUBSCRIPTION, Agent, GatewayConfig
from ibsim.server import Gateway
from spreadpilot.domain.orders import OrderIntent
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.bus import Bus
from tests.execution.conftest import Rig

ORDERS = "orders"
#: A bound on how long a broken run may hang (wall seconds); never an assertion.
PATIENCE = 60.0
#: Wall seconds between two looks at the simulator while the agent runs.
LOOK = 0.01


def publish_to(bus: Bus, intent: OrderIntent, times: int = 1) -> None:
    """As the dispatcher publishes an intent (same body, attributes and ordering key)."""
    for _ in range(times):
        bus.publish(
            ORDERS,
            json.dumps(intent.model_dump(mode="json")).encode(),
            {"order_ref": intent.order_ref, "gateway_id": intent.gateway_id},
            ordering_key=intent.gateway_id,
        )


def publish(rig: Rig, intent: OrderIntent, times: int = 1) -> None:
    publish_to(rig.bus, intent, times)


def events(reports: list[dict[str, Any]], ref: str) -> list[str]:
    return [r["event"] for r in reports if r["order_ref"] == ref]


def agent_for(
    rig: Rig,
    data_dir: Path,
    gateways: Mapping[str, GatewayConfig],
    *,
    settings: dict[str, Any] | None = None,
    **kw: Any,
) -> Agent:
    """An Agent on the rig's clock, store and bus with the given gateways (the
    conftest's `make_agent` knows only gw-1 with one account)."""
    s = load_settings(
        data_dir=data_dir,
        **{"ladder_min_credit": "0.50", "ladder_start": "natural", **(settings or {})},
    )
    c = Container(s, clock=rig.clock, topo=rig.topo)
    c.store = rig.store
    c.bus = rig.bus
    return Agent(c, gateways, **kw)


class Plug:
    """The simulated gateway's plug: `pull()` drops every socket and stops listening
    (a restart that has not come back yet: connections are refused), `plug_in()`
    listens again on the same port. IB's side (the engine: orders, fills) lives on,
    as it does at IB while a gateway restarts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def pull(self) -> None:
        self.gateway.call(self.gateway._drop_all)

    def plug_in(self) -> None:
        gw = self.gateway
        asyncio.run_coroutine_threadsafe(gw._listen(), gw.loop).result(timeout=10)

    @property
    def listening(self) -> bool:
        return self.gateway._server is not None


def drop_session(gateway: Gateway, client_id: int) -> None:
    """Drop one client's socket (the gateway keeps listening: it may come back at once)."""

    def drop() -> None:
        session = gateway.session(client_id)
        assert session is not None, f"clientId {client_id} is not connected"
        session.abort()

    gateway.call(drop)


def order_messages_pending(rig: Rig) -> int:
    """Order messages not acked yet (ready, leased or waiting out a nack backoff)."""
    return rig.bus.stats(SUBSCRIPTION).pending


def executions(caplog_records: list[logging.LogRecord], ref: str) -> list[str]:
    """The agent's per-message outcomes for `ref`, in order (operation=execution)."""
    return [
        str(getattr(r, "outcome", ""))
        for r in caplog_records
        if getattr(r, "operation", None) == "execution" and getattr(r, "order_ref", None) == ref
    ]


async def run_agent(
    agent: Agent,
    until: Callable[[], bool],
    *,
    step: Callable[[], None] | None = None,
    what: str = "the expected outcome",
) -> None:
    """Run `agent.run` until `until()` holds, calling `step()` (fault injection) at
    every look; then stop it (it disconnects). Fails naming `what` if a broken run
    never gets there within PATIENCE wall seconds."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    deadline = time.monotonic() + PATIENCE
    try:
        while not until():
            assert not task.done(), f"the agent stopped on its own: {task!r}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            if step is not None:
                step()
            await asyncio.sleep(LOOK)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
