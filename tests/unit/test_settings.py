"""Settings: env and TOML file, validated with messages that name the setting."""

from pathlib import Path

import pytest

from spreadpilot.platform.settings import SettingsError, load_settings


def test_defaults_follow_the_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.signal_poll_start.isoformat(), s.signal_deadline.isoformat()) == (
        "09:27:00",
        "09:40:00",
    )
    assert s.mode == "embedded" and not s.dry_run


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_SIGNAL_DEADLINE", "09:45")
    monkeypatch.setenv("SPREADPILOT_DRY_RUN", "true")
    s = load_settings()
    assert s.signal_deadline.isoformat() == "09:45:00" and s.dry_run


def test_bad_values_are_named_with_their_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_SIGNAL_DEADLINE", "9:99")
    monkeypatch.setenv("SPREADPILOT_SIGNAL_READS_PER_RUN", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert "SPREADPILOT_SIGNAL_DEADLINE = '9:99'" in text
    assert "SPREADPILOT_SIGNAL_READS_PER_RUN = '0'" in text
    assert "greater than or equal to 1" in text


def test_gcp_mode_requires_the_sheet_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_MODE", "gcp")
    with pytest.raises(SettingsError, match="set SPREADPILOT_SHEET_ID"):
        load_settings()


def test_toml_file_and_unknown_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "spreadpilot.toml"
    cfg.write_text('signal_deadline = "09:35"\nproject_id = "acme"\n')
    monkeypatch.setenv("SPREADPILOT_CONFIG", str(cfg))
    s = load_settings()
    assert (s.project_id, s.signal_deadline.isoformat()) == ("acme", "09:35:00")
    cfg.write_text('signal_dedline = "09:35"\n')
    with pytest.raises(SettingsError, match=r"SPREADPILOT_SIGNAL_DEDLINE.*unknown setting"):
        load_settings()
    monkeypatch.setenv("SPREADPILOT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match=r"missing\.toml: file not found"):
        load_settings()
