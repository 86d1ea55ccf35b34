"""Health tests: the agent's gateway checks against the real simulator (the agent
tests' rig: SimClock shared by the simulator, the store and the bus), and
health_ping on an embedded platform."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gateway.agent import Agent
from gateway.health import AgentHealth, HealthConfig
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store
from tests.agent.conftest import make_agent  # noqa: F401  (fixture)
from tests.execution.conftest import make_gateway, make_rig  # noqa: F401  (fixtures)

#: Wall seconds a hung gateway gets to answer reqCurrentTime in these tests.
PING_TIMEOUT = 0.3


def health_config(**changes: Any) -> HealthConfig:
    base: dict[str, Any] = {
        "check_seconds": 15.0,
        "timeout": PING_TIMEOUT,
        "failures_to_down": 3,
        "alert_after": timedelta(seconds=60),
        "restart_budget": 3,
        "restart_window": timedelta(hours=1),
        "restart_backoff": timedelta(seconds=60),
    }
    return HealthConfig(**{**base, **changes})


def monitor(agent: Agent, **kw: Any) -> AgentHealth:
    """Replace the agent's monitor by one with test timings (and a restarter, if given)."""
    restarter = kw.pop("restarter", None)
    agent.health = AgentHealth(agent, config=health_config(**kw), restarter=restarter)
    return agent.health


def alerts_of(store: Store, type_: str | None = None) -> list[dict[str, Any]]:
    """Alerts raised (the publisher records each once, by id), oldest first."""
    docs = [s.data for s in store.query(C.ALERTS)]
    docs.sort(key=lambda d: str(d["time"]))
    return [d for d in docs if type_ is None or d["type"] == type_]


async def until(condition: Callable[[], bool], what: str, patience: float = 20.0) -> None:
    """Let the loop turn (ib_async noticing a dropped socket) until `condition` holds."""
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)
