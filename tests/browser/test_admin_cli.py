"""`spreadpilot admin`'s refusals and its choice of credentials (no browser needed):
each refusal is one line and exit code 2; the demo login is printed only when the
demo credentials are the ones in use."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.cli.admin import _login_line, demo_in_use, resolve_settings
from spreadpilot.cli.main import app
from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_PIN
from spreadpilot.platform.passwords import hash_secret
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("SPREADPILOT_"):
            monkeypatch.delenv(name)
    settings.cache_clear()
    use_container(None)
    yield
    settings.cache_clear()
    use_container(None)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    SqliteStore(data / "store.db").get("followers", "nobody")  # creates the file
    return data


def refused(args: list[str]) -> str:
    result = runner.invoke(app, ["admin", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # One message (rich wraps it at 120 columns when stderr is not a terminal).
    assert result.stderr.startswith("error: ") and result.stderr.count("error:") == 1
    return " ".join(result.stderr.split())


def test_no_store_yet_says_run_make_demo_first(tmp_path: Path) -> None:
    line = refused(["--data-dir", str(tmp_path / "empty")])
    assert "run `make demo` first" in line
    assert not (tmp_path / "empty").exists()  # no empty store was created


def test_gcp_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_MODE", "gcp")
    monkeypatch.setenv("SPREADPILOT_SHEET_ID", "sheet")
    assert "admin_api Cloud Function" in refused([])


def test_a_busy_port_is_one_clear_line(store_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        line = refused(["--port", str(port), "--data-dir", str(store_dir)])
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


def test_partly_configured_secrets_are_refused(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own-secrets"
    own.mkdir()
    (own / "admin-token-secret").write_text("x" * 48)
    monkeypatch.setenv("SPREADPILOT_SECRETS_DIR", str(own))
    line = refused(["--data-dir", str(store_dir)])
    assert "partly configured" in line and "admin-password-hash" in line


def test_with_no_secrets_the_demo_credentials_are_installed_and_shown(store_dir: Path) -> None:
    s, installed = resolve_settings(store_dir)
    assert installed and s.secrets_dir == store_dir / "secrets"
    assert sorted(p.name for p in s.secrets_dir.iterdir()) == [
        "admin-password-hash",
        "admin-pin-hash",
        "admin-token-secret",
    ]
    line = _login_line(s, demo_in_use(s))
    assert DEMO_PASSWORD in line and DEMO_PIN in line


def test_the_operators_own_secrets_are_used_and_never_the_demo_login(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own-secrets"
    own.mkdir()
    (own / "admin-password-hash").write_text(hash_secret("a long operator password"))
    (own / "admin-pin-hash").write_text(hash_secret("730519"))
    (own / "admin-token-secret").write_text("k" * 48)
    monkeypatch.setenv("SPREADPILOT_SECRETS_DIR", str(own))
    s, installed = resolve_settings(store_dir)
    assert not installed and s.secrets_dir == own
    assert not (store_dir / "secrets").exists()
    use = demo_in_use(s)
    assert not use.password and not use.pin
    line = _login_line(s, use)
    assert DEMO_PASSWORD not in line and DEMO_PIN not in line
