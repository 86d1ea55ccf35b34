"""IBBroker against the IB Gateway simulator with the real ib_async: no mocks.

Every test checks what IB (the simulator's engine) recorded, not only what the
adapter says: the BAG's action, legs, signed limit, account and orderRef.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from ib_async import LimitOrder, Order, OrderState
from ib_async.util import UNSET_DOUBLE

from ibsim.engine import OrderRecord
from ibsim.scenario import Scenario
from ibsim.server import Gateway
from spreadpilot.adapters.ib.broker import DRY_RUN_REASON, IBBroker, margin_check_from
from spreadpilot.domain.spread import SpreadKind, VerticalSpread
from spreadpilot.ports.broker import (
    Broker,
    BrokerError,
    Legs,
    OrderSnapshot,
    ReconcileUnknown,
)
from spreadpilot.ports.broker import (
    OrderState as State,
)
from tests.broker.conftest import MakeBroker, Run
from tests.ibsim.conftest import DAY, MakeGateway, ny

EXPIRY = f"{DAY:%Y%m%d}"
ACCOUNT = "DU000001"
REF = "SP-20261124-QQQ-alice-OPEN"


# ----------------------------------------------------------------------------- helpers


def bull_put(gw: Gateway, width: int = 2, otm: int = 3) -> VerticalSpread:
    """A Bull Put a few dollars below the simulator's spot (e.g. 486/488)."""
    spot = int(gw.market.underlying(gw.clock.now()))
    short = Decimal(spot - otm)
    return VerticalSpread(kind=SpreadKind.BULL_PUT, short_strike=short, long_strike=short - width)


def natural(gw: Gateway, legs: Legs) -> Decimal:
    """What a marketable order receives now: short bid - long ask (positive)."""
    now = gw.clock.now()
    short, long_ = gw.quotes.quote(legs.short_con_id, now), gw.quotes.quote(legs.long_con_id, now)
    assert short is not None and long_ is not None
    return short.bid - long_.ask


def ib_orders(gw: Gateway, ref: str | None = None) -> list[OrderRecord]:
    """The simulator's own record: working and completed orders of every client."""
    every = gw.call(lambda: [*gw.engine.open_orders(None), *gw.engine.completed_orders()])
    return [o for o in every if ref is None or o.order_ref == ref]


def day_gateway(
    make_gateway: MakeGateway, *, accounts: list[str] | None = None, **fills: Any
) -> Gateway:
    """A gateway whose clock starts at 10:00 New York (market open), with engine options."""
    raw: dict[str, Any] = {"clock": {"start": ny("10:00"), "speed": "sim"}}
    if fills:
        raw["fills"] = fills
    if accounts:
        raw["accounts"] = accounts
    return make_gateway(Scenario.parse(raw))


async def settled(
    broker: IBBroker, ref: str, done: Callable[[OrderSnapshot], bool]
) -> OrderSnapshot:
    """Let the loop run until the order's snapshot satisfies `done` (bounded, not timed)."""
    for _ in range(2000):
        snap = broker.snapshot(ref)
        if snap is not None and done(snap):
            return snap
        await asyncio.sleep(0.005)
    raise AssertionError(f"{ref} never reached the expected state: {broker.snapshot(ref)}")


def fully_filled(snap: OrderSnapshot) -> bool:
    legs_done = sum(f.quantity for f in snap.fills) == 2 * snap.quantity
    commissions = all(f.commission is not None for f in snap.fills)
    return snap.state is State.FILLED and legs_done and commissions


@pytest.fixture
def market(gateway: Gateway, at: Callable[[str], None]) -> Gateway:
    """The default gateway (one account) at 10:00 New York."""
    at("10:00")
    return gateway


# ----------------------------------------------------------------------------- contracts, quotes


def test_it_implements_the_broker_port(market: Gateway, make_broker: MakeBroker) -> None:
    broker: Broker = make_broker(market)
    assert broker.is_connected() and broker.dry_run is False


def test_qualify_caches_con_ids_and_an_unlisted_strike_is_200(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    spread = bull_put(market)
    legs = run(broker.qualify(spread, EXPIRY))
    short = market.instruments.by_con_id(legs.short_con_id)
    long_ = market.instruments.by_con_id(legs.long_con_id)
    assert short is not None and long_ is not None
    assert (short.strike, short.right, short.lastTradeDateOrContractMonth) == (
        float(spread.short_strike),
        "P",
        EXPIRY,
    )
    assert long_.strike == float(spread.long_strike)
    run(broker.disconnect())
    assert run(broker.qualify(spread, EXPIRY)) == legs  # cached: no request needed
    run(broker.connect())
    unlisted = VerticalSpread(
        kind=SpreadKind.BULL_PUT, short_strike=Decimal(5000), long_strike=Decimal(4998)
    )
    with pytest.raises(BrokerError) as raised:
        run(broker.qualify(unlisted, EXPIRY))
    assert raised.value.code == 200
    assert "5000" in str(raised.value)


def test_quotes_are_two_sided_only_from_the_open(
    gateway: Gateway, at: Callable[[str], None], make_broker: MakeBroker, run: Run[Any]
) -> None:
    at("09:25")
    broker = make_broker(gateway)
    legs = run(broker.qualify(bull_put(gateway), EXPIRY))
    before = run(broker.quote(legs))
    assert not before.two_sided
    assert (before.short_bid, before.short_ask, before.long_bid, before.long_ask) == (None,) * 4
    at("10:00")
    after = run(broker.quote(legs))
    assert after.two_sided
    assert after.at == gateway.clock.now()
    short = gateway.quotes.quote(legs.short_con_id, gateway.clock.now())
    assert short is not None
    assert (after.short_bid, after.short_ask) == (short.bid, short.ask)
    assert after.natural_credit == natural(gateway, legs) > 0
    assert after.mid_credit > after.natural_credit


# ----------------------------------------------------------------------------- whatIf


@pytest.mark.parametrize(("width", "quantity"), [(2, 2), (3, 5)])
def test_what_if_is_width_x_100_x_qty_and_commission_per_contract_and_leg(
    market: Gateway, make_broker: MakeBroker, run: Run[Any], width: int, quantity: int
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market, width=width), EXPIRY))
    check = run(broker.what_if(legs, ACCOUNT, quantity, Decimal("0.75")))
    assert check.complete
    assert check.init_margin_change == width * 100 * quantity
    assert check.maint_margin_change == width * 100 * quantity
    assert check.commission == Decimal("0.65") * quantity * 2
    funds = market.call(lambda: market.engine.account_values(ACCOUNT)["AvailableFunds"][0])
    assert check.available_funds == Decimal(funds) == 100_000
    assert check.sufficient is True
    assert ib_orders(market) == []  # a whatIf is never an order


def test_an_incomplete_first_what_if_reply_does_not_count(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(make_gateway, whatif_incomplete_first=True)
    broker = make_broker(gw)
    legs = run(broker.qualify(bull_put(gw), EXPIRY))
    check = run(broker.what_if(legs, ACCOUNT, 2, Decimal("0.75")))
    assert check.complete and check.init_margin_change == 400 and check.commission == Decimal("2.6")


def test_sentinel_figures_make_an_incomplete_margin_check_never_a_guess() -> None:
    unset = "1.7976931348623157E308"
    blank = margin_check_from(
        OrderState(initMarginChange=unset, maintMarginChange=unset, commission=UNSET_DOUBLE),
        Decimal(100_000),
    )
    assert not blank.complete and blank.sufficient is None
    assert blank.init_margin_change is None and blank.commission is None
    no_commission = margin_check_from(
        OrderState(initMarginChange="400.00", maintMarginChange="400.00", commission=UNSET_DOUBLE),
        Decimal(100_000),
    )
    assert not no_commission.complete and no_commission.sufficient is None
    assert no_commission.init_margin_change == 400
    empty = margin_check_from(OrderState(initMarginChange="", commission=1.3), None)
    assert not empty.complete and empty.init_margin_change is None


# ----------------------------------------------------------------------------- orders


def test_at_the_natural_credit_it_fills_with_one_execution_per_leg(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs)
    placed = run(broker.place(legs, ACCOUNT, 2, credit, REF))
    assert placed.state in (State.WORKING, State.FILLED) and placed.order_id > 0
    snap = run(settled(broker, REF, fully_filled))
    assert (snap.quantity, snap.filled, snap.credit) == (2, 2, credit)
    assert snap.avg_fill_credit == credit > 0
    assert sorted((f.con_id, f.side, f.quantity) for f in snap.fills) == sorted(
        [(legs.long_con_id, "BOT", 2), (legs.short_con_id, "SLD", 2)]
    )
    assert all(f.commission == Decimal("1.30") for f in snap.fills)  # 0.65 x 2 contracts
    assert all(f.time == market.clock.now() for f in snap.fills)  # IB's execution time
    (record,) = ib_orders(market, REF)
    assert record.status == "Filled" and record.perm_id == snap.perm_id
    assert record.order.lmtPrice == -float(credit)  # the sign: a credit is a negative price
    assert (record.order.action, record.order.orderType, record.order.tif) == ("BUY", "LMT", "DAY")
    assert record.order.account == ACCOUNT and record.order.transmit
    assert record.contract.secType == "BAG"
    assert [(leg.conId, leg.action, leg.ratio) for leg in record.contract.comboLegs] == [
        (legs.long_con_id, "BUY", 1),
        (legs.short_con_id, "SELL", 1),
    ]


def test_a_credit_is_rounded_to_the_cent_and_signed_and_above_the_market_it_waits(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    wanted = natural(market, legs) + Decimal("0.205")  # more than the market gives
    snap = run(broker.place(legs, ACCOUNT, 2, wanted, REF))
    expected = natural(market, legs) + Decimal("0.21")  # half-up to the cent
    assert snap.state is State.WORKING and snap.filled == 0 and snap.credit == expected
    (record,) = ib_orders(market, REF)
    assert record.status == "Submitted" and record.order.lmtPrice == -float(expected)
    # With the wrong sign this limit would have been marketable and filled at once.


def test_above_the_natural_it_works_then_a_modify_down_to_it_fills(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs)
    working = run(broker.place(legs, ACCOUNT, 2, credit + Decimal("0.10"), REF))
    assert working.state is State.WORKING and working.filled == 0
    assert working.credit == credit + Decimal("0.10")
    modified = run(broker.modify(REF, credit))
    assert modified.credit == credit
    snap = run(settled(broker, REF, fully_filled))
    assert snap.filled == 2 and snap.avg_fill_credit == credit
    assert (snap.order_id, snap.perm_id) == (working.order_id, working.perm_id)  # same order
    (record,) = ib_orders(market, REF)  # one IB order, modified, never a second one
    assert record.status == "Filled" and record.order.lmtPrice == -float(credit)


def test_partial_fills_accumulate_across_a_modify_and_cancel_keeps_them(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(
        make_gateway,
        partial_fill_probability=1.0,
        partial_fill_max_fraction=0.5,
        partial_fill_rest_seconds=3600,
    )
    broker = make_broker(gw)
    legs = run(broker.qualify(bull_put(gw), EXPIRY))
    credit = natural(gw, legs)
    run(broker.place(legs, ACCOUNT, 8, credit, REF))
    first = run(settled(broker, REF, lambda s: s.filled > 0))
    assert first.state is State.WORKING and 0 < first.filled < 8
    run(broker.modify(REF, credit - Decimal("0.01")))
    second = run(settled(broker, REF, lambda s: s.filled > first.filled))
    assert second.filled < 8
    cancelled = run(broker.cancel(REF))
    assert cancelled.state is State.CANCELLED
    (record,) = ib_orders(gw, REF)
    assert record.status == "Cancelled" and cancelled.filled == int(record.filled) < 8
    final = run(settled(broker, REF, lambda s: sum(f.quantity for f in s.fills) == 2 * s.filled))
    for con_id in (legs.short_con_id, legs.long_con_id):
        assert sum(f.quantity for f in final.fills if f.con_id == con_id) == final.filled
    assert final.avg_fill_credit == credit


def test_cancel_is_confirmed_and_idempotent(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    run(broker.place(legs, ACCOUNT, 2, natural(market, legs) + 1, REF))
    snap = run(broker.cancel(REF))
    assert snap.state is State.CANCELLED and snap.filled == 0
    (record,) = ib_orders(market, REF)
    assert record.status == "Cancelled"
    assert run(broker.cancel(REF)).state is State.CANCELLED  # already done: nothing sent
    assert run(broker.modify(REF, Decimal("0.50"))).state is State.CANCELLED
    assert len(ib_orders(market)) == 1


def test_before_the_open_an_order_rests(
    gateway: Gateway, at: Callable[[str], None], make_broker: MakeBroker, run: Run[Any]
) -> None:
    at("09:25")
    broker = make_broker(gateway)
    legs = run(broker.qualify(bull_put(gateway), EXPIRY))
    snap = run(broker.place(legs, ACCOUNT, 1, Decimal("0.80"), REF))
    assert snap.state is State.RESTING
    (record,) = ib_orders(gateway, REF)
    assert record.status == "PreSubmitted"
    assert run(broker.cancel(REF)).state is State.CANCELLED


def test_off_the_price_grid_a_new_order_is_rejected_and_a_modify_refused(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(make_gateway, price_increment="0.05")
    broker = make_broker(gw)
    legs = run(broker.qualify(bull_put(gw), EXPIRY))
    high = (natural(gw, legs) + 1).quantize(Decimal("0.1"))  # on the $0.05 grid
    off = run(broker.place(legs, ACCOUNT, 2, high + Decimal("0.01"), "SP-off-grid"))
    assert off.state is State.REJECTED and off.reason.startswith("110:")
    assert ib_orders(gw, "SP-off-grid") == []  # IB never accepted it
    run(broker.place(legs, ACCOUNT, 2, high, REF))
    with pytest.raises(BrokerError) as raised:
        run(broker.modify(REF, high - Decimal("0.01")))  # off the grid: 110
    assert raised.value.code == 110
    snap = broker.snapshot(REF)
    assert snap is not None
    assert snap.state is State.WORKING and snap.credit == high and snap.reason.startswith("110:")
    (record,) = ib_orders(gw, REF)
    assert record.status == "Submitted" and record.order.lmtPrice == -float(high)
    assert run(broker.cancel(REF)).state is State.CANCELLED  # still live, still ours


def test_a_margin_rejection_is_rejected_with_201(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(make_gateway, initial_cash=100)
    broker = make_broker(gw)
    legs = run(broker.qualify(bull_put(gw), EXPIRY))
    credit = natural(gw, legs)
    check = run(broker.what_if(legs, ACCOUNT, 2, credit))
    assert check.complete and check.sufficient is False
    snap = run(broker.place(legs, ACCOUNT, 2, credit, REF))
    assert snap.state is State.REJECTED and snap.filled == 0
    assert snap.reason.startswith("201:") and "MARGIN" in snap.reason
    (record,) = ib_orders(gw, REF)
    assert record.status == "Inactive"
    assert broker.snapshot(REF) == snap


def test_an_advisor_login_routes_each_order_to_its_account(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(
        make_gateway, accounts=["DU1", "DU2"], initial_cash_by_account={"DU2": "50000"}
    )
    broker = make_broker(gw)
    legs = run(broker.qualify(bull_put(gw), EXPIRY))
    credit = natural(gw, legs)
    assert run(broker.what_if(legs, "DU1", 1, credit)).available_funds == 100_000
    assert run(broker.what_if(legs, "DU2", 1, credit)).available_funds == 50_000
    run(broker.place(legs, "DU2", 1, credit, "ref-du2"))
    snap = run(settled(broker, "ref-du2", fully_filled))
    assert snap.account == "DU2"
    (record,) = ib_orders(gw, "ref-du2")
    assert record.account == "DU2" and record.order.account == "DU2"
    assert {f.account for f in gw.call(gw.engine.fills)} == {"DU2"}
    nameless = run(broker.place(legs, "", 1, credit, "ref-none"))
    assert nameless.state is State.REJECTED and nameless.reason.startswith("not sent:")
    stranger = run(broker.place(legs, "DU9", 1, credit, "ref-du9"))
    assert stranger.state is State.REJECTED and "DU9" in stranger.reason
    assert ib_orders(gw, "ref-none") == [] and ib_orders(gw, "ref-du9") == []
    # A connection configured for one account routes nameless orders there.
    single = make_broker(gw, client_id=2, accounts=["DU1"])
    run(single.place(legs, "", 1, credit + 1, "ref-du1"))
    (du1,) = ib_orders(gw, "ref-du1")
    assert du1.account == "DU1"
    refused = run(single.place(legs, "DU2", 1, credit + 1, "ref-du2-again"))
    assert refused.state is State.REJECTED and ib_orders(gw, "ref-du2-again") == []


def test_dry_run_what_if_works_and_nothing_ever_reaches_ib(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market, dry_run=True)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs)
    assert run(broker.what_if(legs, ACCOUNT, 2, credit)).init_margin_change == 400
    snap = run(broker.place(legs, ACCOUNT, 2, credit, REF))
    assert snap.state is State.REJECTED and snap.reason == DRY_RUN_REASON
    assert (snap.order_id, snap.perm_id, snap.filled, snap.credit) == (0, 0, 0, credit)
    assert run(broker.modify(REF, credit - Decimal("0.05"))) == snap
    assert run(broker.cancel(REF)) == snap
    assert broker.snapshot(REF) == snap
    with pytest.raises(BrokerError):
        run(broker.modify("SP-never-placed", credit))
    # Below the adapter too: the ib_async client itself refuses to route.
    bag = IBBroker._bag(legs)
    with pytest.raises(BrokerError):
        broker.ib.placeOrder(bag, LimitOrder("BUY", 1, -float(credit), account=ACCOUNT))
    with pytest.raises(BrokerError):
        broker.ib.cancelOrder(Order(orderId=1))
    with pytest.raises(ValueError, match="dry-run"):
        broker.dry_run = False
    assert market.call(lambda: market.engine.open_orders(None)) == []
    assert market.call(market.engine.completed_orders) == []


def test_a_second_place_of_a_known_order_ref_sends_nothing(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs)
    run(broker.place(legs, ACCOUNT, 2, credit + 1, REF))
    with pytest.raises(BrokerError) as raised:
        run(broker.place(legs, ACCOUNT, 2, credit, REF))
    assert raised.value.code is None and REF in str(raised.value)
    assert len(ib_orders(market, REF)) == 1


# ----------------------------------------------------------------------------- reconcile


def test_reconcile_after_a_reconnect_finds_orders_by_order_ref(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    filled_ref, resting_ref = "SP-20261124-QQQ-alice-OPEN", "SP-20261124-QQQ-bruno-OPEN"
    unknown_ref = "SP-20261124-QQQ-carla-OPEN"
    first = make_broker(market)
    legs = run(first.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs)
    run(first.place(legs, ACCOUNT, 2, credit, filled_ref))
    run(settled(first, filled_ref, fully_filled))
    run(first.place(legs, ACCOUNT, 2, credit + 1, resting_ref))
    run(first.disconnect())

    second = make_broker(market)  # a new agent process: same clientId, nothing in memory
    found = run(second.reconcile([filled_ref, resting_ref, unknown_ref]))
    assert set(found.found) == {filled_ref, resting_ref} and not found.has(unknown_ref)
    done = found.found[filled_ref]
    (filled_record,) = ib_orders(market, filled_ref)
    assert done.state is State.FILLED and (done.quantity, done.filled) == (2, 2)
    assert done.perm_id == filled_record.perm_id and done.avg_fill_credit == credit
    assert len(done.fills) == 2 and all(f.commission == Decimal("1.30") for f in done.fills)
    resting = found.found[resting_ref]
    assert resting.state is State.WORKING and resting.filled == 0
    assert resting.credit == credit + 1

    refs = [filled_ref, resting_ref, unknown_ref] * 5

    async def many() -> list[Any]:  # concurrent reconciles share reads of IB
        return list(await asyncio.gather(*(second.reconcile([r]) for r in refs)))

    results = run(many())
    assert [set(r.found) for r in results] == [
        {ref} if ref != unknown_ref else set() for ref in refs
    ]

    # The found order is ours again: the ladder can go on, no second order is placed.
    run(second.modify(resting_ref, credit))
    assert run(settled(second, resting_ref, fully_filled)).filled == 2
    with pytest.raises(BrokerError):
        run(second.place(legs, ACCOUNT, 2, credit, filled_ref))
    assert len(ib_orders(market, filled_ref)) == 1 and len(ib_orders(market, resting_ref)) == 1


def test_a_hung_gateway_gives_broker_errors_and_an_unknown_reconcile_never_nothing(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market, timeout=0.5)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    credit = natural(market, legs) + 1
    run(broker.place(legs, ACCOUNT, 1, credit, REF))
    frozen, release = threading.Event(), threading.Event()

    def hang() -> None:
        frozen.set()
        release.wait(30)

    hung = threading.Thread(target=market.call, args=(hang,), daemon=True)
    hung.start()
    try:
        assert frozen.wait(10)
        with pytest.raises(ReconcileUnknown):
            run(broker.reconcile([REF]))
        with pytest.raises(BrokerError) as what_if:
            run(broker.what_if(legs, ACCOUNT, 1, credit))
        assert what_if.value.code is None
        with pytest.raises(BrokerError) as unclear:
            run(broker.place(legs, ACCOUNT, 1, credit, "SP-unclear"))
        assert unclear.value.code is None and "reconcile" in str(unclear.value)
    finally:
        release.set()
        hung.join(10)
    # IB answers again: both are there. The late answer to the timed-out open-orders
    # request (sent before "SP-unclear") must not pass for the answer to this one.
    found = run(broker.reconcile([REF, "SP-unclear"]))
    assert found.has(REF) and found.has("SP-unclear")
    assert len(ib_orders(market, "SP-unclear")) == 1


def test_reconcile_across_a_gateway_restart_is_unknown_then_found(
    market: Gateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    broker = make_broker(market)
    legs = run(broker.qualify(bull_put(market), EXPIRY))
    run(broker.place(legs, ACCOUNT, 1, natural(market, legs) + 1, REF))
    market.restart()  # every socket dropped
    with pytest.raises(ReconcileUnknown):
        run(broker.reconcile([REF]))
    assert not broker.is_connected()
    run(broker.connect())
    found = run(broker.reconcile([REF]))
    assert found.has(REF) and found.found[REF].state is State.WORKING
    assert run(broker.cancel(REF)).state is State.CANCELLED


def test_an_unreachable_gateway_is_a_broker_error_and_reconcile_unknown(
    make_gateway: MakeGateway, make_broker: MakeBroker, run: Run[Any]
) -> None:
    gw = day_gateway(make_gateway)
    gw.stop_thread()
    broker = make_broker(gw, connect=False, timeout=2)
    with pytest.raises(BrokerError):
        run(broker.connect())
    with pytest.raises(ReconcileUnknown):
        run(broker.reconcile([REF]))
