"""Alerts and their acknowledgement, component health, the system view and the audit log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.platform import collections as C
from spreadpilot.services.alerts import acknowledge
from spreadpilot.services.health import AGENT, HealthPing
from tests.support.console import Console, make_console


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path)


def audit(console: Console, action: str) -> list[dict[str, Any]]:
    return [s.data for s in console.c.store.query(C.AUDIT) if s.data["action"] == action]


def raise_alerts(console: Console) -> dict[str, str]:
    """A missed signal from the poller itself (CRITICAL), then a warning and an info
    from the publisher every producer uses; returns type -> alert id."""
    console.platform.write_sheet()
    console.at("09:42")
    assert console.c.signal_poller().run().status.value == "MISSING"
    c = console.c
    for n, (kind, text) in enumerate(
        [(AlertType.NO_MARGIN, "bruno: not enough margin"), (AlertType.COMPONENT_RECOVERED, "ok")]
    ):
        c.clock.advance(timedelta(seconds=10 * (n + 1)))
        c.alerts.raise_alert(
            Alert.new(kind, text, at=c.clock.now(), dedup_key=f"k{n}", source="test")
        )
    return {s.data["type"]: s.id for s in c.store.query(C.ALERTS)}


# --- alerts ------------------------------------------------------------------------------


def test_open_alerts_newest_first_with_filters(console) -> None:
    ids = raise_alerts(console)
    body = console.get("/alerts").json
    assert [a["type"] for a in body["alerts"]] == [
        "COMPONENT_RECOVERED",
        "NO_MARGIN",
        "SIGNAL_MISSING",
    ]
    missing = body["alerts"][2]
    assert missing["id"] == ids["SIGNAL_MISSING"] and missing["severity"] == "CRITICAL"
    assert missing["source"] == "signal_poller" and missing["open"] is True
    assert "manual signal" in missing["message"] and missing["published"] is True
    assert body["matching"] == 3 and body["open"] == 3 and body["scan_limit_reached"] is False
    critical = console.get("/alerts?severity=CRITICAL").json["alerts"]
    assert [a["type"] for a in critical] == ["SIGNAL_MISSING"]
    limited = console.get("/alerts?limit=1").json
    assert len(limited["alerts"]) == 1 and limited["matching"] == 3


def test_acknowledge_closes_an_alert_once_and_is_audited(console) -> None:
    ids = raise_alerts(console)
    aid = ids["SIGNAL_MISSING"]
    r = console.call("POST", f"/alerts/{aid}/acknowledge", json={"note": "sent it by hand"})
    assert r.status_code == 200, r.json
    assert r.json["new"] is True and r.json["open"] is False
    assert r.json["acknowledged_by"] == "operator" and r.json["ack_note"] == "sent it by hand"
    first_at = r.json["acknowledged_at"]
    open_now = [a["id"] for a in console.get("/alerts").json["alerts"]]
    assert aid not in open_now and len(open_now) == 2
    every = {a["id"]: a for a in console.get("/alerts?open=false").json["alerts"]}
    assert every[aid]["open"] is False and every[aid]["acknowledged_at"] == first_at
    console.c.clock.advance(timedelta(minutes=1))
    again = console.call("POST", f"/alerts/{aid}/acknowledge", json={"note": "second"})
    assert again.status_code == 200 and again.json["new"] is False
    assert again.json["acknowledged_at"] == first_at and again.json["ack_note"] == "sent it by hand"
    rows = sorted(audit(console, "alert.acknowledge"), key=lambda d: d["at"])
    assert [(d["outcome"], d["details"]["new"]) for d in rows] == [("ok", True), ("ok", False)]
    assert rows[0]["resource"] == f"/alerts/{aid}/acknowledge"
    assert rows[0]["details"]["note"] == "sent it by hand" and rows[0]["actor"] == "operator"


def test_the_service_and_the_api_share_one_acknowledgement(console) -> None:
    ids = raise_alerts(console)
    aid = ids["NO_MARGIN"]
    acked = acknowledge(console.c.store, console.c.clock, aid, by="cli-operator", note="seen")
    assert acked.new
    r = console.call("POST", f"/alerts/{aid}/acknowledge", json={})
    assert r.json["new"] is False and r.json["acknowledged_by"] == "cli-operator"


def test_acknowledging_an_unknown_alert_is_a_404_and_audited_refused(console) -> None:
    r = console.call("POST", "/alerts/nope/acknowledge", json={})
    assert r.status_code == 404 and "open=false" in r.json["error"]["message"]
    [row] = audit(console, "alert.acknowledge")
    assert row["outcome"] == "refused"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"note": "x" * 501}, "note"), ({"note": 5}, "note"), ({"reason": "seen"}, "reason")],
)
def test_acknowledge_validation_names_the_field(console, body: Any, field: str) -> None:
    aid = raise_alerts(console)["NO_MARGIN"]
    r = console.call("POST", f"/alerts/{aid}/acknowledge", json=body)
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == field
    assert console.get("/alerts").json["open"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("severity=LOUD", "severity"),
        ("open=perhaps", "open"),
    ],
)
def test_alert_query_validation_names_the_field(console, query: str, field: str) -> None:
    r = console.get(f"/alerts?{query}")
    assert r.status_code == 422, r.json
    [err] = r.json["error"]["fields"]
    assert err["field"] == field and err["message"].startswith(f"{field}: ")


# --- components --------------------------------------------------------------------------


def heartbeat(console: Console, gateways: dict[str, str]) -> None:
    """The agent's heartbeat document, as gateway/health.py writes it every 15 s."""
    console.c.store.set(
        C.HEARTBEATS,
        AGENT,
        {
            "component": AGENT,
            "holder": "agent-1",
            "at": console.c.clock.now(),
            "gateways": {g: {"connection": "CONNECTED", "health": h} for g, h in gateways.items()},
            "versions": {"spreadpilot": "0.1.0"},
            "in_flight": 0,
            "processed": 12,
        },
    )


def test_components_before_anything_reported(console) -> None:
    body = console.get("/components").json
    assert body["status"] == "degraded"
    assert body["components"]["health-ping"]["detail"] == "health_ping has not run yet"
    assert "no heartbeat" in body["agent"]["heartbeat"]["detail"]


def test_components_from_health_ping_and_the_heartbeat(console) -> None:
    c = console.c
    heartbeat(console, {"gw-main": "UP", "gw-second": "UP"})
    HealthPing(c.store, c.bus, c.clock, c.alerts).run()
    body = console.get("/components").json
    assert body["status"] == "ok", body
    assert body["components"]["health-ping"]["status"] == "ok"
    assert body["components"]["health-ping"]["checks"]["store"]["status"] == "ok"
    assert body["components"][AGENT]["status"] == "ok"
    hb = body["agent"]["heartbeat"]
    assert hb["status"] == "ok" and hb["age_seconds"] == 0.0 and hb["holder"] == "agent-1"
    assert body["agent"]["gateways"]["gw-main"] == {
        "status": "ok",
        "connection": "CONNECTED",
        "health": "UP",
    }
    heartbeat(console, {"gw-main": "UP", "gw-second": "FAILING"})
    body = console.get("/components").json
    assert body["status"] == "degraded"
    assert body["agent"]["gateways"]["gw-second"]["status"] == "degraded"
    heartbeat(console, {"gw-main": "UP", "gw-second": "DOWN"})
    assert console.get("/components").json["status"] == "down"


def test_a_stale_heartbeat_and_a_stale_health_ping(console) -> None:
    c = console.c
    heartbeat(console, {"gw-main": "UP"})
    HealthPing(c.store, c.bus, c.clock, c.alerts).run()
    c.clock.advance(timedelta(minutes=5))
    console.login()
    body = console.get("/components").json
    assert body["status"] == "down"
    hb = body["agent"]["heartbeat"]
    assert hb["status"] == "down" and hb["age_seconds"] == 300.0
    assert "no heartbeat for 300.0 s" in hb["detail"]
    assert body["agent"]["gateways"]["gw-main"]["status"] == "degraded"  # not known now
    ping = body["components"]["health-ping"]
    assert ping["status"] == "degraded" and "last ran 300.0 s ago" in ping["detail"]


# --- system ------------------------------------------------------------------------------


def test_system_shows_the_dry_run_switch_and_delivery_modes(console) -> None:
    body = console.get("/system").json
    assert body["mode"] == "embedded" and body["project"] == "spreadpilot-local"
    assert body["dry_run"] is False and body["version"]
    assert body["alert_delivery"] == "outbox" and body["statement_delivery"] == "outbox"
    assert body["admin_token_ttl_minutes"] == 15 and body["admin_cors_origins"] == []
    jobs = {j["name"]: j for j in body["schedules"]}
    assert jobs["signal-poll"]["next_run"] == "2026-11-24T14:28:00+00:00"  # 09:28 New York
    assert jobs["signal-poll"]["records_runs"] is True
    assert jobs["daily-pnl-rollup"]["next_run"] == "2026-11-24T21:30:00+00:00"


def test_system_of_a_dry_run_deployment(tmp_path: Path) -> None:
    console = make_console(
        tmp_path,
        dry_run=True,
        alert_delivery="live",
        admin_cors_origins=["https://ops.example.com"],
        admin_token_ttl_minutes=30,
    )
    body = console.get("/system").json
    assert body["dry_run"] is True and body["alert_delivery"] == "live"
    assert body["statement_delivery"] == "outbox"
    assert body["admin_cors_origins"] == ["https://ops.example.com"]
    assert body["admin_token_ttl_minutes"] == 30


# --- audit -------------------------------------------------------------------------------


def test_audit_log_newest_first_with_filters(console) -> None:
    aid = raise_alerts(console)["NO_MARGIN"]
    console.c.clock.advance(timedelta(seconds=5))
    console.call("POST", f"/alerts/{aid}/acknowledge", json={"note": "topped up"})
    console.c.clock.advance(timedelta(seconds=5))
    console.call("POST", "/gateways/gw-main/reconnect")
    entries = console.get("/audit").json["entries"]
    actions = [e["action"] for e in entries]
    assert actions[:2] == ["gateway.reconnect", "alert.acknowledge"]
    assert "auth.login" in actions
    [ack] = console.get("/audit?action=alert.acknowledge").json["entries"]
    assert ack["actor"] == "operator" and ack["outcome"] == "ok"
    assert ack["details"]["note"] == "topped up" and ack["request_id"]
    assert ack["at"].endswith("+00:00")
    by_actor = console.get("/audit?actor=operator&limit=1").json["entries"]
    assert [e["action"] for e in by_actor] == ["gateway.reconnect"]
    assert console.get("/audit?actor=someone-else").json["entries"] == []


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=501", "limit"), ("action=", "action")]
)
def test_audit_query_validation_names_the_field(console, query: str, field: str) -> None:
    r = console.get(f"/audit?{query}")
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == field


# --- unknown parameters and auth ---------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/alerts?type=NO_MARGIN", "/audit?since=2026-11-01", "/components?x=1", "/system?v=1"]
)
def test_an_unknown_query_parameter_is_a_400(console, path: str) -> None:
    assert console.get(path).status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/alerts"),
        ("POST", "/alerts/x/acknowledge"),
        ("GET", "/components"),
        ("GET", "/system"),
        ("GET", "/audit"),
    ],
)
def test_every_operations_endpoint_needs_a_token(console, method: str, path: str) -> None:
    r = console.client.open("/api/v1" + path, method=method, json={})
    assert r.status_code == 401
