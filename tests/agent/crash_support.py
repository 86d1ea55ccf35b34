"""Real agent processes against one in-process simulator, for the crash tests.

Every process (the agents spawned here, the simulator and the test itself) runs
on the same `ScaledClock`: the same start (10:00 New York on DAY), the same epoch
(the Unix time the rig was made) and the same speed. So an agent process, the
embedded bus's ack deadlines and claim leases, and the simulator's quotes and
fills all agree on the market time, whatever the real time of day.

The agents are the shipped CLI (``python -m spreadpilot.cli.main agent``) with
the environment a VM's systemd unit gives them (SPREADPILOT_GATEWAYS and a
fixed clientId), sharing the SQLite store and bus of ``SPREADPILOT_DATA_DIR``.
Their JSON logs (stdout) and stderr go to files, read back by the tests.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ibsim.engine import OrderRecord
from ibsim.scenario import Scenario
from ibsim.server import Gateway
from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.domain.orders import OrderIntent, Purpose
from spreadpilot.domain.spread import SpreadKind, VerticalSpread
from spreadpilot.local.functions import load_function
from spreadpilot.local.runner import LocalRunner
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import ScaledClock
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container, use_container
from spreadpilot.ports.store import Store
from tests.agent.recovery_support import publish_to
from tests.execution.conftest import ACCOUNT, GATEWAY_ID, LONG, SHORT, WIDE_QUOTES
from tests.ibsim.conftest import DAY, MakeGateway, ny

REPO = Path(__file__).resolve().parents[2]
SUBSCRIPTION = "agent-orders"
#: Market seconds per real second: the bus's 60 s ack deadline passes in 6 s.
SPEED = 10.0
#: A bound on how long a broken run may hang; never an assertion about speed.
PATIENCE = 90.0


def intent(follower_id: str = "alice", *, quantity: int = 2, day: date = DAY) -> OrderIntent:
    """The executor tests' put vertical 600/598 (mid credit 0.60, natural 0.54)."""
    return OrderIntent.build(
        signal_id=f"{day}-QQQ",
        signal_hash="crash-test",
        trade_date=day,
        ticker="QQQ",
        follower_id=follower_id,
        ib_account=ACCOUNT,
        gateway_id=GATEWAY_ID,
        purpose=Purpose.OPEN,
        spread=VerticalSpread(kind=SpreadKind.BULL_PUT, short_strike=SHORT, long_strike=LONG),
        quantity=quantity,
    )


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    """Poll until `predicate()` holds; fail naming `what` if a broken run never gets there."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


@dataclass
class AgentProcess:
    """One `spreadpilot agent` OS process; stdout (JSON logs) and stderr in files."""

    name: str
    client_id: int
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def err_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line the process wrote so far."""
        out = []
        for line in self.stdout.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written right now
                    continue
        return out

    def executions(self, order_ref: str) -> list[dict[str, Any]]:
        """The agent's per-message results for `order_ref` (operation=execution)."""
        return [
            r
            for r in self.logs()
            if r.get("operation") == "execution" and r.get("order_ref") == order_ref
        ]

    def connected(self) -> bool:
        return any(
            r.get("operation") == "connection" and r.get("state") == "connected"
            for r in self.logs()
        )

    def wait_for_failpoint(self, point: str) -> None:
        marker = f"FAILPOINT {point} reached"
        wait_until(
            lambda: marker in self.err_text() or self.proc.poll() is not None,
            f"{self.name} reaching {point}",
        )
        assert marker in self.err_text(), f"{self.name} exited first:\n{self.err_text()}"

    def freeze(self, databases: list[Path]) -> None:
        """SIGSTOP: the process stalls (a long GC pause, a starved VM) but lives on.

        Never left frozen inside a write transaction of the shared SQLite files (the
        other agent would wait on its lock, not on the claim under test): if one is
        locked, thaw, let it finish, and stop it again."""
        for _ in range(200):
            os.kill(self.pid, signal.SIGSTOP)
            wait_until(lambda: _state(self.pid) == "T", f"{self.name} stopped")
            if all(_write_lock_free(db) for db in databases):
                return
            self.thaw()
            time.sleep(0.02)
        raise AssertionError(f"{self.name} always held a lock of {databases}")

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> int:
        """Ctrl-C, as systemd's stop would: the agent disconnects and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)


def _state(pid: int) -> str:
    """The process state letter of /proc/<pid>/stat (R, S, T for stopped, ...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def _write_lock_free(db: Path) -> bool:
    """True if a write transaction on `db` can start now (no process holds the lock)."""
    conn = sqlite3.connect(db, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@dataclass
class CrashRig:
    """The simulator (in this process), the shared store and bus, and agent processes."""

    data_dir: Path
    clock: ScaledClock
    gateway: Gateway
    container: Container
    agents: list[AgentProcess] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.container.store

    @property
    def bus(self) -> LocalBus:
        bus = self.container.bus
        assert isinstance(bus, LocalBus)
        return bus

    # -- processes

    def env(self, client_id: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPREADPILOT_")}
        gateways = {
            GATEWAY_ID: {
                "host": "127.0.0.1",
                "port": self.gateway.port,
                "client_id": client_id,
                "accounts": [ACCOUNT],
            }
        }
        env.update(
            {
                "PYTHONPATH": str(REPO / "shared") + os.pathsep + str(REPO),
                "SPREADPILOT_DATA_DIR": str(self.data_dir),
                "SPREADPILOT_CLOCK_START": self.clock.start.isoformat(),
                "SPREADPILOT_CLOCK_EPOCH": repr(self.clock.epoch),
                "SPREADPILOT_CLOCK_SPEED": repr(self.clock.speed),
                "SPREADPILOT_GATEWAYS": json.dumps(gateways),
                "SPREADPILOT_LOG_FORMAT": "json",
                # A crashed holder's claim is taken over 40 market seconds (4 s here) after
                # its last renewal: before the bus offers its message again (60 s ack
                # deadline), yet long enough that a loaded host's pause is not a crash.
                "SPREADPILOT_CLAIM_LEASE_SECONDS": "40",
                "SPREADPILOT_HEALTH_PORT": "0",  # several agents at once: no /health port
                # Start at the mid (0.60), a tick per step down to the natural 0.54: the
                # order works at IB for a while before it fills.
                "SPREADPILOT_LADDER_START": "mid",
                "SPREADPILOT_LADDER_MIN_CREDIT": "0.50",
                "SPREADPILOT_LADDER_STEP_SECONDS": "4",
                **extra,
            }
        )
        return env

    def start_agent(
        self,
        name: str,
        *,
        client_id: int = 7,
        failpoint: str | None = None,
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        """Start `spreadpilot agent` (runs until SIGINT) as gateway clientId `client_id`,
        optionally paused at a fail point, with extra SPREADPILOT_* settings."""
        extra = dict(env or {})
        if failpoint:
            extra["SPREADPILOT_FAILPOINTS"] = f"{failpoint}=pause"
        stdout = self.data_dir / f"{name}.out"
        stderr = self.data_dir / f"{name}.err"
        cmd = [sys.executable, "-m", "spreadpilot.cli.main", "agent"]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                cmd, env=self.env(client_id, **extra), stdout=out, stderr=err, cwd=REPO
            )
        agent = AgentProcess(name, client_id, proc, stdout, stderr)
        self.agents.append(agent)
        return agent

    def shutdown(self) -> None:
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.proc.kill()
                agent.proc.wait(timeout=30)

    # -- the bus, the store, the simulator

    def publish(self, order: OrderIntent, times: int = 1) -> None:
        """As the dispatcher publishes an intent (same body, attributes, ordering key)."""
        publish_to(self.bus, order, times)

    def pending_orders(self) -> int:
        """Order messages not acked yet (ready, leased or waiting out a nack backoff)."""
        return self.bus.stats(SUBSCRIPTION).pending

    def dead_letters(self) -> int:
        return self.bus.stats(f"{SUBSCRIPTION}-dead-letter-hold").pending

    def orders(self, order_ref: str | None = None) -> list[OrderRecord]:
        """The simulator's own record: working and completed orders (by orderRef)."""
        engine = self.gateway.engine
        every = [*engine.open_orders(None), *engine.completed_orders()]
        return [o for o in every if order_ref is None or o.order_ref == order_ref]

    def claim(self, order_ref: str) -> dict[str, Any] | None:
        doc = self.store.get(C.CLAIMS, f"execute:{order_ref}")
        return None if doc is None else dict(doc)

    @property
    def databases(self) -> list[Path]:
        return [self.data_dir / "store.db", self.data_dir / "bus.db"]

    def claim_done(self, order_ref: str) -> bool:
        claim = self.claim(order_ref)
        return claim is not None and claim["status"] == "DONE"

    def record(self) -> int:
        """Deliver the execution reports to the real `recorder` function, as Pub/Sub
        push would; returns how many were delivered."""
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        use_container(self.container)
        try:
            handler = load_function("recorder")
            root.handlers[:] = handlers  # its boot() took over this process's logging
            root.setLevel(level)
            runner = LocalRunner(
                self.bus, self.container.topology, {"recorder": handler}, self.clock
            )
            return runner.run_until_idle()
        finally:
            use_container(None)

    def execution(self, order_ref: str) -> dict[str, Any]:
        """The recorder's document for `order_ref` (after `record()`)."""
        doc = self.store.get(C.EXECUTIONS, order_ref)
        assert doc is not None, f"the recorder has no document for {order_ref}"
        return dict(doc)


def crash_rig(tmp_path: Path, make_gateway: MakeGateway) -> Iterator[CrashRig]:
    """A started simulator on the shared ScaledClock plus the shared store and bus."""
    start = ny("10:00")
    clock = ScaledClock(start, SPEED, epoch=time.time())
    scenario = Scenario.parse(
        {
            "clock": {"start": start, "speed": SPEED},
            "accounts": [ACCOUNT],
            "market": {"volatility": 0.0, "option_spread_tiers": WIDE_QUOTES},
        }
    )
    gateway = make_gateway(scenario, clock=clock)
    data_dir = tmp_path / "platform"
    data_dir.mkdir()
    settings = load_settings(mode="embedded", data_dir=data_dir)
    container = Container(settings, clock=clock)
    container.bus.ensure_topology()
    rig = CrashRig(data_dir, clock, gateway, container)
    try:
        yield rig
    finally:
        rig.shutdown()
