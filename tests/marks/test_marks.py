"""Marks and fills written by the agent's marks loop, against the simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.agent import GatewayConfig
from spreadpilot.platform import collections as C
from tests.ibsim.conftest import DAY
from tests.marks.conftest import (
    OVERNIGHT,
    Desk,
    fills,
    manual_trade,
    marks,
    sim_commissions,
)
from tests.risk.conftest import ALICE_ACCOUNT, BOB_ACCOUNT


def run(desk: Desk, go: Any) -> None:
    async def main() -> None:
        await desk.start()
        try:
            await go()
        finally:
            await desk.stop()

    desk.rig.run(main)


def test_a_filled_spread_is_marked_and_every_execution_lands_in_fills(desk_for: Any) -> None:
    desk = desk_for()
    loop = desk.agent.marks

    async def go() -> None:
        await desk.open_spread("alice")
        await manual_trade(desk, BOB_ACCOUNT, "BUY", 10)  # no orderRef: not ours
        desk.at("10:30")
        first = await loop.tick()
        assert first is not None and not first.session_over
        assert sorted(first.marked) == [ALICE_ACCOUNT, BOB_ACCOUNT]
        assert await loop.tick() is None  # same 30 s slot: nothing due
        before = {a: fills(desk, a) for a in (ALICE_ACCOUNT, BOB_ACCOUNT)}
        desk.at("10:31")
        again = await loop.tick()
        assert again is not None and again.fills_changed == []  # a re-run changes nothing
        assert {a: fills(desk, a) for a in before} == before

    run(desk, go)
    m = marks(desk, ALICE_ACCOUNT)
    assert m["follower_id"] == "alice" and m["date"] == DAY.isoformat()
    assert not m["session_over"] and Decimal(m["underlying"]["QQQ"]) > 0
    legs = {p["key"]: p for p in m["positions"]}
    assert set(legs) == {"QQQ 20261124 P 600", "QQQ 20261124 P 598"}
    assert legs["QQQ 20261124 P 600"]["quantity"] == -2
    assert legs["QQQ 20261124 P 598"]["quantity"] == 2
    assert all(Decimal(p["mark"]) > 0 and p["multiplier"] == 100 for p in legs.values())
    (spread,) = m["spreads"]
    assert spread["spread_id"] == "20261124-P600-598" and spread["quantity"] == 2
    expected = sum(
        p["quantity"] * (Decimal(p["mark"]) * 100 - Decimal(p["avg_cost"])) for p in legs.values()
    )
    assert Decimal(spread["unrealised"]) == expected.quantize(Decimal("0.01"))

    f = fills(desk, ALICE_ACCOUNT)
    assert f["follower_id"] == "alice"
    assert {x["side"] for x in f["fills"]} == {"BOT", "SLD"}
    assert {x["sec_type"] for x in f["fills"]} == {"OPT"}  # legs only, no BAG execution
    assert sum(x["quantity"] for x in f["fills"] if x["strike"] == "600") == 2
    assert all(x["order_ref"] == "SP-20261124-QQQ-alice-OPEN" for x in f["fills"])
    paid = sum(Decimal(x["commission"]) for x in f["fills"])
    assert paid == sim_commissions(desk, ALICE_ACCOUNT) > 0

    (manual,) = fills(desk, BOB_ACCOUNT)["fills"]
    assert manual["order_ref"] == "" and manual["sec_type"] == "STK" and manual["side"] == "BOT"
    assert manual["quantity"] == 10 and manual["multiplier"] == 1
    assert Decimal(manual["commission"]) == sim_commissions(desk, BOB_ACCOUNT)
    (shares,) = marks(desk, BOB_ACCOUNT)["positions"]
    assert shares["key"] == "QQQ STK" and shares["quantity"] == 10
    assert shares["mark"] == marks(desk, BOB_ACCOUNT)["underlying"]["QQQ"]


def test_a_late_commission_is_filled_in_and_nothing_else_changes(desk_for: Any) -> None:
    desk = desk_for()
    store = desk.rig.store

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("10:30")
        await desk.agent.marks.tick()
        doc = fills(desk, ALICE_ACCOUNT)
        first = doc["fills"][0]
        # as if IB's commission report had not come yet when the execution was merged
        store.set(
            C.FILLS,
            f"{ALICE_ACCOUNT}_{DAY}",
            {**doc, "fills": [{**first, "commission": None}, *doc["fills"][1:]]},
        )
        desk.at("10:31")
        run = await desk.agent.marks.tick()
        assert run is not None and run.fills_changed == [f"{ALICE_ACCOUNT}_{DAY}"]
        after = fills(desk, ALICE_ACCOUNT)
        assert after["fills"] == doc["fills"]

    run(desk, go)


def test_the_final_run_after_the_close_is_the_only_one_and_sets_session_over(
    desk_for: Any,
) -> None:
    desk = desk_for()
    loop = desk.agent.marks

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("15:59:40")
        assert (await loop.tick()) is not None
        desk.at("16:00:10")
        final = await loop.tick()
        assert final is not None and final.session_over and ALICE_ACCOUNT in final.marked
        for later in ("16:01", "16:20", "16:45", "20:30"):
            desk.at(later)
            assert await loop.tick() is None, later

    run(desk, go)
    m = marks(desk, ALICE_ACCOUNT)
    assert m["session_over"] and len(m["positions"]) == 2  # IB books the expiry overnight


def test_a_gateway_that_is_down_is_skipped_and_noted(make_desk: Any) -> None:
    down = {"gw-2": GatewayConfig("127.0.0.1", 9, 7, ("DU000003",))}  # nothing listens
    desk = make_desk(extra_gateways=down, fills=OVERNIGHT)

    async def go() -> None:
        await desk.open_spread("alice")
        desk.at("10:30")
        done = await desk.agent.marks.tick()
        assert done is not None and done.marked == [ALICE_ACCOUNT]
        assert "gateways not connected (not marked): gw-2" in done.describe()
        desk.at("16:00:05")
        final = await desk.agent.marks.tick()
        assert final is not None and final.session_over and final.marked == [ALICE_ACCOUNT]
        desk.at("16:00:35")  # the down gateway's final run is retried on the grid
        retried = await desk.agent.marks.tick()
        assert retried is not None and retried.marked == [] and "gw-2" in retried.describe()

    run(desk, go)
    assert marks(desk, ALICE_ACCOUNT)["session_over"]
