"""health_ping: the once-a-minute check of everything that is not checked by itself.

Each run (`HealthPing.run`):

1. **store** and **bus** reachability: one read of the store, one probe of the bus;
2. **agent heartbeat** (``heartbeats/gateway-agent``, written every 15 s by the
   agent): older than ``heartbeat_max_age`` (120 s) -> one COMPONENT_DOWN per
   outage (dedup key: the last heartbeat's time); fresh again after that -> one
   COMPONENT_RECOVERED. No heartbeat ever recorded (agent not deployed yet) is
   shown as ``missing`` and not alerted;
3. **missed jobs**: for every job of scheduler/jobs.yaml with ``records_runs:
   true`` (its consumer exists and records each run, SKIPPED included), every fire
   time since the previous check (and at least ``job_grace`` old) must have a run
   recorded in ``job_runs`` within [fire time - 5 s, fire time + grace), and
   before the next fire time (a minute job's next run does not cover a missed
   minute). Missed
   fire times -> one JOB_MISSED per job and check, naming them. A holiday run
   recorded as SKIPPED is a run. Jobs without ``records_runs`` are never reported;
4. **undelivered alerts**: ``alert_deliveries`` with status FAILED (the alert
   router's last attempt failed) are counted and listed; any -> health red and
   one COMPONENT_DOWN a day (key per day, so an alert about failing alerts cannot
   feed itself).

The result is stored in ``health/<component>`` (``health-ping`` overall,
``gateway-agent`` for the heartbeat's state) for the status views, and the run
itself in ``job_runs``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.platform import collections as C
from spreadpilot.platform.events import PubSubEnvelope
from spreadpilot.platform.health_http import DEGRADED, DOWN, OK, HealthReport
from spreadpilot.platform.schedules import Job, jobs
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Filter, Store
from spreadpilot.services.alerts import ALERTS_TOPIC, AlertPublisher
from spreadpilot.services.job_runs import record_job_run

log = logging.getLogger("spreadpilot.health_ping")

SOURCE = "health_ping"
JOB = "health-ping"
AGENT = "gateway-agent"
EARLY = timedelta(seconds=5)  # a run recorded this much before its fire time still counts
MAX_GAP = timedelta(hours=24)  # never look further back than this for missed runs
FAILED = "FAILED"


@dataclass(frozen=True)
class PingConfig:
    heartbeat_max_age: timedelta = timedelta(seconds=120)
    job_grace: timedelta = timedelta(seconds=180)

    @classmethod
    def from_settings(cls, s: Any) -> PingConfig:
        return cls(
            heartbeat_max_age=timedelta(seconds=s.heartbeat_max_age_seconds),
            job_grace=timedelta(seconds=s.job_grace_seconds),
        )


@dataclass
class PingResult:
    report: HealthReport
    alerts: list[str] = field(default_factory=list)  # the alert types raised this run


class HealthPing:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        alerts: AlertPublisher,
        *,
        config: PingConfig | None = None,
        job_defs: dict[str, Job] | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.alerts = alerts
        self.config = config or PingConfig()
        self.jobs = job_defs if job_defs is not None else jobs()

    def run(self) -> PingResult:
        now = self.clock.now()
        raised: list[str] = []
        checks: dict[str, dict[str, Any]] = {}
        checks["store"] = self._check_store()
        checks["bus"] = self._check_bus()
        store_ok = checks["store"]["status"] == OK
        if store_ok:
            checks["agent_heartbeat"] = self._check_heartbeat(now, raised)
            checks["jobs"] = self._check_jobs(now, raised)
            checks["alert_deliveries"] = self._check_deliveries(now, raised)
        else:
            self._raise(
                Alert.new(
                    AlertType.COMPONENT_DOWN,
                    f"the store is unreachable from health_ping: {checks['store']['detail']}",
                    at=now,
                    dedup_key=f"store:{now:%Y-%m-%dT%H}",
                    source=SOURCE,
                    details={"component": "store"},
                ),
                raised,
            )
        report = HealthReport.of(SOURCE, checks, time=now)
        level = {OK: logging.INFO, DEGRADED: logging.WARNING}.get(report.status, logging.ERROR)
        log.log(
            level,
            "health %s: %s",
            report.status,
            ", ".join(f"{k}={v['status']}" for k, v in checks.items()),
            extra={"operation": "health_ping", "health": report.status, "alerts": raised},
        )
        if store_ok:
            try:
                self._remember(**report.body())
                record_job_run(self.store, JOB, now, report.status.upper(), holder="")
            except Exception:
                log.exception("could not record the health result")
        return PingResult(report, raised)

    # ------------------------------------------------------------------ checks

    def _check_store(self) -> dict[str, Any]:
        try:
            self.store.get(C.HEALTH, JOB)
        except Exception as exc:
            return {"status": DOWN, "detail": str(exc)[:300]}
        return {"status": OK}

    def _check_bus(self) -> dict[str, Any]:
        probe = getattr(self.bus, "probe", None)
        if probe is None:
            return {"status": OK, "detail": "no probe for this bus"}
        try:
            probe()
        except Exception as exc:
            return {"status": DOWN, "detail": str(exc)[:300]}
        return {"status": OK}

    def _check_heartbeat(self, now: datetime, raised: list[str]) -> dict[str, Any]:
        beat = self.store.get(C.HEARTBEATS, AGENT)
        state = self.store.get(C.HEALTH, AGENT) or {}
        if beat is None or not isinstance(beat.get("at"), datetime):
            return {"status": DEGRADED, "detail": "missing: no agent heartbeat recorded yet"}
        at: datetime = beat["at"]
        age = now - at
        view: dict[str, Any] = {
            "last": at.isoformat(),
            "age_seconds": round(age.total_seconds(), 1),
            "holder": beat.get("holder", ""),
            "gateways": beat.get("gateways", {}),
        }
        down_key = state.get("down_key")
        if age > self.config.heartbeat_max_age:
            key = f"{AGENT}:heartbeat:{at.isoformat()}"
            if down_key != key:
                self._raise(
                    Alert.new(
                        AlertType.COMPONENT_DOWN,
                        f"gateway agent down: no heartbeat for {age.total_seconds():.0f} s "
                        f"(last at {at:%H:%M:%S} UTC from {beat.get('holder', '?')}); "
                        "orders and risk commands wait",
                        at=now,
                        dedup_key=key,
                        source=SOURCE,
                        details={"component": AGENT, "age_seconds": round(age.total_seconds())},
                    ),
                    raised,
                )
                self.store.set(C.HEALTH, AGENT, {"status": DOWN, "down_key": key, "since": at})
            return {**view, "status": DOWN}
        if down_key:
            self._raise(
                Alert.new(
                    AlertType.COMPONENT_RECOVERED,
                    f"gateway agent is back: heartbeat {age.total_seconds():.0f} s ago "
                    f"from {beat.get('holder', '?')}",
                    at=now,
                    dedup_key=str(down_key),
                    source=SOURCE,
                    details={"component": AGENT},
                ),
                raised,
            )
        self.store.set(C.HEALTH, AGENT, {"status": OK, "down_key": None, "since": None, **view})
        return {**view, "status": OK}

    def _check_jobs(self, now: datetime, raised: list[str]) -> dict[str, Any]:
        grace = self.config.job_grace
        until = now - grace
        state = self.store.get(C.HEALTH, JOB) or {}
        checked = state.get("jobs_checked_until")
        watched = [j for j in self.jobs.values() if j.records_runs]
        if not isinstance(checked, datetime):
            # the first check: nothing was watched before it, so nothing before it is
            # missed (a fresh deployment does not report the minutes before it existed)
            self._remember(jobs_checked_until=now)
            return {
                "status": OK,
                "watched": sorted(j.name for j in watched),
                "checked_until": now.isoformat(),
                "missed": {},
            }
        since = max(checked, until - MAX_GAP)
        missed: dict[str, list[str]] = {}
        for job in watched:
            due = job.fire_times(since, until)
            if not due:
                continue
            # a run answers the fire time it follows, up to the grace or the next fire
            # time (a minute job's next run does not cover a missed minute)
            later = job.fire_times(due[-1] + EARLY, due[-1] + grace + EARLY)
            ends = [
                min(t + grace, nxt - EARLY)
                for t, nxt in zip(
                    due, [*due[1:], *later[:1], due[-1] + grace + EARLY], strict=False
                )
            ]
            # one range on ran_at (Firestore's automatic single-field index), job by hand
            runs = self.store.query(
                C.JOB_RUNS,
                [Filter("ran_at", ">=", due[0] - EARLY), Filter("ran_at", "<", max(ends))],
            )
            times = [
                r.data["ran_at"]
                for r in runs
                if r.data.get("job") == job.name and isinstance(r.data.get("ran_at"), datetime)
            ]
            gone = [
                t
                for t, end in zip(due, ends, strict=True)
                if not any(t - EARLY <= r < end for r in times)
            ]
            if not gone:
                continue
            missed[job.name] = [t.isoformat() for t in gone]
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M} UTC" for t in gone[:5])
            more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
            self._raise(
                Alert.new(
                    AlertType.JOB_MISSED,
                    f"scheduled job {job.name} ({job.consumer}) did not run when due: "
                    f"{shown}{more} (no run recorded within {grace.total_seconds():.0f} s)",
                    at=now,
                    dedup_key=f"{job.name}:{gone[0].isoformat()}",
                    source=SOURCE,
                    details={"job": job.name, "missed": [t.isoformat() for t in gone[:50]]},
                ),
                raised,
            )
        self._remember(jobs_checked_until=max(until, checked))
        return {
            "status": DEGRADED if missed else OK,
            "watched": sorted(j.name for j in watched),
            "checked_until": until.isoformat(),
            "missed": missed,
        }

    def _check_deliveries(self, now: datetime, raised: list[str]) -> dict[str, Any]:
        failed = self.store.query(C.ALERT_DELIVERIES, [Filter("status", "==", FAILED)])
        if not failed:
            return {"status": OK, "failed": 0}
        ids = sorted(s.id for s in failed)
        self._raise(
            Alert.new(
                AlertType.COMPONENT_DOWN,
                f"{len(ids)} alert deliveries failed after every retry (e.g. "
                f"{', '.join(ids[:3])}); see `spreadpilot alerts` and the alert_deliveries "
                "collection, then fix the channel",
                at=now,
                dedup_key=f"alert-deliveries:{now:%Y-%m-%d}",
                source=SOURCE,
                severity=Severity.CRITICAL,
                details={"component": "alert_router", "failed": len(ids), "ids": ids[:20]},
            ),
            raised,
        )
        return {"status": DOWN, "failed": len(ids), "ids": ids[:20]}

    # ------------------------------------------------------------------ helpers

    def _remember(self, **fields: Any) -> None:
        current = self.store.get(C.HEALTH, JOB) or {}
        self.store.set(C.HEALTH, JOB, {**current, **fields})

    def _raise(self, alert: Alert, raised: list[str]) -> None:
        try:
            if self.alerts.raise_alert(alert):
                raised.append(alert.type.value)
            return
        except Exception as exc:  # the store may be what is down: straight onto the bus
            log.error("could not record alert %s (%s); publishing it directly", alert.id, exc)
        try:
            doc = alert.model_dump(mode="json")
            self.bus.publish(
                ALERTS_TOPIC,
                json.dumps(doc).encode(),
                {"type": alert.type.value, "severity": alert.severity.value, "alert_id": alert.id},
            )
            raised.append(alert.type.value)
        except Exception:
            log.critical(
                "health_ping cannot raise %s: %s",
                alert.type.value,
                alert.message,
                extra={"operation": "health_ping", "alert_type": alert.type.value},
            )


def health_tick(envelope: PubSubEnvelope, c: Container) -> None:
    """The health-ping function's handler: one check per tick (its body is informational)."""
    ping = HealthPing(
        c.store, c.bus, c.clock, c.alerts, config=PingConfig.from_settings(c.settings)
    )
    ping.run()
