"""Clocks: the system clock, a simulated one that runs a morning in seconds, and a
scaled one (real time from a chosen start) that several processes can share."""

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


class ScaledClock:
    """Real time from a chosen start, optionally faster: now = start + elapsed x speed.

    ``epoch`` (Unix seconds) is the wall-clock moment that corresponds to ``start``;
    processes given the same start and epoch agree on the time, so an agent process
    and the IB Gateway simulator can trade 10:00 New York whenever the tests run.
    Without an epoch the clock starts at construction.
    """

    def __init__(self, start: datetime, speed: float = 1.0, epoch: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)
