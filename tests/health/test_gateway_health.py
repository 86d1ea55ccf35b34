"""The agent's gateway checks against the real simulator: DOWN after exactly 3 failed
checks, one GATEWAY_UNREACHABLE per outage once it lasts a minute, one
COMPONENT_RECOVERED, and a hung gateway restarted with back-off and a budget.

The checks are driven one by one on the rig's SimClock (15 s apart), so every
count below is exact."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from gateway.agent import Agent
from gateway.health import GW_DOWN, UP, SimulatorRestarter
from ibsim.server import Gateway
from spreadpilot.domain.alerts import AlertType
from tests.agent.conftest import MakeAgent
from tests.agent.recovery_support import Plug, run_agent
from tests.execution.conftest import MakeRig, Rig
from tests.health.conftest import alerts_of, monitor, until

UNREACHABLE = AlertType.GATEWAY_UNREACHABLE.value
RECOVERED = AlertType.COMPONENT_RECOVERED.value
DOWN_ALERT = AlertType.COMPONENT_DOWN.value
STEP = timedelta(seconds=15)


def run_closing(rig: Rig, agent: Agent, go: Callable[[], Awaitable[None]]) -> None:
    """Run `go` on a fresh loop, disconnecting the agent at the end (same loop)."""

    async def body() -> None:
        try:
            await go()
        finally:
            await agent.close()

    rig.run(body)


async def connected(agent: Agent) -> None:
    results = await agent.connect_all()
    assert all(results.values()), results


def test_a_gateway_is_down_after_exactly_3_failed_checks_and_recovers_once(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    assert rig.gateway is not None
    agent = make_agent(rig)
    health = monitor(agent)
    health.running = True  # as under Agent.run: the checks own the outage alerts
    plug = Plug(rig.gateway)
    (conn,) = agent.connections.values()
    gw = health.gateways["gw-1"]
    states: list[str] = []
    alerts_after: list[int] = []

    async def go() -> None:
        await connected(agent)
        await health.check_once()
        assert gw.state == UP
        plug.pull()
        await until(lambda: not conn.broker.is_connected(), "the dropped socket")
        for _ in range(7):  # 0, 15, ..., 90 s into the outage
            await agent._ensure(conn)  # the reconnect loop's attempt (refused): no alert
            await health.check_once()
            states.append(gw.state)
            alerts_after.append(len(alerts_of(rig.store, UNREACHABLE)))
            rig.clock.advance(STEP)
        plug.plug_in()
        assert await agent._ensure(conn)
        for _ in range(3):
            await health.check_once()
            rig.clock.advance(STEP)

    run_closing(rig, agent, go)

    assert states == ["FAILING", "FAILING", GW_DOWN, GW_DOWN, GW_DOWN, GW_DOWN, GW_DOWN]
    # alerted at the check 60 s after the first failed one, then never again
    assert alerts_after == [0, 0, 0, 0, 1, 1, 1]
    assert gw.state == UP and gw.failures == 0
    (down,) = alerts_of(rig.store, UNREACHABLE)
    assert "gw-1" in down["message"] and "unreachable after 5 failed checks" in down["message"]
    (up,) = alerts_of(rig.store, RECOVERED)
    assert "gw-1 (127.0.0.1:" in up["message"] and "is back after 105 s down" in up["message"]
    assert up["dedup_key"].endswith(down["dedup_key"].split(":", 1)[1])  # the same outage
    assert [a["type"] for a in alerts_of(rig.store)] == [UNREACHABLE, RECOVERED]


def test_a_short_outage_is_down_but_pages_nobody(make_rig: MakeRig, make_agent: MakeAgent) -> None:
    # A nightly IBC restart: three failed checks (DOWN, gauge 0), back before a minute.
    rig = make_rig()
    assert rig.gateway is not None
    agent = make_agent(rig)
    health = monitor(agent)
    health.running = True
    plug = Plug(rig.gateway)
    (conn,) = agent.connections.values()

    async def go() -> None:
        await connected(agent)
        plug.pull()
        await until(lambda: not conn.broker.is_connected(), "the dropped socket")
        for _ in range(4):  # 0 .. 45 s
            await agent._ensure(conn)
            await health.check_once()
            rig.clock.advance(STEP)
        assert health.gateways["gw-1"].state == GW_DOWN
        plug.plug_in()
        assert await agent._ensure(conn)
        await health.check_once()

    run_closing(rig, agent, go)
    assert health.gateways["gw-1"].state == UP
    assert alerts_of(rig.store) == []


def test_under_agent_run_an_outage_alerts_once_not_at_each_reconnect(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    # The whole agent: its reconnect loop retries with back-off (and used to alert at
    # the 1st, 10th, 20th... attempt); with the checks running, one outage is one
    # GATEWAY_UNREACHABLE and one COMPONENT_RECOVERED.
    rig = make_rig()
    assert rig.gateway is not None
    agent = make_agent(rig, reconnect_initial_seconds=1.0, reconnect_max_seconds=4.0)
    health = monitor(agent)
    plug = Plug(rig.gateway)
    gw = health.gateways["gw-1"]
    seen: dict[str, datetime] = {}

    def outage() -> None:
        now = rig.clock.now()
        if "pulled" not in seen and gw.state == UP:
            plug.pull()
            seen["pulled"] = now
        elif (
            "pulled" in seen and "back" not in seen and now - seen["pulled"] > timedelta(minutes=3)
        ):
            plug.plug_in()
            seen["back"] = now

    rig.run(
        lambda: run_agent(
            agent,
            lambda: "back" in seen and gw.state == UP,
            step=outage,
            what="the outage and the recovery",
        )
    )
    assert [a["type"] for a in alerts_of(rig.store)] == [UNREACHABLE, RECOVERED]


class RehangingRestarter(SimulatorRestarter):
    """Restarts the simulator (which cures a hang) and records when; the test hangs
    it again once the agent is back, as a gateway that keeps freezing would."""

    def __init__(self, gateway: Gateway, rig: Rig) -> None:
        super().__init__({"gw-1": gateway})
        self.rig = rig
        self.at: list[datetime] = []

    async def restart(self, gateway_id: str) -> None:
        self.at.append(self.rig.clock.now())
        await super().restart(gateway_id)


def test_a_hung_gateway_is_restarted_with_back_off_until_the_budget_is_spent(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    assert rig.gateway is not None
    sim = rig.gateway
    agent = make_agent(rig)
    restarter = RehangingRestarter(sim, rig)
    health = monitor(agent, restarter=restarter, restart_budget=3)
    health.running = True
    (conn,) = agent.connections.values()
    start = rig.clock.now()

    async def go() -> None:
        await connected(agent)
        sim.hang()  # socket open, nothing answered
        for _ in range(30):  # 0 .. 435 s
            if not conn.broker.is_connected():
                assert await agent._ensure(conn)  # back on the restarted simulator
                sim.hang()  # ... and it freezes again
            await health.check_once()
            if restarter.at and restarter.at[-1] == rig.clock.now():
                await until(lambda: not conn.broker.is_connected(), "the restart's drop")
            rig.clock.advance(STEP)

    try:
        run_closing(rig, agent, go)
    finally:
        sim.unhang()

    offsets = [(t - start).total_seconds() for t in restarter.at]
    # DOWN at the 3rd failed check (30 s): restart; then no sooner than 60 s, 120 s
    # later (exponential back-off); the 4th would exceed the budget of 3 an hour.
    assert offsets == [30.0, 90.0, 210.0]
    assert sim.restarts == 3
    gw = health.gateways["gw-1"]
    assert gw.state == GW_DOWN and gw.hung and len(gw.restarts) == 3
    (unreachable,) = alerts_of(rig.store, UNREACHABLE)  # one outage, one page
    assert "hung (connected, not answering)" in unreachable["message"]
    (budget,) = alerts_of(rig.store, DOWN_ALERT)
    assert budget["severity"] == "CRITICAL"
    assert "restart budget spent" in budget["message"] and "gw-1" in budget["message"]
    assert alerts_of(rig.store, RECOVERED) == []


def test_a_hung_gateway_restarted_once_recovers(make_rig: MakeRig, make_agent: MakeAgent) -> None:
    rig = make_rig()
    assert rig.gateway is not None
    sim = rig.gateway
    agent = make_agent(rig)
    restarter = RehangingRestarter(sim, rig)
    health = monitor(agent, restarter=restarter, alert_after=timedelta(seconds=30))
    health.running = True
    (conn,) = agent.connections.values()

    async def go() -> None:
        await connected(agent)
        sim.hang()
        for _ in range(6):
            if not conn.broker.is_connected():
                assert await agent._ensure(conn)  # the restart cured it: no re-hang
            await health.check_once()
            if restarter.at and restarter.at[-1] == rig.clock.now():
                await until(lambda: not conn.broker.is_connected(), "the restart's drop")
            rig.clock.advance(STEP)

    run_closing(rig, agent, go)
    assert len(restarter.at) == 1 and sim.restarts == 1
    assert health.gateways["gw-1"].state == UP
    assert [a["type"] for a in alerts_of(rig.store)] == [UNREACHABLE, RECOVERED]
