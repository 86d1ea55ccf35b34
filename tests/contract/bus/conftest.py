"""Fixtures for the bus contract: the same tests against LocalBus and PubSubBus.

LocalBus runs on a temp SQLite file with a SimClock (waiting = advancing the
clock); PubSubBus runs on one Pub/Sub emulator per session, each test in a
fresh project so tests never see each other's messages (waiting = real time).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.adapters.gcp.pubsub_bus import PubSubBus
from spreadpilot.platform.clock import SimClock, SystemClock
from spreadpilot.platform.topology import Topology, build_topology
from spreadpilot.ports.bus import ReceivedMessage
from tests.support.pubsub_emulator import PubSubEmulator, emulator_environment, unavailable_reason

#: Small topology for the contract. Pub/Sub's floors: ack deadline 10 s,
#: 5 delivery attempts, 10 min retention. Zero backoff keeps retries fast.
CONTRACT_TOPOLOGY: Topology = build_topology(
    {
        "defaults": {
            "ack_deadline_seconds": 10,
            "max_delivery_attempts": 5,
            "min_backoff_seconds": 0,
            "max_backoff_seconds": 0,
            "message_retention_seconds": 600,
        },
        "topics": {
            "jobs": "work for one consumer",
            "jobs-eo": "work on an exactly-once subscription",
            "fanout": "one topic, two subscriptions",
        },
        "subscriptions": {
            "jobs-worker": {"topic": "jobs", "pull": "test"},
            "jobs-eo-worker": {
                "topic": "jobs-eo",
                "pull": "test",
                "exactly_once": True,
                "ack_deadline_seconds": 60,
            },
            "fanout-a": {"topic": "fanout", "pull": "test"},
            "fanout-b": {"topic": "fanout", "pull": "test"},
        },
    }
)

SIM_START = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)

Bus = LocalBus | PubSubBus


@dataclass
class BusCase:
    """One adapter under test, with the means to let time pass for it."""

    kind: str  # "local" | "pubsub"
    bus: Bus
    clock: SimClock | None
    #: what a worker process needs to open the same bus
    spec: dict[str, str]

    def wait(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(timedelta(seconds=seconds))
        else:
            time.sleep(seconds)

    def poll(
        self, subscription: str, want: int = 1, max_wait: float = 30.0
    ) -> list[ReceivedMessage]:
        """Pull (leasing, not acking) until `want` messages arrived or max_wait
        passed (simulated seconds for LocalBus, real ones for Pub/Sub)."""
        got: list[ReceivedMessage] = []
        waited = 0.0
        while len(got) < want and waited <= max_wait:
            if self.clock is not None:
                batch = self.bus.pull(subscription, max_messages=want - len(got))
                if not batch:
                    self.clock.advance(timedelta(seconds=1))
                    waited += 1
            else:
                began = time.monotonic()
                batch = self.bus.pull(subscription, max_messages=want - len(got), timeout=2.0)
                if not batch:
                    time.sleep(0.1)
                waited += time.monotonic() - began
            got += batch
        return got

    def nothing_on(self, subscription: str) -> bool:
        """True when no message is deliverable right now."""
        return self.bus.pull(subscription, max_messages=10, timeout=1.0) == []


def open_bus(spec: dict[str, str]) -> Bus:
    """Open the bus a spec describes (in a worker process: system clock)."""
    if spec["kind"] == "local":
        return LocalBus(Path(spec["path"]), CONTRACT_TOPOLOGY, SystemClock())
    return PubSubBus(spec["project"], CONTRACT_TOPOLOGY, timeout=10.0)


def pull_worker(
    spec: dict[str, str], subscription: str, barrier: Barrier, results: Queue[Any]
) -> None:
    """Worker process: pull, hold each batch a moment, ack; report what it got."""
    bus = open_bus(spec)
    barrier.wait(timeout=60)
    got: list[tuple[str, int]] = []
    idle = 0
    while idle < 5:
        batch = bus.pull(subscription, max_messages=3, timeout=1.0)
        if not batch:
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        time.sleep(0.02)  # keep the lease while the other worker pulls
        bus.ack(subscription, [m.ack_id for m in batch])
        got += [(m.message_id, m.delivery_attempt) for m in batch]
    results.put((os.getpid(), got))


@pytest.fixture(scope="session")
def pubsub_emulator_host() -> Iterator[str]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with PubSubEmulator() as emulator, emulator_environment(emulator.host):
        yield emulator.host


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("pubsub", id="pubsub", marks=pytest.mark.emulator),
    ]
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusCase]:
    if request.param == "local":
        clock = SimClock(SIM_START)
        path = tmp_path / "bus.db"
        local = LocalBus(path, CONTRACT_TOPOLOGY, clock)
        local.ensure_topology()
        yield BusCase("local", local, clock, {"kind": "local", "path": str(path)})
        local.close()
        return
    request.getfixturevalue("pubsub_emulator_host")
    project = f"contract-{uuid.uuid4().hex[:12]}"
    remote = PubSubBus(project, CONTRACT_TOPOLOGY, timeout=10.0)
    remote.ensure_topology()
    yield BusCase("pubsub", remote, None, {"kind": "pubsub", "project": project})
    remote.close()
