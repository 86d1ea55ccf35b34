"""Pub/Sub CloudEvent envelopes: built by the local runner, decoded by every
event-driven function. The envelope is the one Eventarc and the Functions
Framework hand to a gen2 function for a Pub/Sub message."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.http import CloudEvent

from spreadpilot.ports.bus import ReceivedMessage

PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


class MalformedEvent(ValueError):
    """The event cannot be understood; retrying will not help."""


@dataclass(frozen=True)
class PubSubEnvelope:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime | None
    delivery_attempt: int
    subscription: str

    def json(self) -> Any:
        """The payload as JSON, or MalformedEvent naming what is wrong."""
        try:
            return json.loads(self.data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise MalformedEvent(
                f"message {self.message_id}: data is not UTF-8 text ({exc.reason}); "
                "publish JSON encoded as UTF-8"
            ) from exc
        except json.JSONDecodeError as exc:
            raise MalformedEvent(
                f"message {self.message_id}: data is not JSON ({exc.msg} at char {exc.pos}); "
                "publish a JSON object"
            ) from exc


def pubsub_cloud_event(
    msg: ReceivedMessage, *, project: str, topic: str, subscription: str
) -> CloudEvent:
    publish_time = msg.publish_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    attributes = {
        "id": msg.message_id,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "type": PUBSUB_EVENT_TYPE,
        "specversion": "1.0",
        "time": publish_time,
        "datacontenttype": "application/json",
    }
    message: dict[str, Any] = {
        "data": base64.b64encode(msg.data).decode("ascii"),
        "attributes": dict(msg.attributes),
        "messageId": msg.message_id,
        "message_id": msg.message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
    }
    if msg.ordering_key:
        message["orderingKey"] = msg.ordering_key
    data = {
        "message": message,
        "subscription": f"projects/{project}/subscriptions/{subscription}",
        "deliveryAttempt": msg.delivery_attempt,
    }
    return CloudEvent(attributes, data)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decode_pubsub(event: Any) -> PubSubEnvelope:
    """Validate a Pub/Sub CloudEvent; every failure names the field and the fix."""
    data = getattr(event, "data", None)
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(
                "event data is not JSON: expected a Pub/Sub push body "
                '{"message": {...}, "subscription": ...}'
            ) from exc
    if not isinstance(data, dict):
        raise MalformedEvent(
            f"event data is {type(data).__name__}, expected an object with a 'message' field"
        )
    message = data.get("message")
    if not isinstance(message, dict):
        raise MalformedEvent(
            "field 'message' is missing or not an object: expected the Pub/Sub message "
            "{data, attributes, messageId, publishTime}"
        )
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        try:
            message_id = str(event["id"])
        except (KeyError, TypeError):
            message_id = ""
        if not message_id:
            raise MalformedEvent("field 'message.messageId' is missing: every message needs an id")
    raw = message.get("data", "")
    if not isinstance(raw, str):
        raise MalformedEvent(
            f"field 'message.data' is {type(raw).__name__}, expected a base64 string"
        )
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent(
            f"field 'message.data' of message {message_id} is not valid base64 ({exc}); "
            "the publisher must send the payload base64-encoded"
        ) from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise MalformedEvent(
            f"field 'message.attributes' of message {message_id} must map strings to strings"
        )
    attempt = data.get("deliveryAttempt", 1)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise MalformedEvent(
            f"field 'deliveryAttempt' is {attempt!r}, expected a non-negative integer"
        )
    subscription = data.get("subscription", "")
    return PubSubEnvelope(
        message_id=message_id,
        data=payload,
        attributes=dict(attributes),
        publish_time=_parse_time(message.get("publishTime", message.get("publish_time"))),
        delivery_attempt=attempt or 1,
        subscription=subscription if isinstance(subscription, str) else "",
    )
