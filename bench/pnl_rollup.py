"""Monthly P&L rollup for 100, 1,000 and 10,000 followers x 21 trading days.

Each follower's account holds, every trading day of October 2026, the raw
inputs the agent writes: one fills document (a Bull Put opened as 2 legs at
09:31; on one day in four it is closed early with 2 more legs) and one
post-close marks document; one day in seven the spread expires in the money
(assignment and exercise, settled from the close price). The store is the
embedded SQLite store (what `make demo` and the CLI use).

Prints, per size:
- ``00:10 job``: what the monthly tick does, the daily rows being there (the
  16:30 ET jobs wrote them): the last `pnl_recompute_days` trading days
  recomputed from the raw executions (late data), then the monthly rows with
  commission and the statement documents; and its ratio to the target
  (10,000 followers' month in under 10 s on 2 cores);
- ``full recompute``: every day of the month recomputed from the raw
  executions first (`spreadpilot report --month`, a backfill), and the daily
  rows it writes per second;
- the process's peak memory.
Writing the inputs (setup) is not timed.
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
import time as timer
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.calendar import MarketCalendar, ny_datetime
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.pnl import option
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.settings import load_settings
from spreadpilot.ports.store import Transaction
from spreadpilot.services import pnl_records as R
from spreadpilot.services.pnl import PnlRollup

SIZES = [int(a) for a in sys.argv[1:]] or [100, 1_000, 10_000]
TARGET_SECONDS = 10.0  # 10,000 followers
MONTH = (2026, 10)
FEE = Decimal("0.65")


def trading_days() -> list[date]:
    cal = MarketCalendar()
    days = [date(2026, 10, d) for d in range(1, 32) if cal.is_trading_day(date(2026, 10, d))]
    return days[:21]


def seed(store: SqliteStore, followers: int, days: list[date]) -> None:
    """The raw inputs, written in one transaction per day (setup, not timed)."""
    ids = [f"f{i:05d}" for i in range(followers)]

    def followers_txn(txn: Transaction) -> None:
        for n, fid in enumerate(ids):
            f = Follower(
                id=fid,
                name=f"Follower {n}",
                email=f"{fid}@example.com",
                iban="DE89370400440532013000",
                ib_account=f"U{n + 1000000}",
                gateway_id="gw-main",
                commission_rate=Decimal("0.20"),
            )
            txn.set(C.FOLLOWERS, fid, f.to_doc())

    store.transaction(followers_txn)
    for d, day in enumerate(days):
        docs = day_docs(ids, d, day)

        def day_txn(txn: Transaction, docs: list[tuple[str, str, dict[str, Any]]] = docs) -> None:
            for collection, key, doc in docs:
                txn.set(collection, key, doc)

        store.transaction(day_txn)


def day_docs(ids: list[str], d: int, day: date) -> list[tuple[str, str, dict[str, Any]]]:
    """One day's fills and marks documents for every follower."""
    short, long = option("QQQ", day, "P", "488"), option("QQQ", day, "P", "486")
    close = Decimal("480.00") if d % 7 == 3 else Decimal("490.00")
    opened, closed = ny_datetime(day, time(9, 31)), ny_datetime(day, time(14, 2))
    out: list[tuple[str, str, dict[str, Any]]] = []
    for n, fid in enumerate(ids):
        account = f"U{n + 1000000}"
        legs = [(short, "SLD", "1.25", opened), (long, "BOT", "0.50", opened)]
        if (n + d) % 4 == 0:  # closed early for a 0.05 debit
            legs += [(short, "BOT", "0.10", closed), (long, "SLD", "0.05", closed)]
        fills = [
            R.fill_doc(
                exec_id=f"{account}.{day:%Y%m%d}.{i}",
                at=at,
                instrument=ins,
                side=side,
                quantity=2,
                price=Decimal(price),
                commission=FEE * 2,
                order_ref=f"SP-{day:%Y%m%d}-QQQ-{fid}-OPEN",
            )
            for i, (ins, side, price, at) in enumerate(legs)
        ]
        key = R.doc_id(account, day)
        out.append((C.FILLS, key, R.fills_day_doc(account, fid, day, fills, closed)))
        marks = R.marks_doc(account, fid, day, closed, {"QQQ": close}, [], session_over=True)
        out.append((C.MARKS, key, marks))
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(followers: int, days: list[date]) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite3", durable=False)
        seed(store, followers, days)
        clock = SimClock(datetime(2026, 11, 1, 4, 10, tzinfo=UTC))
        settings = load_settings(data_dir=Path(tmp))
        rollup = PnlRollup(store, clock, MarketCalendar(), settings)
        t0 = timer.perf_counter()
        full = rollup.month_job(*MONTH, full=True)
        recompute = timer.perf_counter() - t0
        t0 = timer.perf_counter()
        run = rollup.month_job(*MONTH)
        job = timer.perf_counter() - t0
        rows = len(store.query(C.PNL_DAILY))
        store.close()
        assert run.rows == full.rows == followers, run.summary()
        return job, recompute, rows


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    days = trading_days()
    print(f"Monthly P&L rollup, {len(days)} trading days (October 2026), SQLite store")
    print(
        f"{'followers':>10} {'00:10 job':>10} {'vs target':>10} {'full recompute':>15} "
        f"{'daily rows/s':>13} {'peak MiB':>9}"
    )
    for n in SIZES:
        job, recompute, rows = measure(n, days)
        budget = TARGET_SECONDS * n / 10_000
        print(
            f"{n:>10,} {job:>9.2f}s {job / budget:>9.2f}x {recompute:>14.2f}s "
            f"{rows / recompute:>13,.0f} {peak_mib():>9.0f}"
        )
    print(
        "00:10 job: the monthly tick (the last trading days recomputed for late data, then "
        "the monthly rows, commissions and statements); vs target: its time / (10 s scaled "
        "to the size), below 1.00x meets it. full recompute: every day of the month from "
        "the raw executions (spreadpilot report --month, backfills)."
    )


if __name__ == "__main__":
    main()
