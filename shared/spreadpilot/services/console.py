"""The status read model: one day of trading as the operator's console shows it.

`status_view` answers GET /api/v1/status and renders the status page. Pure reads,
and a fixed number of them whatever the number of followers: one query per
collection for the day (``executions`` by signal id, ``risk_status`` by trade
date, ``pnl_daily``/``marks``/``fills``/``settlements`` by date) or a get by a
deterministic id (the day's signal and dispatch, the agent's heartbeat). Never one
read per follower: the page must stay fast with a thousand of them, and the same
numbers the CLI prints are joined here in memory.

Everything returned is JSON-ready (Decimals as strings, datetimes ISO 8601 UTC)
so the API can send it as is and the page can format it.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from spreadpilot.domain.calendar import NEW_YORK, Session, ny_date, ny_datetime
from spreadpilot.domain.money import cents
from spreadpilot.domain.orders import Purpose
from spreadpilot.domain.pnl import DayMarks, roll_day
from spreadpilot.domain.signal import Signal, signal_id
from spreadpilot.platform import collections as C
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter, Store
from spreadpilot.services import pnl_records as R
from spreadpilot.services.alerts import is_open
from spreadpilot.services.health import AGENT
from spreadpilot.services.pnl import dec, holdings_from
from spreadpilot.services.traces import OrderSummary

#: Open alerts shown (newest first) and how many recent alerts are looked through.
MAX_ALERTS = 20
ALERT_SCAN = 200
#: The signal poller's job name in job_runs.
POLL_JOB = "signal-poll"

#: How an order's outcome is coloured on the page (and told apart in the JSON).
OK, WARN, BAD, INFO, IDLE = "ok", "warn", "bad", "info", "idle"
_WORKING_STATES = frozenset({"CLAIMED", "PLACED", "MODIFIED", "PARTIAL"})
_BAND_RANK = {"CRITICAL": 0, "RISK": 1, "SAFE": 2}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEALTH_RANK = {"down": 0, "degraded": 1, "missing": 1, "stale": 1, "ok": 2}
#: health-ping results older than this are shown as stale (it runs every minute).
HEALTH_STALE = timedelta(minutes=5)


class _GcPause:
    """Holds off the cyclic garbage collector while views are being built.

    A view of 1,000 followers decodes some 4,000 stored documents: hundreds of
    thousands of short-lived, acyclic objects that reference counting frees anyway.
    Their allocation triggers the collector's full passes over every object of the
    process, which made a quarter of the view's time and most of its p95. Shared by
    the server's threads: the collector is back once the last view is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._restore = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._restore = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._restore:
                gc.enable()


_GC_PAUSE = _GcPause()


def status_view(c: Container, day: date | None = None) -> dict[str, Any]:
    """The console's status of `day` (default: today in New York if today's signal
    is claimed, else the latest day with a claimed signal; `day_note` says which)."""
    with _GC_PAUSE:
        return _view(c, day)


def _view(c: Container, day: date | None) -> dict[str, Any]:
    now = c.clock.now()
    today = ny_date(now)
    ticker = c.settings.signal_ticker
    store = c.store
    today_signal = store.get(C.SIGNALS, signal_id(today, ticker))
    day, note, latest = _pick_day(store, today, today_signal, day)
    sid = signal_id(day, ticker)
    if day == today:
        signal_doc = today_signal
    elif latest is not None:
        signal_doc = latest
    else:
        signal_doc = store.get(C.SIGNALS, sid)
    dispatch = store.get(C.DISPATCHES, sid) if signal_doc is not None else None

    followers = sorted((s.data for s in store.query(C.FOLLOWERS)), key=lambda d: str(d.get("id")))
    orders = [
        OrderSummary.from_doc(s.data)
        for s in store.query(C.EXECUTIONS, [Filter("signal_id", "==", sid)])
    ]
    # per follower: its opening order, then its closes in time order (purpose read once)
    opening: dict[str, OrderSummary] = {}
    closes: dict[str, list[OrderSummary]] = {}
    for o in sorted(orders, key=lambda o: o.first_report_at or _EPOCH):
        if o.purpose == Purpose.OPEN.value:
            opening.setdefault(o.follower_id, o)
        else:
            closes.setdefault(o.follower_id, []).append(o)
    risk = _by_follower(store.query(C.RISK_STATUS, [Filter("trade_date", "==", day.isoformat())]))
    pnl = _pnl(c, day, {str(f.get("id")) for f in followers})

    dispatched = (dispatch or {}).get("followers") or {}
    rows = []
    for f in followers:
        fid = str(f.get("id"))
        rows.append(
            _follower_row(
                f,
                dispatched.get(fid),
                opening.get(fid),
                closes.get(fid, []),
                risk.get(fid, []),
                pnl.get(fid),
                signal_doc is not None,
                dispatch is not None,
            )
        )
    return {
        "generated_at": _iso(now),
        "day": day.isoformat(),
        "day_note": note,
        "today": today.isoformat(),
        "mode": c.settings.mode,
        "dry_run": c.settings.dry_run,
        "market": _market(c, now, today),
        "signal": _signal(c, sid, signal_doc, dispatch, today_signal, today, now),
        "followers": rows,
        "totals": _totals(rows, orders, list(opening.values())),
        "alerts": _alerts(store),
        "health": _health(c, now),
    }


# ---------------------------------------------------------------- the day


def _pick_day(
    store: Store, today: date, today_signal: Mapping[str, Any] | None, asked: date | None
) -> tuple[date, str, dict[str, Any] | None]:
    """(day, why that day, its signal document when the search already read it)."""
    if asked is not None:
        return asked, "the day asked for" + (" (today)" if asked == today else ""), None
    if today_signal is not None:
        return today, "today (New York): its signal is claimed", None
    latest = store.query(C.SIGNALS, order_by="claimed_at", descending=True, limit=1)
    if not latest:
        return today, "today (New York): no signal has been claimed yet, on any day", None
    doc = latest[0].data
    trade_date = (doc.get("signal") or {}).get("trade_date") or latest[0].id[:10]
    last = date.fromisoformat(str(trade_date))
    return last, f"no signal claimed today ({today}) yet: the latest day with one", doc


# ---------------------------------------------------------------- market


def _session_json(s: Session | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "day": s.day.isoformat(),
        "open": _iso(s.open),
        "close": _iso(s.close),
        "early_close": s.early_close,
    }


def _market(c: Container, now: datetime, today: date) -> dict[str, Any]:
    """Today's NYSE session and the next one (the calendar raises beyond its range)."""
    cal = c.calendar
    try:
        session = cal.session(today)
        upcoming = session if session is not None and now < session.open else None
        if upcoming is None:
            upcoming = cal.session(cal.next_trading_day(today, include=False))
    except ValueError as exc:
        return {"today": None, "open_now": False, "next_session": None, "note": str(exc)}
    open_now = session is not None and session.open <= now < session.close
    if session is None:
        state = "closed today (not an NYSE trading day)"
    elif open_now:
        state = "open"
    elif now < session.open:
        state = "not open yet"
    else:
        state = "closed for the day"
    return {
        "today": _session_json(session),
        "open_now": open_now,
        "state": state,
        "next_session": _session_json(upcoming),
    }


# ---------------------------------------------------------------- signal


def _signal(
    c: Container,
    sid: str,
    doc: Mapping[str, Any] | None,
    dispatch: Mapping[str, Any] | None,
    today_signal: Mapping[str, Any] | None,
    today: date,
    now: datetime,
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": sid, "claimed": doc is not None}
    if doc is not None:
        raw = doc.get("signal") or {}
        try:
            description = Signal.model_validate(raw).describe()
        except ValueError:  # pydantic's ValidationError: show what is stored
            description = " ".join(f"{k}={v}" for k, v in raw.items() if v is not None)
        manual = doc.get("source") == "manual"
        out.update(
            description=description,
            strategy=raw.get("strategy"),
            qty_per_leg=raw.get("qty_per_leg"),
            source="manual" if manual else "sheet",
            sheet_row=None if manual else doc.get("sheet_row"),
            manual_by=doc.get("manual_by"),
            manual_reason=doc.get("manual_reason"),
            claimed_at=_iso(doc.get("claimed_at")),
        )
        statuses = Counter(
            str(v.get("status")) for v in ((dispatch or {}).get("followers") or {}).values()
        )
        out["dispatch"] = (
            {
                "status": dispatch.get("status"),
                "updated_at": _iso(dispatch.get("updated_at")),
                "followers": dict(sorted(statuses.items())),
            }
            if dispatch is not None
            else {"status": "NOT DISPATCHED YET", "updated_at": None, "followers": {}}
        )
    # Today's poll is worth showing whenever today's signal is not claimed yet, even
    # while the page shows an earlier day.
    out["poll"] = None if today_signal is not None else _poll(c, today, now)
    return out


def _poll(c: Container, today: date, now: datetime) -> dict[str, Any]:
    """Today's latest signal-poll run: one range on ran_at over the poll's window
    (Firestore's single-field index), the job picked out by hand."""
    s = c.settings
    try:
        trading = c.calendar.is_trading_day(today)
    except ValueError as exc:  # beyond the calendar's range
        return {"status": "UNKNOWN", "detail": str(exc), "ran_at": None}
    if not trading:
        return {
            "status": "NO_SESSION",
            "detail": f"{today} is not an NYSE trading day",
            "ran_at": None,
        }
    due = ny_datetime(today, s.signal_poll_start)
    start = due - timedelta(minutes=5)
    end = ny_datetime(today, s.signal_deadline) + timedelta(minutes=30)
    runs = [
        r.data
        for r in c.store.query(
            C.JOB_RUNS, [Filter("ran_at", ">=", start), Filter("ran_at", "<", end)]
        )
        if r.data.get("job") == POLL_JOB and isinstance(r.data.get("ran_at"), datetime)
    ]
    if not runs:
        when = "starts" if now < due else "was due from"
        return {
            "status": "NOT_STARTED" if now < due else "NO_RUN",
            "detail": f"the poll {when} {s.signal_poll_start:%H:%M} ET "
            f"(deadline {s.signal_deadline:%H:%M} ET)",
            "ran_at": None,
        }
    last = max(runs, key=lambda r: r["ran_at"])
    return {
        "status": last.get("status"),
        "detail": last.get("detail", ""),
        "ran_at": _iso(last["ran_at"]),
    }


# ---------------------------------------------------------------- followers


def _by_follower(snaps: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in snaps:
        out.setdefault(str(s.data.get("follower_id")), []).append(s.data)
    return out


def _follower_row(
    f: Mapping[str, Any],
    dispatched: Mapping[str, Any] | None,
    opening: OrderSummary | None,
    closes: list[OrderSummary],
    risk: list[dict[str, Any]],
    pnl: dict[str, Any] | None,
    claimed: bool,
    has_dispatch: bool,
) -> dict[str, Any]:
    outcome, klass, reason = _outcome(opening, dispatched, claimed, has_dispatch)
    quantity = opening.quantity if opening else int((dispatched or {}).get("quantity") or 0)
    row: dict[str, Any] = {
        "id": f.get("id"),
        "name": f.get("name", ""),
        "enabled": bool(f.get("enabled", True)),
        "state": f.get("state", "ACTIVE"),
        "gateway_id": f.get("gateway_id"),
        "account": f.get("ib_account"),
        "outcome": outcome,
        "outcome_class": klass,
        "reason": reason,
        "order_ref": opening.order_ref if opening else (dispatched or {}).get("order_ref"),
        "quantity": quantity,
        "filled": opening.filled if opening else 0,
        "fill_credit": _num(opening.avg_fill_credit) if opening else None,
        "ladder_steps": opening.ladder_steps if opening else None,
        "placed_at": _iso(opening.placed_at) if opening else None,
        "filled_at": _iso(opening.filled_at) if opening else None,
        "closes": [_close(o) for o in closes],
        **_risk(risk),
    }
    row.update(pnl or {"pnl": None, "pnl_source": None, "pnl_note": "no P&L rows or marks"})
    return row


def _outcome(
    o: OrderSummary | None,
    dispatched: Mapping[str, Any] | None,
    claimed: bool,
    has_dispatch: bool,
) -> tuple[str, str, str]:
    """(outcome, colour class, reason) of a follower's opening order, or why it has none."""
    if o is not None:
        if o.state == "SKIPPED":
            why = o.outcome if o.outcome not in ("", "SKIPPED") else ""
            label = f"SKIPPED {why}".strip()
            return label, IDLE if why == "DRY_RUN" else WARN, o.reason
        if o.state in _WORKING_STATES:
            step = f"ladder step {o.ladder_steps}" if o.ladder_steps else "at IB"
            credit = f", limit {o.last_credit}" if o.last_credit is not None else ""
            return "WORKING", INFO, f"{step}{credit}, {o.filled}/{o.quantity} filled"
        if o.state == "FILLED" and o.outcome == "FILLED":
            return "FILLED", OK, o.reason
        if o.state in ("REJECTED", "UNKNOWN"):
            return o.outcome or o.state, BAD, o.reason
        # CANCELLED: a partial fill or the ladder's floor reached, both worth a look
        return o.outcome or o.state, WARN, o.reason
    if dispatched is not None:
        status = str(dispatched.get("status", ""))
        reason = str(dispatched.get("reason") or "")
        if status in ("INTENT", "PUBLISHED"):
            return "SENT", INFO, reason or "waiting for the gateway agent"
        if status == "SKIPPED":
            return "SKIPPED", IDLE, reason
        return status or "UNKNOWN", BAD, reason
    if not claimed:
        return "NO SIGNAL", IDLE, "no signal claimed for this day"
    if has_dispatch:
        return "NOT DISPATCHED", IDLE, "not a follower when the signal was dispatched"
    return "DISPATCHING", INFO, "the dispatcher has not recorded this signal yet"


def _close(o: OrderSummary) -> dict[str, Any]:
    return {
        "purpose": o.purpose,
        "order_ref": o.order_ref,
        "outcome": o.outcome,
        "quantity": o.quantity,
        "filled": o.filled,
        "price": _num(o.net_price),
        "at": _iso(o.filled_at or o.placed_at or o.first_report_at),
        "reason": o.reason,
    }


def _risk(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The band of the follower's open spread (the worst if several), else of the
    last one checked (closed today)."""
    if not docs:
        return {
            "tv_band": None,
            "time_value": None,
            "risk_state": None,
            "spread": None,
            "risk_checked_at": None,
        }
    open_ = [d for d in docs if d.get("state") != "CLOSED" and d.get("band")]
    if open_:
        doc = min(open_, key=lambda d: _BAND_RANK.get(str(d.get("band")), 3))
    else:
        doc = max(docs, key=lambda d: _iso(d.get("checked_at")) or "")
    return {
        "tv_band": doc.get("band"),
        "time_value": doc.get("time_value"),
        "risk_state": doc.get("state"),
        "spread": doc.get("spread"),
        "risk_checked_at": _iso(doc.get("checked_at")),
        "spreads": len(docs),
    }


# ---------------------------------------------------------------- P&L


def _pnl(c: Container, day: date, followers: set[str]) -> dict[str, dict[str, Any]]:
    """The day's rolled-up rows once the rollup ran; before it, the rollup's own formula
    (roll_day) over the day's fills so far and the latest marks, computed, not stored."""
    store = c.store
    on_day = [Filter("date", "==", day.isoformat())]
    out: dict[str, dict[str, Any]] = {}
    for s in store.query(C.PNL_DAILY, on_day):
        row = s.data
        notes = []
        if row.get("provisional"):
            notes.append("expiry settled from the close (not yet seen at IB)")
        if row.get("unmarked"):
            notes.append(f"no mark: {', '.join(row['unmarked'])}")
        out[str(row.get("follower_id"))] = {
            "pnl": _money(row.get("pnl")),
            "pnl_source": "pnl_daily",
            "pnl_note": "; ".join(["rolled up", *notes]),
        }
    if out or not followers:
        # The rollup writes a row for every follower with fills, marks, settlements or
        # holdings that day: one without a row had nothing to count.
        return out
    marks = {str(s.data.get("follower_id")): s.data for s in store.query(C.MARKS, on_day)}
    fills: dict[str, list[dict[str, Any]]] = {}
    for s in store.query(C.FILLS, on_day):
        fills.setdefault(str(s.data.get("follower_id")), []).extend(s.data.get("fills") or [])
    live = {*marks, *fills} & followers
    if not live:
        return out
    settlements = {
        str(s.data.get("follower_id")): s.data for s in store.query(C.SETTLEMENTS, on_day)
    }
    before = _previous_rows(c, day)
    threshold = c.settings.pnl_exercise_threshold
    for fid in sorted(live):
        prior = before.get(fid) or {}
        mark_doc = marks.get(fid)
        result = roll_day(
            day,
            holdings_from(prior.get("holdings", [])),
            [R.trade_from_fill(f, day) for f in fills.get(fid, [])],
            R.day_marks(mark_doc) if mark_doc else DayMarks(session_over=False),
            dec(prior.get("unrealised")),
            settled=R.settlements_from(settlements.get(fid), day),
            threshold=threshold,
        )
        at = mark_doc.get("at") if mark_doc else None
        when = f"marks of {_et(at)}" if at else "no marks yet (open positions not valued)"
        unmarked = f"; no mark: {', '.join(result.unmarked)}" if result.unmarked else ""
        out[fid] = {
            "pnl": _money(result.pnl),
            "pnl_source": "marks",
            "pnl_note": f"not rolled up yet: fills so far and {when}{unmarked}",
        }
    return out


def _previous_rows(c: Container, day: date) -> dict[str, dict[str, Any]]:
    """The previous trading day's rows: the holdings and unrealised `day` starts from."""
    d = day - timedelta(days=1)
    try:
        for _ in range(14):
            if c.calendar.is_trading_day(d):
                break
            d -= timedelta(days=1)
    except ValueError:  # beyond the calendar's range: start flat
        return {}
    return {
        str(s.data.get("follower_id")): s.data
        for s in c.store.query(C.PNL_DAILY, [Filter("date", "==", d.isoformat())])
    }


# ---------------------------------------------------------------- totals


def _totals(
    rows: list[dict[str, Any]], orders: list[OrderSummary], opens: list[OrderSummary]
) -> dict[str, Any]:
    pnls = [Decimal(r["pnl"]) for r in rows if r["pnl"] is not None]
    cash = [o.cash for o in orders]
    outcomes = Counter(str(r["outcome"]) for r in rows)
    classes = Counter(str(r["outcome_class"]) for r in rows)
    return {
        "followers": len(rows),
        "enabled": sum(1 for r in rows if r["enabled"]),
        "filled": outcomes.get("FILLED", 0),
        "partial": outcomes.get("PARTIAL_FILL", 0),
        "skipped": sum(n for k, n in outcomes.items() if k.startswith("SKIPPED")),
        "working": classes.get(INFO, 0),
        "problems": classes.get(BAD, 0),
        "outcomes": dict(sorted(outcomes.items())),
        "contracts_requested": sum(o.quantity for o in opens),
        "contracts_filled": sum(o.filled for o in opens),
        "credit": _money(sum((x for x in cash if x > 0), Decimal(0))),
        "debit": _money(-sum((x for x in cash if x < 0), Decimal(0))),
        "commission": _money(sum((o.commission for o in orders), Decimal(0))),
        "pnl": _money(sum(pnls, Decimal(0))) if pnls else None,
        "pnl_followers": len(pnls),
    }


# ---------------------------------------------------------------- alerts and health


def _alerts(store: Store) -> list[dict[str, Any]]:
    """Open (not acknowledged) alerts, newest first: the latest ALERT_SCAN looked at."""
    recent = store.query(C.ALERTS, order_by="time", descending=True, limit=ALERT_SCAN)
    out = []
    for s in recent:
        a = s.data
        if not is_open(a):
            continue
        out.append(
            {
                "id": a.get("id", s.id),
                "time": _iso(a.get("time")),
                "severity": a.get("severity"),
                "type": a.get("type"),
                "message": a.get("message", ""),
                "follower_id": a.get("follower_id"),
                "source": a.get("source"),
            }
        )
        if len(out) == MAX_ALERTS:
            break
    return out


def _health(c: Container, now: datetime) -> dict[str, Any]:
    """The agent's heartbeat (live age) and its gateways, then each health document."""
    components: list[dict[str, Any]] = []
    beat = c.store.get(C.HEARTBEATS, AGENT)
    max_age = timedelta(seconds=c.settings.heartbeat_max_age_seconds)
    at = _dt(beat.get("at")) if beat else None
    if at is None:
        components.append(_component(AGENT, "missing", "no heartbeat recorded yet", None))
    else:
        age = now - at
        status = "ok" if age <= max_age else "down"
        detail = f"heartbeat {_age(age)} ago from {beat.get('holder', '?') if beat else '?'}"
        if status == "down":
            detail += f" (older than {max_age.total_seconds():.0f} s: orders and closes wait)"
        components.append(_component(AGENT, status, detail, at))
        for gid, g in sorted(((beat or {}).get("gateways") or {}).items()):
            up = str(g.get("health", "")).upper() == "UP" and g.get("connection") == "connected"
            gstatus = "ok" if up else "down"
            if status != "ok":
                gstatus = "stale"
            components.append(
                _component(
                    f"gateway {gid}",
                    gstatus,
                    f"{g.get('connection', '?')}, {g.get('health', '?')} (as of the heartbeat)",
                    at,
                )
            )
    for s in sorted(c.store.query(C.HEALTH), key=lambda s: s.id):
        if s.id == AGENT:  # the heartbeat above is fresher than the ping's copy of it
            continue
        components.append(_health_doc(s.id, s.data, now))
    worst = min((x["status"] for x in components), key=lambda st: _HEALTH_RANK.get(st, 0))
    return {"status": worst, "components": components}


def _health_doc(name: str, doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    status = str(doc.get("status", "unknown")).lower()
    checks = doc.get("checks") or {}
    failing = [
        f"{k}: {v.get('status')}" + (f" ({v['detail']})" if v.get("detail") else "")
        for k, v in sorted(checks.items())
        if isinstance(v, Mapping) and v.get("status") != "ok"
    ]
    if failing:
        detail = "; ".join(failing)
    elif checks:
        detail = f"all checks ok ({', '.join(sorted(checks))})"
    else:
        detail = str(doc.get("detail") or "")
    at = _dt(doc.get("time") or doc.get("checked_at") or doc.get("last"))
    if at is not None and now - at > HEALTH_STALE and status == "ok":
        status, detail = "stale", f"last result {_age(now - at)} old; {detail}"
    return _component(name, status, detail, at)


def _component(name: str, status: str, detail: str, at: datetime | None) -> dict[str, Any]:
    return {"component": name, "status": status, "detail": detail, "checked_at": _iso(at)}


# ---------------------------------------------------------------- values


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _iso(value: Any) -> str | None:
    """Any stored time (datetime or ISO text) as ISO 8601 in UTC."""
    at = _dt(value)
    return None if at is None else at.astimezone(UTC).isoformat()


def _et(value: Any) -> str:
    at = _dt(value)
    return "-" if at is None else f"{at.astimezone(NEW_YORK):%H:%M} ET"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _num(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _money(value: Any) -> str | None:
    """Dollars and cents (rows keep full precision; the console shows cents)."""
    if value is None:
        return None
    try:
        return f"{cents(Decimal(str(value))):f}"
    except InvalidOperation:
        return None


__all__ = ["status_view"]
