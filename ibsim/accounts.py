"""Accounts of the simulated gateway: cash, positions, P&L and IB-style Reg T margin.

Pure bookkeeping (no clock, no quotes of its own): the engine feeds trades and
marks in. Conventions follow what IB reports, so a client sees familiar numbers:

- `avg_cost` is IB's avgCost: per unit *including* the multiplier and the
  commission (a short put sold at 1.05 with $0.65 commission: 104.35).
- Realised P&L = closing proceeds net of commission minus the cost basis; so an
  open plus a close nets both commissions, and an expiry (a close at price 0
  without fee) realises the whole premium.
- Equity with Loan Value (ELV) = cash + stock value. US options are excluded,
  as in IB's Reg T definition: a credit vertical raises ELV by the credit while
  the requirement rises by width x 100 x qty, so AvailableFunds falls by
  width x 100 x qty minus the credit (domain.md section 3).
- Requirements: a short option covered by a long option of the same expiry and
  right = the spread's maximum loss (width x multiplier, 0 for a debit spread);
  a naked short option = IB's formula max(premium + rate x S - OTM, premium +
  min_rate x (S for calls, K for puts)) x multiplier; long options 0 (paid in
  full); stock = rate x market value (Reg T 50 % initial, 25 % / 30 % maintenance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from ib_async import Contract

ZERO = Decimal(0)
CENT = Decimal("0.01")


def to_decimal(value: object) -> Decimal:
    """Exact Decimal of a wire/float value (floats via their shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def money(value: Decimal) -> str:
    """IB-style amount text with two decimals (half-up)."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def multiplier(contract: Contract) -> Decimal:
    """Contract multiplier: the contract's own, else 100 for options, 1 otherwise."""
    if contract.multiplier:
        return to_decimal(contract.multiplier)
    return Decimal(100) if contract.secType in ("OPT", "FOP") else Decimal(1)


def right_of(contract: Contract) -> str:
    """'P' or 'C' whatever spelling the contract uses ('PUT', 'C', ...)."""
    return (contract.right or "")[:1].upper()


def expiry_of(contract: Contract) -> date | None:
    """The last trading day of an option (YYYYMMDD), None for other contracts."""
    text = (contract.lastTradeDateOrContractMonth or "")[:8]
    if contract.secType != "OPT" or len(text) != 8:
        return None
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


@dataclass
class Holding:
    """One position of one account in one contract."""

    contract: Contract
    quantity: Decimal = ZERO  # signed: + long, - short
    avg_cost: Decimal = ZERO  # IB's avgCost: per unit x multiplier, commission included
    realized: Decimal = ZERO  # realised on this contract today


@dataclass(frozen=True)
class MarginParams:
    """Rates of the margin model (see the module docstring)."""

    naked_option_rate: Decimal = Decimal("0.20")
    naked_option_min_rate: Decimal = Decimal("0.10")
    stock_initial_rate: Decimal = Decimal("0.50")
    stock_maintenance_rate: Decimal = Decimal("0.25")
    short_stock_maintenance_rate: Decimal = Decimal("0.30")


@dataclass(frozen=True)
class Requirement:
    initial: Decimal
    maintenance: Decimal


@dataclass(frozen=True)
class Valuation:
    """An account's figures at one moment (everything Decimal, USD)."""

    cash: Decimal
    stock_value: Decimal
    option_value: Decimal
    gross_position_value: Decimal
    net_liquidation: Decimal
    equity_with_loan: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    unrealized: Decimal

    @property
    def available_funds(self) -> Decimal:
        return self.equity_with_loan - self.initial_margin

    @property
    def excess_liquidity(self) -> Decimal:
        return self.equity_with_loan - self.maintenance_margin


Marker = Callable[[Contract], Decimal | None]
"""Mark price per unit (mid) of a contract, None when unknown."""


@dataclass
class Account:
    """Cash and holdings of one account; all trades go through `trade`."""

    name: str
    cash: Decimal
    holdings: dict[int, Holding] = field(default_factory=dict)
    realized_today: Decimal = ZERO
    commissions_today: Decimal = ZERO
    unrealized_baseline: Decimal = ZERO  # unrealised at the start of the NY day

    def trade(
        self, contract: Contract, quantity: Decimal, price: Decimal, commission: Decimal
    ) -> Decimal | None:
        """Book a trade of `quantity` (signed) at `price` per unit; returns the realised
        P&L of the closing part, None when the trade only opens or adds."""
        mult = multiplier(contract)
        self.cash -= quantity * price * mult + commission
        self.commissions_today += commission
        holding = self.holdings.get(contract.conId)
        if holding is None:
            holding = self.holdings[contract.conId] = Holding(contract)
        old = holding.quantity
        if old == 0 or (old > 0) == (quantity > 0):
            total = old + quantity
            holding.avg_cost = (
                old * holding.avg_cost + quantity * price * mult + commission
            ) / total
            holding.quantity = total
            return None
        closing = min(abs(quantity), abs(old)) * (1 if quantity > 0 else -1)
        close_commission = commission * closing / quantity
        realized = -(closing * price * mult) - close_commission + closing * holding.avg_cost
        opening = quantity - closing
        holding.quantity = old + closing
        if opening != 0:
            holding.quantity = opening
            holding.avg_cost = (opening * price * mult + (commission - close_commission)) / opening
        elif holding.quantity == 0:
            holding.avg_cost = ZERO
        holding.realized += realized
        self.realized_today += realized
        return realized

    def with_trades(self, trades: Iterable[tuple[Contract, Decimal, Decimal]]) -> Account:
        """A hypothetical copy after trades (contract, signed quantity, price), no fees:
        what a whatIf or a margin check looks at."""
        copy = Account(
            self.name,
            self.cash,
            {k: Holding(h.contract, h.quantity, h.avg_cost) for k, h in self.holdings.items()},
        )
        for contract, quantity, price in trades:
            copy.trade(contract, quantity, price, ZERO)
        return copy

    def open_holdings(self) -> list[Holding]:
        return [h for h in self.holdings.values() if h.quantity != 0]

    def valuation(
        self, mark: Marker, underlying: Decimal | None, params: MarginParams
    ) -> Valuation:
        """Figures of the account with marks from `mark` (avg cost when no mark)."""
        stock = options = gross = unrealized = ZERO
        for h in self.open_holdings():
            mult = multiplier(h.contract)
            price = mark(h.contract)
            value = h.quantity * h.avg_cost if price is None else h.quantity * price * mult
            unrealized += value - h.quantity * h.avg_cost
            gross += abs(value)
            if h.contract.secType == "OPT":
                options += value
            else:
                stock += value
        req = requirement(self.open_holdings(), mark, underlying, params)
        return Valuation(
            cash=self.cash,
            stock_value=stock,
            option_value=options,
            gross_position_value=gross,
            net_liquidation=self.cash + stock + options,
            equity_with_loan=self.cash + stock,
            initial_margin=req.initial,
            maintenance_margin=req.maintenance,
            unrealized=unrealized,
        )


def requirement(
    holdings: Iterable[Holding], mark: Marker, underlying: Decimal | None, params: MarginParams
) -> Requirement:
    """Initial and maintenance requirement of a set of holdings (module docstring)."""
    initial = maintenance = ZERO
    groups: dict[tuple[date | None, str], list[Holding]] = {}
    for h in holdings:
        if h.quantity == 0:
            continue
        if h.contract.secType == "OPT":
            groups.setdefault((expiry_of(h.contract), right_of(h.contract)), []).append(h)
            continue
        price = mark(h.contract)
        value = abs(h.quantity) * (h.avg_cost if price is None else price * multiplier(h.contract))
        initial += value * params.stock_initial_rate
        rate = (
            params.stock_maintenance_rate if h.quantity > 0 else params.short_stock_maintenance_rate
        )
        maintenance += value * rate
    for (_, right), group in groups.items():
        options = _option_requirement(group, right, mark, underlying, params)
        initial += options
        maintenance += options
    return Requirement(initial, maintenance)


def _option_requirement(
    group: list[Holding], right: str, mark: Marker, underlying: Decimal | None, params: MarginParams
) -> Decimal:
    """Pair each short with the long that covers it best (same expiry and right),
    greedily; what stays uncovered is margined as naked."""
    puts = right == "P"
    shorts = sorted(
        ((to_decimal(h.contract.strike), -h.quantity, h) for h in group if h.quantity < 0),
        key=lambda row: row[0],
        reverse=puts,  # the most in-the-money short first
    )
    longs = sorted(
        ([to_decimal(h.contract.strike), h.quantity] for h in group if h.quantity > 0),
        key=lambda row: row[0],
        reverse=puts,  # the best cover first: the highest put, the lowest call
    )
    total = ZERO
    for strike, quantity, holding in shorts:
        left = quantity
        mult = multiplier(holding.contract)
        naked = _naked(holding.contract, strike, mark, underlying, params) * mult
        for cover in longs:
            if left == 0:
                break
            if cover[1] == 0:
                continue
            width = (strike - cover[0]) if puts else (cover[0] - strike)
            per_unit = max(ZERO, width) * mult
            if per_unit >= naked:
                continue
            n = min(left, cover[1])
            total += n * per_unit
            cover[1] -= n
            left -= n
        total += left * naked
    return total


def _naked(
    contract: Contract,
    strike: Decimal,
    mark: Marker,
    underlying: Decimal | None,
    params: MarginParams,
) -> Decimal:
    """Per-share requirement of one naked short option (IB's equity option formula)."""
    premium = mark(contract) or ZERO
    spot = underlying if underlying is not None else strike
    if right_of(contract) == "C":
        otm = max(ZERO, strike - spot)
        floor = params.naked_option_min_rate * spot
    else:
        otm = max(ZERO, spot - strike)
        floor = params.naked_option_min_rate * strike
    return max(premium + params.naked_option_rate * spot - otm, premium + floor)


@dataclass(frozen=True)
class PositionChange:
    """A position change that is not an execution: expiry, exercise, assignment and
    the stock they deliver. IB reports none of these as executions; P&L of the day
    needs them (domain.md section 6)."""

    time: datetime
    account: str
    contract: Contract
    quantity: Decimal  # signed change of the position
    price: Decimal  # 0 for the option leg, the strike for the delivered stock
    kind: str  # EXPIRED, EXERCISED, ASSIGNED, EXERCISE_DELIVERY, ASSIGNMENT_DELIVERY
    realized: Decimal | None  # realised P&L of this change, None when it only opens
    settlement_price: Decimal | None  # underlying price used to decide
