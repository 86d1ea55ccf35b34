"""Pacing (IB's 50 messages/s), connectivity faults, restarts, scenarios and the command.

Every client here is unmodified ib_async; where a test needs to exceed IB's
rate it turns off ib_async's own throttle (`client.MaxRequests = 0`, a public
setting), as a misbehaving application would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from ib_async import IB
from typer.testing import CliRunner

from ibsim.cli import build_gateway as cli_build_gateway
from ibsim.cli import ibsim
from ibsim.scenario import ScaledClock, Scenario, ScenarioError, make_clock
from ibsim.server import Gateway
from ibsim.wire import OUT, decode_fields, handshake_request, split_frames
from spreadpilot.platform.clock import SimClock, SystemClock
from tests.ibsim.conftest import DAY, START, Connect, MakeGateway, errors_of, ny, wait_for

REPO = Path(__file__).resolve().parents[2]


def received(ib: IB) -> int:
    """Messages the client has received so far (ib_async's public connection stats)."""
    return int(ib.client.connectionStats().numMsgRecv)


def answered(ib: IB, before: int, count: int) -> bool:
    """Wait until `count` more messages (one reply per reqCurrentTime) have arrived."""
    return wait_for(ib, lambda: ib.isConnected() and received(ib) - before >= count)


def codes(errors: list[tuple[int, int, str]]) -> list[int]:
    """Error codes other than the informational farm notices (21xx)."""
    return [code for _, code, _ in errors if not 2100 <= code < 2200]


# -- pacing -------------------------------------------------------------------------------


def test_60_requests_in_a_burst_are_a_violation_error_100_and_disconnect(
    gateway: Gateway, connect: Connect
) -> None:
    ib = connect(gateway)
    errors = errors_of(ib)
    ib.client.MaxRequests = 0  # the application ignores pacing
    for _ in range(60):
        ib.client.reqCurrentTime()
    assert wait_for(ib, lambda: not ib.isConnected())
    assert codes(errors) == [100]
    [(req_id, _, message)] = [e for e in errors if e[1] == 100]
    assert req_id == -1
    assert message.startswith("Max rate of messages per second has been exceeded")
    assert gateway.client_ids() == []
    assert gateway.pacing_violations == 1


def _send_evenly(ib: IB, count: int, per_second: float) -> None:
    """Send `count` reqCurrentTime at an even rate, on an absolute schedule (no drift)."""
    began = _time.monotonic()
    for k in range(count):
        delay = began + k / per_second - _time.monotonic()
        if delay > 0:
            ib.sleep(delay)
        ib.client.reqCurrentTime()


def test_50_per_second_for_3_seconds_is_not_a_violation(gateway: Gateway, connect: Connect) -> None:
    ib = connect(gateway)
    errors = errors_of(ib)
    ib.sleep(1.0)  # let the start-up requests leave the one-second window
    ib.client.MaxRequests = 0
    before = received(ib)
    _send_evenly(ib, 150, per_second=50)
    assert answered(ib, before, 150)
    assert ib.isConnected()
    assert 100 not in codes(errors)
    assert gateway.pacing_violations == 0


def test_ib_async_throttled_to_50_per_second_in_bursts_is_not_a_violation(
    gateway: Gateway,
) -> None:
    """ib_async's throttle set to IB's limit sends bursts of 50 a second apart."""
    ib = IB()
    ib.client.MaxRequests = 50
    errors = errors_of(ib)
    ib.connect("127.0.0.1", gateway.port, clientId=1, timeout=4)
    try:
        before = received(ib)
        for _ in range(120):  # queued: ib_async sends them in bursts at 1 s intervals
            ib.client.reqCurrentTime()
        assert answered(ib, before, 120)
        assert ib.isConnected()
        assert 100 not in codes(errors)
        assert gateway.pacing_violations == 0
    finally:
        ib.disconnect()


def test_pacing_off_lets_a_flood_through(make_gateway: MakeGateway, connect: Connect) -> None:
    gateway = make_gateway(pacing=False)
    ib = connect(gateway)
    errors = errors_of(ib)
    ib.client.MaxRequests = 0
    before = received(ib)
    for _ in range(500):
        ib.client.reqCurrentTime()
    assert answered(ib, before, 500)
    assert ib.isConnected()
    assert codes(errors) == []
    assert gateway.pacing_violations == 0


def test_pacing_limit_is_configurable(make_gateway: MakeGateway, connect: Connect) -> None:
    gateway = make_gateway(max_msgs_per_sec=10)
    ib = connect(gateway)
    errors = errors_of(ib)
    ib.client.MaxRequests = 0
    ib.sleep(1.0)
    for _ in range(12):
        ib.client.reqCurrentTime()
    assert wait_for(ib, lambda: not ib.isConnected())
    assert codes(errors) == [100]


# -- connectivity and restarts -------------------------------------------------------------


@dataclass
class CountingEngine:
    """The engine's query API, empty; counts step() calls (is the engine stepped?)."""

    steps: int = 0
    queries: list[str] = field(default_factory=list)

    def step(self) -> list[Any]:
        self.steps += 1
        return []

    def open_orders(self, client_id: int | None) -> list[Any]:
        return []

    def completed_orders(self) -> list[Any]:
        return []

    def fills(self, account: str | None = None) -> list[Any]:
        return []

    def positions(self) -> list[Any]:
        return []

    def account_values(self, account: str) -> dict[str, tuple[str, str]]:
        return {"NetLiquidation": ("100000", "USD")}

    def pnl(self, account: str) -> tuple[Decimal, Decimal, Decimal]:
        return Decimal(0), Decimal(0), Decimal(0)


def test_lose_and_restore_connectivity_data_maintained(gateway: Gateway, connect: Connect) -> None:
    ib1 = connect(gateway, client_id=1)
    ib2 = connect(gateway, client_id=2)
    errors1, errors2 = errors_of(ib1), errors_of(ib2)
    gateway.lose_connectivity()
    assert wait_for(ib1, lambda: codes(errors1) == [1100])
    gateway.restore_connectivity(data_lost=False)
    assert wait_for(ib1, lambda: codes(errors1) == [1100, 1102])
    assert wait_for(ib2, lambda: codes(errors2) == [1100, 1102])
    assert ib1.isConnected() and ib2.isConnected()


def test_restore_with_data_lost_is_1101(gateway: Gateway, ib: IB) -> None:
    errors = errors_of(ib)
    gateway.lose_connectivity()
    gateway.restore_connectivity(data_lost=True)
    assert wait_for(ib, lambda: codes(errors) == [1100, 1101])
    [(req_id, _, message)] = [e for e in errors if e[1] == 1101]
    assert req_id == -1
    assert "data lost" in message


def test_no_engine_steps_while_connectivity_is_lost(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    engine = CountingEngine()
    gateway = make_gateway(engine=engine)
    ib = connect(gateway)
    gateway.lose_connectivity()
    before = gateway.call(lambda: engine.steps)
    gateway.pump()
    gateway.pump()
    assert gateway.call(lambda: engine.steps) == before
    gateway.restore_connectivity()
    gateway.pump()
    assert gateway.call(lambda: engine.steps) > before
    assert ib.isConnected()


def test_restart_drops_every_client_who_can_reconnect(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    engine = CountingEngine()
    gateway = make_gateway(engine=engine)
    ib1 = connect(gateway, client_id=1)
    ib2 = connect(gateway, client_id=2)
    port = gateway.port
    gateway.restart()
    assert wait_for(ib1, lambda: not ib1.isConnected() and not ib2.isConnected())
    assert gateway.restarts == 1
    again = connect(gateway, client_id=1)
    assert again.isConnected()
    assert gateway.port == port
    assert gateway.engine is engine  # IB keeps the orders; only the sockets went
    assert again.accountValues()[0].value == "100000"


def test_restart_loses_queued_outgoing_messages(gateway: Gateway) -> None:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    sock.sendall(handshake_request())
    received = bytearray()
    while not split_frames(bytearray(received)):
        received += sock.recv(4096)
    from ibsim.wire import IN, encode_message

    sock.sendall(encode_message(IN.START_API, 2, 8, ""))
    assert wait_for(IB(), lambda: gateway.client_ids() == [8])

    def send_then_crash() -> None:
        session = gateway.session(8)
        assert session is not None
        session.send(OUT.CURRENT_TIME, 1, 424242)  # queued, not yet written
        gateway.restart()

    gateway.call(send_then_crash)
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    messages = [decode_fields(f) for f in split_frames(bytearray(received + data))]
    assert ["49", "1", "424242"] not in messages


# -- scenario-driven faults -------------------------------------------------------------


def test_scenario_faults_fire_when_the_clock_reaches_them(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    scenario = Scenario.parse(
        {
            "clock": {"start": "2026-11-24T09:25", "speed": "sim"},
            "faults": [
                {"at": "09:40", "action": "lose_connectivity"},
                {"at": "09:41:30", "action": "restore_data_lost"},
                {"at": "10:00", "action": "restart"},
            ],
        }
    )
    gateway = make_gateway(scenario)
    ib = connect(gateway)
    errors = errors_of(ib)
    clock = gateway.clock
    assert isinstance(clock, SimClock)
    clock.set(ny("09:39:59"))
    gateway.pump()
    clock.set(ny("09:40"))
    gateway.pump()
    assert wait_for(ib, lambda: codes(errors) == [1100])
    clock.set(ny("09:41:30"))
    gateway.pump()
    assert wait_for(ib, lambda: codes(errors) == [1100, 1101])
    clock.set(ny("10:00"))
    gateway.pump()
    assert wait_for(ib, lambda: not ib.isConnected())
    assert gateway.restarts == 1
    assert gateway.wait_listening()
    assert connect(gateway, client_id=1).isConnected()


def test_a_scenario_shut_down_refuses_connections_until_it_comes_back(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    scenario = Scenario.parse(
        {
            "clock": {"start": "2026-11-24T09:25", "speed": "sim"},
            "faults": [
                {"at": "10:00", "action": "shut_down"},
                {"at": "10:05", "action": "come_back"},
            ],
        }
    )
    gateway = make_gateway(scenario)
    ib = connect(gateway)
    port = gateway.port
    clock = gateway.clock
    assert isinstance(clock, SimClock)
    clock.set(ny("10:00"))
    gateway.pump()
    assert wait_for(ib, lambda: not ib.isConnected())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    clock.set(ny("10:05"))
    gateway.pump()
    assert gateway.wait_listening()
    again = connect(gateway, client_id=1)
    assert again.isConnected() and gateway.port == port


def test_disconnect_at_schedules_loss_and_restore(gateway: Gateway, ib: IB) -> None:
    errors = errors_of(ib)
    gateway.disconnect_at(ny("11:00"), restore_at=ny("11:05"), data_lost=False)
    assert isinstance(gateway.clock, SimClock)
    gateway.clock.set(ny("11:10"))
    gateway.pump()
    assert wait_for(ib, lambda: codes(errors) == [1100, 1102])


# -- scenario files -----------------------------------------------------------------------


SCENARIO_YAML = """
clock: {start: "2026-11-24T09:25", speed: 60}
accounts: [DU000001, DU000002]
seed: 7
pacing: {enabled: false, max_per_second: 40}
faults:
  - {at: 10:15, action: lose_connectivity}
  - {at: 10:16:30, action: restore}
"""


def test_a_yaml_scenario_loads(tmp_path: Path) -> None:
    path = tmp_path / "day.yaml"
    path.write_text(SCENARIO_YAML)
    scenario = Scenario.load(path)
    assert scenario.accounts == ["DU000001", "DU000002"]
    assert scenario.clock.start == ny("09:25")
    assert scenario.clock.speed == 60
    assert (scenario.pacing.enabled, scenario.pacing.max_per_second) == (False, 40)
    assert scenario.fault_schedule(DAY) == [
        (ny("10:15"), "lose_connectivity"),
        (ny("10:16:30"), "restore"),
    ]
    gateway = build_gateway_from(scenario)
    assert gateway.accounts == ["DU000001", "DU000002"]
    assert gateway.advisor
    assert not gateway.pacing
    assert [(f.at, f.action) for f in gateway.faults] == scenario.fault_schedule(DAY)


def build_gateway_from(scenario: Scenario) -> Gateway:
    return cli_build_gateway(scenario, SimClock(START))


def test_a_json_scenario_loads_with_market_and_fills(tmp_path: Path) -> None:
    path = tmp_path / "day.json"
    path.write_text(
        json.dumps(
            {"clock": {"start": "2026-11-24T09:25:00", "speed": "sim"}, "market": {}, "fills": {}}
        )
    )
    scenario = Scenario.load(path)
    assert scenario.clock.speed == "sim"
    assert isinstance(make_clock(scenario), SimClock)


@pytest.mark.parametrize(
    ("raw", "field_name", "fix"),
    [
        ({"clock": {"start": "tomorrow"}}, "clock.start", "YYYY-MM-DDTHH:MM"),
        ({"clock": {"speed": 0}}, "clock.speed", "positive number"),
        ({"accounts": []}, "accounts", "non-empty list"),
        ({"accounts": ["DU1", "DU1"]}, "accounts", "distinct"),
        ({"faults": [{"at": "25:00", "action": "restart"}]}, "faults.0.at", "HH:MM"),
        ({"faults": [{"at": "10:00", "action": "explode"}]}, "faults.0.action", "restore"),
        ({"pacing": {"max_per_second": 0}}, "pacing.max_per_second", "positive integer"),
        ({"clok": {}}, "clok", "spelling"),
    ],
)
def test_scenario_errors_name_the_field_and_the_fix(
    raw: dict[str, Any], field_name: str, fix: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(raw)
    message = str(caught.value)
    assert f"  {field_name}: " in message
    assert fix in message


def test_market_fields_are_validated_by_the_market_model_when_present() -> None:
    import importlib.util

    if importlib.util.find_spec("ibsim.market") is None:
        assert Scenario.parse({"market": {"spot": 1}}).market == {"spot": 1}
        return
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse({"market": {"spot": -5}})
    assert "  market: " in str(caught.value)
    assert "spot" in str(caught.value)


def test_clocks() -> None:
    assert isinstance(make_clock(Scenario()), SystemClock)
    scaled = make_clock(Scenario.parse({"clock": {"start": "2026-11-24T09:25", "speed": 60}}))
    assert isinstance(scaled, ScaledClock)
    assert scaled.now() >= ny("09:25")
    with pytest.raises(ValueError, match="aware"):
        ScaledClock(datetime(2026, 1, 1), 1.0)
    assert ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), 2.0).now().tzinfo is not None


# -- the command ------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("ibsim")(ibsim)

    @app.command("other")
    def other() -> None:  # a second command keeps `ibsim` a subcommand, as in the main CLI
        """Unused."""

    return app


def test_help_explains_time_and_accounts() -> None:
    result = CliRunner().invoke(_app(), ["ibsim", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for words in ("--start", "New York", "--accounts", "advisor", "--speed", "--no-pacing"):
        assert words in result.output


def test_a_bad_scenario_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("clock: {speed: -1}\n")
    result = CliRunner().invoke(_app(), ["ibsim", "--scenario", str(path)])
    assert result.exit_code == 2
    assert "clock.speed" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_command_serves_ib_async_standalone() -> None:
    port = _free_port()
    script = "import typer; from ibsim.cli import ibsim; typer.run(ibsim)"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'shared'}"}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", script, "--port", str(port)),
            *("--start", "2026-11-24T09:25", "--accounts", "DU000001,DU000002"),
            *("--log-level", "WARNING"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    ib = IB()
    try:
        deadline = _time.monotonic() + 60
        while True:
            try:
                ib.connect("127.0.0.1", port, clientId=1, timeout=4)
                break
            except (ConnectionRefusedError, OSError, TimeoutError):
                ib.disconnect()
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert _time.monotonic() < deadline, "ibsim did not start listening"
                _time.sleep(0.1)
        assert ib.managedAccounts() == ["DU000001", "DU000002"]
        assert ib.reqCurrentTime() >= ny("09:25")
    finally:
        ib.disconnect()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
