"""`make demo`'s command end to end: the signal path, then the simulated broker's check."""

from pathlib import Path

from typer.testing import CliRunner

from spreadpilot.cli.main import app


def test_demo_prints_intents_and_the_broker_check(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--date", "2026-11-24", "--data-dir", str(tmp_path / "demo")]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "WAITING" in out and "CLAIMED" in out  # half-typed row, then completed at 09:29
    for ref in (
        "SP-20261124-QQQ-alice-OPEN",
        "SP-20261124-QQQ-bruno-OPEN",
        "SP-20261124-QQQ-dario-OPEN",
    ):
        assert ref in out
    assert "disabled" in out and "state is SUSPENDED" in out
    assert "IB Gateway simulator" in out
    assert "$400.00" in out and "$600.00" in out and "$200.00" in out  # width 2 x 100 x qty
    assert "$2.60" in out  # 0.65 x 2 contracts x 2 legs


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a demo folder" in result.output
    assert (tmp_path / "precious.txt").exists()
