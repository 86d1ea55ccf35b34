"""P&L, commissions and payments through the API, on rows the rollup itself wrote."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.services.pnl import PnlRollup
from tests.pnl.book import Book, put
from tests.support.console import Console, make_console
from tests.support.embedded import DAY

OCTOBER = date(2026, 10, 15)


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path)


def rollup(console: Console) -> PnlRollup:
    c = console.c
    return PnlRollup(c.store, c.clock, c.calendar, c.settings)


def trade(console: Console, day: date, *, loss: bool = False) -> None:
    """alice: Bull Put 488/486 x2 for 0.75, expired worthless (147.40 after fees).
    bruno (loss=True): the same, bought back at 1.75 at 14:00."""
    alice = Book(console.c.store, "U1000001", "alice")  # type: ignore[arg-type]
    alice.spread(day, put(day, "488"), put(day, "486"), 2, "0.75")
    alice.marks(day, "490.00")
    bruno = Book(console.c.store, "U1000002", "bruno")  # type: ignore[arg-type]
    bruno.spread(day, put(day, "488"), put(day, "486"), 2, "0.75")
    if loss:
        bruno.fill(day, "14:00", put(day, "488"), 2, "2.00")
        bruno.fill(day, "14:00", put(day, "486"), -2, "0.25")
    bruno.marks(day, "490.00")


def october(console: Console) -> None:
    """October rolled up as the 00:10 job on the 1st does (here from the raw fills)."""
    trade(console, OCTOBER, loss=True)
    rollup(console).month_job(2026, 10, full=True)


def audit(console: Console, action: str) -> list[dict[str, Any]]:
    rows = [s.data for s in console.c.store.query(C.AUDIT) if s.data["action"] == action]
    return sorted(rows, key=lambda d: d["at"])


# --- daily -------------------------------------------------------------------------------


def test_daily_rows_and_totals(console) -> None:
    trade(console, DAY)
    rollup(console).days(DAY, DAY)
    body = console.get("/pnl/daily").json
    rows = {r["follower_id"]: r for r in body["rows"]}
    assert set(rows) == {"alice", "bruno"}
    alice = rows["alice"]
    assert alice["pnl_cents"] == "147.40" and alice["realised"] == "147.40"
    assert alice["commissions"] == "2.60" and alice["trades"] == 4  # 2 fills, 2 expiries
    assert alice["account"] == "U1000001" and alice["holdings"] == []
    assert len(alice["provisional"]) == 2  # expiries not yet observed at IB
    t = body["totals"]
    assert t == {
        "followers": 2,
        "realised": "294.80",
        "unrealised": "0.00",
        "pnl": "294.80",
        "commissions": "5.20",
        "provisional": 2,
    }
    assert body["note"] is None and body["date"] == DAY.isoformat()


def test_daily_rows_of_one_follower_and_of_an_empty_day(console) -> None:
    trade(console, DAY)
    rollup(console).days(DAY, DAY)
    one = console.get("/pnl/daily?follower=bruno").json
    assert [r["follower_id"] for r in one["rows"]] == ["bruno"]
    assert one["totals"]["pnl"] == "147.40"
    empty = console.get("/pnl/daily?date=2026-11-23").json
    assert empty["rows"] == [] and "16:30 ET" in empty["note"]
    assert empty["totals"]["pnl"] == "0.00"


# --- monthly and commissions -----------------------------------------------------------


def test_monthly_rows_with_commission_and_billing_state(console) -> None:
    october(console)
    body = console.get("/pnl/monthly?month=2026-10").json
    rows = {r["follower_id"]: r for r in body["rows"]}
    alice, bruno = rows["alice"], rows["bruno"]
    assert alice["pnl"] == "147.40" and alice["commission_rate"] == "0.20"
    assert alice["commission_billed"] == "29.48" and alice["is_payable"] is True
    assert alice["complete"] is True and alice["paid"] is False
    assert alice["statement"]["status"] == "UNSENT"
    assert alice["statement"]["amount_due"] == "29.48"
    # bruno: 150 credit - 350 buyback - 8 x 0.65 fees = -205.20, nothing due
    assert bruno["pnl"] == "-205.20" and bruno["is_payable"] is False
    assert "carla" not in rows  # disabled and never traded: no row
    t = body["totals"]
    assert t["payable"] == 1 and t["paid"] == 0 and t["unpaid_due"] == {"USD": "29.48"}
    one = console.get("/pnl/monthly?month=2026-10&follower=alice").json
    assert [r["follower_id"] for r in one["rows"]] == ["alice"]


def test_monthly_defaults_to_this_month(console) -> None:
    body = console.get("/pnl/monthly").json
    assert body["month"] == "2026-11" and body["rows"] == [] and "monthly rollup" in body["note"]


def test_commissions_filters(console) -> None:
    october(console)
    every = console.get("/commissions").json["rows"]
    assert {r["follower_id"] for r in every} >= {"alice", "bruno"}
    unpaid = console.get("/commissions?month=2026-10&unpaid=true").json
    assert [r["follower_id"] for r in unpaid["rows"]] == ["alice"]
    assert unpaid["unpaid_due"] == {"USD": "29.48"}
    payable = console.get("/commissions?payable=true").json["rows"]
    assert [r["follower_id"] for r in payable] == ["alice"]
    assert console.get("/commissions?month=2026-09").json == {"rows": [], "unpaid_due": {}}


# --- mark paid ---------------------------------------------------------------------------

PAID = "/commissions/alice/2026-10/paid"


def test_mark_paid_is_idempotent_per_reference_and_audited(console) -> None:
    october(console)
    r = console.call("POST", PAID, json={"reference": "TRX-2026-11-001", "paid_on": "2026-11-20"})
    assert r.status_code == 200, r.json
    assert r.json["recorded"] is True and r.json["paid"] is True
    assert r.json["paid_reference"] == "TRX-2026-11-001" and r.json["paid_on"] == "2026-11-20"
    paid_at = r.json["paid_at"]
    again = console.call("POST", PAID, json={"reference": " TRX-2026-11-001 "})
    assert again.status_code == 200 and again.json["recorded"] is False
    assert again.json["paid_at"] == paid_at and again.json["paid_on"] == "2026-11-20"
    unpaid = console.get("/commissions?unpaid=true").json
    assert unpaid == {"rows": [], "unpaid_due": {}}
    rows = audit(console, "commission.mark_paid")
    # the same simulated instant: compared as a set, not in order
    assert sorted((d["outcome"], d["details"]["recorded"]) for d in rows) == [
        ("ok", False),
        ("ok", True),
    ]
    assert {d["resource"] for d in rows} == {PAID}
    assert {d["details"]["reference"].strip() for d in rows} == {"TRX-2026-11-001"}


def test_a_different_reference_for_a_paid_month_is_a_409_naming_the_first(console) -> None:
    october(console)
    assert console.call("POST", PAID, json={"reference": "TRX-1"}).status_code == 200
    r = console.call("POST", PAID, json={"reference": "TRX-2"})
    assert r.status_code == 409
    assert "'TRX-1'" in r.json["error"]["message"] and "already paid" in r.json["error"]["message"]
    row = console.c.store.get(C.PNL_MONTHLY, "alice_2026-10")
    assert row["paid_reference"] == "TRX-1" and row["paid_on"] == DAY.isoformat()
    [refused] = [d for d in audit(console, "commission.mark_paid") if d["outcome"] == "refused"]
    assert "TRX-1" in refused["details"]["error"]


def test_mark_paid_of_a_month_with_nothing_due_or_not_over_is_a_409(console) -> None:
    october(console)
    r = console.call("POST", "/commissions/bruno/2026-10/paid", json={"reference": "X-1"})
    assert r.status_code == 409 and "owes no commission" in r.json["error"]["message"]
    trade(console, DAY)
    run = rollup(console)
    run.days(DAY, DAY)
    run.month(2026, 11)
    r = console.call("POST", "/commissions/alice/2026-11/paid", json={"reference": "X-2"})
    assert r.status_code == 409 and "not over yet" in r.json["error"]["message"]


def test_mark_paid_of_an_unknown_row_is_a_404(console) -> None:
    october(console)
    r = console.call("POST", "/commissions/zoe/2026-10/paid", json={"reference": "X-1"})
    assert r.status_code == 404 and "zoe 2026-10" in r.json["error"]["message"]
    r = console.call("POST", "/commissions/alice/2026-09/paid", json={"reference": "X-1"})
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/commissions/alice/2026-13/paid", {"reference": "X"}, "month"),
        ("/commissions/alice/october/paid", {"reference": "X"}, "month"),
        (PAID, {"reference": ""}, "reference"),
        (PAID, {"reference": "   "}, "reference"),
        (PAID, {"reference": "x" * 101}, "reference"),
        (PAID, {}, "reference"),
        (PAID, {"reference": "X", "paid_on": "2026-11-31"}, "paid_on"),
        (PAID, {"reference": "X", "paid_on": "2026-12-01"}, "paid_on"),  # the future
        (PAID, {"reference": "X", "amount": "29.48"}, "amount"),
    ],
)
def test_mark_paid_validation_names_the_field(console, path: str, body: Any, field: str) -> None:
    october(console)
    r = console.call("POST", path, json=body)
    assert r.status_code == 422, r.json
    assert r.json["error"]["fields"][0]["field"] == field
    assert console.c.store.get(C.PNL_MONTHLY, "alice_2026-10")["paid"] is False
    [row] = audit(console, "commission.mark_paid")
    assert row["outcome"] == "refused"


def test_mark_paid_needs_a_json_body(console) -> None:
    r = console.client.post("/api/v1" + PAID, headers=console.headers())
    assert r.status_code == 400 and "JSON body" in r.json["error"]["message"]


# --- validation and auth ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/pnl/daily?date=2026-02-30", "date"),
        ("/pnl/daily?follower=", "follower"),
        ("/pnl/monthly?month=2026-13", "month"),
        ("/pnl/monthly?month=2026", "month"),
        ("/commissions?month=13-2026", "month"),
        ("/commissions?payable=maybe", "payable"),
        ("/commissions?unpaid=2", "unpaid"),
    ],
)
def test_a_bad_query_value_is_a_422_naming_the_field(console, path: str, field: str) -> None:
    r = console.get(path)
    assert r.status_code == 422, r.json
    [err] = r.json["error"]["fields"]
    assert err["field"] == field
    if field == "month":
        assert "YYYY-MM" in err["message"]


@pytest.mark.parametrize(
    "path", ["/pnl/daily?day=2026-11-24", "/pnl/monthly?date=2026-11", "/commissions?all=1"]
)
def test_an_unknown_query_parameter_is_a_400(console, path: str) -> None:
    r = console.get(path)
    assert r.status_code == 400 and "unknown query parameter" in r.json["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/pnl/daily"),
        ("GET", "/pnl/monthly"),
        ("GET", "/commissions"),
        ("POST", PAID),
    ],
)
def test_every_money_endpoint_needs_a_token(console, method: str, path: str) -> None:
    r = console.client.open("/api/v1" + path, method=method, json={"reference": "X"})
    assert r.status_code == 401
    assert audit(console, "commission.mark_paid") == []
