"""A local SendGrid v3 server for tests: real HTTP on 127.0.0.1.

Serves `POST /v3/mail/send` as SendGrid does: 202 with an `X-Message-Id`
header for a valid request with `Authorization: Bearer <key>`, 401 for a
wrong key, 400 for a body without personalizations/from/subject/content.
Requests are recorded (with `now()`'s time); `fail_next(status, times,
retry_after=None)` makes the next requests answer 429 (with Retry-After) or 5xx.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_httpserver.httpserver import HTTPServerBase
from werkzeug import Request, Response

API_KEY = "SG.test-key"


@dataclass(frozen=True)
class SentMail:
    at: datetime
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def to(self) -> list[str]:
        return [t["email"] for p in self.body.get("personalizations", []) for t in p.get("to", [])]

    @property
    def subject(self) -> str:
        return str(self.body.get("subject", ""))

    @property
    def text(self) -> str:
        return "".join(c.get("value", "") for c in self.body.get("content", []))


class FakeSendGridServer(HTTPServerBase):
    def __init__(self, now: Callable[[], datetime] | None = None, api_key: str = API_KEY) -> None:
        super().__init__("127.0.0.1", 0, threaded=True)
        self.now = now or (lambda: datetime.now(UTC))
        self.api_key = api_key
        self.requests: list[SentMail] = []
        self._faults: deque[tuple[int, int | None]] = deque()
        self._lock = threading.Lock()
        self._next = 1

    @property
    def api_host(self) -> str:
        return self.url_for("/").rstrip("/")

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.extend((status, retry_after) for _ in range(times))

    def accepted(self) -> list[SentMail]:
        with self._lock:
            return [r for r in self.requests if r.status == 202]

    def dispatch(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        headers = {k: v for k, v in request.headers.items()}
        with self._lock:
            at = self.now()
            if request.path != "/v3/mail/send" or request.method != "POST":
                return _errors(404, "not found")
            if headers.get("Authorization") != f"Bearer {self.api_key}":
                self.requests.append(SentMail(at, 401, body, headers))
                return _errors(401, "The provided authorization grant is invalid")
            if self._faults:
                status, retry_after = self._faults.popleft()
                self.requests.append(SentMail(at, status, body, headers))
                extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return _errors(status, "too many requests" if status == 429 else "error", extra)
            if not all(k in body for k in ("personalizations", "from", "subject", "content")):
                self.requests.append(SentMail(at, 400, body, headers))
                return _errors(400, "missing required fields")
            self.requests.append(SentMail(at, 202, body, headers))
            msg_id, self._next = f"sg-{self._next}", self._next + 1
        return Response("", 202, headers={"X-Message-Id": msg_id})


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"errors": [{"message": message, "field": None, "help": None}]})
    return Response(body, status, headers=headers or {}, mimetype="application/json")
