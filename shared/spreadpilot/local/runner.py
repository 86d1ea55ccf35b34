"""Delivers push subscriptions to function handlers, as Pub/Sub + Eventarc do in GCP.

For every push subscription whose function is in `handlers`: pull, wrap each
message in the CloudEvent a gen2 function receives, call the handler, ack when
it returns, nack when it raises (the bus then applies the subscription's retry
backoff and, after `max_delivery_attempts`, dead-lettering).

Messages are pulled one at a time per subscription by default (batch_size):
handlers run one after another, and a message waiting in a pulled batch
behind slow handlers could pass its ack deadline and be delivered twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from cloudevents.http import CloudEvent

from spreadpilot.platform.events import pubsub_cloud_event
from spreadpilot.platform.topology import Subscription, Topology
from spreadpilot.ports.bus import Bus, BusError, ReceivedMessage
from spreadpilot.ports.clock import Clock

log = logging.getLogger("spreadpilot.runner")

Handler = Callable[[CloudEvent], object]


class RunnerNotIdle(RuntimeError):
    """run_until_idle gave up after max_rounds with messages still arriving."""


class LocalRunner:
    def __init__(
        self,
        bus: Bus,
        topology: Topology,
        handlers: Mapping[str, Handler],
        clock: Clock,
        project: str = "local",
        *,
        batch_size: int = 1,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._project = project
        self._batch_size = batch_size
        self._routes: list[tuple[Subscription, Handler]] = [
            (sub, handlers[sub.push])
            for sub in topology.subscriptions.values()
            if sub.push is not None and sub.push in handlers
        ]
        #: When each nacked message should be offered again (topology's backoff).
        self._retry_at: list[datetime] = []

    @property
    def subscriptions(self) -> list[str]:
        """The subscriptions this runner delivers."""
        return [sub.name for sub, _ in self._routes]

    def run_once(self) -> int:
        """One pull per subscription; returns how many messages were handled."""
        handled = 0
        for sub, handler in self._routes:
            for msg in self._bus.pull(sub.name, max_messages=self._batch_size, timeout=1.0):
                self._deliver(sub, handler, msg)
                handled += 1
        return handled

    def run_until_idle(self, max_rounds: int = 10_000, *, wait_for_retries: bool = False) -> int:
        """Deliver until no message is ready now; returns how many were handled.

        With wait_for_retries, when nothing is ready but nacked messages will be
        retried, sleep on the clock until the earliest retry (a SimClock just
        advances) and go on: a backlog with failing handlers runs to its end,
        retries and dead letters included. Raises RunnerNotIdle after
        max_rounds rounds that each handled something.
        """
        handled = 0
        for _ in range(max_rounds):
            count = self.run_once()
            handled += count
            if count:
                continue
            if not wait_for_retries or not self._retry_at:
                return handled
            delay = (min(self._retry_at) - self._clock.now()).total_seconds()
            if delay > 0:
                self._clock.sleep(delay)
            now = self._clock.now()
            self._retry_at = [when for when in self._retry_at if when > now]
        raise RunnerNotIdle(
            f"still delivering after {max_rounds} rounds ({handled} messages handled); "
            "a handler may be publishing in a loop"
        )

    def serve(self, stop_event: threading.Event, poll_interval: float = 0.5) -> None:
        """Deliver until stop_event is set (long-running, system clock)."""
        log.info("runner started", extra={"subscriptions": self.subscriptions})
        while not stop_event.is_set():
            try:
                count = self.run_once()
            except BusError as exc:
                log.error("bus error; retrying", extra={"error": str(exc)})
                count = 0
            self._retry_at.clear()  # only run_until_idle waits for retries
            if not count:
                stop_event.wait(poll_interval)
        log.info("runner stopped")

    def _deliver(self, sub: Subscription, handler: Handler, msg: ReceivedMessage) -> None:
        event = pubsub_cloud_event(
            msg, project=self._project, topic=sub.topic, subscription=sub.name
        )
        context = {
            "subscription": sub.name,
            "function": sub.push,
            "message_id": msg.message_id,
            "delivery_attempt": msg.delivery_attempt,
            "max_delivery_attempts": sub.max_delivery_attempts,
        }
        started = self._clock.now()
        try:
            handler(event)
        except Exception as exc:
            final = msg.delivery_attempt >= sub.max_delivery_attempts
            log.error(
                "handler failed; message %s",
                "goes to the dead-letter topic" if final else "will be retried",
                exc_info=True,
                extra={
                    **context,
                    "error_type": type(exc).__name__,
                    "error": str(exc),
                    "will_retry": not final,
                    "dead_letter_topic": sub.dead_letter_topic if final else None,
                },
            )
            self._bus.nack(sub.name, [msg.ack_id])
            if not final:
                wait = timedelta(seconds=sub.backoff(msg.delivery_attempt))
                self._retry_at.append(self._clock.now() + wait)
            return
        elapsed = (self._clock.now() - started).total_seconds()
        if elapsed > sub.ack_deadline_seconds:
            log.warning(
                "handler outlived the ack deadline; the message may have been delivered again",
                extra={**context, "elapsed_seconds": elapsed},
            )
        self._bus.ack(sub.name, [msg.ack_id])
