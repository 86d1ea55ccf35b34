"""The trading day as the operator watches it: signal, orders, positions, the market.

Pure reads of what the services wrote (signals, dispatches, job_runs, executions,
risk_status, marks) through the same readers the CLI uses (`services/traces.py`),
so the console and `spreadpilot orders` / `trace` can never tell two stories.
Dates are New York dates; the default is today on the platform's clock.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import Invalid, NotFoundError
from spreadpilot.admin.registry import API
from spreadpilot.domain.calendar import NEW_YORK, Session
from spreadpilot.domain.errors import FieldError
from spreadpilot.domain.signal import Signal, signal_id
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Filter
from spreadpilot.services.traces import OrderSummary, orders_for_signal, totals, trace

TAG = "trading"
#: The job name the signal poller records its runs under (services/signal_poller.py).
POLL_JOB = "signal-poll"


class DayQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = Field(None, description="New York date, YYYY-MM-DD (default: today)")


class FollowerDayQuery(DayQuery):
    follower: str | None = Field(None, min_length=1, max_length=32, description="one follower id")


def day_of(ctx: Ctx, query: DayQuery) -> dt.date:
    """The asked New York date, else today on the platform's clock (simulated in tests)."""
    return query.date or ctx.today


def _sid(ctx: Ctx, day: dt.date) -> str:
    return signal_id(day, ctx.c.settings.signal_ticker)


# --- signal ------------------------------------------------------------------------


def _signal_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The claimed signal with where it came from; a stored signal that no longer
    validates is shown raw with its problem rather than failing the page."""
    raw = doc.get("signal") or {}
    body: dict[str, Any] = {**raw}
    try:
        signal = Signal.model_validate(raw)
        body["description"] = signal.describe()
        body["spread"] = signal.spread.describe()
    except ValidationError as exc:
        body["problem"] = str(exc)[:500]
    return {
        **body,
        "source": doc.get("source", "sheet"),
        "sheet_row": doc.get("sheet_row"),
        "manual_by": doc.get("manual_by"),
        "manual_reason": doc.get("manual_reason"),
        "claimed_at": doc.get("claimed_at"),
        "claimed_by": doc.get("claimed_by"),
        "published": bool(doc.get("published")),
        "message_id": doc.get("message_id"),
        "content_hash": doc.get("content_hash"),
    }


def _dispatch_json(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    followers = [
        {
            "follower_id": fid,
            "status": v.get("status"),
            "order_ref": v.get("order_ref"),
            "quantity": v.get("quantity", 0),
            "reason": v.get("reason") or "",
        }
        for fid, v in sorted((doc.get("followers") or {}).items())
    ]
    return {
        "status": doc.get("status"),
        "updated_at": doc.get("updated_at"),
        "reason": doc.get("reason"),
        "counts": dict(sorted(Counter(str(f["status"]) for f in followers).items())),
        "followers": followers,
    }


def _last_poll(ctx: Ctx, day: dt.date) -> dict[str, Any] | None:
    """The day's latest signal-poll run (equality filters only: no composite index)."""
    runs = ctx.c.store.query(
        C.JOB_RUNS, [Filter("job", "==", POLL_JOB), Filter("trade_date", "==", day.isoformat())]
    )
    if not runs:
        return None
    last = max(runs, key=lambda s: s.data["ran_at"]).data
    return {
        "ran_at": last["ran_at"],
        "status": last.get("status"),
        "detail": last.get("detail", ""),
        "runs": len(runs),
    }


@API.route(
    "GET",
    "/signal",
    summary="The day's claimed signal, its source, dispatch and the last poll",
    tag=TAG,
    query=DayQuery,
)
def signal(ctx: Ctx, query: DayQuery) -> dict[str, Any]:
    """`signal` is null until one is claimed; `poll` then says why (waiting, invalid,
    missing, skipped on a holiday)."""
    day = day_of(ctx, query)
    sid = _sid(ctx, day)
    doc = ctx.c.store.get(C.SIGNALS, sid)
    return {
        "date": day,
        "signal_id": sid,
        "signal": _signal_json(doc) if doc is not None else None,
        "dispatch": _dispatch_json(ctx.c.store.get(C.DISPATCHES, sid)),
        "poll": _last_poll(ctx, day),
    }


# --- orders ------------------------------------------------------------------------


def _seconds(delta: dt.timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds(), 3)


def order_json(o: OrderSummary) -> dict[str, Any]:
    return {
        "order_ref": o.order_ref,
        "follower_id": o.follower_id,
        "account": o.account,
        "gateway_id": o.gateway_id,
        "purpose": o.purpose,
        "state": o.state,
        "outcome": o.outcome,
        "quantity": o.quantity,
        "filled": o.filled,
        "avg_fill_credit": o.avg_fill_credit,
        "net_price": o.net_price,
        "last_credit": o.last_credit,
        "ladder_steps": o.ladder_steps,
        "time_to_fill_seconds": _seconds(o.time_to_fill),
        "commission": o.commission,
        "cash": o.cash,
        "placed_at": o.placed_at,
        "filled_at": o.filled_at,
        "first_report_at": o.first_report_at,
        "reason": o.reason,
    }


@API.route(
    "GET",
    "/orders",
    summary="Each follower's orders of the day: outcome, fills, ladder, time to fill",
    tag=TAG,
    query=FollowerDayQuery,
    errors=(404,),
)
def orders(ctx: Ctx, query: FollowerDayQuery) -> dict[str, Any]:
    """`not_reported`: dispatched orders the agent has not reported on yet (or
    followers skipped at dispatch), so a silent follower is visible too."""
    day = day_of(ctx, query)
    sid = _sid(ctx, day)
    found = [
        o for o in orders_for_signal(ctx.c.store, sid) if query.follower in (None, o.follower_id)
    ]
    dispatch = _dispatch_json(ctx.c.store.get(C.DISPATCHES, sid))
    reported = {o.order_ref for o in found}
    waiting = [
        f
        for f in (dispatch or {}).get("followers", [])
        if query.follower in (None, f["follower_id"]) and f["order_ref"] not in reported
    ]
    unknown = query.follower and not found and not waiting
    if unknown and ctx.c.store.get(C.FOLLOWERS, str(query.follower)) is None:
        raise NotFoundError(f"no follower {query.follower!r}; GET /api/v1/followers lists them")
    t = totals(found)
    return {
        "date": day,
        "signal_id": sid,
        "orders": [order_json(o) for o in found],
        "not_reported": waiting,
        "totals": {
            "orders": t.orders,
            "contracts_requested": t.contracts_requested,
            "contracts_filled": t.contracts_filled,
            "premium": t.premium,
            "debit": t.debit,
            "commission": t.commission,
            "net": t.net,
            "outcomes": t.outcomes,
        },
    }


@API.route(
    "GET", "/orders/<order_ref>", summary="One order's full trace, report by report", tag=TAG
)
def order(ctx: Ctx, order_ref: str) -> dict[str, Any]:
    """What `spreadpilot trace REF` prints: each report with what changed and why."""
    doc = ctx.c.store.get(C.EXECUTIONS, order_ref)
    intent = ctx.c.store.get(C.ORDER_INTENTS, order_ref)
    if doc is None and intent is None:
        raise NotFoundError(
            f"no order {order_ref!r}; GET /api/v1/orders?date=YYYY-MM-DD lists the day's orders"
        )
    return {
        "order_ref": order_ref,
        "order": order_json(OrderSummary.from_doc(doc)) if doc is not None else None,
        "intent": None
        if intent is None
        else {
            "status": intent.get("status"),
            "created_at": intent.get("created_at"),
            "quantity": (intent.get("intent") or {}).get("quantity"),
            "spread": (intent.get("intent") or {}).get("spread"),
            "resends": intent.get("resends", 0),
            "resent_by": intent.get("resent_by"),
        },
        "fills": list((doc or {}).get("fills") or []),
        "trace": [
            {
                "at": line.at,
                "event": line.event,
                "ladder_step": line.ladder_step,
                "credit": line.credit,
                "filled": line.filled,
                "quantity": line.quantity,
                "detail": line.detail,
            }
            for line in (trace(doc) if doc is not None else [])
        ],
    }


# --- positions ---------------------------------------------------------------------

#: risk_status fields shown per spread (services/risk.py writes them).
_RISK_FIELDS = (
    "spread",
    "account",
    "gateway_id",
    "expiry",
    "right",
    "short_strike",
    "long_strike",
    "quantity",
    "state",
    "band",
    "band_since",
    "time_value",
    "short_mid",
    "intrinsic",
    "spot",
    "in_the_money",
    "critical_reason",
    "checked_at",
    "close_ref",
    "close_reason",
    "eod_result",
    "eod_reason",
)


def _risk_docs(ctx: Ctx, day: dt.date) -> list[dict[str, Any]]:
    """The day's spreads: by trade_date (banded) and by expiry (0DTE, even if only the
    end-of-day check or a close wrote the document)."""
    store = ctx.c.store
    by_id = {
        s.id: s.data for s in store.query(C.RISK_STATUS, [Filter("expiry", "==", f"{day:%Y%m%d}")])
    }
    for s in store.query(C.RISK_STATUS, [Filter("trade_date", "==", day.isoformat())]):
        by_id.setdefault(s.id, s.data)
    return [by_id[k] for k in sorted(by_id)]


#: marks' position fields shown per leg (services/pnl_records.py position_doc).
_LEG_FIELDS = ("symbol", "sec_type", "expiry", "strike", "right", "quantity", "mark", "avg_cost")


def _spread_row(spread_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """One spread of the view: every risk field (None until known), OPEN by default."""
    row: dict[str, Any] = {"spread_id": spread_id, **dict.fromkeys(_RISK_FIELDS), **fields}
    row["state"] = row["state"] or "OPEN"
    row["unrealised"] = None
    return row


def _follower_entry(out: dict[str, dict[str, Any]], fid: str) -> dict[str, Any]:
    return out.setdefault(
        fid,
        {
            "follower_id": fid,
            "account": None,
            "marks_at": None,
            "session_over": None,
            "underlying": {},
            "spreads": [],
            "legs": [],
            "open_spreads": 0,
            "unrealised": None,
        },
    )


@API.route(
    "GET",
    "/positions",
    summary="Open spreads per follower: time-value band, close state, unrealised P&L",
    tag=TAG,
    query=FollowerDayQuery,
)
def positions(ctx: Ctx, query: FollowerDayQuery) -> dict[str, Any]:
    """risk_status (the time-value check's band and any close) joined with the latest
    marks (positions with marks, unrealised per spread) by spread id."""
    day = day_of(ctx, query)
    out: dict[str, dict[str, Any]] = {}
    spreads: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in _risk_docs(ctx, day):
        fid = str(doc.get("follower_id"))
        if query.follower not in (None, fid):
            continue
        entry = _follower_entry(out, fid)
        entry["account"] = entry["account"] or doc.get("account")
        row = _spread_row(doc.get("spread_id"), {k: doc.get(k) for k in _RISK_FIELDS})
        entry["spreads"].append(row)
        spreads[fid, str(row["spread_id"])] = row
    for snap in ctx.c.store.query(C.MARKS, [Filter("date", "==", day.isoformat())]):
        marks = snap.data
        fid = str(marks.get("follower_id"))
        if query.follower not in (None, fid):
            continue
        entry = _follower_entry(out, fid)
        entry.update(
            account=marks.get("account"),
            marks_at=marks.get("at"),
            session_over=marks.get("session_over"),
            underlying=marks.get("underlying") or {},
            legs=[{k: p.get(k) for k in _LEG_FIELDS} for p in marks.get("positions", [])],
        )
        for m in marks.get("spreads", []):
            key = (fid, str(m.get("spread_id")))
            if key not in spreads:  # held at IB, not banded yet (the check runs every minute)
                fields = {"spread": m.get("description"), "quantity": m.get("quantity")}
                spreads[key] = _spread_row(m.get("spread_id"), fields)
                entry["spreads"].append(spreads[key])
            spreads[key]["unrealised"] = m.get("unrealised")
    bands: Counter[str] = Counter()
    for entry in out.values():
        open_rows = [r for r in entry["spreads"] if r["state"] != "CLOSED"]
        entry["open_spreads"] = len(open_rows)
        bands.update(str(r["band"] or "UNCHECKED") for r in open_rows)
        marked = [Decimal(r["unrealised"]) for r in open_rows if r["unrealised"] is not None]
        entry["unrealised"] = sum(marked, Decimal(0)) if marked else None
    followers = [out[k] for k in sorted(out)]
    return {
        "date": day,
        "followers": followers,
        "totals": {
            "followers": len(followers),
            "open_spreads": sum(e["open_spreads"] for e in followers),
            "bands": dict(sorted(bands.items())),
        },
    }


# --- market ------------------------------------------------------------------------


def _ny_time(moment: dt.datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%H:%M")


def _session_json(session: Session) -> dict[str, Any]:
    return {
        "date": session.day,
        "opens": _ny_time(session.open),
        "closes": _ny_time(session.close),
        "open_utc": session.open,
        "close_utc": session.close,
        "early_close": session.early_close,
    }


@API.route(
    "GET",
    "/market",
    summary="The NYSE session: open, closed or early close; open now; the next session",
    tag=TAG,
    query=DayQuery,
)
def market(ctx: Ctx, query: DayQuery) -> dict[str, Any]:
    """Times are New York wall-clock (HH:MM) with the UTC moments beside them."""
    now = ctx.c.clock.now()
    day = day_of(ctx, query)
    calendar = ctx.c.calendar
    try:
        session = calendar.session(day)
        following = calendar.next_trading_day(day, include=False)
        next_session = calendar.session(following)
    except ValueError as exc:  # exchange_calendars' DateOutOfBounds: outside its range
        rule = f"outside the NYSE calendar's range ({str(exc)[:200]})"
        raise Invalid(f"date: {rule}", fields=[FieldError("date", day.isoformat(), rule)]) from None
    open_now = session is not None and session.open <= now < session.close
    if session is None:
        status = "closed"
        reason = "weekend" if day.weekday() >= 5 else "NYSE holiday"
    else:
        status = "early-close" if session.early_close else "open"
        reason = None
    phase = "no session"
    if session is not None and day == ctx.today:
        phase = "pre-open" if now < session.open else "open" if open_now else "closed for the day"
    elif session is not None:
        phase = "past" if day < ctx.today else "future"
    return {
        "date": day,
        "now": now,
        "now_new_york": now.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S"),
        "status": status,
        "trading_day": session is not None,
        "reason": reason,
        "open_now": open_now,
        "phase": phase,
        "session": _session_json(session) if session is not None else None,
        "next_session": _session_json(next_session) if next_session is not None else None,
    }
