"""Structured logs carry Cloud Logging's fields and never a secret."""

import json
import logging

import pytest

from spreadpilot.adapters.embedded.env_secrets import EnvFileSecrets
from spreadpilot.platform.logs import configure_logging, set_context
from spreadpilot.ports.secrets import MissingSecret


def test_json_line_has_cloud_logging_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("dispatcher", project="acme")
    set_context(labels={"message_id": "m1"}, trace="abc123")
    logging.getLogger("t").warning("hello %s", "world", extra={"follower_id": "alice"})
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello world"
    assert entry["follower_id"] == "alice"
    assert entry["logging.googleapis.com/labels"]["component"] == "dispatcher"
    assert entry["logging.googleapis.com/labels"]["message_id"] == "m1"
    assert entry["logging.googleapis.com/trace"] == "projects/acme/traces/abc123"
    assert entry["logging.googleapis.com/sourceLocation"]["function"]


def test_secrets_are_masked_everywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPREADPILOT_SECRET_TELEGRAM_TOKEN", "123456:very-secret-token")
    token = EnvFileSecrets().get("telegram-token")
    configure_logging("t")
    logging.getLogger("t").error("calling with %s", token, extra={"url": f"https://x/{token}/"})
    line = capsys.readouterr().out
    assert "very-secret-token" not in line
    assert "***" in line


def test_missing_secret_says_where_to_put_it(tmp_path: object) -> None:
    with pytest.raises(MissingSecret, match="export SPREADPILOT_SECRET_SENDGRID_API_KEY"):
        EnvFileSecrets().get("sendgrid-api-key")


def test_multiline_json_secrets_are_masked_in_json_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = '{"private_key": "-----BEGIN KEY-----\\nabc123secret\\n-----END KEY-----"}'
    monkeypatch.setenv("SPREADPILOT_SECRET_SHEETS_SERVICE_ACCOUNT", key)
    value = EnvFileSecrets().get("sheets-service-account")
    configure_logging("t")
    logging.getLogger("t").warning("loaded %s", value)
    line = capsys.readouterr().out
    assert "abc123secret" not in line and "***" in line


def test_context_resets_between_invocations(capsys: pytest.CaptureFixture[str]) -> None:
    from spreadpilot.platform.logs import reset_context

    configure_logging("recorder")
    set_context(labels={"message_id": "first"}, trace="t1")
    reset_context()
    set_context(labels={"function": "recorder"})
    logging.getLogger("t").info("second message")
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "message_id" not in entry["logging.googleapis.com/labels"]
    assert "logging.googleapis.com/trace" not in entry
