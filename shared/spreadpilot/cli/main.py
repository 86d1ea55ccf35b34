"""`spreadpilot`: the operator's command line (embedded mode by default)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from ibsim.cli import ibsim as ibsim_command
from spreadpilot.cli.admin import admin as admin_command
from spreadpilot.cli.common import UsageError, boot, err, friendly, out
from spreadpilot.cli.pnl import commissions_app, pnl_app, report, statements_app
from spreadpilot.cli.security import security_app
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date, ny_datetime
from spreadpilot.domain.errors import DomainValidationError
from spreadpilot.platform import collections as C
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import Container, container

app = typer.Typer(
    help="SpreadPilot: copy-trading of 0DTE QQQ credit spreads. Embedded mode by default "
    "(SQLite store, local bus, CSV sheet); set SPREADPILOT_MODE=gcp for Google Cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
followers_app = typer.Typer(help="Follower records.", no_args_is_help=True)
settings_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(followers_app, name="followers")
app.command("ibsim")(ibsim_command)
app.add_typer(settings_app, name="settings")
app.add_typer(pnl_app, name="pnl")
app.add_typer(commissions_app, name="commissions")
app.add_typer(statements_app, name="statements")
app.add_typer(security_app, name="security")
app.command("report")(report)
app.command("admin")(admin_command)


@app.command()
@friendly
def demo(
    day: Annotated[str | None, typer.Option("--date", help="trading date (default: next)")] = None,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its data")] = Path(
        ".spreadpilot/demo"
    ),
) -> None:
    """Run the trading morning on a simulated clock: sample sheet and followers,
    signal poll 09:25-09:45 ET, one order intent per enabled follower."""
    from spreadpilot.local.demo import run_demo

    try:
        run_demo(out, data_dir, date.fromisoformat(day) if day else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command()
@friendly
def morning(
    day: Annotated[str, typer.Option("--date", help="New York trading date, YYYY-MM-DD")],
    start: Annotated[str, typer.Option("--from", help="New York time")] = "09:25",
    end: Annotated[str, typer.Option("--to", help="New York time")] = "09:45",
) -> None:
    """Fire the scheduled jobs between two New York times on a simulated clock,
    against the configured store, bus and sheet."""
    from spreadpilot.local.morning import run_schedule
    from spreadpilot.platform.clock import SimClock

    s = settings()
    configure_logging("cli", "WARNING", "text")
    trade_day = date.fromisoformat(day)
    t0 = ny_datetime(trade_day, time.fromisoformat(start))
    clock = SimClock(t0)
    c = Container(s, clock=clock)
    report = run_schedule(c, clock, t0, ny_datetime(trade_day, time.fromisoformat(end)))
    out.print(f"{report.ticks} ticks fired, {report.handled} messages handled")
    _print_intents(c, trade_day)


def _at(value: str | None) -> Container:
    """The container on the system clock, or on a simulated clock starting at --at."""
    c = boot()
    if value is None:
        return c
    from spreadpilot.platform.clock import SimClock
    from spreadpilot.platform.wiring import use_container

    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=NEW_YORK)
    sim = Container(c.settings, clock=SimClock(moment))
    use_container(sim)
    return sim


AT_HELP = "simulated start time, e.g. 2026-11-25T09:31 (New York if no offset)"


@app.command()
@friendly
def poll(at: Annotated[str | None, typer.Option(help=AT_HELP)] = None) -> None:
    """Run the signal poller once (now, or at a simulated time) and print its outcome."""
    outcome = _at(at).signal_poller().run()
    out.print(f"{outcome.status.value}: {outcome.detail}", highlight=False)


@app.command()
@friendly
def deliver(at: Annotated[str | None, typer.Option(help=AT_HELP)] = None) -> None:
    """Deliver every pending message to its function, as Pub/Sub push would (embedded
    mode): retries with backoff, dead letters after the last attempt."""
    from spreadpilot.local.functions import available_functions, load_function
    from spreadpilot.local.runner import LocalRunner

    c = _at(at)
    have = set(available_functions())
    handlers = {
        s.push: load_function(s.push) for s in c.topology.subscriptions.values() if s.push in have
    }
    handled = LocalRunner(c.bus, c.topology, handlers, c.clock).run_until_idle()
    out.print(f"delivered {handled} messages")


@app.command()
@friendly
def intents(
    day: Annotated[str | None, typer.Option("--date", help="default: today in New York")] = None,
) -> None:
    """Order intents and skips per follower for a trading date."""
    c = boot()
    _print_intents(c, date.fromisoformat(day) if day else ny_date(c.clock.now()))


@app.command()
@friendly
def orders(
    day: Annotated[str | None, typer.Option("--date", help="default: today in New York")] = None,
) -> None:
    """Every follower's order for a trading date: outcome, contracts filled, fill
    credit, ladder steps and time to fill (from the recorder's execution documents)."""
    from spreadpilot.cli.views import orders_table, totals_line
    from spreadpilot.domain.signal import signal_id
    from spreadpilot.services.traces import orders_for_signal, totals

    c = boot()
    trade_day = date.fromisoformat(day) if day else ny_date(c.clock.now())
    sid = signal_id(trade_day, c.settings.signal_ticker)
    dispatched = (c.store.get(C.DISPATCHES, sid) or {}).get("followers", {})
    found = orders_for_signal(c.store, sid)
    if not dispatched and not found:
        out.print(f"no orders for {trade_day} (signal {sid} not dispatched)")
        return
    followers = {snap.id: snap.data for snap in c.store.query(C.FOLLOWERS)}
    out.print(orders_table(dispatched, followers, found, f"Orders for {sid}"))
    out.print(totals_line(totals(found)))


@app.command()
@friendly
def trace(
    order_ref: Annotated[str, typer.Argument(help="e.g. SP-20261125-QQQ-alice-OPEN")],
) -> None:
    """One order's story, report by report: claimed, placed, each ladder step,
    partial fills with each leg's execution and fee, and how it ended."""
    from spreadpilot.cli.views import trace_header, trace_table
    from spreadpilot.services.traces import OrderSummary
    from spreadpilot.services.traces import trace as trace_of

    c = boot()
    doc = c.store.get(C.EXECUTIONS, order_ref)
    if doc is None:
        raise UsageError(
            f"no execution recorded for orderRef {order_ref!r}; list the day's orders with "
            "`spreadpilot orders --date YYYY-MM-DD`"
        )
    out.print(trace_header(doc, OrderSummary.from_doc(doc)), highlight=False)
    out.print(trace_table(trace_of(doc)))


@app.command()
@friendly
def alerts(
    action: Annotated[
        str | None,
        typer.Argument(
            help="none: list the alerts raised; 'retry': run the alert router's retry pass "
            "(PENDING deliveries now due); 'deliveries': list deliveries and their status"
        ),
    ] = None,
    limit: int = 20,
) -> None:
    """The most recent alerts raised (newest first); `alerts retry`, `alerts deliveries`."""
    c = boot()
    if action is not None:
        _alerts_action(c, action, limit)  # alert routing (issue 5)
        return
    table = Table("time (NY)", "type", "severity", "message")
    for snap in c.store.query(C.ALERTS, order_by="time", descending=True, limit=limit):
        d = snap.data
        at = datetime.fromisoformat(d["time"]).astimezone(NEW_YORK)
        table.add_row(f"{at:%Y-%m-%d %H:%M:%S}", d["type"], d["severity"], d["message"])
    out.print(table)


def _alerts_action(c: Container, action: str, limit: int) -> None:
    """Alert routing (issue 5): the retry pass, and the deliveries' status."""
    if action == "retry":
        done = c.alert_router.retry_due(limit=max(limit, 100))
        counts = {s: list(done.values()).count(s) for s in ("SENT", "PENDING", "FAILED")}
        out.print(
            f"retried {len(done)} deliveries: " + ", ".join(f"{v} {k}" for k, v in counts.items())
        )
        return
    if action != "deliveries":
        raise UsageError(
            f"unknown action {action!r}: use `alerts`, `alerts retry` or `alerts deliveries`"
        )
    table = Table("created (NY)", "type", "channel", "to", "status", "attempts", "last error")
    docs = c.store.query(C.ALERT_DELIVERIES, order_by="created_at", descending=True, limit=limit)
    for snap in docs:
        d = snap.data
        table.add_row(
            f"{d['created_at'].astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S}",
            d["type"],
            d["channel"],
            d["destination"],
            d["status"],
            str(d["attempts"]),
            d.get("last_error") or "",
        )
    out.print(table)


@app.command("dead-letters")
@friendly
def dead_letters() -> None:
    """Events a function could not process, kept whole with the reason."""
    c = boot()
    table = Table("id", "function", "received", "reason")
    for snap in c.store.query(C.DEAD_LETTERS, order_by="received_at"):
        d = snap.data
        table.add_row(snap.id, d["function"], f"{d['received_at']:%Y-%m-%d %H:%M:%S}", d["reason"])
    out.print(table)


@app.command()
@friendly
def schedule(
    day: Annotated[str | None, typer.Option("--date", help="default: today in New York")] = None,
) -> None:
    """Every scheduled job's fire times on a date (New York time), from scheduler/jobs.yaml."""
    from spreadpilot.platform.schedules import jobs

    trade_day = date.fromisoformat(day) if day else ny_date(datetime.now(NEW_YORK))
    session = MarketCalendar().session(trade_day)
    status = (
        "closed"
        if session is None
        else (
            f"open {session.open.astimezone(NEW_YORK):%H:%M}"
            f"-{session.close.astimezone(NEW_YORK):%H:%M}"
            + (" (early close)" if session.early_close else "")
        )
    )
    out.print(f"{trade_day} NYSE: {status}")
    t0, t1 = ny_datetime(trade_day, time(0)), ny_datetime(trade_day, time(23, 59, 59))
    table = Table("job", "fires (New York)", "topic", "consumer")
    for job in jobs().values():
        times = [t.astimezone(NEW_YORK) for t in job.fire_times(t0, t1)]
        shown = ", ".join(f"{t:%H:%M}" for t in times[:3]) + (
            f" ... {times[-1]:%H:%M} ({len(times)} runs)" if len(times) > 3 else ""
        )
        table.add_row(job.name, shown or "-", job.topic, job.consumer)
    out.print(table)


@app.command()
@friendly
def close(
    follower: Annotated[
        list[str] | None, typer.Option("--follower", help="follower id (repeatable)")
    ] = None,
    all_followers: Annotated[
        bool, typer.Option("--all", help="every follower's open spreads")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="why (in the alerts and records)")] = "",
    by: Annotated[str, typer.Option("--by", help="who asks (default: $USER)")] = "",
    command_id: Annotated[
        str | None, typer.Option("--id", help="command id (same id = executed once)")
    ] = None,
) -> None:
    """Emergency close: ask the gateway agent to close the open spreads of the named
    followers (or of all) now, each as one combo (EMERGENCY orderRef)."""
    import getpass

    from spreadpilot.services.emergency import request_emergency_close

    if all_followers == bool(follower):
        raise UsageError("give --follower ID (one or more) or --all, not both")
    if not reason.strip():
        raise UsageError("--reason is required: say why the spreads are closed")
    c = boot()
    try:
        command = request_emergency_close(
            c.bus,
            c.clock,
            followers=follower or (),
            all_followers=all_followers,
            reason=reason.strip(),
            requested_by=by or getpass.getuser(),
            command_id=command_id,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out.print(
        f"published {command.command_id}: {command.describe()}; the gateway agent executes it "
        "(see `spreadpilot alerts` and `spreadpilot orders`)",
        highlight=False,
    )


@app.command()
@friendly
def agent(
    once: Annotated[
        bool, typer.Option("--once", help="process the pending order messages, then exit")
    ] = False,
) -> None:
    """The gateway agent: execute the order intents on the IB Gateways of
    SPREADPILOT_GATEWAYS (JSON: gateway id -> host, port, client_id, accounts) until
    Ctrl-C, with heartbeats every 15 s."""
    import asyncio

    try:
        from gateway.agent import Agent, describe, gateways_from_env
    except ImportError as exc:  # the gateway/ folder is not beside the installed package
        raise UsageError(f"the gateway agent is not available here ({exc})") from None

    s = settings()
    configure_logging("gateway-agent", s.log_level, s.log_format)
    gateways = gateways_from_env()
    worker = Agent(container(), gateways)
    err.print(f"gateway agent: {json.dumps(describe(gateways))}", highlight=False)
    if once:
        total = asyncio.run(worker.drain())
        out.print(f"processed {total} order messages")
        return

    async def forever() -> None:
        stop = asyncio.Event()
        # /health and /metrics (gateway/health.py); SPREADPILOT_HEALTH_PORT=0 turns it off
        server = None
        if s.health_port:
            try:
                server = worker.health.serve()
            except OSError as exc:  # a busy port must not stop the trading agent
                logging.getLogger("spreadpilot.agent").error(
                    "no /health server on %s:%s: %s", s.health_host, s.health_port, exc
                )
        try:
            await worker.run(stop)
        finally:
            stop.set()
            if server is not None:
                server.stop()

    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        err.print("gateway agent stopped")


@followers_app.command("import")
@friendly
def followers_import(path: Path) -> None:
    """Validate every follower in a YAML file, then save them all (or none)."""
    from spreadpilot.services.followers import parse_followers, save_followers

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    followers = parse_followers(raw.get("followers", []) if isinstance(raw, dict) else raw)
    save_followers(boot().store, followers)
    out.print(f"imported {len(followers)} followers")


@followers_app.command("list")
@friendly
def followers_list() -> None:
    """Every follower with its trading status."""
    from spreadpilot.services.followers import list_followers

    table = Table("id", "name", "account", "gateway", "enabled", "state", "sizing", "commission")
    for fid, f in list_followers(boot().store):
        if isinstance(f, DomainValidationError):
            table.add_row(fid, f"[red]invalid: {f}[/]", "", "", "", "", "", "")
            continue
        sizing = f"x{f.sizing_multiplier}" + (f" max {f.max_contracts}" if f.max_contracts else "")
        table.add_row(
            f.id,
            f.name,
            f.ib_account,
            f.gateway_id,
            "yes" if f.enabled else "no",
            f.state.value,
            sizing,
            f"{f.commission_rate:%}",
        )
    out.print(table)


@settings_app.command("show")
@friendly
def settings_show() -> None:
    """The effective settings (validated), as environment variable names."""
    s = settings()
    for key, value in s.model_dump(mode="json").items():
        out.print(
            f"SPREADPILOT_{key.upper()}={json.dumps(value) if value is not None else ''}",
            highlight=False,
        )


def _print_intents(c: Container, trade_day: date) -> None:
    from spreadpilot.domain.signal import signal_id

    sid = signal_id(trade_day, c.settings.signal_ticker)
    sig = c.store.get(C.SIGNALS, sid)
    if sig is None:
        out.print(f"no signal claimed for {trade_day}")
        return
    disp = c.store.get(C.DISPATCHES, sid) or {}
    from spreadpilot.domain.signal import Signal

    signal = Signal.model_validate(sig["signal"])
    out.print(f"signal {sid}: {signal.describe()}  dispatch: {disp.get('status', 'pending')}")
    table = Table("follower", "outcome", "contracts", "orderRef / reason")
    for fid, o in sorted(disp.get("followers", {}).items()):
        table.add_row(fid, o["status"], str(o["quantity"] or ""), o["order_ref"] or o["reason"])
    out.print(table)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
