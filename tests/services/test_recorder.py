"""The recorder folds execution reports into one document per orderRef, idempotently."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.execution import (
    ExecutionEvent,
    ExecutionReport,
    LegFillReport,
    report_id,
)
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock
from spreadpilot.ports.store import EXPIRE_AT
from spreadpilot.services.recorder import Recorder

REF = "SP-20261124-QQQ-alice-OPEN"
T0 = datetime(2026, 11, 24, 14, 30, 1, tzinfo=UTC)


def report(event: ExecutionEvent, seq: int, seconds: float, **kw: object) -> ExecutionReport:
    base: dict[str, object] = {
        "report_id": report_id(REF, event, seq),
        "order_ref": REF,
        "follower_id": "alice",
        "account": "U1000001",
        "gateway_id": "gw-main",
        "signal_id": "2026-11-24_QQQ",
        "event": event,
        "at": T0 + timedelta(seconds=seconds),
        "quantity": 2,
        "filled": 0,
    }
    return ExecutionReport.model_validate({**base, **kw})


def leg(exec_id: str, con_id: int, side: str, price: str, seconds: float) -> LegFillReport:
    return LegFillReport(
        exec_id=exec_id,
        con_id=con_id,
        side=side,
        quantity=2,
        price=Decimal(price),
        commission=Decimal("1.30"),
        time=T0 + timedelta(seconds=seconds),
    )


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(SqliteStore(tmp_path / "s.db"), SimClock(T0))


def ladder(recorder: Recorder) -> list[ExecutionReport]:
    fills = (leg("e1", 11, "SLD", "1.05", 11), leg("e2", 12, "BOT", "0.30", 11))
    return [
        report(ExecutionEvent.PLACED, 0, 0, credit=Decimal("0.78"), ladder_step=0, perm_id=7),
        report(ExecutionEvent.MODIFIED, 1, 5, credit=Decimal("0.77"), ladder_step=1),
        report(ExecutionEvent.MODIFIED, 2, 10, credit=Decimal("0.76"), ladder_step=2),
        report(
            ExecutionEvent.FILLED,
            3,
            11,
            filled=2,
            credit=Decimal("0.76"),
            avg_fill_credit=Decimal("0.75"),
            fills=fills,
            ladder_step=2,
        ),
    ]


def test_one_document_per_order_with_the_ladder_trace(recorder: Recorder) -> None:
    for r in ladder(recorder):
        assert recorder.record(r)
    doc = recorder.store.get(C.EXECUTIONS, REF)
    assert doc is not None
    assert doc["state"] == "FILLED" and doc["filled"] == 2
    assert doc["avg_fill_credit"] == "0.75" and doc["ladder_steps"] == 2
    assert [e["credit"] for e in doc["events"]] == ["0.78", "0.77", "0.76", "0.76"]
    assert doc["commission"] == "2.60" and len(doc["fills"]) == 2
    assert doc["placed_at"] < doc["filled_at"] and doc["perm_id"] == 7


def test_the_document_expires_365_days_after_the_first_report(recorder: Recorder) -> None:
    """Raw trade logs are kept 365 days (domain.md section 6); EXECUTIONS is a TTL
    collection, so `expire_at` must be a timestamp, fixed by the earliest report."""
    reports = ladder(recorder)
    for r in reversed(reports):  # the first report arrives last
        recorder.record(r)
    doc = recorder.store.get(C.EXECUTIONS, REF)
    assert doc is not None
    assert C.EXECUTIONS in C.EXPIRES
    assert doc[EXPIRE_AT] == T0 + timedelta(days=365)
    assert isinstance(doc[EXPIRE_AT], datetime)


def test_redelivered_and_out_of_order_reports_change_nothing(recorder: Recorder) -> None:
    reports = ladder(recorder)
    for r in reversed(reports):  # arrives backwards
        recorder.record(r)
    once = recorder.store.get(C.EXECUTIONS, REF)
    for r in reports * 3:  # every report redelivered three times
        assert not recorder.record(r)
    assert recorder.store.get(C.EXECUTIONS, REF) == once
    assert once is not None and once["state"] == "FILLED" and len(once["events"]) == 4


def test_the_same_execution_reported_twice_counts_once(recorder: Recorder) -> None:
    fill = leg("e1", 11, "SLD", "1.05", 3)
    recorder.record(report(ExecutionEvent.PARTIAL, 0, 3, filled=1, fills=(fill,)))
    recorder.record(
        report(
            ExecutionEvent.CANCELLED,
            1,
            9,
            filled=1,
            fills=(fill,),
            reason="ladder exhausted: remainder cancelled",
        )
    )
    doc = recorder.store.get(C.EXECUTIONS, REF)
    assert doc is not None and len(doc["fills"]) == 1 and doc["commission"] == "1.30"
    assert doc["state"] == "CANCELLED" and doc["filled"] == 1
    assert doc["reason"] == "ladder exhausted: remainder cancelled"


def test_a_rejection_keeps_ibs_code_and_reason(recorder: Recorder) -> None:
    recorder.record(
        report(
            ExecutionEvent.REJECTED,
            0,
            0,
            ib_code=201,
            reason="201: Order rejected - reason:YOUR ORDER IS NOT ACCEPTED",
        )
    )
    doc = recorder.store.get(C.EXECUTIONS, REF)
    assert doc is not None and doc["state"] == "REJECTED" and doc["ib_code"] == 201
