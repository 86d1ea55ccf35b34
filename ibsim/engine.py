"""Order and account engine of the simulated IB Gateway: pure, no sockets, no threads.

Time comes only from the injected clock, prices only from the quote book, every
random choice from one seeded `random.Random`, so a scenario replays exactly.
Mutations (`place`, `cancel`, `global_cancel`, `step`) return the events the
server turns into wire messages; queries replay the day's state so a client can
reconcile after a reconnect. Queries bring the state to the clock too; the
events that produces are kept and returned by the next mutation or `step`.

IB behaviour reproduced, and the codes chosen (message texts as IB sends them):

- Combo price = sum over legs of ratio x leg price, signed by the leg action
  (BUY +, SELL -). A buy of the BAG fills when its limit >= the natural price
  sum(BUY legs ask) - sum(SELL legs bid); a sell when its limit <= sum(BUY legs
  bid) - sum(SELL legs ask). The fill is at the natural price (a marketable
  limit, e.g. a credit sent with the wrong sign, fills *at the market*, not at
  its limit), unless price improvement applies (seeded, `improvement_probability`):
  then strictly between natural and mid (`improvement_allow_mid` admits the mid).
- 110 "The price does not conform to the minimum price variation for this
  contract." for a limit off the $0.01 grid (new order: not accepted; modify:
  refused, the order keeps working at its old price).
- 103 "Duplicate order id" when (clientId, orderId) belongs to an order that is
  done today (ids are released at New York midnight, as by the nightly restart).
- 201 "Order rejected - reason:<reason>" (no space after the colon, as IB) with
  status Inactive: a configured account rejection, or margin with IB's text
  "YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR
  EQUITY WITH LOAN VALUE [x USD] MUST EXCEED THE INITIAL MARGIN [y USD]"
  (post-trade figures), and orders the simulator does not support. A whatIf is
  answered for a rejected account too (the rejection is for routed orders).
- 436 "You must specify an allocation (either a single account, group, or
  profile)." when several accounts are managed and the order names none (what
  IB returns on advisor / multi-account logins; 435 is for single-account-only
  requests, 321 is IB's generic validation error).
- 202 "Order Canceled - reason:" after the orderStatus Cancelled of a cancel
  (the order IB 10.x sends them in). Cancel of an unknown id: 10147 "OrderId N
  that needs to be cancelled is not found." (what gateways 10.x send; 135 is
  the pre-10 code); of a done order: 10148 "OrderId N that needs to be
  cancelled cannot be cancelled, state: <status>.".
- 200 "No security definition has been found for the request" for an unknown
  contract or leg; 434 "The order size cannot be zero."; on a modify, 105
  "Order being modified does not match original order." (other contract,
  action or account) and 321 for other refused changes: both leave the order
  live, as ib_async expects for modify errors.
- DAY orders placed outside the session rest PreSubmitted and go Submitted at
  the open; at the close they expire (orderStatus Cancelled, no 202). IOC fills
  what it can at once and cancels the rest.
- whatIf: never a working order; its OrderState carries before/change/after of
  init/maint margin and equity with loan (text, 2 decimals), and the commission
  estimate commission_per_contract x contracts x legs (>= the per-order
  minimum) as commission = minCommission = maxCommission. Bull put 486/488 x2
  at -0.75: initMarginChange = maintMarginChange "400.00", equityWithLoanChange
  "150.00" (the credit; US options are not in ELV), commission 2.60. Once
  filled, AvailableFunds has fallen by 400 - 150 + 2.60 = 252.60.
- Fills are tried when an order arrives or is modified, and on every `step`
  at a new instant (quotes are a function of time, so a rescan at the same
  instant would find nothing new). A partial fill (seeded probability and
  fraction) leaves the remainder resting `partial_fill_rest_seconds` or until
  a modify; filled/remaining accumulate across modifications.
- Expiry: at the session close (+ `settlement_delay_seconds`) every option
  expiring that day settles against the underlying's price at the close:
  >= $0.01 in the money is exercised (long) / assigned (short) into 100 shares
  per contract at the strike, otherwise it expires worthless. Only then do
  positions show the stock instead of the options. These are not executions
  (IB reports none): they are in `position_changes()`.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Protocol

from ib_async import CommissionReport, Contract, ContractDetails, Execution, Order, OrderState
from ib_async.util import UNSET_DOUBLE
from pydantic import BaseModel, ConfigDict, Field

from ibsim.accounts import (
    CENT,
    ZERO,
    Account,
    Holding,
    MarginParams,
    PositionChange,
    Valuation,
    expiry_of,
    money,
    multiplier,
    right_of,
    to_decimal,
)
from spreadpilot.domain.calendar import NEW_YORK, Session, ny_date, ny_datetime
from spreadpilot.ports.clock import Clock

__all__ = [
    "Engine",
    "EngineConfig",
    "ErrorEvent",
    "Event",
    "Fill",
    "FillEvent",
    "InitialPosition",
    "OpenOrderEvent",
    "OrderRecord",
    "PortfolioItem",
    "Position",
    "PositionChange",
    "StatusEvent",
    "WhatIfEvent",
]

UNSET_TEXT = "1.7976931348623157E308"
"""IB's max-double sentinel as text: what an incomplete whatIf answer carries."""

MSG_DUPLICATE = "Duplicate order id"
MSG_PRICE_VARIATION = "The price does not conform to the minimum price variation for this contract."
MSG_REJECTED = "Order rejected - reason:"
MSG_CANCELLED = "Order Canceled - reason:"
MSG_ALLOCATION = "You must specify an allocation (either a single account, group, or profile)."
MSG_NO_SECURITY = "No security definition has been found for the request"
MSG_SIZE_ZERO = "The order size cannot be zero."
MSG_MODIFY_MISMATCH = "Order being modified does not match original order."


# ----------------------------------------------------------------------------- interfaces


class QuoteLike(Protocol):
    """What the engine reads of ibsim.market.Quote."""

    @property
    def bid(self) -> Decimal: ...

    @property
    def ask(self) -> Decimal: ...

    @property
    def last(self) -> Decimal: ...


class QuoteSource(Protocol):
    """ibsim.market.QuoteBook: the engine's only price source."""

    def quote(self, con_id: int, at: datetime) -> QuoteLike | None: ...


class InstrumentSource(Protocol):
    """ibsim.instruments.Instruments, as far as the engine uses it."""

    def stock(self) -> Contract: ...

    def by_con_id(self, con_id: int) -> Contract | None: ...

    def resolve(self, contract: Contract) -> list[ContractDetails]: ...


class CalendarSource(Protocol):
    """spreadpilot.domain.calendar.MarketCalendar, as far as the engine uses it."""

    def session(self, day: date) -> Session | None: ...


# ----------------------------------------------------------------------------- config


class InitialPosition(BaseModel):
    """A position an account holds when the engine starts (e.g. yesterday's assignment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str
    con_id: int
    quantity: Decimal
    avg_cost: Decimal = Field(description="IB avgCost: per unit x multiplier")


class EngineConfig(BaseModel):
    """Behaviour of the order/account engine; the defaults are IB's plain case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    improvement_probability: float = Field(
        0.0, ge=0.0, le=1.0, description="chance a fill is better than the natural price"
    )
    improvement_allow_mid: bool = Field(False, description="improvement may reach the mid")
    partial_fill_probability: float = Field(
        0.0, ge=0.0, le=1.0, description="chance a marketable order fills only partly"
    )
    partial_fill_max_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="largest share of the remainder a partial fill takes"
    )
    partial_fill_rest_seconds: float = Field(
        5.0, ge=0.0, description="after a partial fill the remainder waits this long (or a modify)"
    )
    commission_per_contract: Decimal = Field(Decimal("0.65"), description="options, per contract")
    commission_minimum_per_order: Decimal = Field(Decimal(0), description="options, per order")
    stock_commission_per_share: Decimal = Decimal("0.005")
    stock_commission_minimum: Decimal = Field(Decimal("1.00"), description="stock, per order")
    initial_cash: Decimal = Field(Decimal(100_000), description="cash of every account at start")
    initial_cash_by_account: dict[str, Decimal] = Field(default_factory=dict)
    initial_positions: list[InitialPosition] = Field(default_factory=list)
    rejections: dict[str, str] = Field(
        default_factory=dict, description="account -> reason: its orders get 201 + Inactive"
    )
    price_increment: Decimal = Field(Decimal("0.01"), description="limit price grid (110)")
    check_margin: bool = Field(True, description="reject (201) orders above AvailableFunds")
    naked_option_rate: Decimal = Decimal("0.20")
    naked_option_min_rate: Decimal = Decimal("0.10")
    stock_initial_margin_rate: Decimal = Decimal("0.50")
    stock_maintenance_margin_rate: Decimal = Decimal("0.25")
    short_stock_maintenance_margin_rate: Decimal = Decimal("0.30")
    buying_power_multiplier: Decimal = Field(
        Decimal(4), description="BuyingPower = AvailableFunds x this (Reg T margin account)"
    )
    exercise_threshold: Decimal = Field(
        Decimal("0.01"), description="in-the-money amount from which options are exercised"
    )
    settlement_delay_seconds: float = Field(
        0.0, ge=0.0, description="expiry booking this long after the close (IB: overnight)"
    )
    execution_exchanges: list[str] = Field(
        default_factory=lambda: ["CBOE", "ISE", "PHLX", "BOX", "AMEX", "MIAX"],
        description="exchanges reported in executions (seeded choice per fill)",
    )
    combo_summary_execution: bool = Field(
        True,
        description="also report the BAG-level execution IB sends per combo fill, besides one "
        "per leg (ib_async's Trade.filled() counts only that one)",
    )
    pending_cancel_status: bool = Field(
        False, description="send orderStatus PendingCancel before Cancelled"
    )
    whatif_incomplete_first: bool = Field(
        False, description="answer whatIf twice: first with unset margin fields, as IB may"
    )
    report_closed_positions: bool = Field(
        False, description="list positions closed today with quantity 0"
    )
    first_perm_id: int | None = Field(None, description="None: drawn from the seed")

    def margin_params(self) -> MarginParams:
        return MarginParams(
            naked_option_rate=self.naked_option_rate,
            naked_option_min_rate=self.naked_option_min_rate,
            stock_initial_rate=self.stock_initial_margin_rate,
            stock_maintenance_rate=self.stock_maintenance_margin_rate,
            short_stock_maintenance_rate=self.short_stock_maintenance_margin_rate,
        )


# ----------------------------------------------------------------------------- records


@dataclass
class OrderRecord:
    """One order as IB reports it in openOrder/orderStatus/completedOrder."""

    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    order: Order  # as received, with orderId/clientId/permId/account filled in
    order_state: OrderState
    status: str
    filled: Decimal = ZERO
    remaining: Decimal = ZERO
    avg_fill_price: Decimal = ZERO
    last_fill_price: Decimal = ZERO
    why_held: str = ""
    account: str = ""
    placed_at: datetime | None = None
    completed_at: datetime | None = None
    commission: Decimal = ZERO  # charged so far

    @property
    def order_ref(self) -> str:
        return self.order.orderRef


@dataclass(frozen=True)
class Fill:
    """One execution: the leg's contract, IB's Execution and CommissionReport."""

    contract: Contract
    execution: Execution
    commission: CommissionReport
    price: Decimal = ZERO  # exact price of the execution
    shares: Decimal = ZERO
    commission_amount: Decimal = ZERO

    @property
    def account(self) -> str:
        return self.execution.acctNumber


@dataclass(frozen=True)
class Position:
    account: str
    contract: Contract
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class PortfolioItem:
    """A row of IB's updatePortfolio."""

    account: str
    contract: Contract
    position: Decimal
    market_price: Decimal
    market_value: Decimal
    avg_cost: Decimal
    unrealized: Decimal
    realized: Decimal


@dataclass(frozen=True)
class OpenOrderEvent:
    record: OrderRecord


@dataclass(frozen=True)
class StatusEvent:
    record: OrderRecord


@dataclass(frozen=True)
class FillEvent:
    record: OrderRecord
    fill: Fill


@dataclass(frozen=True)
class ErrorEvent:
    client_id: int
    req_id: int
    code: int
    message: str
    advanced: str = ""


@dataclass(frozen=True)
class WhatIfEvent:
    record: OrderRecord


Event = OpenOrderEvent | StatusEvent | FillEvent | ErrorEvent | WhatIfEvent


# ----------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Leg:
    contract: Contract
    ratio: int
    sign: int  # +1 BUY leg, -1 SELL leg (1 for a single contract)


@dataclass(frozen=True)
class _Parsed:
    """A validated order: or the reason IB would reject it (201)."""

    account: str
    contract: Contract  # echoed in openOrder
    legs: tuple[_Leg, ...]
    side: int  # +1 BUY, -1 SELL
    quantity: Decimal
    order_type: str
    limit: Decimal | None
    tif: str
    reject: str | None = None
    book_key: tuple[int, tuple[tuple[int, int, int], ...]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Orders with the same key share one natural price at a given moment.
        key = self.side, tuple((leg.contract.conId, leg.ratio, leg.sign) for leg in self.legs)
        object.__setattr__(self, "book_key", key)


@dataclass
class _Order:
    record: OrderRecord
    parsed: _Parsed
    seq: int
    rest_until: datetime | None = None
    leg_filled: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (shares, value)
    fill_value: Decimal = ZERO


@dataclass(frozen=True)
class _Book:
    bid: Decimal
    ask: Decimal


def _snap(record: OrderRecord) -> OrderRecord:
    """A copy for an event, so later changes do not show in events already made."""
    return dataclasses.replace(record, order_state=dataclasses.replace(record.order_state))


def _ib_time(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S America/New_York")


# ----------------------------------------------------------------------------- engine


class Engine:
    """Orders, fills, accounts and expiry of one gateway (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        quotes: QuoteSource,
        instruments: InstrumentSource,
        accounts: list[str],
        config: EngineConfig | None = None,
        calendar: CalendarSource | None = None,
        seed: int = 0,
    ) -> None:
        if not accounts:
            raise ValueError("an engine needs at least one account")
        if calendar is None:
            from spreadpilot.domain.calendar import MarketCalendar

            calendar = MarketCalendar()
        self._clock = clock
        self._quotes = quotes
        self._instruments = instruments
        self._calendar = calendar
        self.config = config or EngineConfig()
        self._params = self.config.margin_params()
        self._rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not crypto
        self._exec_prefix = f"{self._rng.getrandbits(32):08x}"
        self._next_perm = self.config.first_perm_id or self._rng.randint(100_000_000, 199_999_999)
        self._accounts: dict[str, Account] = {
            name: Account(
                name, self.config.initial_cash_by_account.get(name, self.config.initial_cash)
            )
            for name in accounts
        }
        for pos in self.config.initial_positions:
            contract = instruments.by_con_id(pos.con_id)
            if pos.account not in self._accounts or contract is None:
                raise ValueError(f"initial position {pos}: unknown account or conId")
            self._accounts[pos.account].holdings[pos.con_id] = Holding(
                contract, pos.quantity, pos.avg_cost
            )
        self._orders: dict[tuple[int, int], _Order] = {}  # working orders
        self._done: list[OrderRecord] = []
        self._done_ids: set[tuple[int, int]] = set()
        self._max_order_id = 0
        self._seq = 0
        self._exec_seq = 0
        self._fills: list[Fill] = []
        self._changes: list[PositionChange] = []
        self._settlements: dict[date, Decimal | None] = {}
        self._sessions: dict[date, Session | None] = {}
        self._marks: dict[int, Decimal] = {}
        self._pending: list[Event] = []
        self._cursor = clock.now()
        self._scanned_at: datetime | None = None

    # ------------------------------------------------------------------ mutations

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    def place(self, client_id: int, order_id: int, contract: Contract, order: Order) -> list[Event]:
        """placeOrder: a new order, a modify of a working one, or a whatIf."""
        events = self._drain()
        key = (client_id, order_id)
        if order.whatIf:
            return events + self._what_if(client_id, order_id, contract, order)
        working = self._orders.get(key)
        if working is not None:
            return events + self._modify(working, contract, order)
        if key in self._done_ids:
            return [*events, ErrorEvent(client_id, order_id, 103, MSG_DUPLICATE)]
        return events + self._new(client_id, order_id, contract, order)

    def cancel(self, client_id: int, order_id: int) -> list[Event]:
        """cancelOrder: only the placing client's (clientId, orderId) is found."""
        events = self._drain()
        working = self._orders.get((client_id, order_id))
        if working is not None:
            return events + self._cancel(working, api=True)
        done = next(
            (r for r in reversed(self._done) if (r.client_id, r.order_id) == (client_id, order_id)),
            None,
        )
        if done is not None:
            text = (
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                f"state: {done.status}."
            )
            return [*events, ErrorEvent(client_id, order_id, 10148, text)]
        text = f"OrderId {order_id} that needs to be cancelled is not found."
        return [*events, ErrorEvent(client_id, order_id, 10147, text)]

    def global_cancel(self) -> list[Event]:
        """reqGlobalCancel: every working order of every client."""
        events = self._drain()
        for working in list(self._orders.values()):
            events += self._cancel(working, api=True)
        return events

    def step(self) -> list[Event]:
        """Bring the state to clock.now(): session open, fills, close, expiry."""
        return self._drain()

    # ------------------------------------------------------------------ queries

    def next_valid_id(self) -> int:
        """An order id above every id seen today (IB's nextValidId)."""
        return self._max_order_id + 1

    def open_orders(self, client_id: int | None = None) -> list[OrderRecord]:
        """Working orders of one client, or of all when client_id is None."""
        self._sync()
        return [
            _snap(o.record)
            for o in self._orders.values()
            if client_id is None or o.record.client_id == client_id
        ]

    def completed_orders(self) -> list[OrderRecord]:
        """Orders done today (Filled, Cancelled, Inactive), oldest first."""
        self._sync()
        since = self._day_start()
        return [_snap(r) for r in self._done if r.completed_at and r.completed_at >= since]

    def fills(self, account: str | None = None) -> list[Fill]:
        """Today's executions (per combo leg), of one account or all."""
        self._sync()
        since = self._day_start()
        return [
            f
            for f in self._fills
            if f.execution.time >= since and (account is None or f.account == account)
        ]

    def position_changes(self, account: str | None = None) -> list[PositionChange]:
        """Expiries, exercises, assignments and the stock they delivered (all days)."""
        self._sync()
        return [c for c in self._changes if account is None or c.account == account]

    def settlement_price(self, day: date) -> Decimal | None:
        """The underlying price the expiry of `day` was decided with (None: not yet/none)."""
        self._sync()
        return self._settlements.get(day)

    def positions(self) -> list[Position]:
        self._sync()
        out: list[Position] = []
        for name, account in self._accounts.items():
            for h in account.holdings.values():
                if h.quantity != 0 or self.config.report_closed_positions:
                    out.append(Position(name, h.contract, h.quantity, h.avg_cost))
        return out

    def portfolio(self, account: str) -> list[PortfolioItem]:
        """updatePortfolio rows of one account, marked at the mid."""
        self._sync()
        acct = self._account(account)
        rows = []
        for h in acct.holdings.values():
            if h.quantity == 0 and not self.config.report_closed_positions:
                continue
            mark = self._mark(h.contract)
            mult = multiplier(h.contract)
            price = mark if mark is not None else (h.avg_cost / mult if h.quantity else ZERO)
            value = h.quantity * price * mult
            rows.append(
                PortfolioItem(
                    account,
                    h.contract,
                    h.quantity,
                    price,
                    value,
                    h.avg_cost,
                    value - h.quantity * h.avg_cost,
                    h.realized,
                )
            )
        return rows

    def account_values(self, account: str) -> dict[str, tuple[str, str]]:
        """IB account tags -> (value, currency), as reqAccountSummary/updates report them."""
        self._sync()
        acct = self._account(account)
        v = self._valuation(acct)
        available = v.available_funds
        cushion = v.excess_liquidity / v.net_liquidation if v.net_liquidation else ZERO
        leverage = v.gross_position_value / v.net_liquidation if v.net_liquidation else ZERO
        usd = {
            "NetLiquidation": v.net_liquidation,
            "TotalCashValue": v.cash,
            "SettledCash": v.cash,
            "AccruedCash": ZERO,
            "BuyingPower": max(ZERO, available * self.config.buying_power_multiplier),
            "EquityWithLoanValue": v.equity_with_loan,
            "PreviousDayEquityWithLoanValue": v.equity_with_loan,
            "GrossPositionValue": v.gross_position_value,
            "StockMarketValue": v.stock_value,
            "OptionMarketValue": v.option_value,
            "RegTEquity": v.equity_with_loan,
            "RegTMargin": v.initial_margin,
            "SMA": max(ZERO, available),
            "InitMarginReq": v.initial_margin,
            "MaintMarginReq": v.maintenance_margin,
            "AvailableFunds": available,
            "ExcessLiquidity": v.excess_liquidity,
            "FullInitMarginReq": v.initial_margin,
            "FullMaintMarginReq": v.maintenance_margin,
            "FullAvailableFunds": available,
            "FullExcessLiquidity": v.excess_liquidity,
            "LookAheadInitMarginReq": v.initial_margin,
            "LookAheadMaintMarginReq": v.maintenance_margin,
            "LookAheadAvailableFunds": available,
            "LookAheadExcessLiquidity": v.excess_liquidity,
            "UnrealizedPnL": v.unrealized,
            "RealizedPnL": acct.realized_today,
        }
        values = {tag: (money(amount), "USD") for tag, amount in usd.items()}
        values["Cushion"] = (str(cushion.quantize(Decimal("0.000001"))), "")
        values["Leverage"] = (str(leverage.quantize(Decimal("0.01"))), "")
        values["DayTradesRemaining"] = ("-1", "")
        values["AccountType"] = ("INDIVIDUAL", "")
        values["AccountCode"] = (account, "")
        values["Currency"] = ("USD", "USD")
        return values

    def pnl(self, account: str) -> tuple[Decimal, Decimal, Decimal]:
        """(daily, unrealized, realized) as reqPnL reports them; realised is net of
        commissions and includes today's expiries and assignments."""
        self._sync()
        acct = self._account(account)
        unrealized = self._valuation(acct).unrealized
        realized = acct.realized_today
        return realized + unrealized - acct.unrealized_baseline, unrealized, realized

    # ------------------------------------------------------------------ time

    def _sync(self) -> None:
        """Advance for a query; its events wait for the next mutation or step."""
        self._pending += self._advance()

    def _drain(self) -> list[Event]:
        events = self._pending + self._advance()
        self._pending = []
        return events

    def _session(self, day: date) -> Session | None:
        if day not in self._sessions:
            self._sessions[day] = self._calendar.session(day)
        return self._sessions[day]

    def _live(self, now: datetime) -> bool:
        session = self._session(ny_date(now))
        return session is not None and session.open <= now < session.close

    def _day_start(self) -> datetime:
        return ny_datetime(ny_date(self._clock.now()), time(0))

    def _advance(self) -> list[Event]:
        now = self._clock.now()
        events: list[Event] = []
        if now > self._cursor:
            for _, _, kind, day in self._boundaries(self._cursor, now):
                if kind == "day":
                    self._new_day(day)
                elif kind == "open":
                    events += self._open()
                elif kind == "close":
                    events += self._close()
                else:
                    events += self._settle(day)
            self._cursor = now
        if now != self._scanned_at and self._live(now):
            # Quotes are a function of time: at the same instant a rescan finds nothing
            # new (new and modified orders are tried on their own when they arrive).
            self._scanned_at = now
            events += self._scan(now)
        return events

    def _scan(self, now: datetime) -> list[Event]:
        """Try every working order, oldest first. The natural price is computed once
        per combo and side, so hundreds of resting orders cost little per step."""
        events: list[Event] = []
        cache: dict[int, QuoteLike | None] = {}
        naturals: dict[tuple[int, tuple[tuple[int, int, int], ...]], Decimal | None] = {}
        for working in list(self._orders.values()):  # insertion order = placement order
            parsed = working.parsed
            if working.record.status != "Submitted":
                continue
            if working.rest_until is not None and now < working.rest_until:
                continue
            key = parsed.book_key
            if key not in naturals:
                books = self._books(parsed, now, cache)
                naturals[key] = None if books is None else self._natural(parsed, books)
            natural = naturals[key]
            if natural is None:
                continue
            if parsed.limit is not None and parsed.side * (parsed.limit - natural) < 0:
                continue
            events += self._try_fill(working, now, cache, arrival=False)
        return events

    def _boundaries(self, start: datetime, end: datetime) -> list[tuple[datetime, int, str, date]]:
        """Midnights, opens, closes and settlements in (start, end], in time order."""
        found: list[tuple[datetime, int, str, date]] = []
        delay = timedelta(seconds=self.config.settlement_delay_seconds)
        day = ny_date(start) - timedelta(days=1 + int(delay.total_seconds() // 86400))
        while day <= ny_date(end):
            found.append((ny_datetime(day, time(0)), 0, "day", day))
            session = self._session(day)
            if session is not None:
                found.append((session.open, 1, "open", day))
                found.append((session.close, 2, "close", day))
                found.append((session.close + delay, 3, "settle", day))
            day += timedelta(days=1)
        return sorted(b for b in found if start < b[0] <= end)

    def _new_day(self, day: date) -> None:
        """New York midnight: daily P&L restarts, done order ids are released."""
        self._done_ids.clear()
        for acct in self._accounts.values():
            acct.realized_today = ZERO
            acct.commissions_today = ZERO
            for con_id in [k for k, h in acct.holdings.items() if h.quantity == 0]:
                del acct.holdings[con_id]
            for h in acct.holdings.values():
                h.realized = ZERO
            acct.unrealized_baseline = self._valuation(acct).unrealized

    def _open(self) -> list[Event]:
        events: list[Event] = []
        for working in list(self._orders.values()):
            if working.record.status == "PreSubmitted":
                self._set_status(working.record, "Submitted")
                events += [
                    OpenOrderEvent(_snap(working.record)),
                    StatusEvent(_snap(working.record)),
                ]
        return events

    def _close(self) -> list[Event]:
        """DAY orders expire at the close."""
        events: list[Event] = []
        for working in list(self._orders.values()):
            if working.parsed.tif in ("", "DAY"):
                events += self._cancel(working, api=False)
        return events

    # ------------------------------------------------------------------ orders

    def _new(self, client_id: int, order_id: int, contract: Contract, order: Order) -> list[Event]:
        parsed = self._parse(client_id, order_id, contract, order)
        if isinstance(parsed, ErrorEvent):
            return [parsed]
        now = self._clock.now()
        self._max_order_id = max(self._max_order_id, order_id)
        perm_id = self._next_perm
        self._next_perm += 1
        received = copy.copy(order)
        received.orderId, received.clientId, received.permId = order_id, client_id, perm_id
        received.account = parsed.account
        status = "Submitted" if self._live(now) else "PreSubmitted"
        record = OrderRecord(
            order_id=order_id,
            client_id=client_id,
            perm_id=perm_id,
            contract=parsed.contract,
            order=received,
            order_state=OrderState(status=status),
            status=status,
            remaining=parsed.quantity,
            account=parsed.account,
            placed_at=now,
        )
        self._seq += 1
        working = _Order(record, parsed, self._seq, leg_filled=[(ZERO, ZERO)] * len(parsed.legs))
        reason = parsed.reject or self._rejection(parsed)
        if reason is not None:
            self._set_status(record, "Inactive")
            self._finish(working, now, record_only=True)
            return [
                OpenOrderEvent(_snap(record)),
                StatusEvent(_snap(record)),
                ErrorEvent(client_id, order_id, 201, MSG_REJECTED + reason),
            ]
        self._orders[(client_id, order_id)] = working
        events: list[Event] = [OpenOrderEvent(_snap(record)), StatusEvent(_snap(record))]
        if status == "Submitted":
            events += self._try_fill(working, now, {}, arrival=True)
        if parsed.tif == "IOC" and (client_id, order_id) in self._orders:
            events += self._cancel(working, api=False)  # what did not fill at once
        return events

    def _modify(self, working: _Order, contract: Contract, order: Order) -> list[Event]:
        record = working.record
        cid, oid = record.client_id, record.order_id
        parsed = self._parse(cid, oid, contract, order)
        if isinstance(parsed, ErrorEvent):
            return [parsed]
        old = working.parsed
        legs = [(leg.contract.conId, leg.ratio, leg.sign) for leg in parsed.legs]
        if (
            legs != [(leg.contract.conId, leg.ratio, leg.sign) for leg in old.legs]
            or parsed.side != old.side
            or parsed.account != old.account
        ):
            return [ErrorEvent(cid, oid, 105, MSG_MODIFY_MISMATCH)]
        if parsed.reject is not None:
            return [
                ErrorEvent(
                    cid, oid, 321, f"Error validating request.-'bN' : cause - {parsed.reject}"
                )
            ]
        if parsed.quantity < record.filled:
            text = (
                "Error validating request.-'bN' : cause - "
                f"The order quantity cannot be below the filled quantity {record.filled}"
            )
            return [ErrorEvent(cid, oid, 321, text)]
        received = copy.copy(order)
        received.orderId, received.clientId, received.permId = oid, cid, record.perm_id
        received.account = parsed.account
        working.parsed = dataclasses.replace(parsed, contract=old.contract)
        working.rest_until = None
        record.order = received
        record.remaining = parsed.quantity - record.filled
        now = self._clock.now()
        if record.remaining == 0:
            self._set_status(record, "Filled")
            self._finish(working, now)
            return [OpenOrderEvent(_snap(record)), StatusEvent(_snap(record))]
        events: list[Event] = [OpenOrderEvent(_snap(record)), StatusEvent(_snap(record))]
        if record.status == "Submitted":
            events += self._try_fill(working, now, {}, arrival=True)
        return events

    def _cancel(self, working: _Order, api: bool) -> list[Event]:
        record = working.record
        events: list[Event] = []
        if api and self.config.pending_cancel_status:
            self._set_status(record, "PendingCancel")
            events.append(StatusEvent(_snap(record)))
        self._set_status(record, "Cancelled")
        self._finish(working, self._clock.now())
        events.append(StatusEvent(_snap(record)))
        if api:
            events.append(ErrorEvent(record.client_id, record.order_id, 202, MSG_CANCELLED))
        return events

    def _finish(self, working: _Order, now: datetime, record_only: bool = False) -> None:
        record = working.record
        key = (record.client_id, record.order_id)
        if not record_only:
            self._orders.pop(key, None)
        self._done_ids.add(key)
        record.completed_at = now
        record.order_state.completedTime = _ib_time(now)
        record.order_state.completedStatus = record.status
        self._done.append(record)

    def _set_status(self, record: OrderRecord, status: str) -> None:
        record.status = status
        record.order_state.status = status

    def _parse(
        self, client_id: int, order_id: int, contract: Contract, order: Order
    ) -> _Parsed | ErrorEvent:
        """Validate as IB does; an ErrorEvent means the order is not accepted at all."""

        def error(code: int, message: str) -> ErrorEvent:
            return ErrorEvent(client_id, order_id, code, message)

        account = order.account or ""
        if not account:
            if len(self._accounts) > 1:
                return error(436, MSG_ALLOCATION)
            account = next(iter(self._accounts))
        legs: list[_Leg] = []
        echo = contract
        if contract.secType == "BAG":
            for combo_leg in contract.comboLegs or []:
                leg_contract = self._instruments.by_con_id(combo_leg.conId)
                if leg_contract is None:
                    return error(200, MSG_NO_SECURITY)
                sign = 1 if combo_leg.action.upper() == "BUY" else -1
                legs.append(_Leg(leg_contract, max(1, int(combo_leg.ratio or 1)), sign))
            if not legs:
                return error(200, MSG_NO_SECURITY)
        else:
            resolved = self._resolve(contract)
            if resolved is None:
                return error(200, MSG_NO_SECURITY)
            legs.append(_Leg(resolved, 1, 1))
            echo = resolved
        quantity = to_decimal(order.totalQuantity or 0)
        if quantity <= 0:
            return error(434, MSG_SIZE_ZERO)
        order_type = (order.orderType or "").upper()
        limit: Decimal | None = None
        if order_type == "LMT":
            raw = order.lmtPrice
            if raw is not None and raw != UNSET_DOUBLE and raw != "":
                limit = to_decimal(raw)
                if limit % self.config.price_increment != 0:
                    return error(110, MSG_PRICE_VARIATION)
        action = (order.action or "").upper()
        tif = (order.tif or "DAY").upper()
        reject = None
        if account not in self._accounts:
            reject = f"The account {account} is not managed by this login"
        elif action not in ("BUY", "SELL"):
            reject = f"Invalid action {order.action!r}"
        elif quantity != quantity.to_integral_value():
            reject = "Fractional-sized orders are not supported for this contract"
        elif order_type not in ("LMT", "MKT"):
            reject = f"The simulator does not support order type {order.orderType!r}"
        elif order_type == "LMT" and limit is None:
            reject = "A limit order needs a limit price"
        elif tif not in ("DAY", "GTC", "IOC"):
            reject = f"The simulator does not support time in force {order.tif!r}"
        return _Parsed(
            account=account,
            contract=echo,
            legs=tuple(legs),
            side=-1 if action == "SELL" else 1,
            quantity=quantity,
            order_type=order_type,
            limit=limit,
            tif=tif,
            reject=reject,
        )

    def _resolve(self, contract: Contract) -> Contract | None:
        if contract.conId:
            return self._instruments.by_con_id(contract.conId)
        details = self._instruments.resolve(contract)
        if len(details) != 1 or details[0].contract is None:
            return None
        found: Contract = details[0].contract
        return found

    def _rejection(self, parsed: _Parsed) -> str | None:
        """201 reasons: the configured account rejection, then margin."""
        configured = self.config.rejections.get(parsed.account)
        if configured is not None:
            return configured
        if not self.config.check_margin:
            return None
        before, after = self._what_if_figures(parsed)
        if after.available_funds < 0 and after.initial_margin > before.initial_margin:
            return _margin_text(after)
        return None

    # ------------------------------------------------------------------ whatIf

    def _what_if(
        self, client_id: int, order_id: int, contract: Contract, order: Order
    ) -> list[Event]:
        parsed = self._parse(client_id, order_id, contract, order)
        if isinstance(parsed, ErrorEvent):
            return [parsed]
        self._max_order_id = max(self._max_order_id, order_id)
        if parsed.reject is not None:
            return [ErrorEvent(client_id, order_id, 201, MSG_REJECTED + parsed.reject)]
        before, after = self._what_if_figures(parsed)
        fee = self._commission_due(parsed, parsed.quantity)
        received = copy.copy(order)
        received.orderId, received.clientId, received.account = order_id, client_id, parsed.account
        state = OrderState(
            status="PreSubmitted",
            initMarginBefore=money(before.initial_margin),
            maintMarginBefore=money(before.maintenance_margin),
            equityWithLoanBefore=money(before.equity_with_loan),
            initMarginChange=money(after.initial_margin - before.initial_margin),
            maintMarginChange=money(after.maintenance_margin - before.maintenance_margin),
            equityWithLoanChange=money(after.equity_with_loan - before.equity_with_loan),
            initMarginAfter=money(after.initial_margin),
            maintMarginAfter=money(after.maintenance_margin),
            equityWithLoanAfter=money(after.equity_with_loan),
            commission=float(fee),
            minCommission=float(fee),
            maxCommission=float(fee),
            commissionCurrency="USD",
            warningText=_margin_text(after) if after.available_funds < 0 else "",
        )
        record = OrderRecord(
            order_id=order_id,
            client_id=client_id,
            perm_id=0,
            contract=parsed.contract,
            order=received,
            order_state=state,
            status="PreSubmitted",
            remaining=parsed.quantity,
            account=parsed.account,
            placed_at=self._clock.now(),
        )
        events: list[Event] = []
        if self.config.whatif_incomplete_first:
            blank = OrderState(
                status="PreSubmitted",
                initMarginBefore=UNSET_TEXT,
                maintMarginBefore=UNSET_TEXT,
                equityWithLoanBefore=UNSET_TEXT,
                initMarginChange=UNSET_TEXT,
                maintMarginChange=UNSET_TEXT,
                equityWithLoanChange=UNSET_TEXT,
                initMarginAfter=UNSET_TEXT,
                maintMarginAfter=UNSET_TEXT,
                equityWithLoanAfter=UNSET_TEXT,
            )
            events.append(WhatIfEvent(dataclasses.replace(record, order_state=blank)))
        events.append(WhatIfEvent(record))
        return events

    def _what_if_figures(self, parsed: _Parsed) -> tuple[Valuation, Valuation]:
        """The account before and after the whole order at its limit (MKT: at the
        natural price); commission left out (reported apart, as IB's whatIf does)."""
        acct = self._accounts[parsed.account]
        now = self._clock.now()
        cache: dict[int, QuoteLike | None] = {}
        price = parsed.limit
        if price is None:
            books = self._books(parsed, now, cache)
            price = self._natural(parsed, books) if books is not None else ZERO
        trades = []
        for leg in parsed.legs:
            mark = self._mark(leg.contract)
            if mark is None:
                mark = abs(price) if len(parsed.legs) == 1 else ZERO
            trades.append(
                (leg.contract, parsed.side * leg.sign * leg.ratio * parsed.quantity, mark)
            )
        after = acct.with_trades(trades)
        after.cash = acct.cash - parsed.side * price * parsed.quantity * multiplier(
            parsed.legs[0].contract
        )
        return self._valuation(acct), self._valuation(after)

    # ------------------------------------------------------------------ fills

    def _books(
        self, parsed: _Parsed, now: datetime, cache: dict[int, QuoteLike | None]
    ) -> list[_Book] | None:
        """Two-sided quotes of every leg, None when a leg cannot trade now."""
        books = []
        for leg in parsed.legs:
            con_id = leg.contract.conId
            if con_id not in cache:
                cache[con_id] = self._quotes.quote(con_id, now)
            quote = cache[con_id]
            if quote is None or quote.ask <= 0 or quote.bid < 0 or quote.ask < quote.bid:
                return None
            if len(parsed.legs) == 1 and parsed.side < 0 and quote.bid <= 0:
                return None
            books.append(_Book(to_decimal(quote.bid), to_decimal(quote.ask)))
        return books

    @staticmethod
    def _natural(parsed: _Parsed, books: list[_Book]) -> Decimal:
        """What a marketable order pays (buy) / receives (sell), in the combo convention."""
        total = ZERO
        for leg, book in zip(parsed.legs, books, strict=True):
            direction = parsed.side * leg.sign
            total += leg.sign * leg.ratio * (book.ask if direction > 0 else book.bid)
        return total

    def _try_fill(
        self, working: _Order, now: datetime, cache: dict[int, QuoteLike | None], arrival: bool
    ) -> list[Event]:
        parsed, record = working.parsed, working.record
        if working.rest_until is not None and now < working.rest_until:
            return []
        books = self._books(parsed, now, cache)
        if books is None:
            return []
        natural = self._natural(parsed, books)
        if parsed.order_type == "LMT":
            assert parsed.limit is not None
            if parsed.side * (parsed.limit - natural) < 0:
                return []
        quantity = record.remaining
        partial = False
        if (
            self.config.partial_fill_probability > 0
            and quantity > 1
            and self._rng.random() < self.config.partial_fill_probability
        ):
            share = self._rng.uniform(0.0, self.config.partial_fill_max_fraction)
            quantity = Decimal(max(1, min(int(quantity) - 1, int(int(quantity) * share))))
            partial = True
        ticks = self._improvement(parsed, books, natural)
        prices = []
        for leg, book, tick_count in zip(parsed.legs, books, ticks, strict=True):
            direction = parsed.side * leg.sign
            base = book.ask if direction > 0 else book.bid
            prices.append(base - direction * tick_count * self.config.price_increment)
        combo_price = sum(
            (leg.sign * leg.ratio * p for leg, p in zip(parsed.legs, prices, strict=True)), ZERO
        )
        return self._execute(working, quantity, prices, combo_price, now, arrival, partial)

    def _improvement(self, parsed: _Parsed, books: list[_Book], natural: Decimal) -> list[int]:
        """Ticks of improvement per leg: none, or a seeded number of ticks that keeps
        the combo strictly better than natural and (by default) short of the mid."""
        none = [0] * len(books)
        p = self.config.improvement_probability
        if p <= 0 or self._rng.random() >= p:
            return none
        tick = self.config.price_increment
        mid = sum(
            (
                leg.sign * leg.ratio * (b.bid + b.ask) / 2
                for leg, b in zip(parsed.legs, books, strict=True)
            ),
            ZERO,
        )
        room = parsed.side * (natural - mid) / tick
        if self.config.improvement_allow_mid:
            most = int(room.to_integral_value(rounding=ROUND_FLOOR))
        else:
            most = int(room.to_integral_value(rounding=ROUND_CEILING)) - 1
        if most < 1:
            return none
        left = self._rng.randint(1, most)
        leg_room = [
            int(((b.ask - b.bid) / 2 / tick).to_integral_value(rounding=ROUND_FLOOR)) for b in books
        ]
        ticks = list(none)
        progress = True
        while left > 0 and progress:
            progress = False
            for i, leg in enumerate(parsed.legs):
                if left >= leg.ratio and ticks[i] < leg_room[i]:
                    ticks[i] += 1
                    left -= leg.ratio
                    progress = True
        return ticks

    def _commission_due(self, parsed: _Parsed, cumulative: Decimal) -> Decimal:
        """Total commission of an order once `cumulative` units have filled."""
        if cumulative <= 0:
            return ZERO
        if parsed.legs[0].contract.secType == "STK" and len(parsed.legs) == 1:
            rate, minimum = (
                self.config.stock_commission_per_share,
                self.config.stock_commission_minimum,
            )
            units = cumulative
        else:
            rate, minimum = (
                self.config.commission_per_contract,
                self.config.commission_minimum_per_order,
            )
            units = cumulative * sum(leg.ratio for leg in parsed.legs)
        return max(minimum, rate * units)

    def _execute(
        self,
        working: _Order,
        quantity: Decimal,
        prices: list[Decimal],
        combo_price: Decimal,
        now: datetime,
        arrival: bool,
        partial: bool,
    ) -> list[Event]:
        parsed, record = working.parsed, working.record
        acct = self._accounts[parsed.account]
        exchange = self._rng.choice(self.config.execution_exchanges)
        charge = self._commission_due(parsed, record.filled + quantity) - record.commission
        total_shares = sum((leg.ratio * quantity for leg in parsed.legs), ZERO)
        record.filled += quantity
        record.remaining -= quantity
        working.fill_value += quantity * combo_price
        record.avg_fill_price = working.fill_value / record.filled
        record.last_fill_price = combo_price
        record.commission += charge
        done = record.remaining == 0
        if done:
            self._set_status(record, "Filled")
            record.order_state.commission = float(record.commission)
            record.order_state.commissionCurrency = "USD"
            self._finish(working, now)
        elif partial:
            working.rest_until = now + timedelta(seconds=self.config.partial_fill_rest_seconds)
        self._exec_seq += 1
        base = f"{self._exec_prefix}.{self._exec_seq:08x}"
        fills: list[Fill] = []
        if self.config.combo_summary_execution and len(parsed.legs) > 1:
            execution = self._execution(
                f"{base}.01.01", record, now, exchange, parsed.side, quantity, combo_price,
                record.filled, record.avg_fill_price, arrival,
            )  # fmt: skip
            report = CommissionReport(f"{base}.01.01", 0.0, "USD", UNSET_DOUBLE, UNSET_DOUBLE, 0)
            fills.append(Fill(record.contract, execution, report, combo_price, quantity, ZERO))
        charged = ZERO
        for i, (leg, price) in enumerate(zip(parsed.legs, prices, strict=True)):
            shares = leg.ratio * quantity
            direction = parsed.side * leg.sign
            if i == len(parsed.legs) - 1:
                fee = charge - charged
            else:
                fee = (charge * shares / total_shares).quantize(CENT, rounding=ROUND_HALF_UP)
            charged += fee
            realized = acct.trade(leg.contract, direction * shares, price, fee)
            cum, value = working.leg_filled[i]
            cum, value = cum + shares, value + shares * price
            working.leg_filled[i] = (cum, value)
            exec_id = f"{base}.{i + 2 if len(parsed.legs) > 1 else 1:02d}.01"
            execution = self._execution(
                exec_id, record, now, exchange, direction, shares, price, cum, value / cum, arrival
            )
            report = CommissionReport(
                exec_id,
                float(fee),
                "USD",
                UNSET_DOUBLE if realized is None else float(realized),
                UNSET_DOUBLE,
                0,
            )
            fills.append(Fill(leg.contract, execution, report, price, shares, fee))
        self._fills += fills
        snap = _snap(record)
        events: list[Event] = [FillEvent(snap, f) for f in fills]
        if done:
            events.append(OpenOrderEvent(snap))
        events.append(StatusEvent(snap))
        return events

    @staticmethod
    def _execution(
        exec_id: str,
        record: OrderRecord,
        now: datetime,
        exchange: str,
        direction: int,
        shares: Decimal,
        price: Decimal,
        cumulative: Decimal,
        average: Decimal,
        arrival: bool,
    ) -> Execution:
        return Execution(
            execId=exec_id,
            time=now,
            acctNumber=record.account,
            exchange=exchange,
            side="BOT" if direction > 0 else "SLD",
            shares=float(shares),
            price=float(price),
            permId=record.perm_id,
            clientId=record.client_id,
            orderId=record.order_id,
            liquidation=0,
            cumQty=float(cumulative),
            avgPrice=float(average),
            orderRef=record.order.orderRef,
            lastLiquidity=2 if arrival else 1,
        )

    # ------------------------------------------------------------------ expiry

    def _settle(self, day: date) -> list[Event]:
        """Expiry of `day`: cancel orders on expiring options, exercise/assign what
        is >= threshold in the money, expire the rest, book the delivered stock."""
        events: list[Event] = []
        for working in list(self._orders.values()):
            expiries = [expiry_of(leg.contract) for leg in working.parsed.legs]
            if any(e is not None and e <= day for e in expiries):
                events += self._cancel(working, api=False)
        session = self._session(day)
        assert session is not None
        spot = self._underlying_at(session.close)
        self._settlements[day] = spot
        stock = self._instruments.stock()
        now = self._clock.now()
        for name, acct in self._accounts.items():
            expiring = sorted(
                (h for h in acct.holdings.values() if expiry_of(h.contract) == day),
                key=lambda h: h.contract.conId,
            )
            for h in expiring:
                quantity = h.quantity
                realized = acct.trade(h.contract, -quantity, ZERO, ZERO) if quantity else None
                del acct.holdings[h.contract.conId]  # expired options leave the account
                if quantity == 0:
                    continue
                strike = to_decimal(h.contract.strike)
                call = right_of(h.contract) == "C"
                itm = None if spot is None else (spot - strike if call else strike - spot)
                exercised = itm is not None and itm >= self.config.exercise_threshold
                kind = "EXERCISED" if quantity > 0 else "ASSIGNED"
                if not exercised:
                    kind = "EXPIRED"
                self._changes.append(
                    PositionChange(now, name, h.contract, -quantity, ZERO, kind, realized, spot)
                )
                if exercised:
                    shares = quantity * multiplier(h.contract) * (1 if call else -1)
                    stock_realized = acct.trade(stock, shares, strike, ZERO)
                    delivery = "EXERCISE_DELIVERY" if quantity > 0 else "ASSIGNMENT_DELIVERY"
                    self._changes.append(
                        PositionChange(
                            now, name, stock, shares, strike, delivery, stock_realized, spot
                        )
                    )
        return events

    def _underlying_at(self, moment: datetime) -> Decimal | None:
        """Settlement price: the underlying's last (else mid) at the close."""
        con_id = self._instruments.stock().conId
        for at in (moment, moment - timedelta(seconds=1)):
            quote = self._quotes.quote(con_id, at)
            if quote is not None:
                if quote.last > 0:
                    return to_decimal(quote.last)
                if quote.bid > 0 and quote.ask > 0:
                    return (to_decimal(quote.bid) + to_decimal(quote.ask)) / 2
        return self._marks.get(con_id)

    # ------------------------------------------------------------------ valuation

    def _account(self, name: str) -> Account:
        try:
            return self._accounts[name]
        except KeyError:
            raise KeyError(f"unknown account {name!r}") from None

    def _valuation(self, acct: Account) -> Valuation:
        stock = self._instruments.stock()
        return acct.valuation(self._mark, self._mark(stock), self._params)

    def _mark(self, contract: Contract) -> Decimal | None:
        """Mid of the contract now; an option after its close is marked at its last
        quote; without any quote, the last mark seen (None if never)."""
        now = self._clock.now()
        quote = self._quotes.quote(contract.conId, now)
        if quote is None:
            expiry = expiry_of(contract)
            session = self._session(expiry) if expiry is not None else None
            if session is not None and now >= session.close:
                quote = self._quotes.quote(contract.conId, session.close - timedelta(seconds=1))
        if quote is not None:
            bid, ask, last = to_decimal(quote.bid), to_decimal(quote.ask), to_decimal(quote.last)
            if bid > 0 and ask > 0:
                mark = (bid + ask) / 2
            elif last > 0:
                mark = last
            else:
                mark = (bid + ask) / 2
            self._marks[contract.conId] = mark
            return mark
        return self._marks.get(contract.conId)


def _margin_text(after: Valuation) -> str:
    return (
        "YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR EQUITY WITH "
        f"LOAN VALUE [{money(after.equity_with_loan)} USD] MUST EXCEED THE INITIAL MARGIN "
        f"[{money(after.initial_margin)} USD]"
    )
