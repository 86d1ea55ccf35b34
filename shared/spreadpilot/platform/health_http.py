"""``GET /health`` and ``GET /metrics`` for a long-lived process (stdlib HTTP, own thread).

``/health`` answers ``{"status": "ok"|"degraded"|"down", "checks": {...},
"versions": {...}, "component": ..., "time": ...}`` with HTTP 200 (ok, degraded)
or 503 (down: a dependency is down). ``/metrics`` answers Prometheus' text
format (`spreadpilot.platform.metrics`). The report is computed by the caller's
function on every request; it must be cheap (the agent returns a snapshot its own
loop keeps, so the HTTP thread never touches IB, the store or the bus).
"""

from __future__ import annotations

import json
import logging
import platform
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any, Literal

from spreadpilot.platform import metrics

log = logging.getLogger("spreadpilot.health")

Status = Literal["ok", "degraded", "down"]
OK: Status = "ok"
DEGRADED: Status = "degraded"
DOWN: Status = "down"
_RANK = {OK: 0, DEGRADED: 1, DOWN: 2}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda s: _RANK[s], default=OK)


@dataclass(frozen=True)
class HealthReport:
    component: str
    status: Status
    checks: Mapping[str, Mapping[str, Any]]
    versions: Mapping[str, str] = field(default_factory=dict)
    time: datetime | None = None

    @classmethod
    def of(
        cls,
        component: str,
        checks: Mapping[str, Mapping[str, Any]],
        versions: Mapping[str, str] | None = None,
        time: datetime | None = None,
    ) -> HealthReport:
        """Overall status = the worst check's ``status``."""
        status = worst([c.get("status", OK) for c in checks.values()])
        return cls(component, status, checks, dict(versions or {}), time)

    @property
    def http_status(self) -> int:
        return 503 if self.status == DOWN else 200

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "component": self.component,
            "time": self.time.isoformat() if self.time else None,
            "checks": {k: dict(v) for k, v in self.checks.items()},
            "versions": dict(self.versions),
        }


def versions(**extra: str) -> dict[str, str]:
    """spreadpilot's, Python's and key libraries' versions (plus the caller's)."""
    out = {"python": platform.python_version()}
    for dist in ("spreadpilot", "ib_async"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out.update(extra)
    return out


class HealthServer:
    """Serves /health and /metrics on host:port in a daemon thread (port 0: any free)."""

    def __init__(self, report: Callable[[], HealthReport], host: str = "127.0.0.1", port: int = 0):
        self._report = report
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"health-{self.port}", daemon=True
        )
        self._thread.start()
        log.info(
            "health and metrics on %s/health, %s/metrics",
            self.url,
            self.url,
            extra={"operation": "health_server", "port": self.port},
        )
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                if path == "/health":
                    try:
                        report = server._report()
                        code, body = report.http_status, report.body()
                        metrics.HEALTH.set(metrics.HEALTH_LEVEL[report.status])
                    except Exception as exc:  # the report itself failing is "down"
                        log.exception("health report failed")
                        code, body = 503, {"status": DOWN, "checks": {}, "error": str(exc)}
                    self._send(code, "application/json", json.dumps(body, default=str).encode())
                elif path == "/metrics":
                    self._send(200, metrics.CONTENT_TYPE, metrics.exposition())
                else:
                    self._send(404, "text/plain", b"not found: try /health or /metrics\n")

            def _send(self, code: int, content_type: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log line per probe

        return Handler
