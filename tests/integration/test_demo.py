"""`make demo`'s command end to end: sheet -> poller -> dispatcher -> gateway agent ->
IB Gateway simulators -> recorder, then the operator's views of the same orders."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

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


def _row(out: str, follower: str, order: str) -> list[str]:
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) > 3 and cells[0] == follower and cells[2] == order:
            return cells
    raise AssertionError(f"no {order} row for {follower} in the demo's output")


def _alerts(store: SqliteStore, type_: str) -> list[dict[str, Any]]:
    return [a.data for a in store.query(C.ALERTS) if a.data["type"] == type_]


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
        cells = _row(out, follower, "OPEN")
        assert cells[3:7] == [
            doc["outcome"],
            f"{doc['filled']}/{doc['quantity']}",
            f"${Decimal(doc['avg_fill_credit']).quantize(CENT, ROUND_HALF_UP)}"
            if doc["filled"]
            else "-",
            str(doc["ladder_steps"]),
        ]
    recorded = {d.data["follower_id"] for d in store.query(C.EXECUTIONS)}
    assert recorded == set(REFS)  # disabled carla and suspended elena sent nothing at all

    opened = sum(d["filled"] for d in docs.values() if d)
    premium = sum(
        Decimal(d["avg_fill_credit"]) * d["filled"] * 100
        for d in docs.values()
        if d and d["filled"]
    )
    assert f"{opened} of 6 contracts opened" in out
    assert f"credit ${premium:,.2f}" in out
    fees = sum(
        Decimal(d.data["commission"])
        for d in store.query(C.EXECUTIONS)
        if d.data["signal_id"] == f"{DAY}_QQQ"  # the day's orders: opens and closes
    )
    assert f"commissions ${fees:,.2f}" in out
    assert {a.data["type"] for a in store.query(C.ALERTS)}.isdisjoint(
        {"JOB_MISSED", "MESSAGE_DEAD_LETTERED", "NOT_READY", "COMPONENT_DOWN"}
    )  # nothing broke: every job ran, every message parsed


def test_the_day_with_incidents(demo: tuple[str, Path]) -> None:
    # gateways.yaml: QQQ slides to 594 (the short 601P deep in the money), gw-second is
    # down from 12:20 until after the close, QQQ closes at 599.
    out, data = demo
    store = SqliteStore(data / "store.db")

    # gw-main's spreads: SAFE -> RISK -> CRITICAL, closed as one combo each, with the reason
    for follower in ("alice", "bruno"):
        close = store.get(C.EXECUTIONS, f"SP-20261124-QQQ-{follower}-CLOSE")
        assert close is not None and close["outcome"] == "FILLED"
        assert close["filled"] == QUANTITY[follower]
        assert _row(out, follower, "CLOSE")[3] == "FILLED"
        bands = [a["message"] for a in _alerts(store, "TIME_VALUE_RISK")]
        assert any(m.startswith(f"{follower}:") and "SAFE -> RISK" in m for m in bands)
        (critical,) = [
            a for a in _alerts(store, "TIME_VALUE_CRITICAL") if a["follower_id"] == follower
        ]
        assert "RISK -> CRITICAL" in critical["message"]
        (closed,) = [a for a in _alerts(store, "POSITION_CLOSED") if a["follower_id"] == follower]
        assert "closed as one combo" in closed["message"] and "in the money" in closed["message"]

    # gw-second: down (one alert), back once after the close
    (down,) = _alerts(store, "GATEWAY_UNREACHABLE")
    assert "gw-second" in down["message"]
    (back,) = _alerts(store, "COMPONENT_RECOVERED")
    assert "gw-second" in back["message"]
    assert down["time"] < back["time"] and back["time"] >= f"{DAY}T21:00"  # after 16:00

    # dario's spread could be neither watched nor closed: assigned overnight, found
    # before the next open and flattened at it, once
    assert store.get(C.EXECUTIONS, "SP-20261124-QQQ-dario-CLOSE") is None
    (assigned,) = _alerts(store, "ASSIGNMENT_DETECTED")
    assert assigned["follower_id"] == "dario"
    assert assigned["details"]["account"] == "U2000001" and assigned["details"]["shares"] == 100
    flatten = store.get(C.EXECUTIONS, "SP-20261125-QQQ-dario-FLATTEN")
    assert flatten is not None and flatten["outcome"] == "FILLED" and flatten["filled"] == 100
    assert "Next morning (2026-11-25) pre-open check at 08:30" in out

    # the outbox holds the delivered alerts: Telegram for WARNING and CRITICAL, email
    # for CRITICAL (the default routing), one file per delivery
    alerts = [a.data for a in store.query(C.ALERTS)]
    telegram = sorted((data / "outbox" / "telegram").glob("*.json"))
    email = sorted((data / "outbox" / "email").glob("*.eml"))
    assert len(telegram) == sum(a["severity"] in {"WARNING", "CRITICAL"} for a in alerts)
    assert len(email) == sum(a["severity"] == "CRITICAL" for a in alerts)
    assert any("ASSIGNMENT_DETECTED" in f.read_text() for f in email)
    deliveries = [d.data["status"] for d in store.query(C.ALERT_DELIVERIES)]
    assert deliveries and set(deliveries) == {"SENT"}
    health = {d.id: d.data["status"] for d in store.query(C.HEALTH)}
    assert health == {"gateway-agent": "ok", "health-ping": "ok"}


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


def test_the_days_pnl_and_the_months_statements(demo: tuple[str, Path]) -> None:
    """The P&L rows against the raw fills the agent read from IB, computed plainly:
    alice and bruno ended the day flat, so their P&L is the cash of their fills;
    dario's short put was assigned (observed at IB the next morning): 100 shares
    bought at the strike, worth the close."""
    out, data = demo
    store = SqliteStore(data / "store.db")
    try:
        for follower in ("alice", "bruno", "dario"):
            row = store.get(C.PNL_DAILY, f"{follower}_{DAY}")
            assert row is not None, follower
            (fills_doc,) = [
                s.data
                for s in store.query(C.FILLS)
                if s.data["follower_id"] == follower and s.data["date"] == DAY
            ]
            cash = sum(
                (
                    (1 if f["side"] == "SLD" else -1)
                    * Decimal(f["price"])
                    * f["quantity"]
                    * f["multiplier"]
                    - Decimal(f["commission"] or 0)
                    for f in fills_doc["fills"]
                ),
                Decimal(0),
            )
            assert fills_doc["fills"] and all(f["commission"] for f in fills_doc["fills"])
            if follower == "dario":
                settlement = store.get(C.SETTLEMENTS, f"U2000001_{DAY}")
                assert settlement is not None and settlement["reconciled"] is True
                marks = store.get(C.MARKS, f"U2000001_{DAY}")
                assert marks is not None and marks["session_over"] is True
                (assigned,) = [leg for leg in settlement["legs"] if leg["outcome"] == "ASSIGNED"]
                close = Decimal(marks["underlying"]["QQQ"])
                cash += 100 * (close - Decimal(assigned["strike"]))  # shares at strike, marked
                assert row["holdings"][0]["quantity"] == 100 and row["provisional"] == []
            else:
                assert row["holdings"] == []
            assert Decimal(row["pnl_cents"]) == cash.quantize(CENT, ROUND_HALF_UP), follower
            pnl = Decimal(row["pnl_cents"])
            shown = f"-${-pnl:,}" if pnl < 0 else f"${pnl:,}"
            assert any(
                cells[:2] == [follower, row["account"]] and cells[4] == shown
                for cells in (
                    [c.strip() for c in line.strip("│").split("│")] for line in out.splitlines()
                )
            ), f"the demo prints {follower}'s P&L {shown}"
        # the month to date: a statement PDF per enabled follower, never mailed
        pdfs = sorted(p.name for p in (data / "outbox" / "statements").glob("*.pdf"))
        assert pdfs == [f"statement-2026-11-{f}.pdf" for f in ("alice", "bruno", "dario", "elena")]
        assert all(s.data["complete"] is False for s in store.query(C.STATEMENTS))
        assert "Commissions 2026-11 (month to date)" in out
    finally:
        store.close()
