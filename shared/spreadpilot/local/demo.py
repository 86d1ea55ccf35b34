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
from spreadpilot.cli.pnl import day_rows, render_statements, rollup_of
from spreadpilot.cli.views import month_table, orders_table, pnl_day_table, totals_line
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.sheet import SHEET_HEADER
from spreadpilot.local.gateways import SimulatedGateways, accounts_by_gateway
from spreadpilot.local.morning import MorningReport, run_schedule
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock, SystemClock
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.schedules import Job
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter
from spreadpilot.services.followers import parse_followers, save_followers
from spreadpilot.services.traces import orders_for_signal, totals

MARKER = ".spreadpilot-demo"
HOSTED = frozenset({"gateway-agent"})  # its jobs go to the agent the demo drives
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
    # A whole day's lines (the functions and the agent it hosts) go to a file, as
    # Cloud Logging would hold them; the console gets the report.
    configure_logging("demo", "INFO", "json", file=data_dir / "demo.log")
    settings = load_settings(
        mode="embedded",
        data_dir=data_dir,
        log_format="json",
        log_level="INFO",
        health_port=0,
        embedded_durable=False,  # a simulated day in seconds: fsync at checkpoints only
        alert_telegram_chat_ids=["-1001000000001"],
        alert_email_to=["operator@example.com"],
        status_base_url="http://127.0.0.1:8080",
    )
    start, end = ny_datetime(day, time(9, 25)), ny_datetime(day, time(16, 35))
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
        f"[bold]SpreadPilot demo[/] - simulated trading day of {day} and the next morning "
        "(New York), embedded platform\n"
    )
    gateways = SimulatedGateways(clock, accounts_by_gateway(followers), scenarios)
    with gateways, gateways.agent(c) as agent:
        ports = ", ".join(f"{g} 127.0.0.1:{gw.port}" for g, gw in gateways.running.items())

        def before(moment: datetime, job: Job) -> None:
            strategist(moment, job)
            agent.tick()

        def after(moment: datetime, job: Job) -> None:
            agent.process()

        def run(since: datetime, until: datetime) -> MorningReport:
            return run_schedule(
                c, clock, since, until, before_tick=before, after_tick=after, hosted=HOSTED
            )

        report = run(start, end)
        # The night: only the health pings (and the agent's heartbeat) have work.
        next_day = cal.next_trading_day(day, include=False)
        dawn = ny_datetime(next_day, time(8, 25))
        night = run(max(end, clock.now()), dawn)
        early = run(dawn, ny_datetime(next_day, time(9, 35)))

    _print_day(out, c, day, next_day, ports)
    _print_pnl(out, c, day)
    out.print(
        f"\n{report.ticks + night.ticks + early.ticks} scheduler ticks, "
        f"{report.handled + night.handled + early.handled} messages delivered to the "
        f"functions, {agent.processed} messages executed by the gateway agent"
    )
    out.print(
        f"\nStore:  {data_dir / 'store.db'} (SQLite)\nBus:    {data_dir / 'bus.db'}"
        f"\nSheet:  {settings.sheet_csv_path}\nOutbox: {settings.outbox_dir}"
        f"\nLogs:   {data_dir / 'demo.log'} (Cloud Logging JSON, one line per event)"
    )
    inspect = f"SPREADPILOT_DATA_DIR={data_dir} .venv/bin/spreadpilot"
    out.print(f"Inspect: {inspect} orders --date {day}", highlight=False)
    out.print(f"         {inspect} trace SP-{day:%Y%m%d}-QQQ-alice-CLOSE", highlight=False)
    out.print(f"         {inspect} pnl show --date {day}", highlight=False)
    out.print(f"         {inspect} commissions list --month {day:%Y-%m}", highlight=False)
    out.print("         (also: alerts, alerts deliveries, intents, followers list, dead-letters)")


def _print_pnl(out: Console, c: Container, day: date) -> None:
    """The day's P&L per follower (recomputed now that the next morning's pre-open
    check has seen the expiry at IB), then the month-to-date statements."""
    rollup = rollup_of(c)
    rollup.days(day, day)
    out.print(pnl_day_table(day_rows(c, day), f"P&L of {day} (USD, net of IB commissions)"))
    key = f"{day:%Y-%m}"
    rollup.month_job(day.year, day.month, full=True)
    paths = render_statements(c, key, c.settings.outbox_dir / "statements")
    rows = [s.data for s in c.store.query(C.PNL_MONTHLY, [Filter("month", "==", key)])]
    out.print(month_table(rows, f"Commissions {key} (month to date)"))
    out.print(f"{len(paths)} statement PDFs in {c.settings.outbox_dir / 'statements'}")


def _print_day(out: Console, c: Container, day: date, next_day: date, ports: str) -> None:
    """The report: the signal, every order, the incidents, the next morning, health."""
    runs = Table("time (ET)", "signal poller", "detail", title="Signal poll runs")
    for snap in c.store.query(C.JOB_RUNS, [Filter("job", "==", "signal-poll")], order_by="ran_at"):
        d = snap.data
        if ny_date(d["ran_at"]) == day:
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
    orders = orders_for_signal(c.store, sid)
    title = f"Orders (gateway agent -> IB Gateway simulators {ports}, real ib_async)"
    out.print(orders_table(disp.get("followers", {}), records, orders, title))
    out.print(totals_line(totals(orders)))

    alerts = sorted((a.data for a in c.store.query(C.ALERTS)), key=lambda a: a["time"])
    incidents = Table("time (ET)", "alert", "follower", "message", title="Alerts, in order")
    incidents.columns[-1].overflow = "fold"
    for a in alerts:
        at = datetime.fromisoformat(a["time"]).astimezone(NEW_YORK)
        incidents.add_row(f"{at:%a %H:%M}", a["type"], a.get("follower_id") or "-", a["message"])
    out.print(incidents)

    preopen = [
        snap.data
        for snap in c.store.query(C.JOB_RUNS, [Filter("job", "==", "pre-open-check")])
        if ny_date(snap.data["ran_at"]) == next_day
    ]
    for run in preopen:
        out.print(
            f"\nNext morning ({next_day}) pre-open check at "
            f"{run['ran_at'].astimezone(NEW_YORK):%H:%M}: {run['status']} - {run['detail']}"
        )
    flatten = orders_for_signal(c.store, f"{next_day.isoformat()}_QQQ")
    if flatten:
        out.print(orders_table({}, records, flatten, f"Orders of {next_day}"))

    health = {snap.id: snap.data for snap in c.store.query(C.HEALTH)}
    if health:
        out.print(
            "\nHealth: "
            + ", ".join(f"{k} {v.get('status', '?')}" for k, v in sorted(health.items()))
        )
    outbox = c.settings.outbox_dir
    chats = len(list((outbox / "telegram").glob("*.json")))
    mails = len(list((outbox / "email").glob("*.eml")))
    out.print(
        f"Alerts: {len(alerts)} raised; delivered {chats} Telegram messages and {mails} emails "
        f"into the outbox ({outbox})"
    )
