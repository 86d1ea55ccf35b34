"""Observed settlements at the next morning's pre-open check: D's final marks, today's
positions at IB and D's close decide how each expiring leg left the account."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spreadpilot.platform import collections as C
from tests.ibsim.conftest import DAY
from tests.marks.conftest import NEXT_DAY, Desk, doc
from tests.risk.conftest import ALICE_ACCOUNT, RISING

SHORT_KEY, LONG_KEY = "QQQ 20261124 P 600", "QQQ 20261124 P 598"
#: QQQ closes at 599: the short 600P is a dollar in the money, the long 598P is not.
SHORT_ITM = [["12:00", 599], ["15:59", 599]]
#: QQQ closes at 590: both puts in the money.
BOTH_ITM = [["12:00", 590], ["15:59", 590]]
#: QQQ closes at 600.30: by the close price both puts expire worthless.
PINNED = [["12:00", 600.3], ["15:59", 600.3]]


def day_then_morning(desk: Desk, *, reruns: int = 1) -> list[dict[str, Any]]:
    """Open alice's spread, take the final marks after the close, and run the next
    morning's pre-open check (`reruns` times); returns those runs' records."""
    runs: list[dict[str, Any]] = []

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("16:00:05")
        final = await desk.agent.marks.tick()
        assert final is not None and final.session_over
        desk.at("08:30", NEXT_DAY)
        for _ in range(reruns):
            runs.append(await desk.job("pre-open-check"))

    async def main() -> None:
        await desk.start()
        try:
            await go()
        finally:
            await desk.stop()

    desk.rig.run(main)
    return runs


def settled(desk: Desk) -> dict[str, Any]:
    return doc(desk, C.SETTLEMENTS, ALICE_ACCOUNT)


def outcomes(s: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {leg["key"]: (leg["outcome"], leg["delivered_shares"]) for leg in s["legs"]}


def sim_settlement(desk: Desk) -> dict[str, Decimal]:
    """The simulator's own booking: option kind / delivered stock -> quantity."""
    assert desk.rig.gateway is not None
    out: dict[str, Decimal] = {}
    for ch in desk.rig.gateway.engine.position_changes(ALICE_ACCOUNT):
        out[ch.kind] = out.get(ch.kind, Decimal(0)) + ch.quantity
    return out


def test_out_of_the_money_both_legs_expire(desk_for: Any) -> None:
    desk = desk_for(RISING)
    (run,) = day_then_morning(desk)
    s = settled(desk)
    assert outcomes(s) == {SHORT_KEY: ("EXPIRED", 0), LONG_KEY: ("EXPIRED", 0)}
    assert s["reconciled"] and s["observed_share_change"] == 0
    assert s["follower_id"] == "alice" and s["date"] == DAY.isoformat()
    assert "settlement DU000001 2026-11-24" in run["detail"] and "reconciled" in run["detail"]
    assert desk.rig.alerts() == []


def test_short_leg_in_the_money_is_assigned_into_the_shares_ib_booked(desk_for: Any) -> None:
    desk = desk_for(SHORT_ITM)
    day_then_morning(desk)
    s = settled(desk)
    assert outcomes(s) == {SHORT_KEY: ("ASSIGNED", 200), LONG_KEY: ("EXPIRED", 0)}
    assert s["reconciled"] and s["observed_share_change"] == 200
    assert desk.positions(ALICE_ACCOUNT) == {"STK": 200}
    assert sim_settlement(desk)["ASSIGNMENT_DELIVERY"] == 200
    assert [a["type"] for a in desk.rig.alerts()] == ["ASSIGNMENT_DETECTED"]


def test_both_legs_in_the_money_deliver_no_net_shares(desk_for: Any) -> None:
    desk = desk_for(BOTH_ITM)
    day_then_morning(desk)
    s = settled(desk)
    assert outcomes(s) == {SHORT_KEY: ("ASSIGNED", 200), LONG_KEY: ("EXERCISED", -200)}
    assert s["reconciled"] and s["observed_share_change"] == 0
    sim = sim_settlement(desk)
    assert sim["ASSIGNMENT_DELIVERY"] == 200 and sim["EXERCISE_DELIVERY"] == -200


def test_pin_risk_the_one_outcome_that_explains_the_shares_wins(desk_for: Any) -> None:
    # IB assigns the short 600P though QQQ closed 0.30 above it (an exercise notice
    # after a late move): the close says both expire, the shares say otherwise.
    desk = desk_for(PINNED, exercise_threshold="-0.50")
    day_then_morning(desk)
    s = settled(desk)
    assert outcomes(s) == {SHORT_KEY: ("ASSIGNED", 200), LONG_KEY: ("EXPIRED", 0)}
    assert s["reconciled"] and s["observed_share_change"] == 200
    assert "differs from QQQ's close" in s["detail"]
    assert not [a for a in desk.rig.alerts() if a["type"] == "SETTLEMENT_MISMATCH"]


def test_shares_no_outcome_explains_are_alerted_and_kept_unreconciled(desk_for: Any) -> None:
    # IB leaves the 1-dollar in-the-money short unassigned: no shares, while the close
    # says +200; "both expired" and "both exercised" explain 0 alike: ambiguous.
    desk = desk_for(SHORT_ITM, exercise_threshold="5")
    first, again = day_then_morning(desk, reruns=2)
    s = settled(desk)
    assert outcomes(s) == {SHORT_KEY: ("ASSIGNED", 200), LONG_KEY: ("EXPIRED", 0)}
    assert not s["reconciled"] and s["observed_share_change"] == 0
    assert "NOT reconciled" in first["detail"] and "already recorded" in again["detail"]
    (alert,) = [a for a in desk.rig.alerts() if a["type"] == "SETTLEMENT_MISMATCH"]
    assert alert["severity"] == "CRITICAL" and alert["follower_id"] == "alice"
    assert alert["details"]["account"] == ALICE_ACCOUNT
    assert alert["details"]["legs"] == [LONG_KEY, SHORT_KEY]
    assert alert["details"]["expected_share_change"] == 200
    assert alert["details"]["observed_share_change"] == 0
    assert "check the account's trades" in alert["message"]


def test_a_rerun_changes_nothing(desk_for: Any) -> None:
    desk = desk_for(SHORT_ITM)
    first, again = day_then_morning(desk, reruns=2)
    assert "QQQ 20261124 P 600 ASSIGNED (+200 shares)" in first["detail"]
    assert "already recorded" in again["detail"] and "differs" not in again["detail"]
    assert len(list(desk.rig.store.query(C.SETTLEMENTS))) == 1
    assert settled(desk)["reconciled"]


def test_no_marks_for_the_day_is_noted(desk_for: Any) -> None:
    desk = desk_for(SHORT_ITM)

    async def main() -> None:
        await desk.start()
        try:
            await desk.open_spread("alice")
            desk.at("10:30")
            await desk.agent.marks.tick()  # fills and marks of the day
            desk.rig.store.delete(C.MARKS, f"{ALICE_ACCOUNT}_{DAY}")
            desk.at("08:30", NEXT_DAY)
            run = await desk.job("pre-open-check")
            assert f"{ALICE_ACCOUNT}: no marks for {DAY}: settlement not observed" in run["detail"]
        finally:
            await desk.stop()

    desk.rig.run(main)
    assert list(desk.rig.store.query(C.SETTLEMENTS)) == []
