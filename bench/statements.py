"""PDF statements per second (fpdf2, the vendored DejaVu Sans subset).

Renders N statements of a full month (20 trading days, an FX-billed payable
month with an adjustment line) in one process, then across a pool of 2
processes (the machine's 2 cores; `spreadpilot report` and the mailer render
one follower after another, a month-end run can fan out the same way). Prints
the first (cold) render, the mean per statement, statements per second and the
ratio to the target (over 50 per second), and the PDF size.

`--docs-image PATH` also writes page 1 of the sample statement as a PNG (via
poppler's pdftoppm), the image the README shows.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spreadpilot.adapters.pdf.statement_pdf import render_statement
from spreadpilot.domain.calendar import MarketCalendar
from spreadpilot.domain.money import cents
from spreadpilot.domain.statement import Adjustment, DayLine, Operator, Statement, mask_iban

COUNT, TARGET, WORKERS = 200, 50.0, 2


def sample(n: int = 0) -> Statement:
    """A realistic November 2026: a Bull Put most days, two losing days, EUR billing."""
    cal = MarketCalendar()
    days, cumulative = [], Decimal(0)
    sessions = [date(2026, 11, d) for d in range(1, 31) if cal.is_trading_day(date(2026, 11, d))]
    for i, day in enumerate(sessions):
        pnl = Decimal("-252.60") if i in (6, 14) else Decimal("147.40") - Decimal(i % 3) * 13
        cumulative += pnl
        days.append(DayLine(day, pnl, Decimal(0), pnl, cumulative, 4))
    rate, fx = Decimal("0.20"), Decimal("0.9213")
    adjustment = Adjustment(
        "2026-10",
        "2026-10 recomputed after its statement was mailed",
        Decimal("10.00"),
        Decimal("1.84"),
    )
    due = cents(cumulative * rate * fx) + adjustment.commission_billed
    return Statement(
        operator=Operator(
            "SpreadPilot Capital",
            "billing@spreadpilot.example",
            ("Via Roma 1", "20121 Milano, Italy"),
        ),
        follower_id=f"alice{n or ''}",
        follower_name="Alice Rossi",
        follower_email="alice@example.com",
        iban_masked=mask_iban("IT60X0542811101000000123456"),
        ib_account="U1000001",
        month="2026-11",
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        complete=True,
        realised_usd=cumulative,
        unrealised_change_usd=Decimal(0),
        pnl_usd=cumulative,
        rate=rate,
        commission_usd=cents(cumulative * rate),
        currency="EUR",
        fx_rate=fx,
        fx_date=date(2026, 11, 30),
        pnl_billed=cents(cumulative * fx),
        commission_billed=cents(cumulative * rate * fx),
        adjustments=(adjustment,),
        amount_due=due,
        is_payable=True,
        high_water_mark=False,
        carried_loss_usd=Decimal(0),
        days=tuple(days),
    )


def render_many(start: int, count: int) -> int:
    return sum(len(render_statement(sample(start + i))) for i in range(count))


def main() -> None:
    if "--docs-image" in sys.argv:
        target = Path(sys.argv[sys.argv.index("--docs-image") + 1])
        with tempfile.TemporaryDirectory() as tmp:
            pdf = Path(tmp) / "statement.pdf"
            pdf.write_bytes(render_statement(sample()))
            stem = Path(tmp) / "page"
            subprocess.run(
                [
                    "pdftoppm",
                    "-png",
                    "-r",
                    "100",
                    "-f",
                    "1",
                    "-l",
                    "1",
                    "-singlefile",
                    str(pdf),
                    str(stem),
                ],
                check=True,
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stem.with_suffix(".png").read_bytes())
        print(f"wrote {target}")
        return
    t0 = time.perf_counter()
    size = len(render_statement(sample()))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_many(1, COUNT)
    one = time.perf_counter() - t0
    per_worker = COUNT // WORKERS
    with ProcessPoolExecutor(WORKERS) as pool:
        list(pool.map(render_many, [0] * WORKERS, [1] * WORKERS))  # warm the workers
        t0 = time.perf_counter()
        list(pool.map(render_many, range(0, COUNT, per_worker), [per_worker] * WORKERS))
        pooled = time.perf_counter() - t0
    print(f"Statements: 20 trading days, EUR billing, one adjustment; {size:,} bytes each")
    print(f"first render (cold, font parsed): {cold * 1000:.0f} ms")
    for label, seconds in (("1 process", one), (f"{WORKERS} processes", pooled)):
        rate = COUNT / seconds
        print(
            f"{label:>12}: {COUNT} in {seconds:.2f} s, {seconds / COUNT * 1000:.1f} ms each, "
            f"{rate:.0f} statements/s ({rate / TARGET:.2f}x the 50/s target)"
        )


if __name__ == "__main__":
    main()
