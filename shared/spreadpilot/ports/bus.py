"""Message bus port: publish + pull, with Pub/Sub's delivery rules.

At-least-once delivery; a pulled message is invisible until its ack deadline
passes or it is nacked; a nacked message comes back after the subscription's
retry backoff; after `max_delivery_attempts` deliveries without an ack it is
forwarded to the subscription's dead-letter topic. Subscriptions are declared
in `spreadpilot/platform/topics.yaml` (see `spreadpilot.platform.topology`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ReceivedMessage:
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime
    #: 1 on first delivery; Pub/Sub only fills it when a dead-letter policy exists.
    delivery_attempt: int
    ordering_key: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    ordering_key: str = ""


class BusError(Exception):
    """A bus operation failed; the caller may retry."""


#: Pub/Sub's bounds on an ack deadline modification (modifyAckDeadline).
MIN_EXTENSION_SECONDS, MAX_EXTENSION_SECONDS = 10, 600


def check_extension(subscription: str, seconds: int) -> None:
    """The same refusal from every adapter for a deadline Pub/Sub would refuse."""
    if not MIN_EXTENSION_SECONDS <= seconds <= MAX_EXTENSION_SECONDS:
        raise BusError(
            f"extend on {subscription!r}: seconds must be {MIN_EXTENSION_SECONDS}-"
            f"{MAX_EXTENSION_SECONDS} (Pub/Sub's ack deadline bounds), got {seconds}"
        )


class Bus(Protocol):
    def publish(
        self,
        topic: str,
        data: bytes,
        attributes: dict[str, str] | None = None,
        ordering_key: str = "",
    ) -> str:
        """Publish and wait for the server's acceptance; returns the message id."""
        ...

    def pull(
        self, subscription: str, max_messages: int = 10, timeout: float = 5.0
    ) -> list[ReceivedMessage]:
        """Return up to max_messages available now (possibly none); never blocks
        longer than timeout seconds."""
        ...

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None: ...

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Give the messages back for redelivery after the retry backoff."""
        ...

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        """Keep leased messages invisible for `seconds` more from now (Pub/Sub's
        modifyAckDeadline, 10-600 s): a consumer still working on them (a ladder
        outlasting the ack deadline) is not raced by their redelivery. A lease that
        already expired is not revived (ignored, like a stale ack)."""
        ...

    def ensure_topology(self) -> None:
        """Create every topic and subscription of the topology if missing
        (embedded and emulator runs; Terraform owns them in GCP)."""
        ...
