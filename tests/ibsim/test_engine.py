"""The order/account engine on its own: IB's order rules, fills, accounts and expiry.

Pure: a SimClock, the real NYSE calendar, and a small quote table and contract
table of our own that satisfy the engine's interfaces (QuoteBook.quote,
Instruments.by_con_id/stock/resolve). No sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from ib_async import (
    ComboLeg,
    Contract,
    ContractDetails,
    LimitOrder,
    MarketOrder,
    Order,
)
from ib_async.util import UNSET_DOUBLE

from ibsim.accounts import Account, Holding, MarginParams, requirement
from ibsim.engine import (
    Engine,
    EngineConfig,
    ErrorEvent,
    Event,
    FillEvent,
    OpenOrderEvent,
    StatusEvent,
    WhatIfEvent,
)
from spreadpilot.domain.calendar import MarketCalendar, Session, ny_datetime
from spreadpilot.platform.clock import SimClock

DAY = date(2026, 11, 24)  # a Tuesday, full session
EARLY = date(2026, 11, 27)  # the Friday after Thanksgiving: closes 13:00
D = Decimal
CAL = MarketCalendar()


@cache
def session_of(day: date) -> Session | None:
    return CAL.session(day)


def ny(hhmm: str, day: date = DAY) -> datetime:
    return ny_datetime(day, time.fromisoformat(hhmm))


# ----------------------------------------------------------------------------- test doubles


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_size: int = 10
    ask_size: int = 10


STOCK = Contract(
    secType="STK", conId=320227571, symbol="QQQ", exchange="SMART", currency="USD", multiplier=""
)


def option(strike: int, right: str, day: date = DAY) -> Contract:
    return Contract(
        secType="OPT",
        conId=int(f"{day:%m%d}{strike}{1 if right == 'C' else 2}"),
        symbol="QQQ",
        lastTradeDateOrContractMonth=f"{day:%Y%m%d}",
        strike=float(strike),
        right=right,
        multiplier="100",
        exchange="SMART",
        currency="USD",
        tradingClass="QQQ",
    )


P486, P488, C490, C492 = option(486, "P"), option(488, "P"), option(490, "C"), option(492, "C")


class Instruments:
    """Contract table: QQQ and a few options of DAY (and of EARLY)."""

    def __init__(self, *extra: Contract) -> None:
        self.table = {c.conId: c for c in (STOCK, P486, P488, C490, C492, *extra)}

    def stock(self) -> Contract:
        return STOCK

    def by_con_id(self, con_id: int) -> Contract | None:
        return self.table.get(con_id)

    def resolve(self, contract: Contract) -> list[ContractDetails]:
        found = [
            c
            for c in self.table.values()
            if c.secType == contract.secType
            and c.lastTradeDateOrContractMonth == contract.lastTradeDateOrContractMonth
            and c.strike == contract.strike
            and c.right == contract.right
        ]
        return [ContractDetails(contract=c) for c in found]


class Quotes:
    """Quote table; options quote only during their expiry day's session (as QuoteBook)."""

    def __init__(self, instruments: Instruments) -> None:
        self.instruments = instruments
        self.table: dict[int, Quote] = {}

    def set(self, contract: Contract, bid: str, ask: str, last: str | None = None) -> None:
        self.table[contract.conId] = Quote(D(bid), D(ask), D(last if last is not None else ask))

    def quote(self, con_id: int, at: datetime) -> Quote | None:
        q = self.table.get(con_id)
        contract = self.instruments.by_con_id(con_id)
        if q is None or contract is None:
            return None
        if contract.secType == "OPT":
            text = contract.lastTradeDateOrContractMonth
            session = session_of(date(int(text[:4]), int(text[4:6]), int(text[6:])))
            if session is None or not session.open <= at < session.close:
                return None
        return q


@dataclass
class World:
    clock: SimClock
    quotes: Quotes
    engine: Engine


def world(
    at: str = "10:00",
    day: date = DAY,
    accounts: tuple[str, ...] = ("DU1",),
    seed: int = 7,
    instruments: Instruments | None = None,
    **config: Any,
) -> World:
    """An engine at `at` New York time with the standard quotes of a 486/488 bull put:
    486P 0.28/0.30, 488P 1.05/1.07 -> natural credit 0.75, mid credit 0.77."""
    clock = SimClock(ny(at, day))
    instruments = instruments or Instruments()
    quotes = Quotes(instruments)
    quotes.set(STOCK, "489.99", "490.01", "490.00")
    quotes.set(P486, "0.28", "0.30")
    quotes.set(P488, "1.05", "1.07")
    quotes.set(C490, "1.50", "1.54")
    quotes.set(C492, "0.60", "0.62")
    engine = Engine(
        clock,
        quotes,
        instruments,
        list(accounts),
        EngineConfig(**{"combo_summary_execution": False, **config}),
        CAL,
        seed=seed,
    )
    return World(clock, quotes, engine)


def bull_put(long: Contract = P486, short: Contract = P488) -> Contract:
    """The BAG that BUYs the long put and SELLs the short put: a credit is negative."""
    return Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )


def credit_as_sell() -> Contract:
    """The same spread written the other way: SELL of (BUY short, SELL long), positive."""
    return Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=P488.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=P486.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )


def lmt(action: str, qty: int, price: str, ref: str = "sp-1", **kw: Any) -> Order:
    kw.setdefault("tif", "DAY")
    return LimitOrder(action, qty, float(price), orderRef=ref, **kw)


def statuses(events: list[Event]) -> list[str]:
    return [e.record.status for e in events if isinstance(e, StatusEvent)]


def errors(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.req_id, e.code) for e in events if isinstance(e, ErrorEvent)]


def fills(events: list[Event]) -> list[tuple[int, str, Decimal, Decimal]]:
    return [
        (e.fill.contract.conId, e.fill.execution.side, e.fill.price, e.fill.shares)
        for e in events
        if isinstance(e, FillEvent)
    ]


# ----------------------------------------------------------------------------- sign convention


@pytest.mark.parametrize(
    ("contract", "action", "wrong", "right", "natural"),
    [
        (bull_put(), "BUY", "0.75", "-0.77", D("-0.75")),  # credit is negative when BUYing the BAG
        (credit_as_sell(), "SELL", "-0.75", "0.77", D("0.75")),  # credit positive when SELLing
    ],
    ids=["buy-bag-negative", "sell-bag-positive"],
)
def test_sign_convention_wrong_sign_fills_at_market_right_sign_waits(
    contract: Contract, action: str, wrong: str, right: str, natural: Decimal
) -> None:
    crossed = D(right)
    # Wrong sign: marketable at once, filled AT THE NATURAL PRICE, not at the limit.
    w = world()
    events = w.engine.place(1, 1, contract, lmt(action, 2, wrong))
    assert statuses(events) == ["Submitted", "Filled"]
    done = w.engine.completed_orders()[0]
    assert done.avg_fill_price == natural and done.filled == 2
    assert sorted(fills(events)) == sorted(
        [(P486.conId, "BOT", D("0.30"), D(2)), (P488.conId, "SLD", D("1.05"), D(2))]
    )

    # Right sign, asking more credit (0.77) than the natural 0.75: rests.
    w = world()
    events = w.engine.place(1, 1, contract, lmt(action, 2, right))
    assert statuses(events) == ["Submitted"] and not fills(events)
    assert w.engine.step() == []
    assert [r.status for r in w.engine.open_orders(1)] == ["Submitted"]

    # The short put's bid rises 2 cents: natural credit 0.77 crosses the limit.
    w.quotes.set(P488, "1.07", "1.09")
    w.clock.advance(timedelta(seconds=5))
    events = w.engine.step()
    assert statuses(events) == ["Filled"]
    assert w.engine.completed_orders()[0].avg_fill_price == crossed


def test_single_option_limits_and_market_orders() -> None:
    w = world()
    assert statuses(w.engine.place(1, 1, P488, lmt("SELL", 1, "1.06"))) == ["Submitted"]
    sold = w.engine.place(1, 2, P488, lmt("SELL", 1, "1.00"))  # below the bid: fills at the bid
    assert fills(sold) == [(P488.conId, "SLD", D("1.05"), D(1))]
    bought = w.engine.place(1, 3, P486, MarketOrder("BUY", 1, orderRef="mkt"))
    assert fills(bought) == [(P486.conId, "BOT", D("0.30"), D(1))]


# ----------------------------------------------------------------------------- life cycle


def test_modify_lowers_the_credit_then_fills_keeping_perm_id() -> None:
    w = world()
    first = w.engine.place(1, 5, bull_put(), lmt("BUY", 2, "-0.77", ref="ladder"))
    perm = first[0].record.perm_id  # type: ignore[union-attr]
    modified = w.engine.place(1, 5, bull_put(), lmt("BUY", 2, "-0.76", ref="ladder"))
    assert [type(e) for e in modified] == [OpenOrderEvent, StatusEvent]
    assert modified[0].record.order.lmtPrice == -0.76  # type: ignore[union-attr]
    filled = w.engine.place(1, 5, bull_put(), lmt("BUY", 2, "-0.75", ref="ladder"))
    assert statuses(filled) == ["Submitted", "Filled"]
    assert {e.record.perm_id for e in filled if isinstance(e, StatusEvent)} == {perm}
    assert [r.perm_id for r in w.engine.completed_orders()] == [perm]
    assert w.engine.open_orders() == []


def test_cancel_is_confirmed_then_done_and_unknown_ids_are_reported() -> None:
    w = world()
    w.engine.place(1, 9, bull_put(), lmt("BUY", 1, "-0.90"))
    events = w.engine.cancel(1, 9)
    assert statuses(events) == ["Cancelled"]
    assert events[-1] == ErrorEvent(1, 9, 202, "Order Canceled - reason:")
    assert w.engine.open_orders() == [] and w.engine.completed_orders()[0].status == "Cancelled"
    again = w.engine.cancel(1, 9)
    assert errors(again) == [(9, 10148)] and "state: Cancelled" in again[0].message  # type: ignore[union-attr]
    assert errors(w.engine.cancel(1, 77)) == [(77, 10147)]
    assert errors(w.engine.cancel(2, 9)) == [(9, 10147)]  # orders are bound to their client


def test_pending_cancel_is_optional() -> None:
    w = world(pending_cancel_status=True)
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.90"))
    assert statuses(w.engine.cancel(1, 1)) == ["PendingCancel", "Cancelled"]


def test_partial_fill_then_cancel_leaves_the_filled_part() -> None:
    w = world(partial_fill_probability=1.0, partial_fill_max_fraction=0.5)
    events = w.engine.place(1, 3, bull_put(), lmt("BUY", 4, "-0.75"))
    record = next(e.record for e in reversed(events) if isinstance(e, StatusEvent))
    assert record.status == "Submitted" and 1 <= record.filled <= 2
    assert record.filled + record.remaining == 4
    filled = record.filled
    assert w.engine.step() == []  # the remainder rests (no new liquidity yet)
    cancelled = w.engine.cancel(1, 3)
    final = next(e.record for e in cancelled if isinstance(e, StatusEvent))
    assert (final.status, final.filled, final.remaining) == ("Cancelled", filled, 4 - filled)
    per_leg = {f.contract.conId: f.shares for f in w.engine.fills()}
    assert per_leg == {P486.conId: filled, P488.conId: filled}
    positions = {(p.contract.conId, p.quantity) for p in w.engine.positions()}
    assert positions == {(P486.conId, filled), (P488.conId, -filled)}


def test_cumulative_fill_across_modifications() -> None:
    w = world(partial_fill_probability=1.0, partial_fill_max_fraction=0.5)
    first = w.engine.place(1, 3, bull_put(), lmt("BUY", 6, "-0.75"))
    part = next(e.record for e in reversed(first) if isinstance(e, StatusEvent)).filled
    # A modify re-enters the book: the next piece fills, the total keeps counting.
    w.engine.place(1, 3, bull_put(), lmt("BUY", 6, "-0.74"))
    for _ in range(10):
        w.clock.advance(timedelta(seconds=6))
        w.engine.step()
    done = w.engine.completed_orders()[0]
    assert part < 6 and (done.status, done.filled, done.remaining) == ("Filled", D(6), D(0))
    assert sum(f.shares for f in w.engine.fills() if f.contract.conId == P488.conId) == 6
    assert -D("0.76") < done.avg_fill_price <= D("-0.75")


def test_pre_open_day_order_rests_until_the_open() -> None:
    w = world(at="09:00")
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75"))
    assert statuses(events) == ["PreSubmitted"]
    w.clock.set(ny("09:29:59"))
    assert w.engine.step() == []
    w.clock.set(ny("09:30"))
    events = w.engine.step()
    assert statuses(events) == ["Submitted", "Filled"]
    assert len(fills(events)) == 2


def test_day_orders_expire_at_the_close_gtc_orders_on_stock_do_not() -> None:
    w = world(at="15:59")
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.95"))
    w.engine.place(1, 2, STOCK, lmt("BUY", 10, "400.00", tif="GTC"))
    w.clock.set(ny("16:00"))
    events = w.engine.step()
    assert [(e.record.order_id, e.record.status) for e in events if isinstance(e, StatusEvent)] == [
        (1, "Cancelled")
    ]
    assert [r.order_id for r in w.engine.open_orders()] == [2]


def test_ioc_fills_what_it_can_at_once_and_cancels_the_rest() -> None:
    w = world()
    filled = w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75", tif="IOC"))
    assert statuses(filled) == ["Submitted", "Filled"]
    missed = w.engine.place(1, 2, bull_put(), lmt("BUY", 1, "-0.80", tif="IOC"))
    assert statuses(missed) == ["Submitted", "Cancelled"] and errors(missed) == []
    assert w.engine.open_orders() == []


def test_duplicate_id_of_a_done_order_is_103() -> None:
    w = world()
    w.engine.place(1, 4, bull_put(), lmt("BUY", 1, "-0.75"))
    assert errors(w.engine.place(1, 4, bull_put(), lmt("BUY", 1, "-0.75"))) == [(4, 103)]
    assert errors(w.engine.place(2, 4, bull_put(), lmt("BUY", 1, "-0.80"))) == []  # other client
    assert w.engine.next_valid_id() == 5


@pytest.mark.parametrize("price", ["-0.755", "0.001", "-1.2345"])
def test_price_off_the_penny_grid_is_110(price: str) -> None:
    w = world()
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 1, price))
    assert events == [
        ErrorEvent(
            1,
            1,
            110,
            "The price does not conform to the minimum price variation for this contract.",
        )
    ]
    assert w.engine.open_orders() == [] and w.engine.completed_orders() == []


def test_modify_to_a_bad_increment_is_refused_and_the_order_keeps_working() -> None:
    w = world()
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.80"))
    assert errors(w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.795"))) == [(1, 110)]
    (record,) = w.engine.open_orders(1)
    assert record.order.lmtPrice == -0.80 and record.status == "Submitted"
    assert errors(w.engine.place(1, 1, credit_as_sell(), lmt("BUY", 1, "-0.79"))) == [(1, 105)]


def test_configured_account_rejection_is_201_inactive() -> None:
    w = world(accounts=("DU1", "DU2"), rejections={"DU2": "Trading permissions missing"})
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75", account="DU2"))
    assert statuses(events) == ["Inactive"]
    assert events[-1] == ErrorEvent(
        1, 1, 201, "Order rejected - reason:Trading permissions missing"
    )
    assert w.engine.completed_orders()[0].status == "Inactive"
    assert statuses(w.engine.place(1, 2, bull_put(), lmt("BUY", 1, "-0.75", account="DU1"))) == [
        "Submitted",
        "Filled",
    ]


def test_margin_rejection_is_201_with_ibs_text() -> None:
    w = world(initial_cash_by_account={"DU1": D(100)})
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75"))
    assert statuses(events) == ["Inactive"]
    message = events[-1].message  # type: ignore[union-attr]
    assert message == (
        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
        "POSITION YOUR EQUITY WITH LOAN VALUE [250.00 USD] MUST EXCEED THE INITIAL MARGIN "
        "[400.00 USD]"
    )
    assert w.engine.positions() == []


def test_advisor_login_needs_an_account_436() -> None:
    w = world(accounts=("DU1", "DU2"))
    assert errors(w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75"))) == [(1, 436)]
    single = world(accounts=("DU9",))
    events = single.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75"))
    assert events[0].record.account == "DU9"  # type: ignore[union-attr]
    assert events[0].record.order.account == "DU9"  # type: ignore[union-attr]


def test_unknown_contract_and_zero_size() -> None:
    w = world()
    bag = Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[ComboLeg(conId=5, ratio=1)],
    )
    assert errors(w.engine.place(1, 1, bag, lmt("BUY", 1, "-0.75"))) == [(1, 200)]
    assert errors(w.engine.place(1, 2, bull_put(), lmt("BUY", 0, "-0.75"))) == [(2, 434)]
    stop = Order(action="BUY", totalQuantity=1, orderType="STP", auxPrice=1.0)
    assert errors(w.engine.place(1, 3, bull_put(), stop)) == [(3, 201)]


def test_option_without_con_id_is_resolved() -> None:
    w = world()
    unqualified = Contract(
        secType="OPT",
        symbol="QQQ",
        lastTradeDateOrContractMonth="20261124",
        strike=488.0,
        right="P",
    )
    events = w.engine.place(1, 1, unqualified, lmt("SELL", 1, "1.05"))
    assert fills(events) == [(P488.conId, "SLD", D("1.05"), D(1))]
    assert events[0].record.contract.conId == P488.conId  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- whatIf


def test_what_if_of_a_486_488_bull_put_times_two() -> None:
    w = world()
    order = lmt("BUY", 2, "-0.75", whatIf=True)
    (event,) = w.engine.place(1, 50, bull_put(), order)
    assert isinstance(event, WhatIfEvent)
    state = event.record.order_state
    assert (state.initMarginChange, state.maintMarginChange) == ("400.00", "400.00")
    assert (state.initMarginBefore, state.initMarginAfter) == ("0.00", "400.00")
    assert state.equityWithLoanChange == "150.00"  # the credit received
    assert state.equityWithLoanAfter == "100150.00"
    assert (state.commission, state.minCommission, state.maxCommission) == (2.6, 2.6, 2.6)
    assert state.commissionCurrency == "USD"
    # AvailableFunds falls by 400 - 150 = 250 (+ the 2.60 commission once filled).
    assert w.engine.open_orders() == [] and w.engine.completed_orders() == []
    assert w.engine.account_values("DU1")["AvailableFunds"] == ("100000.00", "USD")
    assert w.engine.place(1, 50, bull_put(), lmt("BUY", 2, "-0.75"))[0].record.status == "Submitted"  # type: ignore[union-attr]
    values = w.engine.account_values("DU1")
    assert values["AvailableFunds"][0] == "99747.40"
    assert values["InitMarginReq"][0] == "400.00"
    assert values["BuyingPower"][0] == "398989.60"


def test_what_if_can_answer_incomplete_first() -> None:
    w = world(whatif_incomplete_first=True, commission_minimum_per_order=D("5.00"))
    first, second = w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75", whatIf=True))
    assert first.record.order_state.initMarginChange == "1.7976931348623157E308"  # type: ignore[union-attr]
    assert first.record.order_state.commission == UNSET_DOUBLE  # type: ignore[union-attr]
    assert second.record.order_state.commission == 5.0  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- executions, accounts


def test_executions_per_leg_carry_the_combo_order_ref_and_commission() -> None:
    w = world()
    events = w.engine.place(3, 11, bull_put(), lmt("BUY", 2, "-0.75", ref="SP-20261124-DU1"))
    legs = [e.fill for e in events if isinstance(e, FillEvent)]
    perm = legs[0].execution.permId
    assert [(f.contract.conId, f.execution.side) for f in legs] == [
        (P486.conId, "BOT"),
        (P488.conId, "SLD"),
    ]
    for f in legs:
        ex = f.execution
        assert (ex.orderRef, ex.permId, ex.clientId, ex.orderId) == ("SP-20261124-DU1", perm, 3, 11)
        assert (ex.acctNumber, ex.shares, ex.cumQty) == ("DU1", 2.0, 2.0)
        assert f.commission.execId == ex.execId and f.commission.commission == 1.3
        assert f.commission.realizedPNL == UNSET_DOUBLE  # opening trades realise nothing
    assert len({f.execution.execId for f in legs}) == 2
    assert [f.execution.execId for f in w.engine.fills("DU1")] == [f.execution.execId for f in legs]
    # IB's avgCost: per contract x 100, commission included.
    assert {(p.contract.conId, p.quantity, p.avg_cost) for p in w.engine.positions()} == {
        (P486.conId, D(2), D("30.65")),
        (P488.conId, D(-2), D("104.35")),
    }
    assert w.engine.account_values("DU1")["TotalCashValue"][0] == "100147.40"


def test_combo_summary_execution_is_optional() -> None:
    w = world(combo_summary_execution=True)
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75"))
    kinds = [(e.fill.contract.secType, e.fill.price) for e in events if isinstance(e, FillEvent)]
    assert kinds == [("BAG", D("-0.75")), ("OPT", D("0.30")), ("OPT", D("1.05"))]
    assert [p.contract.secType for p in w.engine.positions()] == ["OPT", "OPT"]


def test_closing_realises_pnl_net_of_both_commissions() -> None:
    w = world()
    w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75"))
    w.quotes.set(P486, "0.01", "0.02")
    w.quotes.set(P488, "0.05", "0.06")
    events = w.engine.place(1, 2, bull_put(), lmt("SELL", 2, "-0.05"))  # buy back for 0.05 debit
    assert statuses(events) == ["Submitted", "Filled"]
    # Domain worked example: 150.00 - 10.00 - 2.60 - 2.60 = 134.80.
    daily, unrealized, realized = w.engine.pnl("DU1")
    assert (daily, unrealized, realized) == (D("134.80"), D(0), D("134.80"))
    reports = [e.fill.commission.realizedPNL for e in events if isinstance(e, FillEvent)]
    assert sum(reports) == pytest.approx(134.80)
    assert w.engine.positions() == []


def test_unrealised_pnl_from_mid_marks() -> None:
    w = world()
    w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75"))
    # Marks at the mid: long 0.29 x 200 - 61.30, short -(1.06 x 200) + 208.70.
    _, unrealized, realized = w.engine.pnl("DU1")
    assert (unrealized, realized) == (D("58.00") - D("61.30") - D("212.00") + D("208.70"), D(0))
    values = w.engine.account_values("DU1")
    assert values["NetLiquidation"][0] == "99993.40"  # cash 100147.40 + 58 - 212
    assert values["EquityWithLoanValue"][0] == "100147.40"  # US options excluded


def test_several_accounts_are_kept_apart() -> None:
    w = world(accounts=("DU1", "DU2"), initial_cash_by_account={"DU2": D(50_000)})
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75", account="DU1"))
    w.engine.place(1, 2, bull_put(), lmt("BUY", 3, "-0.75", account="DU2"))
    assert {p.account: abs(p.quantity) for p in w.engine.positions()} == {"DU1": 1, "DU2": 3}
    assert len(w.engine.fills("DU2")) == 2 and len(w.engine.fills()) == 4
    assert w.engine.account_values("DU2")["InitMarginReq"][0] == "600.00"
    assert w.engine.account_values("DU2")["TotalCashValue"][0] == "50221.10"


def test_reconnect_replays_the_day_by_order_ref() -> None:
    w = world()
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75", ref="A"))
    w.engine.place(1, 2, bull_put(), lmt("BUY", 1, "-0.90", ref="B"))
    w.engine.place(2, 1, bull_put(), lmt("BUY", 1, "-0.91", ref="C"))
    w.engine.place(1, 3, bull_put(), lmt("BUY", 1, "-0.92", ref="D"))
    w.engine.cancel(1, 3)
    # A later connection sees the same state, whatever happened in between.
    assert [r.order_ref for r in w.engine.open_orders(1)] == ["B"]
    assert [r.order_ref for r in w.engine.open_orders(None)] == ["B", "C"]
    assert [(r.order_ref, r.status) for r in w.engine.completed_orders()] == [
        ("A", "Filled"),
        ("D", "Cancelled"),
    ]
    assert {f.execution.orderRef for f in w.engine.fills()} == {"A"}
    perms = [r.perm_id for r in w.engine.open_orders()]
    assert perms == sorted(perms) and len(set(perms)) == 2


def test_queries_do_not_lose_events() -> None:
    w = world(at="09:29")
    w.engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.75"))
    w.clock.set(ny("09:31"))
    assert w.engine.positions() != []  # the query brought the book to the clock...
    assert statuses(w.engine.step()) == ["Submitted", "Filled"]  # ...its events still arrive


# ----------------------------------------------------------------------------- improvement


WIDE = {P486.conId: ("0.25", "0.35"), P488.conId: ("1.04", "1.16")}
"""Wider quotes: natural -0.69 (0.35 - 1.04), mid -0.80 (0.30 - 1.10)."""


def improved(seed: int, **config: Any) -> tuple[Decimal, dict[int, Decimal]]:
    """Fill a marketable BUY of the bull put on WIDE quotes: (combo price, leg prices)."""
    instruments = Instruments()
    quotes = Quotes(instruments)
    quotes.set(STOCK, "490", "490.02")
    quotes.set(P486, *WIDE[P486.conId])
    quotes.set(P488, *WIDE[P488.conId])
    clock = SimClock(ny("10:00"))
    engine = Engine(
        clock,
        quotes,
        instruments,
        ["DU1"],
        EngineConfig(**{"combo_summary_execution": False, **config}),
        CAL,
        seed=seed,
    )
    events = engine.place(1, 1, bull_put(), lmt("BUY", 1, "-0.65"))
    return engine.completed_orders()[0].avg_fill_price, {f[0]: f[2] for f in fills(events)}


def improved_fill(seed: int, **config: Any) -> Decimal:
    return improved(seed, **config)[0]


def test_no_improvement_by_default() -> None:
    assert {improved_fill(seed) for seed in range(20)} == {D("-0.69")}


def test_improvement_is_seeded_and_stops_short_of_the_mid() -> None:
    prices = [improved_fill(seed, improvement_probability=1.0) for seed in range(40)]
    assert all(D("-0.80") < p < D("-0.69") for p in prices)  # better than natural, not at mid
    assert len(set(prices)) > 3
    assert prices == [improved_fill(seed, improvement_probability=1.0) for seed in range(40)]


def test_improvement_may_reach_the_mid_when_allowed() -> None:
    config = {"improvement_probability": 1.0, "improvement_allow_mid": True}
    prices = {improved_fill(seed, **config) for seed in range(80)}
    assert D("-0.80") in prices and all(D("-0.80") <= p < D("-0.69") for p in prices)


def test_improvement_leg_prices_sum_to_the_combo_price() -> None:
    for seed in range(10):
        combo, legs = improved(seed, improvement_probability=1.0)
        assert legs[P486.conId] - legs[P488.conId] == combo
        assert D("0.25") <= legs[P486.conId] <= D("0.35")
        assert D("1.04") <= legs[P488.conId] <= D("1.16")


# ----------------------------------------------------------------------------- expiry


def sold_spread(w: World) -> None:
    """Bull put 486/488 x2 at 0.75 credit (long 486 avg 30.65, short 488 avg 104.35)."""
    events = w.engine.place(1, 1, bull_put(), lmt("BUY", 2, "-0.75"))
    assert statuses(events)[-1] == "Filled"


def test_itm_short_put_is_assigned_into_stock_only_after_the_close() -> None:
    w = world(at="15:00")
    sold_spread(w)
    w.quotes.set(STOCK, "486.99", "487.01", "487.00")  # between the strikes at the close
    w.clock.set(ny("15:59:59"))
    w.engine.step()
    assert {p.contract.secType for p in w.engine.positions()} == {"OPT"}  # still the options
    w.clock.set(ny("16:00"))
    w.engine.step()
    (stock,) = w.engine.positions()
    assert (stock.contract.conId, stock.quantity, stock.avg_cost) == (STOCK.conId, D(200), D(488))
    changes = [(c.contract.conId, c.kind, c.quantity) for c in w.engine.position_changes("DU1")]
    assert changes == [
        (P486.conId, "EXPIRED", D(-2)),
        (P488.conId, "ASSIGNED", D(2)),
        (STOCK.conId, "ASSIGNMENT_DELIVERY", D(200)),
    ]
    assert w.engine.settlement_price(DAY) == D("487.00")
    # The options' premium is realised: 208.70 - 61.30; the stock is an open position.
    assert w.engine.pnl("DU1")[2] == D("147.40")
    assert w.engine.fills() and all(f.contract.secType == "OPT" for f in w.engine.fills())


def test_otm_spread_expires_worthless() -> None:
    w = world(at="15:00")
    sold_spread(w)
    w.clock.set(ny("16:00:01"))
    w.engine.step()
    assert w.engine.positions() == []
    assert [c.kind for c in w.engine.position_changes()] == ["EXPIRED", "EXPIRED"]
    assert w.engine.pnl("DU1")[2] == D("147.40")  # domain: 0.75 x 100 x 2 - 4 x 0.65
    assert w.engine.account_values("DU1")["TotalCashValue"][0] == "100147.40"


def test_both_legs_in_the_money_is_the_max_loss() -> None:
    w = world(at="15:00")
    sold_spread(w)
    w.quotes.set(STOCK, "484.99", "485.01", "485.00")
    w.clock.set(ny("16:00"))
    w.engine.step()
    assert w.engine.positions() == []  # 200 bought at 488, 200 sold at 486
    assert w.engine.pnl("DU1")[2] == D("-252.60")  # domain: 400 - 150 + 2.60


def test_one_cent_in_the_money_is_exercised_less_is_not() -> None:
    w = world(at="15:00")
    w.engine.place(1, 1, C490, lmt("BUY", 1, "1.54"))
    w.engine.place(1, 2, C492, lmt("BUY", 1, "0.62"))
    w.quotes.set(STOCK, "491.99", "491.99", "491.99")  # 490C 1.99 ITM, 492C 0.01 OTM
    w.clock.set(ny("16:00"))
    w.engine.step()
    assert [(c.contract.conId, c.kind) for c in w.engine.position_changes()] == [
        (C490.conId, "EXERCISED"),
        (STOCK.conId, "EXERCISE_DELIVERY"),
        (C492.conId, "EXPIRED"),
    ]
    w2 = world(at="15:00")
    w2.engine.place(1, 1, C490, lmt("BUY", 1, "1.54"))
    w2.quotes.set(STOCK, "490.01", "490.01", "490.01")
    w2.clock.set(ny("16:00"))
    w2.engine.step()
    assert [p.quantity for p in w2.engine.positions()] == [100]


def test_early_close_settles_at_13_00() -> None:
    p, s = option(486, "P", EARLY), option(488, "P", EARLY)
    w = world(at="12:00", day=EARLY, instruments=Instruments(p, s))
    w.quotes.set(p, "0.28", "0.30")
    w.quotes.set(s, "1.05", "1.07")
    w.quotes.set(STOCK, "479.99", "480.01", "480.00")
    w.engine.place(1, 1, bull_put(p, s), lmt("BUY", 1, "-0.75"))
    w.clock.set(ny("13:00", EARLY))
    w.engine.step()
    assert w.engine.positions() == []
    assert [c.kind for c in w.engine.position_changes()] == [
        "EXERCISED",
        "EXERCISE_DELIVERY",
        "ASSIGNED",
        "ASSIGNMENT_DELIVERY",
    ]


def test_settlement_delay_keeps_options_visible_until_booked() -> None:
    w = world(at="15:00", settlement_delay_seconds=3600 * 9)
    sold_spread(w)
    w.quotes.set(STOCK, "486.99", "487.01", "487.00")
    w.clock.set(ny("20:00"))
    assert {p.contract.secType for p in w.engine.positions()} == {"OPT"}
    w.clock.set(ny("08:30", DAY + timedelta(days=1)))
    assert [p.contract.secType for p in w.engine.positions()] == ["STK"]


def test_next_day_releases_ids_and_restarts_daily_pnl() -> None:
    w = world(at="15:00")
    sold_spread(w)
    w.clock.set(ny("09:00", DAY + timedelta(days=1)))
    w.engine.step()
    assert w.engine.pnl("DU1") == (D(0), D(0), D(0))
    assert w.engine.fills() == [] and w.engine.completed_orders() == []
    assert errors(w.engine.place(1, 1, STOCK, lmt("BUY", 1, "400.00"))) == []


# ----------------------------------------------------------------------------- margin model


def holding(contract: Contract, quantity: int) -> Holding:
    return Holding(contract, D(quantity), D(0))


@pytest.mark.parametrize(
    ("book", "expected"),
    [
        ([(P486, 2), (P488, -2)], D(400)),  # credit vertical: width x 100 x qty
        ([(P486, -2), (P488, 2)], D(0)),  # debit vertical: paid in full
        ([(C490, -1), (C492, 1)], D(200)),  # bear call
        ([(P486, 1), (P488, -2)], D(200) + D("9706.00")),  # one naked 488P
    ],
)
def test_option_requirement(book: list[tuple[Contract, int]], expected: Decimal) -> None:
    marks = {P486.conId: D("0.29"), P488.conId: D("1.06"), C490.conId: D("1.52")}
    holdings = [holding(c, q) for c, q in book]
    req = requirement(holdings, lambda c: marks.get(c.conId), D(490), MarginParams())
    # naked 488P, 2 out of the money: max(1.06 + 0.2 x 490 - 2, 1.06 + 0.1 x 488) x 100 = 9,706
    assert req.initial == req.maintenance == expected


def test_account_trade_bookkeeping() -> None:
    acct = Account("DU1", D(1000))
    assert acct.trade(P488, D(-2), D("1.05"), D("1.30")) is None
    assert acct.holdings[P488.conId].avg_cost == D("104.35")
    assert acct.trade(P488, D(3), D("0.10"), D("1.95")) == D("208.70") - D(20) - D("1.30")
    flipped = acct.holdings[P488.conId]
    assert (flipped.quantity, flipped.avg_cost) == (D(1), D("10.65"))
