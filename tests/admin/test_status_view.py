"""The status read model (services/console.py) against the store it reads: one demo
day (`make demo`'s machinery, run once for the module) and a scripted morning, each
follower's row checked against the executions, risk_status and pnl_daily documents;
GET /api/v1/status serves the same view; the reads do not grow with the followers."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time as clock_time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console as RichConsole

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import ny_datetime
from spreadpilot.domain.execution import ExecutionEvent, ExecutionReport, report_id
from spreadpilot.domain.money import cents
from spreadpilot.domain.orders import Purpose, order_ref
from spreadpilot.domain.signal import Signal
from spreadpilot.local.demo import run_demo
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter, Store
from spreadpilot.services.console import MAX_ALERTS, status_view
from spreadpilot.services.recorder import Recorder
from tests.support.console import make_console, secrets_dir
from tests.support.embedded import DAY, Platform, bull_put_row, make_platform

NEXT = date(2026, 11, 25)  # the demo's next morning (it ends at 09:35 ET)
SID = f"{DAY.isoformat()}_QQQ"
END = ny_datetime(NEXT, time(9, 35))


# --- the demo day ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make demo` for DAY (~16 s, once): its logging set-up is undone afterwards."""
    data = tmp_path_factory.mktemp("status") / "demo"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    try:
        run_demo(RichConsole(file=io.StringIO(), width=160), data, DAY)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    return data


def open_day(data: Path, at: datetime = END, **overrides: Any) -> Container:
    settings = load_settings(mode="embedded", data_dir=data, **overrides)
    return Container(settings, clock=SimClock(at))


def copy_day(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo's store (SQLite's backup: the WAL comes along)."""
    target = tmp_path / "copy"
    target.mkdir()
    src = sqlite3.connect(demo_dir / "store.db")
    dst = sqlite3.connect(target / "store.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> Container:
    return open_day(demo_dir)


@pytest.fixture(scope="module")
def view(demo: Container) -> dict[str, Any]:
    return status_view(demo)


def rows(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in view["followers"]}


def executions(store: Store, sid: str = SID) -> dict[str, dict[str, dict[str, Any]]]:
    """follower -> purpose -> execution document."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for snap in store.query(C.EXECUTIONS, [Filter("signal_id", "==", sid)]):
        purpose = snap.id.rsplit("-", 1)[-1]
        out.setdefault(snap.data["follower_id"], {})[purpose] = snap.data
    return out


def net_price(doc: dict[str, Any]) -> Decimal:
    """Per share: + what the sold legs brought, - what the bought legs cost."""
    total = sum(
        Decimal(f["price"]) * f["quantity"] * (1 if f["side"] == "SLD" else -1)
        for f in doc["fills"]
    )
    return Decimal(total) / doc["filled"]


# --- the demo day: the view against the store --------------------------------------


def test_the_default_day_is_the_latest_with_a_claimed_signal(demo, view) -> None:
    assert view["today"] == NEXT.isoformat() and view["day"] == DAY.isoformat()
    assert "no signal claimed today" in view["day_note"]
    claimed = demo.store.get(C.SIGNALS, SID)
    signal = view["signal"]
    assert signal["claimed"] and signal["id"] == SID
    assert signal["description"] == Signal.model_validate(claimed["signal"]).describe()
    assert signal["source"] == "sheet" and signal["sheet_row"] == claimed["sheet_row"]
    assert signal["claimed_at"] == claimed["claimed_at"].isoformat()
    dispatched = demo.store.get(C.DISPATCHES, SID)
    assert signal["dispatch"]["status"] == dispatched["status"]
    assert signal["dispatch"]["followers"] == dict(
        Counter(v["status"] for v in dispatched["followers"].values())
    )
    # today has no signal: the view says how today's poll stands (its latest run)
    polls = [
        s.data
        for s in demo.store.query(C.JOB_RUNS)
        if s.data["job"] == "signal-poll" and s.data.get("trade_date") == NEXT.isoformat()
    ]
    latest = max(polls, key=lambda d: d["ran_at"])
    assert signal["poll"]["status"] == latest["status"]
    assert signal["poll"]["ran_at"] == latest["ran_at"].isoformat()


def test_every_follower_has_one_row_with_its_orders_outcome(demo, view) -> None:
    followers = sorted(s.id for s in demo.store.query(C.FOLLOWERS))
    assert [r["id"] for r in view["followers"]] == followers
    docs = executions(demo.store)
    dispatched = demo.store.get(C.DISPATCHES, SID)["followers"]
    assert set(docs) == {"alice", "bruno", "dario"}
    for fid, row in rows(view).items():
        if fid not in docs:
            assert row["outcome"] == dispatched[fid]["status"] == "SKIPPED"
            assert row["reason"] == dispatched[fid]["reason"]
            assert row["fill_credit"] is None and row["filled"] == 0
            continue
        opening = docs[fid]["OPEN"]
        assert row["outcome"] == opening["outcome"] == "FILLED"
        assert row["outcome_class"] == "ok"
        assert row["order_ref"] == opening["order_ref"]
        assert (row["filled"], row["quantity"]) == (opening["filled"], opening["quantity"])
        assert row["fill_credit"] == opening["avg_fill_credit"]
        assert Decimal(row["fill_credit"]) == net_price(opening)
        closes = {p: d for p, d in docs[fid].items() if p != "OPEN"}
        assert [c["order_ref"] for c in row["closes"]] == [d["order_ref"] for d in closes.values()]
        for shown, doc in zip(row["closes"], closes.values(), strict=True):
            assert shown["outcome"] == doc["outcome"]
            assert Decimal(shown["price"]) == net_price(doc) < 0  # a debit to close
    totals = view["totals"]
    assert totals["filled"] == 3 and totals["skipped"] == 2 and totals["problems"] == 0
    assert totals["contracts_filled"] == sum(d["OPEN"]["filled"] for d in docs.values())


def test_bands_and_time_values_are_the_days_risk_status(demo, view) -> None:
    docs = {
        s.data["follower_id"]: s.data
        for s in demo.store.query(C.RISK_STATUS, [Filter("trade_date", "==", DAY.isoformat())])
    }
    assert docs, "the demo recorded no time-value band"
    for fid, row in rows(view).items():
        doc = docs.get(fid)
        if doc is None:
            assert row["tv_band"] is None and row["time_value"] is None
            continue
        assert row["tv_band"] == doc["band"]
        assert row["time_value"] == doc["time_value"]
        assert row["risk_state"] == doc["state"]
        assert row["risk_checked_at"] == doc["checked_at"].isoformat()
    # closed at CRITICAL by the risk job; dario's spread stayed open (RISK)
    assert rows(view)["alice"]["tv_band"] == "CRITICAL"
    assert rows(view)["alice"]["risk_state"] == "CLOSED"


def test_pnl_today_is_the_rolled_up_row(demo, view) -> None:
    docs = {
        s.data["follower_id"]: s.data
        for s in demo.store.query(C.PNL_DAILY, [Filter("date", "==", DAY.isoformat())])
    }
    assert set(docs) == {"alice", "bruno", "dario"}
    for fid, row in rows(view).items():
        if fid not in docs:
            assert row["pnl"] is None and row["pnl_source"] is None
            continue
        assert row["pnl_source"] == "pnl_daily"
        assert row["pnl"] == f"{cents(Decimal(docs[fid]['pnl']))}"
    total = sum(cents(Decimal(d["pnl"])) for d in docs.values())
    assert view["totals"]["pnl"] == f"{total}" and view["totals"]["pnl_followers"] == 3


def test_before_the_rollup_the_pnl_is_computed_from_fills_and_marks(demo_dir, tmp_path) -> None:
    """The same day without its pnl_daily rows: the rollup's formula over the stored
    fills, marks and settlements gives the very numbers the rollup wrote."""
    data = copy_day(demo_dir, tmp_path)
    c = open_day(data)
    rolled = {}
    for snap in c.store.query(C.PNL_DAILY, [Filter("date", "==", DAY.isoformat())]):
        rolled[snap.data["follower_id"]] = f"{cents(Decimal(snap.data['pnl']))}"
        c.store.delete(C.PNL_DAILY, snap.id)
    live = rows(status_view(c))
    for fid, pnl in rolled.items():
        assert live[fid]["pnl_source"] == "marks", live[fid]
        assert live[fid]["pnl"] == pnl, fid
        assert "not rolled up yet" in live[fid]["pnl_note"]
    assert live["carla"]["pnl"] is None


def test_alerts_are_the_open_ones_newest_first(demo_dir, tmp_path) -> None:
    data = copy_day(demo_dir, tmp_path)
    c = open_day(data)
    for n in range(25):  # more than are shown
        alert = Alert.new(
            AlertType.JOB_MISSED,
            f"job missed #{n}",
            at=END - timedelta(minutes=30 + n),
            dedup_key=f"test-{n}",
            source="test",
        )
        c.store.set(C.ALERTS, alert.id, alert.model_dump(mode="json"))
    every = sorted((s.data for s in c.store.query(C.ALERTS)), key=lambda a: a["time"])
    acknowledged = every[-1]
    c.store.update(C.ALERTS, acknowledged["id"], {"acknowledged_at": END})
    shown = status_view(c)["alerts"]
    expected = [a for a in reversed(every) if a["id"] != acknowledged["id"]][:MAX_ALERTS]
    assert [a["id"] for a in shown] == [a["id"] for a in expected]
    assert len(shown) == MAX_ALERTS
    first = shown[0]
    assert {"severity", "type", "message", "time"} <= set(first)
    assert first["time"] == datetime.fromisoformat(expected[0]["time"]).isoformat()


def test_health_shows_the_agent_its_gateways_and_the_ping(demo_dir) -> None:
    health = status_view(open_day(demo_dir))["health"]
    parts = {h["component"]: h for h in health["components"]}
    assert set(parts) == {"gateway-agent", "gateway gw-main", "gateway gw-second", "health-ping"}
    assert all(h["status"] == "ok" for h in parts.values()) and health["status"] == "ok"
    assert "heartbeat 30 s ago" in parts["gateway-agent"]["detail"]
    # ten minutes on without a heartbeat: the agent is down, its gateways unknown
    later = status_view(open_day(demo_dir, END + timedelta(minutes=10)))["health"]
    parts = {h["component"]: h for h in later["components"]}
    assert parts["gateway-agent"]["status"] == "down" and later["status"] == "down"
    assert parts["gateway gw-main"]["status"] == "stale"
    assert parts["health-ping"]["status"] == "stale"


def test_the_market_today_and_the_next_session(demo) -> None:
    market = status_view(demo)["market"]
    assert market["open_now"] and market["state"] == "open"
    assert market["today"]["day"] == NEXT.isoformat() and not market["today"]["early_close"]
    # Thanksgiving (26th) is closed, Friday closes early
    assert market["next_session"]["day"] == "2026-11-27"
    assert market["next_session"]["early_close"]
    holiday = status_view(
        open_day(demo.settings.data_dir, ny_datetime(date(2026, 11, 26), time(10)))
    )
    assert holiday["market"]["today"] is None and not holiday["market"]["open_now"]
    assert holiday["signal"]["poll"]["status"] == "NO_SESSION"


def test_a_day_asked_for_shows_that_day(demo) -> None:
    view = status_view(demo, NEXT)
    assert view["day"] == NEXT.isoformat() and view["day_note"].startswith("the day asked")
    assert not view["signal"]["claimed"]
    dario = rows(view)["dario"]
    assert dario["outcome"] == "NO SIGNAL"
    [flatten] = dario["closes"]  # the assigned shares, flattened at the open
    assert flatten["purpose"] == Purpose.FLATTEN.value and flatten["outcome"] == "FILLED"


def test_the_view_is_plain_json(view) -> None:
    text = json.dumps(view)  # no Decimal, no datetime left
    assert json.loads(text) == view
    assert set(view) == {
        "generated_at",
        "day",
        "day_note",
        "today",
        "mode",
        "dry_run",
        "market",
        "signal",
        "followers",
        "totals",
        "alerts",
        "health",
    }


# --- a scripted morning: the outcomes the demo does not produce --------------------


def report(
    p: Platform,
    follower: str,
    account: str,
    gateway: str,
    quantity: int,
    event: ExecutionEvent,
    **fields: Any,
) -> None:
    """An agent's report of the follower's opening order, through the recorder."""
    ref = order_ref(DAY, "QQQ", follower, Purpose.OPEN)
    Recorder(p.c.store, p.c.clock).record(
        ExecutionReport(
            report_id=report_id(ref, event, 1),
            order_ref=ref,
            follower_id=follower,
            account=account,
            gateway_id=gateway,
            signal_id=SID,
            event=event,
            at=p.clock.now(),
            quantity=quantity,
            **{"filled": 0, **fields},
        )
    )


def trade_morning(p: Platform) -> None:
    """The sheet's signal claimed and dispatched at 09:31, then the agent's outcomes:
    alice filled at 0.85, bruno skipped for margin, dario rejected by IB."""
    p.write_sheet(bull_put_row())
    p.at("09:31")
    p.c.signal_poller().run()
    p.c.dispatcher().dispatch(SID)
    p.drain("agent-orders")
    p.at("09:32")
    report(
        p,
        "alice",
        "U1000001",
        "gw-main",
        2,
        ExecutionEvent.FILLED,
        filled=2,
        avg_fill_credit=Decimal("0.85"),
        outcome="FILLED",
        ladder_step=2,
    )
    report(
        p,
        "bruno",
        "U1000002",
        "gw-main",
        3,
        ExecutionEvent.SKIPPED,
        outcome="NO_MARGIN",
        reason="AvailableFunds 120.00 below the margin of 600.00",
    )
    report(
        p,
        "dario",
        "U2000001",
        "gw-second",
        1,
        ExecutionEvent.REJECTED,
        outcome="REJECTED",
        reason="IB 201: order rejected",
        ib_code=201,
    )
    p.c.store.set(
        C.RISK_STATUS,
        "alice_20261124-P488-486",
        {
            "follower_id": "alice",
            "trade_date": DAY.isoformat(),
            "band": "RISK",
            "time_value": "0.6200",
            "state": "OPEN",
            "spread": "Bull Put 486/488P",
            "checked_at": p.clock.now(),
        },
    )


@pytest.fixture
def morning(tmp_path: Path) -> Platform:
    p = make_platform(tmp_path)
    trade_morning(p)
    return p


def test_skips_and_rejections_say_why(morning: Platform) -> None:
    view = status_view(morning.c)
    assert view["day"] == DAY.isoformat() and view["day_note"].startswith("today")
    assert view["signal"]["poll"] is None  # today's signal is claimed
    got = {fid: (r["outcome"], r["outcome_class"]) for fid, r in rows(view).items()}
    assert got == {
        "alice": ("FILLED", "ok"),
        "bruno": ("SKIPPED NO_MARGIN", "warn"),
        "carla": ("SKIPPED", "idle"),
        "dario": ("REJECTED", "bad"),
        "elena": ("SKIPPED", "idle"),
    }
    r = rows(view)
    assert "AvailableFunds" in r["bruno"]["reason"] and "201" in r["dario"]["reason"]
    assert r["carla"]["reason"] == "disabled" and r["elena"]["reason"] == "state is SUSPENDED"
    assert r["alice"]["fill_credit"] == "0.85" and r["alice"]["tv_band"] == "RISK"
    assert r["alice"]["pnl"] is None and r["alice"]["pnl_source"] is None  # no marks yet
    assert view["totals"]["problems"] == 1 and view["totals"]["skipped"] == 3


def test_a_dispatched_order_the_agent_has_not_reported_is_sent(tmp_path: Path) -> None:
    p = make_platform(tmp_path)
    p.write_sheet(bull_put_row())
    p.at("09:31")
    p.c.signal_poller().run()
    before = rows(status_view(p.c))
    assert before["alice"]["outcome"] == "DISPATCHING"  # claimed, dispatcher not yet run
    p.c.dispatcher().dispatch(SID)
    after = rows(status_view(p.c))
    assert after["alice"]["outcome"] == "SENT" and after["alice"]["quantity"] == 2
    assert after["alice"]["outcome_class"] == "info"


def test_no_signal_yet_shows_the_poll(tmp_path: Path) -> None:
    p = make_platform(tmp_path, start=ny_datetime(DAY, time(9, 10)))
    early = status_view(p.c)["signal"]["poll"]
    assert early["status"] == "NOT_STARTED" and "starts 09:27 ET" in early["detail"]
    p.write_sheet()  # the header only: no row for today
    p.at("09:28")
    p.c.signal_poller().run()
    view = status_view(p.c)
    assert view["day"] == DAY.isoformat() and "no signal has been claimed" in view["day_note"]
    assert not view["signal"]["claimed"]
    assert view["signal"]["poll"]["status"] == "WAITING"
    assert {r["outcome"] for r in view["followers"]} == {"NO SIGNAL"}


# --- the API -----------------------------------------------------------------------


def test_the_api_serves_the_view(demo_dir, tmp_path) -> None:
    data = copy_day(demo_dir, tmp_path)
    settings = load_settings(mode="embedded", data_dir=data, secrets_dir=secrets_dir(tmp_path))
    clock = SimClock(END)
    c = Container(settings, clock=clock)
    console = make_console(tmp_path, Platform(settings, clock, c))
    r = console.get("/status")
    assert r.status_code == 200
    assert r.json == json.loads(json.dumps(status_view(c)))
    r = console.get("/status", query_string={"date": NEXT.isoformat()})
    assert r.status_code == 200 and r.json["day"] == NEXT.isoformat()
    r = console.get("/status", query_string={"date": "24/11/2026"})
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "date"
    assert console.get("/status", query_string={"day": "2026-11-24"}).status_code == 400
    assert console.client.get("/api/v1/status").status_code == 401


# --- cost --------------------------------------------------------------------------


class CountingStore:
    """The real store, counting its reads (a spy: every call goes through)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: Counter[str] = Counter()

    def get(self, collection: str, doc_id: str) -> Any:
        self.reads[f"get {collection}"] += 1
        return self.store.get(collection, doc_id)

    def query(self, collection: str, *args: Any, **kwargs: Any) -> Any:
        self.reads[f"query {collection}"] += 1
        return self.store.query(collection, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def add_followers(c: Container, n: int) -> None:
    """n more followers, each with an opening order, a band and a P&L row of DAY."""
    batch: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        fid = f"f{i:04d}"
        ref = order_ref(DAY, "QQQ", fid, Purpose.OPEN)
        batch += [
            (
                C.FOLLOWERS,
                fid,
                {
                    "id": fid,
                    "name": f"Follower {i}",
                    "enabled": True,
                    "state": "ACTIVE",
                    "gateway_id": "gw-main",
                    "ib_account": f"U9{i:06d}",
                },
            ),
            (
                C.EXECUTIONS,
                ref,
                {
                    "order_ref": ref,
                    "follower_id": fid,
                    "signal_id": SID,
                    "state": "FILLED",
                    "outcome": "FILLED",
                    "quantity": 1,
                    "filled": 1,
                    "avg_fill_credit": "0.90",
                    "commission": "1.3",
                    "first_report_at": "2026-11-24T14:29:00Z",
                },
            ),
            (
                C.RISK_STATUS,
                f"{fid}_s",
                {
                    "follower_id": fid,
                    "trade_date": DAY.isoformat(),
                    "band": "SAFE",
                    "time_value": "1.2",
                    "state": "OPEN",
                    "checked_at": END,
                },
            ),
            (
                C.PNL_DAILY,
                f"{fid}_{DAY}",
                {"follower_id": fid, "date": DAY.isoformat(), "pnl": "12.5"},
            ),
        ]
    for i in range(0, len(batch), 400):

        def write(
            txn: Any, chunk: list[tuple[str, str, dict[str, Any]]] = batch[i : i + 400]
        ) -> None:
            for collection, doc_id, doc in chunk:
                txn.set(collection, doc_id, doc)

        c.store.transaction(write)


@pytest.fixture
def counted(demo_dir: Path, tmp_path: Path) -> Iterator[tuple[Container, CountingStore]]:
    c = open_day(copy_day(demo_dir, tmp_path))
    spy = CountingStore(c.store)
    c.__dict__["store"] = spy  # Container.store is a cached_property
    yield c, spy


def test_reads_do_not_grow_with_the_followers(counted) -> None:
    c, spy = counted
    status_view(c)
    few = dict(spy.reads)
    assert all(n == 1 for n in few.values()), few  # one read per collection
    add_followers(c, 1000)
    spy.reads.clear()
    started = clock_time.perf_counter()
    view = status_view(c)
    elapsed = clock_time.perf_counter() - started
    assert dict(spy.reads) == few
    assert len(view["followers"]) == 1005 and view["totals"]["filled"] == 1003
    assert elapsed < 2.0, f"{elapsed:.2f} s for 1,000 followers"  # ~40 ms on a laptop
