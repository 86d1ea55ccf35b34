"""P&L, statements and billing commands (issue 6): backfill and re-run the
rollups, render the month's statements, list and settle commissions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spreadpilot.cli.common import UsageError, boot, err, friendly, out
from spreadpilot.cli.views import month_table, pnl_day_table
from spreadpilot.domain.calendar import ny_date
from spreadpilot.platform import collections as C
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter
from spreadpilot.services.billing import commissions, mark_paid
from spreadpilot.services.pnl import PnlRollup, parse_month

pnl_app = typer.Typer(help="P&L rollups (daily rows, monthly rows).", no_args_is_help=True)
commissions_app = typer.Typer(
    help="Commissions: list what is due, record payments.", no_args_is_help=True
)


@contextmanager
def progress_bar(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal for long runs; silent when piped."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def rollup_of(c: Container) -> PnlRollup:
    return PnlRollup(c.store, c.clock, c.calendar, c.settings)


def day_rows(c: Container, day: date) -> list[dict[str, object]]:
    return [s.data for s in c.store.query(C.PNL_DAILY, [Filter("date", "==", day.isoformat())])]


def render_statements(
    c: Container, month: str, out_dir: Path, follower: str | None = None
) -> list[Path]:
    """Every enabled follower's statement PDF for `month` (payable or not)."""
    from spreadpilot.adapters.pdf.statement_pdf import render_statement
    from spreadpilot.services.statements import StatementBook

    book = StatementBook(c.store, c.settings)
    rows = c.store.query(C.PNL_MONTHLY, [Filter("month", "==", month)])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for snap in sorted(rows, key=lambda s: s.id):
        fid = snap.data["follower_id"]
        if follower and fid != follower:
            continue
        doc = c.store.get(C.FOLLOWERS, fid)
        if doc is None or not doc.get("enabled", True):
            continue
        statement = book.statement(fid, month)
        path = out_dir / statement.filename
        path.write_bytes(render_statement(statement))
        written.append(path)
    return written


statements_app = typer.Typer(help="Statement mails.", no_args_is_help=True)
DATE_HELP = "New York trading date, YYYY-MM-DD"


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


def _month(value: str) -> str:
    try:
        year, month = parse_month(value)
    except ValueError as exc:
        raise UsageError(f"--month: {exc}") from None
    return f"{year:04d}-{month:02d}"


@pnl_app.command("rollup")
@friendly
def pnl_rollup(
    start: Annotated[str, typer.Option("--from", help=DATE_HELP)],
    end: Annotated[str | None, typer.Option("--to", help=f"{DATE_HELP} (default: --from)")] = None,
) -> None:
    """Recompute the daily rows of every trading day in a range (backfill, re-run);
    months already rolled up that change are recomputed too."""
    first = _date(start, "--from")
    last = _date(end, "--to") if end else first
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    c = boot()
    rollup = rollup_of(c)
    with progress_bar(err, "daily rows") as advance:
        run = rollup.recompute(first, last, advance)
    out.print(run.summary())
    days = rollup.trading_days(first, last)
    if days:
        out.print(pnl_day_table(day_rows(c, days[-1]), f"P&L {days[-1]}"))


@pnl_app.command("show")
@friendly
def pnl_show(day: Annotated[str | None, typer.Option("--date", help=DATE_HELP)] = None) -> None:
    """The day's P&L per follower, as the last rollup left it."""
    c = boot()
    when = _date(day, "--date") if day else ny_date(c.clock.now())
    rows = day_rows(c, when)
    if not rows:
        out.print(f"no P&L rows for {when}: run `spreadpilot pnl rollup --from {when}`")
        return
    out.print(pnl_day_table(rows, f"P&L {when}"))


@friendly
def report(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    follower: Annotated[str | None, typer.Option("--follower", help="one follower id")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where the PDFs go (default: the outbox)")
    ] = None,
) -> None:
    """Roll up a month (its days from the raw inputs, then the monthly rows,
    commissions and statements) and write the statement PDFs. A month not over yet
    gives month-to-date statements, which are never mailed."""
    key = _month(month)
    c = boot()
    with progress_bar(err, f"rollup {key}") as advance:
        run = rollup_of(c).month_job(*parse_month(key), progress=advance, full=True)
    out.print(run.summary())
    rows = [
        s.data
        for s in c.store.query(C.PNL_MONTHLY, [Filter("month", "==", key)])
        if not follower or s.data["follower_id"] == follower
    ]
    if follower and not rows:
        raise UsageError(f"no P&L row for follower {follower!r} in {key}")
    out.print(month_table(rows, f"Commissions {key}"))
    target = out_dir or c.settings.outbox_dir / "statements"
    paths = render_statements(c, key, target, follower)
    out.print(f"{len(paths)} statement PDFs in {target}")


@commissions_app.command("list")
@friendly
def commissions_list(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM")] = None,
    payable: Annotated[bool, typer.Option("--payable", help="only months with commission")] = False,
    unpaid: Annotated[bool, typer.Option("--unpaid", help="only payable and not yet paid")] = False,
) -> None:
    """Monthly P&L and commission per follower, with payment state."""
    c = boot()
    rows = commissions(
        c.store, month=_month(month) if month else None, payable=payable, unpaid=unpaid
    )
    if not rows:
        out.print("no commission rows match")
        return
    out.print(month_table(rows, "Commissions"))
    due: dict[str, Decimal] = {}
    for r in rows:
        if r["is_payable"] and not r.get("paid"):
            due[r["currency"]] = due.get(r["currency"], Decimal(0)) + Decimal(
                r["commission_billed"]
            )
    out.print("unpaid: " + (", ".join(f"{v:,.2f} {k}" for k, v in sorted(due.items())) or "none"))


@commissions_app.command("mark-paid")
@friendly
def commissions_mark_paid(
    follower: Annotated[str, typer.Argument(help="follower id")],
    month: Annotated[str, typer.Argument(help="YYYY-MM")],
    reference: Annotated[str, typer.Option("--reference", help="the payment's reference")],
) -> None:
    """Record that a follower paid a month's commission (idempotent per reference)."""
    c = boot()
    key = _month(month)
    if mark_paid(c.store, c.clock, follower, key, reference):
        out.print(f"{follower} {key}: paid ({reference})")
    else:
        out.print(f"{follower} {key}: already recorded as paid ({reference})")


@statements_app.command("mail")
@friendly
def statements_mail(
    dry_run: Annotated[
        bool | None,
        typer.Option(
            "--dry-run/--live",
            help="outbox files instead of SendGrid (default: the STATEMENT_DELIVERY setting)",
        ),
    ] = None,
) -> None:
    """Mail every unsent statement of a finished month now (what the Monday job does)."""
    from spreadpilot.services.commission_mailer import mail_statements

    c = boot()
    out.print(str(mail_statements(c, dry_run=dry_run)))
