"""The agent against the real simulator: the executor tests' rig, plus an Agent on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.agent import Agent, GatewayConfig
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from tests.execution.conftest import (  # noqa: F401  (fixtures)
    ACCOUNT,
    GATEWAY_ID,
    MakeRig,
    Rig,
    make_gateway,
    make_rig,
)

MakeAgent = Callable[..., Agent]


@pytest.fixture
def make_agent(tmp_path: Path) -> MakeAgent:
    """make_agent(rig, **agent_kwargs): an Agent whose container shares the rig's clock,
    store and bus, with gw-1 pointing at the rig's simulator. The ladder's floor is
    0.50 and it starts at the natural credit (the rig's flat market fills there)."""

    def make(rig: Rig, *, settings: dict[str, Any] | None = None, **kw: Any) -> Agent:
        assert rig.gateway is not None
        s = load_settings(
            data_dir=tmp_path / "agent",
            **{"ladder_min_credit": "0.50", "ladder_start": "natural", **(settings or {})},
        )
        c = Container(s, clock=rig.clock, topo=rig.topo)
        c.store = rig.store  # type: ignore[misc]
        c.bus = rig.bus  # type: ignore[misc]
        gateways = {GATEWAY_ID: GatewayConfig("127.0.0.1", rig.gateway.port, 7, (ACCOUNT,))}
        return Agent(c, gateways, **kw)

    return make
