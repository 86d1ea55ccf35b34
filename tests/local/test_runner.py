"""LocalRunner on a real LocalBus (temp SQLite) and a SimClock."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.local.runner import LocalRunner, RunnerNotIdle
from spreadpilot.platform.clock import SimClock, SystemClock
from spreadpilot.platform.events import PUBSUB_EVENT_TYPE, PubSubEnvelope, decode_pubsub
from spreadpilot.platform.topology import Topology, build_topology

START = datetime(2026, 11, 24, 14, 27, tzinfo=UTC)

TOPOLOGY: Topology = build_topology(
    {
        "defaults": {
            "ack_deadline_seconds": 60,
            "max_delivery_attempts": 5,
            "min_backoff_seconds": 10,
            "max_backoff_seconds": 600,
            "message_retention_seconds": 604800,
        },
        "topics": {"work": "work for a function", "other": "pulled by someone else"},
        "subscriptions": {
            "work-fn": {"topic": "work", "push": "worker"},
            "other-pull": {"topic": "other", "pull": "agent"},
        },
    }
)
HOLD = "work-fn-dead-letter-hold"


class Recorder:
    """A handler: records every envelope; fails while `fail` says so."""

    def __init__(self, fail: int | None = 0, on_call: threading.Event | None = None) -> None:
        self.fail = fail  # fail the first N deliveries of each message; None: always
        self.calls: list[PubSubEnvelope] = []
        self.events: list[CloudEvent] = []
        self.on_call = on_call

    def __call__(self, event: CloudEvent) -> None:
        env = decode_pubsub(event)
        self.calls.append(env)
        self.events.append(event)
        if self.on_call is not None:
            self.on_call.set()
        if self.fail is None or env.delivery_attempt <= self.fail:
            raise RuntimeError(f"boom on attempt {env.delivery_attempt}")


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def bus(tmp_path: Path, clock: SimClock) -> Iterator[LocalBus]:
    b = LocalBus(tmp_path / "bus.db", TOPOLOGY, clock)
    yield b
    b.close()


def test_success_is_delivered_as_a_cloudevent_and_acked_once(
    bus: LocalBus, clock: SimClock
) -> None:
    handler = Recorder()
    runner = LocalRunner(bus, TOPOLOGY, {"worker": handler}, clock, project="demo")
    message_id = bus.publish("work", json.dumps({"n": 1}).encode(), {"job": "tick"})

    assert runner.run_until_idle() == 1

    [env] = handler.calls
    assert env.message_id == message_id
    assert env.json() == {"n": 1}
    assert env.attributes == {"job": "tick"}
    assert env.delivery_attempt == 1
    assert env.subscription == "projects/demo/subscriptions/work-fn"
    [event] = handler.events
    assert event["type"] == PUBSUB_EVENT_TYPE
    assert event["source"] == "//pubsub.googleapis.com/projects/demo/topics/work"
    assert bus.pending("work-fn") == 0
    clock.advance(timedelta(hours=1))  # past any ack deadline: nothing comes back
    assert runner.run_until_idle() == 0
    assert len(handler.calls) == 1


def test_only_push_subscriptions_with_a_handler_are_delivered(
    bus: LocalBus, clock: SimClock
) -> None:
    runner = LocalRunner(bus, TOPOLOGY, {"worker": Recorder(), "unrelated": Recorder()}, clock)
    bus.publish("other", b"for the agent")

    assert runner.subscriptions == ["work-fn"]
    assert runner.run_until_idle() == 0
    assert bus.pending("other-pull") == 1


def test_failure_is_retried_with_backoff_then_dead_lettered(
    bus: LocalBus, clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(fail=None)
    runner = LocalRunner(bus, TOPOLOGY, {"worker": handler}, clock)
    bus.publish("work", b'{"poison": true}', {"job": "tick"})

    with caplog.at_level(logging.ERROR, logger="spreadpilot.runner"):
        handled = runner.run_until_idle(wait_for_retries=True)

    assert handled == 5
    assert [c.delivery_attempt for c in handler.calls] == [1, 2, 3, 4, 5]
    # backoff 10, 20, 40, 80 s (min 10 s doubling) between the five deliveries
    assert clock.now() - START == timedelta(seconds=10 + 20 + 40 + 80)
    assert bus.pending("work-fn") == 0
    [dead] = bus.pull(HOLD)
    assert dead.data == b'{"poison": true}'
    assert dead.attributes["job"] == "tick"
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"

    records = [r for r in caplog.records if r.name == "spreadpilot.runner"]
    assert [getattr(r, "delivery_attempt", None) for r in records] == [1, 2, 3, 4, 5]
    assert [getattr(r, "will_retry", None) for r in records] == [True] * 4 + [False]
    assert all(getattr(r, "error_type", None) == "RuntimeError" for r in records)
    assert all(getattr(r, "subscription", None) == "work-fn" for r in records)
    assert all(r.exc_info is not None for r in records)
    assert getattr(records[-1], "dead_letter_topic", None) == "work-fn-dead-letter"


def test_without_waiting_a_failed_message_waits_for_its_backoff(
    bus: LocalBus, clock: SimClock
) -> None:
    handler = Recorder(fail=1)
    runner = LocalRunner(bus, TOPOLOGY, {"worker": handler}, clock)
    bus.publish("work", b"{}")

    assert runner.run_until_idle() == 1
    assert bus.stats("work-fn").delayed == 1
    clock.advance(timedelta(seconds=9))
    assert runner.run_until_idle() == 0
    clock.advance(timedelta(seconds=1))
    assert runner.run_until_idle() == 1

    assert [c.delivery_attempt for c in handler.calls] == [1, 2]
    assert bus.pending("work-fn") == 0
    assert bus.pending(HOLD) == 0


def test_a_backlog_with_flaky_handlers_runs_to_completion_on_a_simclock(
    bus: LocalBus, clock: SimClock
) -> None:
    failures: dict[str, int] = {}

    def flaky(event: CloudEvent) -> None:
        env = decode_pubsub(event)
        n = int(env.json()["n"])
        if n % 3 == 0 and env.delivery_attempt <= 2:  # every third fails twice
            failures[env.message_id] = env.delivery_attempt
            raise ValueError(f"transient failure for {n}")
        if n % 50 == 7:  # a few never succeed
            raise ValueError(f"poison {n}")

    runner = LocalRunner(bus, TOPOLOGY, {"worker": flaky}, clock)
    for n in range(200):
        bus.publish("work", json.dumps({"n": n}).encode())

    handled = runner.run_until_idle(wait_for_retries=True)

    poison = [n for n in range(200) if n % 50 == 7]
    retried = [n for n in range(200) if n % 3 == 0 and n not in poison]
    assert handled == 200 + 2 * len(retried) + 4 * len(poison)
    assert bus.pending("work-fn") == 0
    dead = bus.pull(HOLD, max_messages=100)
    assert sorted(json.loads(m.data)["n"] for m in dead) == poison


def test_run_until_idle_gives_up_on_a_handler_that_never_stops_publishing(
    bus: LocalBus, clock: SimClock
) -> None:
    def echo(event: CloudEvent) -> None:
        bus.publish("work", b"again")

    runner = LocalRunner(bus, TOPOLOGY, {"worker": echo}, clock)
    bus.publish("work", b"start")

    with pytest.raises(RunnerNotIdle, match="5 rounds"):
        runner.run_until_idle(max_rounds=5)


def test_serve_delivers_until_stopped(tmp_path: Path) -> None:
    clock = SystemClock()
    bus = LocalBus(tmp_path / "bus.db", TOPOLOGY, clock)
    called = threading.Event()
    handler = Recorder(on_call=called)
    runner = LocalRunner(bus, TOPOLOGY, {"worker": handler}, clock)
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop, 0.05))
    thread.start()
    try:
        bus.publish("work", b"{}")
        assert called.wait(timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(handler.calls) == 1
    assert bus.pending("work-fn") == 0
