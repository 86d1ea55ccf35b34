"""Alert routing under a burst: 1,000 alerts across 50 Telegram chats at once.

The real router (SQLite store, store-backed flood limiter, real
python-telegram-bot client) sends to the local fake Bot API server
(tests/fakes/telegram_server.py), which enforces Telegram's limits itself and
answers 429 to any message over them. Real time, real limits (1 msg/s per
chat, 30 msg/s per bot; no scaling): with 50 chats the bot-wide 30/s binds.
16 threads play concurrent function instances; every alert "arrives" at the
start of the burst; 1 in 5 alerts repeats the previous alert's dedup key
(suppressed). Prints throughput, latency from arrival to acceptance by the
fake (p50/p95), messages sent after dedup, % of the binding flood limit used
(target >= 90%) and 429s provoked (target 0).
"""

from __future__ import annotations

import logging
import queue
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.adapters.notify.telegram_chat import TelegramChat
from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SystemClock
from spreadpilot.ports.store import Filter
from spreadpilot.services.alert_router import AlertRouter, RouterConfig
from tests.fakes.telegram_server import TOKEN, FakeTelegramServer

ALERTS, CHATS, WORKERS = 1_000, 50, 16
PER_CHAT, PER_BOT = 1, 30
MARGIN = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05  # the default setting


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # per-alert log lines would drown the report
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = FakeTelegramServer(chat_per_second=PER_CHAT, bot_per_second=PER_BOT)
    server.start()
    chat = TelegramChat(lambda: TOKEN, base_url=server.base_url, timeout=10)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.db")
        config = RouterConfig(
            routes={Severity.WARNING: ("telegram",)},
            follower_chats={f"f{i:02d}": str(1000 + i) for i in range(CHATS)},
            chat_per_second=PER_CHAT,
            bot_per_second=PER_BOT,
            margin=MARGIN,
        )
        clock = SystemClock()
        router = AlertRouter(store, clock, config, chat, None)
        now = clock.now()
        alerts: list[Alert] = []
        for n in range(ALERTS):
            # every fifth alert repeats the previous one (same follower, same dedup key)
            m = n - 1 if n % 5 == 4 else n
            follower = f"f{m % CHATS:02d}"
            alerts.append(
                Alert.new(
                    AlertType.PARTIAL_FILL,
                    f"{follower}: filled 1 of 2 contracts (alert {n})",
                    at=now,
                    dedup_key=f"k{m}-{follower}",
                    source="bench",
                    follower_id=follower,
                )
            )
        work: queue.Queue[tuple[int, Alert]] = queue.Queue()
        for n, a in enumerate(alerts):
            work.put((n, a))
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while True:
                    try:
                        n, a = work.get_nowait()
                    except queue.Empty:
                        break
                    router.route(a, message_key=f"m{n}")
                while store.query(C.ALERT_DELIVERIES, [Filter("status", "==", "PENDING")]):
                    router.retry_due(limit=50)
                    time.sleep(0.01)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        started = time.monotonic()
        start_at = datetime.now(UTC)
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        docs = [s.data for s in store.query(C.ALERT_DELIVERIES)]
    chat.close()
    server.stop()
    if errors:
        raise errors[0]

    accepted = server.accepted()
    times = sorted(m.at.timestamp() for m in accepted)
    span = times[-1] - times[0]
    latencies = sorted((m.at - start_at).total_seconds() for m in accepted)
    by_status = {s: sum(1 for d in docs if d["status"] == s) for s in ("SENT", "PENDING", "FAILED")}
    worst_chat = max(
        _max_in_window([m.at.timestamp() for m in accepted if m.chat_id == c], 1.0)
        for c in {m.chat_id for m in accepted}
    )
    worst_bot = _max_in_window(times, 1.0)
    used = (len(times) - 1) / (span * PER_BOT) * 100 if span > 0 else 0.0
    unique = len({a.dedup_key for a in alerts})
    print("alert routing bench: burst of 1,000 alerts across 50 Telegram chats (real time)")
    print(
        f"  limits            {PER_CHAT} msg/s per chat, {PER_BOT} msg/s per bot (binding), "
        f"periods stretched {MARGIN:.0%}"
    )
    print(f"  workers           {WORKERS} threads (concurrent router instances), SQLite store")
    print(f"  alerts            {ALERTS} ({unique} distinct dedup keys)")
    print(f"  messages sent     {len(accepted)} (after dedup; deliveries {by_status})")
    print(f"  wall time         {wall:.1f} s (sending span {span:.1f} s)")
    print(f"  throughput        {len(accepted) / wall:.1f} msg/s overall")
    print(
        f"  latency           p50 {statistics.median(latencies):.2f} s, "
        f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s (arrival -> accepted)"
    )
    print(f"  flood limit used  {used:.1f}% of {PER_BOT} msg/s (target >= 90%)")
    print(f"  busiest windows   {worst_chat} msg/s in one chat, {worst_bot} msg/s across chats")
    print(f"  429s provoked     {len(server.refused(429))} (target 0)")


def _max_in_window(times: list[float], period: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - period:
            j += 1
        best = max(best, i - j + 1)
    return best


if __name__ == "__main__":
    main()
