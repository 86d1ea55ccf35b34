"""The command line: --help everywhere, clear errors (exit 2), no tracebacks."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from spreadpilot.cli.main import app
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    use_container(None)
    yield
    settings.cache_clear()
    use_container(None)


def _all_commands() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = [[]]
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(cmd, "commands", {}))
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_followers_import_reports_every_bad_record_and_saves_none(tmp_path: Path) -> None:
    bad = tmp_path / "f.yaml"
    bad.write_text(
        "followers:\n"
        "  - {id: ok, name: Ok, email: ok@example.com, iban: DE89370400440532013000,"
        " ib_account: U1, gateway_id: g, commission_rate: '0.2'}\n"
        "  - {id: bad, name: Bad, email: nope, iban: DE89370400440532013000,"
        " ib_account: U1234567, gateway_id: g, commission_rate: '0.2'}\n"
    )
    result = runner.invoke(app, ["followers", "import", str(bad)])
    assert result.exit_code == 2
    assert "followers[1] (ok).ib_account='U1'" in result.output
    assert "followers[2] (bad).email='nope': not a valid email address" in result.output
    assert "Traceback" not in result.output
    listed = runner.invoke(app, ["followers", "list"])
    assert "U1234567" not in listed.output and "ok@example.com" not in listed.output
    assert "Ok" not in listed.output.splitlines()[-2]  # an empty table: nothing was saved


def test_sample_followers_import_and_list() -> None:
    sample = Path(__file__).resolve().parents[2] / "shared/spreadpilot/local/sample/followers.yaml"
    assert runner.invoke(app, ["followers", "import", str(sample)]).output.strip() == (
        "imported 5 followers"
    )
    listed = runner.invoke(app, ["followers", "list"]).output
    assert "U1000002" in listed and "x2 max 3" in listed and "SUSPENDED" in listed


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_SIGNAL_READS_PER_RUN", "many")
    result = runner.invoke(app, ["settings", "show"])
    assert result.exit_code == 2
    assert "SPREADPILOT_SIGNAL_READS_PER_RUN = 'many'" in result.output
    assert "Traceback" not in result.output


def test_schedule_shows_early_close_and_jobs() -> None:
    result = runner.invoke(app, ["schedule", "--date", "2026-11-27"])
    assert result.exit_code == 0
    assert "open 09:30-13:00 (early close)" in result.output
    assert "signal-poll" in result.output and "09:27" in result.output
