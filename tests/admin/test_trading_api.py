"""Signal, orders, positions and the market through the API, on data the services wrote."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.domain.calendar import ny_datetime
from spreadpilot.domain.execution import ExecutionEvent, ExecutionReport, LegFillReport, report_id
from spreadpilot.domain.orders import Purpose, order_ref
from spreadpilot.domain.risk import Thresholds, assess, pair_spreads
from spreadpilot.platform import collections as C
from spreadpilot.ports.broker import MarketQuotes, Position, Quote
from spreadpilot.services import pnl_records as R
from spreadpilot.services.marks import MarksService, instrument_of
from spreadpilot.services.recorder import Recorder
from spreadpilot.services.risk import Held, RiskService, option_legs
from tests.support.console import DEMO_PIN, Console, make_console
from tests.support.embedded import DAY, bull_put_row

SID = f"{DAY.isoformat()}_QQQ"
ALICE = order_ref(DAY, "QQQ", "alice", Purpose.OPEN)
BRUNO = order_ref(DAY, "QQQ", "bruno", Purpose.OPEN)


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return make_console(tmp_path)


def claimed(console: Console) -> None:
    """The morning as it runs: the sheet's row claimed by the poller, then dispatched."""
    p = console.platform
    p.write_sheet(bull_put_row())
    console.at("09:31")
    assert p.c.signal_poller().run().status.value == "CLAIMED"
    p.c.dispatcher().dispatch(SID)


def _at(hhmm: str) -> Any:
    from datetime import time

    return ny_datetime(DAY, time.fromisoformat(hhmm))


def report(
    console: Console, ref: str, fid: str, event: ExecutionEvent, hhmm: str, n: int, **kw: Any
) -> None:
    """One execution report as the agent sends it, folded by the recorder."""
    Recorder(console.c.store, console.c.clock).record(
        ExecutionReport(
            report_id=report_id(ref, event, n),
            order_ref=ref,
            follower_id=fid,
            account=kw.pop("account", "U1000001"),
            gateway_id="gw-main",
            signal_id=SID,
            event=event,
            at=_at(hhmm),
            quantity=kw.pop("quantity", 2),
            seq=n,
            **kw,
        )
    )


def executed(console: Console) -> None:
    """alice: placed at 0.80, one ladder step to 0.75, filled 40 s after placing;
    bruno: not sent (mid too low)."""
    report(console, ALICE, "alice", ExecutionEvent.CLAIMED, "09:31:30", 1, filled=0)
    report(console, ALICE, "alice", ExecutionEvent.PLACED, "09:32", 2, filled=0, credit="0.80")
    report(
        console,
        ALICE,
        "alice",
        ExecutionEvent.MODIFIED,
        "09:32:20",
        3,
        filled=0,
        credit="0.75",
        ladder_step=1,
    )
    fills = (
        LegFillReport(
            exec_id="e1",
            con_id=11,
            side="SLD",
            quantity=2,
            price=Decimal("1.25"),
            commission=Decimal("1.30"),
            time=_at("09:32:40"),
        ),
        LegFillReport(
            exec_id="e2",
            con_id=12,
            side="BOT",
            quantity=2,
            price=Decimal("0.50"),
            commission=Decimal("1.30"),
            time=_at("09:32:40"),
        ),
    )
    report(
        console,
        ALICE,
        "alice",
        ExecutionEvent.FILLED,
        "09:32:40",
        4,
        filled=2,
        credit="0.75",
        avg_fill_credit="0.75",
        ladder_step=1,
        fills=fills,
        outcome="FILLED",
    )
    skipped = {"outcome": "MID_TOO_LOW", "reason": "mid 0.20 below the floor 0.30"}
    report(
        console,
        BRUNO,
        "bruno",
        ExecutionEvent.SKIPPED,
        "09:31:30",
        1,
        filled=0,
        quantity=3,
        account="U1000002",
        **skipped,
    )


# --- signal ------------------------------------------------------------------------------


def test_signal_is_null_with_the_poll_state_before_a_claim(console) -> None:
    console.platform.write_sheet()  # the strategist has not written today's row yet
    console.at("09:28")
    assert console.c.signal_poller().run().status.value == "WAITING"
    r = console.get("/signal")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["signal"] is None and body["dispatch"] is None
    assert body["signal_id"] == SID and body["date"] == DAY.isoformat()
    assert body["poll"]["status"] == "WAITING" and "no row for today" in body["poll"]["detail"]


def test_signal_shows_the_sheet_claim_and_each_followers_dispatch(console) -> None:
    claimed(console)
    body = console.get("/signal").json
    s = body["signal"]
    assert s["source"] == "sheet" and s["sheet_row"] == 2 and s["manual_by"] is None
    assert s["strategy"] == "Long" and s["qty_per_leg"] == 2 and s["published"] is True
    assert s["claimed_at"].startswith("2026-11-24T14:31") and "486" in s["spread"]
    d = body["dispatch"]
    assert d["status"] == "DISPATCHED" and d["counts"] == {"INTENT": 3, "SKIPPED": 2}
    by_id = {f["follower_id"]: f for f in d["followers"]}
    assert by_id["alice"]["status"] == "INTENT" and by_id["alice"]["order_ref"] == ALICE
    assert by_id["bruno"]["quantity"] == 3  # 2 x multiplier 2, capped at 3
    assert by_id["carla"] == {
        "follower_id": "carla",
        "status": "SKIPPED",
        "order_ref": None,
        "quantity": 0,
        "reason": "disabled",
    }
    assert body["poll"]["status"] == "CLAIMED" and body["poll"]["runs"] == 1


def test_signal_of_a_manual_claim_names_the_operator(console) -> None:
    console.at("09:45")
    manual = {
        "strategy": "Short",
        "qty_per_leg": 1,
        "sell_call": "500",
        "buy_call": "502",
        "reason": "sheet unreachable",
    }
    assert console.call("POST", "/signals/manual", json=manual, pin=DEMO_PIN).status_code == 201
    s = console.get("/signal").json["signal"]
    assert s["source"] == "manual" and s["manual_by"] == "operator"
    assert s["manual_reason"] == "sheet unreachable" and s["strategy"] == "Short"


def test_signal_of_another_day_and_of_a_holiday(console) -> None:
    claimed(console)
    body = console.get("/signal?date=2026-11-23").json
    assert body["signal"] is None and body["poll"] is None
    assert console.get(f"/signal?date={DAY}").json["signal"]["qty_per_leg"] == 2


# --- orders ------------------------------------------------------------------------------


def test_orders_summarise_each_followers_execution(console) -> None:
    claimed(console)
    executed(console)
    body = console.get("/orders").json
    by_id = {o["follower_id"]: o for o in body["orders"]}
    alice = by_id["alice"]
    assert alice["state"] == "FILLED" and alice["outcome"] == "FILLED"
    assert alice["quantity"] == 2 and alice["filled"] == 2
    assert alice["avg_fill_credit"] == "0.75" and alice["ladder_steps"] == 1
    assert alice["time_to_fill_seconds"] == 40.0
    assert alice["commission"] == "2.60" and alice["cash"] == "150.00"
    assert alice["purpose"] == "OPEN"
    bruno = by_id["bruno"]
    assert bruno["state"] == "SKIPPED" and bruno["outcome"] == "MID_TOO_LOW"
    assert "below the floor" in bruno["reason"]
    # dario was dispatched but the agent has not reported; carla, elena were skipped
    waiting = {f["follower_id"]: f["status"] for f in body["not_reported"]}
    assert waiting == {"dario": "INTENT", "carla": "SKIPPED", "elena": "SKIPPED"}
    t = body["totals"]
    assert t["orders"] == 2 and t["contracts_requested"] == 5 and t["contracts_filled"] == 2
    assert t["premium"] == "150.00" and t["commission"] == "2.60" and t["net"] == "147.40"
    assert t["outcomes"] == {"FILLED": 1, "MID_TOO_LOW": 1}


def test_orders_of_one_follower_and_of_an_unknown_one(console) -> None:
    claimed(console)
    executed(console)
    body = console.get("/orders?follower=alice").json
    assert [o["follower_id"] for o in body["orders"]] == ["alice"] and body["not_reported"] == []
    assert console.get("/orders?follower=dario").json["not_reported"][0]["order_ref"]
    r = console.get("/orders?follower=zoe")
    assert r.status_code == 404 and "zoe" in r.json["error"]["message"]
    empty = console.get("/orders?date=2026-11-23").json
    assert empty["orders"] == [] and empty["totals"]["orders"] == 0


def test_one_orders_trace_report_by_report(console) -> None:
    claimed(console)
    executed(console)
    body = console.get(f"/orders/{ALICE}").json
    assert body["order"]["state"] == "FILLED"
    assert body["intent"]["status"] == "PUBLISHED" and body["intent"]["quantity"] == 2
    events = [(line["event"], line["ladder_step"], line["credit"]) for line in body["trace"]]
    assert events == [
        ("CLAIMED", None, None),
        ("PLACED", None, "0.80"),
        ("MODIFIED", 1, "0.75"),
        ("FILLED", 1, "0.75"),
    ]
    assert "SLD 2 conId 11 @ 1.25 fee 1.30" in body["trace"][-1]["detail"]
    assert [f["exec_id"] for f in body["fills"]] == ["e1", "e2"]


def test_an_order_dispatched_but_not_reported_and_an_unknown_one(console) -> None:
    claimed(console)
    dario = order_ref(DAY, "QQQ", "dario", Purpose.OPEN)
    body = console.get(f"/orders/{dario}").json
    assert body["order"] is None and body["trace"] == [] and body["intent"]["quantity"] == 1
    r = console.get("/orders/SP-20261124-QQQ-zoe-OPEN")
    assert r.status_code == 404 and "GET /api/v1/orders" in r.json["error"]["message"]


# --- positions ---------------------------------------------------------------------------


def _positions(account: str, qty: int, short_cost: str, long_cost: str) -> list[Position]:
    expiry = f"{DAY:%Y%m%d}"
    return [
        Position(account, 11, "OPT", "QQQ", -qty, Decimal(short_cost), expiry, Decimal(488), "P"),
        Position(account, 12, "OPT", "QQQ", qty, Decimal(long_cost), expiry, Decimal(486), "P"),
    ]


def held_spread(console: Console, fid: str, account: str, bid: str, ask: str) -> None:
    """What the agent leaves for a held Bull Put 488/486: the marks run's document
    (positions, unrealised per spread) and the time-value check's band."""
    c = console.c
    positions = _positions(account, 2, "125", "50")
    quotes = MarketQuotes(
        c.clock.now(),
        Quote(Decimal("489.90"), Decimal("490.10")),
        {11: Quote(Decimal(bid), Decimal(ask)), 12: Quote(Decimal("0.05"), Decimal("0.07"))},
    )
    spreads = MarksService._spreads(positions, quotes)
    docs = [
        R.position_doc(
            instrument_of(p.sec_type, p.symbol, p.expiry, p.strike, p.right),
            p.quantity,
            quotes.options[p.con_id].mid,
            p.avg_cost,
            p.con_id,
        )
        for p in positions
    ]
    c.store.set(
        C.MARKS,
        R.doc_id(account, DAY),
        R.marks_doc(
            account,
            fid,
            DAY,
            c.clock.now(),
            {"QQQ": Decimal("490.00")},
            docs,
            session_over=False,
            spreads=spreads,
        ),
    )
    [spread], _ = pair_spreads(option_legs(positions))
    risk = RiskService(
        store=c.store, bus=c.bus, clock=c.clock, claims=c.claims, alerts=c.alerts, brokers=dict
    )
    short = spread.short
    reading = assess("P", short.strike, Decimal(bid), Decimal(ask), Decimal("490.00"), Thresholds())
    risk._record_band(Held("gw-main", fid, spread), reading, DAY)


def test_positions_join_the_band_with_the_marks(console) -> None:
    console.at("11:00")
    held_spread(console, "alice", "U1000001", "0.40", "0.44")  # TV 0.42: RISK by default
    held_spread(console, "dario", "U2000001", "0.90", "0.94")
    body = console.get("/positions").json
    rows = {f["follower_id"]: f for f in body["followers"]}
    alice = rows["alice"]
    assert alice["account"] == "U1000001" and alice["open_spreads"] == 1
    [spread] = alice["spreads"]
    assert spread["spread_id"] == f"{DAY:%Y%m%d}-P488-486"
    assert spread["state"] == "OPEN" and spread["quantity"] == 2
    assert spread["time_value"] == "0.4200" and spread["in_the_money"] is False
    # unrealised = -2 x (0.42 x 100 - 125) + 2 x (0.06 x 100 - 50) = 166 - 88
    assert spread["unrealised"] == "78.00" and alice["unrealised"] == "78.00"
    assert alice["underlying"] == {"QQQ": "490.00"} and len(alice["legs"]) == 2
    assert {leg["strike"] for leg in alice["legs"]} == {"488", "486"}
    bands = {f: r["spreads"][0]["band"] for f, r in rows.items()}
    assert body["totals"]["open_spreads"] == 2
    assert body["totals"]["bands"] == {b: list(bands.values()).count(b) for b in bands.values()}
    only = console.get("/positions?follower=dario").json
    assert [f["follower_id"] for f in only["followers"]] == ["dario"]


def test_a_spread_marked_but_not_banded_yet(console) -> None:
    console.at("11:00")
    held_spread(console, "alice", "U1000001", "0.40", "0.44")
    console.c.store.delete(C.RISK_STATUS, f"alice_{DAY:%Y%m%d}-P488-486")
    body = console.get("/positions?follower=alice").json
    [spread] = body["followers"][0]["spreads"]
    assert spread["band"] is None and spread["state"] == "OPEN" and spread["unrealised"]
    assert body["totals"]["bands"] == {"UNCHECKED": 1}


def test_a_closed_spread_is_shown_but_not_counted_open(console) -> None:
    console.at("11:00")
    held_spread(console, "alice", "U1000001", "0.40", "0.44")
    status_id = f"alice_{DAY:%Y%m%d}-P488-486"
    close = {"state": "CLOSED", "close_ref": "SP-20261124-QQQ-alice-CLOSE", "close_reason": "x"}
    console.c.store.update(C.RISK_STATUS, status_id, close)
    marks_id = R.doc_id("U1000001", DAY)
    console.c.store.update(C.MARKS, marks_id, {"spreads": [], "positions": []})
    body = console.get("/positions?follower=alice").json
    alice = body["followers"][0]
    assert alice["open_spreads"] == 0 and alice["unrealised"] is None
    assert alice["spreads"][0]["state"] == "CLOSED"
    assert alice["spreads"][0]["close_ref"].endswith("-CLOSE")
    assert body["totals"]["open_spreads"] == 0


def test_positions_of_a_day_without_any(console) -> None:
    body = console.get("/positions?date=2026-11-20").json
    assert body["followers"] == [] and body["totals"]["open_spreads"] == 0


# --- market ------------------------------------------------------------------------------


def test_market_before_during_and_after_the_session(console) -> None:
    before = console.get("/market").json  # the platform starts at 09:27 New York
    assert before["status"] == "open" and before["open_now"] is False
    assert before["phase"] == "pre-open" and before["now_new_york"].endswith("09:27:00")
    console.at("10:00")
    m = console.get("/market").json
    assert m["open_now"] is True and m["phase"] == "open"
    assert m["session"]["opens"] == "09:30" and m["session"]["closes"] == "16:00"
    assert m["session"]["close_utc"] == "2026-11-24T21:00:00+00:00"
    assert m["next_session"]["date"] == "2026-11-25"
    console.at("16:00")
    after = console.get("/market").json
    assert after["open_now"] is False and after["phase"] == "closed for the day"
    assert console.get("/market?date=2026-11-23").json["phase"] == "past"


def test_market_holiday_and_early_close(console) -> None:
    thanksgiving = console.get("/market?date=2026-11-26").json
    assert thanksgiving["status"] == "closed" and thanksgiving["reason"] == "NYSE holiday"
    assert thanksgiving["session"] is None and thanksgiving["open_now"] is False
    assert thanksgiving["next_session"]["date"] == "2026-11-27"
    assert thanksgiving["next_session"]["closes"] == "13:00"
    friday = console.get("/market?date=2026-11-27").json
    assert friday["status"] == "early-close" and friday["session"]["early_close"] is True
    assert console.get("/market?date=2026-11-28").json["reason"] == "weekend"


def test_market_date_outside_the_calendar_is_named(console) -> None:
    r = console.get(f"/market?date={date.today() + timedelta(days=3 * 365)}")
    assert r.status_code == 422
    assert r.json["error"]["fields"][0]["field"] == "date"
    assert "calendar" in r.json["error"]["message"]


# --- validation and auth ---------------------------------------------------------------

READS = ["/signal", "/orders", f"/orders/{ALICE}", "/positions", "/market"]


@pytest.mark.parametrize("path", ["/signal", "/orders", "/positions", "/market"])
@pytest.mark.parametrize("bad", ["2026-13-01", "24/11/2026", "yesterday"])
def test_a_bad_date_is_a_422_naming_the_field(console, path: str, bad: str) -> None:
    r = console.get(f"{path}?date={bad}")
    assert r.status_code == 422, r.json
    [err] = r.json["error"]["fields"]
    assert err["field"] == "date" and err["message"].startswith("date: ")


@pytest.mark.parametrize("path", ["/signal", "/orders", "/positions", "/market"])
def test_an_unknown_query_parameter_is_a_400(console, path: str) -> None:
    r = console.get(f"{path}?day=2026-11-24")
    assert r.status_code == 400 and "day" in r.json["error"]["message"]


def test_an_empty_follower_is_a_422(console) -> None:
    r = console.get("/orders?follower=")
    assert r.status_code == 422 and r.json["error"]["fields"][0]["field"] == "follower"


def test_the_order_trace_takes_no_query(console) -> None:
    assert console.get(f"/orders/{ALICE}?verbose=1").status_code == 400


@pytest.mark.parametrize("path", READS)
def test_every_trading_read_needs_a_token(console, path: str) -> None:
    r = console.client.get("/api/v1" + path)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
