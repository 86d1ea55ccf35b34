"""`make demo`: one simulated trading morning on the embedded platform.

Seeds a sample sheet (today's row half-typed, completed at 09:29 as a
strategist would) and five followers (one disabled, one suspended, two with
sizing rules) on two IB Gateways, fires the signal poll from 09:25 to 09:45 ET
on a simulated clock through the real functions, and after every tick lets the
real gateway agent execute what the dispatcher sent, through ib_async against
one IB Gateway simulator per gateway (`sample/gateways.yaml`). The recorder
function stores the executions; the demo prints every follower's order and the
totals.
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
from spreadpilot.cli.views import orders_table, totals_line
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.sheet import SHEET_HEADER
from spreadpilot.local.gateways import SimulatedGateways, accounts_by_gateway
from spreadpilot.local.morning import run_schedule
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock, SystemClock
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.schedules import Job
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.services.followers import parse_followers, save_followers
from spreadpilot.services.traces import orders_for_signal, totals

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

    sample = resources.files("spreadpilot.local").joinpath("sample")
    followers = yaml.safe_load(sample.joinpath("followers.yaml").read_text())["followers"]
    save_followers(c.store, parse_followers(followers))
    scenarios = yaml.safe_load(sample.joinpath("gateways.yaml").read_text())
    history = _history(cal, day)
    half_typed = [f"{day:%d/%m/%Y}", "QQQ", "Long"]  # quantity and strikes not yet typed
    # A Bull Put 2 wide, its short put a dollar in the money at the simulated open: a
    # mid near 0.94, comfortably above the 0.70 floor, as the strategist types it.
    short = int(MarketConfig().spot) + 1
    complete = [f"{day:%d/%m/%Y}", " QQQ", "Long", "2", str(short - 2), f"{short},0", "-", "-"]
    _write_sheet(settings.sheet_csv_path, [*history, half_typed])

    def strategist(moment: datetime, job: Job) -> None:
        if moment.astimezone(NEW_YORK).time() >= time(9, 29):
            _write_sheet(settings.sheet_csv_path, [*history, complete])

    out.print(
        f"[bold]SpreadPilot demo[/] - simulated morning of {day} (New York), embedded platform\n"
    )
    gateways = SimulatedGateways(clock, accounts_by_gateway(followers), scenarios)
    with gateways, gateways.agent(c) as agent:
        ports = ", ".join(f"{g} 127.0.0.1:{gw.port}" for g, gw in gateways.running.items())
        report = run_schedule(
            c, clock, start, end, before_tick=strategist, after_tick=lambda *_: agent.process()
        )

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
    records = {snap.id: snap.data for snap in c.store.query(C.FOLLOWERS)}
    orders = {o.follower_id: o for o in orders_for_signal(c.store, sid)}
    title = f"Orders (gateway agent -> IB Gateway simulators {ports}, real ib_async)"
    out.print(orders_table(disp.get("followers", {}), records, orders, title))
    out.print("\n" + totals_line(totals(list(orders.values()))))

    alerts = c.store.query(C.ALERTS)
    out.print(
        f"\n{report.ticks} scheduler ticks, {report.handled} messages delivered; "
        f"{len(disp.get('followers', {}))} followers dispatched, {agent.agent.processed} order "
        f"messages executed by the gateway agent; {len(alerts)} alerts"
        + "".join(f"\n  {a.data['type']}: {a.data['message']}" for a in alerts)
    )
    out.print(
        f"\nStore:  {data_dir / 'store.db'} (SQLite)\nBus:    {data_dir / 'bus.db'}"
        f"\nSheet:  {settings.sheet_csv_path}\nOutbox: {settings.outbox_dir}"
    )
    inspect = f"SPREADPILOT_DATA_DIR={data_dir} .venv/bin/spreadpilot"
    out.print(f"Inspect: {inspect} orders --date {day}", highlight=False)
    first = next((o.order_ref for o in orders.values() if o.placed_at), None)
    if first:
        out.print(f"         {inspect} trace {first}", highlight=False)
    out.print("         (also: intents, followers list, alerts, dead-letters)")
