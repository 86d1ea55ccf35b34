"""Prometheus metrics of a long-lived process (the gateway agent, the local runner).

The counters are fed by the same structured log lines Cloud Logging's log-based
metrics count (terraform/modules/platform/monitoring.tf), through a logging
handler on the ``spreadpilot`` logger: one source of truth, no second set of
calls scattered through the services.

- ``operation=order_<event>``  -> ``spreadpilot_order_events_total{event}``;
  ``order_placed`` also counts ``spreadpilot_orders_total``, ``order_filled`` and
  ``order_partial`` ``spreadpilot_fills_total``, ``order_modified``
  ``spreadpilot_ladder_steps_total``;
- ``operation=execution``      -> ``spreadpilot_executions_total{outcome}``;
- an alert line (``alert_type``) -> ``spreadpilot_alerts_total{type}``;
- ``operation=job_run``        -> ``spreadpilot_job_runs_total{job,status}``;
- any line with ``latency_ms`` -> ``spreadpilot_latency_seconds{operation}`` (histogram);
- gauges set directly: ``spreadpilot_gateway_up{gateway}``,
  ``spreadpilot_heartbeat_timestamp_seconds``, ``spreadpilot_health_status``.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST
LOGGER = "spreadpilot"

ORDERS = Counter(
    "spreadpilot_orders", "Orders placed at IB (first ladder price).", registry=REGISTRY
)
ORDER_EVENTS = Counter(
    "spreadpilot_order_events", "Execution report events by type.", ["event"], registry=REGISTRY
)
FILLS = Counter("spreadpilot_fills", "Fill reports (complete and partial).", registry=REGISTRY)
LADDER_STEPS = Counter(
    "spreadpilot_ladder_steps", "Ladder price reductions (order modifications).", registry=REGISTRY
)
EXECUTIONS = Counter(
    "spreadpilot_executions",
    "Order messages settled by the agent, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
ALERTS = Counter("spreadpilot_alerts", "Alerts raised, by type.", ["type"], registry=REGISTRY)
JOB_RUNS = Counter(
    "spreadpilot_job_runs",
    "Scheduled job runs, by job and status.",
    ["job", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "spreadpilot_latency_seconds",
    "Latency of logged operations (IB round trips, ladders, function runs).",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
GATEWAY_UP = Gauge(
    "spreadpilot_gateway_up",
    "1 when the gateway answers its health check, 0 when it is failing or down.",
    ["gateway"],
    registry=REGISTRY,
)
GATEWAY_RESTARTS = Counter(
    "spreadpilot_gateway_restarts", "Hung gateways restarted.", ["gateway"], registry=REGISTRY
)
HEARTBEAT = Gauge(
    "spreadpilot_heartbeat_timestamp_seconds",
    "Clock time of the last heartbeat (Unix seconds).",
    registry=REGISTRY,
)
HEALTH = Gauge(
    "spreadpilot_health_status",
    "Overall health: 2 ok, 1 degraded, 0 down.",
    registry=REGISTRY,
)
HEALTH_LEVEL = {"ok": 2, "degraded": 1, "down": 0}


class MetricsHandler(logging.Handler):
    """Counts the structured log lines listed in the module doc."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.set_name("spreadpilot-metrics")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            observe(record)
        except Exception:  # a metric must never break a log line
            self.handleError(record)


def observe(record: logging.LogRecord) -> None:
    operation = getattr(record, "operation", None)
    if isinstance(operation, str):
        if operation.startswith("order_"):
            event = operation.removeprefix("order_")
            ORDER_EVENTS.labels(event=event).inc()
            if event == "placed":
                ORDERS.inc()
            elif event in ("filled", "partial"):
                FILLS.inc()
            elif event == "modified":
                LADDER_STEPS.inc()
        elif operation == "execution":
            EXECUTIONS.labels(outcome=str(getattr(record, "outcome", "") or "UNKNOWN")).inc()
        elif operation == "job_run":
            JOB_RUNS.labels(
                job=str(getattr(record, "job", "")), status=str(getattr(record, "status", ""))
            ).inc()
    alert_type = getattr(record, "alert_type", None)
    if isinstance(alert_type, str) and alert_type:
        ALERTS.labels(type=alert_type).inc()
    latency = getattr(record, "latency_ms", None)
    if isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0:
        LATENCY.labels(operation=str(operation or record.name)).observe(latency / 1000.0)


_installed = threading.Lock()


def install() -> MetricsHandler:
    """Attach the handler to the ``spreadpilot`` logger (once per process) and let its
    INFO lines through (the counted lines are INFO)."""
    logger = logging.getLogger(LOGGER)
    with _installed:
        for handler in logger.handlers:
            if isinstance(handler, MetricsHandler):
                return handler
        handler = MetricsHandler()
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        return handler


def exposition() -> bytes:
    """The registry in Prometheus' text format (for ``GET /metrics``)."""
    return generate_latest(REGISTRY)
