"""The functions in-process through the Functions Framework, with real CloudEvent
envelopes: binary and structured, well-formed and malformed. A malformed event is
acked with a clear logged error, kept whole in dead_letters and on the dead-letter
topic, and alerted; nothing is lost, nothing is traded."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from tests.support.cloudevents import binary, pubsub_body, structured
from tests.support.embedded import ACTIVE, REPO, Platform, bull_put_row, make_platform

SID = "2026-11-24_QQQ"


@pytest.fixture
def p(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    p = make_platform(tmp_path)
    use_container(p.c)
    yield p
    use_container(None)
    settings.cache_clear()


def client(name: str) -> FlaskClient:
    app = functions_framework.create_app(
        target=name, source=str(REPO / "functions" / name / "main.py"), signature_type="cloudevent"
    )
    return app.test_client()


@pytest.fixture
def claimed(p: Platform) -> Platform:
    p.write_sheet(bull_put_row())
    p.c.signal_poller().run()
    p.drain("dispatcher")
    return p


MODES: list[Callable[..., dict[str, Any]]] = [binary, structured]


@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_dispatcher_accepts_both_content_modes(claimed: Platform, mode: Callable[..., Any]) -> None:
    resp = client("dispatcher").post("/", **mode(pubsub_body({"signal_id": SID})))
    assert resp.status_code == 200, resp.data
    assert len(claimed.drain("agent-orders")) == len(ACTIVE)


@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_signal_poller_tick_claims_the_signal(p: Platform, mode: Callable[..., Any]) -> None:
    p.write_sheet(bull_put_row())
    body = pubsub_body({"job": "signal-poll"}, publish_time=p.clock.now())
    resp = client("signal_poller").post("/", **mode(body, topic="signal-poll-ticks"))
    assert resp.status_code == 200, resp.data
    assert p.c.store.get(C.SIGNALS, SID) is not None


MALFORMED = [
    (
        "bad-base64",
        pubsub_body(raw_data="!!not base64!!"),
        "field 'message.data' of message m-1 is not valid base64",
    ),
    (
        "no-message",
        pubsub_body({"signal_id": SID}, drop=("message",)),
        "field 'message' is missing or not an object",
    ),
    (
        "not-json",
        pubsub_body(raw_data=base64.b64encode(b"signal please").decode()),
        "data is not JSON",
    ),
    (
        "not-utf8",
        pubsub_body(raw_data=base64.b64encode(b"\xff\xfe").decode()),
        "data is not UTF-8 text",
    ),
    ("missing-field", pubsub_body({"signal": SID}), "field 'signal_id' is missing"),
    ("wrong-type", pubsub_body({"signal_id": 123}), "field 'signal_id' is 123"),
    ("list-payload", pubsub_body([SID]), "expected a JSON object with 'signal_id', got list"),
    (
        "bad-attributes",
        pubsub_body({"signal_id": SID}, attributes={"n": 1}),
        "'message.attributes' of message m-1 must map strings to strings",
    ),
    (
        "data-not-string",
        {"message": {"data": 42, "messageId": "m-1"}},
        "field 'message.data' is int, expected a base64 string",
    ),
    (
        "unknown-signal",
        pubsub_body({"signal_id": "2026-11-25_QQQ"}),
        "UnknownSignal: signal '2026-11-25_QQQ' is not in the store",
    ),
]


@pytest.mark.parametrize(("case", "body", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
@pytest.mark.parametrize("mode", MODES, ids=["binary", "structured"])
def test_malformed_events_are_dead_lettered_with_a_clear_reason(
    claimed: Platform,
    case: str,
    body: dict[str, Any],
    reason: str,
    mode: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    resp = client("dispatcher").post("/", **mode(body, event_id=f"ev-{case}"))
    assert resp.status_code == 200  # acked: retrying cannot help
    (dead,) = claimed.c.store.query(C.DEAD_LETTERS)
    assert reason in dead.data["reason"]
    assert dead.data["function"] == "dispatcher" and dead.data["published"]
    kept = base64.b64decode(dead.data["event_data_b64"])
    assert json.loads(kept) == body  # the whole event, as received
    held = claimed.c.bus.pull("dispatcher-dead-letter-hold", max_messages=10, timeout=1)
    assert len(held) == 1 and json.loads(held[0].data) == body
    assert reason in held[0].attributes["reason"]
    alerts = [a for a in claimed.drain("alerts-hold") if a["type"] == "MESSAGE_DEAD_LETTERED"]
    assert len(alerts) == 1 and reason in alerts[0]["message"]
    assert claimed.drain("agent-orders") == []  # nothing traded
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    errors = [e for e in logged if e["severity"] == "ERROR"]
    assert errors and reason in errors[0]["message"]


def test_the_same_malformed_event_redelivered_is_kept_once(claimed: Platform) -> None:
    body = pubsub_body(raw_data="%%%")
    for _ in range(3):
        assert client("dispatcher").post("/", **binary(body, event_id="ev-x")).status_code == 200
    assert len(claimed.c.store.query(C.DEAD_LETTERS)) == 1
    assert len(claimed.c.bus.pull("dispatcher-dead-letter-hold", 10, 1)) == 1
    alerts = [a for a in claimed.drain("alerts-hold") if a["type"] == "MESSAGE_DEAD_LETTERED"]
    assert len(alerts) == 1


def test_raw_pubsub_push_body_is_converted_by_the_framework(claimed: Platform) -> None:
    """A push subscription wired to the function URL posts the bare Pub/Sub body; the
    Functions Framework turns it into the same CloudEvent."""
    resp = client("dispatcher").post("/", json=pubsub_body({"signal_id": SID}))
    assert resp.status_code == 200, resp.data
    assert len(claimed.drain("agent-orders")) == len(ACTIVE)


def test_a_request_that_is_no_event_at_all_is_refused(claimed: Platform) -> None:
    kwargs = binary(pubsub_body({"signal_id": SID}))
    for header in ("ce-type", "ce-source", "ce-id", "ce-specversion"):
        del kwargs["headers"][header]
    kwargs["data"] = "not json at all"
    resp = client("dispatcher").post("/", **kwargs)
    assert resp.status_code == 400  # Pub/Sub push retries, then dead-letters: nothing lost
    assert claimed.drain("agent-orders") == []


def test_non_object_tick_body_is_dead_lettered(p: Platform) -> None:
    body = pubsub_body([1, 2], publish_time=p.clock.now())
    resp = client("signal_poller").post("/", **binary(body, topic="signal-poll-ticks"))
    assert resp.status_code == 200
    (dead,) = p.c.store.query(C.DEAD_LETTERS)
    assert "tick body must be a JSON object" in dead.data["reason"]
    assert len(p.c.bus.pull("signal-poller-dead-letter-hold", 10, 1)) == 1


def test_stale_tick_is_dropped_with_a_warning(
    p: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    p.write_sheet(bull_put_row())
    body = pubsub_body({"job": "signal-poll"}, publish_time=p.clock.now() - timedelta(minutes=10))
    resp = client("signal_poller").post("/", **binary(body, topic="signal-poll-ticks"))
    assert resp.status_code == 200
    assert p.c.store.get(C.SIGNALS, SID) is None
    assert "dropped a stale signal-poll tick" in capsys.readouterr().out


def test_transient_failure_answers_500_so_pubsub_retries(claimed: Platform, tmp_path: Path) -> None:
    from spreadpilot.platform.wiring import Container

    broken = Container(
        claimed.settings.model_copy(update={"data_dir": tmp_path / "missing" / "nested"}),
        clock=claimed.clock,
    )
    (tmp_path / "missing").write_text("a file where the data folder should be")
    use_container(broken)
    resp = client("dispatcher").post("/", **binary(pubsub_body({"signal_id": SID})))
    assert resp.status_code == 500
    use_container(claimed.c)
    assert claimed.c.store.query(C.DEAD_LETTERS) == []  # retried, not dead-lettered


def test_bad_settings_stop_the_function_at_cold_start_naming_the_setting(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SPREADPILOT_SIGNAL_DEADLINE": "9:99",
        "SPREADPILOT_DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO / "shared"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import runpy; runpy.run_path({str(REPO / 'functions/dispatcher/main.py')!r})",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["severity"] == "CRITICAL"
    assert "dispatcher cannot start" in line["message"]
    assert "SPREADPILOT_SIGNAL_DEADLINE = '9:99'" in line["message"]
    assert "Traceback" not in proc.stderr
