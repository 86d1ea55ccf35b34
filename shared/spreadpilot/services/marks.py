"""The agent's P&L inputs from IB (domain.md section 6): marks, fills, observed settlements.

Only the gateway agent can read them (it holds the IB connections); the daily
rollup (services/pnl.py) reads what this writes, through the one codec
(services/pnl_records.py):

- `MarksService.run`: per connected gateway one read of the positions, one of
  today's executions and one quote request (every option held + QQQ). Per
  account it writes ``marks/{account}_{date}`` (every option and stock position
  with its mark = mid, else last; IB's avgCost; QQQ's price; per open spread its
  unrealised P&L = quantity x mark x multiplier - IB's cost basis) and merges the
  executions into ``fills/{account}_{date}`` (New York date of the execution) in a
  transaction, by exec id (a re-run or a second agent changes nothing; a
  commission that came late is filled in). Executions without our orderRef
  (IB's liquidations, manual trades) are kept too: they move the P&L as well.
- `MarksService.tick`: the schedule. Every ``interval`` seconds (on the clock's
  grid) during the NYSE session, then one final run (``session_over``) per
  gateway within ``final_window`` after the close, so the 16:30 rollup has the
  day's last marks and every fill. A gateway that is down is skipped and noted;
  in the final window it is retried on the grid until it is back.
- `MarksService.observe_settlements`: at the next trading morning's pre-open
  check. An option that expired on D leaves the account with no execution; IB
  books the exercise or assignment overnight as shares. From D's final marks
  (the legs of expiry D and the QQQ shares held then, corrected by fills after
  the marks), today's positions and D's close, each leg's outcome is inferred
  (`infer_settlement`) and checked against the observed change in shares; a
  mismatch is resolved by the unique combination of outcomes that explains it
  (pin risk: a short leg assigned though just out of the money), else kept
  unreconciled and alerted (SETTLEMENT_MISMATCH). Written once to
  ``settlements/{account}_{D}`` (create-if-absent; identical re-runs are no-ops).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import MarketCalendar, Session, ny_date
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.money import CONTRACT_MULTIPLIER
from spreadpilot.domain.pnl import (
    EXERCISE_THRESHOLD,
    Holding,
    Instrument,
    Settlement,
    TradeKind,
    infer_settlement,
    stock,
)
from spreadpilot.domain.risk import pair_spreads
from spreadpilot.platform import collections as C
from spreadpilot.ports.broker import (
    BrokerError,
    ExecutionFill,
    MarketQuotes,
    Position,
    Quote,
    RiskBroker,
)
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Filter, Store, Transaction
from spreadpilot.services import pnl_records as R
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.risk import TICKER, load_followers, option_legs, owner_of

log = logging.getLogger("spreadpilot.marks")

SOURCE = "gateway-agent"
#: The final (session_over) run is due from the close until this long after it.
FINAL_WINDOW = timedelta(minutes=30)
#: Above this many expiring legs in one account the outcome combinations are not searched.
MAX_SEARCHED_LEGS = 12
ZERO = Decimal(0)


@dataclass
class MarksRun:
    """What one run did (also logged with operation="marks")."""

    day: date
    session_over: bool
    marked: list[str] = field(default_factory=list)  # accounts whose marks were written
    fills_changed: list[str] = field(default_factory=list)  # fills doc ids that changed
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        kind = "final marks" if self.session_over else "marks"
        parts = [f"{kind} {self.day}: {len(self.marked)} account(s)"]
        if self.fills_changed:
            parts.append(f"fills updated: {', '.join(self.fills_changed)}")
        return "; ".join([*parts, *self.notes])


@dataclass(frozen=True)
class Observed:
    """How one account's expiring legs settled, as decided from IB's share change."""

    legs: list[Settlement]
    reconciled: bool
    detail: str


def instrument_of(
    sec_type: str,
    symbol: str,
    expiry: str = "",
    strike: Decimal | None = None,
    right: str = "",
    multiplier: int | None = None,
) -> Instrument:
    """The P&L instrument of an IB position or execution (options: 100 unless IB says)."""
    if sec_type == "OPT" and len(expiry) >= 8 and strike is not None:
        day = date(int(expiry[:4]), int(expiry[4:6]), int(expiry[6:8]))
        return Instrument(symbol, "OPT", day, strike, right, multiplier or CONTRACT_MULTIPLIER)
    return Instrument(symbol, sec_type, multiplier=multiplier or 1)


def _position_instrument(p: Position) -> Instrument:
    return instrument_of(p.sec_type, p.symbol, p.expiry, p.strike, p.right)


def _fill_entry(e: ExecutionFill) -> dict[str, Any]:
    return R.fill_doc(
        exec_id=e.exec_id,
        at=e.at,
        instrument=instrument_of(e.sec_type, e.symbol, e.expiry, e.strike, e.right, e.multiplier),
        side=e.side,
        quantity=e.quantity,
        price=e.price,
        commission=e.commission,
        order_ref=e.order_ref,
        con_id=e.con_id,
    )


def _underlying_price(quotes: MarketQuotes) -> Decimal | None:
    """QQQ's last trade (the close, after the session), else its mid."""
    q = quotes.underlying
    if q is None:
        return None
    return q.last if q.last is not None else q.mid


def _mark(p: Position, quotes: MarketQuotes, underlying: Decimal | None) -> Decimal | None:
    if p.sec_type == "STK":
        return underlying if p.symbol == TICKER else None
    q: Quote | None = quotes.options.get(p.con_id)
    return None if q is None else q.mid


def decide_settlement(
    legs: Sequence[tuple[Instrument, int]],
    close: Decimal | None,
    observed: int,
    day: date,
    at: datetime,
    threshold: Decimal = EXERCISE_THRESHOLD,
) -> Observed:
    """Each expiring leg's outcome: from the close price if its deliveries match the
    observed share change, else the unique combination of outcomes that does
    (reconciled), else the price's outcomes unreconciled (module doc). Pure."""

    def settled(ins: Instrument, qty: int, exercised: bool) -> Settlement:
        if not exercised:
            return Settlement(ins, qty, TradeKind.EXPIRED, day, at)
        return Settlement(ins, qty, TradeKind.EXERCISED if qty > 0 else TradeKind.ASSIGNED, day, at)

    inferred = (
        None
        if close is None
        else [infer_settlement(Holding(i, q, ZERO), close, day, at, threshold) for i, q in legs]
    )
    expected = None if inferred is None else sum(s.delivered_shares for s in inferred)
    if inferred is not None and expected == observed:
        return Observed(inferred, True, f"as QQQ's close {close} implies")
    fits: list[list[Settlement]] = []
    if len(legs) <= MAX_SEARCHED_LEGS:
        for combo in itertools.product((False, True), repeat=len(legs)):
            candidate = [settled(i, q, x) for (i, q), x in zip(legs, combo, strict=True)]
            if sum(s.delivered_shares for s in candidate) == observed:
                fits.append(candidate)
    if len(fits) == 1:
        (found,) = fits
        if inferred is None:
            return Observed(found, True, f"no close price: from the share change {observed:+d}")
        differ = [s for s, i in zip(found, inferred, strict=True) if s.outcome is not i.outcome]
        names = ", ".join(f"{s.instrument.key} {s.outcome.value}" for s in differ)
        return Observed(
            found,
            True,
            f"differs from QQQ's close {close} (expected {expected:+d} shares, IB booked "
            f"{observed:+d}): {names}",
        )
    why = "no combination of" if not fits else f"{len(fits)} different combinations of"
    legs_out = inferred or [settled(i, q, False) for i, q in legs]
    shown = "unknown" if expected is None else f"{expected:+d}"
    return Observed(
        legs_out,
        False,
        f"QQQ shares changed by {observed:+d}, the close {close} implies {shown}; {why} "
        "exercise/assignment fit the change",
    )


def _previous_session(calendar: MarketCalendar, day: date) -> date:
    d = day - timedelta(days=1)
    while not calendar.is_trading_day(d):
        d -= timedelta(days=1)
    return d


def _shares(positions: Iterable[Position], account: str) -> int:
    return sum(
        p.quantity
        for p in positions
        if p.account == account and p.sec_type == "STK" and p.symbol == TICKER
    )


class MarksService:
    """Marks, fills and observed settlements over the agent's connections (module doc)."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        alerts: AlertPublisher,
        brokers: Callable[[], Mapping[str, RiskBroker]],
        calendar: MarketCalendar | None = None,
        interval_seconds: float = 30.0,
        exercise_threshold: Decimal = EXERCISE_THRESHOLD,
        final_window: timedelta = FINAL_WINDOW,
        lazy: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.alerts = alerts
        self.brokers = brokers  # every configured gateway (connected or not), read per run
        self.calendar = calendar or MarketCalendar()
        self.interval = interval_seconds
        self.threshold = exercise_threshold
        self.final_window = final_window
        #: in-session runs skip a gateway that held nothing at its last run unless told
        #: there was order activity (the demo: a day in seconds; IB itself is never lazy)
        self.lazy = lazy
        self._slot: int | None = None
        self._final_done: dict[date, set[str]] = {}
        self._holding: dict[tuple[date, str], bool] = {}
        self._sessions: dict[date, Session | None] = {}
        self._marked: dict[date, set[str]] = {}  # accounts with a marks doc of the day

    # ------------------------------------------------------------------ schedule

    def due(self, now: datetime) -> bool | None:
        """None: nothing due; False: an in-session run; True: the final run (module doc)."""
        day = ny_date(now)
        if day not in self._sessions:  # the NYSE calendar is slow to ask every tick
            self._sessions = {day: self.calendar.session(day)}
        session = self._sessions[day]
        if session is None or now < session.open:
            return None
        if int(now.timestamp() // self.interval) == self._slot:
            return None
        if now < session.close:
            return False
        pending = set(self.brokers()) - self._final_done.get(day, set())
        return True if now < session.close + self.final_window and pending else None

    async def tick(self, *, activity: bool = True) -> MarksRun | None:
        """The run due now, if any. `activity` (lazy mode): orders went out since the
        last tick, so every gateway is read."""
        now = self.clock.now()
        kind = self.due(now)
        if kind is None:
            return None
        self._slot = int(now.timestamp() // self.interval)
        day = ny_date(now)
        gateways = None
        if kind:
            gateways = sorted(set(self.brokers()) - self._final_done.get(day, set()))
        elif self.lazy and not activity:
            gateways = sorted(g for g in self.brokers() if self._holding.get((day, g), True))
            if not gateways:
                return None
        return await self.run(session_over=kind, gateways=gateways)

    # ------------------------------------------------------------------ one run

    async def run(
        self, *, session_over: bool = False, gateways: Iterable[str] | None = None
    ) -> MarksRun:
        """Mark every account of the connected `gateways` (default: all) now."""
        started = time.monotonic()
        now = self.clock.now()
        day = ny_date(now)
        out = MarksRun(day, session_over)
        brokers = self.brokers()
        wanted = sorted(brokers) if gateways is None else [g for g in gateways if g in brokers]
        connected = [g for g in wanted if brokers[g].is_connected()]
        down = [g for g in wanted if g not in connected]
        if down:
            out.notes.append(f"gateways not connected (not marked): {', '.join(down)}")
        followers = load_followers(self.store) if connected else {}
        if day not in self._marked:  # once a day: what an earlier run (or agent) marked
            self._marked = {
                day: {
                    str(s.data.get("account"))
                    for s in self.store.query(C.MARKS, [Filter("date", "==", day.isoformat())])
                }
            }
        marked_today = self._marked[day]
        results = await asyncio.gather(
            *(self._gateway(g, brokers[g], followers, marked_today, out, now) for g in connected),
            return_exceptions=True,
        )
        for gid, res in zip(connected, results, strict=True):
            if isinstance(res, BaseException):
                out.notes.append(f"{gid}: not marked ({res})")
                log.warning("marks on %s failed: %r", gid, res)
            elif session_over:
                self._final_done.setdefault(day, set()).add(gid)
        log.info(
            "%s",
            out.describe(),
            extra={
                "operation": "marks",
                "trade_date": day.isoformat(),
                "session_over": session_over,
                "accounts": len(out.marked),
                "fills_changed": len(out.fills_changed),
                "gateways_down": down,
                "latency_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return out

    async def _gateway(
        self,
        gid: str,
        broker: RiskBroker,
        followers: Mapping[str, Follower],
        marked_today: set[str],
        out: MarksRun,
        now: datetime,
    ) -> None:
        every, executions = await asyncio.gather(broker.positions(), broker.executions())
        positions = [p for p in every if p.sec_type in ("OPT", "STK")]
        self._holding[out.day, gid] = bool(positions)
        managed = set(broker.managed_accounts())
        accounts = sorted(
            {p.account for p in positions}
            | {e.account for e in executions}
            | (marked_today & managed)
        )
        if not accounts:
            return
        quotes = await broker.market_quotes([p.con_id for p in positions if p.sec_type == "OPT"])
        underlying = _underlying_price(quotes)
        for account in accounts:
            fid, _ = owner_of(followers, gid, account)
            mine = [p for p in positions if p.account == account]
            self.store.set(
                C.MARKS,
                R.doc_id(account, out.day),
                R.marks_doc(
                    account,
                    fid,
                    out.day,
                    now,
                    {TICKER: underlying} if underlying is not None else {},
                    [
                        R.position_doc(
                            _position_instrument(p),
                            p.quantity,
                            _mark(p, quotes, underlying),
                            p.avg_cost,
                            p.con_id,
                        )
                        for p in mine
                    ],
                    session_over=out.session_over,
                    spreads=self._spreads(mine, quotes),
                ),
            )
            out.marked.append(account)
            marked_today.add(account)
            by_day: dict[date, list[dict[str, Any]]] = {}
            for e in executions:
                if e.account == account:
                    by_day.setdefault(ny_date(e.at), []).append(_fill_entry(e))
            for d, entries in sorted(by_day.items()):
                if self.merge_fills(account, fid, d, entries, now):
                    out.fills_changed.append(R.doc_id(account, d))

    @staticmethod
    def _spreads(positions: Sequence[Position], quotes: MarketQuotes) -> list[dict[str, Any]]:
        """Each open spread's unrealised P&L: per leg quantity x mark x 100 - IB's cost
        (avgCost is per contract, commission included), None when a leg has no mark."""
        by_con = {p.con_id: p for p in positions}
        spreads, _ = pair_spreads(option_legs(positions))
        out = []
        for s in spreads:
            total: Decimal | None = ZERO
            for leg, qty in ((s.short, -s.quantity), (s.long, s.quantity)):
                q = quotes.options.get(leg.con_id)
                mark = None if q is None else q.mid
                cost = by_con[leg.con_id].avg_cost
                if total is None or mark is None or cost is None:
                    total = None
                    continue
                total += qty * (mark * CONTRACT_MULTIPLIER - cost)
            out.append(
                {
                    "spread_id": s.spread_id,
                    "description": f"{s.vertical.describe()} x{s.quantity}",
                    "quantity": s.quantity,
                    "unrealised": None if total is None else f"{total.quantize(Decimal('0.01')):f}",
                }
            )
        return out

    def merge_fills(
        self,
        account: str,
        follower_id: str,
        day: date,
        entries: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> bool:
        """Merge executions into ``fills/{account}_{day}`` by exec id; True if it changed."""
        key = R.doc_id(account, day)

        def merge(tx: Transaction) -> bool:
            doc = tx.get(C.FILLS, key)
            fills, changed = R.merge_fills((doc or {}).get("fills", []), entries)
            if changed:
                tx.set(C.FILLS, key, R.fills_day_doc(account, follower_id, day, fills, now))
            return changed

        return self.store.transaction(merge)

    # ------------------------------------------------------------------ settlements

    async def observe_settlements(self, today: date, managed: Mapping[str, list[str]]) -> list[str]:
        """The expiries of the previous trading day, seen from IB's positions now
        (called by the pre-open check; `managed`: connected gateway -> its accounts)."""
        d = self._previous(today)
        marks = {
            str(s.data["account"]): s.data
            for s in self.store.query(C.MARKS, [Filter("date", "==", d.isoformat())])
        }
        traded = {
            str(s.data["account"])
            for s in self.store.query(C.FILLS, [Filter("date", "==", d.isoformat())])
        }
        followers = load_followers(self.store)
        brokers = self.brokers()
        session = self.calendar.session(d)
        assert session is not None
        notes: list[str] = []
        seen: set[str] = set()
        for gid, accounts in sorted(managed.items()):
            wanted = [a for a in accounts if a in marks or a in traded]
            seen.update(accounts)
            if not wanted:
                continue
            try:
                positions = await brokers[gid].positions()
            except BrokerError as exc:
                notes.append(f"{gid}: positions unknown ({exc}); settlements not observed")
                continue
            for account in wanted:
                if account not in marks:
                    notes.append(f"{account}: no marks for {d}: settlement not observed")
                    continue
                note = self._observe(
                    gid, account, d, session.close, marks[account], positions, followers
                )
                if note:
                    notes.append(note)
        for account in sorted(set(marks) - seen):
            notes.append(f"{account}: gateway not connected: settlement of {d} not observed")
        return notes

    def _previous(self, today: date) -> date:
        return _previous_session(self.calendar, today)

    def _observe(
        self,
        gid: str,
        account: str,
        d: date,
        close_at: datetime,
        marks: Mapping[str, Any],
        positions: Sequence[Position],
        followers: Mapping[str, Follower],
    ) -> str:
        """One account: decide, write once, alert a mismatch; returns the note ('' if
        nothing of expiry D was held)."""
        at = marks["at"]
        taken = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        held: dict[str, tuple[Instrument, int]] = {}
        shares_then = 0
        for p in marks.get("positions", []):
            ins = R.instrument_from(p)
            if ins.is_option and ins.expiry == d:
                held[ins.key] = (ins, int(p["quantity"]))
            elif ins.sec_type == "STK" and ins.symbol == TICKER:
                shares_then += int(p["quantity"])
        fills = self.store.get(C.FILLS, R.doc_id(account, d)) or {}
        for f in fills.get("fills", []):
            trade = R.trade_from_fill(f, d)
            if trade.at <= taken:
                continue  # in the marks already
            if trade.instrument.key in held:
                ins, qty = held[trade.instrument.key]
                held[trade.instrument.key] = (ins, qty + trade.quantity)
            elif trade.instrument == stock(TICKER):
                shares_then += trade.quantity
        legs = sorted(((ins, qty) for ins, qty in held.values() if qty), key=lambda x: x[0].key)
        if not legs:
            return ""
        still = {
            _position_instrument(p).key
            for p in positions
            if p.account == account and p.sec_type == "OPT"
        }
        if any(ins.key in still for ins, _ in legs):
            return f"{account}: options of {d} still listed at IB: settlement not booked yet"
        observed = _shares(positions, account) - shares_then
        close = (marks.get("underlying") or {}).get(TICKER)
        result = decide_settlement(
            legs, Decimal(close) if close else None, observed, d, close_at, self.threshold
        )
        detail = result.detail
        if not marks.get("session_over"):
            detail += f"; from marks taken in the session ({taken.isoformat()}), not the final ones"
        fid, known = owner_of(followers, gid, account)
        doc = R.settlements_doc(
            account,
            fid,
            d,
            close_at,
            result.legs,
            observed_share_change=observed,
            reconciled=result.reconciled,
            detail=detail,
        )
        key = R.doc_id(account, d)
        summary = ", ".join(
            f"{s.instrument.key} {s.outcome.value}"
            + (f" ({s.delivered_shares:+d} shares)" if s.delivered_shares else "")
            for s in result.legs
        )
        if not self.store.create(C.SETTLEMENTS, key, doc):
            old = self.store.get(C.SETTLEMENTS, key) or {}
            fields = ("legs", "observed_share_change", "reconciled")
            same = all(old.get(k) == doc[k] for k in fields)
            if not same:
                log.warning(
                    "settlements/%s already recorded differently; kept as it is",
                    key,
                    extra={"operation": "settlement", "account": account},
                )
            differs = "" if same else " (differs now: kept)"
            return f"settlement {account} {d}: already recorded{differs}"
        log.info(
            "settlement %s %s: %s; %s",
            account,
            d,
            summary,
            "reconciled" if result.reconciled else "NOT reconciled",
            extra={
                "operation": "settlement",
                "account": account,
                "trade_date": d.isoformat(),
                "reconciled": result.reconciled,
                "observed_share_change": observed,
            },
        )
        if not result.reconciled:
            self._mismatch(fid, known, account, gid, d, result, shares_then, observed)
        state = "reconciled" if result.reconciled else "NOT reconciled (alerted)"
        return f"settlement {account} {d}: {summary}; {state}"

    def _mismatch(
        self,
        fid: str,
        known: bool,
        account: str,
        gid: str,
        d: date,
        result: Observed,
        shares_then: int,
        observed: int,
    ) -> None:
        legs = ", ".join(f"{s.instrument.key} x{s.quantity}" for s in result.legs)
        expected = sum(s.delivered_shares for s in result.legs)
        message = (
            f"{fid}: the options of account {account} that expired {d} ({legs}) do not match "
            f"its QQQ shares at IB: {shares_then} held at the close, {shares_then + observed} "
            f"this morning ({observed:+d}); {result.detail}. The P&L of {d} uses the close "
            f"price's outcome ({expected:+d} shares) for now: check the account's trades after "
            "the close, exercise notices and transfers at IB"
        )
        try:
            self.alerts.raise_alert(
                Alert.new(
                    AlertType.SETTLEMENT_MISMATCH,
                    message,
                    at=self.clock.now(),
                    dedup_key=f"{account}:{d}",
                    source=SOURCE,
                    follower_id=fid if known else None,
                    details={
                        "account": account,
                        "gateway_id": gid,
                        "expiry": d.isoformat(),
                        "legs": [s.instrument.key for s in result.legs],
                        "shares_at_close": shares_then,
                        "shares_now": shares_then + observed,
                        "expected_share_change": expected,
                        "observed_share_change": observed,
                    },
                )
            )
        except Exception:  # the record is written; a lost alert must not stop the check
            log.exception("could not raise SETTLEMENT_MISMATCH for %s %s", account, d)
