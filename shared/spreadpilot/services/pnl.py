"""P&L rollups (domain.md section 6; issue 6 items 1-3 and 6).

- `PnlRollup.days(start, end)`: one ``pnl_daily/{follower}_{date}`` row per
  follower and trading date, from that day's fills, observed settlements and
  final marks, chained from the previous trading day's row (its holdings and
  unrealised). The 16:30 ET job recomputes today and the `pnl_recompute_days`
  trading days before it, so a late commission or an overnight settlement (the
  pre-open check) corrects the day it belongs to; when such a day lies in a
  month already rolled up, that month is recomputed too.
- `PnlRollup.month(year, month)`: one ``pnl_monthly/{follower}_{YYYY-MM}`` row
  = realised of the month + unrealised at its last trading day - unrealised at
  the trading day before the month; the commission on it (domain.commission),
  in the billing currency with the FX rate and its date on the row; and one
  ``statements`` document per enabled follower for the mailer. A month whose
  statement was already mailed is never silently rewritten on paper: the
  difference to what was mailed becomes an ``adjustments`` document carried to
  the follower's next statement.

Every write is keyed and content-compared: re-running a rollup over the same
inputs writes nothing and leaves the same rows.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from spreadpilot.domain.calendar import MarketCalendar, ny_date
from spreadpilot.domain.commission import USD, Commission, FxRate, commission
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.money import cents
from spreadpilot.domain.pnl import (
    ZERO,
    DayMarks,
    DayResult,
    Holding,
    month_pnl,
    roll_day,
)
from spreadpilot.platform import collections as C
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Filter, Store, Transaction
from spreadpilot.services import pnl_records as R
from spreadpilot.services.followers import list_followers

log = logging.getLogger("spreadpilot.pnl")

Progress = Callable[[int, int], None]  # (done, total) after each unit of work


class PnlSettings(Protocol):
    @property
    def pnl_recompute_days(self) -> int: ...
    @property
    def pnl_exercise_threshold(self) -> Decimal: ...
    @property
    def billing_currency(self) -> str: ...
    @property
    def fx_rate(self) -> Decimal | None: ...
    @property
    def fx_rate_date(self) -> date | None: ...
    @property
    def fx_rates_file(self) -> Path | None: ...
    @property
    def commission_high_water_mark(self) -> bool: ...


class FxError(ValueError):
    """No usable FX rate for a month billed in another currency."""


def month_key(day: date) -> str:
    return f"{day:%Y-%m}"


def month_bounds(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def parse_month(text: str) -> tuple[int, int]:
    """'YYYY-MM' -> (year, month), with an error that says the expected form."""
    try:
        year, month = (int(p) for p in text.split("-"))
        date(year, month, 1)
    except ValueError:
        raise ValueError(f"month {text!r} is not YYYY-MM (e.g. 2026-11)") from None
    return year, month


def fx_for_month(s: PnlSettings, month_end: date) -> FxRate:
    """The month's rate: USD needs none; otherwise settings' rate, or the file's last
    rate on or before the month's last day (embedded mode)."""
    currency = s.billing_currency
    if currency == USD:
        return FxRate.usd()
    if s.fx_rates_file is not None:
        best: tuple[date, Decimal] | None = None
        path = Path(s.fx_rates_file)
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                for n, row in enumerate(csv.DictReader(fh), start=2):
                    try:
                        day = date.fromisoformat(row["date"].strip())
                        cur = row["currency"].strip().upper()
                        rate = Decimal(row["rate"].strip())
                    except (KeyError, ValueError, ArithmeticError, AttributeError):
                        raise FxError(
                            f"{path}:{n}: expected 'date,currency,rate' (e.g. "
                            f"2026-11-30,{currency},0.9210); fix the line"
                        ) from None
                    if cur == currency and day <= month_end and (best is None or day >= best[0]):
                        best = (day, rate)
        except OSError as exc:
            raise FxError(f"fx_rates_file {path}: {exc.strerror}") from None
        if best is None:
            raise FxError(f"{path} has no USD->{currency} rate on or before {month_end}; add one")
        return FxRate(currency, best[1], best[0])
    if s.fx_rate is None or s.fx_rate_date is None:
        raise FxError(
            f"billing in {currency}: set SPREADPILOT_FX_RATE and SPREADPILOT_FX_RATE_DATE"
        )
    return FxRate(currency, s.fx_rate, s.fx_rate_date)


def _s(value: Decimal) -> str:
    return f"{value:f}"


def dec(value: Any) -> Decimal:
    """A row's Decimal string (absent: 0)."""
    return Decimal(value) if value is not None else ZERO


#: Rows per store transaction: Firestore's limit is 500 writes per commit.
BATCH = 400


def _write_batched(store: Store, collection: str, docs: Mapping[str, dict[str, Any]]) -> None:
    """Many keyed rows in few commits (one commit per row dominated a 10,000-follower day)."""
    items = list(docs.items())
    for i in range(0, len(items), BATCH):
        chunk = items[i : i + BATCH]

        def write(txn: Transaction, chunk: list[tuple[str, dict[str, Any]]] = chunk) -> None:
            for doc_id, doc in chunk:
                txn.set(collection, doc_id, doc)

        store.transaction(write)


def _with_last_marks(
    marks: DayMarks, before: Mapping[str, Any] | None
) -> tuple[DayMarks, set[str]]:
    """A holding with no mark today (no marks taken: agent down, a holiday-adjacent
    gap) keeps its last known mark rather than falling back to cost; the row names
    the carried marks."""
    last = {k: Decimal(v) for k, v in ((before or {}).get("marks") or {}).items()}
    carried = set(last) - set(marks.prices)
    if not carried:
        return marks, set()
    return replace(marks, prices={**last, **marks.prices}), carried


def _month_to_date(r: DayResult, before: Mapping[str, Any] | None) -> dict[str, Any]:
    """Running sums of the month, chained like the holdings: the month's last row
    carries realised of the month and the unrealised it started from."""
    same = before is not None and before["month"] == month_key(r.day)
    prior: Mapping[str, Any] = before if same and before is not None else {}
    return {
        "month_realised": _s(dec(prior.get("month_realised")) + r.realised),
        "month_commissions": _s(dec(prior.get("month_commissions")) + r.commissions),
        "month_unrealised_start": prior.get("month_unrealised_start", _s(r.unrealised_before)),
        "month_days_traded": int(prior.get("month_days_traded", 0)) + (1 if r.trades else 0),
        "month_provisional": [*prior.get("month_provisional", []), r.day.isoformat()]
        if r.provisional
        else list(prior.get("month_provisional", [])),
    }


def holdings_docs(holdings: Iterable[Holding]) -> list[dict[str, Any]]:
    return [
        {**R.instrument_doc(h.instrument), "quantity": h.quantity, "cost": _s(h.cost)}
        for h in holdings
    ]


def holdings_from(docs: Iterable[Mapping[str, Any]]) -> list[Holding]:
    return [Holding(R.instrument_from(d), int(d["quantity"]), Decimal(d["cost"])) for d in docs]


def daily_doc(follower_id: str, account: str, r: DayResult) -> dict[str, Any]:
    """Figures at full precision (a month sums them, then rounds once) and in cents."""
    return {
        "follower_id": follower_id,
        "account": account,
        "date": r.day.isoformat(),
        "month": month_key(r.day),
        "realised": _s(r.realised),
        "unrealised": _s(r.unrealised),
        "unrealised_before": _s(r.unrealised_before),
        "pnl": _s(r.pnl),
        "pnl_cents": _s(cents(r.pnl)),
        "commissions": _s(r.commissions),
        "trades": r.trades,
        "holdings": holdings_docs(r.holdings),
        "marks": {k: _s(v) for k, v in sorted(r.marks.items())},
        "provisional": list(r.provisional),
        "unmarked": list(r.unmarked),
    }


@dataclass
class RollupRun:
    """What a rollup did, for the job record, the CLI and the logs."""

    days: int = 0
    rows: int = 0
    changed: int = 0
    months: list[str] = field(default_factory=list)
    adjustments: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.rows} daily rows over {self.days} trading days ({self.changed} changed)"]
        if self.months:
            parts.append(f"months {', '.join(self.months)}")
        if self.adjustments:
            parts.append(f"{self.adjustments} adjustments")
        return "; ".join(parts + self.notes)


@dataclass(frozen=True)
class _DayInputs:
    fills: dict[str, list[dict[str, Any]]]  # follower -> fill entries
    marks: dict[str, DayMarks]
    settlements: dict[str, dict[str, Any]]  # follower -> settlements doc
    accounts: dict[str, str]


class PnlRollup:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        calendar: MarketCalendar,
        settings: PnlSettings,
    ) -> None:
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self.settings = settings

    # ------------------------------------------------------------------ reading

    def followers(self) -> dict[str, Follower]:
        return {fid: f for fid, f in list_followers(self.store) if isinstance(f, Follower)}

    def trading_days(self, start: date, end: date) -> list[date]:
        out, d = [], start
        while d <= end:
            if self.calendar.is_trading_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    def previous_trading_day(self, day: date) -> date:
        d = day - timedelta(days=1)
        while not self.calendar.is_trading_day(d):
            d -= timedelta(days=1)
        return d

    def _day_inputs(self, day: date) -> _DayInputs:
        on_day = [Filter("date", "==", day.isoformat())]
        fills: dict[str, list[dict[str, Any]]] = defaultdict(list)
        accounts: dict[str, str] = {}
        for snap in self.store.query(C.FILLS, on_day):
            fid = snap.data["follower_id"]
            fills[fid].extend(snap.data.get("fills", []))
            accounts[fid] = snap.data["account"]
        marks: dict[str, DayMarks] = {}
        for snap in self.store.query(C.MARKS, on_day):
            fid = snap.data["follower_id"]
            marks[fid] = R.day_marks(snap.data)
            accounts.setdefault(fid, snap.data["account"])
        settlements = {}
        for snap in self.store.query(C.SETTLEMENTS, on_day):
            settlements[snap.data["follower_id"]] = snap.data
            accounts.setdefault(snap.data["follower_id"], snap.data["account"])
        return _DayInputs(dict(fills), marks, settlements, accounts)

    def _rows_on(self, day: date) -> dict[str, dict[str, Any]]:
        return {
            s.data["follower_id"]: s.data
            for s in self.store.query(C.PNL_DAILY, [Filter("date", "==", day.isoformat())])
        }

    # ------------------------------------------------------------------ daily

    def days(
        self, start: date, end: date, progress: Progress | None = None
    ) -> tuple[RollupRun, dict[str, list[dict[str, Any]]]]:
        """Recompute every trading day in [start, end], chained from the day before
        start. Returns the run and the rows written per month."""
        days = self.trading_days(start, end)
        run = RollupRun(days=len(days))
        previous = self._rows_on(self.previous_trading_day(days[0])) if days else {}
        touched: dict[str, list[dict[str, Any]]] = defaultdict(list)
        threshold = self.settings.pnl_exercise_threshold
        for n, day in enumerate(days, start=1):
            inputs = self._day_inputs(day)
            stored = self._rows_on(day)
            changed: dict[str, dict[str, Any]] = {}
            # a follower with a row earlier this month (or holdings carried into it) has
            # one every day after: the last trading day's rows then sum up the month
            carried = {
                f
                for f, row in previous.items()
                if row.get("holdings") or row["month"] == month_key(day)
            }
            ids = sorted(set(inputs.fills) | set(inputs.marks) | set(inputs.settlements) | carried)
            today: dict[str, dict[str, Any]] = {}
            for fid in ids:
                before = previous.get(fid)
                account = inputs.accounts.get(fid) or (before or {}).get("account", "")
                trades = [R.trade_from_fill(f, day) for f in inputs.fills.get(fid, [])]
                marks, carried_marks = _with_last_marks(
                    inputs.marks.get(fid, DayMarks(session_over=day < self._today())), before
                )
                result = roll_day(
                    day,
                    holdings_from((before or {}).get("holdings", [])),
                    trades,
                    marks,
                    dec((before or {}).get("unrealised")),
                    settled=R.settlements_from(inputs.settlements.get(fid), day),
                    threshold=threshold,
                )
                doc = daily_doc(fid, account, result)
                doc["marks_carried"] = sorted(k for k in carried_marks if k in result.marks)
                doc.update(_month_to_date(result, before))
                today[fid] = doc
                run.rows += 1
                if stored.get(fid) != doc:
                    changed[f"{fid}_{day.isoformat()}"] = doc
                    touched[month_key(day)].append(doc)
            _write_batched(self.store, C.PNL_DAILY, changed)
            run.changed += len(changed)
            previous = today
            if progress is not None:
                progress(n, len(days))
        return run, dict(touched)

    def _today(self) -> date:
        return ny_date(self.clock.now())

    def recompute(self, start: date, end: date, progress: Progress | None = None) -> RollupRun:
        """The trading days in [start, end]; a changed day of a month already rolled
        up (not the current one) recomputes that month (late data)."""
        run, touched = self.days(start, end, progress)
        current = month_key(self._today())
        for key in sorted(touched):
            if key == current:
                continue
            if self.store.query(C.PNL_MONTHLY, [Filter("month", "==", key)], limit=1):
                sub = self.month(*parse_month(key))
                run.months.append(key)
                run.adjustments += sub.adjustments
        return run

    def daily_job(self, today: date | None = None) -> RollupRun:
        """The 16:30 ET run: today and the recompute window before it."""
        today = today or self._today()
        start = today
        for _ in range(self.settings.pnl_recompute_days):
            start = self.previous_trading_day(start)
        return self.recompute(start, today)

    # ------------------------------------------------------------------ monthly

    def month_job(
        self, year: int, month: int, progress: Progress | None = None, *, full: bool = False
    ) -> RollupRun:
        """The month's rows and statements after its days are brought up to date: the
        00:10 ET run on the 1st recomputes the last `pnl_recompute_days` trading days
        (what arrived after the last daily run: the final marks, late commissions);
        `full` (`spreadpilot report`, backfills) recomputes every day from the raw
        inputs."""
        first, last = month_bounds(year, month)
        last = min(last, self._today())
        start = first
        if not full:
            start = last
            for _ in range(self.settings.pnl_recompute_days):
                start = self.previous_trading_day(start)
            start = max(start, first)
        days, _ = self.days(start, last, progress)
        run = self.month(year, month)
        run.notes = [f"{days.days} days recomputed, {days.changed} daily rows changed", *run.notes]
        return run

    def month(self, year: int, month: int, progress: Progress | None = None) -> RollupRun:
        """Monthly rows (P&L, commission) and statements for one month."""
        first, last = month_bounds(year, month)
        key = f"{year:04d}-{month:02d}"
        run = RollupRun(months=[key])
        today = self._today()
        through = min(last, today)
        complete = today > last
        days = self.trading_days(first, through)
        run.days = len(days)
        # the month's last rows carry its running sums (every follower active in the
        # month has one each trading day): one day's rows, not the whole month's
        last_rows = self._rows_on(days[-1]) if days else {}
        previous_month = self._monthly_rows(month_key(first - timedelta(days=1)))
        existing_rows = self._monthly_rows(key)
        book = _Statements(self.store, key)
        followers = self.followers()
        ids = sorted(
            {f for f, r in last_rows.items() if r["month"] == key}
            | {f.id for f in followers.values() if f.enabled}
        )
        fx = fx_for_month(self.settings, last)
        rows_out: dict[str, dict[str, Any]] = {}
        for n, fid in enumerate(ids, start=1):
            row = last_rows.get(fid)
            follower = followers.get(fid)
            doc = self._monthly_doc(
                fid,
                key,
                row if row is not None and row["month"] == key else None,
                previous_month.get(fid),
                follower,
                fx,
            )
            doc["complete"] = complete
            doc["through"] = through.isoformat()
            existing = existing_rows.get(fid)
            if existing:  # billing state is the operator's, never recomputed
                for kept in ("paid", "paid_reference", "paid_at", "paid_on"):
                    if kept in existing:
                        doc[kept] = existing[kept]
            run.rows += 1
            if existing != doc:
                rows_out[f"{fid}_{key}"] = doc
            if follower is not None and follower.enabled:
                run.adjustments += self._statement(book, fid, doc, follower, complete)
            if progress is not None:
                progress(n, len(ids))
        _write_batched(self.store, C.PNL_MONTHLY, rows_out)
        _write_batched(self.store, C.STATEMENTS, book.changed)
        run.changed = len(rows_out)
        return run

    def _monthly_rows(self, key: str) -> dict[str, dict[str, Any]]:
        rows = self.store.query(C.PNL_MONTHLY, [Filter("month", "==", key)])
        return {s.data["follower_id"]: s.data for s in rows}

    def _monthly_doc(
        self,
        fid: str,
        key: str,
        last: Mapping[str, Any] | None,
        previous: Mapping[str, Any] | None,
        follower: Follower | None,
        fx: FxRate,
    ) -> dict[str, Any]:
        """From the month's last daily row (None: nothing traded or held this month)."""
        row: Mapping[str, Any] = last or {}
        m = month_pnl(
            [
                (
                    dec(row["month_realised"]),
                    dec(row["unrealised"]),
                    dec(row["month_commissions"]),
                )
            ]
            if last
            else [],
            dec(row.get("month_unrealised_start")),
        )
        rate = follower.commission_rate if follower is not None else ZERO
        hwm = self.settings.commission_high_water_mark
        carried = dec((previous or {}).get("carried_loss_after")) if hwm else ZERO
        c = commission(m.pnl, rate, fx, high_water_mark=hwm, carried_loss=carried)
        year, month = parse_month(key)
        return {
            "follower_id": fid,
            "month": key,
            "year": year,
            "month_number": month,
            "account": row.get("account") or (follower.ib_account if follower else ""),
            "realised": _s(cents(m.realised)),
            "unrealised_start": _s(cents(m.unrealised_start)),
            "unrealised_end": _s(cents(m.unrealised_end)),
            "pnl": _s(c.pnl_usd),
            "ib_commissions": _s(cents(m.commissions)),
            "trading_days": int(row.get("month_days_traded", 0)),
            "provisional_days": list(row.get("month_provisional", [])),
            **commission_fields(c),
            "paid": False,
            "paid_reference": None,
            "paid_at": None,
        }

    # ------------------------------------------------------------------ statements

    def _statement(
        self,
        book: _Statements,
        fid: str,
        row: Mapping[str, Any],
        follower: Follower,
        complete: bool,
    ) -> int:
        """The statement document the mailer works from; an already mailed month
        that changed yields an adjustment for the next statement. Returns the number
        of adjustments created."""
        key = book.month
        existing = book.existing.get(fid, {})
        if existing.get("status") in MAILED:
            return self._adjust(book, fid, row, existing)
        adjustments = book.applying.get(fid, [])
        amount = dec(row["commission_billed"]) + sum(
            (dec(a["commission_billed"]) for a in adjustments), ZERO
        )
        doc = {
            "follower_id": fid,
            "month": key,
            "email": follower.email,
            "status": existing.get("status", "UNSENT"),
            "sha256": existing.get("sha256"),
            "pnl": row["pnl"],
            "commission_billed": row["commission_billed"],
            "amount_due": _s(amount),
            "currency": row["currency"],
            "is_payable": amount > 0,
            "adjustments": [a["id"] for a in adjustments],
            "complete": complete,
        }
        if {k: existing.get(k) for k in doc} != doc:
            book.changed[f"{fid}_{key}"] = {**existing, **doc, "prepared_at": self.clock.now()}
        return 0

    def _adjust(
        self, book: _Statements, fid: str, row: Mapping[str, Any], sent: Mapping[str, Any]
    ) -> int:
        """Mailed figures are history: the change since (less earlier adjustments of
        the same month) is carried to the next statement as an adjustment line."""
        key = book.month
        earlier = book.correcting.get(fid, [])
        billed_pnl = dec(sent.get("billed_pnl", sent.get("pnl"))) + sum(
            (dec(a["pnl_usd"]) for a in earlier), ZERO
        )
        billed_commission = dec(sent.get("billed_commission", sent.get("commission_billed")))
        billed_commission += sum((dec(a["commission_billed"]) for a in earlier), ZERO)
        d_pnl = dec(row["pnl"]) - billed_pnl
        d_commission = dec(row["commission_billed"]) - billed_commission
        if d_pnl == 0 and d_commission == 0:
            return 0
        year, month = parse_month(key)
        following = month_key(month_bounds(year, month)[1] + timedelta(days=1))
        doc = {
            "follower_id": fid,
            "month": key,
            "applies_to": self._next_unsent(fid, following),
            "reason": f"{key} recomputed after its statement was mailed (late fills or settlement)",
            "pnl_usd": _s(d_pnl),
            "commission_billed": _s(d_commission),
            "currency": row["currency"],
            "created_at": self.clock.now(),
        }
        self.store.set(C.ADJUSTMENTS, f"{fid}_{key}_r{len(earlier) + 1}", doc)
        log.warning(
            "%s %s changed after mailing: P&L %+.2f, commission %+.2f carried to %s",
            fid,
            key,
            d_pnl,
            d_commission,
            doc["applies_to"],
            extra={"operation": "pnl_adjustment", "follower_id": fid},
        )
        return 1

    def _next_unsent(self, fid: str, key: str) -> str:
        while (self.store.get(C.STATEMENTS, f"{fid}_{key}") or {}).get("status") in MAILED:
            year, month = parse_month(key)
            key = month_key(month_bounds(year, month)[1] + timedelta(days=1))
        return key


#: Statement states after which its figures are history (mailed, or possibly mailed).
MAILED = ("SENT", "SENDING", "CHECK")


class _Statements:
    """One month's statement documents and adjustments, read once for all followers."""

    def __init__(self, store: Store, month: str) -> None:
        self.month = month
        on_month = [Filter("month", "==", month)]
        self.existing = {s.data["follower_id"]: s.data for s in store.query(C.STATEMENTS, on_month)}
        self.applying: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for snap in store.query(C.ADJUSTMENTS, [Filter("applies_to", "==", month)]):
            self.applying[snap.data["follower_id"]].append({"id": snap.id, **snap.data})
        self.correcting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for snap in store.query(C.ADJUSTMENTS, on_month):
            self.correcting[snap.data["follower_id"]].append(snap.data)
        for group in self.applying.values():
            group.sort(key=lambda a: a["id"])
        self.changed: dict[str, dict[str, Any]] = {}


def adjustments_for(store: Store, fid: str, key: str) -> list[dict[str, Any]]:
    """The corrections of earlier months carried to the statement of `key`."""
    snaps = store.query(
        C.ADJUSTMENTS, [Filter("follower_id", "==", fid), Filter("applies_to", "==", key)]
    )
    return sorted(({"id": s.id, **s.data} for s in snaps), key=lambda a: a["id"])


def commission_fields(c: Commission) -> dict[str, Any]:
    return {
        "commission_rate": _s(c.rate),
        "commission_base": _s(cents(c.base_usd)),
        "commission_usd": _s(c.commission_usd),
        "currency": c.fx.currency,
        "fx_rate": _s(c.fx.rate),
        "fx_date": c.fx.day.isoformat() if c.fx.day else None,
        "commission_billed": _s(c.commission_billed),
        "pnl_billed": _s(c.pnl_billed),
        "is_payable": c.is_payable,
        "high_water_mark": c.high_water_mark,
        "carried_loss_before": _s(cents(c.carried_loss_before)),
        "carried_loss_after": _s(cents(c.carried_loss_after)),
    }
