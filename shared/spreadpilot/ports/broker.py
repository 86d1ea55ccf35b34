"""Broker port: what the gateway agent needs of IB, in domain terms.

Prices here are positive credits (Decimal, USD per share); only the adapter
turns them into IB's signed BAG prices. Dry-run is enforced by the adapter
itself: in dry-run no order is ever routed, whatever the caller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from spreadpilot.domain.spread import VerticalSpread


class BrokerError(Exception):
    """IB refused or failed; `code` is IB's error code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ReconcileUnknown(BrokerError):
    """IB's state could not be read in time: unknown, never 'nothing there'."""


@dataclass(frozen=True)
class Legs:
    """The qualified legs of a vertical (0DTE), conIds cached by the adapter."""

    spread: VerticalSpread
    expiry: str  # YYYYMMDD
    short_con_id: int
    long_con_id: int


@dataclass(frozen=True)
class SpreadQuote:
    """Both legs' quotes at one moment; credits follow from them."""

    at: datetime
    short_bid: Decimal | None
    short_ask: Decimal | None
    long_bid: Decimal | None
    long_ask: Decimal | None

    @property
    def two_sided(self) -> bool:
        """Both legs quoted on both sides (a far OTM long leg may bid 0, never ask 0)."""
        sb, sa, lb, la = self.short_bid, self.short_ask, self.long_bid, self.long_ask
        return (
            sb is not None
            and sa is not None
            and lb is not None
            and la is not None
            and sb > 0
            and sa > 0
            and la > 0
            and lb >= 0
        )

    @property
    def mid_credit(self) -> Decimal:
        assert self.two_sided
        short_mid = (self.short_bid + self.short_ask) / 2  # type: ignore[operator]
        long_mid = (self.long_bid + self.long_ask) / 2  # type: ignore[operator]
        return short_mid - long_mid

    @property
    def natural_credit(self) -> Decimal:
        assert self.two_sided
        return self.short_bid - self.long_ask  # type: ignore[operator]


@dataclass(frozen=True)
class MarginCheck:
    """whatIf result. `complete` is False when IB's reply lacked figures (sentinels)."""

    complete: bool
    init_margin_change: Decimal | None
    maint_margin_change: Decimal | None
    commission: Decimal | None
    available_funds: Decimal | None

    @property
    def sufficient(self) -> bool | None:
        """None when unknown (incomplete reply); the caller decides, never guesses."""
        if not self.complete or self.init_margin_change is None or self.available_funds is None:
            return None
        return self.available_funds >= self.init_margin_change


class OrderState(StrEnum):
    PENDING = "PENDING"  # sent, not yet acknowledged
    RESTING = "RESTING"  # PreSubmitted: waiting for the open
    WORKING = "WORKING"  # Submitted
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class LegFill:
    exec_id: str
    con_id: int
    side: str  # BOT / SLD
    quantity: int
    price: Decimal  # per share, positive
    commission: Decimal | None
    time: datetime


@dataclass(frozen=True)
class OrderSnapshot:
    """What IB says of one of our orders, found by orderRef."""

    order_ref: str
    account: str
    order_id: int
    perm_id: int
    state: OrderState
    quantity: int
    filled: int
    credit: Decimal | None  # the working limit as a positive credit
    avg_fill_credit: Decimal | None
    fills: tuple[LegFill, ...] = field(default=())
    reason: str = ""  # IB's rejection text, with its code


@dataclass(frozen=True)
class Reconciliation:
    """IB's view of a set of orderRefs after a (re)connect: each found or absent."""

    found: dict[str, OrderSnapshot]

    def has(self, order_ref: str) -> bool:
        return order_ref in self.found


class Broker(Protocol):
    """One IB Gateway connection (one fixed clientId); accounts named per order."""

    dry_run: bool

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    def is_connected(self) -> bool: ...

    async def qualify(self, spread: VerticalSpread, expiry: str) -> Legs: ...

    async def quote(self, legs: Legs) -> SpreadQuote: ...

    async def what_if(
        self, legs: Legs, account: str, quantity: int, credit: Decimal
    ) -> MarginCheck: ...

    async def place(
        self, legs: Legs, account: str, quantity: int, credit: Decimal, order_ref: str
    ) -> OrderSnapshot:
        """A BUY BAG limit order for `credit` (IB price -credit); returns once acknowledged."""
        ...

    async def modify(self, order_ref: str, credit: Decimal) -> OrderSnapshot: ...

    async def cancel(self, order_ref: str) -> OrderSnapshot:
        """Returns once IB confirmed the cancel (or the order was already done)."""
        ...

    def snapshot(self, order_ref: str) -> OrderSnapshot | None: ...

    async def reconcile(self, order_refs: list[str]) -> Reconciliation:
        """Open orders, completed orders and executions of today, matched by orderRef.
        Raises ReconcileUnknown when IB's answer did not come in time."""
        ...


# --- risk (issue 5): positions, quotes with the underlying, closing orders ------------


@dataclass(frozen=True)
class Position:
    """One position of one account as IB lists it (fresh read, not a cached stream)."""

    account: str
    con_id: int
    sec_type: str  # OPT, STK, ...
    symbol: str
    quantity: int  # signed: short < 0
    avg_cost: Decimal | None = None
    expiry: str = ""  # options: YYYYMMDD
    strike: Decimal | None = None
    right: str = ""  # options: C / P


@dataclass(frozen=True)
class Quote:
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None = None

    @property
    def two_sided(self) -> bool:
        return self.bid is not None and self.ask is not None and self.ask > 0

    @property
    def mid(self) -> Decimal | None:
        if self.bid is not None and self.ask is not None and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last


@dataclass(frozen=True)
class MarketQuotes:
    """The underlying (QQQ) and option legs by conId, read in one request."""

    at: datetime
    underlying: Quote | None
    options: dict[int, Quote] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionFill:
    """One execution of one account as IB reports it (reqExecutions), ours (orderRef
    SP-...) or not (IB's liquidations, manual trades: order_ref ""); a combo's legs
    each have one, the combo itself none. The P&L is computed from these."""

    exec_id: str
    account: str
    at: datetime  # aware
    con_id: int
    sec_type: str  # OPT, STK, ...
    symbol: str
    expiry: str  # options: YYYYMMDD, else ""
    strike: Decimal | None
    right: str  # options: C / P, else ""
    multiplier: int
    side: str  # BOT / SLD
    quantity: int  # > 0
    price: Decimal  # per share
    commission: Decimal | None  # None until IB's commission report came
    order_ref: str


class RiskBroker(Broker, Protocol):
    """What the risk jobs need besides order entry. Closing orders are routed only by
    these calls, and the adapter's dry-run refuses them like any other order."""

    def managed_accounts(self) -> list[str]:
        """The accounts this login manages (empty: not logged in)."""
        ...

    async def positions(self) -> list[Position]:
        """Every position of every account of this login, read fresh from IB."""
        ...

    async def market_quotes(self, con_ids: Sequence[int]) -> MarketQuotes:
        """QQQ and the given option conIds, one snapshot request."""
        ...

    async def available_funds(self, account: str) -> Decimal | None: ...

    async def executions(self) -> list[ExecutionFill]:
        """Today's executions of every account of this login, every client's and IB's
        own, with their commissions (combo-level executions left out: legs only)."""
        ...

    async def close_spread(
        self,
        legs: Legs,
        account: str,
        quantity: int,
        order_ref: str,
        max_debit: Decimal | None = None,
    ) -> OrderSnapshot:
        """SELL the BAG of `legs` (buys the short leg back and sells the long leg in one
        combo, so no leg is ever left alone): a market order, or a limit paying at most
        `max_debit` per share. Returns once IB acknowledged or refused it."""
        ...

    async def close_stock(self, account: str, position: int, order_ref: str) -> OrderSnapshot:
        """A market order on QQQ stock that brings `position` shares (signed) to zero."""
        ...
