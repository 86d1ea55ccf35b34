"""The morning signal path, first half: read the sheet, validate, claim once, publish.

Runs on every scheduler tick from 09:27 to the deadline (New York time). Each
run re-reads the sheet a few times within its own budget. The signal's
identity is (date, ticker): the first complete, valid version is claimed and
traded; a later edit raises SIGNAL_CHANGED and trades nothing new.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.sheet import (
    SheetAmbiguous,
    SheetFound,
    SheetIncomplete,
    SheetInvalid,
    SheetNotFound,
    SheetResult,
    parse_signal_sheet,
)
from spreadpilot.domain.signal import Signal, signal_id
from spreadpilot.platform import collections as C
from spreadpilot.platform.failpoints import failpoint
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.signal_source import SignalSource, SignalSourceError
from spreadpilot.ports.store import Store
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import Claims
from spreadpilot.services.job_runs import record_job_run

SIGNALS_TOPIC = "signals"
SOURCE = "signal_poller"
log = logging.getLogger("spreadpilot.signal_poller")


class PollStatus(StrEnum):
    SKIPPED = "SKIPPED"  # not a trading day / outside the poll window
    WAITING = "WAITING"  # no complete row yet; keep polling
    CLAIMED = "CLAIMED"  # this run claimed and published the signal
    ALREADY_CLAIMED = "ALREADY_CLAIMED"
    CHANGED = "CHANGED"  # edited after the claim: SIGNAL_CHANGED
    INVALID = "INVALID"  # SIGNAL_INVALID raised
    MISSING = "MISSING"  # deadline passed: SIGNAL_MISSING raised


@dataclass
class PollOutcome:
    status: PollStatus
    trade_date: str
    detail: str = ""
    signal_id: str | None = None
    reads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PollerConfig:
    ticker: str = "QQQ"
    poll_start: time = time(9, 27)
    deadline: time = time(9, 40)
    reads_per_run: int = 3
    read_interval_seconds: float = 15.0


class SignalPoller:
    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        source: SignalSource,
        clock: Clock,
        calendar: MarketCalendar,
        claims: Claims,
        alerts: AlertPublisher,
        config: PollerConfig,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.source = source
        self.clock = clock
        self.calendar = calendar
        self.claims = claims
        self.alerts = alerts
        self.config = config
        self.holder = holder or f"poller-{os.getpid()}"

    # ---------------------------------------------------------------- run
    def run(self) -> PollOutcome:
        now = self.clock.now()
        day = ny_date(now)
        outcome = self._run(now)
        self._record_run(now, outcome)
        log.info(
            "signal poll: %s %s",
            outcome.status.value,
            outcome.detail,
            extra={
                "operation": "signal_poll",
                "trade_date": day.isoformat(),
                "status": outcome.status.value,
                "reads": outcome.reads,
                "signal_id": outcome.signal_id,
            },
        )
        return outcome

    def _run(self, now: datetime) -> PollOutcome:
        day = ny_date(now)
        if not self.calendar.is_trading_day(day):
            return PollOutcome(PollStatus.SKIPPED, day.isoformat(), "not an NYSE trading day")
        start = ny_datetime(day, self.config.poll_start)
        deadline = ny_datetime(day, self.config.deadline)
        if now < start:
            return PollOutcome(
                PollStatus.SKIPPED, day.isoformat(), f"before {self.config.poll_start}"
            )

        sid = signal_id(day, self.config.ticker)
        claimed = self.store.get(C.SIGNALS, sid)
        if claimed is not None:
            # Already claimed: one read only, to notice edits and heal a lost publish.
            return self._after_claim(claimed, self._read(day), reads=1)
        if now > deadline + timedelta(minutes=1):
            return self._missing(day, "the poll window is over", reads=0)

        reads, last = 0, None
        for attempt in range(self.config.reads_per_run):
            if attempt:
                next_read = self.clock.now() + timedelta(seconds=self.config.read_interval_seconds)
                if next_read > deadline + timedelta(seconds=59):
                    break
                self.clock.sleep(self.config.read_interval_seconds)
            last = self._read(day)
            reads += 1
            if isinstance(last, SheetFound):
                return self._claim(last, reads)
            if isinstance(last, SheetInvalid | SheetAmbiguous):
                return self._invalid(day, last, reads)
        if self.clock.now() >= deadline:
            return self._missing(day, _waiting_detail(last), reads)
        return PollOutcome(PollStatus.WAITING, day.isoformat(), _waiting_detail(last), reads=reads)

    # ----------------------------------------------------------- helpers
    def _read(self, day: Any) -> SheetResult | SignalSourceError:
        try:
            rows = self.source.read_rows()
        except SignalSourceError as exc:
            log.warning("signal sheet unreadable: %s", exc, extra={"operation": "fetch_signals"})
            return exc
        return parse_signal_sheet(rows, day, self.config.ticker)

    def _claim(self, found: SheetFound, reads: int) -> PollOutcome:
        outcome = self._claim_signal(found.signal, reads, {"sheet_row": found.row})
        if outcome is None:
            existing = self.store.get(C.SIGNALS, found.signal.id) or {}
            return self._after_claim(existing, found, reads)
        return outcome

    def claim_manual(self, signal: Signal, *, by: str, reason: str) -> PollOutcome:
        """The operator's signal when the sheet is down: the same claim (one signal per
        date and ticker) and the same once-only publish as a signal read from the sheet.
        ALREADY_CLAIMED (nothing published) if today's signal is already claimed."""
        manual = {"source": "manual", "manual_by": by, "manual_reason": reason}
        outcome = self._claim_signal(signal, 0, manual)
        if outcome is None:
            existing = self.store.get(C.SIGNALS, signal.id) or {}
            claimed = Signal.model_validate(existing["signal"]) if existing else signal
            return PollOutcome(
                PollStatus.ALREADY_CLAIMED,
                signal.trade_date.isoformat(),
                claimed.describe(),
                signal.id,
                extra={"claimed_at": existing.get("claimed_at")},
            )
        return outcome

    def _claim_signal(
        self, signal: Signal, reads: int, provenance: dict[str, Any]
    ) -> PollOutcome | None:
        """Claim and publish; None if the signal was already claimed."""
        content_hash = signal.content_hash()
        doc: dict[str, Any] = {
            "signal": signal.model_dump(mode="json"),
            "content_hash": content_hash,
            **provenance,
            "claimed_at": self.clock.now(),
            "claimed_by": self.holder,
            "published": False,
        }
        if not self.store.create(C.SIGNALS, signal.id, doc):
            return None
        failpoint("signal.after_claim")
        self._publish(signal.id, signal, content_hash)
        return PollOutcome(
            PollStatus.CLAIMED, signal.trade_date.isoformat(), signal.describe(), signal.id, reads
        )

    def _after_claim(
        self, claimed: dict[str, Any], read: SheetResult | SignalSourceError, reads: int
    ) -> PollOutcome:
        signal = Signal.model_validate(claimed["signal"])
        if not claimed.get("published"):
            self._publish(signal.id, signal, claimed["content_hash"])
        if isinstance(read, SheetFound) and read.signal.content_hash() != claimed["content_hash"]:
            self.alerts.raise_alert(
                Alert.new(
                    AlertType.SIGNAL_CHANGED,
                    f"Signal for {signal.trade_date} was edited after it was claimed: traded "
                    f"{signal.describe()}, sheet now says {read.signal.describe()}. Nothing new "
                    "was traded; decide whether to act by hand.",
                    at=self.clock.now(),
                    dedup_key=f"{signal.id}:{read.signal.content_hash()}",
                    source=SOURCE,
                    details={
                        "claimed": claimed["signal"],
                        "now": read.signal.model_dump(mode="json"),
                    },
                )
            )
            return PollOutcome(
                PollStatus.CHANGED,
                signal.trade_date.isoformat(),
                read.signal.describe(),
                signal.id,
                reads,
            )
        return PollOutcome(
            PollStatus.ALREADY_CLAIMED,
            signal.trade_date.isoformat(),
            signal.describe(),
            signal.id,
            reads,
        )

    def _publish(self, sid: str, signal: Signal, content_hash: str) -> None:
        """Publish once: the claim makes a racing or retried poller skip a finished
        publish, and take over one whose holder died between claim and publish."""
        key = f"publish-signal:{sid}"
        claim = self.claims.acquire(key, self.holder)
        if not claim.acquired:
            return
        try:
            payload = {
                "signal_id": sid,
                "content_hash": content_hash,
                "signal": signal.model_dump(mode="json"),
            }
            message_id = self.bus.publish(
                SIGNALS_TOPIC,
                json.dumps(payload).encode(),
                {"signal_id": sid, "trade_date": signal.trade_date.isoformat()},
            )
        except Exception:
            self.claims.release(key, self.holder)
            raise
        failpoint("signal.after_publish")
        self.store.update(C.SIGNALS, sid, {"published": True, "message_id": message_id})
        self.claims.complete(key, self.holder, {"message_id": message_id})

    def _invalid(self, day: Any, result: SheetInvalid | SheetAmbiguous, reads: int) -> PollOutcome:
        if isinstance(result, SheetInvalid):
            problems = "; ".join(
                f"column '{e.field}' = {e.value!r}: {e.rule}" for e in result.errors
            )
            text = f"Signal row {result.row} for {day} is invalid: {problems}"
            details: dict[str, Any] = {
                "row": result.row,
                "errors": [e.as_dict() for e in result.errors],
            }
        else:
            text = f"Signal for {day} is ambiguous (rows {list(result.rows)}): {result.reason}"
            details = {"rows": list(result.rows), "reason": result.reason}
        self.alerts.raise_alert(
            Alert.new(
                AlertType.SIGNAL_INVALID,
                text + ". Nothing was traded; fix the sheet and the next poll picks it up.",
                at=self.clock.now(),
                dedup_key=f"{day}:{self.config.ticker}:{_fingerprint(details)}",
                source=SOURCE,
                details=details,
            )
        )
        return PollOutcome(PollStatus.INVALID, day.isoformat(), text, reads=reads)

    def _missing(self, day: Any, why: str, reads: int) -> PollOutcome:
        self.alerts.raise_alert(
            Alert.new(
                AlertType.SIGNAL_MISSING,
                f"No complete {self.config.ticker} signal for {day} by "
                f"{self.config.deadline:%H:%M} ET ({why}). Nothing will be traded today unless "
                "the operator sends a manual signal.",
                at=self.clock.now(),
                dedup_key=f"{day}:{self.config.ticker}",
                source=SOURCE,
                details={"why": why},
            )
        )
        return PollOutcome(PollStatus.MISSING, day.isoformat(), why, reads=reads)

    def _record_run(self, now: datetime, outcome: PollOutcome) -> None:
        # the missed-job check (health_ping) reads these: SKIPPED runs count as runs
        record_job_run(
            self.store,
            "signal-poll",
            now,
            outcome.status.value,
            holder=self.holder,
            detail=outcome.detail,
            trade_date=outcome.trade_date,
        )


def _waiting_detail(last: SheetResult | SignalSourceError | None) -> str:
    if isinstance(last, SignalSourceError):
        return f"sheet unreachable: {last}"
    if isinstance(last, SheetIncomplete):
        return f"row {last.row} is incomplete: {', '.join(last.missing)} still empty"
    if isinstance(last, SheetNotFound):
        return "no row for today yet" + (f" ({'; '.join(last.warnings)})" if last.warnings else "")
    return "no read"


def _fingerprint(details: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(details, sort_keys=True).encode()).hexdigest()[:12]
