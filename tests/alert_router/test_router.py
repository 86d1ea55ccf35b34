"""Routing, dedup, retries, FAILED, flood limits, incidents and outbox files: the
real python-telegram-bot and sendgrid clients against local fakes, on a
simulated clock (the fakes record simulated time; nothing here waits for real)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from spreadpilot.domain.alerts import AlertType, Severity
from spreadpilot.platform import collections as C
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter
from spreadpilot.services.alert_router import (
    FAILED,
    PENDING,
    SENT,
    Rule,
    _earliest,
    _fits,
    build_router,
    parse_event,
)
from tests.alert_router.conftest import CHAT, GROUP, OPERATOR_EMAIL, RouterFactory, Secrets, alert
from tests.fakes.sendgrid_server import FakeSendGridServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.support.embedded import Platform, make_platform


def deliveries(p: Platform, status: str | None = None) -> list[dict[str, object]]:
    filters = [Filter("status", "==", status)] if status else []
    return [s.data for s in p.c.store.query(C.ALERT_DELIVERIES, filters)]


def test_critical_goes_to_telegram_and_email_with_a_follower_link(
    p: Platform,
    make_router: RouterFactory,
    telegram: FakeTelegramServer,
    sendgrid: FakeSendGridServer,
) -> None:
    result = make_router().route(alert(p))
    assert sorted(result.deliveries.values()) == [SENT, SENT]
    (msg,) = telegram.accepted()
    assert msg.chat_id == CHAT
    assert msg.text.startswith("🔴 CRITICAL ORDER_REJECTED\nIB rejected SP-20261124-QQQ-alice")
    assert "Follower alice: https://status.example.com/followers/alice" in msg.text
    assert telegram.calls == ["getMe", "sendMessage"]  # the real Bot initialises first
    (mail,) = sendgrid.accepted()
    assert mail.to == [OPERATOR_EMAIL]
    assert mail.subject.startswith("[SpreadPilot CRITICAL] ORDER_REJECTED alice: IB rejected")
    assert "https://status.example.com/followers/alice" in mail.text
    assert mail.body["headers"]["X-SpreadPilot-Key"] in result.deliveries  # traceable
    docs = deliveries(p, SENT)
    assert {d["channel"] for d in docs} == {"telegram", "email"}
    assert all(d["attempts"] == 1 and d["sent_at"] == p.clock.now() for d in docs)


def test_warning_goes_to_telegram_only_and_info_is_only_logged(
    p: Platform,
    make_router: RouterFactory,
    telegram: FakeTelegramServer,
    sendgrid: FakeSendGridServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = make_router()
    router.route(alert(p, AlertType.PARTIAL_FILL, key="w", message="alice filled 1 of 2"))
    with caplog.at_level(logging.INFO, logger="spreadpilot.alert_router"):
        info = router.route(alert(p, AlertType.COMPONENT_RECOVERED, key="i", message="gw back"))
    assert [m.text.splitlines()[0] for m in telegram.accepted()] == ["🟠 WARNING PARTIAL_FILL"]
    assert sendgrid.requests == []
    assert info.deliveries == {} and not info.suppressed
    assert any("INFO COMPONENT_RECOVERED: gw back" in r.getMessage() for r in caplog.records)


def test_a_duplicate_within_the_cooldown_is_suppressed_and_sent_again_after(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    router = make_router(routes={Severity.CRITICAL: ("telegram",)})
    first = router.route(alert(p), message_key="m1")
    p.clock.advance(timedelta(minutes=5))
    again = router.route(alert(p), message_key="m2")  # re-raised: same dedup key
    redelivered = router.route(alert(p), message_key="m1")  # Pub/Sub redelivery
    assert first.occurrence == 1 and again.suppressed and redelivered.occurrence == 1
    assert len(telegram.accepted()) == 1
    p.clock.advance(timedelta(minutes=11))  # 16 min after the first: cooldown over
    later = router.route(alert(p), message_key="m3")
    assert later.occurrence == 2 and list(later.deliveries.values()) == [SENT]
    p.clock.advance(timedelta(minutes=30))
    assert router.route(alert(p), message_key="m1").occurrence == 1  # still no resend
    assert len(telegram.accepted()) == 2
    assert len(deliveries(p)) == 2
    (dedup,) = [s.data for s in p.c.store.query(C.ALERT_DEDUP)]
    assert dedup["suppressed"] == 1 and dedup["occurrence"] == 2


def test_telegram_retry_after_and_5xx_are_retried_and_nothing_is_lost(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    router = make_router(routes={Severity.CRITICAL: ("telegram",)})
    telegram.fail_next(429, retry_after=7)
    telegram.fail_next(500)
    telegram.fail_next(502)
    start = p.clock.now()
    result = router.route(alert(p))
    assert list(result.deliveries.values()) == [SENT]
    statuses = [m.status for m in telegram.messages]
    assert statuses == [429, 500, 502, 200]
    # RetryAfter honoured: nothing sent to the chat within 7 s of the 429
    assert telegram.messages[1].at >= start + timedelta(seconds=7)
    # then exponential backoff (2 s, 4 s) for the 5xx answers
    pairs = zip(telegram.messages, telegram.messages[1:], strict=False)
    gaps = [(b.at - a.at).total_seconds() for a, b in pairs]
    assert gaps == [pytest.approx(7), pytest.approx(4), pytest.approx(8)]
    (doc,) = deliveries(p)
    assert doc["status"] == SENT and doc["attempts"] == 4


def test_sendgrid_429_and_503_are_retried_honouring_retry_after(
    p: Platform, make_router: RouterFactory, sendgrid: FakeSendGridServer
) -> None:
    router = make_router(routes={Severity.CRITICAL: ("email",)})
    sendgrid.fail_next(429, retry_after=5)
    sendgrid.fail_next(503)
    router.route(alert(p))
    assert [r.status for r in sendgrid.requests] == [429, 503, 202]
    assert sendgrid.requests[1].at - sendgrid.requests[0].at >= timedelta(seconds=5)
    (doc,) = deliveries(p)
    assert doc["status"] == SENT and doc["attempts"] == 3


def test_after_the_last_attempt_the_delivery_is_failed_for_health(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    router = make_router(routes={Severity.CRITICAL: ("telegram",)}, max_wait=1.0)
    telegram.fail_next(500, times=100)
    result = router.route(alert(p))
    assert result.pending  # first failure: kept PENDING for the retry pass
    for _ in range(10):
        p.clock.advance(timedelta(minutes=2))
        router.retry_due()
    (doc,) = deliveries(p)
    assert doc["status"] == FAILED and doc["attempts"] == 4
    assert "telegram unavailable" in str(doc["last_error"])
    assert len(telegram.messages) == 4  # exactly max_attempts sends, then no more
    # the health check's contract: count alert_deliveries with status == "FAILED"
    assert len(p.c.store.query(C.ALERT_DELIVERIES, [Filter("status", "==", "FAILED")])) == 1


def test_a_refused_chat_fails_at_once(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    telegram.unknown_chats.add(CHAT)
    make_router(routes={Severity.CRITICAL: ("telegram",)}).route(alert(p))
    (doc,) = deliveries(p)
    assert doc["status"] == FAILED and "chat not found" in str(doc["last_error"]).lower()


def test_a_missing_secret_names_it_and_the_alert_is_kept_then_sent(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer, secrets: Secrets
) -> None:
    secrets.token = None
    router = make_router(routes={Severity.CRITICAL: ("telegram",)}, max_wait=1.0)
    result = router.route(alert(p))
    assert result.pending
    (doc,) = deliveries(p)
    assert doc["status"] == PENDING
    assert "telegram-bot-token" in str(doc["last_error"])
    assert "SPREADPILOT_SECRET_TELEGRAM_BOT_TOKEN" in str(doc["last_error"])
    secrets.token = "123456:TEST-token"
    p.clock.advance(timedelta(minutes=1))
    assert list(router.retry_due().values()) == [SENT]
    assert len(telegram.accepted()) == 1


def test_a_crash_after_the_claim_is_never_resent_to_telegram(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    """At most once after the claim: the Bot API has no idempotency key."""
    router = make_router(routes={Severity.CRITICAL: ("telegram",)})
    telegram.fail_next(429, retry_after=60)  # leaves it PENDING for later
    (did,) = router.route(alert(p)).deliveries
    p.clock.advance(timedelta(minutes=2))
    assert router._claim(did, p.clock.now()) is not None  # a sender claims it, then dies
    p.clock.advance(timedelta(minutes=2))  # its lease expires with no outcome
    assert router.retry_due() == {did: FAILED}
    (doc,) = deliveries(p)
    assert "outcome unknown" in str(doc["last_error"])
    assert telegram.accepted() == []


def test_flood_limits_hold_per_chat_and_per_group(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    """45 alerts at once to a private chat and a group: every one delivered, no
    429 provoked, at most 1 msg/s per chat and 20/min in the group (counted on
    the fake's recorded times, simulated clock)."""
    router = make_router(
        routes={Severity.CRITICAL: ("telegram",)}, chat_ids=(CHAT, GROUP), max_wait=5.0
    )
    for i in range(45):
        router.route(alert(p, key=f"burst-{i}"))
    for _ in range(200):
        if not deliveries(p, PENDING):
            break
        p.clock.advance(timedelta(seconds=1))
        router.retry_due()
    assert deliveries(p, PENDING) == []
    assert telegram.refused(429) == []
    for chat, rules in ((CHAT, [(1, 1.0)]), (GROUP, [(1, 1.0), (20, 60.0)])):
        times = [m.at.timestamp() for m in telegram.accepted(chat)]
        assert len(times) == 45
        for count, period in rules:
            for i, t in enumerate(times):
                assert sum(1 for x in times[i:] if x < t + period) <= count, (chat, count)
    group = [m.at for m in telegram.accepted(GROUP)]
    span = (group[-1] - group[0]).total_seconds()
    assert span < 3 * 60 * 1.1  # 45 msgs at 20/min: ~2 min 15 s, not much slower


def test_the_limiter_never_overfills_a_window() -> None:
    import random

    rng = random.Random(7)
    rules = [Rule(1, 1.0), Rule(5, 10.0)]
    entries: list[float] = []
    for _ in range(300):
        now = rng.uniform(0, 200)
        t = _earliest(now, [(entries, rules)])
        assert t >= now and all(_fits(entries, r, t) for r in rules)
        entries = sorted([*entries, t])
    for r in rules:
        for i, t in enumerate(entries):
            assert sum(1 for x in entries[i:] if x < t + r.period) <= r.count


INCIDENT = {
    "version": "1.2",
    "incident": {
        "incident_id": "0.abc123",
        "scoping_project_id": "spreadpilot-prod",
        "url": "https://console.cloud.google.com/monitoring/alerting/incidents/0.abc123",
        "started_at": 1795530000,
        "ended_at": None,
        "state": "open",
        "summary": "Health check on dispatcher failing for more than 2 minutes.",
        "policy_name": "Service down: dispatcher",
        "condition_name": "uptime check failing",
    },
}


def test_a_cloud_monitoring_incident_is_routed_like_an_alert(
    p: Platform, make_router: RouterFactory, telegram: FakeTelegramServer
) -> None:
    router = make_router(routes={Severity.CRITICAL: ("telegram",), Severity.WARNING: ("telegram",)})
    opened = parse_event(INCIDENT, p.clock.now())
    assert opened.type is AlertType.COMPONENT_DOWN and opened.severity is Severity.CRITICAL
    router.route(opened)
    closed_payload = {
        "version": "1.2",
        "incident": {**INCIDENT["incident"], "state": "closed", "ended_at": 1795530600},  # type: ignore[dict-item]
    }
    closed = parse_event(closed_payload, p.clock.now())
    assert closed.type is AlertType.COMPONENT_RECOVERED and closed.severity is Severity.WARNING
    router.route(closed)
    down, up = telegram.accepted()
    assert down.text.startswith("🔴 CRITICAL COMPONENT_DOWN\nService down: dispatcher is firing")
    assert f"Incident: {INCIDENT['incident']['url']}" in down.text  # type: ignore[index]
    assert up.text.startswith("🟠 WARNING COMPONENT_RECOVERED\nService down: dispatcher recovered")
    router.route(opened)  # the same notification again: deduplicated
    assert len(telegram.accepted()) == 2


def test_embedded_mode_writes_one_outbox_file_per_delivery(p: Platform) -> None:
    c = Container(p.settings, clock=p.clock)
    router = build_router(c)
    a = alert(p)
    result = router.route(a)
    assert sorted(result.deliveries.values()) == [SENT, SENT]
    (tg,) = (p.settings.outbox_dir / "telegram").glob("*.json")
    (em,) = (p.settings.outbox_dir / "email").glob("*.eml")
    body = json.loads(tg.read_text())
    assert body["chat_id"] == "operator" and "ORDER_REJECTED" in body["text"]
    assert "Subject: [SpreadPilot CRITICAL] ORDER_REJECTED alice" in em.read_text()
    assert tg.stem in result.deliveries and em.stem in result.deliveries
    # a resend after a crash (outbox files are idempotent): the same file, not a second
    did = tg.stem
    p.c.store.update(C.ALERT_DELIVERIES, did, {"status": PENDING})
    assert router._claim(did, p.clock.now()) is not None
    p.clock.advance(timedelta(minutes=5))
    assert router.retry_due() == {did: SENT}
    assert len(list((p.settings.outbox_dir / "telegram").glob("*.json"))) == 1


def test_routes_come_from_settings(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    p = make_platform(
        tmp_path,
        alert_routes={"CRITICAL": ["email"], "WARNING": [], "INFO": ["log"]},
        alert_email_to=["a@example.com", "b@example.com"],
    )
    router = build_router(Container(p.settings, clock=p.clock))
    result = router.route(alert(p))
    assert len(result.deliveries) == 2  # one per recipient, no telegram
    assert not list((p.settings.outbox_dir / "telegram").glob("*"))
