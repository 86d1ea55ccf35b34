"""Real CloudEvent HTTP requests, as Eventarc delivers a Pub/Sub message to a gen2 function."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from spreadpilot.platform.events import PUBSUB_EVENT_TYPE


def pubsub_body(
    payload: Any = None,
    *,
    raw_data: str | None = None,
    message_id: str = "m-1",
    publish_time: datetime | None = None,
    attributes: Any = None,
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    data = (
        raw_data
        if raw_data is not None
        else base64.b64encode(json.dumps(payload).encode()).decode()
    )
    message: dict[str, Any] = {
        "data": data,
        "messageId": message_id,
        "attributes": attributes if attributes is not None else {},
    }
    if publish_time is not None:
        message["publishTime"] = publish_time.isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "message": message,
        "subscription": "projects/p/subscriptions/dispatcher",
    }
    for key in drop:
        body.pop(key, None)
        message.pop(key, None)
    return body


def binary(body: Any, event_id: str = "m-1", topic: str = "signals") -> dict[str, Any]:
    """Keyword arguments for a Flask test client's post(): binary content mode."""
    return {
        "headers": {
            "ce-id": event_id,
            "ce-source": f"//pubsub.googleapis.com/projects/p/topics/{topic}",
            "ce-type": PUBSUB_EVENT_TYPE,
            "ce-specversion": "1.0",
            "Content-Type": "application/json",
        },
        "data": json.dumps(body) if not isinstance(body, bytes) else body,
    }


def structured(body: Any, event_id: str = "m-1", topic: str = "signals") -> dict[str, Any]:
    """Structured content mode: the whole event in one JSON document."""
    return {
        "headers": {"Content-Type": "application/cloudevents+json"},
        "data": json.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": f"//pubsub.googleapis.com/projects/p/topics/{topic}",
                "type": PUBSUB_EVENT_TYPE,
                "datacontenttype": "application/json",
                "data": body,
            }
        ),
    }
