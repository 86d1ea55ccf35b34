"""P&L of one follower's account, day by day (domain.md section 6). Pure.

The ledger is average cost per instrument. Every trade (an IB execution, ours
or not: IB's liquidations and manual trades count too; or a settlement at
expiry: an option leaving the account at 0 and, in the money, shares delivered
at the strike) moves a holding; a trade that reduces a holding realises
``closed quantity x price x multiplier - the released share of its cost``.
Commissions are realised on the day they are paid.

- realised(D)   = gains of the trades of D that reduced holdings - commissions of D
- unrealised(D) = sum over holdings at the end of D of quantity x mark x multiplier - cost
- P&L(D)        = realised(D) + unrealised(D) - unrealised(D-1)
- P&L(month)    = realised of the month + unrealised(last day) - unrealised(day before)

so a month is never a sum of daily totals that include unrealised: a stale day
cannot leak into it. An option still held after its expiry day's session is
settled against the underlying's price at the close (in the money by at least
the exercise threshold: exercised or assigned into shares at the strike,
otherwise expired worthless); a settlement observed from IB's position change
(the pre-open check) replaces that provisional one for the same option.

Money is Decimal at full precision inside; the rows round to cents (half-up).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum

from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.domain.money import CONTRACT_MULTIPLIER, cents

ZERO = Decimal(0)
#: IB (and OCC) exercise an option at expiry from this much in the money.
EXERCISE_THRESHOLD = Decimal("0.01")


class TradeKind(StrEnum):
    FILL = "FILL"  # an IB execution
    EXPIRED = "EXPIRED"  # an option left the account worthless
    EXERCISED = "EXERCISED"  # a long option left the account exercised
    ASSIGNED = "ASSIGNED"  # a short option left the account assigned
    DELIVERY = "DELIVERY"  # shares bought or sold at the strike by an exercise/assignment


@dataclass(frozen=True)
class Instrument:
    """What a holding is of. Keyed by its terms, not IB's conId, so a settlement
    inferred here and one observed at IB name the same holding."""

    symbol: str
    sec_type: str  # OPT or STK
    expiry: date | None = None
    strike: Decimal | None = None
    right: str = ""  # P or C
    multiplier: int = 1

    @property
    def key(self) -> str:
        if self.sec_type == "OPT":
            assert self.expiry is not None and self.strike is not None
            return f"{self.symbol} {self.expiry:%Y%m%d} {self.right} {self.strike.normalize():f}"
        return f"{self.symbol} {self.sec_type}"

    @property
    def is_option(self) -> bool:
        return self.sec_type == "OPT"

    def intrinsic(self, underlying: Decimal) -> Decimal:
        assert self.strike is not None
        gap = underlying - self.strike if self.right == "C" else self.strike - underlying
        return max(gap, ZERO)

    def settles_in_the_money(self, underlying: Decimal, threshold: Decimal) -> bool:
        return self.is_option and self.intrinsic(underlying) >= threshold

    def underlying(self) -> Instrument:
        return Instrument(symbol=self.symbol, sec_type="STK", multiplier=1)


def option(symbol: str, expiry: date, right: str, strike: Decimal | str) -> Instrument:
    return Instrument(symbol, "OPT", expiry, Decimal(strike), right, CONTRACT_MULTIPLIER)


def stock(symbol: str) -> Instrument:
    return Instrument(symbol, "STK")


@dataclass(frozen=True)
class Trade:
    """One change of a holding. quantity is signed (bought > 0, sold < 0); price
    is per share (or per unit), never negative; commission is a cost (>= 0)."""

    key: str  # IB's exec id, or settle:<day>:<instrument key>[:delivery]
    day: date  # the New York trading date it belongs to
    at: datetime
    instrument: Instrument
    quantity: int
    price: Decimal
    commission: Decimal = ZERO
    kind: TradeKind = TradeKind.FILL
    order_ref: str = ""

    @property
    def cash(self) -> Decimal:
        """Money in (+) or out (-) of the account, commission included."""
        return -self.quantity * self.price * self.instrument.multiplier - self.commission


@dataclass(frozen=True)
class Holding:
    instrument: Instrument
    quantity: int  # signed: short < 0
    cost: Decimal  # signed total: what opening it cost (a credit received is negative)

    @property
    def average_price(self) -> Decimal:
        return self.cost / (self.quantity * self.instrument.multiplier)


@dataclass(frozen=True)
class Settlement:
    """How an option left the account at its expiry (observed or inferred)."""

    instrument: Instrument
    quantity: int  # the position held at expiry, signed
    outcome: TradeKind  # EXPIRED, EXERCISED or ASSIGNED
    day: date
    at: datetime

    @property
    def delivered_shares(self) -> int:
        """Shares into (+) or out of (-) the account: a call delivers them to its
        holder, a put takes them; a short position is on the other side."""
        if self.outcome is TradeKind.EXPIRED:
            return 0
        per = 1 if self.instrument.right == "C" else -1
        return self.quantity * self.instrument.multiplier * per

    def trades(self) -> list[Trade]:
        ins = self.instrument
        base = f"settle:{self.day.isoformat()}:{ins.key}"
        out = [Trade(base, self.day, self.at, ins, -self.quantity, ZERO, ZERO, self.outcome)]
        shares = self.delivered_shares
        if shares:
            assert ins.strike is not None
            out.append(
                Trade(
                    f"{base}:delivery",
                    self.day,
                    self.at,
                    ins.underlying(),
                    shares,
                    ins.strike,
                    ZERO,
                    TradeKind.DELIVERY,
                )
            )
        return out


def infer_settlement(
    holding: Holding, underlying_close: Decimal, day: date, at: datetime, threshold: Decimal
) -> Settlement:
    """The expiry of a held option decided from the underlying's closing price."""
    ins = holding.instrument
    if not ins.settles_in_the_money(underlying_close, threshold):
        outcome = TradeKind.EXPIRED
    else:
        outcome = TradeKind.EXERCISED if holding.quantity > 0 else TradeKind.ASSIGNED
    return Settlement(ins, holding.quantity, outcome, day, at)


@dataclass(frozen=True)
class DayMarks:
    """What the account's holdings were worth at the end of a trading day."""

    underlying: Mapping[str, Decimal] = field(default_factory=dict)  # symbol -> last price
    prices: Mapping[str, Decimal] = field(default_factory=dict)  # instrument key -> mark
    session_over: bool = True  # the marks were taken after the close


@dataclass(frozen=True)
class DayResult:
    day: date
    realised: Decimal
    unrealised: Decimal
    unrealised_before: Decimal
    commissions: Decimal
    trades: int
    holdings: tuple[Holding, ...]
    marks: Mapping[str, Decimal]
    provisional: tuple[str, ...] = ()  # options settled from the close price, not yet seen at IB
    unmarked: tuple[str, ...] = ()  # holdings with no mark: valued at cost (unrealised 0)

    @property
    def pnl(self) -> Decimal:
        return self.realised + self.unrealised - self.unrealised_before


class _Book:
    """The holdings of one account while a day's trades are applied."""

    def __init__(self, holdings: Iterable[Holding]) -> None:
        self.held: dict[str, Holding] = {h.instrument.key: h for h in holdings if h.quantity}
        self.realised = ZERO

    def apply(self, trade: Trade) -> None:
        ins = trade.instrument
        key = ins.key
        mult = ins.multiplier
        self.realised -= trade.commission
        h = self.held.get(key)
        q = trade.quantity
        if q == 0:
            return
        if h is None or (h.quantity > 0) == (q > 0):
            qty = (h.quantity if h else 0) + q
            cost = (h.cost if h else ZERO) + q * trade.price * mult
            self.held[key] = Holding(ins, qty, cost)
            return
        closing = min(abs(q), abs(h.quantity))
        sign = 1 if h.quantity > 0 else -1
        released = h.cost * closing / abs(h.quantity)
        self.realised += sign * closing * trade.price * mult - released
        rest_qty = h.quantity - sign * closing
        rest_cost = h.cost - released
        opened = q + sign * closing  # what the trade opens beyond the close (a flip)
        if opened:
            self.held[key] = Holding(ins, opened, opened * trade.price * mult)
        elif rest_qty:
            self.held[key] = Holding(ins, rest_qty, rest_cost)
        else:
            del self.held[key]


def roll_day(
    day: date,
    opening: Sequence[Holding],
    trades: Sequence[Trade],
    marks: DayMarks,
    unrealised_before: Decimal,
    *,
    settled: Mapping[str, Settlement] | None = None,
    threshold: Decimal = EXERCISE_THRESHOLD,
) -> DayResult:
    """One trading day of one account, from the holdings it opened with.

    ``trades`` are the day's executions (any order); ``settled`` the observed
    expiries of options by instrument key (from IB's position change).
    Options whose expiry is on or before this day and that are still held after
    its session are settled: observed if known, else from the close price."""
    book = _Book(opening)
    ordered = sorted(trades, key=lambda t: (t.at, t.key))
    for t in ordered:
        book.apply(t)
    settled = settled or {}
    provisional: list[str] = []
    count = len(ordered)
    if marks.session_over:
        for key, h in sorted(book.held.items()):
            ins = h.instrument
            if not ins.is_option or ins.expiry is None or ins.expiry > day:
                continue
            observed = settled.get(key)
            if observed is not None:
                s = replace(observed, quantity=h.quantity)  # what is still held settles
            else:
                close = marks.underlying.get(ins.symbol)
                if close is None:
                    continue  # no price to settle with: left held, valued at cost
                s = infer_settlement(h, close, day, _end_of(ordered, day), threshold)
                provisional.append(key)
            for t in s.trades():
                book.apply(t)
                count += 1
    unrealised = ZERO
    used: dict[str, Decimal] = {}
    unmarked: list[str] = []
    for key, h in sorted(book.held.items()):
        mark = None if h.instrument.is_option else marks.underlying.get(h.instrument.symbol)
        if mark is None:
            mark = marks.prices.get(key)
        if mark is None:
            unmarked.append(key)
            continue
        used[key] = mark
        unrealised += h.quantity * mark * h.instrument.multiplier - h.cost
    return DayResult(
        day=day,
        realised=book.realised,
        unrealised=unrealised,
        unrealised_before=unrealised_before,
        commissions=sum((t.commission for t in ordered), ZERO),
        trades=count,
        holdings=tuple(h for _, h in sorted(book.held.items())),
        marks=used,
        provisional=tuple(provisional),
        unmarked=tuple(unmarked),
    )


def _end_of(trades: Sequence[Trade], day: date) -> datetime:
    """When a settlement is booked: after the day's last trade, at the close at the earliest."""
    last = max((t.at for t in trades), default=None)
    close = datetime.combine(day, time(16, 0), NEW_YORK)
    return max(last, close) if last is not None else close


@dataclass(frozen=True)
class MonthPnl:
    """realised of the month + change in unrealised (never a sum of daily totals)."""

    realised: Decimal
    unrealised_end: Decimal
    unrealised_start: Decimal
    commissions: Decimal

    @property
    def pnl(self) -> Decimal:
        return self.realised + self.unrealised_end - self.unrealised_start


def month_pnl(
    days: Sequence[DayResult] | Sequence[tuple[Decimal, Decimal, Decimal]],
    unrealised_start: Decimal,
) -> MonthPnl:
    """From the month's days in date order: (realised, unrealised, commissions) each."""
    realised = commissions = ZERO
    unrealised_end = unrealised_start
    for d in days:
        r, u, c = (d.realised, d.unrealised, d.commissions) if isinstance(d, DayResult) else d
        realised += r
        commissions += c
        unrealised_end = u
    return MonthPnl(realised, unrealised_end, unrealised_start, commissions)


def rounded(value: Decimal) -> Decimal:
    """Rows and statements carry cents, half-up (domain.md section 6)."""
    return cents(value)
