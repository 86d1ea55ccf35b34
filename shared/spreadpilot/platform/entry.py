"""The thin edge of every event-driven function: decode, run one service, map errors.

- returns normally       -> Pub/Sub acks the message;
- a transient error      -> re-raised: Pub/Sub retries with backoff, then dead-letters;
- a permanent error (malformed envelope or payload, unknown ids, invalid data)
                         -> logged with the reason, the event kept whole in the store's
                            dead_letters and on the subscription's dead-letter topic,
                            an alert raised, and acked: retrying cannot help, and
                            nothing is lost.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.errors import DomainValidationError, Unprocessable
from spreadpilot.platform import collections as C
from spreadpilot.platform.events import MalformedEvent, PubSubEnvelope, decode_pubsub
from spreadpilot.platform.logs import (
    configure_logging,
    logging_configured,
    reset_context,
    set_context,
)
from spreadpilot.platform.settings import SettingsError, settings
from spreadpilot.platform.wiring import Container, container

log = logging.getLogger("spreadpilot.entry")


PERMANENT = (MalformedEvent, Unprocessable, DomainValidationError, ValidationError)


def boot(function: str) -> None:
    """Validate settings and configure logging at import: a bad deployment fails
    at cold start with one clear log line, not on the first trade."""
    try:
        s = settings()
    except SettingsError as exc:
        configure_logging(function)
        log.critical("%s cannot start: %s", function, exc)
        raise SystemExit(f"{function}: {exc}") from None
    if not logging_configured():  # a CLI or runner hosting the function keeps its own
        configure_logging(function, s.log_level, s.log_format, s.project_id)


def run_pubsub(
    function: str, event: Any, handler: Callable[[PubSubEnvelope, Container], object]
) -> None:
    reset_context()
    try:
        _run_pubsub(function, event, handler)
    finally:
        reset_context()  # nor does it label its host's lines (the local runner, the demo)


def _run_pubsub(
    function: str, event: Any, handler: Callable[[PubSubEnvelope, Container], object]
) -> None:
    c = container()
    started = time.monotonic()
    try:
        envelope = decode_pubsub(event)
    except MalformedEvent as exc:
        dead_letter(c, function, event, str(exc), _event_id(event))
        return
    set_context(
        labels={"function": function, "message_id": envelope.message_id}, trace=_trace_id(event)
    )
    try:
        handler(envelope, c)
    except PERMANENT as exc:
        dead_letter(c, function, event, f"{type(exc).__name__}: {exc}", envelope.message_id)
        return
    except Exception:
        log.exception(
            "%s failed on message %s (attempt %d); Pub/Sub will retry",
            function,
            envelope.message_id,
            envelope.delivery_attempt,
            extra={"operation": function, "delivery_attempt": envelope.delivery_attempt},
        )
        raise
    log.info(
        "%s handled message %s",
        function,
        envelope.message_id,
        extra={"operation": function, "latency_ms": round((time.monotonic() - started) * 1000, 1)},
    )


def dead_letter(c: Container, function: str, event: Any, reason: str, message_id: str) -> None:
    """Keep the event whole and tell the operator; idempotent per (function, message)."""
    log.error(
        "%s: message %s cannot be processed and is dead-lettered: %s",
        function,
        message_id or "(no id)",
        reason,
        extra={"operation": "dead_letter", "reason": reason},
    )
    raw_attrs, raw_data = _raw(event)
    doc_id = f"{function}_{message_id or _fingerprint(raw_data)}"
    now = c.clock.now()
    c.store.create(
        C.DEAD_LETTERS,
        doc_id,
        {
            "function": function,
            "message_id": message_id,
            "reason": reason,
            "received_at": now,
            "event_attributes": raw_attrs,
            "event_data_b64": base64.b64encode(raw_data).decode(),
            "published": False,
        },
    )
    if not (c.store.get(C.DEAD_LETTERS, doc_id) or {}).get("published"):
        topic = c.topology.push_subscription_for(function).dead_letter_topic
        assert topic is not None
        c.bus.publish(
            topic,
            raw_data,
            {"reason": reason[:1000], "function": function, "dead_letter_id": doc_id},
        )
        c.store.update(C.DEAD_LETTERS, doc_id, {"published": True})
    c.alerts.raise_alert(
        Alert.new(
            AlertType.MESSAGE_DEAD_LETTERED,
            f"{function} could not process message {message_id or doc_id}: {reason}. "
            f"It is kept in dead_letters/{doc_id}; fix the publisher, then replay it.",
            at=now,
            dedup_key=doc_id,
            source=function,
        )
    )


def _raw(event: Any) -> tuple[dict[str, str], bytes]:
    try:
        attrs = {k: str(v) for k, v in event.get_attributes().items()}
    except AttributeError:
        attrs = {}
    data = getattr(event, "data", event)
    if isinstance(data, bytes):
        return attrs, data
    if isinstance(data, str):
        return attrs, data.encode()
    return attrs, json.dumps(data, default=str).encode()


def _event_id(event: Any) -> str:
    try:
        return str(event["id"])
    except (KeyError, TypeError):
        return ""


def _trace_id(event: Any) -> str | None:
    try:
        parent = str(event["traceparent"])
    except (KeyError, TypeError):
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) >= 2 else None


def _fingerprint(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]
