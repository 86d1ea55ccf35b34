"""Benchmarks of the IB Gateway simulator (ibsim) with the real ib_async client on loopback.

Prints figures and ratios against the issue's targets (never asserts):

- connect time of `IB().connect(...)` (median, p99) for a 1-account and a
  500-account (advisor) gateway;
- order-ack latency (p50/p99): `ib.placeOrder(...)` to the client's first
  openOrder/orderStatus for that order, one resting Bull Put BAG limit order per
  account (a credit far above the natural, so nothing fills) for 1, 10, 100 and
  500 accounts, with pacing on and off. Sends are paced at IB's 50 messages/s
  per connection (ib_async's own throttle off), spread over ceil(N/100)
  connections; small N repeat rounds (place, ack, reqGlobalCancel) for samples;
- pacing off: 500 accounts' orders sent at once over 10 connections (clientIds
  1..10 on one asyncio loop) until every order is acknowledged.

The gateway runs as the tests run it: build_gateway on a SimClock (10:00 New
York on 2026-11-24, options quoted) in its own thread; ib_async on the main
thread's loop. Gateway and client share one heap and one GIL here (a real
gateway is another process): set-up objects are frozen out of the garbage
collector before each timed part, and the longest GC pause within it is
printed. p99 of 20 connects is their maximum. Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import date
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ib_async import IB, ComboLeg, Contract, LimitOrder, Option, Trade, util
from ib_async import __version__ as ib_async_version

from ibsim.scenario import Scenario, build_gateway
from ibsim.server import Gateway
from spreadpilot.domain.calendar import MarketCalendar, ny_datetime
from spreadpilot.platform.clock import SimClock

DAY = date(2026, 11, 24)  # a Tuesday, NYSE open
START = ny_datetime(DAY, clock_time(10, 0))
EXPIRY = f"{DAY:%Y%m%d}"
HOST = "127.0.0.1"

CONNECTS = 20
ACCOUNT_COUNTS = (1, 10, 100, 500)
#: IB's pacing limit, messages per second per connection; the paced runs send at it.
RATE = 50
#: Paced runs: accounts per connection (100 = two seconds of sustained 50/s each).
ACCOUNTS_PER_CONNECTION = 100
#: Paced runs repeat rounds (one order per account, then a global cancel) to this many samples.
MIN_SAMPLES = 50
BURST_ACCOUNTS = 500
BURST_CONNECTIONS = 10
BURST_REPEATS = 3
TIMEOUT = 30.0

TARGET_ACK_P50 = 0.002  # seconds
TARGET_BURST = 1.0  # seconds, pacing off, 500 accounts over 10 connections


def percentile(samples: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.2f} ms"


def account_names(n: int) -> list[str]:
    return [f"DU{i:06d}" for i in range(1, n + 1)]


def start_gateway(accounts: int, pacing: bool, calendar: MarketCalendar) -> Gateway:
    scenario = Scenario.parse(
        {
            "clock": {"start": START, "speed": "sim"},
            "accounts": account_names(accounts),
            "pacing": {"enabled": pacing},
        }
    )
    return build_gateway(scenario, SimClock(START), calendar=calendar).start_in_thread()


# -- connect ------------------------------------------------------------------------------


def connect_times(gw: Gateway, count: int) -> list[float]:
    """Seconds of each `IB().connect(...)` (sync API), a fresh clientId each time."""
    samples = []
    for k in range(count):
        ib = IB()
        t0 = time.perf_counter()
        ib.connect(HOST, gw.port, clientId=k + 1, timeout=TIMEOUT)
        samples.append(time.perf_counter() - t0)
        ib.disconnect()
    return samples


# -- garbage collection ---------------------------------------------------------------------


class GcWatch:
    """Longest garbage-collector pause (any thread) while `timing`; set-up objects frozen.

    Gateway and client share one heap here (a real gateway is another process),
    so everything built before the timed part is moved out of the collector's
    reach (gc.freeze) and released again afterwards (gc.unfreeze).
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.timing = False
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self.timing:
            self.longest = max(self.longest, time.perf_counter() - self._began)

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self.longest = 0.0
        self.timing = True

    def stop(self) -> float:
        self.timing = False
        gc.unfreeze()
        return self.longest


GC = GcWatch()


# -- orders -------------------------------------------------------------------------------


class Client:
    """One ib_async connection: paced sends, and the first ack time of every order."""

    def __init__(self, client_id: int, tally: Tally) -> None:
        self.ib = IB()
        self.ib.client.MaxRequests = 0  # the benchmark paces itself (at IB's limit)
        self.client_id = client_id
        self.tally = tally
        self.sent: dict[int, float] = {}
        self.acked: dict[int, float] = {}
        self.errors: list[int] = []
        self.trades: list[Trade] = []
        self.next_slot = 0.0
        self.ib.openOrderEvent += self._ack
        self.ib.orderStatusEvent += self._ack
        self.ib.errorEvent += self._error

    async def connect(self, port: int) -> None:
        await self.ib.connectAsync(HOST, port, clientId=self.client_id, timeout=TIMEOUT)

    def _ack(self, trade: Trade) -> None:
        order_id = trade.order.orderId
        if order_id in self.sent and order_id not in self.acked:
            self.acked[order_id] = time.perf_counter()
            self.tally.acked += 1
            if self.tally.acked >= self.tally.expected:
                self.tally.done.set()

    def _error(self, req_id: int, code: int, *_: Any) -> None:
        if not 2100 <= code < 2200 and code != 202:  # farm notices, cancel confirmations
            self.errors.append(code)

    async def slot(self, rate: float | None) -> None:
        """Wait for this connection's next send slot (every 1/rate s, never bunched)."""
        if rate is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.next_slot = max(self.next_slot, now)
        if self.next_slot > now:
            await asyncio.sleep(self.next_slot - now)
        self.next_slot += 1 / rate

    def place(self, bag: Contract, order: LimitOrder) -> Trade:
        order.orderId = self.ib.client.getReqId()
        self.sent[order.orderId] = time.perf_counter()
        trade = self.ib.placeOrder(bag, order)
        self.trades.append(trade)
        return trade

    def latencies(self) -> list[float]:
        return [self.acked[k] - t for k, t in self.sent.items() if k in self.acked]


class Tally:
    """Acks seen across every client of a run; `done` is set at `expected`."""

    def __init__(self) -> None:
        self.acked = 0
        self.expected = 0
        self.done = asyncio.Event()

    def expect(self, more: int) -> None:
        self.expected += more
        self.done.clear()


async def resting_bag(ib: IB, gw: Gateway) -> tuple[Contract, Decimal]:
    """A qualified Bull Put BAG (puts 3 and 5 below spot) and a credit that rests."""
    spot = int(gw.call(lambda: gw.market.underlying(gw.clock.now())))
    short = Option("QQQ", EXPIRY, spot - 3, "P", "SMART", currency="USD")
    long_ = Option("QQQ", EXPIRY, spot - 5, "P", "SMART", currency="USD")
    await ib.qualifyContractsAsync(short, long_)
    bag = Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )
    s, lg = gw.call(lambda: [gw.quotes.quote(c.conId, gw.clock.now()) for c in (short, long_)])
    natural = s.bid - lg.ask
    return bag, (natural + Decimal("1.00")).quantize(Decimal("0.01"))  # far above: rests


def credit_order(credit: Decimal, account: str) -> LimitOrder:
    """A positive credit is a negative BAG price (the broker adapter's convention)."""
    return LimitOrder("BUY", 1, -float(credit), account=account, tif="DAY", orderRef="bench")


async def open_clients(gw: Gateway, count: int, tally: Tally) -> list[Client]:
    clients = [Client(k + 1, tally) for k in range(count)]
    await asyncio.gather(*(c.connect(gw.port) for c in clients))
    return clients


async def wait_acked(tally: Tally) -> bool:
    try:
        await asyncio.wait_for(tally.done.wait(), TIMEOUT)
    except TimeoutError:
        return False
    return True


async def paced_run(gw: Gateway, accounts: list[str], connections: int) -> dict[str, Any]:
    """Rounds of one resting order per account at <= 50 msg/s per connection."""
    tally = Tally()
    clients = await open_clients(gw, connections, tally)
    bag, credit = await resting_bag(clients[0].ib, gw)
    await asyncio.sleep(1.0)  # the start-up requests leave the one-second pacing window
    GC.start()
    rounds = max(1, math.ceil(MIN_SAMPLES / len(accounts)))
    loop = asyncio.get_running_loop()
    began = loop.time()
    for k, client in enumerate(clients):  # stagger the connections' slots evenly
        client.next_slot = began + k / (RATE * connections)
    complete = True
    send_seconds: list[float] = []
    for _ in range(rounds):
        tally.expect(len(accounts))
        mine = [accounts[k::connections] for k in range(connections)]

        async def feed(client: Client, owned: list[str]) -> None:
            first = None
            for account in owned:
                await client.slot(RATE)
                first = first or loop.time()
                client.place(bag, credit_order(credit, account))
            if first is not None and len(owned) > 1:
                # sends per second at the connection's own pace (n-1 intervals)
                send_seconds.append((loop.time() - first) / (len(owned) - 1))

        await asyncio.gather(*(feed(c, owned) for c, owned in zip(clients, mine, strict=True)))
        complete &= await wait_acked(tally)
        if rounds > 1:  # cancel everything so each account holds one resting order at most
            await clients[0].slot(RATE)
            trades = [t for c in clients for t in c.ib.openTrades()]
            clients[0].ib.reqGlobalCancel()
            deadline = loop.time() + TIMEOUT
            while any(not t.isDone() for t in trades) and loop.time() < deadline:
                await asyncio.sleep(0.002)
    gc_pause = GC.stop()
    latencies = [x for c in clients for x in c.latencies()]
    errors = [e for c in clients for e in c.errors]
    connected = all(c.ib.isConnected() for c in clients)
    filled = sum(1 for c in clients for t in c.trades if t.filled() > 0)
    for c in clients:
        c.ib.disconnect()
    return {
        "latencies": latencies,
        "complete": complete,
        "errors": errors,
        "connected": connected,
        "rate": 1 / statistics.median(send_seconds) if send_seconds else None,
        "rounds": rounds,
        "gc": gc_pause,
        "filled": filled,
    }


async def burst_run(gw: Gateway, accounts: list[str], connections: int) -> dict[str, Any]:
    """Every account's order sent at once, round-robin over the connections."""
    tally = Tally()
    clients = await open_clients(gw, connections, tally)
    bag, credit = await resting_bag(clients[0].ib, gw)
    await asyncio.sleep(0.2)  # let the start-up replies settle
    tally.expect(len(accounts))
    GC.start()
    t0 = time.perf_counter()
    for k, account in enumerate(accounts):
        clients[k % connections].place(bag, credit_order(credit, account))
    sent = time.perf_counter() - t0
    complete = await wait_acked(tally)
    gc_pause = GC.stop()
    filled = sum(1 for c in clients for t in c.trades if t.filled() > 0)
    total = max(a for c in clients for a in c.acked.values()) - t0
    latencies = [x for c in clients for x in c.latencies()]
    errors = [e for c in clients for e in c.errors]
    for c in clients:
        c.ib.disconnect()
    return {
        "total": total,
        "sent": sent,
        "latencies": latencies,
        "complete": complete,
        "errors": errors,
        "gc": gc_pause,
        "filled": filled,
    }


# -- main ---------------------------------------------------------------------------------


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    loop = util.getLoop()
    calendar = MarketCalendar()
    calendar.is_trading_day(DAY)  # load the NYSE calendar once, outside every timing

    print(
        "ibsim gateway (own thread, SimClock 10:00 New York 2026-11-24) + ib_async "
        f"{ib_async_version} on loopback"
    )
    print(f"connect: IB().connect(...), {CONNECTS} connects, fresh clientId each")
    for n in (1, 500):
        gw = start_gateway(n, pacing=True, calendar=calendar)
        try:
            connect_times(gw, 3)  # warm-up
            GC.start()
            samples = connect_times(gw, CONNECTS)
            gc_pause = GC.stop()
        finally:
            gw.stop_thread()
        print(
            f"  {n:3d} account(s): median {ms(statistics.median(samples))}"
            f"  p99 {ms(percentile(samples, 99))}  (longest GC pause {ms(gc_pause)})"
        )

    print(
        "order ack: placeOrder -> first openOrder/orderStatus of that order; one resting BAG "
        f"per account, paced {RATE} msg/s per connection (ib_async throttle off); "
        f"under {MIN_SAMPLES} accounts, rounds (place all, acks, reqGlobalCancel) "
        f"to {MIN_SAMPLES} samples"
    )
    print(
        "  pacing accts conns orders   p50 ms  p50/target   p99 ms   max ms  send/s/conn"
        "  err100  violations  all acked  connected  filled  GC max ms"
    )
    for pacing in (True, False):
        for n in ACCOUNT_COUNTS:
            connections = math.ceil(n / ACCOUNTS_PER_CONNECTION)
            gw = start_gateway(n, pacing=pacing, calendar=calendar)
            try:
                r = loop.run_until_complete(paced_run(gw, account_names(n), connections))
                violations = gw.pacing_violations
            finally:
                gw.stop_thread()
            lat = r["latencies"]
            p50 = statistics.median(lat)
            rate = f"{r['rate']:11.1f}" if r["rate"] else f"{'n/a':>11}"
            others = sorted(set(r["errors"]) - {100})
            print(
                f"  {'on' if pacing else 'off':6} {n:5d} {connections:5d} {len(lat):6d}"
                f" {p50 * 1e3:8.2f} {p50 / TARGET_ACK_P50:10.2f}x"
                f" {percentile(lat, 99) * 1e3:8.2f} {max(lat) * 1e3:8.2f}  {rate}"
                f"  {r['errors'].count(100):6d}  {violations:10d}  {yes(r['complete']):>9}"
                f"  {yes(r['connected']):>9}  {r['filled']:6d}  {r['gc'] * 1e3:9.2f}"
                + (f"  other errors {others}" if others else "")
            )
    print(
        f"  target: p50 < {TARGET_ACK_P50 * 1e3:.0f} ms; pacing on: {RATE} msg/s per connection "
        "sustained with no error 100 (expected 0)"
    )

    print(
        f"pacing off: {BURST_ACCOUNTS} accounts' orders sent at once over {BURST_CONNECTIONS} "
        f"connections (clientIds 1..{BURST_CONNECTIONS}, one asyncio loop, ib_async throttle off)"
    )
    totals = []
    for _ in range(BURST_REPEATS):
        gw = start_gateway(BURST_ACCOUNTS, pacing=False, calendar=calendar)
        try:
            r = loop.run_until_complete(
                burst_run(gw, account_names(BURST_ACCOUNTS), BURST_CONNECTIONS)
            )
        finally:
            gw.stop_thread()
        totals.append(r["total"])
        lat = r["latencies"]
        print(
            f"  all acked in {ms(r['total'])} ({r['total'] / TARGET_BURST:.2f}x of target)"
            f"  sending took {ms(r['sent'])}  per-order ack incl. queueing:"
            f" p50 {ms(statistics.median(lat))} p99 {ms(percentile(lat, 99))}"
            f"  acked {len(lat)}/{BURST_ACCOUNTS}  filled {r['filled']}"
            f"  errors {sorted(set(r['errors']))}"
            f"  GC max {ms(r['gc'])}"
        )
    median = statistics.median(totals)
    print(
        f"  median of {BURST_REPEATS}: {ms(median)}; target < {TARGET_BURST:.0f} s:"
        f" {median / TARGET_BURST:.2f}x of target"
    )
    print(f"(date {date.today()}, python {sys.version.split()[0]})")  # noqa: DTZ011


if __name__ == "__main__":
    main()
