"""The executor: one order intent on one Broker, exactly once, reported as it goes.

Steps (domain.md sections 3-4, issue 4):

1. Claim ``execute:{order_ref}``; not acquired -> nothing (another agent, or a
   redelivery of a message already handled, has it).
2. Stale signal (older than ``order_max_age``, or not today's) -> SKIPPED + SIGNAL_STALE.
3. Reconcile the orderRef at IB *before* anything is sent: found -> resume the
   ladder (working) or report its final state, never a second order;
   ``ReconcileUnknown`` -> UNKNOWN + GATEWAY_UNREACHABLE and return with the
   claim held (its lease expires; the redelivered message reconciles again).
4. Qualify, wait (bounded) for 09:30 ET and two-sided quotes; MID_TOO_LOW.
5. whatIf: insufficient -> NO_MARGIN; incomplete twice -> SKIPPED, never guessed.
6. Place at the first ladder price, then `ladder_step` until DONE.
7. One `ExecutionReport` per state change on the ``executions`` topic.
8. Complete the claim.

Report ids are ``report_id(order_ref, event, sequence)`` where the sequence is
the event's natural key, so a resumed or repeated run re-publishes the *same*
id (the recorder keeps the first): PLACED/FILLED/CANCELLED/REJECTED 0,
MODIFIED the ladder step, PARTIAL the cumulative filled quantity, CLAIMED,
SKIPPED and UNKNOWN the claim attempt (an operator's re-send is a new attempt,
so its outcome is recorded beside the first one's).

Time comes only from the injected Clock. Waits go through `ExecutionContext.sleep`
(default `clock_sleep`): wall-time `asyncio.sleep` on a real clock; on a simulated
clock (anything with ``set``) a `SimSleeper` that moves the shared clock to the
earliest wake-up time of all waiting tasks, with short wall-time yields so a
simulator sharing the clock (its pump, the IB socket) catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.execution import (
    ExecutionEvent,
    ExecutionReport,
    LegFillReport,
    report_id,
)
from spreadpilot.domain.ladder import (
    OUTCOME_ALERT,
    AwaitQuotes,
    LadderConfig,
    LadderMove,
    LadderOutcome,
    LadderPlan,
    LadderRejection,
    LadderSettings,
    LadderState,
    ladder_step,
    plan_ladder,
)
from spreadpilot.domain.orders import OrderIntent
from spreadpilot.platform.failpoints import failpoint
from spreadpilot.ports.broker import (
    Broker,
    BrokerError,
    Legs,
    MarginCheck,
    OrderSnapshot,
    OrderState,
    ReconcileUnknown,
    SpreadQuote,
)
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Store
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import ClaimLost, Claims

log = logging.getLogger("spreadpilot.execution")

EXECUTIONS_TOPIC = "executions"
SOURCE = "gateway-agent"
OPTIONS_OPEN = time(9, 30)
_SIGNALS = "signals"  # platform.collections.SIGNALS: the claimed signal, with claimed_at
_ORDER_INTENTS = "order_intents"  # platform.collections.ORDER_INTENTS: resent_at, if re-sent

Sleep = Callable[[float], Awaitable[None]]


def fill_reports(snap: OrderSnapshot) -> tuple[LegFillReport, ...]:
    """The order's leg executions as a report carries them (every report repeats the
    fills so far; the recorder keeps each exec id once)."""
    return tuple(
        LegFillReport(
            exec_id=f.exec_id,
            con_id=f.con_id,
            side=f.side,
            quantity=f.quantity,
            price=f.price,
            commission=f.commission,
            time=f.time,
        )
        for f in snap.fills
    )


# --- time -----------------------------------------------------------------------------


class SimSleeper:
    """Sleeps on a simulated clock shared by many tasks of one event loop.

    Each sleeper registers its wake-up time; after `settle` wall seconds (so the
    other tasks get to register theirs, and a simulator sharing the clock catches
    up), the clock jumps to the earliest wake-up time and those sleepers resume,
    then `settle` again before they look. Concurrent sleepers therefore share
    simulated time (ten followers waiting 5 s move the clock 5 s, not 50).
    """

    def __init__(self, clock: Clock, settle: float = 0.02) -> None:
        self.clock = clock
        self.settle = settle
        self._heap: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None

    async def __call__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        target = self.clock.now() + timedelta(seconds=max(0.0, seconds))
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (target, next(self._seq), future))
        if self._handle is None:
            self._handle = loop.call_later(self.settle, self._tick)
        await future
        await asyncio.sleep(self.settle)

    def _tick(self) -> None:
        self._handle = None
        heap = self._heap
        while heap and heap[0][2].done():  # cancelled sleepers
            heapq.heappop(heap)
        if not heap:
            return
        target = heap[0][0]
        setter = getattr(self.clock, "set", None)
        if setter is not None and self.clock.now() < target:
            with contextlib.suppress(ValueError):  # someone moved it further meanwhile
                setter(target)
        now = self.clock.now()
        while heap and heap[0][0] <= now:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
        if heap:
            self._handle = asyncio.get_running_loop().call_later(self.settle, self._tick)


_SLEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, SimSleeper]] = (
    weakref.WeakKeyDictionary()
)


async def clock_sleep(clock: Clock, seconds: float) -> None:
    """Wait `seconds` of the clock's time.

    A simulated clock (one with ``set``, e.g. SimClock) goes through the loop's
    `SimSleeper` for that clock; any other clock is wall time (``asyncio.sleep``),
    divided by its ``speed`` if it has one (a ScaledClock at 10x waits a tenth).
    """
    if getattr(clock, "set", None) is None:
        speed = float(getattr(clock, "speed", 1.0))
        await asyncio.sleep(max(0.0, seconds) / speed)
        return
    per_loop = _SLEEPERS.setdefault(asyncio.get_running_loop(), {})
    sleeper = per_loop.get(id(clock))
    if sleeper is None or sleeper.clock is not clock:
        sleeper = per_loop[id(clock)] = SimSleeper(clock)
    await sleeper(seconds)


# --- configuration --------------------------------------------------------------------


class ExecutionSettings(LadderSettings, Protocol):
    @property
    def order_max_age_minutes(self) -> int: ...
    @property
    def claim_lease_seconds(self) -> int: ...


@dataclass(frozen=True)
class ExecutorConfig:
    """Everything the executor decides with; `from_settings` for the domain defaults."""

    ladder: LadderConfig = field(default_factory=LadderConfig)
    order_max_age: timedelta = timedelta(minutes=30)
    #: longest wait for the 09:30 open (a message that early is held, not dropped)
    open_wait_max_seconds: float = 900.0
    #: after the open, how long to wait for two-sided quotes on both legs
    quote_wait_seconds: float = 120.0
    #: re-quote interval while waiting for two-sided quotes
    quote_poll_seconds: float = 1.0
    #: longest single wait while an order works (a WAIT without a deadline re-looks this often)
    poll_seconds: float = 1.0
    #: after the ladder's nominal duration, how long before the order is cancelled anyway,
    #: and after a cancel, how long IB may take to confirm before the order is UNKNOWN
    grace_seconds: float = 30.0
    #: claim lease: the claim is renewed at least every third of it
    lease_seconds: float = 60.0
    what_if_attempts: int = 2

    @classmethod
    def from_settings(cls, s: ExecutionSettings) -> ExecutorConfig:
        return cls(
            ladder=LadderConfig.from_settings(s),
            order_max_age=timedelta(minutes=s.order_max_age_minutes),
            lease_seconds=float(s.claim_lease_seconds),
        )


@dataclass
class ExecutionContext:
    """What every executor of a process shares (one per agent)."""

    bus: Bus
    clock: Clock
    claims: Claims
    alerts: AlertPublisher
    config: ExecutorConfig = field(default_factory=ExecutorConfig)
    holder: str = "gateway-agent"
    #: read for the signal's claim time (stale check) when the caller does not pass it
    store: Store | None = None
    calendar: MarketCalendar = field(default_factory=MarketCalendar)
    sleep: Sleep | None = None

    async def wait(self, seconds: float) -> None:
        if self.sleep is not None:
            await self.sleep(seconds)
        else:
            await clock_sleep(self.clock, seconds)


# --- results --------------------------------------------------------------------------


#: ExecutionResult.outcome values besides the LadderOutcome ones.
NOT_CLAIMED = "NOT_CLAIMED"  # another holder has it (IN_PROGRESS): retry later
ALREADY_DONE = "ALREADY_DONE"  # the claim is DONE: this message is a duplicate
SKIPPED = "SKIPPED"
UNKNOWN = "UNKNOWN"  # IB's state unknown: the order waits, the message comes back
CLAIM_LOST = "CLAIM_LOST"  # our lease expired and another holder took over
NO_GATEWAY = "NO_GATEWAY"
TIMEOUT = "TIMEOUT"
ERROR = "ERROR"


@dataclass(frozen=True)
class ExecutionResult:
    order_ref: str
    follower_id: str
    gateway_id: str
    outcome: str  # a LadderOutcome value or one of the constants above
    settled: bool  # True: ack the order message; False: let it come back (nack)
    quantity: int = 0
    filled: int = 0
    credit: Decimal | None = None  # the last working limit
    avg_fill_credit: Decimal | None = None
    ladder_steps: int = 0
    reason: str = ""
    resumed: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


# --- shared quotes --------------------------------------------------------------------


class QuoteCache:
    """Quotes read once per gateway per signal: followers of one gateway asking for the
    same legs within `max_age_seconds` of the clock share one read."""

    def __init__(self, clock: Clock, max_age_seconds: float = 0.5) -> None:
        self.clock = clock
        self.max_age = timedelta(seconds=max_age_seconds)
        self._quotes: dict[tuple[int, int], SpreadQuote] = {}
        self._locks: dict[tuple[int, int], asyncio.Lock] = {}

    async def quote(self, broker: Broker, legs: Legs) -> SpreadQuote:
        key = (legs.short_con_id, legs.long_con_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._quotes.get(key)
            now = self.clock.now()
            if cached is not None and timedelta(0) <= now - cached.at <= self.max_age:
                return cached
            fresh = await broker.quote(legs)
            self._quotes[key] = fresh
            return fresh


# --- the executor ---------------------------------------------------------------------


class _Stop(Exception):
    """Internal: end the run with this result."""

    def __init__(self, result: ExecutionResult) -> None:
        super().__init__(result.outcome)
        self.result = result


_IB_CODE = re.compile(r"\b(\d{3,5})\b")


def connection_epoch(broker: Broker) -> int | None:
    """How many times the broker has connected (None if it does not say): a ladder that
    sees it change knows the connection dropped and came back under it."""
    epoch = getattr(broker, "connection_epoch", None)
    return epoch if isinstance(epoch, int) else None


def ib_code_of(text: str) -> int | None:
    """IB's error code in a rejection text ('Error 201: ...', '(code 110)'), if any."""
    match = _IB_CODE.search(text)
    return int(match.group(1)) if match else None


class _Run:
    """One execution of one intent: the reports' bookkeeping and the steps."""

    def __init__(
        self,
        ex: Executor,
        intent: OrderIntent,
        ladder: LadderConfig,
        signal_at: datetime | None,
    ) -> None:
        self.ex = ex
        self.ctx = ex.context
        self.broker = ex.broker
        self.intent = intent
        self.ladder = ladder
        self.signal_at = signal_at
        self.key = f"execute:{intent.order_ref}"
        self.attempt = 1
        self.started = self.ctx.clock.now()
        self.reported_filled = 0
        self.last_renewal = self.started
        self.steps = 0
        self.credit: Decimal | None = None
        self.resumed = False
        self.at_ib = False  # an order of this run is (or may be) working at IB
        self.emitted = itertools.count(1)  # reports' emission order (the trace's order)
        self.ending = ""  # why the order ends early, when not the ladder's own outcome

    # -- helpers

    @property
    def now(self) -> datetime:
        return self.ctx.clock.now()

    def result(
        self,
        outcome: str,
        settled: bool,
        *,
        filled: int = 0,
        avg: Decimal | None = None,
        reason: str = "",
    ) -> ExecutionResult:
        i = self.intent
        return ExecutionResult(
            order_ref=i.order_ref,
            follower_id=i.follower_id,
            gateway_id=i.gateway_id,
            outcome=outcome,
            settled=settled,
            quantity=i.quantity,
            filled=filled,
            credit=self.credit,
            avg_fill_credit=avg,
            ladder_steps=self.steps,
            reason=reason,
            resumed=self.resumed,
            started_at=self.started,
            ended_at=self.now,
        )

    def report(
        self,
        event: ExecutionEvent,
        sequence: int = 0,
        *,
        snap: OrderSnapshot | None = None,
        filled: int | None = None,
        credit: Decimal | None = None,
        ladder_step: int | None = None,
        reason: str = "",
        ib_code: int | None = None,
        with_fills: bool = False,
        outcome: str = "",
    ) -> ExecutionReport:
        i = self.intent
        fills = fill_reports(snap) if snap is not None and with_fills else ()
        rep = ExecutionReport(
            report_id=report_id(i.order_ref, event, sequence),
            order_ref=i.order_ref,
            follower_id=i.follower_id,
            account=i.ib_account,
            gateway_id=i.gateway_id,
            signal_id=i.signal_id,
            event=event,
            at=self.now,
            quantity=i.quantity,
            filled=filled if filled is not None else (snap.filled if snap else 0),
            credit=credit if credit is not None else (snap.credit if snap else None),
            avg_fill_credit=snap.avg_fill_credit if snap else None,
            ladder_step=ladder_step,
            fills=fills,
            perm_id=snap.perm_id if snap else None,
            reason=reason,
            ib_code=ib_code,
            outcome=outcome,
            seq=next(self.emitted),
        )
        self.ctx.bus.publish(
            EXECUTIONS_TOPIC,
            json.dumps(rep.model_dump(mode="json")).encode(),
            {"order_ref": i.order_ref, "follower_id": i.follower_id, "event": event.value},
        )
        log.info(
            "%s %s: %s",
            i.order_ref,
            event.value,
            reason or "",
            extra={
                # the log-based metrics (terraform monitoring.tf) count order_placed/_filled
                "operation": f"order_{event.value.lower()}",
                "order_ref": i.order_ref,
                "follower_id": i.follower_id,
                "gateway_id": i.gateway_id,
                "event": event.value,
                "outcome": outcome,
                "ladder_step": ladder_step,
                # clock time since this execution started (IB's answer, the ladder's end)
                "latency_ms": round((rep.at - self.started).total_seconds() * 1000, 1),
            },
        )
        return rep

    def alert(self, type_: AlertType, message: str, dedup: str = "", **details: Any) -> None:
        i = self.intent
        self.ctx.alerts.raise_alert(
            Alert.new(
                type_,
                message,
                at=self.now,
                dedup_key=f"{i.order_ref}{':' + dedup if dedup else ''}",
                source=SOURCE,
                follower_id=i.follower_id,
                details={
                    "order_ref": i.order_ref,
                    "account": i.ib_account,
                    "gateway_id": i.gateway_id,
                    **{k: str(v) for k, v in details.items()},
                },
            )
        )

    def skip(
        self, reason: str, alert: AlertType | None, *, code: str = "", **details: Any
    ) -> ExecutionResult:
        """Not sent: the report's outcome is `code`, else the alert's type."""
        outcome = code or (alert.value if alert is not None else SKIPPED)
        self.report(ExecutionEvent.SKIPPED, self.attempt, reason=reason, outcome=outcome)
        if alert is not None:
            self.alert(alert, f"{self.intent.follower_id}: {reason}", **details)
        self.complete({"outcome": SKIPPED, "reason": reason})
        return self.result(SKIPPED, True, reason=reason)

    def complete(self, result: dict[str, Any]) -> None:
        self.ctx.claims.complete(self.key, self.ctx.holder, result)

    def renew(self, force: bool = False) -> None:
        """Keep the claim's lease; another holder having taken over stops this run."""
        now = self.now
        lease = self.ctx.config.lease_seconds
        if not force and (now - self.last_renewal).total_seconds() < lease / 3:
            return
        claim = self.ctx.claims.acquire(self.key, self.ctx.holder)
        if not claim.acquired:
            raise _Stop(
                self.result(
                    CLAIM_LOST, False, reason=f"claim taken over by {claim.holder}: stopped"
                )
            )
        self.last_renewal = now

    async def wait(self, seconds: float) -> None:
        """Wait in slices short enough to keep the claim's lease alive."""
        left = seconds
        slice_ = max(0.001, self.ctx.config.lease_seconds / 3)
        while left > 0:
            step = min(left, slice_)
            await self.ctx.wait(step)
            left -= step
            self.renew()

    # -- the steps

    async def run(self) -> ExecutionResult:
        cfg = self.ctx.config
        claim = self.ctx.claims.acquire(self.key, self.ctx.holder)
        if not claim.acquired:
            if claim.done:
                return self.result(ALREADY_DONE, True, reason="claim is DONE")
            return self.result(NOT_CLAIMED, False, reason=f"held by {claim.holder}")
        self.attempt = claim.attempt
        self.last_renewal = self.now
        taken = ", taken over from an expired lease" if claim.taken_over else ""
        self.report(
            ExecutionEvent.CLAIMED,
            claim.attempt,
            reason=f"claimed by {self.ctx.holder} (attempt {claim.attempt}{taken})",
        )
        try:
            return await self._run(cfg)
        except _Stop as stop:
            return stop.result
        except ClaimLost as exc:
            return self.result(CLAIM_LOST, False, reason=str(exc))
        except BrokerError as exc:
            # Safe to hand on: whoever takes the claim reconciles before sending.
            log.warning("%s: broker error: %s", self.intent.order_ref, exc)
            if self.at_ib:
                self.interrupted(exc)
            self.ctx.claims.release(self.key, self.ctx.holder)
            return self.result(ERROR, False, reason=f"broker error: {exc}")

    def interrupted(self, exc: BrokerError) -> None:
        """An order left working at IB without its ladder (e.g. the connection dropped):
        say so in the reports and alert, or it would sit there unexplained until the
        redelivered message reconciles and resumes it."""
        where = f"step {self.steps} (credit {self.credit})"
        self.report(
            ExecutionEvent.UNKNOWN,
            self.attempt,
            credit=self.credit,
            ladder_step=self.steps,
            reason=f"ladder interrupted at {where}: {exc}; the order stays at IB and is "
            "reconciled by orderRef and resumed when its message comes back",
        )
        self.alert(
            AlertType.GATEWAY_UNREACHABLE,
            f"{self.intent.order_ref}: ladder interrupted at {where} ({exc}); the order "
            "is working at IB unattended until it is reconciled and resumed",
            dedup=f"interrupted:{self.attempt}",
        )

    async def _run(self, cfg: ExecutorConfig) -> ExecutionResult:
        # Reconcile first, stale or not: a previous holder may have placed it, and an
        # order working at IB must be seen to its end, never dropped unattended.
        stale = self.stale_reason()
        try:
            found = await self.broker.reconcile([self.intent.order_ref])
        except ReconcileUnknown as exc:
            return self.unknown(f"reconcile failed: {exc}")
        if found.has(self.intent.order_ref):
            self.resumed = True
            return await self.resume(found.found[self.intent.order_ref], stale=stale)
        if stale is not None:
            return self.skip(stale, AlertType.SIGNAL_STALE)

        legs = await self.broker.qualify(self.intent.spread, f"{self.intent.trade_date:%Y%m%d}")
        plan = await self.await_plan(legs)
        if isinstance(plan, ExecutionResult):
            return plan
        margin = await self.margin(legs, plan.start)
        if isinstance(margin, ExecutionResult):
            return margin
        if self.broker.dry_run:
            return self.skip(
                f"dry-run: whatIf only, nothing routed (would place {self.intent.quantity} "
                f"at credit {plan.start})",
                None,
                code="DRY_RUN",
            )
        return await self.place_and_ladder(legs, plan)

    def stale_reason(self) -> str | None:
        now = self.now
        today = ny_date(now)
        if self.intent.trade_date != today:
            return f"order is for {self.intent.trade_date}, today in New York is {today}"
        signal_at = self.signal_at or self.signal_claimed_at()
        if signal_at is None:
            return None
        age = now - signal_at
        if age > self.ctx.config.order_max_age:
            limit = int(self.ctx.config.order_max_age.total_seconds() // 60)
            return (
                f"signal {self.intent.signal_id} is {int(age.total_seconds() // 60)} min old "
                f"(limit {limit} min): dropped, never traded"
            )
        return None

    def signal_claimed_at(self) -> datetime | None:
        """When the signal was claimed, or when the operator re-sent this order: a
        re-send is a fresh decision, so the order's age counts from it."""
        store = self.ctx.store
        if store is None:
            return None
        intent = store.get(_ORDER_INTENTS, self.intent.order_ref) or {}
        if isinstance(intent.get("resent_at"), datetime):
            return intent["resent_at"]  # type: ignore[no-any-return]
        doc = store.get(_SIGNALS, self.intent.signal_id)
        value = (doc or {}).get("claimed_at")
        return value if isinstance(value, datetime) else None

    def unknown(self, reason: str) -> ExecutionResult:
        """IB's state is unknown: report, alert, keep the claim (never re-send blind)."""
        self.report(ExecutionEvent.UNKNOWN, self.attempt, reason=reason)
        self.alert(
            AlertType.GATEWAY_UNREACHABLE,
            f"{self.intent.order_ref}: IB's state is unknown ({reason}); the order waits "
            "and is reconciled again, never re-sent blind",
            dedup="unknown",
        )
        return self.result(UNKNOWN, False, reason=reason)

    async def await_plan(self, legs: Legs) -> LadderPlan | ExecutionResult:
        """Wait (bounded) for the 09:30 open and two-sided quotes, then plan."""
        cfg = self.ctx.config
        day = self.intent.trade_date
        session = self.ctx.calendar.session(day)
        open_at = session.open if session is not None else ny_datetime(day, OPTIONS_OPEN)
        if session is None:
            return self.skip(
                f"{day} is not a trading day: nothing sent", None, code="MARKET_CLOSED"
            )
        if self.now >= session.close:
            return self.skip(
                f"the session of {day} is closed: nothing sent", None, code="MARKET_CLOSED"
            )
        early = (open_at - self.now).total_seconds()
        if early > cfg.open_wait_max_seconds:
            return self.skip(
                f"{early:.0f} s before the open, more than the {cfg.open_wait_max_seconds:.0f} s "
                "an order may wait: nothing sent",
                None,
                code="TOO_EARLY",
            )
        if early > 0:
            await self.wait(early)
        deadline = max(self.now, open_at) + timedelta(seconds=cfg.quote_wait_seconds)
        while True:
            quote = await self.ex.quote(legs)
            plan = plan_ladder(quote, self.ladder)
            if isinstance(plan, LadderPlan):
                return plan
            if isinstance(plan, LadderRejection):
                return self.skip(
                    plan.message,
                    plan.alert_type,
                    mid_credit=plan.mid_credit,
                    min_credit=plan.min_credit,
                )
            assert isinstance(plan, AwaitQuotes)
            if self.now >= deadline:
                return self.skip(
                    f"no two-sided quotes {cfg.quote_wait_seconds:.0f} s after the open "
                    f"({plan.message}): nothing sent",
                    AlertType.NOT_READY,
                )
            await self.wait(cfg.quote_poll_seconds)

    async def margin(self, legs: Legs, credit: Decimal) -> MarginCheck | ExecutionResult:
        i, attempts = self.intent, max(1, self.ctx.config.what_if_attempts)
        why = ""
        for _ in range(attempts):
            try:
                check = await self.broker.what_if(legs, i.ib_account, i.quantity, credit)
            except BrokerError as exc:
                why = f"whatIf failed ({exc})"
                continue
            ok = check.sufficient
            if ok is True:
                return check
            if ok is False:
                reason = (
                    f"not enough margin: whatIf needs {check.init_margin_change}, "
                    f"available {check.available_funds}"
                )
                return self.skip(
                    reason,
                    AlertType.NO_MARGIN,
                    init_margin_change=check.init_margin_change,
                    available_funds=check.available_funds,
                )
            why = "IB's whatIf reply was incomplete (margin figures missing)"
        return self.skip(
            f"margin unknown after {attempts} whatIf attempts: {why}; not sent (never guessed)",
            AlertType.NO_MARGIN,
        )

    async def place_and_ladder(self, legs: Legs, plan: LadderPlan) -> ExecutionResult:
        i = self.intent
        self.renew(force=True)
        self.credit = plan.start
        try:
            snap = await self.broker.place(legs, i.ib_account, i.quantity, plan.start, i.order_ref)
        except BrokerError as exc:
            if exc.code is not None:
                return self.rejected(None, f"{exc}", exc.code)
            # No answer: the order may or may not be at IB. Look before anything else.
            return await self.after_unclear_send(f"place got no acknowledgement ({exc})")
        failpoint("execution.after_place")  # crash tests: at IB, nothing recorded yet
        if snap.state is OrderState.REJECTED:
            return self.rejected(snap, snap.reason, ib_code_of(snap.reason))
        self.report(ExecutionEvent.PLACED, snap=snap, credit=plan.start, ladder_step=0)
        return await self.ladder_loop(LadderState(plan=plan, quantity=i.quantity), snap)

    async def after_unclear_send(self, why: str) -> ExecutionResult:
        try:
            found = await self.broker.reconcile([self.intent.order_ref])
        except ReconcileUnknown as exc:
            return self.unknown(f"{why}; reconcile failed: {exc}")
        if found.has(self.intent.order_ref):
            self.resumed = True
            return await self.resume(found.found[self.intent.order_ref])
        return self.unknown(f"{why}; not found at IB yet")

    async def resume(self, snap: OrderSnapshot, stale: str | None = None) -> ExecutionResult:
        """A previous holder placed it: continue its ladder, or report how it ended;
        if its signal went stale meanwhile, cancel it (confirmed) rather than go on."""
        i = self.intent
        self.at_ib = True
        self.credit = snap.credit
        self.reported_filled = 0
        # The holder that placed it may have died before reporting PLACED: report it
        # now under the same report id (the recorder keeps whichever came first), so
        # every order's trace has its placement.
        self.report(
            ExecutionEvent.PLACED,
            snap=snap,
            credit=snap.credit,
            reason="found at IB by the reconcile after a takeover; resumed, not re-sent",
        )
        if snap.state in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED):
            dummy = LadderPlan(
                prices=(snap.credit or Decimal(0),),
                step_seconds=self.ladder.step_seconds,
                mid_credit=Decimal(0),
                natural_credit=Decimal(0),
                min_credit=Decimal(0),
                tick=self.ladder.tick,
            )
            return await self.ladder_loop(LadderState(plan=dummy, quantity=i.quantity), snap)
        if stale is not None:
            return await self.cancel_stale(snap, stale)
        legs = await self.broker.qualify(i.spread, f"{i.trade_date:%Y%m%d}")
        quote = await self.ex.quote(legs)
        plan = plan_ladder(quote, self.ladder)
        working = snap.credit
        if not isinstance(plan, LadderPlan) or working is None:
            # Cannot price a continuation: keep the order at its price for one interval.
            plan = LadderPlan(
                prices=(working or self.ladder.min_credit,),
                step_seconds=self.ladder.step_seconds,
                mid_credit=working or Decimal(0),
                natural_credit=Decimal(0),
                min_credit=self.ladder.min_credit,
                tick=self.ladder.tick,
            )
        elif working not in plan.prices:
            # Re-plan from the working price down (the quotes have moved since).
            prices = tuple(p for p in plan.prices if p < working)
            plan = replace(plan, prices=(working, *prices[: self.ladder.max_steps]))
        step = plan.prices.index(working) if working in plan.prices else 0
        state = LadderState(plan=plan, quantity=i.quantity, step=step)
        self.steps = step
        return await self.ladder_loop(state, snap)

    async def cancel_stale(self, snap: OrderSnapshot, stale: str) -> ExecutionResult:
        """Too old to keep working: cancel the remainder, wait for IB's confirmation,
        and report what had filled (an outcome of PARTIAL_FILL or LIMIT_REACHED)."""
        working = snap.credit or self.ladder.min_credit
        plan = LadderPlan(
            prices=(working,),
            step_seconds=self.ladder.step_seconds,
            mid_credit=working,
            natural_credit=Decimal(0),
            min_credit=self.ladder.min_credit,
            tick=self.ladder.tick,
        )
        self.ending = f"{stale}; the order found working at IB was cancelled"
        self.alert(AlertType.SIGNAL_STALE, f"{self.intent.order_ref}: {self.ending}")
        state = LadderState(plan=plan, quantity=self.intent.quantity, cancel_requested=True)
        snap = await self.cancel(self.intent.order_ref, snap)
        return await self.ladder_loop(state, snap, cancel_sent_at=self.now)

    def rejected(
        self, snap: OrderSnapshot | None, reason: str, code: int | None
    ) -> ExecutionResult:
        filled = snap.filled if snap else 0
        self.report(
            ExecutionEvent.REJECTED,
            snap=snap,
            reason=reason,
            ib_code=code,
            outcome=LadderOutcome.REJECTED.value,
        )
        self.alert(
            AlertType.ORDER_REJECTED,
            f"{self.intent.order_ref} rejected by IB"
            f"{f' (code {code})' if code is not None else ''}: {reason}",
            ib_code=code,
        )
        self.complete({"outcome": LadderOutcome.REJECTED.value, "ib_code": code})
        return self.result(LadderOutcome.REJECTED.value, True, filled=filled, reason=reason)

    async def ladder_loop(
        self, state: LadderState, snap: OrderSnapshot, cancel_sent_at: datetime | None = None
    ) -> ExecutionResult:
        cfg = self.ctx.config
        ref = self.intent.order_ref
        step_started = self.now
        hard_stop = step_started + timedelta(
            seconds=state.plan.duration_seconds + cfg.grace_seconds
        )
        self.at_ib = True
        session = connection_epoch(self.broker)
        while True:
            latest = self.broker.snapshot(ref)
            if latest is not None:
                snap = latest
            elapsed = (self.now - step_started).total_seconds()
            state, action = ladder_step(state, snap, elapsed_seconds=elapsed)
            if action.move is LadderMove.DONE:
                assert action.outcome is not None
                return await self.finish(action.outcome, state, snap)
            if not self.broker.is_connected() or connection_epoch(self.broker) != session:
                # What we hold may be stale (IB went on without us): hand the order to
                # the redelivery, which reconciles it by orderRef before sending anything.
                raise BrokerError(f"{ref}: the connection to IB was lost mid-ladder")
            if state.filled > self.reported_filled:
                self.reported_filled = state.filled
                self.report(
                    ExecutionEvent.PARTIAL,
                    state.filled,
                    snap=snap,
                    filled=state.filled,
                    ladder_step=state.step,
                    with_fills=True,
                )
            if action.move is LadderMove.MODIFY:
                assert action.credit is not None
                try:
                    snap = await self.broker.modify(ref, action.credit)
                except BrokerError as exc:
                    # Most often a fill raced the modify; the next snapshot tells.
                    log.warning("%s: modify to %s failed: %s", ref, action.credit, exc)
                    latest = self.broker.snapshot(ref)
                    if latest is not None and latest.state in (
                        OrderState.FILLED,
                        OrderState.CANCELLED,
                        OrderState.REJECTED,
                    ):
                        snap = latest
                        continue
                    if exc.code is None:
                        raise  # no answer: the next holder reconciles and resumes
                    # IB refused the modify: never leave the order working unattended.
                    state = replace(state, cancel_requested=True)
                    snap = await self.cancel(ref, latest or snap)
                    cancel_sent_at = self.now
                    continue
                self.steps, self.credit = state.step, action.credit
                self.report(
                    ExecutionEvent.MODIFIED,
                    state.step,
                    snap=snap,
                    filled=state.filled,
                    credit=action.credit,
                    ladder_step=state.step,
                )
                step_started = self.now
                continue
            if action.move in (LadderMove.CANCEL_REMAINDER, LadderMove.GIVE_UP):
                snap = await self.cancel(ref, snap)
                cancel_sent_at = self.now
                continue
            # WAIT
            now = self.now
            if cancel_sent_at is not None:
                if (now - cancel_sent_at).total_seconds() > cfg.grace_seconds:
                    return self.unknown("the cancel was not confirmed in time")
            elif now >= hard_stop and not state.cancel_requested:
                state = replace(state, cancel_requested=True)
                snap = await self.cancel(ref, snap)
                cancel_sent_at = self.now
                continue
            wait = action.wait_seconds if action.wait_seconds is not None else cfg.poll_seconds
            await self.wait(min(max(wait, 0.001), cfg.poll_seconds))

    async def cancel(self, ref: str, snap: OrderSnapshot) -> OrderSnapshot:
        try:
            return await self.broker.cancel(ref)
        except BrokerError as exc:
            log.warning("%s: cancel failed: %s", ref, exc)
            return self.broker.snapshot(ref) or snap

    async def finish(
        self, outcome: LadderOutcome, state: LadderState, snap: OrderSnapshot
    ) -> ExecutionResult:
        ref = self.intent.order_ref
        if outcome is LadderOutcome.FILLED:
            snap = await self.settled_fills(snap, state.quantity)
            self.report(
                ExecutionEvent.FILLED,
                snap=snap,
                filled=state.quantity,
                credit=self.credit,
                ladder_step=state.step,
                with_fills=True,
                outcome=outcome.value,
            )
            self.complete({"outcome": outcome.value, "filled": state.quantity})
            return self.result(outcome.value, True, filled=state.quantity, avg=snap.avg_fill_credit)
        if outcome is LadderOutcome.REJECTED:
            return self.rejected(snap, snap.reason, ib_code_of(snap.reason))
        reason = {
            LadderOutcome.PARTIAL_FILL: f"{state.filled} of {state.quantity} filled, "
            "the remainder cancelled (confirmed by IB)",
            LadderOutcome.LIMIT_REACHED: f"nothing filled down to credit {self.credit} "
            f"after {state.step} ladder steps; cancelled (confirmed by IB)",
            LadderOutcome.CANCELLED: "cancelled at IB by someone else; nothing filled",
        }[outcome]
        if self.ending:
            reason = f"{self.ending} ({state.filled} of {state.quantity} filled)"
        if state.filled:
            snap = await self.settled_fills(snap, state.filled)
        self.report(
            ExecutionEvent.CANCELLED,
            snap=snap,
            filled=state.filled,
            credit=self.credit,
            ladder_step=state.step,
            reason=reason,
            with_fills=True,
            outcome=outcome.value,
        )
        alert = OUTCOME_ALERT.get(outcome)
        if alert is not None:
            self.alert(alert, f"{ref}: {reason}", filled=state.filled, credit=self.credit)
        self.complete({"outcome": outcome.value, "filled": state.filled})
        return self.result(
            outcome.value, True, filled=state.filled, avg=snap.avg_fill_credit, reason=reason
        )

    async def settled_fills(self, snap: OrderSnapshot, filled: int) -> OrderSnapshot:
        """Executions (and their commissions) may trail the status: look a few times."""
        for _ in range(3):
            legs = {f.con_id for f in snap.fills}
            per_leg = {c: sum(f.quantity for f in snap.fills if f.con_id == c) for c in legs}
            complete = len(per_leg) >= 2 and all(q >= filled for q in per_leg.values())
            if complete and all(f.commission is not None for f in snap.fills):
                return snap
            await self.ctx.wait(0)
            snap = self.broker.snapshot(self.intent.order_ref) or snap
        return snap


class Executor:
    """Executes order intents on one Broker (one gateway connection)."""

    def __init__(
        self,
        broker: Broker,
        context: ExecutionContext,
        *,
        quotes: QuoteCache | None = None,
    ) -> None:
        self.broker = broker
        self.context = context
        self.quotes = quotes

    async def quote(self, legs: Legs) -> SpreadQuote:
        if self.quotes is not None:
            return await self.quotes.quote(self.broker, legs)
        return await self.broker.quote(legs)

    async def execute(
        self,
        intent: OrderIntent,
        *,
        ladder: LadderConfig | None = None,
        signal_at: datetime | None = None,
    ) -> ExecutionResult:
        """Execute one intent (steps in the module doc). Never raises for a trading
        outcome; an unexpected error releases nothing and propagates."""
        run = _Run(self, intent, ladder or self.context.config.ladder, signal_at)
        return await run.run()


async def execute_many(
    intents: Sequence[OrderIntent],
    brokers_by_gateway: Mapping[str, Broker],
    context: ExecutionContext,
    *,
    timeout: float | None = None,
    signal_at: datetime | None = None,
) -> list[ExecutionResult]:
    """Run every follower's intent concurrently; results in the intents' order.

    Each gateway's ladders are stretched for the followers it carries
    (`LadderConfig.for_gateway`) and its followers share one quote read. A follower
    that fails or exceeds `timeout` (wall seconds) gets an ERROR/TIMEOUT result
    (not settled: its claim's lease expires and the redelivery reconciles first);
    the others are never delayed by it.
    """
    per_gateway: dict[str, int] = {}
    for intent in intents:
        per_gateway[intent.gateway_id] = per_gateway.get(intent.gateway_id, 0) + 1
    executors = {
        gw: Executor(broker, context, quotes=QuoteCache(context.clock))
        for gw, broker in brokers_by_gateway.items()
    }
    ladders = {gw: context.config.ladder.for_gateway(n) for gw, n in per_gateway.items()}

    async def one(intent: OrderIntent) -> ExecutionResult:
        executor = executors.get(intent.gateway_id)
        base = ExecutionResult(
            order_ref=intent.order_ref,
            follower_id=intent.follower_id,
            gateway_id=intent.gateway_id,
            outcome=ERROR,
            settled=False,
            quantity=intent.quantity,
        )
        if executor is None:
            context.alerts.raise_alert(
                Alert.new(
                    AlertType.GATEWAY_UNREACHABLE,
                    f"{intent.order_ref}: no connection to gateway {intent.gateway_id!r}; "
                    "the order waits",
                    at=context.clock.now(),
                    dedup_key=f"{intent.order_ref}:no-gateway",
                    source=SOURCE,
                    follower_id=intent.follower_id,
                )
            )
            return replace(base, outcome=NO_GATEWAY, reason="no broker for this gateway")
        run = executor.execute(intent, ladder=ladders[intent.gateway_id], signal_at=signal_at)
        try:
            if timeout is None:
                return await run
            return await asyncio.wait_for(run, timeout)
        except TimeoutError:
            return replace(base, outcome=TIMEOUT, reason=f"not done within {timeout} s")
        except Exception as exc:
            log.exception("executing %s failed", intent.order_ref)
            return replace(base, reason=f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(one(i) for i in intents)))
