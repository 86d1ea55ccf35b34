"""The risk jobs the gateway agent runs (domain.md section 5, issue 5 items 1-4).

- `RiskService.time_value_check`: every minute in the session. Open spreads are
  read from IB itself (positions per account: a short and a long QQQ option of
  the same expiry and right), the underlying and both legs quoted in one
  request per gateway, the short leg's time value banded (domain.risk). The
  band of each follower's spread is kept in ``risk_status`` (the status views
  read it); a change of band raises one alert (TIME_VALUE_RISK, or
  TIME_VALUE_CRITICAL on entering CRITICAL). CRITICAL closes the whole spread
  (policy: RISK_AUTO_CLOSE). Assigned shares found by the pre-open check are
  flattened by the first run at or after the open.
- `RiskService.eod_check`: 15 minutes before the close (15:45, 12:45 on early
  closes; the other firing of the job is a SKIPPED run): every 0DTE spread is
  listed; one with a leg in the money or within RISK_EOD_DISTANCE is closed or
  flagged (RISK_EOD_ACTION).
- `RiskService.pre_open_check`: readiness (gateways connected and logged in,
  every enabled follower's account managed by its gateway's login, its
  AvailableFunds) -> NOT_READY naming what is missing; QQQ shares in any
  account -> ASSIGNMENT_DETECTED (account, shares) and, per
  RISK_ASSIGNMENT_RESPONSE, a flatten at the open (FLATTEN orderRef).
- `RiskService.emergency_close`: the operator's command, per follower or all.

Every close is **one combo** (`RiskBroker.close_spread`: the BAG sold, so the
short leg is bought back and the long leg sold together in equal ratio; never a
leg alone), keyed by its orderRef (``SP-<date>-QQQ-<follower>-CLOSE|EOD|
EMERGENCY``) under the claim ``execute:<orderRef>``, reconciled at IB before
anything is sent (found: resumed, never a second order; a sibling close of the
same follower still working: nothing sent), confirmed by waiting for the fill,
reported on ``executions`` like every order and alerted (POSITION_CLOSED, with
the reason).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date
from spreadpilot.domain.errors import DomainValidationError, validate
from spreadpilot.domain.execution import (
    ExecutionEvent,
    ExecutionReport,
    report_id,
)
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.orders import Purpose, order_ref
from spreadpilot.domain.risk import (
    AutoClose,
    Band,
    CriticalReason,
    OpenSpread,
    OptionLeg,
    Reading,
    Thresholds,
    assess,
    describe_legs,
    near_the_money,
    pair_spreads,
    should_auto_close,
)
from spreadpilot.domain.signal import signal_id
from spreadpilot.platform import collections as C
from spreadpilot.ports.broker import (
    BrokerError,
    Legs,
    MarketQuotes,
    OrderSnapshot,
    OrderState,
    Position,
    ReconcileUnknown,
    RiskBroker,
)
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Filter, Store
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import Claims
from spreadpilot.services.emergency import EmergencyClose
from spreadpilot.services.execution import fill_reports

log = logging.getLogger("spreadpilot.risk")

SOURCE = "gateway-agent"
TICKER = "QQQ"
EXECUTIONS_TOPIC = "executions"
DRY_RUN_REASON = "dry-run"  # prefix of the adapter's DRY_RUN_REASON ("dry-run: whatIf only")
#: How often a close's fill is looked for while it is awaited (clock seconds).
FILL_POLL_SECONDS = 0.5
CLOSE_PURPOSES = (Purpose.CLOSE, Purpose.EOD, Purpose.EMERGENCY)

Sleep = Callable[[float], Awaitable[None]]


class RunStatus(StrEnum):
    OK = "OK"
    SKIPPED = "SKIPPED"  # not a trading day, outside the session, not this job's time
    PARTIAL = "PARTIAL"  # some gateways or followers could not be checked
    NOT_READY = "NOT_READY"  # pre-open: something is missing (alerted)
    FAILED = "FAILED"


@dataclass
class RunOutcome:
    """What one run did: recorded in job_runs; `settled` False = the command comes back."""

    status: RunStatus
    trade_date: str
    detail: str
    settled: bool = True
    data: dict[str, Any] = field(default_factory=dict)


class RiskSettings(Protocol):
    @property
    def risk_tv_safe_above(self) -> Decimal: ...
    @property
    def risk_tv_critical_at_or_below(self) -> Decimal: ...
    @property
    def risk_auto_close(self) -> str: ...
    @property
    def risk_close_order(self) -> str: ...
    @property
    def risk_close_limit_offset(self) -> Decimal: ...
    @property
    def risk_otm_buyback_debit(self) -> Decimal | None: ...
    @property
    def risk_close_wait_seconds(self) -> float: ...
    @property
    def risk_eod_action(self) -> str: ...
    @property
    def risk_eod_distance(self) -> Decimal: ...
    @property
    def risk_eod_minutes_before_close(self) -> int: ...
    @property
    def risk_assignment_response(self) -> str: ...
    @property
    def risk_min_available_funds(self) -> Decimal: ...


@dataclass(frozen=True)
class RiskConfig:
    """Everything the risk jobs decide with; `from_settings` for the configured values."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    auto_close: AutoClose = AutoClose.ALL
    close_order: str = "limit"  # market | limit (aggressive: natural debit + offset)
    limit_offset: Decimal = Decimal("0.05")
    otm_buyback_debit: Decimal | None = None
    close_wait_seconds: float = 60.0
    eod_action: str = "close"  # close | flag
    eod_distance: Decimal = Decimal("1.00")
    eod_minutes_before_close: int = 15
    assignment_response: str = "flatten"  # flatten | alert
    min_available_funds: Decimal = Decimal(0)
    lease_seconds: float = 60.0

    @classmethod
    def from_settings(cls, s: RiskSettings, lease_seconds: float = 60.0) -> RiskConfig:
        return cls(
            thresholds=Thresholds(s.risk_tv_safe_above, s.risk_tv_critical_at_or_below),
            auto_close=AutoClose(s.risk_auto_close),
            close_order=s.risk_close_order,
            limit_offset=s.risk_close_limit_offset,
            otm_buyback_debit=s.risk_otm_buyback_debit,
            close_wait_seconds=s.risk_close_wait_seconds,
            eod_action=s.risk_eod_action,
            eod_distance=s.risk_eod_distance,
            eod_minutes_before_close=s.risk_eod_minutes_before_close,
            assignment_response=s.risk_assignment_response,
            min_available_funds=s.risk_min_available_funds,
            lease_seconds=lease_seconds,
        )


@dataclass(frozen=True)
class Held:
    """An open spread in a follower's account on one gateway."""

    gateway_id: str
    follower_id: str  # the follower, or "account-<id>" for an account no follower names
    spread: OpenSpread
    known_follower: bool = True

    @property
    def status_id(self) -> str:
        return f"{self.follower_id}_{self.spread.spread_id}"

    def describe(self) -> str:
        s = self.spread
        return f"{s.vertical.describe()} x{s.quantity} ({s.account})"

    def identity(self) -> dict[str, Any]:
        """What names the spread on its `risk_status` document (every writer sets it)."""
        s = self.spread
        return {
            "follower_id": self.follower_id,
            "known_follower": self.known_follower,
            "account": s.account,
            "gateway_id": self.gateway_id,
            "spread_id": s.spread_id,
            "spread": s.vertical.describe(),
            "expiry": s.expiry,
            "right": s.right,
            "short_strike": f"{s.short.strike:f}",
            "long_strike": f"{s.long.strike:f}",
            "quantity": s.quantity,
        }


class CloseOutcome(StrEnum):
    CLOSED = "CLOSED"  # filled (confirmed)
    ALREADY_CLOSED = "ALREADY_CLOSED"  # the claim is DONE: closed by an earlier run
    WORKING = "WORKING"  # at IB, not (fully) filled yet: the next run resumes it
    BUSY = "BUSY"  # another holder has the claim, or a sibling close is working
    REJECTED = "REJECTED"
    DRY_RUN = "DRY_RUN"
    UNKNOWN = "UNKNOWN"  # IB could not tell: nothing sent blind, retried next run


@dataclass(frozen=True)
class CloseResult:
    order_ref: str
    outcome: CloseOutcome
    detail: str = ""
    debit: Decimal | None = None

    @property
    def settled(self) -> bool:
        return self.outcome not in (CloseOutcome.UNKNOWN, CloseOutcome.BUSY)

    @property
    def summary(self) -> str:
        """The outcome, with why when it is not a plain close (for run details)."""
        plain = self.outcome in (CloseOutcome.CLOSED, CloseOutcome.ALREADY_CLOSED)
        return self.outcome.value if plain or not self.detail else f"{self.outcome} ({self.detail})"


def load_followers(store: Store) -> dict[str, Follower]:
    """Every valid follower by id (an invalid record is logged and left out)."""
    out: dict[str, Follower] = {}
    for snap in store.query(C.FOLLOWERS):
        try:
            out[snap.id] = validate(Follower, snap.data, subject=f"follower {snap.id}")
        except DomainValidationError as exc:
            log.warning("follower %s is invalid, not risk-checked: %s", snap.id, exc)
    return out


def owner_of(followers: Mapping[str, Follower], gateway_id: str, account: str) -> tuple[str, bool]:
    """(follower id, known) of an IB account: the follower naming it on this gateway,
    else anywhere; an account no follower names is "account-<id>" (known False)."""
    by_gateway = [
        f for f in followers.values() if f.ib_account == account and f.gateway_id == gateway_id
    ]
    anywhere = by_gateway or [f for f in followers.values() if f.ib_account == account]
    if anywhere:
        return anywhere[0].id, True
    return f"account-{account.lower()}", False


def option_legs(positions: Iterable[Position]) -> list[OptionLeg]:
    """The QQQ option positions, as the legs `pair_spreads` pairs into spreads."""
    return [
        OptionLeg(p.account, p.con_id, p.expiry, p.right, p.strike, p.quantity)
        for p in positions
        if p.sec_type == "OPT" and p.symbol == TICKER and p.strike is not None and p.expiry
    ]


#: The pre-open's settlement observation (services/marks.py): (today, gateway id ->
#: the accounts its login manages) -> notes for the run's details.
SettlementObserver = Callable[[date, Mapping[str, list[str]]], Awaitable[list[str]]]


def _ny(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%H:%M")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.4f}"


class RiskService:
    """The risk jobs over the agent's gateway connections (see the module doc)."""

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        clock: Clock,
        claims: Claims,
        alerts: AlertPublisher,
        brokers: Callable[[], Mapping[str, RiskBroker]],
        calendar: MarketCalendar | None = None,
        config: RiskConfig | None = None,
        holder: str = SOURCE,
        sleep: Sleep | None = None,
        settlements: SettlementObserver | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.claims = claims
        self.alerts = alerts
        self.brokers = brokers  # every configured gateway (connected or not), read per run
        self.calendar = calendar or MarketCalendar()
        self.config = config or RiskConfig()
        self.holder = holder
        self._sleep = sleep
        self._seq = 0
        self.settlements = settlements

    async def wait(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        from spreadpilot.services.execution import clock_sleep

        await clock_sleep(self.clock, seconds)

    # ------------------------------------------------------------------ followers

    def followers(self) -> dict[str, Follower]:
        return load_followers(self.store)

    def _owner(
        self, followers: Mapping[str, Follower], gateway_id: str, account: str
    ) -> tuple[str, bool]:
        return owner_of(followers, gateway_id, account)

    # ------------------------------------------------------------------ reading IB

    async def _held(
        self, gateway_id: str, broker: RiskBroker, followers: Mapping[str, Follower]
    ) -> tuple[list[Held], list[OptionLeg], list[Position]]:
        positions = await broker.positions()
        spreads, unpaired = pair_spreads(option_legs(positions))
        held = []
        for s in spreads:
            fid, known = self._owner(followers, gateway_id, s.account)
            held.append(Held(gateway_id, fid, s, known))
        for leg in unpaired:
            if leg.quantity < 0:
                log.error(
                    "%s: naked short %s %s%s x%d in %s (no long leg to pair with)",
                    gateway_id,
                    leg.expiry,
                    leg.strike,
                    leg.right,
                    -leg.quantity,
                    leg.account,
                    extra={"operation": "risk_naked_leg", "account": leg.account},
                )
        return held, unpaired, positions

    def _connected(self) -> dict[str, RiskBroker]:
        return {gid: b for gid, b in self.brokers().items() if b.is_connected()}

    def _down(self) -> list[str]:
        return sorted(gid for gid, b in self.brokers().items() if not b.is_connected())

    # ------------------------------------------------------------------ time value

    async def time_value_check(self) -> RunOutcome:
        now = self.clock.now()
        day = ny_date(now)
        session = self.calendar.session(day)
        if session is None:
            return RunOutcome(RunStatus.SKIPPED, day.isoformat(), "not an NYSE trading day")
        if not session.open <= now < session.close:
            return RunOutcome(
                RunStatus.SKIPPED,
                day.isoformat(),
                f"outside the session ({_ny(session.open)}-{_ny(session.close)} ET)",
            )
        notes: list[str] = []
        notes.extend(await self.flatten_pending(day))
        followers = self.followers()
        connected = self._connected()
        results = await asyncio.gather(
            *(self._tv_gateway(gid, b, followers, day) for gid, b in connected.items()),
            return_exceptions=True,
        )
        failed = []
        counts: dict[str, int] = {}
        for gid, res in zip(connected, results, strict=True):
            if isinstance(res, BaseException):
                failed.append(gid)
                notes.append(f"{gid}: not checked ({res})")
                log.warning("time value check on %s failed: %r", gid, res)
                continue
            for key, n in res[0].items():
                counts[key] = counts.get(key, 0) + n
            notes.extend(res[1])
        down = self._down()
        if down:
            notes.append(f"gateways not connected (not checked): {', '.join(down)}")
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no open spread"
        status = RunStatus.PARTIAL if (failed or down) else RunStatus.OK
        return RunOutcome(status, day.isoformat(), "; ".join([summary, *notes]), data=counts)

    async def _tv_gateway(
        self, gid: str, broker: RiskBroker, followers: Mapping[str, Follower], day: date
    ) -> tuple[dict[str, int], list[str]]:
        held, _, _ = await self._held(gid, broker, followers)
        counts: dict[str, int] = {}
        notes: list[str] = []
        if not held:
            return counts, notes
        quotes = await broker.market_quotes(
            [c for h in held for c in (h.spread.short.con_id, h.spread.long.con_id)]
        )
        per_follower: dict[str, int] = {}
        for h in held:
            per_follower[h.follower_id] = per_follower.get(h.follower_id, 0) + 1
        for h in held:
            reading = self._reading(h, quotes)
            if reading is None:
                notes.append(f"{h.follower_id} {h.spread.spread_id}: no quote")
                counts["unquoted"] = counts.get("unquoted", 0) + 1
                continue
            counts[reading.band.value] = counts.get(reading.band.value, 0) + 1
            self._record_band(h, reading, day)
            if not should_auto_close(reading, self.config.auto_close):
                continue
            assert reading.reason is not None
            why = f"time value CRITICAL: {reading.reason.describe()}; {reading.describe()}"
            debit = None
            if reading.reason is CriticalReason.OTM_NEARLY_WORTHLESS:
                debit = self.config.otm_buyback_debit
            result = await self.close(
                broker,
                h,
                Purpose.CLOSE,
                why,
                day,
                quotes=quotes,
                max_debit=debit,
                several=per_follower[h.follower_id] > 1,
                reason_code=reading.reason.value,
            )
            notes.append(f"{h.follower_id} {h.spread.spread_id}: {result.summary}")
        return counts, notes

    def _reading(self, h: Held, quotes: MarketQuotes) -> Reading | None:
        spot = quotes.underlying.mid if quotes.underlying is not None else None
        q = quotes.options.get(h.spread.short.con_id)
        if spot is None or q is None or q.bid is None or q.ask is None or q.ask <= 0:
            return None
        s = h.spread.short
        return assess(s.right, s.strike, q.bid, q.ask, spot, self.config.thresholds)

    def _record_band(self, h: Held, reading: Reading, day: date) -> None:
        now = self.clock.now()
        doc = self.store.get(C.RISK_STATUS, h.status_id) or {}
        previous = Band(doc["band"]) if doc.get("band") else None
        changes = int(doc.get("changes", 0))
        changed = previous is not None and previous is not reading.band
        first_unsafe = previous is None and reading.band is not Band.SAFE
        if changed or first_unsafe:
            changes += 1
        self._write_status(
            h,
            doc,
            {
                "trade_date": day.isoformat(),
                "band": reading.band.value,
                "band_since": now if (changed or previous is None) else doc.get("band_since", now),
                "changes": changes,
                "time_value": _dec(reading.time_value),
                "short_mid": _dec(reading.mid),
                "intrinsic": _dec(reading.intrinsic),
                "spot": _dec(reading.spot),
                "in_the_money": reading.in_the_money,
                "critical_reason": reading.reason.value if reading.reason else None,
                "checked_at": now,
                "state": doc.get("state", "OPEN") if doc.get("state") != "CLOSED" else "OPEN",
            },
        )
        if not (changed or first_unsafe):
            return
        was = previous.value if previous is not None else "SAFE"
        critical = reading.band is Band.CRITICAL
        message = f"{h.follower_id}: {h.describe()} time value {was} -> {reading.band.value}: "
        message += reading.describe()
        if critical and reading.reason is not None:
            action = (
                "closing it now"
                if should_auto_close(reading, self.config.auto_close)
                else f"NOT closed automatically (RISK_AUTO_CLOSE={self.config.auto_close.value})"
            )
            message += f"; {reading.reason.describe()}; {action}"
        self._alert(
            AlertType.TIME_VALUE_CRITICAL if critical else AlertType.TIME_VALUE_RISK,
            message,
            dedup=f"{h.status_id}:{changes}",
            follower_id=h.follower_id if h.known_follower else None,
            band=reading.band.value,
            previous=was,
            time_value=_dec(reading.time_value),
            reason=reading.reason.value if reading.reason else None,
            account=h.spread.account,
            gateway_id=h.gateway_id,
            spread_id=h.spread.spread_id,
        )

    # ------------------------------------------------------------------ end of day

    async def eod_check(self) -> RunOutcome:
        now = self.clock.now()
        day = ny_date(now)
        session = self.calendar.session(day)
        if session is None:
            return RunOutcome(RunStatus.SKIPPED, day.isoformat(), "not an NYSE trading day")
        due = session.close - timedelta(minutes=self.config.eod_minutes_before_close)
        kind = "early close" if session.early_close else "regular close"
        if now < due - timedelta(minutes=2):
            return RunOutcome(
                RunStatus.SKIPPED,
                day.isoformat(),
                f"not today's end-of-day time: due {_ny(due)} ET ({kind} {_ny(session.close)})",
            )
        if now >= session.close:
            return RunOutcome(
                RunStatus.SKIPPED, day.isoformat(), f"the session closed at {_ny(session.close)}"
            )
        followers = self.followers()
        connected = self._connected()
        lines: list[str] = []
        failed: list[str] = []
        for gid, broker in connected.items():
            try:
                lines.extend(await self._eod_gateway(gid, broker, followers, day))
            except BrokerError as exc:
                failed.append(gid)
                lines.append(f"{gid}: not checked ({exc})")
        down = self._down()
        if down:
            lines.append(f"gateways not connected (not checked): {', '.join(down)}")
        status = RunStatus.PARTIAL if (failed or down) else RunStatus.OK
        listed = "; ".join(lines) or "no open 0DTE spread"
        log.info("end-of-day check %s: %s", day, listed, extra={"operation": "eod_check"})
        return RunOutcome(status, day.isoformat(), listed)

    async def _eod_gateway(
        self, gid: str, broker: RiskBroker, followers: Mapping[str, Follower], day: date
    ) -> list[str]:
        expiry = f"{day:%Y%m%d}"
        held = [
            h for h in (await self._held(gid, broker, followers))[0] if h.spread.expiry == expiry
        ]
        if not held:
            return []
        quotes = await broker.market_quotes(
            [c for h in held for c in (h.spread.short.con_id, h.spread.long.con_id)]
        )
        spot = quotes.underlying.mid if quotes.underlying is not None else None
        per_follower: dict[str, int] = {}
        for h in held:
            per_follower[h.follower_id] = per_follower.get(h.follower_id, 0) + 1
        lines = []
        for h in held:
            name = f"{h.follower_id} {h.describe()}"
            if spot is None:
                lines.append(f"{name}: QQQ not quoted, not judged")
                continue
            flags = near_the_money(h.spread, spot, self.config.eod_distance)
            if not flags:
                lines.append(f"{name}: out of the money by more than {self.config.eod_distance}")
                self._eod_status(h, "SAFE", "")
                continue
            why = f"end-of-day 0DTE check (QQQ {spot:.2f}): {describe_legs(flags)}"
            if self.config.eod_action == "flag":
                self._eod_status(h, "FLAGGED", why)
                self._alert(
                    AlertType.TIME_VALUE_RISK,
                    f"{h.follower_id}: {h.describe()} {why}; NOT closed (RISK_EOD_ACTION=flag): "
                    "close it by hand or accept exercise/assignment at expiry",
                    dedup=f"eod:{h.status_id}:{day}",
                    severity=Severity.CRITICAL,
                    follower_id=h.follower_id if h.known_follower else None,
                    account=h.spread.account,
                    spread_id=h.spread.spread_id,
                    check="eod",
                )
                lines.append(f"{name}: FLAGGED ({describe_legs(flags)})")
                continue
            result = await self.close(
                broker,
                h,
                Purpose.EOD,
                why,
                day,
                quotes=quotes,
                several=per_follower[h.follower_id] > 1,
                reason_code="EOD",
            )
            self._eod_status(h, result.outcome.value, why)
            lines.append(f"{name}: {result.outcome.value} ({describe_legs(flags)})")
        return lines

    def _write_status(self, h: Held, doc: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        """The spread's `risk_status` document: what it held, its identity, `fields`."""
        self.store.set(C.RISK_STATUS, h.status_id, {**doc, **h.identity(), **fields})

    def _eod_status(self, h: Held, result: str, why: str) -> None:
        self._write_status(
            h,
            self.store.get(C.RISK_STATUS, h.status_id) or {},
            {
                "eod_result": result,
                "eod_reason": why,
                "eod_checked_at": self.clock.now(),
            },
        )

    # ------------------------------------------------------------------ pre-open

    async def pre_open_check(self) -> RunOutcome:
        now = self.clock.now()
        day = ny_date(now)
        if not self.calendar.is_trading_day(day):
            return RunOutcome(RunStatus.SKIPPED, day.isoformat(), "not an NYSE trading day")
        missing: list[str] = []
        brokers = self.brokers()
        managed: dict[str, list[str]] = {}
        for gid, broker in sorted(brokers.items()):
            if not broker.is_connected():
                missing.append(f"gateway {gid} not connected")
                continue
            accounts = broker.managed_accounts()
            if not accounts:
                missing.append(f"gateway {gid} not logged in (no managed accounts)")
                continue
            managed[gid] = accounts
        followers = self.followers()
        for f in sorted(followers.values(), key=lambda f: f.id):
            if not f.trades:
                continue
            where = f"follower {f.id} ({f.ib_account})"
            if f.gateway_id not in brokers:
                missing.append(f"{where}: gateway {f.gateway_id} is not configured on the agent")
                continue
            if f.gateway_id not in managed:
                missing.append(f"{where}: unreachable (gateway {f.gateway_id} down)")
                continue
            if f.ib_account not in managed[f.gateway_id]:
                missing.append(
                    f"{where}: account not managed by gateway {f.gateway_id}'s login "
                    f"({', '.join(managed[f.gateway_id])})"
                )
                continue
            try:
                funds = await brokers[f.gateway_id].available_funds(f.ib_account)
            except BrokerError as exc:
                missing.append(f"{where}: margin unknown ({exc})")
                continue
            if funds is None:
                missing.append(f"{where}: margin unknown (IB sent no AvailableFunds)")
            elif funds <= self.config.min_available_funds:
                missing.append(f"{where}: no margin available (AvailableFunds {funds})")
        assigned = await self._assignments(day, followers, managed)
        assigned.extend(await self._observe_settlements(day, managed))
        if missing:
            self._alert(
                AlertType.NOT_READY,
                f"pre-open check {day}: not ready: " + "; ".join(missing),
                dedup=f"pre-open:{day}",
                missing=missing,
            )
        parts = ["not ready: " + "; ".join(missing)] if missing else ["ready"]
        parts.extend(assigned)
        status = RunStatus.NOT_READY if missing else RunStatus.OK
        return RunOutcome(status, day.isoformat(), "; ".join(parts), data={"missing": missing})

    async def _assignments(
        self, day: date, followers: Mapping[str, Follower], managed: Mapping[str, list[str]]
    ) -> list[str]:
        notes = []
        brokers = self.brokers()
        for gid in managed:
            try:
                positions = await brokers[gid].positions()
            except BrokerError as exc:
                notes.append(f"{gid}: positions unknown ({exc}); assignments not checked")
                continue
            for p in positions:
                if p.sec_type != "STK" or p.symbol != TICKER or not p.quantity:
                    continue
                fid, known = self._owner(followers, gid, p.account)
                doc_id = f"{day:%Y%m%d}_{p.account}"
                respond = self.config.assignment_response == "flatten"
                created = self.store.create(
                    C.ASSIGNMENTS,
                    doc_id,
                    {
                        "trade_date": day.isoformat(),
                        "account": p.account,
                        "gateway_id": gid,
                        "follower_id": fid,
                        "shares": p.quantity,
                        "detected_at": self.clock.now(),
                        "state": "PENDING" if respond else "ALERTED",
                        "response": self.config.assignment_response,
                    },
                )
                plan = (
                    "flattened at the open (market order, FLATTEN orderRef)"
                    if respond
                    else "not flattened (RISK_ASSIGNMENT_RESPONSE=alert): act by hand"
                )
                self._alert(
                    AlertType.ASSIGNMENT_DETECTED,
                    f"{fid}: {p.quantity} {TICKER} shares in account {p.account} (gateway {gid}) "
                    f"before the open of {day}: an option was exercised or assigned; {plan}",
                    dedup=f"{p.account}:{day}",
                    follower_id=fid if known else None,
                    account=p.account,
                    shares=p.quantity,
                    gateway_id=gid,
                )
                notes.append(
                    f"assignment: {p.quantity} {TICKER} shares in {p.account}"
                    + ("" if created else " (already known)")
                )
        return notes

    async def _observe_settlements(self, day: date, managed: Mapping[str, list[str]]) -> list[str]:
        """How the previous trading day's expiring options left the accounts (P&L input);
        a failure here is noted, never a failed readiness check."""
        if self.settlements is None:
            return []
        try:
            return await self.settlements(day, managed)
        except Exception as exc:
            log.exception("settlement observation failed")
            return [f"settlements not observed ({type(exc).__name__}: {exc})"]

    async def flatten_pending(self, day: date) -> list[str]:
        """Flatten the assigned shares found by today's pre-open check (at/after the open)."""
        notes = []
        pending = self.store.query(C.ASSIGNMENTS, [Filter("state", "==", "PENDING")])
        for snap in pending:
            doc = snap.data
            if doc.get("trade_date") != day.isoformat():
                continue
            broker = self.brokers().get(str(doc.get("gateway_id")))
            if broker is None or not broker.is_connected():
                notes.append(f"flatten {doc['account']}: gateway {doc.get('gateway_id')} down")
                continue
            try:
                notes.append(await self._flatten(broker, snap.id, doc, day))
            except BrokerError as exc:
                notes.append(f"flatten {doc['account']}: {exc}")
        return notes

    async def _flatten(
        self, broker: RiskBroker, doc_id: str, doc: dict[str, Any], day: date
    ) -> str:
        account, gid = str(doc["account"]), str(doc["gateway_id"])
        fid = str(doc.get("follower_id") or f"account-{account.lower()}")
        ref = order_ref(day, TICKER, fid, Purpose.FLATTEN)
        key = f"execute:{ref}"
        claim = self.claims.acquire(key, self.holder)
        if not claim.acquired:
            if claim.done:
                self.store.update(C.ASSIGNMENTS, doc_id, {"state": "FLATTENED"})
                return f"flatten {account}: already done ({ref})"
            return f"flatten {account}: held by {claim.holder}"
        rep = _Reporter(self, ref, fid, account, gid, day)
        rep.report(ExecutionEvent.CLAIMED, claim.attempt, reason=f"claimed by {self.holder}")
        try:
            found = await broker.reconcile([ref])
        except ReconcileUnknown as exc:
            self.claims.release(key, self.holder)
            return f"flatten {account}: IB's orders unknown ({exc}); retried next run"
        snap = found.found.get(ref)
        if snap is None:
            shares = sum(
                p.quantity
                for p in await broker.positions()
                if p.account == account and p.sec_type == "STK" and p.symbol == TICKER
            )
            if shares == 0:
                self.claims.complete(key, self.holder, {"outcome": "NOTHING_TO_FLATTEN"})
                self.store.update(C.ASSIGNMENTS, doc_id, {"state": "FLAT", "flat_at": rep.now})
                rep.report(ExecutionEvent.SKIPPED, reason="no QQQ shares left", outcome="FLAT")
                return f"flatten {account}: already flat"
            snap = await broker.close_stock(account, shares, ref)
            self.store.update(C.ASSIGNMENTS, doc_id, {"order_ref": ref, "flatten_shares": shares})
        result = await self._confirm(broker, rep, key, snap, what=f"flatten {account}")
        if result.outcome is CloseOutcome.CLOSED:
            self.store.update(
                C.ASSIGNMENTS, doc_id, {"state": "FLATTENED", "flattened_at": rep.now}
            )
            self._alert(
                AlertType.POSITION_CLOSED,
                f"{fid}: assigned {TICKER} shares in {account} flattened at the open ({ref})",
                dedup=ref,
                follower_id=fid if not fid.startswith("account-") else None,
                account=account,
                order_ref=ref,
                reason="ASSIGNMENT_FLATTEN",
            )
        elif result.settled:
            self.store.update(C.ASSIGNMENTS, doc_id, {"state": result.outcome.value})
        return f"flatten {account}: {result.outcome.value}"

    # ------------------------------------------------------------------ emergency

    async def emergency_close(self, command: EmergencyClose) -> RunOutcome:
        now = self.clock.now()
        day = ny_date(now)
        key = f"command:{command.command_id}"
        claim = self.claims.acquire(key, self.holder)
        if not claim.acquired:
            if claim.done:
                return RunOutcome(
                    RunStatus.SKIPPED, day.isoformat(), f"{command.command_id} already executed"
                )
            return RunOutcome(
                RunStatus.PARTIAL,
                day.isoformat(),
                f"{command.command_id} is being executed by {claim.holder}",
                settled=False,
            )
        followers = self.followers()
        targets = sorted(followers) if command.all else list(command.followers)
        brokers = self.brokers()
        outcome: dict[str, str] = {}
        unsettled = False
        held_by_gateway: dict[str, list[Held]] = {}
        quotes_by_gateway: dict[str, MarketQuotes] = {}
        why = command.describe()
        for fid in targets:
            f = followers.get(fid)
            if f is None:
                outcome[fid] = "unknown follower"
                continue
            broker = brokers.get(f.gateway_id)
            if broker is None or not broker.is_connected():
                outcome[fid] = f"gateway {f.gateway_id} unreachable: retried"
                unsettled = True
                continue
            try:
                if f.gateway_id not in held_by_gateway:
                    held_by_gateway[f.gateway_id] = (
                        await self._held(f.gateway_id, broker, followers)
                    )[0]
                mine = [h for h in held_by_gateway[f.gateway_id] if h.follower_id == fid]
                if not mine:
                    outcome[fid] = "no open spread"
                    continue
                if f.gateway_id not in quotes_by_gateway and self.config.close_order == "limit":
                    con_ids = [
                        c
                        for h in held_by_gateway[f.gateway_id]
                        for c in (h.spread.short.con_id, h.spread.long.con_id)
                    ]
                    quotes_by_gateway[f.gateway_id] = await broker.market_quotes(con_ids)
                results = []
                for h in mine:
                    r = await self.close(
                        broker,
                        h,
                        Purpose.EMERGENCY,
                        why,
                        day,
                        quotes=quotes_by_gateway.get(f.gateway_id),
                        several=len(mine) > 1,
                        reason_code="EMERGENCY",
                        extra={"command_id": command.command_id},
                    )
                    results.append(f"{h.spread.spread_id} {r.summary}")
                    unsettled = unsettled or not r.settled
                outcome[fid] = ", ".join(results)
            except BrokerError as exc:
                outcome[fid] = f"failed: {exc}"
                unsettled = True
        self.store.set(
            C.COMMANDS,
            command.command_id,
            {
                **command.model_dump(mode="json"),
                "requested_at": command.requested_at,
                "executed_at": now,
                "holder": self.holder,
                "outcome": outcome,
                "status": "PARTIAL" if unsettled else "DONE",
            },
        )
        if unsettled:
            self.claims.release(key, self.holder)
        else:
            self.claims.complete(key, self.holder, {"outcome": outcome})
        detail = f"{why}: " + ("; ".join(f"{k}: {v}" for k, v in outcome.items()) or "nobody")
        status = RunStatus.PARTIAL if unsettled else RunStatus.OK
        return RunOutcome(status, day.isoformat(), detail, settled=not unsettled, data=outcome)

    # ------------------------------------------------------------------ closing a spread

    def close_ref(self, day: date, h: Held, purpose: Purpose, several: bool) -> str:
        """The close's orderRef; a follower holding several spreads gets one per spread."""
        base = order_ref(day, TICKER, h.follower_id, purpose)
        if not several:
            return base
        return f"{base}-{h.spread.right}{h.spread.short.strike:f}"

    def _max_debit(self, h: Held, quotes: MarketQuotes | None) -> Decimal | None:
        """The aggressive limit: the natural debit (short ask - long bid) + the offset,
        never above the spread's width + the offset. None: a market order."""
        if self.config.close_order != "limit" or quotes is None:
            return None
        short = quotes.options.get(h.spread.short.con_id)
        long_ = quotes.options.get(h.spread.long.con_id)
        if short is None or long_ is None or short.ask is None:
            return None
        natural = short.ask - (long_.bid or Decimal(0))
        cap = h.spread.vertical.width + self.config.limit_offset
        return max(Decimal("0.01"), min(natural + self.config.limit_offset, cap))

    async def close(
        self,
        broker: RiskBroker,
        h: Held,
        purpose: Purpose,
        why: str,
        day: date,
        *,
        quotes: MarketQuotes | None = None,
        max_debit: Decimal | None = None,
        several: bool = False,
        reason_code: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> CloseResult:
        """Close the whole spread as one combo, exactly once (module doc)."""
        ref = self.close_ref(day, h, purpose, several)
        key = f"execute:{ref}"
        claim = self.claims.acquire(key, self.holder)
        if not claim.acquired:
            if claim.done:
                return CloseResult(ref, CloseOutcome.ALREADY_CLOSED, "claim is DONE")
            return CloseResult(ref, CloseOutcome.BUSY, f"held by {claim.holder}")
        rep = _Reporter(self, ref, h.follower_id, h.spread.account, h.gateway_id, day)
        rep.quantity = h.spread.quantity
        rep.report(
            ExecutionEvent.CLAIMED,
            claim.attempt,
            reason=f"claimed by {self.holder} (attempt {claim.attempt}): {why}",
        )
        siblings = [self.close_ref(day, h, p, several) for p in CLOSE_PURPOSES if p is not purpose]
        try:
            found = await broker.reconcile([ref, *siblings])
        except ReconcileUnknown as exc:
            rep.report(ExecutionEvent.UNKNOWN, claim.attempt, reason=f"reconcile failed: {exc}")
            self.claims.release(key, self.holder)
            return CloseResult(ref, CloseOutcome.UNKNOWN, f"reconcile failed: {exc}")
        snap = found.found.get(ref)
        if snap is None:
            working = [
                r
                for r in siblings
                if r in found.found
                and found.found[r].state
                in (OrderState.PENDING, OrderState.RESTING, OrderState.WORKING)
            ]
            if working:
                self.claims.release(key, self.holder)
                return CloseResult(ref, CloseOutcome.BUSY, f"close {working[0]} is working")
            if max_debit is None:
                max_debit = self._max_debit(h, quotes)
            legs = Legs(
                spread=h.spread.vertical,
                expiry=h.spread.expiry,
                short_con_id=h.spread.short.con_id,
                long_con_id=h.spread.long.con_id,
            )
            try:
                snap = await broker.close_spread(
                    legs, h.spread.account, h.spread.quantity, ref, max_debit
                )
            except BrokerError as exc:
                if exc.code is not None:
                    return self._rejected(rep, key, h, f"{exc}", exc.code, why)
                rep.report(ExecutionEvent.UNKNOWN, claim.attempt, reason=f"no answer: {exc}")
                self.claims.release(key, self.holder)
                return CloseResult(ref, CloseOutcome.UNKNOWN, f"no acknowledgement ({exc})")
            how = "market" if max_debit is None else f"limit, debit at most {max_debit:.2f}"
            if snap.state is OrderState.REJECTED and snap.reason.startswith(DRY_RUN_REASON):
                rep.report(
                    ExecutionEvent.SKIPPED,
                    reason=f"dry-run: would close {h.describe()} ({how}); nothing routed",
                    outcome="DRY_RUN",
                )
                self.claims.complete(key, self.holder, {"outcome": "DRY_RUN"})
                return CloseResult(ref, CloseOutcome.DRY_RUN, "dry-run: nothing routed")
            if snap.state is OrderState.REJECTED:
                return self._rejected(rep, key, h, snap.reason, None, why)
            rep.report(ExecutionEvent.PLACED, snap=snap, reason=f"close ({how}): {why}")
            self._set_state(h, "CLOSING", ref, why, reason_code)
        else:
            rep.report(ExecutionEvent.PLACED, snap=snap, reason="found at IB: resumed, not re-sent")
        result = await self._confirm(broker, rep, key, snap, what=ref)
        if result.outcome is CloseOutcome.CLOSED:
            self._set_state(h, "CLOSED", ref, why, reason_code)
            paid = f"; paid {result.debit:.2f} per share" if result.debit is not None else ""
            self._alert(
                AlertType.POSITION_CLOSED,
                f"{h.follower_id}: {h.describe()} closed as one combo ({purpose.value}): "
                f"{why}{paid}",
                dedup=ref,
                follower_id=h.follower_id if h.known_follower else None,
                order_ref=ref,
                account=h.spread.account,
                gateway_id=h.gateway_id,
                spread_id=h.spread.spread_id,
                purpose=purpose.value,
                reason=reason_code,
                debit=_dec(result.debit),
                **(extra or {}),
            )
        return result

    def _set_state(self, h: Held, state: str, ref: str, why: str, code: str) -> None:
        self._write_status(
            h,
            self.store.get(C.RISK_STATUS, h.status_id) or {},
            {
                "state": state,
                "close_ref": ref,
                "close_reason": why,
                "close_code": code,
                f"{state.lower()}_at": self.clock.now(),
            },
        )

    def _rejected(
        self, rep: _Reporter, key: str, h: Held, reason: str, code: int | None, why: str
    ) -> CloseResult:
        rep.report(ExecutionEvent.REJECTED, reason=reason, ib_code=code, outcome="REJECTED")
        self.claims.complete(key, self.holder, {"outcome": "REJECTED", "ib_code": code})
        self._alert(
            AlertType.ORDER_REJECTED,
            f"{rep.ref}: closing {h.describe()} was rejected by IB ({reason}); the spread is "
            f"STILL OPEN: close it by hand ({why})",
            dedup=rep.ref,
            follower_id=h.follower_id if h.known_follower else None,
            order_ref=rep.ref,
            ib_code=code,
        )
        return CloseResult(rep.ref, CloseOutcome.REJECTED, reason)

    async def _confirm(
        self, broker: RiskBroker, rep: _Reporter, key: str, snap: OrderSnapshot, *, what: str
    ) -> CloseResult:
        """Wait (bounded) for the order's end; FILLED completes the claim. Still working:
        the claim is released and the next run reconciles and resumes it."""
        deadline = self.clock.now() + timedelta(seconds=self.config.close_wait_seconds)
        renewed = self.clock.now()
        reported = 0
        while True:
            snap = broker.snapshot(rep.ref) or snap
            if snap.filled > reported and snap.state is not OrderState.FILLED:
                reported = snap.filled
                rep.report(ExecutionEvent.PARTIAL, snap.filled, snap=snap, with_fills=True)
            if snap.state is OrderState.FILLED:
                snap = await self._settled(broker, rep.ref, snap)
                debit = _debit(snap)
                rep.report(ExecutionEvent.FILLED, snap=snap, with_fills=True, outcome="FILLED")
                self.claims.complete(key, self.holder, {"outcome": "FILLED", "filled": snap.filled})
                return CloseResult(rep.ref, CloseOutcome.CLOSED, debit=debit)
            if snap.state in (OrderState.CANCELLED, OrderState.REJECTED):
                event = (
                    ExecutionEvent.CANCELLED
                    if snap.state is OrderState.CANCELLED
                    else ExecutionEvent.REJECTED
                )
                rep.report(
                    event, snap=snap, with_fills=True, reason=snap.reason, outcome=snap.state.value
                )
                self.claims.complete(key, self.holder, {"outcome": snap.state.value})
                self._alert(
                    AlertType.ORDER_REJECTED,
                    f"{what}: the close ended {snap.state.value} with {snap.filled}/"
                    f"{snap.quantity} filled ({snap.reason or 'no reason given'}); what is left "
                    "of the spread is STILL OPEN",
                    dedup=f"{rep.ref}:{snap.state.value}",
                    order_ref=rep.ref,
                )
                return CloseResult(rep.ref, CloseOutcome.REJECTED, snap.reason)
            now = self.clock.now()
            if now >= deadline:
                self.claims.release(key, self.holder)
                return CloseResult(
                    rep.ref,
                    CloseOutcome.WORKING,
                    f"{snap.filled}/{snap.quantity} filled after "
                    f"{self.config.close_wait_seconds:.0f} s; left working, resumed next run",
                )
            if (now - renewed).total_seconds() >= self.config.lease_seconds / 3:
                self.claims.acquire(key, self.holder)
                renewed = now
            await self.wait(FILL_POLL_SECONDS)

    async def _settled(self, broker: RiskBroker, ref: str, snap: OrderSnapshot) -> OrderSnapshot:
        """Executions may trail the status: look a few times for every leg's fills."""
        for _ in range(5):
            legs = {f.con_id for f in snap.fills}
            if legs and all(
                sum(f.quantity for f in snap.fills if f.con_id == c) >= snap.filled for c in legs
            ):
                return snap
            await self.wait(0.1)
            snap = broker.snapshot(ref) or snap
        return snap

    # ------------------------------------------------------------------ alerts

    def _alert(
        self,
        type_: AlertType,
        message: str,
        *,
        dedup: str,
        follower_id: str | None = None,
        severity: Severity | None = None,
        **details: Any,
    ) -> None:
        try:
            self.alerts.raise_alert(
                Alert.new(
                    type_,
                    message,
                    at=self.clock.now(),
                    dedup_key=dedup,
                    source=SOURCE,
                    follower_id=follower_id,
                    severity=severity,
                    details={k: v for k, v in details.items() if v is not None},
                )
            )
        except Exception:  # an alert that cannot go out must not stop a close
            log.exception("could not raise %s (%s)", type_.value, dedup)


def _debit(snap: OrderSnapshot) -> Decimal | None:
    """What the close paid per share: bought legs minus sold legs (per contract of the combo)."""
    if not snap.fills or snap.filled <= 0:
        return None
    paid = sum(
        (f.price * f.quantity * (1 if f.side == "BOT" else -1) for f in snap.fills), Decimal(0)
    )
    return (paid / snap.filled).quantize(Decimal("0.0001"))


class _Reporter:
    """Execution reports of one close or flatten order, in the executor's format."""

    def __init__(
        self, svc: RiskService, ref: str, follower_id: str, account: str, gid: str, day: date
    ) -> None:
        self.svc = svc
        self.ref = ref
        self.follower_id = follower_id
        self.account = account
        self.gateway_id = gid
        self.signal_id = signal_id(day, TICKER)
        self.quantity = 0

    @property
    def now(self) -> datetime:
        return self.svc.clock.now()

    def report(
        self,
        event: ExecutionEvent,
        sequence: int = 0,
        *,
        snap: OrderSnapshot | None = None,
        reason: str = "",
        ib_code: int | None = None,
        with_fills: bool = False,
        outcome: str = "",
    ) -> None:
        fills = fill_reports(snap) if snap is not None and with_fills else ()
        if snap is not None:
            self.quantity = max(self.quantity, snap.quantity)
        self.svc._seq += 1
        rep = ExecutionReport(
            report_id=report_id(self.ref, event, sequence),
            order_ref=self.ref,
            follower_id=self.follower_id,
            account=self.account,
            gateway_id=self.gateway_id,
            signal_id=self.signal_id,
            event=event,
            at=self.now,
            quantity=self.quantity,
            filled=snap.filled if snap is not None else 0,
            credit=None,
            avg_fill_credit=None,
            fills=fills,
            perm_id=snap.perm_id if snap is not None else None,
            reason=reason,
            ib_code=ib_code,
            outcome=outcome,
            seq=self.svc._seq,
        )
        self.svc.bus.publish(
            EXECUTIONS_TOPIC,
            json.dumps(rep.model_dump(mode="json")).encode(),
            {"order_ref": self.ref, "follower_id": self.follower_id, "event": event.value},
        )
        log.info(
            "%s %s: %s",
            self.ref,
            event.value,
            reason,
            extra={
                "operation": f"order_{event.value.lower()}",
                "order_ref": self.ref,
                "follower_id": self.follower_id,
                "gateway_id": self.gateway_id,
                "event": event.value,
                "outcome": outcome,
            },
        )
