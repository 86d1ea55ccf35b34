"""The embedded bus: Pub/Sub's delivery rules on one SQLite file.

Several processes and threads may share the file. Every operation that changes
state runs in one `BEGIN IMMEDIATE` transaction (WAL journal, busy timeout), so
two pullers can never lease the same message at once. All timing comes from
the injected clock: with a SimClock, ack deadlines, retry backoff and dead
letters follow simulated time.

Rules (Pub/Sub's):
- publishing fans out to every subscription of the topic (none: dropped);
- a pulled message is leased until its ack deadline; then it is offered again;
- a nacked message is offered again after `Subscription.backoff(attempt)`;
- `delivery_attempt` counts deliveries, 1 on the first;
- a message delivered `max_delivery_attempts` times without an ack is
  forwarded to the subscription's dead-letter topic instead of being offered
  again (at once when the last delivery is nacked, at the lease's expiry
  otherwise), with data, attributes and ordering key preserved and Pub/Sub's
  `CloudPubSubDeadLetterSource*` attributes added; the dead-lettered copy gets
  a new message id and publish time, as in Pub/Sub;
- messages older than the subscription's retention are dropped (logged).

Differences from Pub/Sub, all on the strict side:
- only the ack id of the message's current lease acks it; an ack or nack with
  an older or unknown ack id is ignored (logged at DEBUG, or WARNING on an
  exactly-once subscription: there it means the message will be delivered
  again, just as Pub/Sub reports PERMANENT_FAILURE_INVALID_ACK_ID);
- on an exactly-once subscription an ack after the lease expired is ignored
  the same way (Pub/Sub rejects it too); elsewhere it is accepted if the
  message has not been leased again;
- a lease that expires makes the message available at once (no extra
  backoff); pull returns immediately, never long-polls;
- messages are offered in publish order, whatever their ordering key.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spreadpilot.platform.topology import Subscription, Topology
from spreadpilot.ports.bus import BusError, ReceivedMessage, check_extension
from spreadpilot.ports.clock import Clock

log = logging.getLogger("spreadpilot.bus")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_SECOND_US = 1_000_000

# Pub/Sub's limits, so embedded runs reject what GCP would reject.
MAX_MESSAGE_BYTES = 10_000_000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bus_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    topic TEXT NOT NULL,
    message_id TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    publish_us INTEGER NOT NULL,
    visible_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    ack_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS bus_deliveries_ready
    ON bus_deliveries (subscription, visible_us);
"""

_COLUMNS = "id, message_id, data, attributes, ordering_key, publish_us, attempts, topic"


@dataclass(frozen=True)
class SubscriptionStats:
    """Messages a subscription holds, by state, at the clock's current time."""

    ready: int  #: deliverable now (new, lease expired, or backoff over)
    in_flight: int  #: leased, ack deadline not reached
    delayed: int  #: nacked, waiting out the retry backoff

    @property
    def pending(self) -> int:
        return self.ready + self.in_flight + self.delayed


@dataclass(frozen=True)
class _Row:
    id: int
    message_id: str
    data: bytes
    attributes: str
    ordering_key: str
    publish_us: int
    attempts: int
    topic: str


def _to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise BusError(f"clock returned a naive datetime {when!r}; the bus needs aware UTC")
    return (when - _EPOCH) // _MICRO


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _rfc3339_ms(us: int) -> str:
    return _from_us(us).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate(topic: str, data: bytes, attributes: dict[str, str]) -> None:
    if not isinstance(data, bytes):
        raise BusError(f"publish to {topic!r}: data must be bytes, got {type(data).__name__}")
    if not data and not attributes:
        raise BusError(f"publish to {topic!r}: a message needs data or at least one attribute")
    if len(attributes) > MAX_ATTRIBUTES:
        raise BusError(
            f"publish to {topic!r}: {len(attributes)} attributes, Pub/Sub allows {MAX_ATTRIBUTES}"
        )
    size = len(data)
    for key, value in attributes.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BusError(f"publish to {topic!r}: attribute {key!r} must map str to str")
        key_bytes, value_bytes = len(key.encode()), len(value.encode())
        if not key or key_bytes > MAX_ATTRIBUTE_KEY_BYTES or key.startswith("goog"):
            raise BusError(
                f"publish to {topic!r}: attribute key {key[:40]!r} must be 1-"
                f"{MAX_ATTRIBUTE_KEY_BYTES} bytes and must not start with 'goog'"
            )
        if value_bytes > MAX_ATTRIBUTE_VALUE_BYTES:
            raise BusError(
                f"publish to {topic!r}: attribute {key!r} is {value_bytes} bytes, "
                f"Pub/Sub allows {MAX_ATTRIBUTE_VALUE_BYTES}"
            )
        size += key_bytes + value_bytes
    if size > MAX_MESSAGE_BYTES:
        raise BusError(f"publish to {topic!r}: message is {size} bytes, over {MAX_MESSAGE_BYTES}")


class LocalBus:
    """SQLite-backed Bus with Pub/Sub's delivery rules (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        topology: Topology,
        clock: Clock,
        *,
        project: str = "local",
        busy_timeout: float = 30.0,
        durable: bool = True,
    ) -> None:
        self._path = Path(path)
        self._topology = topology
        self._clock = clock
        self._project = project
        self._busy_timeout = busy_timeout
        self._sync = "FULL" if durable else "NORMAL"  # see SqliteStore's `durable`
        self._local = threading.local()
        self._check_topology()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._conn()
            # WAL is a property of the file: set once, kept by every later opener.
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise BusError(f"local bus {self._path}: cannot switch to WAL (mode {mode})")
            with self._write() as tx:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(
                    "INSERT OR IGNORE INTO bus_counter (name, value) VALUES ('message_id', 0)"
                )
        except sqlite3.Error as exc:
            raise BusError(f"local bus {self._path}: cannot open ({exc})") from exc

    # -- the Bus port -----------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: dict[str, str] | None = None,
        ordering_key: str = "",
    ) -> str:
        attrs = dict(attributes or {})
        self._topic(topic)
        _validate(topic, data, attrs)
        now = self._now_us()
        try:
            with self._write() as conn:
                return self._insert(conn, topic, data, attrs, ordering_key, now)
        except sqlite3.Error as exc:
            raise BusError(f"local bus: publish to {topic!r} failed ({exc})") from exc

    def pull(
        self, subscription: str, max_messages: int = 10, timeout: float = 5.0
    ) -> list[ReceivedMessage]:
        """Lease up to max_messages deliverable now; returns at once (timeout unused)."""
        sub = self._subscription(subscription)
        if max_messages < 1:
            raise BusError(f"pull {subscription!r}: max_messages must be >= 1, got {max_messages}")
        now = self._now_us()
        lease_until = now + sub.ack_deadline_seconds * _SECOND_US
        out: list[ReceivedMessage] = []
        try:
            with self._write() as conn:
                self._sweep(conn, now)
                rows = [
                    _Row(*r)
                    for r in conn.execute(
                        f"SELECT {_COLUMNS} FROM bus_deliveries "  # noqa: S608 - constant
                        "WHERE subscription = ? AND visible_us <= ? ORDER BY id LIMIT ?",
                        (sub.name, now, max_messages),
                    )
                ]
                for row in rows:
                    ack_id = f"{sub.name}:{row.id}:{uuid.uuid4().hex}"
                    attempt = row.attempts + 1
                    conn.execute(
                        "UPDATE bus_deliveries SET attempts = ?, ack_id = ?, visible_us = ? "
                        "WHERE id = ?",
                        (attempt, ack_id, lease_until, row.id),
                    )
                    out.append(
                        ReceivedMessage(
                            ack_id=ack_id,
                            message_id=row.message_id,
                            data=bytes(row.data),
                            attributes=json.loads(row.attributes),
                            publish_time=_from_us(row.publish_us),
                            delivery_attempt=attempt,
                            ordering_key=row.ordering_key,
                        )
                    )
        except sqlite3.Error as exc:
            raise BusError(f"local bus: pull {subscription!r} failed ({exc})") from exc
        return out

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        sub = self._subscription(subscription)
        ids = list(dict.fromkeys(ack_ids))
        if not ids:
            return
        now = self._now_us()
        # Exactly-once: an expired lease cannot be acked (Pub/Sub rejects it too).
        min_visible = now + 1 if sub.exactly_once else None
        acked = 0
        try:
            with self._write() as conn:
                for ack_id in ids:
                    if min_visible is None:
                        cur = conn.execute(
                            "DELETE FROM bus_deliveries WHERE subscription = ? AND ack_id = ?",
                            (sub.name, ack_id),
                        )
                    else:
                        cur = conn.execute(
                            "DELETE FROM bus_deliveries "
                            "WHERE subscription = ? AND ack_id = ? AND visible_us >= ?",
                            (sub.name, ack_id, min_visible),
                        )
                    acked += cur.rowcount
        except sqlite3.Error as exc:
            raise BusError(f"local bus: ack on {subscription!r} failed ({exc})") from exc
        if acked < len(ids):
            self._ignored(sub, "ack", len(ids) - acked)

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        sub = self._subscription(subscription)
        ids = list(dict.fromkeys(ack_ids))
        if not ids:
            return
        now = self._now_us()
        nacked = 0
        try:
            with self._write() as conn:
                for ack_id in ids:
                    found = conn.execute(
                        f"SELECT {_COLUMNS}, visible_us FROM bus_deliveries "  # noqa: S608
                        "WHERE subscription = ? AND ack_id = ?",
                        (sub.name, ack_id),
                    ).fetchone()
                    if found is None:
                        continue
                    row, visible_us = _Row(*found[:-1]), int(found[-1])
                    if sub.exactly_once and visible_us <= now:
                        continue
                    nacked += 1
                    if self._exhausted(sub, row.attempts):
                        self._dead_letter(conn, sub, row, now)
                        continue
                    retry_at = now + round(sub.backoff(row.attempts) * _SECOND_US)
                    conn.execute(
                        "UPDATE bus_deliveries SET ack_id = NULL, visible_us = ? WHERE id = ?",
                        (retry_at, row.id),
                    )
        except sqlite3.Error as exc:
            raise BusError(f"local bus: nack on {subscription!r} failed ({exc})") from exc
        if nacked < len(ids):
            self._ignored(sub, "nack", len(ids) - nacked)

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        sub = self._subscription(subscription)
        check_extension(subscription, seconds)
        ids = list(dict.fromkeys(ack_ids))
        if not ids:
            return
        now = self._now_us()
        until = now + seconds * _SECOND_US
        extended = 0
        try:
            with self._write() as conn:
                for ack_id in ids:
                    cur = conn.execute(
                        "UPDATE bus_deliveries SET visible_us = ? "
                        "WHERE subscription = ? AND ack_id = ? AND visible_us > ?",
                        (until, sub.name, ack_id, now),
                    )
                    extended += cur.rowcount
        except sqlite3.Error as exc:
            raise BusError(f"local bus: extend on {subscription!r} failed ({exc})") from exc
        if extended < len(ids):
            self._ignored(sub, "extend", len(ids) - extended)

    def probe(self) -> None:
        """Reachability for /health and health_ping: one read of the bus file."""
        try:
            self._conn().execute("SELECT value FROM bus_counter LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise BusError(f"local bus {self._path}: unreachable ({exc})") from exc

    def ensure_topology(self) -> None:
        """Nothing to create: subscriptions exist as soon as the topology names
        them. Checks that the topology is consistent."""
        self._check_topology()

    # -- helpers for tests, the demo and operators --------------------------------

    def stats(self, subscription: str) -> SubscriptionStats:
        """Counts by state at the clock's current time (after due dead-lettering)."""
        sub = self._subscription(subscription)
        now = self._now_us()
        try:
            with self._write() as conn:
                self._sweep(conn, now)
                ready, in_flight, delayed = conn.execute(
                    "SELECT "
                    "COALESCE(SUM(visible_us <= ?), 0), "
                    "COALESCE(SUM(visible_us > ? AND ack_id IS NOT NULL), 0), "
                    "COALESCE(SUM(visible_us > ? AND ack_id IS NULL), 0) "
                    "FROM bus_deliveries WHERE subscription = ?",
                    (now, now, now, sub.name),
                ).fetchone()
        except sqlite3.Error as exc:
            raise BusError(f"local bus: stats of {subscription!r} failed ({exc})") from exc
        return SubscriptionStats(ready=int(ready), in_flight=int(in_flight), delayed=int(delayed))

    def pending(self, subscription: str) -> int:
        """Messages not yet acked: ready + in flight + waiting out a backoff."""
        return self.stats(subscription).pending

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    # -- internals -------------------------------------------------------------

    def _check_topology(self) -> None:
        for sub in self._topology.subscriptions.values():
            for topic in (sub.topic, sub.dead_letter_topic):
                if topic is not None and topic not in self._topology.topics:
                    raise BusError(
                        f"topology: subscription {sub.name!r} names unknown topic {topic!r}"
                    )

    def _topic(self, topic: str) -> None:
        if topic not in self._topology.topics:
            known = ", ".join(sorted(self._topology.topics))
            raise BusError(f"unknown topic {topic!r}; known topics: {known}")

    def _subscription(self, name: str) -> Subscription:
        sub = self._topology.subscriptions.get(name)
        if sub is None:
            known = ", ".join(sorted(self._topology.subscriptions))
            raise BusError(f"unknown subscription {name!r}; known subscriptions: {known}")
        return sub

    def _now_us(self) -> int:
        return _to_us(self._clock.now())

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self._sync}")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert(
        self,
        conn: sqlite3.Connection,
        topic: str,
        data: bytes,
        attributes: dict[str, str],
        ordering_key: str,
        now: int,
    ) -> str:
        (value,) = conn.execute(
            "UPDATE bus_counter SET value = value + 1 WHERE name = 'message_id' RETURNING value"
        ).fetchone()
        message_id = str(value)
        attrs = json.dumps(attributes, ensure_ascii=False, sort_keys=True)
        for sub in self._topology.subscriptions_of(topic):
            conn.execute(
                "INSERT INTO bus_deliveries (subscription, topic, message_id, data, attributes, "
                "ordering_key, publish_us, visible_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sub.name, topic, message_id, data, attrs, ordering_key, now, now),
            )
        return message_id

    @staticmethod
    def _exhausted(sub: Subscription, attempts: int) -> bool:
        return sub.dead_letter_topic is not None and attempts >= sub.max_delivery_attempts

    def _sweep(self, conn: sqlite3.Connection, now: int) -> None:
        """What Pub/Sub does in the background: dead-letter exhausted messages
        whose lease or backoff is over, drop messages past retention."""
        for sub in self._topology.subscriptions.values():
            cutoff = now - sub.message_retention_seconds * _SECOND_US
            dropped = conn.execute(
                "DELETE FROM bus_deliveries WHERE subscription = ? AND publish_us < ?",
                (sub.name, cutoff),
            ).rowcount
            if dropped:
                log.warning(
                    "dropped messages past retention",
                    extra={
                        "subscription": sub.name,
                        "dropped": dropped,
                        "retention_seconds": sub.message_retention_seconds,
                    },
                )
            if sub.dead_letter_topic is None:
                continue
            rows = [
                _Row(*r)
                for r in conn.execute(
                    f"SELECT {_COLUMNS} FROM bus_deliveries "  # noqa: S608 - constant
                    "WHERE subscription = ? AND visible_us <= ? AND attempts >= ? ORDER BY id",
                    (sub.name, now, sub.max_delivery_attempts),
                )
            ]
            for row in rows:
                self._dead_letter(conn, sub, row, now)

    def _dead_letter(
        self, conn: sqlite3.Connection, sub: Subscription, row: _Row, now: int
    ) -> None:
        assert sub.dead_letter_topic is not None
        attributes: dict[str, str] = json.loads(row.attributes)
        attributes.update(
            {
                "CloudPubSubDeadLetterSourceSubscription": sub.name,
                "CloudPubSubDeadLetterSourceSubscriptionProject": self._project,
                "CloudPubSubDeadLetterSourceDeliveryCount": str(row.attempts),
                "CloudPubSubDeadLetterSourceTopicPublishTime": _rfc3339_ms(row.publish_us),
            }
        )
        new_id = self._insert(
            conn, sub.dead_letter_topic, bytes(row.data), attributes, row.ordering_key, now
        )
        conn.execute("DELETE FROM bus_deliveries WHERE id = ?", (row.id,))
        log.warning(
            "message dead-lettered",
            extra={
                "subscription": sub.name,
                "message_id": row.message_id,
                "delivery_attempts": row.attempts,
                "dead_letter_topic": sub.dead_letter_topic,
                "dead_letter_message_id": new_id,
            },
        )

    @staticmethod
    def _ignored(sub: Subscription, op: str, count: int) -> None:
        level = logging.WARNING if sub.exactly_once else logging.DEBUG
        log.log(
            level,
            "%s ignored for ack ids that are unknown, stale or expired",
            op,
            extra={"subscription": sub.name, "ignored": count, "exactly_once": sub.exactly_once},
        )
