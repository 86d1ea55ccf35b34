"""What each event-driven function does with a decoded message: parse the
payload strictly, then call its service. Kept apart from functions/*/main.py
so the local runner, the functions and the tests share one code path."""

from __future__ import annotations

import datetime as dt
import logging
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from spreadpilot.domain.calendar import ny_date
from spreadpilot.domain.execution import ExecutionReport
from spreadpilot.platform.events import MalformedEvent, PubSubEnvelope
from spreadpilot.platform.wiring import Container
from spreadpilot.services.job_runs import record_job_run
from spreadpilot.services.pnl import PnlRollup, parse_month

log = logging.getLogger("spreadpilot.handlers")


def signal_poll_tick(envelope: PubSubEnvelope, c: Container) -> None:
    """A scheduler tick. Its body is informational; its age decides whether it runs."""
    if envelope.data.strip():
        payload = envelope.json()
        if not isinstance(payload, dict):
            raise MalformedEvent(
                f"message {envelope.message_id}: tick body must be a JSON object like "
                '{"job": "signal-poll"}'
            )
    now = c.clock.now()
    max_age = timedelta(seconds=c.settings.tick_max_age_seconds)
    if envelope.publish_time is not None and now - envelope.publish_time > max_age:
        log.warning(
            "dropped a stale signal-poll tick published at %s (older than %s); the next "
            "minute's tick polls instead",
            envelope.publish_time.isoformat(),
            max_age,
            extra={"operation": "signal_poll", "stale_tick": True},
        )
        return
    c.signal_poller().run()


def dispatch_signal(envelope: PubSubEnvelope, c: Container) -> None:
    payload = envelope.json()
    if not isinstance(payload, dict):
        raise MalformedEvent(
            f"message {envelope.message_id}: expected a JSON object with 'signal_id', "
            f"got {type(payload).__name__}"
        )
    sid = payload.get("signal_id")
    if not isinstance(sid, str) or not sid:
        raise MalformedEvent(
            f"message {envelope.message_id}: field 'signal_id' is "
            f"{'missing' if sid is None else repr(sid)}; expected the claimed signal's id "
            "like '2026-11-24_QQQ'"
        )
    c.dispatcher().dispatch(sid)


def record_execution(envelope: PubSubEnvelope, c: Container) -> None:
    """An execution report from the gateway agent, folded into its order's document.

    A redelivered report is a no-op (the recorder keys reports by report_id). A
    payload that is not an ExecutionReport is permanent: dead-lettered naming the
    fields at fault, nothing recorded."""
    payload = envelope.json()
    if not isinstance(payload, dict):
        raise MalformedEvent(
            f"message {envelope.message_id}: expected a JSON object (an ExecutionReport), "
            f"got {type(payload).__name__}"
        )
    try:
        report = ExecutionReport.model_validate(payload)
    except ValidationError as exc:
        raise MalformedEvent(
            f"message {envelope.message_id}: not a valid ExecutionReport: {_fields(exc)}"
        ) from exc
    new = c.recorder().record(report)
    log.info(
        "%s report %s for %s",
        "recorded" if new else "already had",
        report.report_id,
        report.order_ref,
        extra={
            "operation": "record_execution",
            "order_ref": report.order_ref,
            "report_id": report.report_id,
            "event": report.event.value,
            "redelivery": not new,
        },
    )


class PnlTick(BaseModel):
    """A rollup tick: Cloud Scheduler's {"job": ...}; an operator's re-run may name
    the `month` (monthly) or the `date` (daily) to roll up instead of the due one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: Literal["daily-pnl-rollup", "monthly-pnl-rollup"]
    scheduled_time: AwareDatetime | None = None
    month: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    date: dt.date | None = None


def pnl_rollup_tick(envelope: PubSubEnvelope, c: Container) -> None:
    """daily-pnl-rollup (16:30 ET): today and the recompute window, SKIPPED on a
    holiday; monthly-pnl-rollup (00:10 ET on the 1st): the previous month. Either
    run is recorded in job_runs; a redelivered tick recomputes the same rows."""
    payload = envelope.json()
    try:
        tick = PnlTick.model_validate(payload)
    except ValidationError as exc:
        raise MalformedEvent(
            f"message {envelope.message_id}: not a P&L rollup tick "
            '(e.g. {"job": "daily-pnl-rollup"}): ' + _fields(exc)
        ) from exc
    now = c.clock.now()
    rollup = PnlRollup(c.store, c.clock, c.calendar, c.settings)
    if tick.job == "daily-pnl-rollup":
        day = tick.date or ny_date(tick.scheduled_time or now)
        if not c.calendar.is_trading_day(day):
            record_job_run(c.store, tick.job, now, "SKIPPED", detail=f"{day}: not a trading day")
            return
        run = rollup.daily_job(day)
    else:
        if tick.month:
            year, month = parse_month(tick.month)
        else:
            last = ny_date(tick.scheduled_time or now).replace(day=1) - dt.timedelta(days=1)
            year, month = last.year, last.month
        run = rollup.month_job(year, month)
    record_job_run(c.store, tick.job, now, "OK", detail=run.summary(), rows=run.rows)


def _fields(exc: ValidationError) -> str:
    """One clause per error, naming the field: "field 'filled': Input should be ..."."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        shown = "" if err["type"] == "missing" else f" (got {err['input']!r:.60})"
        parts.append(f"field '{where}': {err['msg']}{shown}")
    return "; ".join(parts)
