"""`make demo`'s command end to end: sheet -> poller -> dispatcher -> gateway agent ->
IB Gateway simulators -> recorder, then the operator's views of the same orders."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.cli.main import app
from spreadpilot.platform import collections as C

DAY = "2026-11-24"
CENT = Decimal("0.01")
REFS = {f: f"SP-20261124-QQQ-{f}-OPEN" for f in ("alice", "bruno", "dario")}
#: Sizing of the sample followers for a signal of 2: alice 1x, bruno 2x capped at 3,
#: dario 0.5x.
QUANTITY = {"alice": 2, "bruno": 3, "dario": 1}
ORDER = ["CLAIMED", "PLACED", "MODIFIED", "PARTIAL", "FILLED", "CANCELLED", "SKIPPED"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    data = tmp_path_factory.mktemp("demo") / "demo"
    result = CliRunner().invoke(app, ["demo", "--date", DAY, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return result.output, data


def test_the_morning_runs_from_the_sheet_to_orders_at_ib(demo: tuple[str, Path]) -> None:
    out, data = demo
    assert "WAITING" in out and "CLAIMED" in out  # half-typed row, then completed at 09:29
    assert "disabled" in out and "state is SUSPENDED" in out
    assert "IB Gateway simulators gw-main" in out and "gw-second" in out

    store = SqliteStore(data / "store.db")
    docs = {f: store.get(C.EXECUTIONS, ref) for f, ref in REFS.items()}
    for follower, doc in docs.items():
        assert doc is not None, f"{follower}: no execution recorded"
        assert doc["quantity"] == QUANTITY[follower]
        assert doc["outcome"] in {"FILLED", "PARTIAL_FILL", "LIMIT_REACHED"}
        # the agent waited for the open: nothing was placed before 09:30 New York
        assert doc["placed_at"] >= f"{DAY}T14:30:00"
        row = next(line for line in out.splitlines() if line.startswith(f"│ {follower} "))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[3:7] == [
            doc["outcome"],
            f"{doc['filled']}/{doc['quantity']}",
            f"${Decimal(doc['avg_fill_credit']).quantize(CENT, ROUND_HALF_UP)}"
            if doc["filled"]
            else "-",
            str(doc["ladder_steps"]),
        ]
    recorded = {d.data["follower_id"] for d in store.query(C.EXECUTIONS)}
    assert recorded == set(REFS)  # disabled carla and suspended elena sent nothing

    filled = sum(d["filled"] for d in docs.values() if d)
    premium = sum(
        Decimal(d["avg_fill_credit"]) * d["filled"] * 100
        for d in docs.values()
        if d and d["filled"]
    )
    fees = sum(Decimal(d["commission"]) for d in docs.values() if d)
    assert f"{filled} of 6 contracts filled" in out
    assert f"credit ${premium:,.2f}" in out and f"commissions ${fees:,.2f}" in out
    # the ladder runs on the simulated clock, and every fill is charged per leg
    assert fees == Decimal("0.65") * 2 * filled


def test_orders_and_trace_tell_the_same_story(
    demo: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = demo
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(data))
    runner = CliRunner()

    orders = runner.invoke(app, ["orders", "--date", DAY])
    assert orders.exit_code == 0, orders.output
    store = SqliteStore(data / "store.db")
    for follower, ref in REFS.items():
        doc = store.get(C.EXECUTIONS, ref)
        assert doc is not None
        assert ref in orders.output
        trace = runner.invoke(app, ["trace", ref])
        assert trace.exit_code == 0, trace.output
        events = [
            word
            for line in trace.output.splitlines()
            for word in line.split("│")[2:3]
            if word.strip() in ORDER
        ]
        names = [e.strip() for e in events]
        assert names[0] == "CLAIMED" and names[1] == "PLACED", (follower, names)
        assert names[-1] in {"FILLED", "CANCELLED"}, (follower, names)
        assert names.count("MODIFIED") == doc["ladder_steps"], (follower, names)
        assert f"outcome {doc['outcome']}" in trace.output

    unknown = runner.invoke(app, ["trace", "SP-20261124-QQQ-nobody-OPEN"])
    assert unknown.exit_code == 2
    assert "no execution recorded" in unknown.output and "spreadpilot orders" in unknown.output


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a demo folder" in result.output
    assert (tmp_path / "precious.txt").exists()
