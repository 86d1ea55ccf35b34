"""The status page in Chromium, on the demo day, served by `spreadpilot admin`: the
login form, every follower's row against the store, an emergency close refused on a
wrong PIN and sent on the right one (bus and audit log checked), and screenshots at
phone and desktop sizes (the desktop one is docs/status-page.png)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.domain.signal import signal_id
from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_PIN, DEMO_USERNAME
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SystemClock
from spreadpilot.platform.topology import topology
from spreadpilot.ports.store import Filter
from spreadpilot.services.emergency import EmergencyClose, parse_command
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    REPO,
    Console,
    Demo,
    log_in,
    needs_chromium,
)

pytestmark = needs_chromium
WRONG_PIN = "917364"  # strong (passes the PIN policy), and not the demo PIN
SCREENSHOT = REPO / "docs" / "status-page.png"
CLOSE_REASON = "browser test: the operator closes by hand"


# --- what the store says -----------------------------------------------------------


def enabled_followers(demo: Demo) -> list[str]:
    docs = demo.store().query(C.FOLLOWERS)
    return sorted(d.id for d in docs if d.data.get("enabled", True))


def expected_outcomes(demo: Demo) -> dict[str, set[str]]:
    """Per enabled follower, the outcomes of its orders on the demo day (the recorder's
    execution documents), or, with no order at IB, the dispatcher's status (SKIPPED)."""
    store = demo.store()
    sid = signal_id(demo.day, "QQQ")
    dispatched = (store.get(C.DISPATCHES, sid) or {}).get("followers", {})
    outcomes: dict[str, set[str]] = {f: set() for f in enabled_followers(demo)}
    for snap in store.query(C.EXECUTIONS, [Filter("signal_id", "==", sid)]):
        fid = snap.data["follower_id"]
        if fid in outcomes:
            outcomes[fid].add(str(snap.data.get("outcome") or snap.data["state"]))
    for fid, found in outcomes.items():
        if not found:
            found.add(str(dispatched[fid]["status"]))
    return outcomes


def audit_rows(demo: Demo, action: str) -> list[dict[str, Any]]:
    rows = [s.data for s in demo.store().query(C.AUDIT) if s.data["action"] == action]
    return sorted(rows, key=lambda r: r["at"])


def commands_subscription() -> str:
    """The gateway agent's pull subscription on `commands` (topics.yaml)."""
    subs = [s for s in topology().subscriptions_of("commands") if s.pull == "gateway-agent"]
    assert len(subs) == 1, subs
    return subs[0].name


def emergency_closes(demo: Demo) -> list[EmergencyClose]:
    """Every emergency close waiting for the gateway agent (pulled, so leased)."""
    bus = LocalBus(demo.data_dir / "bus.db", topology(), SystemClock())
    found: list[EmergencyClose] = []
    while batch := bus.pull(commands_subscription(), max_messages=100):
        for message in batch:
            command = parse_command(message.data)
            if isinstance(command, EmergencyClose):
                found.append(command)
    return found


# --- the page ----------------------------------------------------------------------


def close_form(page: Page, follower: str) -> Any:
    return page.locator(f'tr[data-follower="{follower}"] form.emergency-close')


def submit_close(page: Page, follower: str, pin: str) -> None:
    form = close_form(page, follower)
    reason = form.locator("[name=reason]")
    if reason.count():
        reason.fill(CLOSE_REASON)
    form.locator("input[name=pin]").fill(pin)
    with page.expect_navigation():  # POST, then the redirect back to the page
        form.locator("button[type=submit]").click()


def a_follower_to_close(demo: Demo) -> str:
    """An enabled follower whose demo order was filled (it had a spread to close)."""
    outcomes = expected_outcomes(demo)
    return next(f for f in sorted(outcomes) if "FILLED" in outcomes[f])


# --- the tests ---------------------------------------------------------------------


def test_the_console_prints_its_address_api_and_the_demo_login(console: Console) -> None:
    text = "\n".join(console.banner)
    assert re.match(r"SpreadPilot console on http://127\.0\.0\.1:\d+/status$", console.banner[0])
    assert f"{console.base}/api/v1" in text and f"{console.base}/api/v1/openapi.json" in text
    assert DEMO_USERNAME in text and DEMO_PASSWORD in text and DEMO_PIN in text
    assert "spreadpilot security audit" in text


def test_the_operator_logs_in_and_sees_every_enabled_follower(
    operator_page: Page, demo: Demo
) -> None:
    page = operator_page
    expect(page.locator("h1")).to_contain_text("SpreadPilot")
    expect(page.locator("input#password")).to_have_count(0)
    expect(page.locator("section#signal")).to_be_visible()
    for follower, outcomes in expected_outcomes(demo).items():
        row = page.locator(f'table#followers tr[data-follower="{follower}"]')
        expect(row).to_have_count(1)
        outcome = row.locator("td.outcome")
        expect(outcome).to_have_count(1)
        shown = outcome.inner_text()
        assert all(o in shown for o in outcomes), f"{follower}: {shown!r}, store: {outcomes}"


def test_a_wrong_pin_refuses_the_emergency_close(operator_page: Page, demo: Demo) -> None:
    page = operator_page
    follower = a_follower_to_close(demo)
    before = len(audit_rows(demo, "emergency.close"))
    submit_close(page, follower, WRONG_PIN)
    expect(page.locator(".flash.error")).to_contain_text("PIN")
    expect(page.locator(".flash.ok")).to_have_count(0)
    assert not [c for c in emergency_closes(demo) if follower in c.followers]
    rows = audit_rows(demo, "emergency.close")[before:]
    assert [(r["outcome"], r["actor"]) for r in rows] == [("refused", DEMO_USERNAME)]
    assert "PIN" in str(rows[0]["details"])


def test_the_right_pin_sends_the_emergency_close(operator_page: Page, demo: Demo) -> None:
    page = operator_page
    follower = a_follower_to_close(demo)
    before = len(audit_rows(demo, "emergency.close"))
    submit_close(page, follower, DEMO_PIN)
    expect(page.locator(".flash.ok")).to_contain_text("Emergency close sent")
    expect(page.locator(".flash.error")).to_have_count(0)
    sent = [c for c in emergency_closes(demo) if follower in c.followers]
    assert len(sent) == 1, sent
    assert sent[0].followers == (follower,) and not sent[0].all
    assert sent[0].requested_by == DEMO_USERNAME
    rows = audit_rows(demo, "emergency.close")[before:]
    assert [(r["outcome"], r["actor"]) for r in rows] == [("ok", DEMO_USERNAME)]
    assert sent[0].command_id in str(rows[0]["details"])
    refused = [r for r in audit_rows(demo, "emergency.close") if r["outcome"] == "refused"]
    assert refused, "the wrong PIN's attempt left no audit row"


def test_the_status_page_at_phone_and_desktop_sizes(
    browser: Browser, console: Console, demo: Demo, tmp_path: Path
) -> None:
    shots: dict[str, Path] = {}
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(viewport=viewport)
        try:
            page = context.new_page()
            log_in(page, console)
            for section in ("section#signal", "table#followers", "section#alerts"):
                expect(page.locator(section)).to_be_visible()
            expect(page.locator("section#health")).to_be_visible()
            expect(page.locator("form#close-all")).to_have_count(1)
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{name}: the page is {wide} px wider than the screen"
            path = SCREENSHOT if name == "desktop" else tmp_path / f"status-{name}.png"
            page.screenshot(path=str(path))  # the viewport: what the operator sees first
            shots[name] = path
        finally:
            context.close()
    for name, path in shots.items():
        assert path.stat().st_size > 10_000, f"{name} screenshot is nearly empty"
