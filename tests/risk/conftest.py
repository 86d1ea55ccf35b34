"""The risk jobs against the real simulator through the real ib_async, on a SimClock.

`make_desk(...)` builds the executor tests' rig (simulator + SQLite store and bus on
one SimClock) with two accounts, two followers (alice on DU000001, bob on
DU000002, both on gw-1) and an Agent whose command loop runs the jobs. Spreads are
opened through the real executor; the jobs are run by publishing their command on
``commands`` and letting the agent's command loop pull it, as in production.

    async def go(desk):
        await desk.start()
        await desk.open_spread("alice")
        desk.at("15:30"); await desk.job("time-value-check")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.agent import Agent, GatewayConfig
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.orders import OrderIntent, Purpose
from spreadpilot.domain.spread import SpreadKind, VerticalSpread
from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.store import Filter
from spreadpilot.services.execution import ExecutionResult, Executor
from tests.execution.conftest import (  # noqa: F401  (fixtures)
    GATEWAY_ID,
    MakeRig,
    Rig,
    make_gateway,
    make_rig,
)
from tests.ibsim.conftest import DAY, ny

ALICE_ACCOUNT, BOB_ACCOUNT = "DU000001", "DU000002"
ACCOUNTS = {"alice": ALICE_ACCOUNT, "bob": BOB_ACCOUNT}
IBANS = {"alice": "IT60X0542811101000000123456", "bob": "DE89370400440532013000"}
#: The day's spread: Bull Put 598/600 (short 600P).
SHORT, LONG = Decimal(600), Decimal(598)
#: QQQ falls to 596 by noon: the short 600P goes in the money and loses its time value
#: (SAFE at 10:00, RISK at 12:00, CRITICAL in the money by 15:30).
FALLING = [["11:00", 598], ["12:00", 596], ["13:00", 596]]
#: QQQ rises to 606: the short 600P goes far out of the money (CRITICAL, OTM, by 15:00).
RISING = [["10:30", 600], ["11:30", 606]]


@dataclass
class Desk:
    rig: Rig
    agent: Agent
    data_dir: Path
    opened: dict[str, OrderIntent] = field(default_factory=dict)

    # -- driving

    def at(self, hhmm: str, day: date = DAY) -> None:
        self.rig.clock.set(ny(hhmm, day))

    async def start(self) -> None:
        await self.agent.connect_all()

    async def stop(self) -> None:
        await self.agent.close()

    async def open_spread(
        self, follower: str, quantity: int = 2, short: Decimal = SHORT, long_: Decimal = LONG
    ) -> ExecutionResult:
        intent = OrderIntent.build(
            signal_id=f"{DAY}_QQQ",
            signal_hash="test",
            trade_date=DAY,
            ticker="QQQ",
            follower_id=follower,
            ib_account=ACCOUNTS[follower],
            gateway_id=GATEWAY_ID,
            purpose=Purpose.OPEN,
            spread=VerticalSpread(kind=SpreadKind.BULL_PUT, short_strike=short, long_strike=long_),
            quantity=quantity,
        )
        broker = self.agent.connections[GATEWAY_ID].broker
        result = await Executor(broker, self.agent.context).execute(intent)
        assert result.outcome == "FILLED", result
        self.opened[follower] = intent
        return result

    def publish(self, body: dict[str, Any] | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.rig.bus.publish("commands", data, {})

    async def job(self, name: str) -> dict[str, Any]:
        """Publish the scheduler's tick and let the agent's command loop run it;
        returns the job_runs record of that run."""
        self.publish({"job": name})
        assert await self.agent.commands.process_pending() >= 1
        return self.last_run(name)

    # -- what came out

    def runs(self, job: str | None = None) -> list[dict[str, Any]]:
        docs = [s.data for s in self.rig.store.query(C.JOB_RUNS)]
        return sorted(
            (d for d in docs if job is None or d["job"] == job), key=lambda d: d["ran_at"]
        )

    def last_run(self, job: str) -> dict[str, Any]:
        return self.runs(job)[-1]

    def status(self, follower: str) -> dict[str, Any]:
        (doc,) = [
            s.data
            for s in self.rig.store.query(C.RISK_STATUS, [Filter("follower_id", "==", follower)])
        ]
        return doc

    def positions(self, account: str) -> dict[str, Decimal]:
        """The simulator's own positions of an account: '600P' / 'STK' -> quantity."""
        assert self.rig.gateway is not None
        out: dict[str, Decimal] = {}
        for p in self.rig.gateway.engine.positions():
            if p.account != account or not p.quantity:
                continue
            c = p.contract
            key = "STK" if c.secType == "STK" else f"{int(c.strike)}{c.right}"
            out[key] = Decimal(p.quantity).normalize()
        return out


MakeDesk = Callable[..., Desk]


def follower(fid: str, gateway_id: str = GATEWAY_ID, **changes: Any) -> Follower:
    return Follower(
        id=fid,
        name=fid.title(),
        email=f"{fid}@example.com",
        iban=IBANS.get(fid, IBANS["alice"]),
        ib_account=changes.pop("ib_account", ACCOUNTS.get(fid, "DU000009")),
        gateway_id=gateway_id,
        commission_rate=Decimal("0.20"),
        **changes,
    )


@pytest.fixture
def make_desk(make_rig: MakeRig, tmp_path: Path) -> MakeDesk:  # noqa: F811
    """make_desk(waypoints=..., settings={...}, extra_gateways={...}, followers=[...],
    start='10:00', **rig_kwargs). Risk closes default to market orders here (the
    aggressive limit has its own test)."""

    def make(
        *,
        waypoints: list[list[Any]] | None = None,
        start: str = "10:00",
        settings: dict[str, Any] | None = None,
        extra_gateways: dict[str, GatewayConfig] | None = None,
        followers: list[Follower] | None = None,
        market: dict[str, Any] | None = None,
        **rig_kwargs: Any,
    ) -> Desk:
        rig = make_rig(
            start,
            market={"atm_iv": 0.20, "waypoints": waypoints or [], **(market or {})},
            accounts=[ALICE_ACCOUNT, BOB_ACCOUNT],
            **rig_kwargs,
        )
        assert rig.gateway is not None
        data_dir = tmp_path / f"desk{len(list(tmp_path.iterdir()))}"
        s = load_settings(
            data_dir=data_dir,
            **{
                "ladder_min_credit": "0.05",
                "ladder_start": "natural",
                "risk_close_order": "market",
                "risk_close_wait_seconds": 20,
                **(settings or {}),
            },
        )
        c = Container(s, clock=rig.clock, topo=rig.topo)
        c.store = rig.store  # type: ignore[misc]
        c.bus = rig.bus  # type: ignore[misc]
        gateways = {
            GATEWAY_ID: GatewayConfig(
                "127.0.0.1", rig.gateway.port, 7, (ALICE_ACCOUNT, BOB_ACCOUNT)
            ),
            **(extra_gateways or {}),
        }
        agent = Agent(c, gateways, reconnect_initial_seconds=3600)
        for f in followers if followers is not None else [follower("alice"), follower("bob")]:
            rig.store.set(C.FOLLOWERS, f.id, f.to_doc())
        return Desk(rig, agent, data_dir)

    return make
