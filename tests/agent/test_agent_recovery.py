"""The agent through gateway outages and multi-account logins, on the real simulator.

What is asserted comes from the simulator's own order records (one IB order per
orderRef, its account, status and fills) and from the execution reports and
alerts the agent published. Outages are driven by conditions on the SimClock
rig (see `recovery_support`), so every run tells the same story.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.agent import GatewayConfig
from ibsim.engine import OrderRecord
from ibsim.scenario import Scenario
from spreadpilot.domain.orders import OrderIntent
from tests.agent.conftest import MakeAgent
from tests.agent.recovery_support import (
    Plug,
    agent_for,
    drop_session,
    events,
    executions,
    order_messages_pending,
    publish,
    run_agent,
)
from tests.execution.conftest import ACCOUNT, GATEWAY_ID, WIDE_QUOTES, MakeRig, Rig
from tests.ibsim.conftest import MakeGateway, ny

#: Start at the mid (0.60) and come down a tick every 15 s to the natural (0.54), where
#: the simulator fills: the order works at IB for 90 s of clock time before it fills.
LADDER = {"ladder_start": "mid", "ladder_step_seconds": 15}
CLIENT_ID = 7  # the conftest's make_agent connects gw-1 as clientId 7


def only(rig: Rig, ref: str) -> OrderRecord:
    """The one IB order the simulator holds for `ref` (fails on none or several)."""
    records = rig.orders(ref)
    assert len(records) == 1, f"{ref}: {len(records)} IB orders: {records}"
    return records[0]


def working(rig: Rig, ref: str) -> bool:
    return any(o.status in ("PreSubmitted", "Submitted") for o in rig.orders(ref))


def done(rig: Rig, ref: str) -> bool:
    """Filled at IB and the order message acked (nothing comes back)."""
    return any(o.status == "Filled" for o in rig.orders(ref)) and order_messages_pending(rig) == 0


def alert_messages(rig: Rig, type_: str) -> list[str]:
    return [a["message"] for a in rig.alerts() if a["type"] == type_]


def assert_resumed_story(
    reports: list[dict[str, Any]], intent: OrderIntent, rec: OrderRecord
) -> None:
    """CLAIMED, PLACED, ... UNKNOWN (interrupted), CLAIMED again, the ladder going on,
    FILLED: one PLACED, and every report about the one IB order (its permId)."""
    ref = intent.order_ref
    mine = [r for r in reports if r["order_ref"] == ref]
    kinds = [r["event"] for r in mine]
    assert kinds[:2] == ["CLAIMED", "PLACED"] and kinds[-1] == "FILLED", kinds
    # a resume repeats PLACED under the same report id (the recorder keeps one)
    assert len({r["report_id"] for r in mine if r["event"] == "PLACED"}) == 1
    assert kinds.count("FILLED") == 1
    assert kinds.count("CLAIMED") == 2, kinds  # the interrupted run and the resumed one
    claimed = [r for r in mine if r["event"] == "CLAIMED"]
    assert len({r["report_id"] for r in claimed}) == 2  # two attempts, both recorded
    assert "attempt 2" in claimed[1]["reason"]
    unknown = kinds.index("UNKNOWN")
    second_claim = kinds.index("CLAIMED", 1)
    assert unknown < second_claim < len(kinds) - 1
    assert "MODIFIED" in kinds[second_claim:]  # the resumed ladder stepped on down
    interrupted = mine[unknown]
    assert "lost mid-ladder" in interrupted["reason"]
    assert "reconciled by orderRef and resumed" in interrupted["reason"]
    placed, filled = mine[1], mine[-1]
    assert placed["perm_id"] == filled["perm_id"] == rec.perm_id
    assert Decimal(placed["credit"]) == Decimal("0.60")
    assert Decimal(filled["credit"]) == Decimal("0.54") and filled["filled"] == 2
    assert filled["outcome"] == "FILLED" and len(filled["fills"]) == 2


# --- a disconnect mid-ladder ----------------------------------------------------------


def test_a_gateway_restart_mid_ladder_reconciles_and_resumes_the_one_order(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # The gateway goes away while the order works at 0.60 and stays away until the
    # nacked message has come back once more and been nacked again (NO_GATEWAY).
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    assert rig.gateway is not None
    gw, plug = rig.gateway, Plug(rig.gateway)
    agent = make_agent(rig, settings=LADDER)
    intent = rig.intent()
    ref = intent.order_ref
    publish(rig, intent)
    back_at: list[datetime] = []

    def outage() -> None:
        if gw.restarts == 0 and working(rig, ref) and rig.clock.now() >= ny("10:00:10"):
            plug.pull()
        elif not plug.listening and "NO_GATEWAY" in executions(caplog.records, ref):
            plug.plug_in()
            back_at.append(rig.clock.now())

    with caplog.at_level(logging.INFO, logger="spreadpilot"):
        rig.run(lambda: run_agent(agent, lambda: done(rig, ref), step=outage, what="the fill"))

    assert gw.restarts == 1 and len(back_at) == 1
    rec = only(rig, ref)
    assert len(rig.orders()) == 1  # no second order for it, nothing else either
    assert rec.status == "Filled" and rec.filled == 2 and rec.account == ACCOUNT
    assert rec.completed_at is not None and rec.completed_at > back_at[0]
    outcomes = executions(caplog.records, ref)
    assert outcomes[0] == "ERROR"  # the interrupted ladder: nacked, claim released
    assert "NO_GATEWAY" in outcomes  # redelivered while the gateway was down: nacked
    assert outcomes[-1] == "FILLED" and outcomes.count("FILLED") == 1
    assert_resumed_story(rig.reports(), intent, rec)
    alerts = alert_messages(rig, "GATEWAY_UNREACHABLE")
    assert any("ladder interrupted" in m for m in alerts), alerts
    # No gateway-level GATEWAY_UNREACHABLE for a restart this short: while the agent
    # runs, its health checks raise one per outage once it lasts a minute
    # (gateway/health.py; tests/health), not the reconnect loop at each attempt.
    assert any("no connection to gateway" in m for m in alerts), alerts  # the redelivery
    assert order_messages_pending(rig) == 0


def test_a_dropped_socket_mid_ladder_reconnects_and_resumes_the_one_order(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the agent's socket drops; the gateway keeps listening, so the agent is back
    # at once. Its ladder still hands the order over (what it held may be stale): the
    # redelivered message reconciles by orderRef and resumes the same IB order.
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    assert rig.gateway is not None
    gw = rig.gateway
    agent = make_agent(rig, settings=LADDER)
    intent = rig.intent()
    ref = intent.order_ref
    publish(rig, intent)
    dropped: list[datetime] = []

    def drop() -> None:
        if not dropped and working(rig, ref) and rig.clock.now() >= ny("10:00:10"):
            drop_session(gw, CLIENT_ID)
            dropped.append(rig.clock.now())

    with caplog.at_level(logging.INFO, logger="spreadpilot"):
        rig.run(lambda: run_agent(agent, lambda: done(rig, ref), step=drop, what="the fill"))

    assert len(dropped) == 1 and gw.restarts == 0
    rec = only(rig, ref)
    assert len(rig.orders()) == 1
    assert rec.status == "Filled" and rec.filled == 2
    outcomes = executions(caplog.records, ref)
    assert outcomes[0] == "ERROR" and outcomes[-1] == "FILLED", outcomes
    assert outcomes.count("FILLED") == 1
    assert_resumed_story(rig.reports(), intent, rec)
    connections = [
        getattr(r, "state", "")
        for r in caplog.records
        if getattr(r, "operation", None) == "connection"
    ]
    assert connections.count("connected") >= 2  # connected, lost, connected again
    assert "disconnected" in connections
    alerts = alert_messages(rig, "GATEWAY_UNREACHABLE")
    assert any("ladder interrupted" in m for m in alerts), alerts


def test_the_same_message_redelivered_during_the_outage_is_still_one_order(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # The dispatcher's publish repeated while the gateway is down (Pub/Sub may deliver
    # a message more than once): every copy waits, and after the restart one of them
    # resumes the one IB order; the others find the claim DONE.
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    assert rig.gateway is not None
    gw, plug = rig.gateway, Plug(rig.gateway)
    agent = make_agent(rig, settings=LADDER)
    intent = rig.intent()
    ref = intent.order_ref
    publish(rig, intent)
    republished: list[bool] = []

    def outage() -> None:
        if gw.restarts == 0 and working(rig, ref) and rig.clock.now() >= ny("10:00:10"):
            plug.pull()
        elif not plug.listening and not republished and "ERROR" in executions(caplog.records, ref):
            publish(rig, intent, times=2)
            republished.append(True)
        elif not plug.listening and executions(caplog.records, ref).count("NO_GATEWAY") >= 2:
            plug.plug_in()

    with caplog.at_level(logging.INFO, logger="spreadpilot"):
        rig.run(lambda: run_agent(agent, lambda: done(rig, ref), step=outage, what="the fill"))

    rec = only(rig, ref)
    assert len(rig.orders()) == 1 and rec.status == "Filled" and rec.filled == 2
    outcomes = executions(caplog.records, ref)
    assert outcomes.count("FILLED") == 1 and outcomes.count("NO_GATEWAY") >= 2
    assert set(outcomes) <= {"ERROR", "NO_GATEWAY", "FILLED", "ALREADY_DONE", "NOT_CLAIMED"}
    assert_resumed_story(rig.reports(), intent, rec)
    assert order_messages_pending(rig) == 0  # every copy acked in the end


def test_ib_connectivity_lost_and_restored_mid_ladder_keeps_the_ladder_and_one_order(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    # 1100 (the gateway lost IB's servers; the socket stays up) from 10:00:20 to 1101
    # (restored, data lost) at 10:00:50, before the ladder reaches the natural: the
    # agent's connection never dropped, so its ladder goes on (no hand-over) and the
    # one order fills at the natural after the restore.
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    assert rig.gateway is not None
    lost, restored = ny("10:00:20"), ny("10:00:50")
    rig.gateway.disconnect_at(lost, restored, data_lost=True)
    agent = make_agent(rig, settings=LADDER)
    intent = rig.intent()
    ref = intent.order_ref
    publish(rig, intent)

    rig.run(lambda: run_agent(agent, lambda: done(rig, ref), what="the fill"))

    rec = only(rig, ref)
    assert len(rig.orders()) == 1
    assert rec.status == "Filled" and rec.filled == 2
    assert rec.completed_at is not None and rec.completed_at > restored
    reports = [r for r in rig.reports() if r["order_ref"] == ref]
    kinds = [r["event"] for r in reports]
    assert kinds == ["CLAIMED", "PLACED", *["MODIFIED"] * 6, "FILLED"]
    assert [r["ladder_step"] for r in reports[2:-1]] == [1, 2, 3, 4, 5, 6]
    assert Decimal(reports[-1]["credit"]) == Decimal("0.54")
    assert rig.alerts() == []


# --- one login, several accounts --------------------------------------------------------

ADVISOR = ["DU000001", "DU000002", "DU000003"]


def test_an_advisor_login_routes_each_followers_order_to_its_own_account(
    make_rig: MakeRig, tmp_path: Path
) -> None:
    rig = make_rig(accounts=ADVISOR)
    assert rig.gateway is not None
    gateways = {GATEWAY_ID: GatewayConfig("127.0.0.1", rig.gateway.port, 7, tuple(ADVISOR))}
    agent = agent_for(rig, tmp_path / "agent", gateways)
    intents = [
        rig.intent(name, account=account, quantity=n)
        for name, account, n in zip(["alice", "bruno", "carla"], ADVISOR, [1, 2, 3], strict=True)
    ]
    for intent in intents:
        publish(rig, intent)

    assert rig.run(agent.drain) == 3  # one pull: the three arrive in one batch

    assert len(rig.orders()) == 3
    reports = rig.reports()
    for intent in intents:
        rec = only(rig, intent.order_ref)
        assert rec.account == rec.order.account == intent.ib_account
        assert rec.status == "Filled" and rec.filled == intent.quantity
        assert events(reports, intent.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
        (filled,) = [
            r for r in reports if r["order_ref"] == intent.order_ref and r["event"] == "FILLED"
        ]
        assert filled["account"] == intent.ib_account and filled["perm_id"] == rec.perm_id
    gw = rig.gateway
    for account, intent in zip(ADVISOR, intents, strict=True):
        fills = gw.call(gw.engine.fills, account)
        assert {f.execution.orderRef for f in fills} == {intent.order_ref}
        legs = [f for f in fills if f.contract.secType != "BAG"]
        assert sum(int(f.execution.shares) for f in legs) == 2 * intent.quantity  # two legs
    assert rig.alerts() == []
    assert order_messages_pending(rig) == 0


# --- a gateway that is down ---------------------------------------------------------------


def test_a_follower_whose_gateway_is_down_never_delays_the_others(
    make_rig: MakeRig, make_gateway: MakeGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # gw-1 up with alice and bruno; gw-2 (carla's) refuses connections until both of
    # them have filled and carla's order has come back at least once.
    rig = make_rig()
    assert rig.gateway is not None
    other = make_gateway(
        Scenario.parse(
            {
                "clock": {"start": ny("10:00"), "speed": "sim"},
                "accounts": ["DU000002"],
                "market": {"volatility": 0.0},
            }
        ),
        clock=rig.clock,
    )
    plug = Plug(other)
    plug.pull()  # closed port: connection refused
    gateways = {
        GATEWAY_ID: GatewayConfig("127.0.0.1", rig.gateway.port, 7, (ACCOUNT,)),
        "gw-2": GatewayConfig("127.0.0.1", other.port, 8, ("DU000002",)),
    }
    agent = agent_for(rig, tmp_path / "agent", gateways)
    alice, bruno = rig.intent("alice"), rig.intent("bruno", quantity=1)
    carla = rig.intent("carla", account="DU000002", gateway_id="gw-2", quantity=3)
    for intent in (carla, alice, bruno):
        publish(rig, intent)
    up_at: list[datetime] = []

    def carla_on_gw2() -> list[OrderRecord]:
        every = [*other.engine.open_orders(None), *other.engine.completed_orders()]
        return [o for o in every if o.order_ref == carla.order_ref]

    def gw1_filled() -> bool:
        return all(
            any(o.status == "Filled" for o in rig.orders(i.order_ref)) for i in (alice, bruno)
        )

    def bring_up() -> None:
        came_back = executions(caplog.records, carla.order_ref).count("NO_GATEWAY") >= 2
        if not plug.listening and gw1_filled() and came_back:
            plug.plug_in()
            up_at.append(rig.clock.now())

    def all_done() -> bool:
        return (
            any(o.status == "Filled" for o in carla_on_gw2()) and order_messages_pending(rig) == 0
        )

    with caplog.at_level(logging.INFO, logger="spreadpilot"):
        rig.run(lambda: run_agent(agent, all_done, step=bring_up, what="carla's fill on gw-2"))

    assert len(up_at) == 1
    reports = rig.reports()
    for intent in (alice, bruno):  # filled on gw-1 while gw-2 was still down
        rec = only(rig, intent.order_ref)
        assert rec.status == "Filled" and rec.filled == intent.quantity
        assert rec.completed_at is not None and rec.completed_at < up_at[0]
        assert events(reports, intent.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
        assert executions(caplog.records, intent.order_ref) == ["FILLED"]
    assert rig.orders(carla.order_ref) == []  # never sent to the wrong gateway
    (rec,) = carla_on_gw2()
    assert rec.account == "DU000002" and rec.status == "Filled" and rec.filled == 3
    assert rec.placed_at is not None and rec.placed_at >= up_at[0]
    outcomes = executions(caplog.records, carla.order_ref)
    assert outcomes[:2] == ["NO_GATEWAY", "NO_GATEWAY"] and outcomes[-1] == "FILLED"
    assert events(reports, carla.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
    alerts = alert_messages(rig, "GATEWAY_UNREACHABLE")
    assert any("gw-2" in m and "unreachable after" in m for m in alerts), alerts
    assert any(carla.order_ref in m and "no connection" in m for m in alerts), alerts
    assert not any("gw-1" in m or alice.order_ref in m or bruno.order_ref in m for m in alerts)
