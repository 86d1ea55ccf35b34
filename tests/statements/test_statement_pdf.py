"""The statement PDF: its text extracted with poppler's pdftotext and checked to
the cent, page 1 rendered to PNG with pdftoppm, the same bytes for the same
data (also from another process), and the edge cases (no trades, a losing
month, month to date, a table longer than a page)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bench.statements import sample
from spreadpilot.adapters.pdf.statement_pdf import render_statement
from spreadpilot.domain.statement import DayLine, Statement

REPO = Path(__file__).resolve().parents[2]


def text_of(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "s.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_the_text_carries_every_figure_to_the_cent(tmp_path: Path) -> None:
    s = sample()
    text = text_of(render_statement(s), tmp_path)
    assert "Monthly statement — November 2026" in text
    assert "Alice Rossi (alice)" in text and "U1000001" in text
    assert "IT60 **** **** **** **** ***3 456" in text
    assert "IT60X0542811101000000123456" not in text and "0542811101" not in text
    for figure in (
        f"${s.pnl_usd:,.2f}",
        "20.00%",
        f"${s.commission_usd:,.2f}",
        "1 USD = 0.9213 EUR on 30 Nov 2026",
        f"€{s.pnl_billed:,.2f}",
        f"€{s.commission_billed:,.2f}",
        "Adjustment 2026-10",
        "€1.84",
        f"€{s.amount_due:,.2f}",
        "Commission due",
    ):
        assert figure in text, figure
    for line in s.days:
        assert f"{line.day:%a %d %b}" in text
        cumulative = (
            f"−${-line.cumulative:,.2f}" if line.cumulative < 0 else f"${line.cumulative:,.2f}"
        )
        assert cumulative in text
    assert "Page 1 of 2" in text and "Page 2 of 2" in text


def test_a_losing_month_states_no_commission(tmp_path: Path) -> None:
    loss = Decimal("-252.60")
    s = dataclasses.replace(
        sample(),
        currency="USD",
        fx_rate=Decimal(1),
        fx_date=None,
        pnl_usd=loss,
        realised_usd=loss,
        commission_usd=Decimal(0),
        commission_billed=Decimal(0),
        pnl_billed=loss,
        adjustments=(),
        amount_due=Decimal(0),
        is_payable=False,
    )
    text = text_of(render_statement(s), tmp_path)
    assert "No commission this month: P&L not positive" in text
    assert "−$252.60" in text and "Exchange rate" not in text


def test_month_to_date_and_no_trades(tmp_path: Path) -> None:
    s = dataclasses.replace(sample(), complete=False, period_end=date(2026, 11, 25), days=())
    text = text_of(render_statement(s), tmp_path)
    assert "month to date, through 25 Nov 2026; not final" in text
    assert "No trades and no positions this month." in text
    assert "Page 1 of 1" in text


def test_a_long_table_repeats_its_header_on_the_next_page(tmp_path: Path) -> None:
    base = sample()
    days = tuple(
        DayLine(
            date(2026, 1, 1) + timedelta(days=i),
            Decimal(1),
            Decimal(0),
            Decimal(1),
            Decimal(i + 1),
            2,
        )
        for i in range(45)
    )
    text = text_of(render_statement(dataclasses.replace(base, days=days)), tmp_path)
    assert text.count("Unrealised chg") >= 2
    assert "Page 3 of 3" in text or "Page 2 of 2" in text


def test_page_one_renders_to_a_png(tmp_path: Path) -> None:
    pdf = tmp_path / "s.pdf"
    pdf.write_bytes(render_statement(sample()))
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "50",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    png = (tmp_path / "page.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert abs(height / width - 297 / 210) < 0.01  # A4 portrait
    assert len(png) > 20_000  # text, table and chart, not a blank page


def test_the_same_statement_gives_the_same_bytes_in_another_process() -> None:
    here = render_statement(sample())
    assert render_statement(sample()) == here
    there = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bench.statements import sample; "
            "from spreadpilot.adapters.pdf.statement_pdf import render_statement; "
            "sys.stdout.buffer.write(render_statement(sample()))",
        ],
        capture_output=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert there == here
    assert render_statement(dataclasses.replace(sample(), follower_name="Alice Bianchi")) != here


@pytest.mark.parametrize("currency, sign", [("EUR", "€"), ("USD", "$")])
def test_billing_currency_symbol(currency: str, sign: str, tmp_path: Path) -> None:
    s: Statement = dataclasses.replace(sample(), currency=currency)
    assert f"{sign}{s.amount_due:,.2f}" in text_of(render_statement(s), tmp_path)
