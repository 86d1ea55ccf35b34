"""The statement PDF as a reader sees it: its text extracted with poppler's
pdftotext and checked to the cent, page 1 rendered to PNG with pdftoppm, the
same bytes for the same data (also from another process), and the edge cases
(no trades, a losing month, month to date, a credit, a long table, a name the
font has no glyphs for). Statements are built here by hand, not by the rollup."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from spreadpilot.adapters.pdf.statement_pdf import money, render_statement
from spreadpilot.domain.money import cents
from spreadpilot.domain.statement import Adjustment, DayLine, Operator, Statement, mask_iban

REPO = Path(__file__).resolve().parents[2]
IBAN = "DE89370400440532013000"
OPERATOR = Operator("SpreadPilot Capital", "billing@spreadpilot.example", ("Via Roma 1", "Milano"))


def weekdays(year: int, month: int, count: int) -> list[date]:
    first = date(year, month, 1)
    days = (first + timedelta(days=i) for i in range(31))
    return [d for d in days if d.month == month and d.weekday() < 5][:count]


def statement(
    pnls: list[str],
    *,
    month: str = "2026-11",
    rate: str = "0.20",
    currency: str = "USD",
    fx: str = "1",
    adjustments: tuple[Adjustment, ...] = (),
    **changes: object,
) -> Statement:
    """A consistent statement: one DayLine per figure in `pnls` (USD, realised),
    the month's figures and commission derived from them."""
    year, number = (int(p) for p in month.split("-"))
    days, cumulative = [], Decimal(0)
    for day, text in zip(weekdays(year, number, len(pnls)), pnls, strict=True):
        pnl = Decimal(text)
        cumulative += pnl
        days.append(DayLine(day, pnl, Decimal(0), pnl, cumulative, 2 + len(days) % 3))
    r, x = Decimal(rate), Decimal(fx)
    commission = cents(max(cumulative, Decimal(0)) * r)
    billed = cents(max(cumulative, Decimal(0)) * r * x)
    last = date(year + number // 12, number % 12 + 1, 1) - timedelta(days=1)
    base = Statement(
        operator=OPERATOR,
        follower_id="f1",
        follower_name="Alice Rossi",
        follower_email="alice@example.com",
        iban_masked=mask_iban(IBAN),
        ib_account="U1000001",
        month=month,
        period_start=date(year, number, 1),
        period_end=last,
        complete=True,
        realised_usd=cumulative,
        unrealised_change_usd=Decimal(0),
        pnl_usd=cumulative,
        rate=r,
        commission_usd=commission,
        currency=currency,
        fx_rate=x,
        fx_date=last if currency != "USD" else None,
        pnl_billed=cents(cumulative * x),
        commission_billed=billed,
        adjustments=adjustments,
        amount_due=billed + sum((a.commission_billed for a in adjustments), Decimal(0)),
        is_payable=billed > 0,
        high_water_mark=False,
        carried_loss_usd=Decimal(0),
        days=tuple(days),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


USD_MONTH = ["147.40", "134.80", "-252.60", "1000.00", "121.40"]


def pdf_file(s: Statement, tmp_path: Path) -> Path:
    path = tmp_path / s.filename
    path.write_bytes(render_statement(s))
    return path


def text_of(s: Statement, tmp_path: Path) -> str:
    path = pdf_file(s, tmp_path)
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def assert_days(s: Statement, text: str) -> None:
    for line in s.days:
        assert f"{line.day:%a %d %b}" in text
        assert money(line.cumulative) in text


def test_a_payable_usd_month_shows_every_figure_to_the_cent(tmp_path: Path) -> None:
    s = statement(USD_MONTH)
    text = text_of(s, tmp_path)
    assert "Monthly statement — November 2026" in text
    assert "Period 01 Nov 2026 – 30 Nov 2026" in text and "month to date" not in text
    assert "Alice Rossi (f1)" in text and "alice@example.com" in text and "U1000001" in text
    assert "SpreadPilot Capital" in text and "billing@spreadpilot.example" in text
    assert "DE89 **** **** **** **30 00" in text
    assert IBAN not in text and "370400440532" not in text
    for label, figure in (
        ("Realised P&L", "$1,151.00"),
        ("Change in unrealised P&L", "$0.00"),
        ("P&L of the month", "$1,151.00"),
        ("Commission rate", "20.00%"),
        ("Commission", "$230.20"),
        ("Amount due", "$230.20"),
    ):
        assert any(label in row and row.rstrip().endswith(figure) for row in text.splitlines())
    assert "Commission due" in text and "Exchange rate" not in text and "€" not in text
    assert "−$252.60" in text  # the losing day, with a real minus sign
    assert_days(s, text)
    assert "Page 1 of 1" in text


def test_a_losing_month_is_not_payable(tmp_path: Path) -> None:
    s = statement(["-252.60", "134.80", "-40.00"])
    assert not s.is_payable and s.pnl_usd == Decimal("-157.80")
    text = text_of(s, tmp_path)
    assert "No commission this month: P&L not positive" in text
    assert "Commission due" not in text
    assert "−$157.80" in text and "$0.00" in text
    assert "−253" in text  # the chart's lowest value, after the first day
    assert_days(s, text)


def test_an_eur_month_with_fx_and_an_adjustment(tmp_path: Path) -> None:
    late = Adjustment(
        "2026-10",
        "a late assignment on 30 Oct recomputed October after its statement was mailed; "
        "the reason is long enough to wrap onto a second line below the figures of its row",
        Decimal("-250.00"),
        Decimal("-46.07"),
    )
    s = statement(USD_MONTH, currency="EUR", fx="0.9213", adjustments=(late,))
    assert (s.pnl_billed, s.commission_billed, s.amount_due) == (
        Decimal("1060.42"),
        Decimal("212.08"),
        Decimal("166.01"),
    )
    text = text_of(s, tmp_path)
    for figure in (
        "1 USD = 0.9213 EUR on 30 Nov 2026",
        "€1,060.42",
        "€212.08",
        "$230.20",
        "Adjustment to October 2026",
        "P&L −$250.00 · commission −€46.07",
        "a late assignment on 30 Oct",
        "Amount due",
        "€166.01",
        "Commission due; the amount includes the adjustments above",
    ):
        assert figure in text, figure


def test_an_adjustment_larger_than_the_commission_is_a_credit(tmp_path: Path) -> None:
    refund = Adjustment("2026-10", "October overbilled", Decimal("-1000.00"), Decimal("-200.00"))
    s = statement(["50.00"], adjustments=(refund,))
    assert s.amount_due == Decimal("-190.00")
    text = text_of(s, tmp_path)
    assert "Credit in your favour" in text and "$190.00" in text and "Commission due" in text


def test_the_high_water_mark_shows_the_carried_loss(tmp_path: Path) -> None:
    s = statement(["-80.00"], high_water_mark=True, carried_loss_usd=Decimal("1234.56"))
    text = text_of(s, tmp_path)
    assert "Losses carried forward (high-water mark)" in text and "$1,234.56" in text


def test_month_to_date(tmp_path: Path) -> None:
    s = statement(USD_MONTH[:3], complete=False, period_end=date(2026, 11, 4))
    text = text_of(s, tmp_path)
    assert "month to date, through 04 Nov 2026; not final" in text
    assert_days(s, text)


def test_a_follower_with_no_trades(tmp_path: Path) -> None:
    s = statement([])
    text = text_of(s, tmp_path)
    assert "No trades and no positions this month." in text
    assert "No trading days in the period" in text
    assert "No commission this month: P&L not positive" in text and "Page 1 of 1" in text


def test_a_23_day_month_continues_the_table_on_page_2(tmp_path: Path) -> None:
    s = statement([f"{(-1) ** i * (i * 37 % 200)}.25" for i in range(23)], month="2026-12")
    assert len(s.days) == 23
    text = text_of(s, tmp_path)
    assert_days(s, text)
    assert "Page 1 of 2" in text and "Page 2 of 2" in text
    page2 = text.split("\f")[1]
    assert "Unrealised chg" in page2  # the header is repeated


def test_names_beyond_latin_and_outside_the_font(tmp_path: Path) -> None:
    s = statement(["10.00"], follower_name="Ελένη Δvořák 王")
    text = text_of(s, tmp_path)
    assert "Ελένη Δvořák ? (f1)" in text  # Greek and Czech drawn; the CJK glyph marked


def test_page_one_renders_to_a_nonblank_a4_png(tmp_path: Path) -> None:
    path = pdf_file(statement(USD_MONTH), tmp_path)
    page = tmp_path / "page"
    argv = [
        "pdftoppm",
        "-png",
        "-r",
        "60",
        "-f",
        "1",
        "-l",
        "1",
        "-singlefile",
        str(path),
        str(page),
    ]
    subprocess.run(argv, check=True)
    png = (tmp_path / "page.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert abs(width - 496) <= 1 and abs(height - 702) <= 1  # A4 portrait at 60 dpi
    assert len(png) > 20_000  # text, summary and chart; a blank page is ~2 KB


def test_the_same_statement_gives_the_same_bytes_in_another_process() -> None:
    here = render_statement(statement(USD_MONTH, currency="EUR", fx="0.9213"))
    assert render_statement(statement(USD_MONTH, currency="EUR", fx="0.9213")) == here
    code = (
        "import sys; from tests.statements.test_statement_pdf import USD_MONTH, statement; "
        "from spreadpilot.adapters.pdf.statement_pdf import render_statement; "
        "sys.stdout.buffer.write(render_statement("
        "statement(USD_MONTH, currency='EUR', fx='0.9213')))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'shared'}", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert there == here
    assert b"/CreationDate (D:20261130000000Z" in here
    other = statement(USD_MONTH, currency="EUR", fx="0.9213", follower_name="Alice Bianchi")
    assert render_statement(other) != here
