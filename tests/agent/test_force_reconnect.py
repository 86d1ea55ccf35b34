"""The operator's force-reconnect through the agent's command loop, on the simulator."""

from __future__ import annotations

from datetime import timedelta

from spreadpilot.platform import collections as C
from spreadpilot.services.emergency import request_reconnect
from tests.agent.conftest import MakeAgent
from tests.execution.conftest import GATEWAY_ID, MakeRig


def test_a_reconnect_command_reopens_the_connection_despite_the_backoff(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig, reconnect_initial_seconds=600.0)
    (conn,) = agent.connections.values()

    async def go() -> tuple[bool, bool, bool, str]:
        await agent.connect_all()
        first = conn.broker.is_connected()
        await conn.broker.disconnect()  # the link dropped...
        conn.state, conn.next_attempt = "backoff", rig.clock.now() + timedelta(minutes=10)
        request_reconnect(rig.bus, rig.clock, gateway_id=GATEWAY_ID, requested_by="operator")
        handled = await agent.commands.run_once()
        after, state = conn.broker.is_connected(), conn.state
        await agent.close()
        return first, handled == 1, after, state

    first, handled, after, state = rig.run(go)
    assert first and handled and after
    assert state == "connected" and conn.next_attempt is None
    runs = [s.data for s in rig.store.query(C.JOB_RUNS) if s.data.get("job") == "reconnect-gateway"]
    assert [r["status"] for r in runs] == ["OK"]
    assert f"{GATEWAY_ID} reconnected" in runs[0]["detail"]


def test_a_reconnect_of_an_unknown_gateway_fails_with_the_known_ones(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    request_reconnect(rig.bus, rig.clock, gateway_id="gw-nope", requested_by="operator")
    assert rig.run(agent.commands.run_once) == 1
    runs = [s.data for s in rig.store.query(C.JOB_RUNS) if s.data.get("job") == "reconnect-gateway"]
    assert [r["status"] for r in runs] == ["FAILED"]
    assert "unknown gateway 'gw-nope' (known: gw-1)" in runs[0]["detail"]
