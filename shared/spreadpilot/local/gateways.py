"""The embedded platform's IB Gateways: one simulator per gateway id, and the agent on them.

In production each gateway id names a real IB Gateway on the agent's VM. Here
every gateway id the followers use gets its own IB Gateway simulator (``ibsim``)
on the run's clock, managing exactly the accounts of its followers (one
account: an individual login; several: advisor style). A scenario per gateway
id (the ibsim scenario fields: market, fills, pacing, faults) shapes its day.
The real gateway agent then connects through ib_async as it would on the VM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from spreadpilot.platform.wiring import Container
from spreadpilot.ports.clock import Clock

if TYPE_CHECKING:
    from gateway.agent import Agent, GatewayConfig
    from ibsim.server import Gateway

#: The clientId the agent uses on every simulated gateway (one agent per gateway).
AGENT_CLIENT_ID = 7
#: IB books expiries overnight; unless a scenario says otherwise the simulators book
#: them this long after the close, after the agent's final marks of the day.
SETTLEMENT_DELAY_SECONDS = 4 * 3600.0


def accounts_by_gateway(followers: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """gateway id -> its followers' IB accounts (enabled or not: the login manages them)."""
    found: dict[str, list[str]] = {}
    for f in followers:
        accounts = found.setdefault(str(f["gateway_id"]), [])
        if f["ib_account"] not in accounts:
            accounts.append(str(f["ib_account"]))
    return dict(sorted(found.items()))


class SimulatedGateways:
    """Start one ibsim Gateway per gateway id on `clock`; stop them all on exit."""

    def __init__(
        self,
        clock: Clock,
        accounts: Mapping[str, list[str]],
        scenarios: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        # keys starting with "x-" hold YAML anchors shared by the entries (compose style)
        scenarios = {k: v for k, v in (scenarios or {}).items() if not k.startswith("x-")}
        unknown = sorted(set(scenarios) - set(accounts))
        if unknown:
            raise ValueError(
                f"gateway scenario(s) {', '.join(unknown)} name no follower's gateway_id; "
                f"known: {', '.join(accounts) or 'none'}"
            )
        self.clock = clock
        self.accounts = {gid: list(a) for gid, a in accounts.items()}
        self.scenarios = {gid: dict(scenarios.get(gid, {})) for gid in accounts}
        self.running: dict[str, Gateway] = {}

    def __enter__(self) -> SimulatedGateways:
        from ibsim.scenario import Scenario, build_gateway

        try:
            for gid, accounts in self.accounts.items():
                fills = {
                    "settlement_delay_seconds": SETTLEMENT_DELAY_SECONDS,
                    **(self.scenarios[gid].get("fills") or {}),
                }
                raw = {
                    # IB's pacing counts wall seconds: meaningless on a simulated clock
                    "pacing": {"enabled": False},
                    **self.scenarios[gid],
                    "fills": fills,
                    "clock": {"start": self.clock.now(), "speed": "sim"},
                    "accounts": accounts,
                }
                scenario = Scenario.parse(raw, source=f"gateway {gid}")
                self.running[gid] = build_gateway(scenario, self.clock).start_in_thread()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        for gw in self.running.values():
            gw.stop_thread()
        self.running.clear()

    def configs(self) -> dict[str, GatewayConfig]:
        """What SPREADPILOT_GATEWAYS would say for these gateways."""
        from gateway.agent import GatewayConfig

        return {
            gid: GatewayConfig("127.0.0.1", gw.port, AGENT_CLIENT_ID, tuple(self.accounts[gid]))
            for gid, gw in self.running.items()
        }

    def agent(self, container: Container) -> EmbeddedAgent:
        """The real gateway agent on these simulators, for `with ... as agent:`."""
        from gateway.agent import Agent
        from gateway.health import SimulatorRestarter

        simulated = getattr(self.clock, "set", None) is not None
        agent = Agent(container, self.configs(), holder="gateway-agent:embedded", unpaced=simulated)
        agent.health.restarter = SimulatorRestarter(self.running)  # a hung one is restarted
        # a day in seconds: between orders, only gateways holding positions are marked
        agent.marks.service.lazy = True
        return EmbeddedAgent(agent)


class EmbeddedAgent:
    """The gateway agent kept connected across a simulated day, driven tick by tick.

    `tick()` does what the agent's own loops do between two scheduler ticks
    (reconnects with their backoff, the gateway health checks, the heartbeat, the
    marks run when one is due on the clock's grid);
    `process()` executes what the bus holds for it (orders, then commands: the
    risk jobs), its ladders and closes moving the simulated clock.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.processed = 0
        self._orders_seen = 0

    def __enter__(self) -> EmbeddedAgent:
        self.loop.run_until_complete(self.agent.connect_all())
        # this host runs the checks (tick), so they alone raise the outage alerts
        self.agent.health.running = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.agent.health.running = False
        try:
            self.loop.run_until_complete(self.agent.close())
        finally:
            self.loop.close()

    def tick(self) -> None:
        self.loop.run_until_complete(self._tick())

    async def _tick(self) -> None:
        await self.agent.reconnect_due()
        await self.agent.health.check_once()
        self.agent.heartbeat()
        orders = self.agent.processed  # order messages executed: positions may have opened
        await self.agent.marks.tick(activity=orders != self._orders_seen)
        self._orders_seen = orders

    def process(self) -> int:
        n = self.loop.run_until_complete(self.agent.process_all())
        self.processed += n
        return n
