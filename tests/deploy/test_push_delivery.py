"""What Terraform wires: a Pub/Sub push subscription POSTs its plain JSON body
(no CloudEvent headers) to the function's URL. The Functions Framework turns it
into the CloudEvent the function expects; these tests post exactly that body to
the real entry points, and check that every topic a function then publishes to
is one its deploy.yaml lets it publish to (its service account has no other)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import yaml
from flask.testing import FlaskClient

from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.topology import topology
from spreadpilot.platform.wiring import use_container
from tests.support.embedded import ACTIVE, REPO, Platform, bull_put_row, make_platform

SID = "2026-11-24_QQQ"


def push_body(
    payload: Any, subscription: str, publish_time: datetime, raw: str | None = None
) -> str:
    """The JSON a push subscription sends (https://cloud.google.com/pubsub/docs/push)."""
    data = raw if raw is not None else base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps(
        {
            "message": {
                "data": data,
                "attributes": {"job": "signal-poll"},
                "messageId": "1234567890",
                "publishTime": publish_time.isoformat().replace("+00:00", "Z"),
            },
            "subscription": f"projects/sp-prod/subscriptions/{subscription}",
            "deliveryAttempt": 1,
        }
    )


def client(name: str) -> FlaskClient:
    app = functions_framework.create_app(
        target=name, source=str(REPO / "functions" / name / "main.py"), signature_type="cloudevent"
    )
    return app.test_client()


def allowed_topics(name: str) -> set[str]:
    spec = yaml.safe_load((REPO / "functions" / name / "deploy.yaml").read_text())
    dead_letter = topology().push_subscription_for(name).dead_letter_topic
    return {*spec["publishes"], str(dead_letter)}


@pytest.fixture
def p(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    p = make_platform(tmp_path)
    use_container(p.c)
    yield p
    use_container(None)
    settings.cache_clear()


@pytest.fixture
def published(p: Platform, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    topics: list[str] = []
    original: Callable[..., str] = p.c.bus.publish

    def recording(topic: str, *args: Any, **kwargs: Any) -> str:
        topics.append(topic)
        return original(topic, *args, **kwargs)

    monkeypatch.setattr(p.c.bus, "publish", recording)
    return topics


def post(name: str, body: str) -> Any:
    return client(name).post("/", data=body, headers={"Content-Type": "application/json"})


def test_a_pushed_tick_claims_the_signal_and_a_pushed_signal_dispatches_it(
    p: Platform, published: list[str]
) -> None:
    p.write_sheet(bull_put_row())
    tick = post("signal_poller", push_body({"job": "signal-poll"}, "signal-poller", p.clock.now()))
    assert tick.status_code == 200, tick.data
    assert p.c.store.get(C.SIGNALS, SID) is not None
    assert set(published) <= allowed_topics("signal_poller")

    published.clear()
    signal = post("dispatcher", push_body({"signal_id": SID}, "dispatcher", p.clock.now()))
    assert signal.status_code == 200, signal.data
    assert len(p.drain("agent-orders")) == len(ACTIVE)
    assert "orders" in published and set(published) <= allowed_topics("dispatcher")


def test_a_malformed_push_is_acked_kept_and_dead_lettered_on_the_functions_own_topic(
    p: Platform, published: list[str]
) -> None:
    resp = post("dispatcher", push_body(None, "dispatcher", p.clock.now(), raw="!!not base64!!"))
    assert resp.status_code == 200  # acked: retrying cannot help
    assert p.c.store.query(C.DEAD_LETTERS)
    assert "dispatcher-dead-letter" in published and "alerts" in published
    assert set(published) <= allowed_topics("dispatcher")
