"""Clocks: the system clock, and a simulated one that runs a morning in seconds."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimClock:
    """Simulated time: sleep() advances instantly; advance()/set() move it by hand.

    Thread-safe so a runner and the services it drives can share one instance.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(0.0, seconds)))

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("SimClock time must be timezone-aware")
        with self._lock:
            if when.astimezone(UTC) < self._now:
                raise ValueError(f"SimClock cannot go back from {self._now} to {when}")
            self._now = when.astimezone(UTC)
