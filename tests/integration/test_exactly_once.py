"""Exactly once, shown with real OS processes on one embedded store and bus:
a poller SIGKILLed between claim and publish, ten more triggers racing in pairs,
the signal message delivered three times to two racing dispatcher runners.
The result must be one signal and one intent (and one order message) per
active follower: no more, no fewer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spreadpilot.platform import collections as C
from tests.support.embedded import ACTIVE, REPO, Platform, bull_put_row, make_platform

pytestmark = pytest.mark.slow
SID = "2026-11-24_QQQ"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPREADPILOT_")}
    env.update(
        {
            "SPREADPILOT_DATA_DIR": str(tmp_path),
            "SPREADPILOT_CLAIM_LEASE_SECONDS": "5",
            "SPREADPILOT_SIGNAL_READS_PER_RUN": "1",
            "PYTHONPATH": str(REPO / "shared") + os.pathsep + str(REPO),
            **extra,
        }
    )
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spreadpilot.cli.main", *args]


def _run_all(cmds: list[list[str]], env: dict[str, str]) -> list[str]:
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in cmds
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


def _kill_at_failpoint(cmd: list[str], env: dict[str, str], point: str) -> None:
    proc = subprocess.Popen(
        cmd,
        env={**env, "SPREADPILOT_FAILPOINTS": f"{point}=pause"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if f"FAILPOINT {point} reached" in line:
            break
        assert time.monotonic() < deadline, "the fail point was never reached"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    p = make_platform(tmp_path)
    p.write_sheet(bull_put_row())
    return p


def test_kill_between_claim_and_publish_then_races_and_redeliveries(
    p: Platform, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    _kill_at_failpoint(_cli("poll", "--at", "2026-11-24T09:31:00"), env, "signal.after_claim")
    claimed = p.c.store.get(C.SIGNALS, SID)
    assert claimed is not None and not claimed["published"]  # claimed, never published
    assert p.c.bus.pull("dispatcher", 10, 1) == []

    # Ten triggers after the dead holder's lease ran out, racing two at a time.
    for second in range(10, 20, 2):
        outs = _run_all(
            [
                _cli("poll", "--at", f"2026-11-24T09:31:{second}"),
                _cli("poll", "--at", f"2026-11-24T09:31:{second + 1}"),
            ],
            env,
        )
        assert all("ALREADY_CLAIMED" in o for o in outs), outs
    p.at("09:31:25")  # the test's own simulated clock catches up with the processes'
    signal_messages = p.c.bus.pull("dispatcher", 10, 1)
    assert len(signal_messages) == 1  # exactly one signal published
    claimed = p.c.store.get(C.SIGNALS, SID)
    assert claimed is not None and claimed["published"]

    # The signal is delivered three times (two redeliveries), to two racing runners.
    p.c.bus.nack("dispatcher", [signal_messages[0].ack_id])
    for _ in range(2):
        p.c.bus.publish("signals", signal_messages[0].data, signal_messages[0].attributes)
    outs = _run_all(
        [
            _cli("deliver", "--at", "2026-11-24T09:31:40"),
            _cli("deliver", "--at", "2026-11-24T09:31:40"),
        ],
        env,
    )
    p.at("09:32")
    delivered = [line for o in outs for line in o.splitlines() if line.startswith("delivered")]
    assert sum(int(line.split()[1]) for line in delivered) >= 3

    assert [s.id for s in p.c.store.query(C.SIGNALS)] == [SID]
    intents = sorted(s.id for s in p.c.store.query(C.ORDER_INTENTS))
    assert intents == sorted(f"SP-20261124-QQQ-{f}-OPEN" for f in ACTIVE)
    orders = p.drain("agent-orders")
    assert sorted(o["order_ref"] for o in orders) == intents  # one message per intent
    assert p.c.bus.pull("dispatcher-dead-letter-hold", 10, 1) == []


def test_kill_after_publish_before_marking_still_gives_one_intent_each(
    p: Platform, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    _kill_at_failpoint(_cli("poll", "--at", "2026-11-24T09:31:00"), env, "signal.after_publish")
    _run_all([_cli("poll", "--at", "2026-11-24T09:31:10")], env)  # heals: publishes again
    _run_all([_cli("deliver", "--at", "2026-11-24T09:31:20")], env)
    p.at("09:32")
    intents = sorted(s.id for s in p.c.store.query(C.ORDER_INTENTS))
    assert intents == sorted(f"SP-20261124-QQQ-{f}-OPEN" for f in ACTIVE)
    assert sorted(o["order_ref"] for o in p.drain("agent-orders")) == intents
