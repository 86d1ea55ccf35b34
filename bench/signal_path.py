"""Benchmarks of the morning signal path on the embedded platform.

Prints figures and ratios (never asserts): sheet parse time for a year of rows,
one poller run, one dispatch for 10/100/500 followers (and the per-follower
cost ratio), local bus throughput, and peak Python memory of the largest
dispatch. Run with `make bench`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spreadpilot.domain.calendar import MarketCalendar
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.sheet import parse_signal_sheet
from spreadpilot.platform.logs import configure_logging
from spreadpilot.services.followers import save_followers
from tests.support.embedded import DAY, HEADER, bull_put_row, make_platform


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` runs."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def sheet_of_a_year() -> list[list[str]]:
    rows = [HEADER]
    d = DAY - timedelta(days=365)
    while d <= DAY:
        rows.append(bull_put_row(day=d))
        d += timedelta(days=1)
    return rows


def followers(n: int) -> list[Follower]:
    return [
        Follower.model_validate(
            {
                "id": f"f{i:04d}",
                "name": f"Follower {i}",
                "email": f"f{i}@example.com",
                "iban": "DE89370400440532013000",
                "ib_account": f"U{2000000 + i}",
                "gateway_id": f"gw-{i % 4}",
                "commission_rate": "0.2",
            }
        )
        for i in range(n)
    ]


def main() -> None:
    configure_logging("bench", "WARNING", "text")
    calendar = timed(lambda: MarketCalendar().is_trading_day(DAY), 1)
    print(f"NYSE calendar first load (cold start): {calendar * 1e3:6.0f} ms")
    rows = sheet_of_a_year()
    parse = timed(lambda: parse_signal_sheet(rows, DAY), 50)
    print(f"sheet parse, {len(rows) - 1} rows:          {parse * 1e3:8.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        p = make_platform(Path(tmp))
        p.write_sheet(bull_put_row())
        first = timed(lambda: p.c.signal_poller().run(), 1)
        again = timed(lambda: p.c.signal_poller().run(), 20)
        print(f"poller run that claims + publishes:  {first * 1e3:8.2f} ms")
        print(f"poller run after the claim:          {again * 1e3:8.2f} ms")

    per_follower: dict[int, float] = {}
    for n in (10, 100, 500):
        with tempfile.TemporaryDirectory() as tmp:
            p = make_platform(Path(tmp))
            save_followers(p.c.store, followers(n))
            p.write_sheet(bull_put_row())
            p.c.signal_poller().run()
            sid = f"{DAY.isoformat()}_QQQ"
            tracemalloc.start()
            seconds = timed(lambda sid=sid, p=p: p.c.dispatcher().dispatch(sid), 1)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            redo = timed(lambda sid=sid, p=p: p.c.dispatcher().dispatch(sid), 1)
            total = n + 5  # plus the five sample followers
            per_follower[n] = seconds / total
            print(
                f"dispatch {total:4d} followers:  first {seconds * 1e3:8.1f} ms "
                f"({seconds / total * 1e3:5.2f} ms/follower, peak {peak / 1e6:5.1f} MB), "
                f"redelivery {redo * 1e3:8.1f} ms"
            )
    print(
        f"per-follower cost ratio 500 vs 10:   {per_follower[500] / per_follower[10]:8.2f}x "
        "(1.0 = linear)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        p = make_platform(Path(tmp))
        n = 2000
        t0 = time.perf_counter()
        for i in range(n):
            p.c.bus.publish("alerts", b'{"i": %d}' % i)
        pub = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = 0
        while batch := p.c.bus.pull("alerts-hold", 100, 1):
            p.c.bus.ack("alerts-hold", [m.ack_id for m in batch])
            got += len(batch)
        drain = time.perf_counter() - t0
        print(f"local bus: publish {n / pub:8.0f} msg/s, pull+ack {got / drain:8.0f} msg/s")
    print(f"(date {date.today()}, python {sys.version.split()[0]})")  # noqa: DTZ011


if __name__ == "__main__":
    main()
