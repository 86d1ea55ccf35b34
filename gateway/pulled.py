"""Messages the agent pulls: kept leased while it works on them, and a malformed one
dropped loudly (acked, logged, alerted), never run or sent to IB."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.ports.bus import (
    MAX_EXTENSION_SECONDS,
    MIN_EXTENSION_SECONDS,
    Bus,
    BusError,
    ReceivedMessage,
)
from spreadpilot.ports.clock import Clock
from spreadpilot.services.alerts import AlertPublisher

log = logging.getLogger("spreadpilot.agent")

#: Wall seconds between two looks at the clock.
POLL_SECONDS = 0.1


async def keep_leased(
    bus: Bus, clock: Clock, subscription: str, ack_ids: list[str], deadline_seconds: int
) -> None:
    """Extend the messages' ack deadline every half deadline of clock time until
    cancelled, so work longer than the deadline (a ladder, a close) is not
    redelivered under it.

    Polls the clock on wall time rather than sleeping on it: a sleeper on a
    simulated clock would move that clock for everyone else."""
    extension = min(MAX_EXTENSION_SECONDS, max(MIN_EXTENSION_SECONDS, deadline_seconds))
    due = clock.now() + timedelta(seconds=deadline_seconds / 2)
    while True:
        await asyncio.sleep(POLL_SECONDS)
        now = clock.now()
        if now < due:
            continue
        try:
            bus.extend(subscription, ack_ids, extension)
        except BusError as exc:  # the lease may lapse: a redelivery reconciles first
            log.warning("could not extend %d leases on %s: %s", len(ack_ids), subscription, exc)
        due = now + timedelta(seconds=deadline_seconds / 2)


def report_malformed(
    alerts: AlertPublisher,
    clock: Clock,
    subscription: str,
    msg: ReceivedMessage,
    *,
    what: str,
    reason: str,
    consequence: str,
    source: str,
) -> None:
    """Log and alert (MESSAGE_DEAD_LETTERED, once per message) a message that will
    never parse: the caller acks it, since a redelivery would fail the same way."""
    excerpt = msg.data[:300].decode("utf-8", errors="replace")
    log.error(
        "malformed %s %s, acked and dropped: %s",
        what,
        msg.message_id,
        reason,
        extra={"operation": f"malformed_{what}", "message_id": msg.message_id},
    )
    try:
        alerts.raise_alert(
            Alert.new(
                AlertType.MESSAGE_DEAD_LETTERED,
                f"{source} dropped {what} message {msg.message_id}: {reason}. "
                f"{consequence}; fix the publisher.",
                at=clock.now(),
                dedup_key=f"{subscription}:{msg.message_id}",
                source=source,
                details={"message_id": msg.message_id, "data": excerpt},
            )
        )
    except Exception:  # an alert that cannot go out must not stop the agent
        log.exception("could not raise the alert for %s message %s", what, msg.message_id)
