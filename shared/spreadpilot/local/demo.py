"""`make demo`: one simulated trading morning on the embedded platform.

Seeds a sample sheet (today's row half-typed, completed at 09:29 as a
strategist would) and five followers (one disabled, one suspended, two with
sizing rules), fires the signal poll from 09:25 to 09:45 ET on a simulated
clock through the real functions, and prints what happened.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from ibsim.market import MarketConfig
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.sheet import SHEET_HEADER
from spreadpilot.local.broker_preview import preview_intents
from spreadpilot.local.morning import run_schedule
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock, SystemClock
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.schedules import Job
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.services.followers import parse_followers, save_followers

MARKER = ".spreadpilot-demo"
HEADER = list(SHEET_HEADER)


def _fresh_dir(path: Path) -> None:
    if path.exists():
        if not (path / MARKER).exists():
            raise FileExistsError(
                f"{path} exists and is not a demo folder; pass --data-dir to an empty folder"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("created by `spreadpilot demo`; safe to delete\n")


def _write_sheet(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=";").writerows([HEADER, *rows])


def _history(cal: MarketCalendar, day: date) -> list[list[str]]:
    rows: list[list[str]] = []
    d = day
    while len(rows) < 3:
        d -= timedelta(days=1)
        if cal.is_trading_day(d):
            rows.append([f"{d:%d/%m/%Y}", "QQQ", "Short", "1", "-", "-", "492", "494"])
    return rows[::-1]


def run_demo(out: Console, data_dir: Path, day: date | None = None) -> None:
    cal = MarketCalendar()
    day = day or cal.next_trading_day(ny_date(SystemClock().now()))
    if not cal.is_trading_day(day):
        raise ValueError(f"{day} is not an NYSE trading day; pick another --date")
    _fresh_dir(data_dir)
    configure_logging("demo", "WARNING", "text")  # the functions it hosts log here too
    settings = load_settings(
        mode="embedded", data_dir=data_dir, log_format="text", log_level="WARNING"
    )
    start, end = ny_datetime(day, time(9, 25)), ny_datetime(day, time(9, 45))
    clock = SimClock(start)
    c = Container(settings, clock=clock)

    sample = resources.files("spreadpilot.local").joinpath("sample/followers.yaml").read_text()
    save_followers(c.store, parse_followers(yaml.safe_load(sample)["followers"]))
    history = _history(cal, day)
    half_typed = [f"{day:%d/%m/%Y}", "QQQ", "Long"]  # quantity and strikes not yet typed
    # Strikes a few dollars below the simulated broker's opening price, as a strategist would.
    short = int(MarketConfig().spot) - 1
    complete = [f"{day:%d/%m/%Y}", " QQQ", "Long", "2", str(short - 2), f"{short},0", "-", "-"]
    _write_sheet(settings.sheet_csv_path, [*history, half_typed])

    def strategist(moment: datetime, job: Job) -> None:
        if moment.astimezone(NEW_YORK).time() >= time(9, 29):
            _write_sheet(settings.sheet_csv_path, [*history, complete])

    out.print(
        f"[bold]SpreadPilot demo[/] - simulated morning of {day} (New York), embedded platform\n"
    )
    report = run_schedule(c, clock, start, end, before_tick=strategist)

    runs = Table("time (ET)", "signal poller", "detail", title="Signal poll runs")
    for snap in c.store.query(C.JOB_RUNS, order_by="ran_at"):
        d = snap.data
        runs.add_row(f"{d['ran_at'].astimezone(NEW_YORK):%H:%M:%S}", d["status"], d["detail"])
    out.print(runs)

    sid = f"{day.isoformat()}_QQQ"
    sig = c.store.get(C.SIGNALS, sid)
    disp = c.store.get(C.DISPATCHES, sid) or {}
    if sig:
        s = sig["signal"]
        out.print(
            f"\nClaimed signal [bold]{sid}[/] (sheet row {sig['sheet_row']}): {s['strategy']} "
            f"= Bull Put sell {s['sell_put']} / buy {s['buy_put']}, {s['qty_per_leg']} per leg"
        )
    table = Table(
        "follower",
        "account",
        "gateway",
        "outcome",
        "contracts",
        "orderRef / reason",
        title="Order intents",
    )
    intents = {
        snap.data["intent"]["follower_id"]: snap.data["intent"]
        for snap in c.store.query(C.ORDER_INTENTS)
    }
    records = {snap.id: snap.data for snap in c.store.query(C.FOLLOWERS)}
    for fid, o in sorted(disp.get("followers", {}).items()):
        record = records.get(fid, {})
        table.add_row(
            fid,
            record.get("ib_account", ""),
            record.get("gateway_id", ""),
            o["status"],
            str(o["quantity"] or "-"),
            o["order_ref"] or o["reason"],
        )
    out.print(table)

    intent_docs = [snap.data["intent"] for snap in c.store.query(C.ORDER_INTENTS)]
    if intent_docs:
        port, previews = preview_intents(sorted(intent_docs, key=lambda i: i["follower_id"]), clock)
        checks = Table(
            "follower",
            "account",
            "contracts",
            "mid credit",
            "natural credit",
            "whatIf margin",
            "commission",
            title=f"Broker check at {clock.now().astimezone(NEW_YORK):%H:%M} ET "
            f"(IB Gateway simulator on 127.0.0.1:{port}, real ib_async)",
        )
        for p in previews:
            checks.add_row(
                p.follower_id,
                p.account,
                str(p.quantity),
                f"${p.mid_credit}",
                f"${p.natural_credit}",
                f"${p.margin}",
                f"${p.commission}",
            )
        out.print(checks)

    alerts = c.store.query(C.ALERTS)
    out.print(
        f"\n{report.ticks} scheduler ticks, {report.handled} messages delivered; "
        f"{len(intents)} intents published to 'orders'; {len(alerts)} alerts"
        + "".join(f"\n  {a.data['type']}: {a.data['message']}" for a in alerts)
    )
    out.print(
        f"\nStore:  {data_dir / 'store.db'} (SQLite)\nBus:    {data_dir / 'bus.db'}"
        f"\nSheet:  {settings.sheet_csv_path}\nOutbox: {settings.outbox_dir}"
    )
    out.print(
        f"Inspect: SPREADPILOT_DATA_DIR={data_dir} .venv/bin/spreadpilot intents --date {day}"
        " (also: followers list, alerts, dead-letters)"
    )
