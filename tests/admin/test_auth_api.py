"""Login, tokens, the open /health, CORS, security headers, and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spreadpilot.admin.registry import API as ROUTES
from spreadpilot.admin.registry import PREFIX
from spreadpilot.platform import collections as C
from tests.support.console import API, make_console

ORIGIN = "https://console.example.com"


@pytest.fixture
def console(tmp_path: Path):
    return make_console(tmp_path, admin_cors_origins=[ORIGIN])


def test_health_is_open_and_says_ok(console) -> None:
    r = console.client.get(f"{API}/health")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["checks"]["store"]["status"] == "ok"


def test_login_gives_a_token_that_expires_after_the_ttl(console) -> None:
    r = console.login()
    assert r.status_code == 200
    assert r.json["token_type"] == "Bearer" and r.json["operator"] == "operator"
    assert console.get("/followers").status_code == 200
    console.platform.clock.advance(timedelta(minutes=16))
    r = console.get("/followers")
    assert r.status_code == 401
    assert "expired" in r.json["error"]["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("username", "password"), [("operator", "wrong-password"), ("root", "demo-operator-pass")]
)
def test_wrong_login_is_refused_and_audited(console, username: str, password: str) -> None:
    r = console.login(password=password, username=username)
    assert r.status_code == 401
    assert r.json["error"]["message"] == "wrong username or password"
    rows = [s.data for s in console.c.store.query(C.AUDIT)]
    failed = [d for d in rows if d["action"] == "auth.login" and d["outcome"] == "refused"]
    assert len(failed) == 1
    assert failed[0]["details"]["username"] == username
    assert "password" not in failed[0]["details"]
    assert failed[0]["ip"] == "127.0.0.1" and failed[0]["request_id"]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "log in first"),
        ("Basic abc", "must be 'Bearer <token>'"),
        ("Bearer not-a-token", "not valid"),
    ],
)
def test_every_endpoint_but_health_needs_a_token(console, header, says) -> None:
    headers = {"Authorization": header} if header else {}
    for route in ROUTES.routes:
        if route.public:
            continue
        path = PREFIX + route.path.replace("<", "").replace(">", "")
        r = console.client.open(path, method=route.method, headers=headers, json={})
        assert r.status_code == 401, (route.method, route.path, r.status_code)
        assert says in r.json["error"]["message"]


def test_a_tampered_token_is_refused(console) -> None:
    body, _, sig = console.token.rpartition(".")
    console.token = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert console.get("/followers").status_code == 401


def test_cors_answers_only_the_configured_origin_and_never_star(console) -> None:
    ok = console.client.get(f"{API}/health", headers={"Origin": ORIGIN})
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in ok.headers["Vary"]
    other = console.client.get(f"{API}/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = console.client.options(
        f"{API}/followers",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert "X-SpreadPilot-PIN" in pre.headers["Access-Control-Allow-Headers"]
    bad = console.client.options(
        f"{API}/followers",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert bad.status_code == 403
    assert "SPREADPILOT_ADMIN_CORS_ORIGINS" in bad.json["error"]["message"]
    for r in (ok, other, pre, bad):
        assert r.headers.get("Access-Control-Allow-Origin") != "*"


def test_responses_carry_a_request_id_and_security_headers(console) -> None:
    r = console.client.get(f"{API}/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"


def test_errors_are_json_with_a_fix_never_a_traceback(console) -> None:
    r = console.get("/no-such-thing")
    assert r.status_code == 404 and "openapi.json" in r.json["error"]["message"]
    r = console.client.post(
        f"{API}/followers",
        data="{not json",
        headers={**console.headers(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "not valid JSON" in r.json["error"]["message"]
    r = console.call("DELETE", "/followers")
    assert r.status_code == 405


def test_missing_console_secrets_give_503_naming_the_secret(tmp_path: Path) -> None:
    console = make_console(tmp_path, login=False)
    (tmp_path / "secrets" / "admin-token-secret").unlink()
    r = console.login()
    assert r.status_code == 503
    assert "admin-token-secret" in r.json["error"]["message"]


def test_openapi_document_equals_the_routes(console) -> None:
    doc = console.get("/openapi.json").json
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for rule in console.app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "{" + arg + "}")
        served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
    pinned = {
        p for p, ops in doc["paths"].items() for op in ops.values() if op.get("x-pin-required")
    }
    assert {
        f"{PREFIX}/emergency-close",
        f"{PREFIX}/signals/manual",
        f"{PREFIX}/followers/{{follower_id}}/resend",
        f"{PREFIX}/followers/{{follower_id}}",
        f"{PREFIX}/followers/disable-all",
    } <= pinned
    open_ops = [op for ops in doc["paths"].values() for op in ops.values() if op["security"] == []]
    assert {op["operationId"] for op in open_ops} == {"session_health", "session_login"}
