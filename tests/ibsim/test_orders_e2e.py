"""Orders through the real ib_async client against the simulator: the issue's list.

whatIf, a BAG credit vertical filled at the natural price, resting above it,
modify, cancel confirmed, partial fill, pre-open resting until 09:30, the sign
convention, reconnect and reconciliation by orderRef, rejections, expiry with
exercise and assignment booked as stock after the close.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ib_async import IB, ComboLeg, Contract, LimitOrder, Option, Trade

from ibsim.scenario import Scenario
from ibsim.server import Gateway
from tests.ibsim.conftest import DAY, Connect, MakeGateway, errors_of, ny, wait_for

EXPIRY = f"{DAY:%Y%m%d}"
ACCOUNT = "DU000001"


def bull_put(ib: IB, gw: Gateway, width: int = 2, otm: int = 3) -> tuple[Contract, Option, Option]:
    """A qualified Bull Put BAG a few dollars below spot: BUY the lower put, SELL the higher."""
    spot = int(gw.market.underlying(gw.clock.now()))
    short = Option("QQQ", EXPIRY, spot - otm, "P", "SMART", currency="USD")
    long_ = Option("QQQ", EXPIRY, spot - otm - width, "P", "SMART", currency="USD")
    ib.qualifyContracts(short, long_)
    bag = Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )
    return bag, short, long_


def natural_credit(gw: Gateway, short: Option, long_: Option) -> Decimal:
    """What a marketable order receives: short bid - long ask (positive)."""
    s = gw.quotes.quote(short.conId, gw.clock.now())
    lg = gw.quotes.quote(long_.conId, gw.clock.now())
    assert s is not None and lg is not None
    return s.bid - lg.ask


def credit_order(
    credit: Decimal, qty: int = 2, ref: str = "SP-20261124-QQQ-alice-OPEN", **kw: Any
) -> LimitOrder:
    """The broker adapter's conversion: a positive credit is a negative BAG price."""
    return LimitOrder("BUY", qty, -float(credit), orderRef=ref, account=ACCOUNT, tif="DAY", **kw)


def done(ib: IB, trade: Trade) -> bool:
    return wait_for(ib, trade.isDone)


@pytest.fixture
def open_market(gateway: Gateway, at: Any) -> Gateway:
    at("10:00")
    return gateway


def test_what_if_reports_width_x_100_x_qty_and_commission(open_market: Gateway, ib: IB) -> None:
    bag, _short, _long = bull_put(ib, open_market)
    state = ib.whatIfOrder(bag, credit_order(Decimal("0.50")))
    assert float(state.initMarginChange) == pytest.approx(400.0)  # width 2 x 100 x 2
    assert float(state.maintMarginChange) == pytest.approx(400.0)
    assert state.commission == pytest.approx(2.60)  # 0.65 x 2 contracts x 2 legs
    assert ib.openTrades() == []  # never a working order


def test_credit_vertical_at_the_natural_price_fills_with_one_execution_per_leg(
    open_market: Gateway, ib: IB
) -> None:
    bag, short, long_ = bull_put(ib, open_market)
    natural = natural_credit(open_market, short, long_)
    trade = ib.placeOrder(bag, credit_order(natural))
    assert done(ib, trade)
    assert trade.orderStatus.status == "Filled"
    assert trade.filled() == 2
    assert trade.orderStatus.avgFillPrice == pytest.approx(-float(natural))
    legs = [f for f in trade.fills if f.contract.secType == "OPT"]
    assert sorted((f.contract.conId, f.execution.side) for f in legs) == sorted(
        [(long_.conId, "BOT"), (short.conId, "SLD")]
    )
    assert {f.execution.orderRef for f in trade.fills} == {"SP-20261124-QQQ-alice-OPEN"}
    assert all(f.commissionReport.commission == pytest.approx(1.30) for f in legs)
    held = {p.contract.conId: p.position for p in ib.positions()}
    assert held == {long_.conId: 2, short.conId: -2}


def test_above_the_natural_credit_it_rests_then_a_modify_fills_it(
    open_market: Gateway, ib: IB
) -> None:
    bag, short, long_ = bull_put(ib, open_market)
    natural = natural_credit(open_market, short, long_)
    trade = ib.placeOrder(bag, credit_order(natural + Decimal("0.10")))
    assert wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    ib.sleep(0.2)
    assert trade.orderStatus.status == "Submitted" and trade.filled() == 0
    trade.order.lmtPrice = -float(natural)  # lower the credit: modify the working order
    ib.placeOrder(bag, trade.order)
    assert done(ib, trade) and trade.orderStatus.status == "Filled"
    assert trade.order.permId and len({f.execution.permId for f in trade.fills}) == 1


def test_cancel_is_confirmed(open_market: Gateway, ib: IB) -> None:
    errors = errors_of(ib)
    bag, short, long_ = bull_put(ib, open_market)
    trade = ib.placeOrder(bag, credit_order(natural_credit(open_market, short, long_) + 1))
    assert wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    ib.cancelOrder(trade.order)
    assert done(ib, trade) and trade.orderStatus.status == "Cancelled"
    assert any(code == 202 and req == trade.order.orderId for req, code, _ in errors)


def test_sign_convention_wrong_sign_is_a_market_order_right_sign_waits(
    open_market: Gateway, ib: IB
) -> None:
    bag, short, long_ = bull_put(ib, open_market)
    natural = natural_credit(open_market, short, long_)
    limit = natural + Decimal("0.20")  # more credit than the market gives
    right = ib.placeOrder(bag, credit_order(limit, ref="right-sign"))
    wrong_order = LimitOrder("BUY", 2, float(limit), orderRef="wrong-sign", account=ACCOUNT)
    wrong = ib.placeOrder(bag, wrong_order)  # +limit: "pay up to" -> marketable at once
    assert done(ib, wrong) and wrong.orderStatus.status == "Filled"
    assert wrong.orderStatus.avgFillPrice == pytest.approx(-float(natural))  # at the market
    assert wrong.orderStatus.avgFillPrice != pytest.approx(float(limit))  # not at the limit
    ib.sleep(0.2)
    assert right.orderStatus.status == "Submitted" and right.filled() == 0


def test_pre_open_order_rests_presubmitted_until_0930(gateway: Gateway, ib: IB, at: Any) -> None:
    at("09:29")
    bag, short, _long = bull_put(ib, gateway)
    assert gateway.quotes.quote(short.conId, gateway.clock.now()) is None  # no quotes yet
    trade = ib.placeOrder(bag, credit_order(Decimal("0.01")))
    assert wait_for(ib, lambda: trade.orderStatus.status == "PreSubmitted")
    ib.sleep(0.2)
    assert trade.filled() == 0
    at("09:30:05")
    assert done(ib, trade) and trade.orderStatus.status == "Filled"


def test_partial_fill_then_cancel_leaves_the_filled_part(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    gw = make_gateway(
        Scenario.parse(
            {
                "clock": {"start": ny("10:00"), "speed": "sim"},
                "fills": {
                    "partial_fill_probability": 1.0,
                    "partial_fill_max_fraction": 0.5,
                    "partial_fill_rest_seconds": 3600,
                },
            }
        )
    )
    ib = connect(gw)
    bag, short, long_ = bull_put(ib, gw)
    trade = ib.placeOrder(bag, credit_order(natural_credit(gw, short, long_), qty=4))
    assert wait_for(ib, lambda: trade.filled() > 0)
    assert 0 < trade.filled() < 4 and trade.orderStatus.status == "Submitted"
    ib.cancelOrder(trade.order)
    assert done(ib, trade) and trade.orderStatus.status == "Cancelled"
    assert trade.orderStatus.filled == trade.filled() and trade.remaining() > 0


def test_reconnect_reconciles_by_order_ref(open_market: Gateway, ib: IB, connect: Connect) -> None:
    bag, short, long_ = bull_put(ib, open_market)
    natural = natural_credit(open_market, short, long_)
    filled = ib.placeOrder(bag, credit_order(natural, ref="SP-20261124-QQQ-alice-OPEN"))
    resting = ib.placeOrder(bag, credit_order(natural + 1, ref="SP-20261124-QQQ-bruno-OPEN"))
    assert done(ib, filled) and wait_for(ib, lambda: resting.orderStatus.status == "Submitted")
    ib.disconnect()
    again = connect(open_market, client_id=1)
    open_refs = {t.order.orderRef for t in again.openTrades()}
    fill_refs = {f.execution.orderRef for f in again.fills()}
    completed = {t.order.orderRef: t.orderStatus.status for t in again.reqCompletedOrders(False)}
    assert open_refs == {"SP-20261124-QQQ-bruno-OPEN"}
    assert fill_refs == {"SP-20261124-QQQ-alice-OPEN"}
    assert completed.get("SP-20261124-QQQ-alice-OPEN") == "Filled"


def test_rejections_carry_ibs_codes(make_gateway: MakeGateway, connect: Connect) -> None:
    gw = make_gateway(
        Scenario.parse(
            {
                "clock": {"start": ny("10:00"), "speed": "sim"},
                "accounts": ["DU1", "DU2"],
                "fills": {"rejections": {"DU2": "account restricted by the test"}},
            }
        )
    )
    ib = connect(gw)
    errors = errors_of(ib)
    bag, _short, _long = bull_put(ib, gw)
    no_account = ib.placeOrder(bag, LimitOrder("BUY", 1, -0.50))
    rejected = ib.placeOrder(bag, LimitOrder("BUY", 1, -0.50, account="DU2"))
    bad_tick = ib.placeOrder(bag, LimitOrder("BUY", 1, -0.505, account="DU1"))
    assert wait_for(ib, lambda: len(errors) >= 3)
    codes = {req: code for req, code, _ in errors}
    assert codes[no_account.order.orderId] == 436
    assert codes[rejected.order.orderId] == 201
    assert codes[bad_tick.order.orderId] == 110
    text = next(m for r, c, m in errors if c == 201)
    assert "account restricted by the test" in text


def test_duplicate_order_id_of_a_done_order_is_103(open_market: Gateway, ib: IB) -> None:
    errors = errors_of(ib)
    bag, short, long_ = bull_put(ib, open_market)
    trade = ib.placeOrder(bag, credit_order(natural_credit(open_market, short, long_)))
    assert done(ib, trade)
    ib.client.placeOrder(trade.order.orderId, bag, trade.order)  # same id again
    assert wait_for(ib, lambda: any(c == 103 for _, c, _ in errors))


def test_expiry_assigns_the_in_the_money_short_put_as_stock_after_the_close(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    from ibsim.market import MarketConfig

    spot = int(MarketConfig().spot)
    # Short put spot-3, long put spot-5; the close at spot-4: only the short leg ends ITM.
    gw = make_gateway(
        Scenario.parse(
            {
                "clock": {"start": ny("10:00"), "speed": "sim"},
                "market": {"waypoints": [["10:00", str(spot)], ["16:00", str(spot - 4)]]},
            }
        )
    )
    ib = connect(gw)
    bag, short, long_ = bull_put(ib, gw, width=2, otm=3)
    trade = ib.placeOrder(bag, credit_order(natural_credit(gw, short, long_), qty=1))
    assert done(ib, trade)
    gw.clock.set(ny("15:50"))
    gw.pump()
    during = {p.contract.secType for p in ib.reqPositions()}
    assert during == {"OPT"}  # options only while the session runs
    gw.clock.set(ny("16:30"))
    gw.pump()
    assert wait_for(ib, lambda: any(p.contract.secType == "STK" for p in ib.reqPositions()))
    after = {(p.contract.secType, p.contract.symbol): p.position for p in ib.reqPositions()}
    assert after == {("STK", "QQQ"): 100}  # assigned: 100 shares bought at the short strike
    changes = gw.engine.position_changes(ACCOUNT)
    assert changes, "expiry and assignment are recorded for P&L"
