"""The executor against the real simulator through the real ib_async (IBBroker).

`make_rig(...)` starts an ibsim Gateway on a SimClock and wires the embedded
store and bus (SQLite in tmp_path) on the *same* clock, so a ladder's waits
move the simulator's quotes and fills along with the executor's reports.

    def test_x(make_rig):
        rig = make_rig(market={"volatility": 0.0}, start="10:00")
        result = rig.execute(rig.intent(), ladder=rig.ladder(min_credit="0.50"))
        assert result.outcome == "FILLED"
        assert [r["event"] for r in rig.reports()] == ["PLACED", "FILLED"]
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ibsim.engine import OrderRecord
from ibsim.scenario import Scenario
from ibsim.server import Gateway
from spreadpilot.adapters.embedded.local_bus import LocalBus
from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.ladder import LadderConfig
from spreadpilot.domain.orders import OrderIntent, Purpose
from spreadpilot.domain.spread import SpreadKind, VerticalSpread
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.topology import Topology, topology
from spreadpilot.ports.broker import Broker
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import Claims
from spreadpilot.services.execution import (
    EXECUTIONS_TOPIC,
    ExecutionContext,
    ExecutionResult,
    Executor,
    ExecutorConfig,
)
from tests.ibsim.conftest import DAY, MakeGateway, make_gateway, ny  # noqa: F401  (fixture)

try:
    IBBroker: Any = importlib.import_module("spreadpilot.adapters.ib.broker").IBBroker
except ImportError:  # the ib_async adapter is being written in parallel
    IBBroker = None

T = TypeVar("T")

ACCOUNT = "DU000001"
GATEWAY_ID = "gw-1"
#: A put vertical near the money: at 10:00 on a flat (volatility 0) path its mid credit
#: is 0.60; with 0.06-wide quotes its natural credit is 0.54 (six ticks below the mid).
SHORT, LONG = Decimal(600), Decimal(598)
WIDE_QUOTES = [{"up_to": None, "width": "0.06"}]


@dataclass
class Rig:
    gateway: Gateway | None  # None: no simulator (stub brokers)
    clock: SimClock
    store: SqliteStore
    bus: LocalBus
    config: ExecutorConfig
    topo: Topology
    holder: str = "agent-1"
    brokers: list[Any] = field(default_factory=list)

    def context(self, holder: str | None = None, **changes: Any) -> ExecutionContext:
        ctx = ExecutionContext(
            bus=self.bus,
            clock=self.clock,
            claims=Claims(
                self.store, self.clock, lease=timedelta(seconds=self.config.lease_seconds)
            ),
            alerts=AlertPublisher(self.store, self.bus),
            config=self.config,
            holder=holder or self.holder,
            store=self.store,
        )
        return replace(ctx, **changes)

    @staticmethod
    def ladder(**changes: Any) -> LadderConfig:
        """The domain ladder with test changes (Decimal fields may be given as str)."""
        for name in ("tick", "min_credit"):
            if name in changes:
                changes[name] = Decimal(str(changes[name]))
        return replace(LadderConfig(), **changes)

    def intent(
        self,
        follower_id: str = "alice",
        *,
        account: str = ACCOUNT,
        quantity: int = 2,
        gateway_id: str = GATEWAY_ID,
        trade_date: date = DAY,
    ) -> OrderIntent:
        return OrderIntent.build(
            signal_id=f"{trade_date}-QQQ",
            signal_hash="test",
            trade_date=trade_date,
            ticker="QQQ",
            follower_id=follower_id,
            ib_account=account,
            gateway_id=gateway_id,
            purpose=Purpose.OPEN,
            spread=VerticalSpread(kind=SpreadKind.BULL_PUT, short_strike=SHORT, long_strike=LONG),
            quantity=quantity,
        )

    def new_broker(self, *, dry_run: bool = False, client_id: int = 1, **kw: Any) -> Broker:
        assert self.gateway is not None, "this rig has no simulator"
        broker = IBBroker(
            "127.0.0.1", self.gateway.port, client_id, dry_run=dry_run, clock=self.clock, **kw
        )
        self.brokers.append(broker)
        return broker  # type: ignore[no-any-return]

    @asynccontextmanager
    async def connected(self, **kw: Any) -> Any:
        broker = self.new_broker(**kw)
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.disconnect()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run(_as_coro(make))

    def execute(
        self,
        intent: OrderIntent,
        *,
        ladder: LadderConfig | None = None,
        signal_at: datetime | None = None,
        dry_run: bool = False,
        holder: str | None = None,
    ) -> ExecutionResult:
        async def go() -> ExecutionResult:
            async with self.connected(dry_run=dry_run) as broker:
                executor = Executor(broker, self.context(holder))
                return await executor.execute(intent, ladder=ladder, signal_at=signal_at)

        return self.run(go)

    # -- what came out

    def _drain(self, subscription: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while batch := self.bus.pull(subscription, max_messages=100, timeout=1):
            self.bus.ack(subscription, [m.ack_id for m in batch])
            out.extend(json.loads(m.data) for m in batch)
        return out

    def reports(self) -> list[dict[str, Any]]:
        """Every ExecutionReport published so far (pulled from the executions topic's
        subscription, whatever kind it is: the recorder's is pulled here by name)."""
        (sub,) = [s.name for s in self.topo.subscriptions_of(EXECUTIONS_TOPIC)]
        return self._drain(sub)

    def alerts(self) -> list[dict[str, Any]]:
        return self._drain("alerts-hold")

    def orders(self, order_ref: str | None = None) -> list[OrderRecord]:
        """The simulator's own record: working and completed orders (by orderRef)."""
        assert self.gateway is not None, "this rig has no simulator"
        engine = self.gateway.engine
        every = [*engine.open_orders(None), *engine.completed_orders()]
        return [o for o in every if order_ref is None or o.order_ref == order_ref]


async def _as_coro(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(make_gateway: MakeGateway, tmp_path: Path) -> Iterator[MakeRig]:  # noqa: F811
    """Factory: make_rig(start='10:00', market={...}, fills={...}, accounts=[...], **config)."""
    if IBBroker is None:
        pytest.skip("spreadpilot.adapters.ib.broker (IBBroker) is not there yet")
    made: list[Rig] = []

    def make(
        start: str = "10:00",
        *,
        market: dict[str, Any] | None = None,
        fills: dict[str, Any] | None = None,
        accounts: list[str] | None = None,
        **config: Any,
    ) -> Rig:
        raw: dict[str, Any] = {"clock": {"start": ny(start), "speed": "sim"}}
        raw["market"] = {"volatility": 0.0, **(market or {})}
        if fills is not None:
            raw["fills"] = fills
        if accounts is not None:
            raw["accounts"] = accounts
        clock = SimClock(ny(start))
        gateway = make_gateway(Scenario.parse(raw), clock=clock)
        rig = _wire(tmp_path / f"rig{len(made)}", clock, gateway, ExecutorConfig(**config))
        made.append(rig)
        return rig

    yield make


def _wire(path: Path, clock: SimClock, gateway: Gateway | None, config: ExecutorConfig) -> Rig:
    store = SqliteStore(path / "store.db")
    topo = topology()
    bus = LocalBus(path / "bus.db", topo, clock)
    bus.ensure_topology()
    return Rig(gateway, clock, store, bus, config, topo)


@pytest.fixture
def bare(tmp_path: Path) -> Rig:
    """Store, bus and claims on a SimClock at 10:00 New York, no simulator (stub brokers)."""
    return _wire(tmp_path / "bare", SimClock(ny("10:00")), None, ExecutorConfig())
