"""Emergency close, manual signal, re-send and reconnect: PIN, claims, orderRefs, audit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.domain.execution import ExecutionEvent, ExecutionReport, report_id
from spreadpilot.domain.orders import Purpose, order_ref
from spreadpilot.platform import collections as C
from spreadpilot.services.emergency import EmergencyClose, GatewayReconnect, parse_command
from spreadpilot.services.recorder import Recorder
from tests.support.console import DEMO_PIN, WRONG_PIN, Console, make_console
from tests.support.embedded import DAY, bull_put_row

SID = f"{DAY.isoformat()}_QQQ"
REF = order_ref(DAY, "QQQ", "alice", Purpose.OPEN)
SIGNAL = {
    "strategy": "Long",
    "qty_per_leg": 2,
    "buy_put": "486",
    "sell_put": "488",
    "reason": "sheet unreachable",
}


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path)


def audit(console: Console, action: str) -> list[dict[str, Any]]:
    rows = [s.data for s in console.c.store.query(C.AUDIT) if s.data["action"] == action]
    return sorted(rows, key=lambda d: d["at"])


def commands(console: Console) -> list[Any]:
    return [parse_command(m.data) for m in _pull(console, "agent-commands")]


def _pull(console: Console, subscription: str) -> list[Any]:
    bus = console.c.bus
    out = []
    while batch := bus.pull(subscription, max_messages=100, timeout=1):
        bus.ack(subscription, [m.ack_id for m in batch])
        out.extend(batch)
    return out


# --- emergency close ------------------------------------------------------------------


def test_emergency_close_needs_the_right_pin_then_publishes_one_command(console) -> None:
    _pull(console, "agent-commands")  # the morning's earlier scheduler ticks, if any
    body = {"followers": ["alice"], "reason": "QQQ gapping through the short strike"}
    r = console.call("POST", "/emergency-close", json=body, pin=WRONG_PIN)
    assert r.status_code == 403 and "2 attempt(s) left" in r.json["error"]["message"]
    assert commands(console) == []
    r = console.call("POST", "/emergency-close", json=body, pin=DEMO_PIN)
    assert r.status_code == 202
    [command] = commands(console)
    assert isinstance(command, EmergencyClose)
    assert command.followers == ("alice",) and command.requested_by == "operator"
    assert command.command_id == r.json["command_id"]
    rows = {d["outcome"]: d for d in audit(console, "emergency.close")}
    assert set(rows) == {"refused", "ok"}
    assert "wrong PIN" in rows["refused"]["details"]["error"]
    assert rows["ok"]["details"]["command_id"] == command.command_id
    assert rows["ok"]["details"]["reason"] == body["reason"]
    pending = console.get(f"/emergency-close/{command.command_id}").json
    assert pending["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"followers": ["alice"], "all": True, "reason": "both"}, "(model)"),
        ({"reason": "neither"}, "(model)"),
        ({"all": True, "reason": ""}, "reason"),
        ({"followers": ["zoe"], "reason": "unknown"}, "followers"),
    ],
)
def test_emergency_close_validation_names_the_field(console, body, field) -> None:
    r = console.call("POST", "/emergency-close", json=body, pin=DEMO_PIN)
    assert r.status_code == 422
    assert r.json["error"]["fields"][0]["field"] == field
    assert commands(console) == []


# --- PIN lockout across instances --------------------------------------------------------


def test_pin_lockout_holds_across_two_app_instances_sharing_the_store(tmp_path: Path) -> None:
    one = make_console(tmp_path)
    two = make_console(tmp_path, platform=one.platform)  # a second app: its own Auth and caches
    assert one.app is not two.app
    body = {"all": True, "reason": "test lockout"}
    assert one.call("POST", "/emergency-close", json=body, pin=WRONG_PIN).status_code == 403
    assert two.call("POST", "/emergency-close", json=body, pin=WRONG_PIN).status_code == 403
    third = one.call("POST", "/emergency-close", json=body, pin="0000")
    assert third.status_code == 429  # the third wrong attempt locks it at once
    # locked: even the right PIN is refused, on either instance, with the unlock time
    locked = two.call("POST", "/emergency-close", json=body, pin=DEMO_PIN)
    assert locked.status_code == 429
    now = one.platform.clock.now()
    until = (now + timedelta(minutes=15)).isoformat()
    assert locked.json["error"]["locked_until"] == until
    assert locked.headers["Retry-After"] == str(15 * 60)
    assert "locked until" in locked.json["error"]["message"]
    assert (
        two.call(
            "POST", "/followers/disable-all", json={"reason": "x" * 5}, pin=DEMO_PIN
        ).status_code
        == 429
    )
    assert commands(one) == []
    session = one.get("/auth/session").json
    assert session["pin"]["locked_until"] == until
    one.platform.clock.advance(timedelta(minutes=15, seconds=1))
    # the token expired meanwhile (15-minute TTL): log in again, then the PIN works
    assert one.login().status_code == 200
    assert one.call("POST", "/emergency-close", json=body, pin=DEMO_PIN).status_code == 202
    outcomes = [d["outcome"] for d in audit(one, "emergency.close")]
    assert outcomes == ["refused"] * 4 + ["ok"]


# --- manual signal -----------------------------------------------------------------------


def test_a_manual_signal_is_claimed_once_and_dispatched_like_a_sheet_signal(console) -> None:
    console.at("09:45")
    r = console.call("POST", "/signals/manual", json=SIGNAL, pin=DEMO_PIN)
    assert r.status_code == 201, r.json
    assert r.json["signal_id"] == SID
    doc = console.c.store.get(C.SIGNALS, SID)
    assert doc["source"] == "manual" and doc["manual_by"] == "operator" and doc["published"]
    assert len(_pull(console, "dispatcher")) == 1
    summary = console.c.dispatcher().dispatch(SID)
    assert {o.follower_id for o in summary.intents} == {"alice", "bruno", "dario"}
    assert {o.order_ref for o in summary.intents} >= {REF}
    again = console.call("POST", "/signals/manual", json=SIGNAL, pin=DEMO_PIN)
    assert again.status_code == 409 and "already claimed" in again.json["error"]["message"]
    assert _pull(console, "dispatcher") == []
    assert sorted(d["outcome"] for d in audit(console, "signal.manual")) == ["ok", "refused"]


def test_a_manual_signal_after_a_sheet_claim_is_refused(console) -> None:
    p = console.platform
    p.write_sheet(bull_put_row())
    console.at("09:31")
    assert p.c.signal_poller().run().status.value == "CLAIMED"
    r = console.call("POST", "/signals/manual", json=SIGNAL, pin=DEMO_PIN)
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty_per_leg": 0}, "qty_per_leg"),
        ({"strategy": "Sideways"}, "strategy"),
        ({"sell_put": "484"}, "(model)"),  # short below long: not a credit spread
        ({"sell_put": None}, "(model)"),
    ],
)
def test_manual_signal_validation_names_the_field(console, change, field) -> None:
    console.at("09:45")
    body = {k: v for k, v in {**SIGNAL, **change}.items() if v is not None}
    r = console.call("POST", "/signals/manual", json=body, pin=DEMO_PIN)
    assert r.status_code == 422, r.json
    assert r.json["error"]["fields"][0]["field"] == field
    assert console.c.store.get(C.SIGNALS, SID) is None


def test_no_manual_signal_after_the_close_or_on_a_holiday(console) -> None:
    console.at("16:01")
    r = console.call("POST", "/signals/manual", json=SIGNAL, pin=DEMO_PIN)
    assert r.status_code == 409 and "closed" in r.json["error"]["message"]


# --- re-send -----------------------------------------------------------------------------


def _dispatched(console: Console) -> None:
    p = console.platform
    p.write_sheet(bull_put_row())
    console.at("09:31")
    p.c.signal_poller().run()
    p.c.dispatcher().dispatch(SID)
    _pull(console, "agent-orders")


def _executed(console: Console, event: ExecutionEvent, outcome: str = "", filled: int = 0) -> None:
    """What the agent leaves behind: the orderRef's reports and its DONE execute claim."""
    c, now = console.c, console.c.clock.now()
    claim = c.claims.acquire(f"execute:{REF}", "agent-1")
    recorder = Recorder(c.store, c.clock)
    base = dict(
        order_ref=REF,
        follower_id="alice",
        account="U1000001",
        gateway_id="gw-main",
        signal_id=SID,
        at=now,
        quantity=2,
    )
    recorder.record(
        ExecutionReport(
            report_id=report_id(REF, ExecutionEvent.CLAIMED, claim.attempt),
            event=ExecutionEvent.CLAIMED,
            filled=0,
            **base,
        )
    )
    recorder.record(
        ExecutionReport(
            report_id=report_id(REF, event, claim.attempt),
            event=event,
            filled=filled,
            outcome=outcome,
            reason=outcome,
            **base,
        )
    )
    c.claims.complete(f"execute:{REF}", "agent-1", {"outcome": event.value})


def test_resend_after_no_margin_republishes_the_same_order_ref(console) -> None:
    _dispatched(console)
    _executed(console, ExecutionEvent.SKIPPED, "NO_MARGIN")
    console.platform.clock.advance(timedelta(minutes=40))  # past the order's max age
    console.login()
    r = console.call("POST", "/followers/alice/resend", pin=DEMO_PIN)
    assert r.status_code == 202, r.json
    assert r.json["order_ref"] == REF and r.json["status"] == "INTENT"
    [message] = _pull(console, "agent-orders")
    assert message.attributes["order_ref"] == REF
    intent = console.c.store.get(C.ORDER_INTENTS, REF)
    assert intent["resent_by"] == "operator" and intent["resends"] == 1
    assert intent["resent_at"] == console.c.clock.now()  # the order's age restarts here
    claim = console.c.claims.acquire(f"execute:{REF}", "agent-2")
    assert claim.acquired and claim.attempt == 2  # a new attempt: its reports are new ids
    assert console.c.store.get(C.DISPATCHES, SID)["followers"]["alice"]["status"] == "INTENT"
    [row] = audit(console, "order.resend")
    assert row["outcome"] == "ok" and row["details"]["order_ref"] == REF


def test_a_second_resend_before_the_agent_ran_is_refused(console) -> None:
    _dispatched(console)
    _executed(console, ExecutionEvent.SKIPPED, "MID_TOO_LOW")
    assert console.call("POST", "/followers/alice/resend", pin=DEMO_PIN).status_code == 202
    r = console.call("POST", "/followers/alice/resend", pin=DEMO_PIN)
    assert r.status_code == 409 and "already re-sent" in r.json["error"]["message"]
    assert len(_pull(console, "agent-orders")) == 1


@pytest.mark.parametrize(
    ("event", "filled"),
    [(ExecutionEvent.FILLED, 2), (ExecutionEvent.REJECTED, 0), (ExecutionEvent.CANCELLED, 1)],
)
def test_resend_is_refused_once_the_order_reached_ib(console, event, filled) -> None:
    _dispatched(console)
    _executed(console, event, event.value, filled=filled)
    r = console.call("POST", "/followers/alice/resend", pin=DEMO_PIN)
    assert r.status_code == 409
    assert "reached IB" in r.json["error"]["message"] and event.value in r.json["error"]["message"]
    assert _pull(console, "agent-orders") == []


def test_resend_refusals_say_what_to_do(console) -> None:
    r = console.call("POST", "/followers/alice/resend", pin=DEMO_PIN)
    assert r.status_code == 409 and "no signal is claimed" in r.json["error"]["message"]
    _dispatched(console)
    r = console.call("POST", "/followers/alice/resend", pin=DEMO_PIN)
    assert r.status_code == 409 and "waits for the gateway agent" in r.json["error"]["message"]
    r = console.call("POST", "/followers/carla/resend", pin=DEMO_PIN)
    assert r.status_code == 409 and "enable it first" in r.json["error"]["message"]
    assert console.call("POST", "/followers/zoe/resend", pin=DEMO_PIN).status_code == 404
    assert console.call("POST", "/followers/alice/resend", pin=WRONG_PIN).status_code == 403


def test_resend_of_a_follower_skipped_at_dispatch_sends_its_first_order(console) -> None:
    console.c.store.update(C.FOLLOWERS, "carla", {"enabled": True})  # enabled after dispatch...
    console.c.store.update(C.FOLLOWERS, "carla", {"enabled": False})
    _dispatched(console)
    assert console.c.store.get(C.DISPATCHES, SID)["followers"]["carla"]["status"] == "SKIPPED"
    console.call("POST", "/followers/carla/enable")
    r = console.call("POST", "/followers/carla/resend", pin=DEMO_PIN)
    assert r.status_code == 202 and r.json["status"] == "INTENT"
    [message] = _pull(console, "agent-orders")
    assert message.attributes["follower_id"] == "carla"


# --- reconnect ---------------------------------------------------------------------------


def test_reconnect_publishes_a_command_for_the_agent(console) -> None:
    r = console.call("POST", "/gateways/gw-main/reconnect")
    assert r.status_code == 202
    [command] = commands(console)
    assert isinstance(command, GatewayReconnect)
    assert command.gateway_id == "gw-main" and command.command_id == r.json["command_id"]
    [row] = audit(console, "gateway.reconnect")
    assert row["resource"] == "/gateways/gw-main/reconnect" and row["outcome"] == "ok"
