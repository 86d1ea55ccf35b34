"""Order traces: the recorder's execution documents read back for people.

One document per orderRef holds every report the agent sent (``events``); this
module turns them into the per-follower summary the demo and ``spreadpilot
orders`` print, and the event-by-event trace of ``spreadpilot trace REF``. Pure
reads: nothing here changes the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spreadpilot.domain.money import cents
from spreadpilot.domain.orders import Purpose
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Filter, Store

#: A spread is quoted per share; one contract is 100 shares.
MULTIPLIER = 100
_PURPOSES = frozenset(p.value for p in Purpose)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class OrderSummary:
    """How one follower's order went, from its execution document."""

    order_ref: str
    follower_id: str
    account: str
    gateway_id: str
    state: str  # the last decisive event: FILLED, CANCELLED, SKIPPED, REJECTED, UNKNOWN...
    outcome: str  # FILLED, PARTIAL_FILL, LIMIT_REACHED, MID_TOO_LOW, NO_MARGIN, ...
    quantity: int
    filled: int
    avg_fill_credit: Decimal | None
    last_credit: Decimal | None
    ladder_steps: int
    commission: Decimal
    placed_at: datetime | None
    filled_at: datetime | None
    first_report_at: datetime | None
    reason: str
    fills: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> OrderSummary:
        state = str(doc.get("state", ""))
        return cls(
            order_ref=doc["order_ref"],
            follower_id=doc["follower_id"],
            account=doc.get("account", ""),
            gateway_id=doc.get("gateway_id", ""),
            state=state,
            outcome=str(doc.get("outcome") or state),
            quantity=int(doc.get("quantity", 0)),
            filled=int(doc.get("filled", 0)),
            avg_fill_credit=_dec(doc.get("avg_fill_credit")),
            last_credit=_dec(doc.get("last_credit")),
            ladder_steps=int(doc.get("ladder_steps") or 0),
            commission=_dec(doc.get("commission")) or Decimal(0),
            placed_at=_time(doc.get("placed_at")),
            filled_at=_time(doc.get("filled_at")),
            first_report_at=_time(doc.get("first_report_at")),
            reason=str(doc.get("reason") or ""),
            fills=tuple(doc.get("fills") or ()),
        )

    @property
    def purpose(self) -> str:
        """OPEN, CLOSE, EOD, EMERGENCY or FLATTEN: the orderRef says it."""
        parts = self.order_ref.split("-")
        return next((p for p in reversed(parts) if p in _PURPOSES), "")

    @property
    def net_price(self) -> Decimal | None:
        """Per share and contract, from the leg fills: positive a credit received (an
        opening sale), negative a debit paid (a close buying the spread back)."""
        if self.avg_fill_credit is not None:
            return self.avg_fill_credit
        if not self.filled or not self.fills:
            return None
        net = sum(
            (
                Decimal(str(f["price"])) * int(f["quantity"]) * (1 if f["side"] == "SLD" else -1)
                for f in self.fills
            ),
            Decimal(0),
        )
        return net / self.filled

    @property
    def time_to_fill(self) -> timedelta | None:
        """From IB's acknowledgement of the order to its last fill."""
        if self.placed_at is None or self.filled_at is None:
            return None
        return self.filled_at - self.placed_at

    @property
    def cash(self) -> Decimal:
        """USD before commissions: + the credit an opening sale collected, - the debit
        a close paid (net price x filled x 100)."""
        price = self.net_price
        if price is None or not self.filled:
            return Decimal(0)
        return cents(price * self.filled * MULTIPLIER)


@dataclass(frozen=True)
class Totals:
    orders: int
    contracts_requested: int  # by the opening orders
    contracts_filled: int
    premium: Decimal  # credit collected
    debit: Decimal  # paid to close (positive)
    commission: Decimal
    outcomes: dict[str, int]

    @property
    def net(self) -> Decimal:
        return self.premium - self.debit - self.commission


def totals(orders: list[OrderSummary]) -> Totals:
    opens = [o for o in orders if o.purpose == Purpose.OPEN.value]
    return Totals(
        orders=len(orders),
        contracts_requested=sum(o.quantity for o in opens),
        contracts_filled=sum(o.filled for o in opens),
        premium=sum((o.cash for o in orders if o.cash > 0), Decimal(0)),
        debit=-sum((o.cash for o in orders if o.cash < 0), Decimal(0)),
        commission=sum((o.commission for o in orders), Decimal(0)),
        outcomes=dict(sorted(Counter(o.outcome for o in orders).items())),
    )


def orders_for_signal(store: Store, signal_id: str) -> list[OrderSummary]:
    """Every order of one signal's day (e.g. ``2026-11-25_QQQ``): each follower's
    opening order and any close, by follower then time."""
    docs = store.query(C.EXECUTIONS, [Filter("signal_id", "==", signal_id)])
    orders = [OrderSummary.from_doc(d.data) for d in docs]
    return sorted(orders, key=lambda o: (o.follower_id, o.first_report_at or _EPOCH))


@dataclass(frozen=True)
class TraceLine:
    """One report of an order, as the trace prints it."""

    at: datetime
    event: str
    ladder_step: int | None
    credit: Decimal | None
    filled: int
    quantity: int
    detail: str


def trace(doc: dict[str, Any]) -> list[TraceLine]:
    """The order's reports in time order, each with what changed and why (new leg
    executions only: every report repeats the fills so far)."""
    lines = []
    seen: set[str] = set()  # reports carry the order's fills so far: show each once
    for e in doc.get("events", []):
        detail = [e.get("reason") or ""]
        if e.get("outcome"):
            detail.insert(0, f"[{e['outcome']}]")
        if e.get("ib_code") is not None:
            detail.append(f"IB code {e['ib_code']}")
        for f in e.get("fills", []):
            if f["exec_id"] in seen:
                continue
            seen.add(f["exec_id"])
            fee = f" fee {f['commission']}" if f.get("commission") is not None else ""
            detail.append(f"{f['side']} {f['quantity']} conId {f['con_id']} @ {f['price']}{fee}")
        at = _time(e["at"])
        assert at is not None
        lines.append(
            TraceLine(
                at=at,
                event=e["event"],
                ladder_step=e.get("ladder_step"),
                credit=_dec(e.get("credit")),
                filled=int(e.get("filled", 0)),
                quantity=int(e.get("quantity", 0)),
                detail="; ".join(d for d in detail if d),
            )
        )
    return lines
