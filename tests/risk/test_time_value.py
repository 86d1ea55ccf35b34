"""Time value check: bands per follower and spread, one alert per change, CRITICAL
closes the whole spread as one combo (checked on the simulator's own records)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spreadpilot.domain.risk import Band
from tests.risk.conftest import ALICE_ACCOUNT, BOB_ACCOUNT, FALLING, RISING, Desk, MakeDesk

CLOSE_REF = "SP-20261124-QQQ-alice-CLOSE"


def types(desk: Desk) -> list[str]:
    return [a["type"] for a in desk.rig.alerts()]


def run(desk: Desk, go: Any) -> None:
    async def main() -> None:
        await desk.start()
        try:
            await go()
        finally:
            await desk.stop()

    desk.rig.run(main)


def test_bands_safe_risk_critical_one_alert_per_change_and_itm_close(
    make_desk: MakeDesk,
) -> None:
    desk = make_desk(waypoints=FALLING)

    async def go() -> None:
        await desk.open_spread("alice")
        desk.rig.alerts()  # drop the opening's alerts, if any

        run_ = await desk.job("time-value-check")
        assert run_["status"] == "OK" and run_["trade_date"] == "2026-11-24"
        assert desk.status("alice")["band"] == Band.SAFE
        assert types(desk) == []  # first look, SAFE: nothing to say

        desk.at("12:00")
        await desk.job("time-value-check")
        assert desk.status("alice")["band"] == Band.RISK
        (alert,) = desk.rig.alerts()
        assert alert["type"] == "TIME_VALUE_RISK" and alert["follower_id"] == "alice"
        assert "SAFE -> RISK" in alert["message"]

        desk.at("12:01")
        await desk.job("time-value-check")
        desk.at("13:00")
        await desk.job("time-value-check")
        assert types(desk) == []  # still RISK: never repeated

        desk.at("15:30")
        await desk.job("time-value-check")
        doc = desk.status("alice")
        assert doc["band"] == Band.CRITICAL and doc["critical_reason"] == "ITM_NO_TIME_VALUE"
        assert doc["state"] == "CLOSED" and doc["close_ref"] == CLOSE_REF
        alerts = desk.rig.alerts()
        assert [a["type"] for a in alerts] == ["TIME_VALUE_CRITICAL", "POSITION_CLOSED"]
        assert "in the money" in alerts[0]["message"]
        closed = alerts[1]
        assert "in the money" in closed["message"] and closed["details"]["reason"] == (
            "ITM_NO_TIME_VALUE"
        )

        # one BAG order, both legs closed together; nothing left in the account
        (order,) = desk.rig.orders(CLOSE_REF)
        assert order.contract.secType == "BAG" and order.status == "Filled"
        assert order.order.action == "SELL" and len(order.contract.comboLegs) == 2
        assert desk.positions(ALICE_ACCOUNT) == {}

        # the same command again: nothing more at IB
        desk.at("15:31")
        await desk.job("time-value-check")
        assert len(desk.rig.orders(CLOSE_REF)) == 1
        assert types(desk) == []

    run(desk, go)
    events = [r["event"] for r in desk.rig.reports() if r["order_ref"] == CLOSE_REF]
    assert events == ["CLAIMED", "PLACED", "FILLED"]


def test_critical_out_of_the_money_is_closed_with_its_reason(make_desk: MakeDesk) -> None:
    desk = make_desk(waypoints=RISING)

    async def go() -> None:
        await desk.open_spread("alice")
        desk.rig.alerts()
        desk.at("15:00")
        await desk.job("time-value-check")
        doc = desk.status("alice")
        assert doc["band"] == Band.CRITICAL and doc["critical_reason"] == "OTM_NEARLY_WORTHLESS"
        assert doc["in_the_money"] is False and doc["state"] == "CLOSED"
        critical, closed = desk.rig.alerts()
        assert (
            critical["type"] == "TIME_VALUE_CRITICAL" and "SAFE -> CRITICAL" in critical["message"]
        )
        assert closed["type"] == "POSITION_CLOSED"
        assert "out of the money and nearly worthless" in closed["message"]
        assert closed["details"]["reason"] == "OTM_NEARLY_WORTHLESS"
        assert desk.positions(ALICE_ACCOUNT) == {}

    run(desk, go)


def test_auto_close_limited_to_in_the_money(make_desk: MakeDesk) -> None:
    desk = make_desk(waypoints=RISING, settings={"risk_auto_close": "itm_only"})

    async def go() -> None:
        await desk.open_spread("alice")
        desk.rig.alerts()
        desk.at("15:00")
        await desk.job("time-value-check")
        doc = desk.status("alice")
        assert doc["band"] == Band.CRITICAL and doc["state"] == "OPEN"
        (alert,) = desk.rig.alerts()
        assert alert["type"] == "TIME_VALUE_CRITICAL"
        assert "NOT closed automatically (RISK_AUTO_CLOSE=itm_only)" in alert["message"]
        assert desk.rig.orders(CLOSE_REF) == []
        assert desk.positions(ALICE_ACCOUNT) == {"600P": -2, "598P": 2}

    run(desk, go)


def test_aggressive_limit_close_pays_at_most_natural_plus_offset(make_desk: MakeDesk) -> None:
    desk = make_desk(
        waypoints=FALLING,
        settings={"risk_close_order": "limit", "risk_close_limit_offset": "0.05"},
    )

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("15:30")
        await desk.job("time-value-check")

    run(desk, go)
    (order,) = desk.rig.orders(CLOSE_REF)
    assert order.order.orderType == "LMT" and order.order.action == "SELL"
    # IB's sign: a SELL of the credit BAG at -d pays at most d; the fill is at natural
    max_debit = -Decimal(str(order.order.lmtPrice))
    assert Decimal("0.05") < max_debit <= Decimal("2.05") and order.status == "Filled"
    assert desk.positions(ALICE_ACCOUNT) == {}


def test_partial_fills_of_a_close_never_leave_a_naked_leg(make_desk: MakeDesk) -> None:
    desk = make_desk(
        waypoints=FALLING,
        fills={"partial_fill_probability": 1.0, "partial_fill_rest_seconds": 2.0},
    )
    seen: list[dict[str, Decimal]] = []

    async def go() -> None:
        await desk.open_spread("bob", quantity=6)
        desk.at("15:30")
        await desk.job("time-value-check")

    run(desk, go)
    ref = "SP-20261124-QQQ-bob-CLOSE"
    (order,) = desk.rig.orders(ref)
    assert order.contract.secType == "BAG" and order.status == "Filled"
    # every execution report of the close: the two legs filled in equal quantity
    reports = [r for r in desk.rig.reports() if r["order_ref"] == ref]
    assert [r["event"] for r in reports][-1] == "FILLED"
    assert any(r["event"] == "PARTIAL" for r in reports)
    for r in reports:
        per_leg: dict[int, int] = {}
        for f in r["fills"]:
            per_leg[f["con_id"]] = per_leg.get(f["con_id"], 0) + f["quantity"]
        seen.append({str(k): Decimal(v) for k, v in per_leg.items()})
        assert len(set(per_leg.values())) <= 1, f"legs filled unequally: {per_leg}"
    assert desk.positions(BOB_ACCOUNT) == {}


def test_dry_run_closes_nothing(make_desk: MakeDesk) -> None:
    desk = make_desk(waypoints=FALLING, settings={"dry_run": True})
    opened = desk.rig.execute(desk.rig.intent("alice", account=ALICE_ACCOUNT))  # a live broker
    assert opened.outcome == "FILLED"

    async def go() -> None:
        desk.at("15:30")
        await desk.job("time-value-check")

    run(desk, go)
    assert desk.rig.orders(CLOSE_REF) == []
    assert desk.positions(ALICE_ACCOUNT) == {"600P": -2, "598P": 2}
    (skipped,) = [r for r in desk.rig.reports() if r["event"] == "SKIPPED"]
    assert skipped["outcome"] == "DRY_RUN" and skipped["order_ref"] == CLOSE_REF
