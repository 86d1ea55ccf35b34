"""Followers through the API: the canonical model's rules, uniqueness, guards, audit rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.services.health import AGENT
from tests.support.console import DEMO_PIN, WRONG_PIN, make_console

NEW: dict[str, Any] = {
    "id": "fabio",
    "name": "Fabio Gallo",
    "email": "fabio@example.com",
    "iban": "GB82WEST12345698765432",
    "ib_account": "U1000099",
    "gateway_id": "gw-main",
    "commission_rate": "0.15",
}


@pytest.fixture
def console(tmp_path: Path):
    return make_console(tmp_path)


def audit_rows(console, action: str) -> list[dict[str, Any]]:
    return [s.data for s in console.c.store.query(C.AUDIT) if s.data["action"] == action]


def test_list_masks_ibans_and_pages_by_id(console) -> None:
    r = console.get("/followers?limit=2")
    assert r.status_code == 200
    page = r.json
    assert [f["id"] for f in page["followers"]] == ["alice", "bruno"]
    assert page["followers"][0]["iban"].startswith("IT60 ****")
    assert page["next"] == "bruno"
    rest = console.get("/followers?limit=10&after=bruno").json
    assert [f["id"] for f in rest["followers"]] == ["carla", "dario", "elena"]
    assert rest["next"] is None
    disabled = console.get("/followers?enabled=false").json["followers"]
    assert [f["id"] for f in disabled] == ["carla"]


def test_an_invalid_stored_record_is_listed_with_its_problem(console) -> None:
    console.c.store.update(C.FOLLOWERS, "dario", {"iban": "IT00X0000000000000000000000"})
    rows = {f["id"]: f for f in console.get("/followers").json["followers"]}
    assert rows["dario"]["invalid"] is True and "iban" in rows["dario"]["problem"]


def test_create_get_and_audit(console) -> None:
    r = console.call("POST", "/followers", json=NEW)
    assert r.status_code == 201, r.json
    assert r.json["trades"] is True and r.json["iban"] == "GB82WEST12345698765432"
    assert console.get("/followers/fabio").json["email"] == "fabio@example.com"
    [row] = audit_rows(console, "follower.create")
    assert row["outcome"] == "ok" and row["actor"] == "operator"
    assert row["resource"] == "/followers" and row["details"]["id"] == "fabio"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("email", "fabio.example.com", "not a valid email address"),
        ("iban", "GB82WEST12345698765431", "not a valid IBAN"),
        ("commission_rate", "0.75", "less than or equal to 0.5"),
        ("commission_rate", "-0.1", "greater than or equal to 0"),
        ("ib_account", "12345", "should match pattern"),
        ("id", "Fabio Gallo", "must be 1-32 characters"),
        ("sizing_multiplier", "0", "greater than 0"),
        ("state", "SLEEPING", "ONBOARDING"),
    ],
)
def test_each_validation_error_names_its_field(console, field: str, value: str, says: str) -> None:
    r = console.call("POST", "/followers", json={**NEW, field: value})
    assert r.status_code == 422
    [err] = r.json["error"]["fields"]
    assert err["field"] == field and says in err["rule"]
    assert err["message"].startswith(f"{field}: ")
    assert console.c.store.get(C.FOLLOWERS, "fabio") is None
    [row] = audit_rows(console, "follower.create")
    assert row["outcome"] == "refused" and field in row["details"]["error"]


def test_missing_and_unknown_fields_are_named(console) -> None:
    body = {k: v for k, v in NEW.items() if k != "email"} | {"colour": "blue"}
    fields = {
        e["field"] for e in console.call("POST", "/followers", json=body).json["error"]["fields"]
    }
    assert fields == {"email", "colour"}


def test_email_and_ib_account_are_unique_and_ids_conflict(console) -> None:
    r = console.call("POST", "/followers", json={**NEW, "email": "ALICE@example.com"})
    assert r.status_code == 422
    assert r.json["error"]["fields"][0]["field"] == "email"
    assert "already used by alice" in r.json["error"]["message"]
    r = console.call("POST", "/followers", json={**NEW, "ib_account": "U1000002"})
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "ib_account"
    r = console.call("POST", "/followers", json={**NEW, "id": "alice", "email": "x@example.com"})
    assert r.status_code == 409 and "PATCH or PUT" in r.json["error"]["message"]


def test_patch_merges_and_revalidates_the_whole_record(console) -> None:
    r = console.call(
        "PATCH", "/followers/alice", json={"commission_rate": "0.3", "name": "Alice R."}
    )
    assert r.status_code == 200 and r.json["commission_rate"] == "0.3"
    assert console.c.store.get(C.FOLLOWERS, "alice")["name"] == "Alice R."
    r = console.call("PATCH", "/followers/alice", json={"commission_rate": "0.9"})
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "commission_rate"
    assert console.c.store.get(C.FOLLOWERS, "alice")["commission_rate"] == "0.3"
    [ok] = [d for d in audit_rows(console, "follower.update") if d["outcome"] == "ok"]
    assert ok["details"]["before"] == {"commission_rate": "0.20", "name": "Alice Rossi"}
    assert console.call("PATCH", "/followers/nobody", json={"name": "x"}).status_code == 404


def test_put_replaces_and_refuses_an_id_change(console) -> None:
    alice = console.get("/followers/alice").json
    body = {k: v for k, v in alice.items() if k != "trades"} | {"max_contracts": 2}
    r = console.call("PUT", "/followers/alice", json=body)
    assert r.status_code == 200 and r.json["max_contracts"] == 2
    r = console.call("PUT", "/followers/alice", json={**body, "id": "alicia"})
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "id"
    assert console.call("PUT", "/followers/zoe", json={**NEW, "id": "zoe"}).status_code == 404


def test_enable_disable_and_disable_all_needs_the_pin(console) -> None:
    assert console.call("POST", "/followers/alice/disable").json["enabled"] is False
    assert console.c.store.get(C.FOLLOWERS, "alice")["enabled"] is False
    assert console.call("POST", "/followers/alice/enable").json["enabled"] is True
    body = {"reason": "broker outage"}
    r = console.call("POST", "/followers/disable-all", json=body)
    assert r.status_code == 403 and "no PIN given" in r.json["error"]["message"]
    r = console.call("POST", "/followers/disable-all", json=body, pin=WRONG_PIN)
    assert r.status_code == 403 and "wrong PIN" in r.json["error"]["message"]
    assert all(
        s.data.get("enabled", True) for s in console.c.store.query(C.FOLLOWERS) if s.id != "carla"
    )
    r = console.call("POST", "/followers/disable-all", json=body, pin=DEMO_PIN)
    assert r.status_code == 200
    assert r.json["disabled"] == ["alice", "bruno", "dario", "elena"]
    assert not any(s.data["enabled"] for s in console.c.store.query(C.FOLLOWERS))
    outcomes = [d["outcome"] for d in audit_rows(console, "follower.disable_all")]
    assert sorted(outcomes) == ["ok", "refused", "refused"]


def test_delete_needs_the_pin_and_a_disabled_follower(console) -> None:
    r = console.call("DELETE", "/followers/alice", pin=DEMO_PIN)
    assert r.status_code == 409 and "disable it first" in r.json["error"]["message"]
    assert console.call("DELETE", "/followers/carla").status_code == 403
    r = console.call("DELETE", "/followers/carla", pin=DEMO_PIN)
    assert r.status_code == 200
    assert console.c.store.get(C.FOLLOWERS, "carla") is None
    [row] = [d for d in audit_rows(console, "follower.delete") if d["outcome"] == "ok"]
    assert row["details"]["record"]["email"] == "carla@example.com"
    assert row["details"]["guard"] == "PIN verified"
    assert console.call("DELETE", "/followers/carla", pin=DEMO_PIN).status_code == 404


def test_onboarding_sets_gateway_and_account_and_activates(console) -> None:
    console.call("POST", "/followers", json={**NEW, "state": "ONBOARDING"})
    assert console.get("/followers/fabio").json["trades"] is False
    console.c.store.set(C.HEARTBEATS, AGENT, {"gateways": {"gw-main": {}, "gw-eu": {}}})
    r = console.call(
        "POST",
        "/followers/fabio/onboarding",
        json={"gateway_id": "gw-us", "ib_account": "U3000077"},
    )
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "gateway_id"
    assert "gw-eu, gw-main" in r.json["error"]["message"]
    r = console.call(
        "POST",
        "/followers/fabio/onboarding",
        json={"gateway_id": "gw-eu", "ib_account": "U1000001"},
    )
    assert r.status_code == 422 and "already used by alice" in r.json["error"]["message"]
    r = console.call(
        "POST",
        "/followers/fabio/onboarding",
        json={"gateway_id": "gw-eu", "ib_account": "U3000077"},
    )
    assert r.status_code == 200
    assert r.json["state"] == "ACTIVE" and r.json["gateway_id"] == "gw-eu" and r.json["trades"]
