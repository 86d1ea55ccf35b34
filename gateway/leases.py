"""Keeping pulled messages leased while the agent works on them."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from spreadpilot.ports.bus import MAX_EXTENSION_SECONDS, MIN_EXTENSION_SECONDS, Bus, BusError
from spreadpilot.ports.clock import Clock

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
