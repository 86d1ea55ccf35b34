"""The status page (admin/page.py) through Flask's test client on an embedded
platform: login and its cookie, the redirects, each follower's row, the emergency
close behind CSRF and PIN (bus and audit log checked), the refresh and the headers."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from spreadpilot.admin.auth import COOKIE, SESSION_MAX_AGE
from spreadpilot.platform import collections as C
from spreadpilot.services.emergency import EmergencyClose, parse_command
from tests.admin.test_status_view import trade_morning
from tests.support.console import DEMO_PIN, WRONG_PIN, Console, make_console

DEMO_PASSWORD = "demo-operator-pass"
COMMANDS = "agent-commands"  # the gateway agent's pull subscription on `commands`
FOLLOWERS = ("alice", "bruno", "carla", "dario", "elena")


@pytest.fixture
def console(tmp_path: Path) -> Console:
    console = make_console(tmp_path, login=False)
    trade_morning(console.platform)
    console.platform.drain(COMMANDS)  # nothing from the morning's scheduler
    return console


def page_login(console: Console, password: str = DEMO_PASSWORD, **kw: Any) -> TestResponse:
    return console.client.post(
        "/login", data={"username": kw.get("username", "operator"), "password": password}
    )


def status_page(console: Console, **kw: Any) -> tuple[TestResponse, str]:
    r = console.client.get("/status", **kw)
    return r, r.get_data(as_text=True)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def row_of(html: str, follower: str) -> str:
    found = re.search(rf'<tr data-follower="{follower}".*?</tr>', html, re.S)
    assert found, f"no row for {follower}"
    return found.group(0)


def cell(row: str, klass: str) -> str:
    found = re.search(rf'<td class="{klass}[^"]*"[^>]*>(.*?)</td>', row, re.S)
    assert found, f"no td.{klass}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def flashes(html: str, kind: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m)).strip()
        for m in re.findall(rf'<div class="flash {kind}"[^>]*>(.*?)</div>', html, re.S)
    ]


def audit(console: Console, action: str) -> list[dict[str, Any]]:
    rows = [s.data for s in console.c.store.query(C.AUDIT) if s.data["action"] == action]
    return sorted(rows, key=lambda d: d["at"])


def commands(console: Console) -> list[Any]:
    """Everything published for the gateway agent since the last look (pulled and acked)."""
    return [parse_command(json.dumps(m).encode()) for m in console.platform.drain(COMMANDS)]


def close(console: Console, **form: str) -> str:
    """POST the close form (Post/Redirect/Get) and return the page it lands on."""
    r = console.client.post("/status/emergency-close", data=form)
    assert r.status_code == 303 and r.headers["Location"].startswith("/status")
    return status_page(console)[1]


@pytest.fixture
def logged_in(console: Console) -> tuple[Console, str]:
    assert page_login(console).status_code == 303
    r, html = status_page(console)
    assert r.status_code == 200
    return console, html


# --- login -------------------------------------------------------------------------


def test_the_login_form_has_its_fields(console) -> None:
    r = console.client.get("/login")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    for selector in ('id="username"', 'id="password"', 'id="login-submit"'):
        assert selector in html
    assert 'type="password"' in html


def test_a_login_sets_the_session_cookie_and_is_audited(console) -> None:
    r = page_login(console)
    assert r.status_code == 303 and r.headers["Location"] == "/status"
    [cookie] = [h for h in r.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= flags and "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # embedded mode over http (gcp: Secure)
    [row] = audit(console, "auth.login")
    assert (row["outcome"], row["actor"], row["details"]["username"]) == (
        "ok",
        "operator",
        "operator",
    )
    assert "password" not in row["details"]


def test_the_cookie_is_secure_when_configured(tmp_path: Path) -> None:
    console = make_console(tmp_path, login=False, admin_secure_cookies=True)
    cookie = page_login(console).headers["Set-Cookie"]
    assert "Secure" in cookie


@pytest.mark.parametrize(("username", "password"), [("operator", "nope"), ("root", DEMO_PASSWORD)])
def test_a_wrong_login_shows_the_error_and_is_audited(console, username, password) -> None:
    r = page_login(console, password, username=username)
    html = r.get_data(as_text=True)
    assert r.status_code == 401
    assert flashes(html, "error") == ["Error: wrong username or password"]
    assert f'value="{username}"' in html  # the name is kept, the password is not
    assert COOKIE not in r.headers.get("Set-Cookie", "")
    [row] = audit(console, "auth.login")
    assert (row["outcome"], row["actor"]) == ("refused", "anonymous")
    assert row["details"]["username"] == username and "password" not in row["details"]


def test_without_a_session_the_page_sends_to_the_login(console) -> None:
    assert console.client.get("/").headers["Location"] == "/status"
    r = console.client.get("/status")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    console.client.set_cookie(COOKIE, "forged.token.value")
    r = console.client.get("/status")
    assert r.headers["Location"] == "/login"
    html = console.client.get("/login").get_data(as_text=True)
    assert "session ended" in " ".join(flashes(html, "error"))


def test_logout_clears_the_cookie(logged_in) -> None:
    console, _ = logged_in
    r = console.client.post("/logout")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert console.client.get_cookie(COOKIE) is None
    assert console.client.get("/status").headers["Location"] == "/login"


def test_the_session_is_renewed_but_not_beyond_its_maximum_age(logged_in) -> None:
    console, _ = logged_in
    first = console.client.get_cookie(COOKIE).value  # type: ignore[union-attr]
    console.platform.clock.advance(timedelta(minutes=10))  # past half the 15-minute token
    r, _ = status_page(console)
    assert r.status_code == 200
    renewed = console.client.get_cookie(COOKIE).value  # type: ignore[union-attr]
    assert renewed != first
    steps = int(SESSION_MAX_AGE / timedelta(minutes=10))
    for _ in range(steps):
        console.platform.clock.advance(timedelta(minutes=10))
        r, _ = status_page(console)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    html = console.client.get("/login").get_data(as_text=True)
    assert "type the password again" in " ".join(flashes(html, "error"))


# --- the page ----------------------------------------------------------------------


def test_every_follower_has_its_row_and_outcome(logged_in) -> None:
    _, html = logged_in
    assert re.search(r"<h1>SpreadPilot", html)
    for section in ('<section id="signal"', '<section id="alerts"', '<section id="health"'):
        assert section in html
    assert html.count("<tr data-follower=") == len(FOLLOWERS)
    expected = {
        "alice": "FILLED",
        "bruno": "SKIPPED NO_MARGIN",
        "carla": "SKIPPED",
        "dario": "REJECTED",
        "elena": "SKIPPED",
    }
    for follower, outcome in expected.items():
        row = row_of(html, follower)
        assert cell(row, "outcome").startswith(outcome), (follower, cell(row, "outcome"))
        for klass in ("fill-credit", "tv-band", "pnl-today"):
            cell(row, klass)
        assert row.count('class="emergency-close"') == 1
        assert f'name="follower" value="{follower}"' in row
    alice = row_of(html, "alice")
    assert cell(alice, "fill-credit") == "$0.85"
    assert cell(alice, "tv-band").startswith("RISK TV 0.62")
    assert "AvailableFunds" in cell(row_of(html, "bruno"), "outcome")
    assert "2026-11-24 QQQ Bull Put 486/488P x2" in html
    assert 'id="dry-run"' not in html
    assert html.count('id="close-all"') == 1


def test_dry_run_shows_the_banner(tmp_path: Path) -> None:
    console = make_console(tmp_path, login=False, dry_run=True)
    page_login(console)
    _, html = status_page(console)
    assert '<div id="dry-run"' in html and "DRY RUN" in html


def test_the_page_refreshes_itself_without_inline_code(logged_in) -> None:
    console, html = logged_in
    seconds = console.c.settings.status_refresh_seconds
    assert f'data-refresh="{seconds}"' in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/assets/console.js" defer>']
    assert " style=" not in html and "<style" not in html
    assert 'http-equiv="refresh"' not in html  # a meta refresh would wipe a typed PIN
    assert re.search(r'<time id="generated-at" datetime="2026-11-24T14:32:00\+00:00">', html)
    for asset, mimetype in (("console.js", "javascript"), ("console.css", "text/css")):
        r = console.client.get(f"/assets/{asset}")
        assert r.status_code == 200 and mimetype in r.mimetype
    script = console.client.get("/assets/console.js").get_data(as_text=True)
    assert 'input[name="pin"]' in script and "location.reload" in script


def test_security_headers(logged_in) -> None:
    console, _ = logged_in
    for path in ("/status", "/login"):
        r = console.client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-store"


def test_a_day_can_be_asked_for(logged_in) -> None:
    console, _ = logged_in
    _, html = status_page(console, query_string={"date": "2026-11-23"})
    assert "the day asked for" in html
    assert cell(row_of(html, "alice"), "outcome").startswith("NO SIGNAL")
    _, html = status_page(console, query_string={"date": "yesterday"})
    assert "is not a date" in " ".join(flashes(html, "error"))


# --- the emergency close -----------------------------------------------------------


def test_a_wrong_pin_is_refused_shown_and_audited(logged_in) -> None:
    console, html = logged_in
    page = close(console, follower="alice", csrf=csrf_of(html), pin=WRONG_PIN)
    [error] = flashes(page, "error")
    assert "Emergency close NOT sent" in error and "wrong PIN" in error
    assert "2 attempt(s) left" in error
    assert flashes(page, "ok") == []
    assert commands(console) == []
    [row] = audit(console, "emergency.close")
    assert (row["outcome"], row["actor"]) == ("refused", "operator")
    assert row["resource"] == "/status/emergency-close"
    assert row["details"]["followers"] == ["alice"] and "wrong PIN" in row["details"]["error"]
    assert WRONG_PIN not in str(row)
    # the message is shown once: the next refresh does not repeat it
    assert flashes(status_page(console)[1], "error") == []


def test_the_right_pin_sends_the_close_and_audits_it(logged_in) -> None:
    console, html = logged_in
    page = close(console, follower="alice", csrf=csrf_of(html), pin=DEMO_PIN)
    [ok] = flashes(page, "ok")
    assert "Emergency close sent" in ok
    [command] = commands(console)
    assert isinstance(command, EmergencyClose)
    assert command.followers == ("alice",) and not command.all
    assert command.requested_by == "operator" and command.reason == "status page: operator close"
    assert command.command_id in ok
    [row] = audit(console, "emergency.close")
    assert (row["outcome"], row["actor"]) == ("ok", "operator")
    assert row["details"]["command_id"] == command.command_id
    assert row["details"]["guard"] == "PIN verified"
    assert DEMO_PIN not in str(row)


def test_close_all_needs_a_reason_then_closes_everyone(logged_in) -> None:
    console, html = logged_in
    page = close(console, all="1", csrf=csrf_of(html), pin=DEMO_PIN, reason="")
    assert "reason" in " ".join(flashes(page, "error"))
    assert commands(console) == []
    reason = "QQQ gapping through every short strike"
    page = close(console, all="1", csrf=csrf_of(page), pin=DEMO_PIN, reason=reason)
    assert flashes(page, "ok")
    [command] = commands(console)
    assert command.all and command.followers == () and command.reason == reason
    rows = {r["outcome"]: r for r in audit(console, "emergency.close")}  # same clock time
    assert set(rows) == {"refused", "ok"} and "reason" in rows["refused"]["details"]["error"]
    assert rows["ok"]["details"]["all"] is True and rows["ok"]["details"]["reason"] == reason


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
def test_a_missing_or_wrong_csrf_token_is_refused(logged_in, csrf) -> None:
    console, _ = logged_in
    form = {"follower": "alice", "pin": DEMO_PIN}
    if csrf is not None:
        form["csrf"] = csrf
    page = close(console, **form)
    assert "the form is stale" in " ".join(flashes(page, "error"))
    assert commands(console) == []
    [row] = audit(console, "emergency.close")
    assert row["outcome"] == "refused" and "stale" in row["details"]["error"]
    # the PIN was never checked: a wrong one now is the first wrong attempt
    page = close(console, follower="alice", csrf=csrf_of(page), pin=WRONG_PIN)
    assert "2 attempt(s) left" in " ".join(flashes(page, "error"))


def test_without_a_session_the_close_is_refused_and_audited(console) -> None:
    r = console.client.post(
        "/status/emergency-close", data={"follower": "alice", "pin": DEMO_PIN, "csrf": "x"}
    )
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert commands(console) == []
    [row] = audit(console, "emergency.close")
    assert (row["outcome"], row["actor"]) == ("refused", "anonymous")


def test_an_unknown_follower_is_refused_before_the_pin(logged_in) -> None:
    console, html = logged_in
    page = close(console, follower="zoe", csrf=csrf_of(html), pin=WRONG_PIN)
    assert "unknown follower(s) zoe" in " ".join(flashes(page, "error"))
    assert "attempt(s) left" not in page


def test_a_locked_pin_says_until_when(logged_in) -> None:
    console, html = logged_in
    token = csrf_of(html)
    for _ in range(console.c.settings.pin_max_attempts):
        close(console, follower="alice", csrf=token, pin=WRONG_PIN)
    page = close(console, follower="alice", csrf=token, pin=DEMO_PIN)  # right, but locked
    [error] = flashes(page, "error")
    assert "locked until" in error and " ET)" in error
    assert commands(console) == []
    outcomes = [r["outcome"] for r in audit(console, "emergency.close")]
    assert outcomes == ["refused"] * (console.c.settings.pin_max_attempts + 1)
