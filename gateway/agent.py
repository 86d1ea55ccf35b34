"""The gateway agent process: orders in, executions out, one IB connection per gateway.

Configuration: the gateways come from the environment variable
``SPREADPILOT_GATEWAYS``, a JSON object of gateway id -> connection::

    SPREADPILOT_GATEWAYS='{"gw-main": {"host": "127.0.0.1", "port": 4002,
                           "client_id": 7, "accounts": ["U1000001", "U1000002"]}}'

A follower's order intent names its ``gateway_id``; the agent executes it on that
gateway's connection. Everything else (ladder, pacing, dry run, claim lease, order
max age) comes from the ordinary settings.

Loop (`Agent.run`): keep every gateway connected (reconnect with exponential
backoff, connection state logged with ``operation="connection"``), pull up to
``batch_size`` messages from ``agent-orders`` (`Agent.run_once`), execute them
concurrently (`execute_many`), ack the settled ones, nack the rest (they come
back after the subscription's backoff and reconcile at IB before anything is
sent), and log a heartbeat (``operation="heartbeat"``) every 15 s of clock time.

A malformed message (not an OrderIntent) is logged, acked (it would never parse
on redelivery either) and alerted (MESSAGE_DEAD_LETTERED); nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError

from gateway.commands import CommandLoop
from gateway.health import AgentHealth
from gateway.marks import MarksLoop
from gateway.pulled import keep_leased, report_malformed
from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import ny_date
from spreadpilot.domain.orders import OrderIntent
from spreadpilot.platform.settings import SettingsError
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.broker import Broker, RiskBroker
from spreadpilot.ports.bus import (
    ReceivedMessage,
)
from spreadpilot.services.emergency import GatewayReconnect
from spreadpilot.services.execution import (
    ExecutionContext,
    ExecutionResult,
    ExecutorConfig,
    clock_sleep,
    execute_many,
)
from spreadpilot.services.risk import RunOutcome, RunStatus

log = logging.getLogger("spreadpilot.agent")

GATEWAYS_ENV = "SPREADPILOT_GATEWAYS"
SUBSCRIPTION = "agent-orders"
SOURCE = "gateway-agent"
HEARTBEAT_SECONDS = 15.0

GATEWAYS_EXAMPLE = (
    '{"gw-main": {"host": "127.0.0.1", "port": 4002, "client_id": 7, "accounts": ["U1000001"]}}'
)


class GatewayConfigError(SettingsError):
    """SPREADPILOT_GATEWAYS is missing or wrong; the message names the gateway and field."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    client_id: int
    accounts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, gateway_id: str, raw: object) -> GatewayConfig:
        where = f"{GATEWAYS_ENV}[{gateway_id!r}]"
        if not isinstance(raw, dict):
            raise GatewayConfigError(
                f"{where}: must be an object with host, port, client_id, accounts; got {raw!r}"
            )
        unknown = sorted(set(raw) - {"host", "port", "client_id", "accounts"})
        if unknown:
            raise GatewayConfigError(
                f"{where}: unknown field(s) {', '.join(unknown)}; "
                "expected host, port, client_id, accounts"
            )
        host = raw.get("host")
        if not isinstance(host, str) or not host.strip():
            raise GatewayConfigError(f"{where}.host: must be a non-empty string, got {host!r}")
        port = raw.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise GatewayConfigError(f"{where}.port: must be an integer 1-65535, got {port!r}")
        client_id = raw.get("client_id")
        if isinstance(client_id, bool) or not isinstance(client_id, int) or client_id < 0:
            raise GatewayConfigError(
                f"{where}.client_id: must be a non-negative integer (a fixed IB clientId), "
                f"got {client_id!r}"
            )
        accounts = raw.get("accounts", [])
        if not isinstance(accounts, list) or not all(
            isinstance(a, str) and a.strip() for a in accounts
        ):
            raise GatewayConfigError(
                f"{where}.accounts: must be a list of IB account ids, got {accounts!r}"
            )
        return cls(host=host.strip(), port=port, client_id=client_id, accounts=tuple(accounts))


def parse_gateways(text: str) -> dict[str, GatewayConfig]:
    """Parse the JSON value of SPREADPILOT_GATEWAYS (see the module doc)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GatewayConfigError(
            f"{GATEWAYS_ENV}: not valid JSON ({exc}); expected e.g. {GATEWAYS_EXAMPLE}"
        ) from None
    if not isinstance(raw, dict) or not raw:
        raise GatewayConfigError(
            f"{GATEWAYS_ENV}: must be a non-empty JSON object of gateway id -> connection, "
            f"e.g. {GATEWAYS_EXAMPLE}"
        )
    gateways = {str(gid): GatewayConfig.parse(str(gid), value) for gid, value in raw.items()}
    seen: dict[tuple[str, int, int], str] = {}
    for gid, gw in gateways.items():
        key = (gw.host, gw.port, gw.client_id)
        if key in seen:
            raise GatewayConfigError(
                f"{GATEWAYS_ENV}[{gid!r}].client_id: {gw.client_id} is already used by "
                f"{seen[key]!r} on {gw.host}:{gw.port}; each connection needs its own clientId"
            )
        seen[key] = gid
    return gateways


def gateways_from_env(environ: Mapping[str, str] | None = None) -> dict[str, GatewayConfig]:
    """The gateways of SPREADPILOT_GATEWAYS; a clear GatewayConfigError if unset or wrong."""
    env = os.environ if environ is None else environ
    text = env.get(GATEWAYS_ENV, "").strip()
    if not text:
        raise GatewayConfigError(
            f"{GATEWAYS_ENV} is not set: the agent needs its gateways, e.g. "
            f"{GATEWAYS_ENV}='{GATEWAYS_EXAMPLE}'"
        )
    return parse_gateways(text)


BrokerFactory = Callable[[str, GatewayConfig], Broker]


@dataclass
class _Connection:
    gateway_id: str
    config: GatewayConfig
    broker: Broker
    state: str = "disconnected"  # disconnected | connected | backoff
    failures: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True)
class _Pending:
    intent: OrderIntent
    messages: list[ReceivedMessage] = field(default_factory=list)


class Agent:
    """Pulls ``agent-orders`` and executes every intent on its gateway's connection."""

    def __init__(
        self,
        container: Container,
        gateways: Mapping[str, GatewayConfig],
        *,
        config: ExecutorConfig | None = None,
        broker_factory: BrokerFactory | None = None,
        batch_size: int = 100,
        holder: str | None = None,
        poll_seconds: float = 1.0,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        reconnect_initial_seconds: float = 1.0,
        reconnect_max_seconds: float = 60.0,
        execution_timeout: float | None = None,
        max_batches_in_flight: int = 4,
        unpaced: bool = False,
    ) -> None:
        if not gateways:
            raise GatewayConfigError(f"{GATEWAYS_ENV}: no gateway configured")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.container = container
        self.gateways = dict(gateways)
        self.clock = container.clock
        self.bus = container.bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.reconnect_initial = reconnect_initial_seconds
        self.reconnect_max = reconnect_max_seconds
        self.execution_timeout = execution_timeout
        self.max_batches_in_flight = max(1, max_batches_in_flight)
        #: no client-side message throttle: only for simulators on a simulated clock
        #: (a day in seconds; IB's messages per wall second mean nothing there)
        self.unpaced = unpaced
        self.holder = holder or f"{SOURCE}:{socket.gethostname()}:{os.getpid()}"
        self.context = ExecutionContext(
            bus=container.bus,
            clock=container.clock,
            claims=container.claims,
            alerts=container.alerts,
            config=config or ExecutorConfig.from_settings(container.settings),
            holder=self.holder,
            store=container.store,
            calendar=container.calendar,
        )
        make = broker_factory or self._ib_broker
        self.connections = {
            gid: _Connection(gid, cfg, make(gid, cfg)) for gid, cfg in self.gateways.items()
        }
        self._in_flight: set[str] = set()  # order refs being executed by this process
        self.ack_deadline_seconds = container.topology.subscriptions[
            SUBSCRIPTION
        ].ack_deadline_seconds
        self.processed = 0
        #: gateway checks, heartbeat record, /health (gateway/health.py; issue 5)
        self.health = AgentHealth(self)
        #: marks, fills and (at the pre-open check) observed settlements (issue 6)
        self.marks = MarksLoop(self)
        #: scheduled risk jobs and operator commands from agent-commands (issue 5)
        self.commands = CommandLoop(self)

    def _ib_broker(self, gateway_id: str, cfg: GatewayConfig) -> Broker:
        from spreadpilot.adapters.ib.broker import IBBroker

        return IBBroker(
            cfg.host,
            cfg.port,
            cfg.client_id,
            accounts=list(cfg.accounts) or None,
            dry_run=self.container.settings.dry_run,
            timeout=self.container.settings.rpc_timeout_seconds,
            clock=self.clock,
            pacing_per_second=None
            if self.unpaced
            else self.container.settings.gateway_pacing_per_second,
        )

    # ------------------------------------------------------------------ connections

    @property
    def brokers(self) -> dict[str, Broker]:
        return {gid: c.broker for gid, c in self.connections.items()}

    def risk_brokers(self) -> dict[str, RiskBroker]:
        """Every gateway's broker as the risk and marks jobs use it (IBBrokers are)."""
        return {gid: cast(RiskBroker, c.broker) for gid, c in self.connections.items()}

    def connected(self) -> dict[str, Broker]:
        return {gid: c.broker for gid, c in self.connections.items() if c.broker.is_connected()}

    async def reconnect_due(self) -> None:
        """One attempt per gateway not connected whose backoff is over (what the
        agent's keepers do in `run`, for a host that drives the agent tick by tick)."""
        await asyncio.gather(
            *(self._ensure(c, respect_backoff=True) for c in self.connections.values())
        )

    async def connect_all(self) -> dict[str, bool]:
        """One connection attempt per gateway not connected and not in backoff."""
        results = await asyncio.gather(*(self._ensure(c) for c in self.connections.values()))
        return dict(zip(self.connections, results, strict=True))

    async def force_reconnect(self, command: GatewayReconnect) -> RunOutcome:
        """The operator's force-reconnect: drop the API connection and open it again now,
        back-off or not (the gateway process is restarted only by the health checks)."""
        day = ny_date(self.clock.now()).isoformat()
        conn = self.connections.get(command.gateway_id)
        if conn is None:
            known = ", ".join(sorted(self.connections)) or "none"
            return RunOutcome(
                RunStatus.FAILED, day, f"unknown gateway {command.gateway_id!r} (known: {known})"
            )
        with contextlib.suppress(Exception):  # a dead connection may not close cleanly
            await conn.broker.disconnect()
        conn.next_attempt = None
        self._set_state(conn, "disconnected", f"force-reconnect by {command.requested_by}")
        if await self._ensure(conn):
            return RunOutcome(RunStatus.OK, day, f"{command.gateway_id} reconnected")
        return RunOutcome(
            RunStatus.FAILED, day, f"{command.gateway_id} did not reconnect: {conn.last_error}"
        )

    async def _ensure(self, conn: _Connection, *, respect_backoff: bool = False) -> bool:
        if conn.broker.is_connected():
            if conn.state != "connected":
                self._set_state(conn, "connected")
            return True
        if conn.state == "connected":
            self._set_state(conn, "disconnected", "connection lost")
        now = self.clock.now()
        if respect_backoff and conn.next_attempt is not None and now < conn.next_attempt:
            return False
        try:
            await conn.broker.connect()
        except Exception as exc:  # BrokerError, OSError, timeouts: all mean "not now"
            conn.failures += 1
            delay = min(self.reconnect_max, self.reconnect_initial * 2 ** (conn.failures - 1))
            conn.next_attempt = now + timedelta(seconds=delay)
            conn.last_error = str(exc)
            self._set_state(conn, "backoff", f"{exc}; next attempt in {delay:.0f} s")
            if conn.failures == 1 or conn.failures % 10 == 0:
                self._gateway_alert(conn)
            return False
        conn.failures = 0
        conn.next_attempt = None
        conn.last_error = ""
        self._set_state(conn, "connected")
        return True

    def _set_state(self, conn: _Connection, state: str, detail: str = "") -> None:
        conn.state = state
        level = logging.INFO if state == "connected" else logging.WARNING
        log.log(
            level,
            "gateway %s (%s:%s clientId %s): %s%s",
            conn.gateway_id,
            conn.config.host,
            conn.config.port,
            conn.config.client_id,
            state,
            f" ({detail})" if detail else "",
            extra={
                "operation": "connection",
                "gateway_id": conn.gateway_id,
                "state": state,
                "failures": conn.failures,
            },
        )

    def _gateway_alert(self, conn: _Connection) -> None:
        if self.health.owns_alerts:  # its checks alert once per outage (gateway/health.py)
            return
        now = self.clock.now()
        try:
            self.context.alerts.raise_alert(
                Alert.new(
                    AlertType.GATEWAY_UNREACHABLE,
                    f"gateway {conn.gateway_id} ({conn.config.host}:{conn.config.port}) "
                    f"unreachable after {conn.failures} attempt(s): {conn.last_error}; "
                    "its orders wait",
                    at=now,
                    dedup_key=f"{conn.gateway_id}:{now:%Y-%m-%d}:{conn.failures}",
                    source=SOURCE,
                    details={"gateway_id": conn.gateway_id, "failures": conn.failures},
                )
            )
        except Exception:  # an alert that cannot go out must not stop the agent
            log.exception("could not raise GATEWAY_UNREACHABLE for %s", conn.gateway_id)

    async def close(self) -> None:
        for conn in self.connections.values():
            with contextlib.suppress(Exception):
                await conn.broker.disconnect()
            conn.state = "disconnected"

    # ------------------------------------------------------------------ orders

    async def run_once(self) -> int:
        """Pull up to `batch_size` order messages, execute them, ack/nack each.

        Returns the number of messages pulled (0: nothing pending)."""
        messages = self.bus.pull(SUBSCRIPTION, max_messages=self.batch_size, timeout=1.0)
        if not messages:
            return 0
        pending: dict[str, _Pending] = {}
        ack: list[str] = []
        nack: list[str] = []
        for msg in messages:
            intent = self._parse(msg)
            if intent is None:
                ack.append(msg.ack_id)
                continue
            ref = intent.order_ref
            if ref in self._in_flight:
                nack.append(msg.ack_id)  # executing in another batch: comes back later
                continue
            entry = pending.setdefault(ref, _Pending(intent))
            entry.messages.append(msg)  # duplicates in one batch share one execution
        self._settle(ack, nack)
        if not pending:
            return len(messages)
        refs = list(pending)
        self._in_flight.update(refs)
        leased = [m.ack_id for p in pending.values() for m in p.messages]
        keeper = asyncio.create_task(self._leased(leased))
        try:
            results = await execute_many(
                [p.intent for p in pending.values()],
                self.connected(),
                self.context,
                timeout=self.execution_timeout,
            )
        except Exception:
            log.exception("executing a batch of %d orders failed; they come back", len(refs))
            self._settle([], leased)
            raise
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            self._in_flight.difference_update(refs)
        ack, nack = [], []
        for entry, result in zip(pending.values(), results, strict=True):
            self._log_result(result, len(entry.messages))
            (ack if result.settled else nack).extend(m.ack_id for m in entry.messages)
        self._settle(ack, nack)
        self.processed += len(messages)
        return len(messages)

    def _leased(self, ack_ids: list[str]) -> Coroutine[Any, Any, None]:
        """Keeps the messages leased while they are worked on (gateway/pulled.py)."""
        return keep_leased(self.bus, self.clock, SUBSCRIPTION, ack_ids, self.ack_deadline_seconds)

    def _settle(self, ack: list[str], nack: list[str]) -> None:
        if ack:
            self.bus.ack(SUBSCRIPTION, ack)
        if nack:
            self.bus.nack(SUBSCRIPTION, nack)

    def _parse(self, msg: ReceivedMessage) -> OrderIntent | None:
        try:
            return OrderIntent.model_validate_json(msg.data)
        except (ValidationError, ValueError) as exc:
            reason = str(exc).replace("\n", " ")[:500]
        report_malformed(
            self.context.alerts,
            self.clock,
            SUBSCRIPTION,
            msg,
            what="order",
            reason=f"not a valid order intent ({reason})",
            consequence="Nothing was sent to IB",
            source=SOURCE,
        )
        return None

    @staticmethod
    def _log_result(result: ExecutionResult, deliveries: int) -> None:
        log.info(
            "%s %s: %s (%d/%d filled)%s",
            result.order_ref,
            result.outcome,
            "ack" if result.settled else "nack",
            result.filled,
            result.quantity,
            f" {result.reason}" if result.reason else "",
            extra={
                "operation": "execution",
                "order_ref": result.order_ref,
                "follower_id": result.follower_id,
                "gateway_id": result.gateway_id,
                "outcome": result.outcome,
                "settled": result.settled,
                "deliveries": deliveries,
                "latency_ms": None if result.seconds is None else round(result.seconds * 1000, 1),
            },
        )

    # ------------------------------------------------------------------ the loop

    def heartbeat(self) -> None:
        states = {gid: c.state for gid, c in self.connections.items()}
        log.info(
            "heartbeat: %s",
            ", ".join(f"{g}={s}" for g, s in states.items()),
            extra={
                "operation": "heartbeat",
                "holder": self.holder,
                "gateways": states,
                "in_flight": len(self._in_flight),
                "processed": self.processed,
            },
        )
        self.health.heartbeat(states)

    async def _sleep(self, seconds: float) -> None:
        await clock_sleep(self.clock, seconds)

    async def _keep_connected(self, conn: _Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._ensure(conn, respect_backoff=True)
            await self._sleep(self.poll_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: keep the gateways connected, execute orders, heartbeat.

        Every gateway gets one connection attempt before the first pull, so orders
        pending at a (re)start meet their connection, not a NO_GATEWAY nack + alert."""
        await self.connect_all()
        keepers = [
            asyncio.create_task(self._keep_connected(c, stop), name=f"connect:{gid}")
            for gid, c in self.connections.items()
        ]
        keepers.append(asyncio.create_task(self.health.run(stop), name="health"))
        keepers.append(asyncio.create_task(self.commands.run(stop), name="commands"))
        keepers.append(asyncio.create_task(self.marks.run(stop), name="marks"))
        batches: set[asyncio.Task[int]] = set()
        next_heartbeat = self.clock.now()
        try:
            while not stop.is_set():
                now = self.clock.now()
                if now >= next_heartbeat:
                    self.heartbeat()
                    next_heartbeat = now + timedelta(seconds=self.heartbeat_seconds)
                for done in [t for t in batches if t.done()]:
                    batches.discard(done)
                    if not done.cancelled() and done.exception() is not None:
                        log.error("an order batch failed: %r", done.exception())
                pulled = 0
                if len(batches) < self.max_batches_in_flight:
                    batch = asyncio.create_task(self.run_once())
                    batches.add(batch)
                    await asyncio.sleep(0)  # let it pull
                    if batch.done() and not batch.cancelled() and batch.exception() is None:
                        pulled = batch.result()
                if not pulled:
                    await self._wait(stop, self.poll_seconds)
        finally:
            for keeper in keepers:
                keeper.cancel()
            if batches:
                await asyncio.gather(*batches, return_exceptions=True)
            await asyncio.gather(*keepers, return_exceptions=True)
            await self.close()
            self.heartbeat()

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, stopper):
                fut.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def process_pending(self, *, max_batches: int = 1000) -> int:
        """Run batches until none is left to pull now; returns the messages pulled."""
        total = 0
        for _ in range(max_batches):
            n = await self.run_once()
            if n == 0:
                break
            total += n
        return total

    async def drain(self, *, max_batches: int = 1000) -> int:
        """Connect, process the pending orders then commands (risk jobs, emergency
        closes), disconnect (``spreadpilot agent --once``); returns the messages."""
        await self.connect_all()
        try:
            return await self.process_all(max_batches=max_batches)
        finally:
            await self.close()

    async def process_all(self, *, max_batches: int = 1000) -> int:
        """The pending orders, then the pending commands; returns the messages."""
        orders = await self.process_pending(max_batches=max_batches)
        return orders + await self.commands.process_pending()


def describe(gateways: Mapping[str, GatewayConfig]) -> dict[str, Any]:
    """The gateways for a log line (no secrets in them: host, port, clientId, accounts)."""
    return {
        gid: {
            "host": g.host,
            "port": g.port,
            "client_id": g.client_id,
            "accounts": list(g.accounts),
        }
        for gid, g in gateways.items()
    }
