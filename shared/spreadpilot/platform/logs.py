"""Structured JSON logs in Cloud Logging's format, on stdout.

Cloud Logging lifts `severity`, `message`, `time`, `logging.googleapis.com/labels`,
`.../trace` and `.../sourceLocation` out of the JSON line; everything else lands in
jsonPayload (e.g. `follower_id`, `signal_id`, `operation`, `latency_ms`). Secret
values registered with `register_secret` are masked in every line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_labels: ContextVar[dict[str, str] | None] = ContextVar("log_labels", default=None)
_trace: ContextVar[str | None] = ContextVar("log_trace", default=None)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
MASK = "***"
HANDLER_NAME = "spreadpilot"

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}


def register_secret(value: str) -> None:
    """Mask this value wherever it would appear in a log line (short values are ignored:
    masking 'a' everywhere would garble logs without protecting anything)."""
    if len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)
            # Log lines are JSON: a value with quotes or newlines (a service-account
            # key) appears escaped there, so mask that spelling too.
            _secrets.add(json.dumps(value, ensure_ascii=False)[1:-1])


def set_context(*, labels: dict[str, str] | None = None, trace: str | None = None) -> None:
    if labels is not None:
        _labels.set({**(_labels.get() or {}), **labels})
    if trace is not None:
        _trace.set(trace)


def reset_context() -> None:
    """Forget labels and trace: each function invocation starts clean, so one message's
    ids never label the next one's lines on a warm instance."""
    _labels.set(None)
    _trace.set(None)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class CloudJsonFormatter(logging.Formatter):
    def __init__(self, component: str, project: str | None = None) -> None:
        super().__init__()
        self.component = component
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEBUG"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            "logging.googleapis.com/labels": {"component": self.component, **(_labels.get() or {})},
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = (
                f"projects/{self.project}/traces/{trace}" if self.project else trace
            )
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return _mask(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """For a person at a terminal (the CLI); still masks secrets."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        tail = " ".join(f"{k}={v}" for k, v in extras.items() if not k.startswith("_"))
        line = f"{record.levelname:<8} {record.getMessage()}" + (f"  [{tail}]" if tail else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _mask(line)


class _StdHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout/sys.stderr is at emit time (so redirection and
    test capture work after configuration)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._which = name

    @property
    def stream(self) -> Any:
        return getattr(sys, self._which)

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(
    component: str,
    level: str = "INFO",
    fmt: str = "json",
    project: str | None = None,
    file: Path | None = None,
) -> None:
    """Every line to stdout (JSON) or stderr (text), or to `file` (the demo keeps a
    whole simulated day's lines beside its data rather than on the console)."""
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8")
        if file is not None
        else _StdHandler("stdout" if fmt == "json" else "stderr")
    )
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        CloudJsonFormatter(component, project) if fmt == "json" else TextFormatter()
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # ib_async logs every order event at INFO: ours (order_<event>) say it once
    for noisy in ("urllib3", "google", "grpc", "werkzeug", "asyncio", "httpx", "ib_async"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def logging_configured() -> bool:
    """True once configure_logging ran in this process (a CLI, a test, a function)."""
    return any(h.get_name() == HANDLER_NAME for h in logging.getLogger().handlers)
