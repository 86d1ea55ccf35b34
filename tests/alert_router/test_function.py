"""functions/alert_router/main.py in-process through the Functions Framework with
real CloudEvent envelopes: embedded outbox, live Telegram/SendGrid against the
local fakes, redeliveries, Cloud Monitoring incidents, pending deliveries kept
for Pub/Sub's retry, and a malformed event dead-lettered without a loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from spreadpilot.local.functions import load_function
from spreadpilot.local.runner import LocalRunner
from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from tests.alert_router.conftest import alert
from tests.alert_router.test_router import INCIDENT
from tests.fakes.sendgrid_server import API_KEY, FakeSendGridServer
from tests.fakes.telegram_server import TOKEN, FakeTelegramServer
from tests.support.cloudevents import binary, pubsub_body, structured
from tests.support.embedded import REPO, Platform, make_platform


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    yield tmp_path
    use_container(None)
    settings.cache_clear()


def client() -> FlaskClient:
    app = functions_framework.create_app(
        target="alert_router",
        source=str(REPO / "functions" / "alert_router" / "main.py"),
        signature_type="cloudevent",
    )
    return app.test_client()


def post(payload: Any, event_id: str = "m-1", mode: Any = binary) -> int:
    body = pubsub_body(payload, message_id=event_id)
    return client().post("/", **mode(body, event_id=event_id, topic="alerts")).status_code


def test_embedded_an_alert_becomes_outbox_files_once(env: Path) -> None:
    p = make_platform(env)
    use_container(p.c)
    payload = alert(p).model_dump(mode="json")
    assert post(payload, "m-1") == 200
    assert post(payload, "m-1", structured) == 200  # redelivered: nothing new
    assert post(payload, "m-2") == 200  # re-published within the cooldown: suppressed
    assert len(list((env / "outbox" / "telegram").glob("*.json"))) == 1
    assert len(list((env / "outbox" / "email").glob("*.eml"))) == 1
    docs = [s.data for s in p.c.store.query(C.ALERT_DELIVERIES)]
    assert sorted(d["status"] for d in docs) == ["SENT", "SENT"]


@pytest.fixture
def live(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Platform, FakeTelegramServer, FakeSendGridServer]]:
    monkeypatch.setenv("SPREADPILOT_SECRET_TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SPREADPILOT_SECRET_SENDGRID_API_KEY", API_KEY)
    p0 = make_platform(env)
    tg, sg = FakeTelegramServer(p0.clock.now), FakeSendGridServer(p0.clock.now)
    tg.start()
    sg.start()
    p = make_platform(
        env,
        alert_delivery="live",
        alert_telegram_base_url=tg.base_url,
        alert_sendgrid_host=sg.api_host,
        alert_telegram_chat_ids=["100"],
        alert_email_to=["ops@example.com"],
        alert_max_wait_seconds=1.0,
        status_base_url="https://status.example.com",
    )
    p.clock = p0.clock
    p.c.clock = p0.clock
    use_container(p.c)
    yield p, tg, sg
    tg.stop()
    sg.stop()


def test_live_an_alert_reaches_telegram_and_sendgrid(
    live: tuple[Platform, FakeTelegramServer, FakeSendGridServer],
) -> None:
    p, tg, sg = live
    assert post(alert(p).model_dump(mode="json")) == 200
    assert len(tg.accepted()) == 1 and len(sg.accepted()) == 1
    assert "https://status.example.com/followers/alice" in tg.accepted()[0].text


def test_live_a_cloud_monitoring_incident_is_routed(
    live: tuple[Platform, FakeTelegramServer, FakeSendGridServer],
) -> None:
    _, tg, sg = live
    assert post(INCIDENT, "inc-1") == 200
    (msg,) = tg.accepted()
    assert "COMPONENT_DOWN" in msg.text and "incidents/0.abc123" in msg.text
    assert "Service down: dispatcher" in sg.accepted()[0].subject


def test_live_a_pending_delivery_is_retried_through_redelivery(
    live: tuple[Platform, FakeTelegramServer, FakeSendGridServer],
) -> None:
    """The send fails (5xx): the delivery is kept, the function fails so Pub/Sub
    redelivers; the redelivery's retry pass sends it, exactly once."""
    p, tg, sg = live
    tg.fail_next(503)
    payload = alert(p).model_dump(mode="json")
    assert post(payload, "m-9") == 500  # DeliveryPending: Pub/Sub will retry
    assert len(sg.accepted()) == 1 and tg.accepted() == []
    p.clock.advance(timedelta(minutes=1))
    assert post(payload, "m-9") == 200
    assert post(payload, "m-9") == 200
    assert len(tg.accepted()) == 1 and len(sg.accepted()) == 1


def test_a_malformed_event_is_dead_lettered_and_alerted_once_without_a_loop(env: Path) -> None:
    """Garbage on the alerts topic: dead-lettered, MESSAGE_DEAD_LETTERED published on
    `alerts`; the runner delivers that alert to the router, which sends it; nothing
    more is published (no loop)."""
    p = make_platform(env)
    use_container(p.c)
    runner = LocalRunner(
        p.c.bus, p.c.topology, {"alert_router": load_function("alert_router")}, p.clock
    )
    assert runner.subscriptions == ["alert-router"]
    p.c.bus.publish("alerts", json.dumps({"type": "NOPE", "colour": "red"}).encode())
    handled = runner.run_until_idle(wait_for_retries=True)
    assert handled == 2  # the garbage, then the MESSAGE_DEAD_LETTERED alert about it
    (dead,) = p.c.store.query(C.DEAD_LETTERS)
    assert dead.data["function"] == "alert_router" and "type" in dead.data["reason"]
    files = list((env / "outbox" / "telegram").glob("*.json"))
    assert len(files) == 1
    assert "MESSAGE_DEAD_LETTERED" in json.loads(files[0].read_text())["text"]
    assert runner.run_until_idle(wait_for_retries=True) == 0
