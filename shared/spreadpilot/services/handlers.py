"""What each event-driven function does with a decoded message: parse the
payload strictly, then call its service. Kept apart from functions/*/main.py
so the local runner, the functions and the tests share one code path."""

from __future__ import annotations

import logging
from datetime import timedelta

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
