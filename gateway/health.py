"""The agent's gateway health checks, heartbeat record and /health report.

Every ``check_seconds`` of clock time (15 s) each gateway is checked: connected,
and one cheap round trip (``reqCurrentTime``) answered within ``timeout`` wall
seconds. Per gateway:

- ``failures_to_down`` (3) consecutive failed checks -> DOWN (logged, gauge 0);
- DOWN for ``alert_after`` (60 s, counted from the first failed check) ->
  one GATEWAY_UNREACHABLE per outage (dedup key: gateway + outage start). While
  the monitor runs it owns that alert: the reconnect loop's own alerts are
  suppressed (`Agent._gateway_alert`), so an outage pages once, and a nightly
  IBC restart of a few seconds pages never;
- back after an alerted outage -> one COMPONENT_RECOVERED (same outage key);
- hung (socket connected, no answer) and DOWN -> restarted through the
  `GatewayRestarter` port, with exponential back-off between restarts
  (``restart_backoff``, doubling) and a budget (``restart_budget`` per
  ``restart_window``); budget spent -> one CRITICAL COMPONENT_DOWN for the
  outage and no more restarts.

The agent's heartbeat (every 15 s) is also written to the store
(``heartbeats/gateway-agent``: time, holder, gateways' states, versions) so
``health_ping`` can judge its age; a failed write makes the store check red.

Intervals run on the agent's clock (`clock_sleep`): on a SimClock the tests are
deterministic. The round-trip timeout is wall time (it waits on a socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import shlex
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.platform import collections as C
from spreadpilot.platform import metrics
from spreadpilot.platform.health_http import (
    DEGRADED,
    DOWN,
    OK,
    HealthReport,
    HealthServer,
    Status,
    versions,
)
from spreadpilot.ports.broker import Broker
from spreadpilot.services.execution import clock_sleep

if TYPE_CHECKING:
    from gateway.agent import Agent, _Connection
    from ibsim.server import Gateway

log = logging.getLogger("spreadpilot.agent.health")

COMPONENT = "gateway-agent"
UP, FAILING, UNKNOWN = "UP", "FAILING", "UNKNOWN"
GW_DOWN = "DOWN"


class RestartFailed(Exception):
    """The restarter could not restart the gateway (the attempt still counts)."""


class GatewayRestarter(Protocol):
    """Restarts one IB Gateway (by its gateway id = IB login)."""

    async def restart(self, gateway_id: str) -> None: ...


class CommandRestarter:
    """Production: runs a command, by default ``systemctl restart ib-gateway-<login>.service``
    (the VM's units, terraform/modules/gateway_boot)."""

    def __init__(self, template: str, timeout: float = 120.0) -> None:
        self.template = template
        self.timeout = timeout

    async def restart(self, gateway_id: str) -> None:
        argv = shlex.split(self.template.format(gateway_id=gateway_id))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
        except OSError as exc:
            raise RestartFailed(f"{' '.join(argv)}: {exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise RestartFailed(f"{' '.join(argv)}: no answer in {self.timeout:g} s") from exc
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()[:300]
            raise RestartFailed(f"{' '.join(argv)} exited {proc.returncode}: {text}")


class DockerRestarter:
    """Production on the VM: the agent runs in a container, so no systemctl. It kills
    the gateway's container through the Docker Engine API on the mounted socket; the
    gateway's systemd unit (Restart=always) then starts a fresh one, fetching the
    login's secret again (terraform/modules/gateway_boot). Stdlib HTTP over a Unix
    socket: one POST does not deserve a Docker SDK dependency."""

    def __init__(self, socket_path: Path, container: str, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.container = container
        self.timeout = timeout

    async def restart(self, gateway_id: str) -> None:
        name = self.container.format(gateway_id=gateway_id)
        status, body = await asyncio.to_thread(self._post, f"/containers/{name}/kill")
        if status == 404:
            raise RestartFailed(f"container {name} not found on {self.socket_path}: {body}")
        if status >= 300:
            raise RestartFailed(f"docker kill {name}: HTTP {status} {body}")

    def _post(self, path: str) -> tuple[int, str]:
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request("POST", path, headers={"Host": "docker"})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace").strip()[:300]
        except OSError as exc:
            raise RestartFailed(f"Docker socket {self.socket_path}: {exc}") from exc
        finally:
            conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def restarter_from_settings(settings: Any) -> GatewayRestarter:
    if settings.health_restarter == "docker":
        return DockerRestarter(settings.health_docker_socket, settings.health_restart_container)
    return CommandRestarter(settings.health_restart_command)


class SimulatorRestarter:
    """Embedded runs and tests: restarts the ibsim Gateway of each gateway id."""

    def __init__(self, gateways: Mapping[str, Gateway], downtime: float = 0.0) -> None:
        self.gateways = dict(gateways)
        self.downtime = downtime
        self.restarted: list[str] = []

    async def restart(self, gateway_id: str) -> None:
        gateway = self.gateways.get(gateway_id)
        if gateway is None:
            raise RestartFailed(f"no simulator for gateway {gateway_id!r}")
        await asyncio.to_thread(gateway.restart, self.downtime)
        self.restarted.append(gateway_id)


@dataclass(frozen=True)
class HealthConfig:
    check_seconds: float = 15.0
    timeout: float = 5.0
    failures_to_down: int = 3
    alert_after: timedelta = timedelta(seconds=60)
    restart_budget: int = 3
    restart_window: timedelta = timedelta(hours=1)
    restart_backoff: timedelta = timedelta(seconds=60)
    restart_backoff_max: timedelta = timedelta(minutes=30)

    @classmethod
    def from_settings(cls, s: Any) -> HealthConfig:
        return cls(
            check_seconds=s.health_check_seconds,
            timeout=s.health_check_timeout_seconds,
            failures_to_down=s.health_failures_to_down,
            alert_after=timedelta(seconds=s.health_alert_after_seconds),
            restart_budget=s.health_restart_budget,
            restart_window=timedelta(seconds=s.health_restart_window_seconds),
            restart_backoff=timedelta(seconds=s.health_restart_backoff_seconds),
        )


@dataclass
class GatewayHealth:
    gateway_id: str
    state: str = UNKNOWN  # UNKNOWN | UP | FAILING | DOWN
    failures: int = 0  # consecutive failed checks
    failing_since: datetime | None = None  # the outage's first failed check
    last_check: datetime | None = None
    last_ok: datetime | None = None
    last_error: str = ""
    hung: bool = False
    alerted: bool = False  # GATEWAY_UNREACHABLE raised for this outage
    budget_alerted: bool = False
    restarts: deque[datetime] = field(default_factory=deque)
    next_restart: datetime | None = None
    restart_wait: timedelta | None = None

    @property
    def outage_key(self) -> str:
        since = self.failing_since.isoformat() if self.failing_since else "?"
        return f"{self.gateway_id}:outage:{since}"

    def view(self) -> dict[str, Any]:
        status: Status = {UP: OK, GW_DOWN: DOWN}.get(self.state, DEGRADED)
        return {
            "status": status,
            "state": self.state,
            "failures": self.failures,
            "hung": self.hung,
            "last_ok": self.last_ok.isoformat() if self.last_ok else None,
            "down_since": self.failing_since.isoformat()
            if self.state == GW_DOWN and self.failing_since
            else None,
            "last_error": self.last_error,
            "restarts_in_window": len(self.restarts),
        }


async def ping(broker: Broker, timeout: float) -> None:
    """Raise unless the broker is connected and answers one round trip in `timeout` s."""
    if not broker.is_connected():
        raise ConnectionError("not connected")
    probe = getattr(broker, "ping", None)
    if probe is None:
        return
    try:
        await asyncio.wait_for(probe(), timeout)
    except TimeoutError:
        raise TimeoutError(f"no answer to reqCurrentTime within {timeout:g} s") from None


def probe_bus(bus: Any) -> None:
    """Raise unless the bus answers (adapters with a `probe()`; others are assumed up)."""
    probe = getattr(bus, "probe", None)
    if probe is not None:
        probe()


class AgentHealth:
    """The agent's gateway monitor, heartbeat record and /health report."""

    def __init__(
        self,
        agent: Agent,
        *,
        config: HealthConfig | None = None,
        restarter: GatewayRestarter | None = None,
    ) -> None:
        self.agent = agent
        self.clock = agent.clock
        settings = agent.container.settings
        self.config = config or HealthConfig.from_settings(settings)
        self.restarter: GatewayRestarter | None = restarter
        if restarter is None and settings.mode == "gcp":
            self.restarter = restarter_from_settings(settings)
        self.gateways = {gid: GatewayHealth(gid) for gid in agent.connections}
        self.running = False
        self.store_check: dict[str, Any] = {"status": DEGRADED, "detail": "no heartbeat yet"}
        self.bus_check: dict[str, Any] = {"status": DEGRADED, "detail": "not checked yet"}
        self.last_heartbeat: datetime | None = None
        self.versions = versions()

    # ------------------------------------------------------------------ checks

    @property
    def owns_alerts(self) -> bool:
        """While the monitor runs, it alone raises the outage alerts."""
        return self.running

    async def run(self, stop: asyncio.Event) -> None:
        self.running = True
        try:
            while not stop.is_set():
                try:
                    await self.check_once()
                except Exception:  # a broken check must not end the monitor
                    log.exception("gateway health check failed")
                await clock_sleep(self.clock, self.config.check_seconds)
        finally:
            self.running = False

    async def check_once(self) -> None:
        """Check every gateway once (concurrently) and the bus."""
        conns = list(self.agent.connections.values())
        results = await asyncio.gather(*(self._check(c) for c in conns), return_exceptions=True)
        for conn, result in zip(conns, results, strict=True):
            if isinstance(result, BaseException):
                log.error("health check of %s failed: %r", conn.gateway_id, result)
        self._check_bus()

    async def _check(self, conn: _Connection) -> None:
        gh = self.gateways[conn.gateway_id]
        started = asyncio.get_running_loop().time()
        connected = conn.broker.is_connected()
        try:
            await ping(conn.broker, self.config.timeout)
        except Exception as exc:
            now = self.clock.now()
            error = str(exc) or type(exc).__name__
            if not connected and conn.last_error:
                error = f"not connected: {conn.last_error}"
            await self._failed(gh, conn, now, error, hung=connected)
            return
        latency_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
        self._ok(gh, conn, self.clock.now(), latency_ms)

    def _ok(self, gh: GatewayHealth, conn: _Connection, now: datetime, latency_ms: float) -> None:
        was = gh.state
        gh.last_check = gh.last_ok = now
        metrics.GATEWAY_UP.labels(gateway=gh.gateway_id).set(1)
        if was in (GW_DOWN, FAILING):
            log.info(
                "gateway %s is back after %d failed check(s)",
                gh.gateway_id,
                gh.failures,
                extra={
                    "operation": "gateway_health",
                    "gateway_id": gh.gateway_id,
                    "state": UP,
                    "latency_ms": latency_ms,
                },
            )
        if was == GW_DOWN and gh.alerted:
            down_for = (now - gh.failing_since).total_seconds() if gh.failing_since else 0.0
            self._alert(
                AlertType.COMPONENT_RECOVERED,
                f"gateway {gh.gateway_id} ({conn.config.host}:{conn.config.port}) is back "
                f"after {down_for:.0f} s down; its orders resume",
                gh.outage_key,
                gh,
                down_seconds=round(down_for),
            )
        gh.state = UP
        gh.failures = 0
        gh.failing_since = None
        gh.last_error = ""
        gh.hung = False
        gh.alerted = gh.budget_alerted = False
        gh.next_restart = None
        gh.restart_wait = None

    async def _failed(
        self, gh: GatewayHealth, conn: _Connection, now: datetime, error: str, *, hung: bool
    ) -> None:
        gh.last_check = now
        gh.failures += 1
        gh.failing_since = gh.failing_since or now
        gh.last_error = error
        gh.hung = hung
        metrics.GATEWAY_UP.labels(gateway=gh.gateway_id).set(0)
        if gh.failures >= self.config.failures_to_down:
            if gh.state != GW_DOWN:
                gh.state = GW_DOWN
                log.error(
                    "gateway %s is DOWN after %d failed checks: %s",
                    gh.gateway_id,
                    gh.failures,
                    error,
                    extra={
                        "operation": "gateway_health",
                        "gateway_id": gh.gateway_id,
                        "state": GW_DOWN,
                        "failures": gh.failures,
                        "hung": hung,
                    },
                )
        else:
            gh.state = FAILING
            log.warning(
                "gateway %s failed its health check (%d of %d): %s",
                gh.gateway_id,
                gh.failures,
                self.config.failures_to_down,
                error,
                extra={
                    "operation": "gateway_health",
                    "gateway_id": gh.gateway_id,
                    "state": FAILING,
                    "failures": gh.failures,
                    "hung": hung,
                },
            )
        if gh.state != GW_DOWN:
            return
        down_for = now - gh.failing_since
        if not gh.alerted and down_for >= self.config.alert_after:
            what = "hung (connected, not answering)" if hung else "unreachable"
            gh.alerted = (
                self._alert(
                    AlertType.GATEWAY_UNREACHABLE,
                    f"gateway {gh.gateway_id} ({conn.config.host}:{conn.config.port}) {what} "
                    f"for {down_for.total_seconds():.0f} s, unreachable after {gh.failures} failed "
                    f"checks: {error}; its orders wait",
                    gh.outage_key,
                    gh,
                    failures=gh.failures,
                    hung=hung,
                )
                or gh.alerted
            )
        if hung:
            await self._maybe_restart(gh, now)

    async def _maybe_restart(self, gh: GatewayHealth, now: datetime) -> None:
        if self.restarter is None:
            return
        window_start = now - self.config.restart_window
        while gh.restarts and gh.restarts[0] <= window_start:
            gh.restarts.popleft()
        if len(gh.restarts) >= self.config.restart_budget:
            if not gh.budget_alerted:
                gh.budget_alerted = self._alert(
                    AlertType.COMPONENT_DOWN,
                    f"gateway {gh.gateway_id} is still hung after {len(gh.restarts)} restarts "
                    f"in {self.config.restart_window.total_seconds() / 60:.0f} min: restart "
                    "budget spent, no more automatic restarts; restart it by hand "
                    f"(systemctl restart ib-gateway-{gh.gateway_id}) and check its VNC screen",
                    f"{gh.outage_key}:restart-budget",
                    gh,
                    severity=Severity.CRITICAL,
                    restarts=len(gh.restarts),
                )
            return
        if gh.next_restart is not None and now < gh.next_restart:
            return
        wait = gh.restart_wait or self.config.restart_backoff
        gh.restarts.append(now)
        gh.next_restart = now + wait
        gh.restart_wait = min(wait * 2, self.config.restart_backoff_max)
        metrics.GATEWAY_RESTARTS.labels(gateway=gh.gateway_id).inc()
        log.warning(
            "restarting hung gateway %s (restart %d of %d this window; next no sooner than %s)",
            gh.gateway_id,
            len(gh.restarts),
            self.config.restart_budget,
            gh.next_restart.isoformat(),
            extra={
                "operation": "gateway_restart",
                "gateway_id": gh.gateway_id,
                "restarts": len(gh.restarts),
            },
        )
        try:
            await self.restarter.restart(gh.gateway_id)
        except Exception as exc:
            log.error(
                "could not restart gateway %s: %s",
                gh.gateway_id,
                exc,
                extra={"operation": "gateway_restart", "gateway_id": gh.gateway_id},
            )

    def _check_bus(self) -> None:
        try:
            probe_bus(self.agent.bus)
        except Exception as exc:
            self.bus_check = {"status": DOWN, "detail": str(exc)[:300]}
        else:
            self.bus_check = {"status": OK, "checked_at": self.clock.now().isoformat()}

    def _alert(
        self,
        type_: AlertType,
        message: str,
        key: str,
        gh: GatewayHealth,
        *,
        severity: Severity | None = None,
        **details: Any,
    ) -> bool:
        try:
            self.agent.context.alerts.raise_alert(
                Alert.new(
                    type_,
                    message,
                    at=self.clock.now(),
                    dedup_key=key,
                    source=COMPONENT,
                    severity=severity,
                    details={"gateway_id": gh.gateway_id, "component": gh.gateway_id, **details},
                )
            )
        except Exception:  # tried again at the next check
            log.exception("could not raise %s for gateway %s", type_.value, gh.gateway_id)
            return False
        return True

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(self, states: Mapping[str, str]) -> None:
        """Record the heartbeat in the store (health_ping reads its age)."""
        now = self.clock.now()
        self.last_heartbeat = now
        metrics.HEARTBEAT.set(now.timestamp())
        doc = {
            "component": COMPONENT,
            "holder": self.agent.holder,
            "at": now,
            "gateways": {
                gid: {"connection": states.get(gid, ""), "health": gh.state}
                for gid, gh in self.gateways.items()
            },
            "versions": self.versions_now(),
            "in_flight": len(self.agent._in_flight),
            "processed": self.agent.processed,
        }
        try:
            self.agent.container.store.set(C.HEARTBEATS, COMPONENT, doc)
        except Exception as exc:
            self.store_check = {"status": DOWN, "detail": str(exc)[:300]}
            log.error(
                "could not record the heartbeat: %s",
                exc,
                extra={"operation": "heartbeat_record"},
            )
        else:
            self.store_check = {"status": OK, "written_at": now.isoformat()}

    def versions_now(self) -> dict[str, str]:
        out = dict(self.versions)
        for gid, conn in self.agent.connections.items():
            with contextlib.suppress(Exception):
                ib = getattr(conn.broker, "ib", None)
                if ib is not None and conn.broker.is_connected():
                    out[f"gateway:{gid}"] = str(ib.client.serverVersion())
        return out

    # ------------------------------------------------------------------ /health

    def report(self) -> HealthReport:
        now = self.clock.now()
        checks: dict[str, dict[str, Any]] = {
            f"gateway:{gid}": gh.view() for gid, gh in self.gateways.items()
        }
        checks["store"] = dict(self.store_check)
        checks["bus"] = dict(self.bus_check)
        limit = timedelta(seconds=3 * self.agent.heartbeat_seconds)
        if self.last_heartbeat is None:
            checks["loop"] = {"status": DEGRADED, "detail": "no heartbeat yet"}
        else:
            age = now - self.last_heartbeat
            checks["loop"] = {
                "status": OK if age <= limit else DOWN,
                "heartbeat_age_seconds": round(age.total_seconds(), 1),
            }
        return HealthReport.of(COMPONENT, checks, self.versions_now(), now)

    def serve(self, host: str | None = None, port: int | None = None) -> HealthServer:
        """Start /health and /metrics (settings' health_host/health_port by default)."""
        s = self.agent.container.settings
        metrics.install()
        return HealthServer(
            self.report,
            host if host is not None else s.health_host,
            s.health_port if port is None else port,
        ).start()
