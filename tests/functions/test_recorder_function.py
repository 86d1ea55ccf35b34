"""The recorder function in-process through the Functions Framework, with real
CloudEvent envelopes (binary and structured): a report is folded into its order's
document once however often it is delivered; a report that is not an
ExecutionReport is acked, dead-lettered naming the field at fault, and records
nothing. And the embedded runner delivers what is published on `executions`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from spreadpilot.domain.execution import ExecutionEvent, ExecutionReport, report_id
from spreadpilot.local.functions import load_function
from spreadpilot.local.runner import LocalRunner
from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from spreadpilot.ports.store import EXPIRE_AT
from tests.support.cloudevents import binary, pubsub_body, structured
from tests.support.embedded import REPO, Platform, make_platform

REF = "SP-20261124-QQQ-alice-OPEN"
MODES: list[Callable[..., dict[str, Any]]] = [binary, structured]


@pytest.fixture
def p(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    p = make_platform(tmp_path)
    use_container(p.c)
    yield p
    use_container(None)
    settings.cache_clear()


def client() -> FlaskClient:
    app = functions_framework.create_app(
        target="recorder",
        source=str(REPO / "functions" / "recorder" / "main.py"),
        signature_type="cloudevent",
    )
    return app.test_client()


def report(
    p: Platform, event: ExecutionEvent = ExecutionEvent.PLACED, seq: int = 0
) -> dict[str, Any]:
    """A report as the gateway agent publishes it (model_dump in JSON mode)."""
    return ExecutionReport(
        report_id=report_id(REF, event, seq),
        order_ref=REF,
        follower_id="alice",
        account="U1000001",
        gateway_id="gw-main",
        signal_id="2026-11-24_QQQ",
        event=event,
        at=p.clock.now() + timedelta(seconds=seq),
        quantity=2,
        filled=2 if event is ExecutionEvent.FILLED else 0,
        credit=Decimal("0.78"),
        ladder_step=0,
    ).model_dump(mode="json")


def post(body: dict[str, Any], mode: Callable[..., dict[str, Any]], event_id: str) -> int:
    resp = client().post("/", **mode(body, event_id=event_id, topic="executions"))
    return resp.status_code


@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_a_valid_report_is_recorded(p: Platform, mode: Callable[..., Any]) -> None:
    assert post(pubsub_body(report(p)), mode, "ev-1") == 200
    doc = p.c.store.get(C.EXECUTIONS, REF)
    assert doc is not None
    assert doc["state"] == "PLACED" and doc["follower_id"] == "alice"
    assert [e["report_id"] for e in doc["events"]] == [f"{REF}:PLACED:0"]
    assert doc[EXPIRE_AT] == p.clock.now() + timedelta(days=365)
    assert p.c.store.query(C.DEAD_LETTERS) == []


@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_the_same_report_delivered_three_times_is_one_event(
    p: Platform, mode: Callable[..., Any]
) -> None:
    body = pubsub_body(report(p, ExecutionEvent.FILLED, 1))
    for attempt in range(3):  # Pub/Sub redelivers with a new delivery, same message
        assert post(body, mode, f"ev-{attempt}") == 200
    doc = p.c.store.get(C.EXECUTIONS, REF)
    assert doc is not None and len(doc["events"]) == 1
    assert doc["state"] == "FILLED" and doc["filled"] == 2


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    (
        "missing-order-ref",
        lambda r: _without(r, "order_ref"),
        "field 'order_ref': Field required",
    ),
    (
        "filled-wrong-type",
        lambda r: {**r, "filled": "all of them"},
        "field 'filled': Input should be a valid integer",
    ),
    (
        "unknown-event",
        lambda r: {**r, "event": "EXPLODED"},
        "field 'event': Input should be 'CLAIMED', 'SKIPPED'",
    ),
    (
        "negative-filled",
        lambda r: {**r, "filled": -1},
        "field 'filled': Input should be greater than or equal to 0",
    ),
    (
        "unknown-field",
        lambda r: {**r, "colour": "red"},
        "field 'colour': Extra inputs are not permitted",
    ),
    (
        "list-payload",
        lambda r: [r],
        "expected a JSON object (an ExecutionReport), got list",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_a_malformed_report_is_dead_lettered_naming_the_field(
    p: Platform,
    case: str,
    mutate: Callable[[dict[str, Any]], Any],
    reason: str,
    mode: Callable[..., Any],
) -> None:
    body = pubsub_body(mutate(report(p)))
    assert post(body, mode, f"ev-{case}") == 200  # acked: retrying cannot help
    assert p.c.store.query(C.EXECUTIONS) == []  # nothing recorded
    (dead,) = p.c.store.query(C.DEAD_LETTERS)
    assert dead.data["function"] == "recorder" and dead.data["published"]
    assert reason in dead.data["reason"], dead.data["reason"]
    assert "not a valid ExecutionReport" in dead.data["reason"] or case == "list-payload"
    assert json.loads(base64.b64decode(dead.data["event_data_b64"])) == body
    held = p.c.bus.pull("recorder-dead-letter-hold", max_messages=10, timeout=1)
    assert len(held) == 1 and reason in held[0].attributes["reason"]
    alerts = [a for a in p.drain("alerts-hold") if a["type"] == "MESSAGE_DEAD_LETTERED"]
    assert len(alerts) == 1 and reason in alerts[0]["message"]


def test_the_local_runner_delivers_a_published_report_to_the_recorder(p: Platform) -> None:
    """Embedded mode: the agent publishes on `executions`; the runner delivers it
    through the real functions/recorder/main.py, as the push subscription does."""
    runner = LocalRunner(p.c.bus, p.c.topology, {"recorder": load_function("recorder")}, p.clock)
    assert runner.subscriptions == ["recorder"]
    placed = report(p, ExecutionEvent.PLACED, 0)
    filled = report(p, ExecutionEvent.FILLED, 1)
    for payload in (filled, placed, filled):  # out of order, and one published twice
        p.c.bus.publish("executions", json.dumps(payload).encode())
    assert runner.run_until_idle(wait_for_retries=True) == 3
    doc = p.c.store.get(C.EXECUTIONS, REF)
    assert doc is not None and doc["state"] == "FILLED"
    assert [e["event"] for e in doc["events"]] == ["PLACED", "FILLED"]
    assert p.c.store.query(C.DEAD_LETTERS) == []
    assert p.c.bus.pull("recorder", max_messages=10, timeout=0.1) == []  # all acked
