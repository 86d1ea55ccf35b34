"""The agent's /health and /metrics over real HTTP, and the trading log lines' fields.

/health turns red (503, status "down") while a dependency is down (the gateway,
the store, the bus) and green (200, "ok") after; /metrics is Prometheus' text
format and its counters follow an order through the real simulator."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.agent import Agent
from spreadpilot.platform import metrics
from spreadpilot.platform.health_http import HealthServer
from spreadpilot.platform.logs import CloudJsonFormatter, reset_context, set_context
from spreadpilot.ports.bus import BusError
from spreadpilot.ports.store import StoreError
from tests.agent.conftest import MakeAgent
from tests.agent.recovery_support import Plug, publish
from tests.execution.conftest import MakeRig
from tests.health.conftest import monitor, until
from tests.health.test_gateway_health import STEP, run_closing


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def health(server: HealthServer) -> tuple[int, dict[str, Any]]:
    code, body = get(f"{server.url}/health")
    return code, json.loads(body)


def samples(server: HealthServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own text parser."""
    code, body = get(f"{server.url}/metrics")
    assert code == 200
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


class BrokenStore:
    """The store unreachable: every call fails as Firestore's adapter would."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_: Any, **__: Any) -> Any:
            raise StoreError("store unreachable (test)")

        return fail


class BrokenBus:
    def __init__(self, bus: Any) -> None:
        self.bus = bus

    def probe(self) -> None:
        raise BusError("bus unreachable (test)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


@contextmanager
def served(agent: Agent) -> Iterator[HealthServer]:
    server = agent.health.serve(host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        server.stop()


def test_health_is_red_while_a_dependency_is_down_and_green_after(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    assert rig.gateway is not None
    agent = make_agent(rig)
    mon = monitor(agent)
    plug = Plug(rig.gateway)
    (conn,) = agent.connections.values()
    seen: list[tuple[str, int, dict[str, Any]]] = []

    async def go() -> None:
        with served(agent) as server:

            def look(label: str) -> None:
                code, body = health(server)
                seen.append((label, code, body))

            await agent.connect_all()
            agent.heartbeat()
            await mon.check_once()
            look("up")
            plug.pull()
            await until(lambda: not conn.broker.is_connected(), "the dropped socket")
            for _ in range(3):
                await mon.check_once()
                rig.clock.advance(STEP)
            agent.heartbeat()
            look("gateway down")
            plug.plug_in()
            assert await agent._ensure(conn)
            await mon.check_once()
            agent.heartbeat()
            look("gateway back")
            real_store = agent.container.store
            agent.container.store = BrokenStore()  # type: ignore[misc]
            agent.heartbeat()
            look("store down")
            agent.container.store = real_store  # type: ignore[misc]
            agent.heartbeat()
            real_bus = agent.bus
            agent.bus = BrokenBus(real_bus)  # type: ignore[assignment]
            await mon.check_once()
            look("bus down")
            agent.bus = real_bus
            await mon.check_once()
            look("all back")

    run_closing(rig, agent, go)

    got = {label: (code, body["status"]) for label, code, body in seen}
    assert got == {
        "up": (200, "ok"),
        "gateway down": (503, "down"),
        "gateway back": (200, "ok"),
        "store down": (503, "down"),
        "bus down": (503, "down"),
        "all back": (200, "ok"),
    }
    bodies = {label: body for label, _, body in seen}
    down = bodies["gateway down"]["checks"]["gateway:gw-1"]
    assert down["status"] == "down" and down["state"] == "DOWN" and down["failures"] == 3
    assert "not connected" in down["last_error"]
    assert bodies["store down"]["checks"]["store"]["status"] == "down"
    assert "unreachable" in bodies["bus down"]["checks"]["bus"]["detail"]
    up = bodies["all back"]
    assert set(up["checks"]) == {"gateway:gw-1", "store", "bus", "loop"}
    assert up["versions"]["gateway:gw-1"] == "176" and "spreadpilot" in up["versions"]
    assert up["component"] == "gateway-agent"


def test_metrics_parse_and_count_an_order_and_the_gateway(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    mon = monitor(agent)
    intent = rig.intent()
    publish(rig, intent)
    before: dict[Any, float] = {}
    after: dict[Any, float] = {}

    async def go() -> None:
        with served(agent) as server:
            before.update(samples(server))
            await agent.connect_all()
            await mon.check_once()
            await agent.process_pending()
            after.update(samples(server))

    run_closing(rig, agent, go)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("spreadpilot_orders_total") == 1
    assert grew("spreadpilot_fills_total") >= 1
    assert grew("spreadpilot_order_events_total", event="placed") == 1
    assert grew("spreadpilot_executions_total", outcome="FILLED") == 1
    assert grew("spreadpilot_latency_seconds_count", operation="order_filled") >= 1
    assert grew("spreadpilot_latency_seconds_count", operation="execution") == 1
    assert value(after, "spreadpilot_gateway_up", gateway="gw-1") == 1
    names = {name for name, _ in after}
    assert {"spreadpilot_ladder_steps_total", "spreadpilot_latency_seconds_bucket"} <= names


def test_alerts_and_job_runs_are_counted_by_type() -> None:
    metrics.install()
    log = logging.getLogger("spreadpilot.alerts")
    before = metrics.ALERTS.labels(type="JOB_MISSED")._value.get()
    log.warning("alert JOB_MISSED: x", extra={"alert_type": "JOB_MISSED"})
    assert metrics.ALERTS.labels(type="JOB_MISSED")._value.get() == before + 1
    runs = metrics.JOB_RUNS.labels(job="signal-poll", status="SKIPPED")._value.get()
    logging.getLogger("spreadpilot.jobs").info(
        "job", extra={"operation": "job_run", "job": "signal-poll", "status": "SKIPPED"}
    )
    assert metrics.JOB_RUNS.labels(job="signal-poll", status="SKIPPED")._value.get() == runs + 1
    text = metrics.exposition().decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"spreadpilot_alerts", "spreadpilot_job_runs", "spreadpilot_gateway_up"} <= families


def test_every_trading_line_has_follower_order_ref_operation_and_latency(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    # The operations guide's queries: jsonPayload.follower_id=..., operation=~...,
    # latency_ms>1000; Cloud Logging's severity, trace and labels fields.
    rig = make_rig()
    agent = make_agent(rig)
    intent = rig.intent()
    publish(rig, intent)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudJsonFormatter("gateway-agent", "spreadpilot-test"))
    logger = logging.getLogger("spreadpilot")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    set_context(labels={"holder": "agent-1"}, trace="0af7651916cd43dd8448eb211c80319c")
    try:
        rig.run(agent.drain)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        reset_context()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    trading = [
        line
        for line in lines
        if str(line.get("operation", "")).startswith("order_")
        or line.get("operation") == "execution"
    ]
    ops = {line["operation"] for line in trading}
    assert {"order_claimed", "order_placed", "order_filled", "execution"} <= ops, ops
    for line in trading:
        assert line["follower_id"] == "alice", line
        assert line["order_ref"] == intent.order_ref, line
        assert isinstance(line["latency_ms"], int | float) and line["latency_ms"] >= 0, line
        assert line["severity"] in {"INFO", "WARNING", "ERROR"}
        assert line["logging.googleapis.com/labels"] == {
            "component": "gateway-agent",
            "holder": "agent-1",
        }
        assert line["logging.googleapis.com/trace"] == (
            "projects/spreadpilot-test/traces/0af7651916cd43dd8448eb211c80319c"
        )
