"""End-of-day check, pre-open readiness and assignment, emergency close, skipped runs
and malformed commands: through the agent's command loop, on the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from gateway.agent import GatewayConfig
from spreadpilot.platform import collections as C
from spreadpilot.services.emergency import request_emergency_close
from tests.ibsim.conftest import DAY
from tests.risk.conftest import ALICE_ACCOUNT, BOB_ACCOUNT, RISING, Desk, MakeDesk, follower

NEXT_DAY = DAY.replace(day=25)
THANKSGIVING = DAY.replace(day=26)


def run(desk: Desk, go: Any) -> None:
    async def main() -> None:
        await desk.start()
        try:
            await go()
        finally:
            await desk.stop()

    desk.rig.run(main)


# --- end of day --------------------------------------------------------------------------


def test_eod_closes_spreads_near_the_money_and_lists_the_others(make_desk: MakeDesk) -> None:
    desk = make_desk()  # QQQ flat at 600: alice's short 600P is at the money

    async def go() -> None:
        await desk.open_spread("alice")
        await desk.open_spread("bob", short=Decimal(590), long_=Decimal(588))
        desk.rig.alerts()
        desk.at("12:45")  # the early-close firing on a regular day
        skipped = await desk.job("eod-check")
        assert skipped["status"] == "SKIPPED" and "due 15:45" in skipped["detail"]
        desk.at("15:45")
        ran = await desk.job("eod-check")
        assert ran["status"] == "OK"
        assert "alice" in ran["detail"] and "bob" in ran["detail"]
        assert "CLOSED" in ran["detail"]

    run(desk, go)
    (order,) = desk.rig.orders("SP-20261124-QQQ-alice-EOD")
    assert order.contract.secType == "BAG" and order.status == "Filled"
    assert desk.positions(ALICE_ACCOUNT) == {}
    assert desk.positions(BOB_ACCOUNT) == {"590P": -2, "588P": 2}  # 10 out: listed, kept
    assert desk.rig.orders("SP-20261124-QQQ-bob-EOD") == []
    (closed,) = [a for a in desk.rig.alerts() if a["type"] == "POSITION_CLOSED"]
    assert closed["follower_id"] == "alice" and "end-of-day" in closed["message"]


def test_eod_flags_instead_of_closing_when_configured(make_desk: MakeDesk) -> None:
    desk = make_desk(settings={"risk_eod_action": "flag"})

    async def go() -> None:
        await desk.open_spread("alice")
        desk.rig.alerts()
        desk.at("15:45")
        ran = await desk.job("eod-check")
        assert "FLAGGED" in ran["detail"]

    run(desk, go)
    assert desk.rig.orders("SP-20261124-QQQ-alice-EOD") == []
    assert desk.positions(ALICE_ACCOUNT) == {"600P": -2, "598P": 2}
    (flag,) = desk.rig.alerts()
    assert flag["type"] == "TIME_VALUE_RISK" and flag["severity"] == "CRITICAL"
    assert "NOT closed (RISK_EOD_ACTION=flag)" in flag["message"]
    assert desk.status("alice")["eod_result"] == "FLAGGED"


# --- pre-open ----------------------------------------------------------------------------


def test_pre_open_ready_when_everything_is_there(make_desk: MakeDesk) -> None:
    desk = make_desk(start="08:30")

    async def go() -> None:
        ran = await desk.job("pre-open-check")
        assert ran["status"] == "OK" and ran["detail"] == "ready"

    run(desk, go)
    assert desk.rig.alerts() == []


def test_pre_open_names_the_gateway_that_is_down(make_desk: MakeDesk) -> None:
    down = {"gw-2": GatewayConfig("127.0.0.1", 9, 7, ("DU000003",))}  # nothing listens
    desk = make_desk(
        start="08:30",
        extra_gateways=down,
        followers=[
            follower("alice"),
            follower("bob"),
            follower("carla", "gw-2", ib_account="DU000003"),
        ],
    )

    async def go() -> None:
        ran = await desk.job("pre-open-check")
        assert ran["status"] == "NOT_READY"

    run(desk, go)
    (alert,) = [a for a in desk.rig.alerts() if a["type"] == "NOT_READY"]
    assert "gateway gw-2 not connected" in alert["message"]
    assert "follower carla (DU000003): unreachable (gateway gw-2 down)" in alert["message"]
    assert "alice" not in alert["message"] and "bob" not in alert["message"]


def test_assignment_detected_before_the_open_and_flattened_once(make_desk: MakeDesk) -> None:
    # QQQ closes at 599: the short 600P is assigned (200 shares bought at 600), the
    # long 598P expires worthless. IB books it after the close, with no event.
    desk = make_desk(waypoints=[["12:00", 599], ["15:59", 599]])

    async def go() -> None:
        await desk.open_spread("alice")
        desk.rig.alerts()
        desk.at("08:30", NEXT_DAY)
        assert desk.positions(ALICE_ACCOUNT) == {"STK": 200}
        ran = await desk.job("pre-open-check")
        assert "assignment: 200 QQQ shares in DU000001" in ran["detail"]
        again = await desk.job("pre-open-check")  # a redelivered tick: same alert, once
        assert "already known" in again["detail"]
        desk.at("09:31", NEXT_DAY)
        await desk.job("time-value-check")
        desk.at("09:32", NEXT_DAY)
        await desk.job("time-value-check")

    run(desk, go)
    alerts = desk.rig.alerts()
    (assigned,) = [a for a in alerts if a["type"] == "ASSIGNMENT_DETECTED"]
    assert assigned["details"]["account"] == ALICE_ACCOUNT and assigned["details"]["shares"] == 200
    assert assigned["follower_id"] == "alice"
    (order,) = desk.rig.orders("SP-20261125-QQQ-alice-FLATTEN")
    assert order.contract.secType == "STK" and order.order.action == "SELL"
    assert order.order.orderType == "MKT" and order.status == "Filled"
    assert desk.positions(ALICE_ACCOUNT) == {}
    (closed,) = [a for a in alerts if a["type"] == "POSITION_CLOSED"]
    assert "flattened" in closed["message"]
    (doc,) = [s.data for s in desk.rig.store.query(C.ASSIGNMENTS)]
    assert doc["state"] == "FLATTENED" and doc["shares"] == 200


# --- emergency close ---------------------------------------------------------------------


def test_emergency_close_one_follower_then_all_idempotent(make_desk: MakeDesk) -> None:
    desk = make_desk(waypoints=RISING)

    async def go() -> None:
        await desk.open_spread("alice")
        await desk.open_spread("bob", quantity=1)
        desk.rig.alerts()
        desk.at("11:00")
        one = request_emergency_close(
            desk.rig.bus, desk.rig.clock, followers=["alice"], reason="test", requested_by="ops"
        )
        assert await desk.agent.commands.process_pending() == 1
        assert desk.positions(ALICE_ACCOUNT) == {}
        assert desk.positions(BOB_ACCOUNT) == {"600P": -1, "598P": 1}
        # the same command again (a re-publish): executed once
        desk.rig.bus.publish("commands", one.model_dump_json().encode(), {})
        await desk.agent.commands.process_pending()
        assert desk.last_run("emergency-close")["status"] == "SKIPPED"

        request_emergency_close(
            desk.rig.bus, desk.rig.clock, all_followers=True, reason="all", requested_by="ops"
        )
        await desk.agent.commands.process_pending()
        run_ = desk.last_run("emergency-close")
        assert run_["status"] == "OK" and "alice: no open spread" in run_["detail"]

    run(desk, go)
    for fid, account in (("alice", ALICE_ACCOUNT), ("bob", BOB_ACCOUNT)):
        (order,) = desk.rig.orders(f"SP-20261124-QQQ-{fid}-EMERGENCY")
        assert order.contract.secType == "BAG" and order.status == "Filled"
        assert desk.positions(account) == {}
    closed = [a for a in desk.rig.alerts() if a["type"] == "POSITION_CLOSED"]
    assert sorted(a["follower_id"] for a in closed) == ["alice", "bob"]
    assert all("emergency close" in a["message"] for a in closed)
    assert len(desk.rig.store.query(C.COMMANDS)) == 2


def test_cli_close_publishes_the_command(make_desk: MakeDesk) -> None:
    from typer.testing import CliRunner

    from spreadpilot.cli.main import app
    from spreadpilot.platform.wiring import use_container

    desk = make_desk()
    use_container(desk.agent.container)
    try:
        bad = CliRunner().invoke(app, ["close", "--all", "--follower", "bob", "--reason", "x"])
        ok = CliRunner().invoke(
            app, ["close", "--follower", "bob", "--reason", "gap down", "--by", "ops", "--id", "c1"]
        )
    finally:
        use_container(None)
    assert bad.exit_code == 2 and "not both" in bad.output
    assert ok.exit_code == 0, ok.output
    (msg,) = desk.rig.bus.pull("agent-commands", max_messages=10)
    body = json.loads(msg.data)
    assert body["command"] == "emergency-close" and body["followers"] == ["bob"]
    assert body["command_id"] == "c1" and body["requested_by"] == "ops"


# --- skipped runs and bad commands -------------------------------------------------------


def test_holiday_runs_are_recorded_as_skipped(make_desk: MakeDesk) -> None:
    desk = make_desk()

    async def go() -> None:
        for job, hhmm in (
            ("pre-open-check", "08:30"),
            ("time-value-check", "10:00"),
            ("eod-check", "15:45"),
        ):
            desk.at(hhmm, THANKSGIVING)
            ran = await desk.job(job)
            assert ran["status"] == "SKIPPED" and ran["detail"] == "not an NYSE trading day"
            assert ran["trade_date"] == "2026-11-26" and "expire_at" in ran
        desk.at("17:00", DAY.replace(day=27))
        ran = await desk.job("time-value-check")
        assert ran["status"] == "SKIPPED" and "13:00 ET" in ran["detail"]  # early close

    run(desk, go)
    assert desk.rig.alerts() == []


def test_malformed_command_is_dead_lettered_and_acked(make_desk: MakeDesk) -> None:
    desk = make_desk()

    async def go() -> None:
        desk.publish(b"not json")
        desk.publish({"job": "no-such-job"})
        assert await desk.agent.commands.process_pending() == 2
        desk.at("11:00")
        assert await desk.agent.commands.process_pending() == 0  # acked: never again

    run(desk, go)
    alerts = desk.rig.alerts()
    assert [a["type"] for a in alerts] == ["MESSAGE_DEAD_LETTERED"] * 2
    assert desk.runs() == []


def test_an_emergency_close_waits_while_another_close_of_the_spread_is_working(
    make_desk: MakeDesk,
) -> None:
    # A CLOSE limit rests at IB (priced far under the market): a second close of the
    # same spread must not be sent beside it, or both could fill and leave the
    # account short the spread it just bought back.
    desk = make_desk(waypoints=RISING)

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("11:00")
        broker = desk.agent.connections["gw-1"].broker
        intent = desk.opened["alice"]
        legs = await broker.qualify(intent.spread, f"{DAY:%Y%m%d}")
        resting = await broker.close_spread(  # type: ignore[attr-defined]
            legs, ALICE_ACCOUNT, 2, "SP-20261124-QQQ-alice-CLOSE", Decimal("0.01")
        )
        assert resting.filled == 0
        request_emergency_close(
            desk.rig.bus, desk.rig.clock, followers=["alice"], reason="test", requested_by="ops"
        )
        await desk.agent.commands.process_pending()

    run(desk, go)
    assert desk.rig.orders("SP-20261124-QQQ-alice-EMERGENCY") == []  # nothing sent beside it
    (working,) = desk.rig.orders("SP-20261124-QQQ-alice-CLOSE")
    assert working.status in {"Submitted", "PreSubmitted"}
    assert desk.positions(ALICE_ACCOUNT) == {"600P": -2, "598P": 2}  # still the spread
    detail = desk.last_run("emergency-close")["detail"]
    assert "SP-20261124-QQQ-alice-CLOSE is working" in detail
