"""The Bus contract: every adapter delivers with Pub/Sub's rules.

Each test in the first part runs on LocalBus and on PubSubBus against the
Pub/Sub emulator. What the emulator does not reproduce exactly (the retry
backoff schedule: its first redelivery after a nack is immediate and later
ones come roughly 2-3 s apart or min_backoff apart, not doubling) is checked
on LocalBus only, in the second part, with a simulated clock.
"""

from __future__ import annotations

import logging
import multiprocessing
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.adapters.gcp.pubsub_bus import PubSubBus
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.topology import build_topology, topology
from spreadpilot.ports.bus import BusError, ReceivedMessage
from tests.contract.bus.conftest import (
    CONTRACT_TOPOLOGY,
    SIM_START,
    BusCase,
    open_bus,
    pull_worker,
)

HOLD = "jobs-worker-dead-letter-hold"


def gone(case: BusCase, subscription: str, ack_ids: list[str]) -> bool:
    """After an ack: nacking the same ids brings nothing back."""
    case.bus.nack(subscription, ack_ids)
    return case.nothing_on(subscription)


# -- publish, pull, ack ----------------------------------------------------------


def test_publish_pull_ack(case: BusCase) -> None:
    ids = [case.bus.publish("jobs", f"job {i}".encode()) for i in range(3)]
    assert len(set(ids)) == 3

    got = case.poll("jobs-worker", want=3)

    assert sorted(m.message_id for m in got) == sorted(ids)
    assert sorted(m.data for m in got) == [b"job 0", b"job 1", b"job 2"]
    assert all(m.delivery_attempt == 1 for m in got)
    assert all(m.publish_time.tzinfo is not None for m in got)
    assert len({m.ack_id for m in got}) == 3
    case.bus.ack("jobs-worker", [m.ack_id for m in got])
    assert gone(case, "jobs-worker", [m.ack_id for m in got])


def test_leased_message_is_not_offered_twice(case: BusCase) -> None:
    case.bus.publish("jobs", b"once")
    [first] = case.poll("jobs-worker")
    assert case.nothing_on("jobs-worker")
    case.bus.ack("jobs-worker", [first.ack_id])


def test_binary_data_attributes_and_ordering_key_round_trip(case: BusCase) -> None:
    data = bytes(range(256)) * 4
    # Attribute names that are keyword arguments of the batching publisher API.
    attributes = {
        "kind": "órdine €",
        "empty": "",
        "timeout": "x",
        "topic": "y",
        "data": "z",
        "ordering_key": "w",
    }
    message_id = case.bus.publish("jobs", data, attributes, ordering_key="alice")
    case.bus.publish("jobs", b"", {"only": "attributes"})

    got = {m.message_id: m for m in case.poll("jobs-worker", want=2)}

    first = got.pop(message_id)
    assert first.data == data
    assert first.attributes == attributes
    assert first.ordering_key == "alice"
    [second] = got.values()
    assert second.data == b""
    assert second.attributes == {"only": "attributes"}
    assert second.ordering_key == ""


def test_empty_message_is_rejected(case: BusCase) -> None:
    with pytest.raises(BusError):
        case.bus.publish("jobs", b"")


def test_unknown_topic_and_subscription_are_named(case: BusCase) -> None:
    with pytest.raises(BusError, match=r"'nope'.*fanout.*jobs"):
        case.bus.publish("nope", b"x")
    with pytest.raises(BusError, match=r"'nope-sub'.*fanout-a.*jobs-worker"):
        case.bus.pull("nope-sub")
    with pytest.raises(BusError, match="nope-sub"):
        case.bus.ack("nope-sub", ["x"])
    with pytest.raises(BusError, match="nope-sub"):
        case.bus.nack("nope-sub", ["x"])


# -- redelivery ------------------------------------------------------------------


def test_nack_redelivers_with_incremented_attempt(case: BusCase) -> None:
    message_id = case.bus.publish("jobs", b"retry me", {"k": "v"})
    [first] = case.poll("jobs-worker")
    assert first.delivery_attempt == 1

    case.bus.nack("jobs-worker", [first.ack_id])
    [second] = case.poll("jobs-worker")

    assert second.message_id == message_id
    assert second.delivery_attempt == 2
    assert second.ack_id != first.ack_id
    assert (second.data, second.attributes) == (b"retry me", {"k": "v"})
    case.bus.ack("jobs-worker", [second.ack_id])
    assert gone(case, "jobs-worker", [second.ack_id])


def test_unacked_message_is_redelivered_after_the_ack_deadline(case: BusCase) -> None:
    deadline = CONTRACT_TOPOLOGY.subscriptions["jobs-worker"].ack_deadline_seconds
    message_id = case.bus.publish("jobs", b"slow consumer")
    [first] = case.poll("jobs-worker")
    assert case.nothing_on("jobs-worker")

    case.wait(deadline + 0.5)
    [second] = case.poll("jobs-worker")

    assert second.message_id == message_id
    assert second.delivery_attempt == 2
    case.bus.ack("jobs-worker", [first.ack_id])  # stale: ignored, no error
    case.bus.ack("jobs-worker", [second.ack_id])
    assert gone(case, "jobs-worker", [second.ack_id])


def test_extend_keeps_a_leased_message_past_its_ack_deadline(case: BusCase) -> None:
    deadline = CONTRACT_TOPOLOGY.subscriptions["jobs-worker"].ack_deadline_seconds
    message_id = case.bus.publish("jobs", b"long ladder")
    [first] = case.poll("jobs-worker")

    case.wait(deadline * 0.6)
    case.bus.extend("jobs-worker", [first.ack_id], deadline)
    case.wait(deadline * 0.6)  # past the original deadline, inside the extension

    assert case.nothing_on("jobs-worker")
    case.bus.ack("jobs-worker", [first.ack_id])
    assert gone(case, "jobs-worker", [first.ack_id])
    assert first.message_id == message_id


def test_extend_outside_pubsubs_bounds_is_refused_with_the_range(case: BusCase) -> None:
    for seconds in (5, 601):
        with pytest.raises(BusError, match="seconds must be 10-600"):
            case.bus.extend("jobs-worker", ["any"], seconds)


def test_dead_letter_after_max_delivery_attempts(case: BusCase) -> None:
    sub = CONTRACT_TOPOLOGY.subscriptions["jobs-worker"]
    data = b"\x00poison\xff"
    case.bus.publish("jobs", data, {"signal": "s-1"}, ordering_key="k")

    for attempt in range(1, sub.max_delivery_attempts + 1):
        [msg] = case.poll("jobs-worker")
        assert msg.delivery_attempt == attempt
        case.bus.nack("jobs-worker", [msg.ack_id])

    # The consumer keeps pulling: the message is never offered again, and shows
    # up on the hold subscription (the emulator forwards it on such a pull).
    dead: list[ReceivedMessage] = []
    for _ in range(20):
        assert case.nothing_on("jobs-worker")
        dead = case.poll(HOLD, max_wait=1.0)
        if dead:
            break
    [dead_msg] = dead
    assert case.nothing_on("jobs-worker")
    dead_msg_checks(dead_msg, data, sub.max_delivery_attempts)
    case.bus.ack(HOLD, [dead_msg.ack_id])
    assert gone(case, HOLD, [dead_msg.ack_id])


def dead_msg_checks(dead: ReceivedMessage, data: bytes, attempts: int) -> None:
    assert dead.data == data
    assert dead.ordering_key == "k"
    assert dead.attributes["signal"] == "s-1"
    assert dead.attributes["CloudPubSubDeadLetterSourceSubscription"] == "jobs-worker"
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(attempts)
    assert "CloudPubSubDeadLetterSourceSubscriptionProject" in dead.attributes
    assert "CloudPubSubDeadLetterSourceTopicPublishTime" in dead.attributes


def test_publish_fans_out_to_every_subscription(case: BusCase) -> None:
    message_id = case.bus.publish("fanout", b"to both")

    [a] = case.poll("fanout-a")
    [b] = case.poll("fanout-b")

    assert a.message_id == b.message_id == message_id
    assert a.data == b.data == b"to both"
    case.bus.ack("fanout-a", [a.ack_id])
    case.bus.nack("fanout-b", [b.ack_id])  # settling one copy leaves the other alone
    [b_again] = case.poll("fanout-b")
    assert b_again.delivery_attempt == 2
    assert case.nothing_on("fanout-a")
    case.bus.ack("fanout-b", [b_again.ack_id])


@pytest.mark.parametrize("subscription", ["jobs-worker", "jobs-eo-worker"])
def test_stale_and_unknown_ack_ids_are_ignored(
    case: BusCase, subscription: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = CONTRACT_TOPOLOGY.subscriptions[subscription].topic
    case.bus.publish(topic, b"x")
    [first] = case.poll(subscription)
    case.bus.nack(subscription, [first.ack_id])
    [second] = case.poll(subscription)
    assert second.delivery_attempt == 2

    with caplog.at_level(logging.DEBUG, logger="spreadpilot.bus"):
        case.bus.ack(subscription, [first.ack_id, "no-such-ack-id"])
        case.bus.nack(subscription, ["no-such-ack-id"])

    if subscription == "jobs-eo-worker":
        # Exactly-once: the stale ack did not ack, and the caller is told in the log.
        assert any(
            r.levelno == logging.WARNING and getattr(r, "subscription", None) == subscription
            for r in caplog.records
        )
        case.bus.nack(subscription, [second.ack_id])
        [third] = case.poll(subscription)
        assert third.delivery_attempt == 3
        second = third
    case.bus.ack(subscription, [second.ack_id])
    assert gone(case, subscription, [second.ack_id])


# -- concurrency -----------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_never_hold_the_same_message(case: BusCase) -> None:
    # The workers run on the system clock; so does the publisher.
    publisher = open_bus(case.spec)
    published = sorted(publisher.publish("jobs-eo", f"m{i}".encode()) for i in range(40))
    publisher.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=pull_worker, args=(case.spec, "jobs-eo-worker", barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=90) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)

    received = [message_id for _, got in reports for message_id, _ in got]
    assert sorted(received) == published  # every message once: never two holders
    assert all(attempt == 1 for _, got in reports for _, attempt in got)
    assert all(got for _, got in reports), "both workers should have pulled concurrently"


# -- topology --------------------------------------------------------------------


def test_ensure_topology_accepts_the_real_topology(case: BusCase, tmp_path: Path) -> None:
    real = topology()
    bus: LocalBus | PubSubBus
    if case.kind == "local":
        bus = LocalBus(tmp_path / "real.db", real, SimClock(SIM_START))
    else:
        bus = PubSubBus(f"topo-{uuid.uuid4().hex[:12]}", real, timeout=10.0)
    try:
        bus.ensure_topology()
        bus.ensure_topology()  # idempotent
        message_id = bus.publish("signals", b"{}")
        [msg] = bus.pull("dispatcher", max_messages=5, timeout=5.0)
        assert msg.message_id == message_id
        bus.ack("dispatcher", [msg.ack_id])
    finally:
        bus.close()


# -- LocalBus only: what needs a simulated clock to pin down ---------------------


def _local(tmp_path: Path, **overrides: object) -> tuple[LocalBus, SimClock]:
    clock = SimClock(SIM_START)
    bus = LocalBus(tmp_path / "bus.db", CONTRACT_TOPOLOGY.with_overrides(**overrides), clock)
    return bus, clock


def test_local_nack_waits_out_the_exponential_backoff(tmp_path: Path) -> None:
    bus, clock = _local(tmp_path, min_backoff_seconds=10, max_backoff_seconds=25)
    bus.publish("jobs", b"x")
    expected_waits = [10, 20, 25, 25]  # min * 2**(attempt-1), capped at max
    for attempt, wait in enumerate(expected_waits, start=1):
        [msg] = bus.pull("jobs-worker")
        assert msg.delivery_attempt == attempt
        bus.nack("jobs-worker", [msg.ack_id])
        assert bus.stats("jobs-worker").delayed == 1
        clock.advance(timedelta(seconds=wait) - timedelta(microseconds=1))
        assert bus.pull("jobs-worker") == []
        clock.advance(timedelta(microseconds=1))
    [last] = bus.pull("jobs-worker")
    assert last.delivery_attempt == 5


def test_local_exhausted_lease_expiry_dead_letters_without_a_pull_of_the_source(
    tmp_path: Path,
) -> None:
    bus, clock = _local(tmp_path)
    bus.publish("jobs", b"x")
    for _ in range(5):
        bus.pull("jobs-worker")
        clock.advance(timedelta(seconds=10))
    assert bus.stats(HOLD).ready == 1
    assert bus.pending("jobs-worker") == 0
    [dead] = bus.pull(HOLD)
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert dead.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] == "local"
    assert dead.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"] == (
        "2026-11-24T14:30:00.000Z"
    )


def test_local_an_expired_lease_is_not_revived_by_extend(tmp_path: Path) -> None:
    clock = SimClock(SIM_START)
    bus = LocalBus(tmp_path / "bus.db", CONTRACT_TOPOLOGY, clock)
    bus.publish("jobs", b"too late")
    [first] = bus.pull("jobs-worker")
    clock.advance(
        timedelta(seconds=CONTRACT_TOPOLOGY.subscriptions["jobs-worker"].ack_deadline_seconds + 1)
    )

    bus.extend("jobs-worker", [first.ack_id], 60)

    [again] = bus.pull("jobs-worker")
    assert again.message_id == first.message_id and again.delivery_attempt == 2


def test_local_stats_by_state(tmp_path: Path) -> None:
    bus, _ = _local(tmp_path, min_backoff_seconds=5, max_backoff_seconds=5)
    for i in range(3):
        bus.publish("jobs", f"{i}".encode())
    a, b = bus.pull("jobs-worker", max_messages=2)
    bus.nack("jobs-worker", [b.ack_id])
    stats = bus.stats("jobs-worker")
    assert (stats.ready, stats.in_flight, stats.delayed, stats.pending) == (1, 1, 1, 3)
    bus.ack("jobs-worker", [a.ack_id])
    assert bus.pending("jobs-worker") == 2


def test_local_exactly_once_rejects_an_ack_after_the_lease_expired(tmp_path: Path) -> None:
    bus, clock = _local(tmp_path)
    bus.publish("jobs-eo", b"x")
    bus.publish("jobs", b"x")
    [eo] = bus.pull("jobs-eo-worker")
    [plain] = bus.pull("jobs-worker")
    clock.advance(timedelta(seconds=61))  # both leases expired, neither re-leased yet
    bus.ack("jobs-eo-worker", [eo.ack_id])
    bus.ack("jobs-worker", [plain.ack_id])
    assert bus.pending("jobs-eo-worker") == 1  # Pub/Sub exactly-once: expired ack fails
    assert bus.pending("jobs-worker") == 0  # at-least-once: accepted while not re-leased


def test_local_drops_messages_past_retention(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus, clock = _local(tmp_path)
    bus.publish("jobs", b"old")
    clock.advance(timedelta(seconds=601))
    with caplog.at_level(logging.WARNING, logger="spreadpilot.bus"):
        assert bus.pull("jobs-worker") == []
    assert any("retention" in r.getMessage() for r in caplog.records)


def test_local_rejects_what_pubsub_rejects(tmp_path: Path) -> None:
    bus, _ = _local(tmp_path)
    with pytest.raises(BusError, match="goog"):
        bus.publish("jobs", b"x", {"googfoo": "1"})
    with pytest.raises(BusError, match="1024"):
        bus.publish("jobs", b"x", {"k": "v" * 1025})
    with pytest.raises(BusError, match="100"):
        bus.publish("jobs", b"x", {f"k{i}": "v" for i in range(101)})


def test_local_topology_with_unknown_topic_is_refused(tmp_path: Path) -> None:
    defaults = {
        "ack_deadline_seconds": 10,
        "max_delivery_attempts": 5,
        "min_backoff_seconds": 0,
        "max_backoff_seconds": 0,
        "message_retention_seconds": 600,
    }
    broken = build_topology(
        {
            "defaults": defaults,
            "topics": {"a": "x"},
            "subscriptions": {"s": {"topic": "a", "pull": "t"}},
        }
    )
    bad = broken.model_copy(update={"topics": {"a": "x"}})  # dead-letter topic missing
    with pytest.raises(BusError, match="s-dead-letter"):
        LocalBus(tmp_path / "bus.db", bad, SimClock(datetime(2026, 1, 1, tzinfo=UTC)))


def test_local_threads_share_one_file_without_double_delivery(tmp_path: Path) -> None:
    import threading

    bus, _ = _local(tmp_path)
    published = sorted(bus.publish("jobs-eo", f"{i}".encode()) for i in range(60))
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        own = LocalBus(tmp_path / "bus.db", CONTRACT_TOPOLOGY, SimClock(SIM_START))
        while batch := own.pull("jobs-eo-worker", max_messages=2):
            own.ack("jobs-eo-worker", [m.ack_id for m in batch])
            with lock:
                seen.extend(m.message_id for m in batch)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(seen) == published
