"""Shared ibsim fixtures: a Gateway on a free loopback port, and real ib_async clients.

The gateway runs on its own event loop in a daemon thread; ib_async runs on
the test's (main-thread) loop, exactly as an application would use it. The
gateway's clock is a SimClock at 09:25 New York on DAY unless told otherwise:
move it with `at("09:30")` (sets the clock and pumps the engine once).

    def test_x(gateway, ib): ...                      # one account, clientId 1
    def test_y(make_gateway, connect):
        gw = make_gateway(accounts=["DU1", "DU2"], pacing=False)
        ib = connect(gw, client_id=7)

Helpers importable by test modules: DAY, START, ny, wait_for, errors_of.
"""

from __future__ import annotations

import contextlib
import time as _time
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from typing import Any

import pytest
from ib_async import IB

from ibsim.scenario import Scenario, build_gateway
from ibsim.server import Gateway
from spreadpilot.domain.calendar import ny_datetime
from spreadpilot.platform.clock import SimClock

#: A Tuesday, NYSE open; Thursday 26 is Thanksgiving, Friday 27 closes early.
DAY = date(2026, 11, 24)
START = ny_datetime(DAY, time(9, 25))

MakeGateway = Callable[..., Gateway]
Connect = Callable[..., IB]


def ny(hhmm: str, day: date = DAY) -> datetime:
    """An aware moment for a New York wall-clock time ('09:30' or '09:30:15') on `day`."""
    return ny_datetime(day, time.fromisoformat(hhmm))


def wait_for(ib: IB, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Run the client's loop until `predicate()` holds (or the timeout); its last value.

    The timeout only bounds a broken run; tests assert the condition, not the time.
    ib_async's sleep raises ConnectionError when the socket drops meanwhile;
    that is an outcome to look at, not a failure of the wait.
    """
    deadline = _time.monotonic() + timeout
    while not predicate():
        if _time.monotonic() > deadline:
            return predicate()
        with contextlib.suppress(ConnectionError):
            ib.sleep(0.005)
    return True


def errors_of(ib: IB) -> list[tuple[int, int, str]]:
    """A live list of (reqId, code, message) for every error event the client receives."""
    seen: list[tuple[int, int, str]] = []

    def on_error(req_id: int, code: int, message: str, *_: Any) -> None:
        seen.append((req_id, code, message))

    ib.errorEvent += on_error
    return seen


@pytest.fixture
def make_gateway() -> Iterator[MakeGateway]:
    """Factory: build_gateway(scenario, SimClock) + overrides, started in a thread.

    Keyword arguments: `scenario` (default: one account, SimClock at START),
    `clock` (default SimClock(START)), `accounts`, `pacing`, `max_msgs_per_sec`
    (scenario shortcuts), and any Gateway attribute to set before start
    (e.g. `engine=stand_in`, `max_clients=2`).
    """
    started: list[Gateway] = []

    def make(
        scenario: Scenario | None = None,
        *,
        clock: Any = None,
        accounts: list[str] | None = None,
        pacing: bool | None = None,
        max_msgs_per_sec: int | None = None,
        **attributes: Any,
    ) -> Gateway:
        raw: dict[str, Any] = (
            scenario.model_dump() if scenario else {"clock": {"start": START, "speed": "sim"}}
        )
        if accounts is not None:
            raw["accounts"] = accounts
        pacing_cfg = dict(raw.get("pacing") or {})
        if pacing is not None:
            pacing_cfg["enabled"] = pacing
        if max_msgs_per_sec is not None:
            pacing_cfg["max_per_second"] = max_msgs_per_sec
        raw["pacing"] = pacing_cfg
        built = Scenario.parse(raw)
        gateway = build_gateway(built, clock or SimClock(built.clock.start or START))
        for name, value in attributes.items():
            if not hasattr(gateway, name):
                raise AttributeError(f"Gateway has no attribute {name!r}")
            setattr(gateway, name, value)
        gateway.start_in_thread()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop_thread()


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> Gateway:
    """A started gateway: account DU000001, pacing on, SimClock at 09:25 New York on DAY."""
    return make_gateway()


@pytest.fixture
def clock(gateway: Gateway) -> SimClock:
    """The default gateway's settable clock."""
    assert isinstance(gateway.clock, SimClock)
    return gateway.clock


@pytest.fixture
def at(gateway: Gateway) -> Callable[[str], None]:
    """at('09:30'): set the default gateway's clock to that New York time on DAY and pump."""

    def move(hhmm: str) -> None:
        assert isinstance(gateway.clock, SimClock)
        gateway.clock.set(ny(hhmm))
        gateway.pump()

    return move


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Factory: connect(gateway, client_id=1, timeout=5, **kw) -> a connected ib_async IB.

    Every client is disconnected at teardown.
    """
    clients: list[IB] = []

    def open_client(gateway: Gateway, client_id: int = 1, timeout: float = 5, **kw: Any) -> IB:
        ib = IB()
        clients.append(ib)
        ib.connect("127.0.0.1", gateway.port, clientId=client_id, timeout=timeout, **kw)
        return ib

    yield open_client
    for ib in clients:
        ib.disconnect()


@pytest.fixture
def ib(gateway: Gateway, connect: Connect) -> IB:
    """ib_async connected to the default gateway as clientId 1."""
    return connect(gateway, client_id=1)
