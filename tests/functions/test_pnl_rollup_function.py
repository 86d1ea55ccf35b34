"""The pnl_rollup function in-process through the Functions Framework with real
CloudEvents: the 16:30 tick writes the day's rows (and records its run), a
holiday tick is a SKIPPED run, the monthly tick rolls up the previous month,
a redelivered tick leaves the same rows, and a malformed tick is dead-lettered
naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from spreadpilot.ports.store import Filter
from tests.pnl.book import Book, put
from tests.support.cloudevents import pubsub_body, structured
from tests.support.embedded import REPO, Platform, make_platform


@pytest.fixture
def p(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    p = make_platform(tmp_path)
    use_container(p.c)
    yield p
    use_container(None)
    settings.cache_clear()


def tick(body: dict[str, Any], event_id: str) -> int:
    app = functions_framework.create_app(
        target="pnl_rollup",
        source=str(REPO / "functions" / "pnl_rollup" / "main.py"),
        signature_type="cloudevent",
    )
    body = pubsub_body(body, message_id=event_id)
    resp = app.test_client().post("/", **structured(body, event_id=event_id, topic="pnl-ticks"))
    return resp.status_code


def runs(p: Platform, job: str) -> list[dict[str, Any]]:
    return [s.data for s in p.c.store.query(C.JOB_RUNS, [Filter("job", "==", job)])]


def test_the_daily_tick_writes_the_days_rows_once(p: Platform) -> None:
    day = date(2026, 11, 24)
    book = Book(p.c.store)  # alice's account in the sample followers
    book.spread(day, put(day, "488"), put(day, "486"), 2, "0.75")
    book.marks(day, "490.00")
    p.at("16:30", day)
    assert tick({"job": "daily-pnl-rollup"}, "t1") == 200
    row = p.c.store.get(C.PNL_DAILY, "alice_2026-11-24")
    assert row is not None and Decimal(row["pnl_cents"]) == Decimal("147.40")
    before = {s.id: s.data for s in p.c.store.query(C.PNL_DAILY)}
    assert tick({"job": "daily-pnl-rollup"}, "t1") == 200  # redelivered
    assert {s.id: s.data for s in p.c.store.query(C.PNL_DAILY)} == before
    assert [r["status"] for r in runs(p, "daily-pnl-rollup")] == ["OK"]  # same second, one id


def test_a_holiday_tick_is_a_skipped_run(p: Platform) -> None:
    p.at("16:30", date(2026, 11, 26))  # Thanksgiving
    assert tick({"job": "daily-pnl-rollup"}, "t2") == 200
    (run,) = runs(p, "daily-pnl-rollup")
    assert run["status"] == "SKIPPED" and "not a trading day" in run["detail"]
    assert p.c.store.query(C.PNL_DAILY) == []


def test_the_monthly_tick_rolls_up_the_previous_month(p: Platform) -> None:
    day = date(2026, 11, 25)
    book = Book(p.c.store)
    book.spread(day, put(day, "488"), put(day, "486"), 2, "0.75")
    book.marks(day, "490.00")
    p.at("00:10", date(2026, 12, 1))
    assert tick({"job": "monthly-pnl-rollup"}, "t3") == 200
    month = p.c.store.get(C.PNL_MONTHLY, "alice_2026-11")
    assert month is not None
    assert (month["pnl"], month["commission_usd"], month["complete"]) == ("147.40", "29.48", True)
    statement = p.c.store.get(C.STATEMENTS, "alice_2026-11")
    assert statement is not None and statement["status"] == "UNSENT"
    assert runs(p, "monthly-pnl-rollup")[0]["status"] == "OK"


def test_a_malformed_tick_is_dead_lettered_naming_the_field(p: Platform) -> None:
    p.at("16:30", date(2026, 11, 24))
    assert tick({"job": "daily-pnl-rollup", "month": "2026-13"}, "t4") == 200
    (dead,) = [s.data for s in p.c.store.query(C.DEAD_LETTERS)]
    assert "field 'month'" in dead["reason"] and "daily-pnl-rollup" in dead["reason"]
    assert p.c.store.query(C.PNL_DAILY) == []
