"""The audit log on the real embedded store: newest first, filters, secrets
dropped, retention through expire_at and the store's purge."""

import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.ports.store import EXPIRE_AT
from spreadpilot.services.audit_log import AuditEntry, AuditLog, is_secret_key
from tests.support.embedded import Platform, make_platform


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return make_platform(tmp_path)


@pytest.fixture
def audit(platform: Platform) -> AuditLog:
    return AuditLog(platform.c.store, platform.clock)


def _fill(platform: Platform, audit: AuditLog) -> list[AuditEntry]:
    rows = [
        ("operator", "login", "session", "ok"),
        ("operator", "emergency_close", "followers/alice", "ok"),
        ("mallory", "login", "session", "refused"),
        ("operator", "pin_check", "emergency_close", "refused"),
        ("operator", "disable_all", "followers", "failed"),
    ]
    entries = []
    for actor, action, resource, outcome in rows:
        entries.append(audit.record(actor=actor, action=action, resource=resource, outcome=outcome))
        platform.clock.advance(timedelta(minutes=1))
    return entries


def test_recent_is_newest_first(platform: Platform, audit: AuditLog) -> None:
    written = _fill(platform, audit)
    assert [e.id for e in audit.recent()] == [e.id for e in reversed(written)]
    assert [e.id for e in audit.recent(limit=2)] == [written[4].id, written[3].id]


def test_entry_round_trips_through_the_store(platform: Platform, audit: AuditLog) -> None:
    entry = audit.record(
        actor="operator",
        action="resend_signal",
        resource="signals/2026-11-24-QQQ",
        details={"followers": ["alice", "bruno"], "amount": Decimal("1.25")},
        ip="203.0.113.7",
        request_id="req-1",
    )
    assert audit.recent() == [entry]
    assert entry.at == platform.clock.now()
    assert entry.details == {"followers": ["alice", "bruno"], "amount": "1.25"}
    assert entry.to_json() == {
        "id": entry.id,
        "at": platform.clock.now().isoformat(),
        "actor": "operator",
        "action": "resend_signal",
        "resource": "signals/2026-11-24-QQQ",
        "outcome": "ok",
        "details": {"followers": ["alice", "bruno"], "amount": "1.25"},
        "ip": "203.0.113.7",
        "request_id": "req-1",
    }


def test_filters(platform: Platform, audit: AuditLog) -> None:
    written = _fill(platform, audit)
    assert [e.id for e in audit.recent(actor="mallory")] == [written[2].id]
    assert [e.id for e in audit.recent(action="login")] == [written[2].id, written[0].id]
    assert [e.id for e in audit.recent(actor="operator", action="login")] == [written[0].id]
    assert [e.id for e in audit.recent(since=written[3].at)] == [written[4].id, written[3].id]
    assert [e.id for e in audit.recent(actor="operator", since=written[1].at, limit=2)] == [
        written[4].id,
        written[3].id,
    ]
    assert audit.recent(actor="nobody") == []


def test_ids_sort_in_time_order_and_never_collide(audit: AuditLog) -> None:
    same_instant = [audit.record(actor="a", action="x", resource="r") for _ in range(20)]
    assert len({e.id for e in same_instant}) == 20
    assert same_instant[0].id.split("-")[0] == same_instant[0].at.strftime("%Y%m%dT%H%M%S%fZ")


def test_ids_sort_like_the_time(platform: Platform, audit: AuditLog) -> None:
    written = _fill(platform, audit)
    assert sorted(e.id for e in written) == [e.id for e in written]


def test_secret_named_detail_keys_are_dropped(platform: Platform, audit: AuditLog) -> None:
    entry = audit.record(
        actor="operator",
        action="delete_follower",
        resource="followers/carla",
        details={
            "PIN": "482916",
            "password": "hunter2hunter2",
            "Token": "abc",
            "client_secret": "s",
            "new_pin": "730519",
            "apiToken": "t",
            "follower": "carla",
            "nested": {"pin_hash": "scrypt$...", "reason": "left", "items": [{"secret": 1}]},
            "spinner": "kept",
        },
    )
    expected = {
        "follower": "carla",
        "nested": {"reason": "left", "items": [{}]},
        "spinner": "kept",
    }
    assert entry.details == expected
    stored = platform.c.store.get(C.AUDIT, entry.id)
    assert stored is not None and stored["details"] == expected
    assert "482916" not in repr(stored) and "hunter2" not in repr(stored)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("pin", True),
        ("Password", True),
        ("TOKEN", True),
        ("admin_secret", True),
        ("pinCode", True),
        ("PINCode", True),
        ("accessTokens", True),
        ("spinner", False),
        ("opinion", False),
        ("follower_id", False),
        ("token_count", True),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_expire_at_is_at_plus_retention_and_purge_removes_it(
    platform: Platform, audit: AuditLog
) -> None:
    entry = audit.record(actor="operator", action="login", resource="session")
    stored = platform.c.store.get(C.AUDIT, entry.id)
    assert stored is not None and stored[EXPIRE_AT] == entry.at + timedelta(days=90)
    store = platform.c.store
    assert store.purge_expired(C.EXPIRES, entry.at + timedelta(days=89)) == 0
    assert store.get(C.AUDIT, entry.id) is not None
    assert store.purge_expired(C.EXPIRES, entry.at + timedelta(days=90, seconds=1)) == 1
    assert store.get(C.AUDIT, entry.id) is None
    assert audit.recent() == []


def test_retention_is_configurable(platform: Platform) -> None:
    audit = AuditLog(platform.c.store, platform.clock, retention=timedelta(days=7))
    entry = audit.record(actor="operator", action="login", resource="session")
    stored = platform.c.store.get(C.AUDIT, entry.id)
    assert stored is not None and stored[EXPIRE_AT] == entry.at + timedelta(days=7)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": "maybe"},
        {"outcome": "OK"},
        {"actor": ""},
        {"action": "  "},
        {"resource": ""},
    ],
)
def test_bad_records_are_refused(audit: AuditLog, kwargs: dict[str, str]) -> None:
    base = {"actor": "operator", "action": "login", "resource": "session"}
    with pytest.raises(ValueError):
        audit.record(**{**base, **kwargs})  # type: ignore[arg-type]


def test_each_record_is_one_structured_log_line(
    audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="spreadpilot.audit"):
        entry = audit.record(
            actor="operator",
            action="manual_signal",
            resource="signals",
            outcome="refused",
            details={"pin": "482916", "why": "PIN locked"},
            request_id="req-9",
        )
    (record,) = caplog.records
    assert record.event == "audit"  # type: ignore[attr-defined]
    assert record.audit_id == entry.id  # type: ignore[attr-defined]
    assert record.outcome == "refused"  # type: ignore[attr-defined]
    assert record.details == {"why": "PIN locked"}  # type: ignore[attr-defined]
    assert "482916" not in repr(vars(record))
