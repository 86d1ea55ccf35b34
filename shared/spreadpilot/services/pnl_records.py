"""The P&L inputs as stored: one codec for the agent that writes them and the
rollup that reads them, so the two can never disagree on a field.

- ``fills/{account}_{date}``: every IB execution of the account on that New
  York date, ours or not (liquidations, manual trades), merged by exec id.
- ``marks/{account}_{date}``: the latest positions with their marks and the
  underlying's price (every 30 s in the session; ``session_over`` once taken
  after the close).
- ``settlements/{account}_{date}``: how the options that expired that day left
  the account, as IB's position change showed it the next morning.

All three are raw trade logs: ``expire_at`` = 365 days after the date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.domain.pnl import (
    DayMarks,
    Instrument,
    Settlement,
    Trade,
    TradeKind,
)
from spreadpilot.ports.store import EXPIRE_AT

RETENTION = timedelta(days=365)


def doc_id(account: str, day: date) -> str:
    return f"{account}_{day.isoformat()}"


def expire_at(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), NEW_YORK) + RETENTION


# ---------------------------------------------------------------- instruments


def instrument_doc(ins: Instrument) -> dict[str, Any]:
    return {
        "symbol": ins.symbol,
        "sec_type": ins.sec_type,
        "expiry": ins.expiry.isoformat() if ins.expiry else None,
        "strike": None if ins.strike is None else f"{ins.strike.normalize():f}",
        "right": ins.right,
        "multiplier": ins.multiplier,
    }


def instrument_from(doc: Mapping[str, Any]) -> Instrument:
    return Instrument(
        symbol=doc["symbol"],
        sec_type=doc["sec_type"],
        expiry=date.fromisoformat(doc["expiry"]) if doc.get("expiry") else None,
        strike=Decimal(doc["strike"]) if doc.get("strike") is not None else None,
        right=doc.get("right") or "",
        multiplier=int(doc.get("multiplier") or 1),
    )


# ---------------------------------------------------------------- fills


def fill_doc(
    *,
    exec_id: str,
    at: datetime,
    instrument: Instrument,
    side: str,
    quantity: int,
    price: Decimal,
    commission: Decimal | None,
    order_ref: str,
    con_id: int | None = None,
) -> dict[str, Any]:
    """One execution as an entry of ``fills/{account}_{date}.fills`` (quantity > 0,
    side BOT/SLD as IB reports it; commission None until IB's report came)."""
    if side not in ("BOT", "SLD"):
        raise ValueError(f"side must be BOT or SLD, got {side!r}")
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    return {
        "exec_id": exec_id,
        "at": at.isoformat(),
        **instrument_doc(instrument),
        "con_id": con_id,
        "side": side,
        "quantity": quantity,
        "price": f"{price:f}",
        "commission": None if commission is None else f"{commission:f}",
        "order_ref": order_ref,
    }


def fills_day_doc(
    account: str, follower_id: str, day: date, fills: Iterable[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    return {
        "account": account,
        "follower_id": follower_id,
        "date": day.isoformat(),
        "fills": sorted(fills, key=lambda f: (f["at"], f["exec_id"])),
        "updated_at": now,
        EXPIRE_AT: expire_at(day),
    }


def merge_fills(
    existing: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """Merge by exec id: a known execution is kept, its commission filled in when it
    arrives later (IB sends it separately). Returns (fills, changed)."""
    by_id = {f["exec_id"]: dict(f) for f in existing}
    changed = False
    for f in new:
        old = by_id.get(f["exec_id"])
        if old is None:
            by_id[f["exec_id"]] = dict(f)
            changed = True
        elif old.get("commission") is None and f.get("commission") is not None:
            old["commission"] = f["commission"]
            changed = True
    return list(by_id.values()), changed


def trade_from_fill(doc: Mapping[str, Any], day: date) -> Trade:
    quantity = int(doc["quantity"])
    return Trade(
        key=doc["exec_id"],
        day=day,
        at=datetime.fromisoformat(doc["at"]),
        instrument=instrument_from(doc),
        quantity=quantity if doc["side"] == "BOT" else -quantity,
        price=Decimal(doc["price"]),
        commission=Decimal(doc["commission"]) if doc.get("commission") else Decimal(0),
        kind=TradeKind.FILL,
        order_ref=doc.get("order_ref") or "",
    )


# ---------------------------------------------------------------- marks


def position_doc(
    instrument: Instrument,
    quantity: int,
    mark: Decimal | None,
    avg_cost: Decimal | None = None,
    con_id: int | None = None,
) -> dict[str, Any]:
    return {
        **instrument_doc(instrument),
        "key": instrument.key,
        "con_id": con_id,
        "quantity": quantity,
        "mark": None if mark is None else f"{mark:f}",
        "avg_cost": None if avg_cost is None else f"{avg_cost:f}",
    }


def marks_doc(
    account: str,
    follower_id: str,
    day: date,
    at: datetime,
    underlying: Mapping[str, Decimal],
    positions: Iterable[Mapping[str, Any]],
    *,
    session_over: bool,
    spreads: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``spreads``: per open spread its id, description and unrealised P&L (status views)."""
    return {
        "account": account,
        "follower_id": follower_id,
        "date": day.isoformat(),
        "at": at,
        "underlying": {k: f"{v:f}" for k, v in underlying.items()},
        "positions": list(positions),
        "spreads": list(spreads),
        "session_over": session_over,
        EXPIRE_AT: expire_at(day),
    }


def day_marks(doc: Mapping[str, Any] | None) -> DayMarks:
    if doc is None:
        return DayMarks(session_over=False)
    return DayMarks(
        underlying={k: Decimal(v) for k, v in (doc.get("underlying") or {}).items()},
        prices={p["key"]: Decimal(p["mark"]) for p in doc.get("positions", []) if p.get("mark")},
        session_over=bool(doc.get("session_over")),
    )


# ---------------------------------------------------------------- settlements


def settlement_leg_doc(s: Settlement) -> dict[str, Any]:
    return {
        **instrument_doc(s.instrument),
        "key": s.instrument.key,
        "quantity": s.quantity,
        "outcome": s.outcome.value,
        "delivered_shares": s.delivered_shares,
    }


def settlements_doc(
    account: str,
    follower_id: str,
    day: date,
    at: datetime,
    legs: Iterable[Settlement],
    *,
    observed_share_change: int,
    reconciled: bool,
    detail: str = "",
) -> dict[str, Any]:
    return {
        "account": account,
        "follower_id": follower_id,
        "date": day.isoformat(),
        "at": at,
        "legs": [settlement_leg_doc(s) for s in legs],
        "observed_share_change": observed_share_change,
        "reconciled": reconciled,
        "detail": detail,
        EXPIRE_AT: expire_at(day),
    }


def settlements_from(doc: Mapping[str, Any] | None, day: date) -> dict[str, Settlement]:
    if doc is None:
        return {}
    at = doc["at"] if isinstance(doc["at"], datetime) else datetime.fromisoformat(doc["at"])
    out = {}
    for leg in doc.get("legs", []):
        ins = instrument_from(leg)
        out[ins.key] = Settlement(ins, int(leg["quantity"]), TradeKind(leg["outcome"]), day, at)
    return out
