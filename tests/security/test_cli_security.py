"""`spreadpilot security ...` through the real command line (typer's CliRunner)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spreadpilot.cli.main import app
from spreadpilot.domain.pin import check_pin_strength
from spreadpilot.local.demo_login import DEMO_PIN, install_demo_credentials
from spreadpilot.platform.passwords import hash_secret, verify_secret
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("SPREADPILOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPREADPILOT_SECRETS_DIR", str(tmp_path / "secrets"))
    settings.cache_clear()
    use_container(None)
    yield tmp_path / "secrets"
    settings.cache_clear()
    use_container(None)


def test_generate_pin_prints_a_strong_pin_and_the_next_step() -> None:
    result = runner.invoke(app, ["security", "generate-pin"])
    assert result.exit_code == 0, result.output
    pin = result.stdout.splitlines()[0]
    assert len(pin) == 6
    check_pin_strength(pin)
    assert "spreadpilot security hash-pin" in result.stderr
    assert "admin-pin-hash" in result.stderr


def test_generate_pin_length() -> None:
    result = runner.invoke(app, ["security", "generate-pin", "--length", "8"])
    assert result.exit_code == 0
    assert len(result.stdout.strip()) == 8
    too_short = runner.invoke(app, ["security", "generate-pin", "--length", "4"])
    assert too_short.exit_code == 2


def test_hash_pin_prints_only_the_hash() -> None:
    result = runner.invoke(app, ["security", "hash-pin", "730519"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith("scrypt$n=16384,r=8,p=1$")
    assert verify_secret("730519", line)


def test_hash_pin_prompts_hidden_with_confirmation() -> None:
    result = runner.invoke(app, ["security", "hash-pin"], input="730519\n730519\n")
    assert result.exit_code == 0, result.output
    assert "730519" not in result.output  # hidden input is not echoed
    assert verify_secret("730519", result.stdout.strip())
    assert "PIN" in result.stderr  # the prompts go to stderr, stdout is the hash alone


@pytest.mark.parametrize(
    ("pin", "rule"),
    [
        ("123456", "ascending or descending run"),
        ("121212", "short block repeated"),
        ("1234", "at least 6 digits"),
        ("12ab56", "digits only"),
        (DEMO_PIN, "demo PIN"),
    ],
)
def test_hash_pin_refuses_a_weak_pin_naming_the_rule(pin: str, rule: str) -> None:
    result = runner.invoke(app, ["security", "hash-pin", pin])
    assert result.exit_code == 2
    assert rule in result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_hash_password_prompts_twice_and_checks_the_length() -> None:
    good = runner.invoke(
        app, ["security", "hash-password"], input="a long passphrase\na long passphrase\n"
    )
    assert good.exit_code == 0, good.output
    assert verify_secret("a long passphrase", good.stdout.strip())
    assert "a long passphrase" not in good.output
    short = runner.invoke(app, ["security", "hash-password"], input="short\nshort\n")
    assert short.exit_code == 2
    assert "at least 12 characters" in short.output


def test_audit_fails_on_demo_credentials_and_passes_on_good_ones(isolated: Path) -> None:
    install_demo_credentials(isolated)
    bad = runner.invoke(app, ["security", "audit"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL" in bad.output and "demo PIN" in bad.output
    assert "3 of 6 checks failed" in bad.output

    (isolated / "admin-password-hash").write_text(hash_secret("a long passphrase"))
    (isolated / "admin-pin-hash").write_text(hash_secret("730519"))
    (isolated / "admin-token-secret").write_text("k7Qz0pW4xR9sT2vY6bN8mC1dF5gH3jL0aE7uI9oP2qS4")
    good = runner.invoke(app, ["security", "audit"])
    assert good.exit_code == 0, good.output
    assert "PASS" in good.output and "FAIL" not in good.output
    assert "all 6 checks passed" in good.output


def test_audit_reports_missing_secrets_without_a_traceback() -> None:
    result = runner.invoke(app, ["security", "audit"])
    assert result.exit_code == 1
    assert "is not set" in result.output
    assert "Traceback" not in result.output


def test_audit_bad_settings_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_ADMIN_TOKEN_TTL_MINUTES", "0")
    result = runner.invoke(app, ["security", "audit"])
    assert result.exit_code == 2
    assert "SPREADPILOT_ADMIN_TOKEN_TTL_MINUTES = '0'" in result.output
    assert "Traceback" not in result.output
