"""The Bus port on Google Cloud Pub/Sub (or its emulator when PUBSUB_EMULATOR_HOST is set).

Synchronous unary RPCs only, each with an explicit timeout: publish waits for
the server's message id, pull is `SubscriberClient.pull` (an empty list when
its deadline passes with nothing to deliver), nack is a zero ack deadline.
Publishing goes through the generated client's `publish` RPC rather than the
batching `PublisherClient.publish` future: same wait-for-the-server guarantee,
no background batch thread, any attribute name (the batching API takes
attributes as keyword arguments, so "topic", "data", "timeout", "retry" or
"ordering_key" would collide), and ordering keys without client-side
ordering mode.

Ack ids that are stale, unknown or malformed are ignored with a WARNING (the
port's rule). On an exactly-once subscription the server reports each
rejected ack id (PERMANENT_FAILURE_INVALID_ACK_ID: the message will be
delivered again, so the consumer's side effect must be idempotent); transient
failures (TRANSIENT_FAILURE_*) are retried a few times and then raised as
BusError. A request rejected as a whole because of one malformed id is
retried id by id, so the valid ids still take effect.

gRPC channels do not survive fork(): create the bus in the process that uses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from google import pubsub_v1
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type

from spreadpilot.platform.topology import Subscription, Topology
from spreadpilot.ports.bus import BusError, ReceivedMessage, check_extension

log = logging.getLogger("spreadpilot.bus")

#: Pub/Sub accepts up to 2,500 ack ids per request; stay well below.
_ACK_BATCH = 1000
_TRANSIENT_ACK_RETRIES = 3
_EXACTLY_ONCE_ACK_FAILURE = "EXACTLY_ONCE_ACKID_FAILURE"

_RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.ResourceExhausted,
    gexc.Unknown,
    gexc.DeadlineExceeded,
)


class PubSubBus:
    """Bus on Pub/Sub. `timeout` bounds each call (retries of transient errors
    included: a call returns or raises BusError after about `timeout`, at most
    twice that)."""

    def __init__(self, project: str, topology: Topology, timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._project = project
        self._topology = topology
        self._timeout = timeout
        self._lock = threading.Lock()
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None

    # -- the Bus port -----------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: dict[str, str] | None = None,
        ordering_key: str = "",
    ) -> str:
        if topic not in self._topology.topics:
            known = ", ".join(sorted(self._topology.topics))
            raise BusError(f"unknown topic {topic!r}; known topics: {known}")
        message = pubsub_v1.PubsubMessage(
            data=data, attributes=dict(attributes or {}), ordering_key=ordering_key
        )
        try:
            response = self._pub().publish(
                request=pubsub_v1.PublishRequest(topic=self._topic_path(topic), messages=[message]),
                retry=self._retry(),
                timeout=self._timeout,
            )
        except (gexc.GoogleAPIError, ValueError, TypeError) as exc:
            raise BusError(f"publish to {self._topic_path(topic)} failed: {exc}") from exc
        ids = list(response.message_ids)
        if len(ids) != 1:
            raise BusError(f"publish to {topic!r}: server returned {len(ids)} message ids")
        return str(ids[0])

    def pull(
        self, subscription: str, max_messages: int = 10, timeout: float = 5.0
    ) -> list[ReceivedMessage]:
        sub = self._subscription(subscription)
        if max_messages < 1:
            raise BusError(f"pull {subscription!r}: max_messages must be >= 1, got {max_messages}")
        try:
            response = self._sub().pull(
                request=pubsub_v1.PullRequest(
                    subscription=self._subscription_path(sub.name), max_messages=max_messages
                ),
                retry=None,
                timeout=max(0.1, min(timeout, self._timeout)),
            )
        except gexc.DeadlineExceeded:
            return []
        except gexc.NotFound as exc:
            raise BusError(self._not_found(sub.name)) from exc
        except gexc.GoogleAPIError as exc:
            raise BusError(f"pull {self._subscription_path(sub.name)} failed: {exc}") from exc
        return [
            ReceivedMessage(
                ack_id=received.ack_id,
                message_id=received.message.message_id,
                data=bytes(received.message.data),
                attributes=dict(received.message.attributes),
                publish_time=received.message.publish_time,
                # Pub/Sub sends 0 when the subscription has no dead-letter policy.
                delivery_attempt=received.delivery_attempt or 1,
                ordering_key=received.message.ordering_key,
            )
            for received in response.received_messages
        ]

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        sub = self._subscription(subscription)
        path = self._subscription_path(sub.name)

        def call(ids: list[str]) -> None:
            self._sub().acknowledge(
                request=pubsub_v1.AcknowledgeRequest(subscription=path, ack_ids=ids),
                retry=self._retry(),
                timeout=self._timeout,
            )

        self._settle(sub, "ack", ack_ids, call)

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        sub = self._subscription(subscription)
        path = self._subscription_path(sub.name)

        def call(ids: list[str]) -> None:
            self._sub().modify_ack_deadline(
                request=pubsub_v1.ModifyAckDeadlineRequest(
                    subscription=path, ack_ids=ids, ack_deadline_seconds=0
                ),
                retry=self._retry(),
                timeout=self._timeout,
            )

        self._settle(sub, "nack", ack_ids, call)

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        sub = self._subscription(subscription)
        check_extension(subscription, seconds)
        path = self._subscription_path(sub.name)

        def call(ids: list[str]) -> None:
            self._sub().modify_ack_deadline(
                request=pubsub_v1.ModifyAckDeadlineRequest(
                    subscription=path, ack_ids=ids, ack_deadline_seconds=seconds
                ),
                retry=self._retry(),
                timeout=self._timeout,
            )

        self._settle(sub, "extend", ack_ids, call)

    def probe(self) -> None:
        """Reachability for /health and health_ping: read the alerts topic (one call).

        Any answer from Pub/Sub counts: a publisher-only service account is refused
        topics.get (PermissionDenied), which still proves the service is reachable."""
        try:
            self._pub().get_topic(
                request={"topic": self._topic_path("alerts")}, timeout=self._timeout
            )
        except (gexc.PermissionDenied, gexc.NotFound):
            return
        except (gexc.GoogleAPIError, ValueError, TypeError) as exc:
            raise BusError(f"Pub/Sub unreachable ({self._topic_path('alerts')}): {exc}") from exc

    def ensure_topology(self) -> None:
        """Create every topic, then every subscription, that does not exist yet.

        Push subscriptions are created as pull subscriptions: outside GCP the
        local runner pulls and delivers them; in GCP Terraform owns them. An
        existing subscription is left as it is; settings that differ from the
        topology are logged as a WARNING.
        """
        for topic in self._topology.topics:
            try:
                self._pub().create_topic(
                    request=pubsub_v1.Topic(name=self._topic_path(topic)),
                    retry=self._retry(),
                    timeout=self._timeout,
                )
            except gexc.AlreadyExists:
                pass
            except gexc.GoogleAPIError as exc:
                raise BusError(f"create topic {self._topic_path(topic)} failed: {exc}") from exc
        for sub in self._topology.subscriptions.values():
            wanted = self._subscription_spec(sub)
            try:
                self._sub().create_subscription(
                    request=wanted, retry=self._retry(), timeout=self._timeout
                )
                continue
            except gexc.AlreadyExists:
                pass
            except gexc.GoogleAPIError as exc:
                raise BusError(f"create subscription {wanted.name} failed: {exc}") from exc
            try:
                existing = self._sub().get_subscription(
                    request=pubsub_v1.GetSubscriptionRequest(subscription=wanted.name),
                    retry=self._retry(),
                    timeout=self._timeout,
                )
            except gexc.GoogleAPIError as exc:
                raise BusError(f"get subscription {wanted.name} failed: {exc}") from exc
            drift = _drift(wanted, existing)
            if drift:
                log.warning(
                    "subscription exists with settings that differ from the topology",
                    extra={"subscription": wanted.name, "differences": drift},
                )

    # -- extras -------------------------------------------------------------------

    def close(self) -> None:
        """Close the gRPC channels (a later call opens new ones)."""
        with self._lock:
            clients: list[Any] = [self._publisher, self._subscriber]
            self._publisher = self._subscriber = None
        for client in clients:
            if client is not None:
                client.transport.close()

    # -- internals ----------------------------------------------------------------

    def _pub(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            if self._publisher is None:
                self._publisher = pubsub_v1.PublisherClient()
            return self._publisher

    def _sub(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            if self._subscriber is None:
                self._subscriber = pubsub_v1.SubscriberClient()
            return self._subscriber

    def _retry(self) -> Retry:
        return Retry(
            predicate=if_exception_type(*_RETRYABLE),
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=self._timeout,
        )

    def _topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def _subscription_path(self, subscription: str) -> str:
        return f"projects/{self._project}/subscriptions/{subscription}"

    def _subscription(self, name: str) -> Subscription:
        sub = self._topology.subscriptions.get(name)
        if sub is None:
            known = ", ".join(sorted(self._topology.subscriptions))
            raise BusError(f"unknown subscription {name!r}; known subscriptions: {known}")
        return sub

    def _not_found(self, subscription: str) -> str:
        return (
            f"subscription {self._subscription_path(subscription)} does not exist; "
            "create it with ensure_topology() (emulator) or Terraform (GCP)"
        )

    def _subscription_spec(self, sub: Subscription) -> pubsub_v1.Subscription:
        spec = pubsub_v1.Subscription(
            name=self._subscription_path(sub.name),
            topic=self._topic_path(sub.topic),
            ack_deadline_seconds=sub.ack_deadline_seconds,
            message_retention_duration=timedelta(seconds=sub.message_retention_seconds),
            retry_policy=pubsub_v1.RetryPolicy(
                minimum_backoff=timedelta(seconds=sub.min_backoff_seconds),
                maximum_backoff=timedelta(seconds=sub.max_backoff_seconds),
            ),
            enable_exactly_once_delivery=sub.exactly_once,
        )
        if sub.dead_letter_topic is not None:
            spec.dead_letter_policy = pubsub_v1.DeadLetterPolicy(
                dead_letter_topic=self._topic_path(sub.dead_letter_topic),
                max_delivery_attempts=sub.max_delivery_attempts,
            )
        return spec

    def _settle(
        self,
        sub: Subscription,
        op: str,
        ack_ids: Sequence[str],
        call: Callable[[list[str]], None],
    ) -> None:
        ids = list(dict.fromkeys(ack_ids))
        ignored: list[str] = []
        for start in range(0, len(ids), _ACK_BATCH):
            ignored += self._settle_batch(sub, op, ids[start : start + _ACK_BATCH], call)
        if ignored:
            log.warning(
                "%s ignored for ack ids the server rejected as stale, expired or malformed",
                op,
                extra={
                    "subscription": sub.name,
                    "ignored": len(ignored),
                    "exactly_once": sub.exactly_once,
                },
            )

    def _settle_batch(
        self,
        sub: Subscription,
        op: str,
        ids: list[str],
        call: Callable[[list[str]], None],
    ) -> list[str]:
        """Ack/nack ids; returns the ids the server rejected for good."""
        ignored: list[str] = []
        pending = ids
        for attempt in range(_TRANSIENT_ACK_RETRIES + 1):
            if not pending:
                break
            if attempt:
                time.sleep(0.1 * 2**attempt)
            try:
                call(pending)
                return ignored
            except gexc.InvalidArgument as exc:
                if exc.reason != _EXACTLY_ONCE_ACK_FAILURE:
                    # The whole request was refused (a malformed ack id): one by one.
                    if len(pending) == 1:
                        return [*ignored, *pending]
                    for one in pending:
                        ignored += self._settle_batch(sub, op, [one], call)
                    return ignored
                failures: dict[str, str] = dict(exc.metadata or {})
                transient = [i for i in pending if failures.get(i, "").startswith("TRANSIENT_")]
                ignored += [i for i in pending if i in failures and i not in transient]
                pending = transient
            except gexc.NotFound as exc:
                raise BusError(self._not_found(sub.name)) from exc
            except gexc.GoogleAPIError as exc:
                raise BusError(
                    f"{op} on {self._subscription_path(sub.name)} failed: {exc}"
                ) from exc
        if pending:
            raise BusError(
                f"{op} on {self._subscription_path(sub.name)}: {len(pending)} ack ids still "
                f"failing transiently after {_TRANSIENT_ACK_RETRIES} retries"
            )
        return ignored


def _drift(wanted: pubsub_v1.Subscription, existing: pubsub_v1.Subscription) -> dict[str, Any]:
    def settings(s: pubsub_v1.Subscription) -> dict[str, Any]:
        return {
            "topic": s.topic,
            "ack_deadline_seconds": s.ack_deadline_seconds,
            "enable_exactly_once_delivery": s.enable_exactly_once_delivery,
            "dead_letter_topic": s.dead_letter_policy.dead_letter_topic,
            "max_delivery_attempts": s.dead_letter_policy.max_delivery_attempts,
            "minimum_backoff": str(s.retry_policy.minimum_backoff),
            "maximum_backoff": str(s.retry_policy.maximum_backoff),
        }

    want, have = settings(wanted), settings(existing)
    return {k: {"topology": want[k], "server": have[k]} for k in want if want[k] != have[k]}
