"""What each event-driven function does with a decoded message: parse the
payload strictly, then call its service. Kept apart from functions/*/main.py
so the local runner, the functions and the tests share one code path."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import ValidationError

from spreadpilot.domain.execution import ExecutionReport
from spreadpilot.platform.events import MalformedEvent, PubSubEnvelope
from spreadpilot.platform.wiring import Container

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


def _fields(exc: ValidationError) -> str:
    """One clause per error, naming the field: "field 'filled': Input should be ..."."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        shown = "" if err["type"] == "missing" else f" (got {err['input']!r:.60})"
        parts.append(f"field '{where}': {err['msg']}{shown}")
    return "; ".join(parts)
