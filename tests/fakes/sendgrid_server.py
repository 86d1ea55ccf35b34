"""A local SendGrid v3 server for tests: real HTTP on 127.0.0.1.

Serves `POST /v3/mail/send` as SendGrid does: 202 with an `X-Message-Id`
header for a valid request with `Authorization: Bearer <key>`, 401 for a
wrong key, 400 for a body without personalizations/from/subject/content.
Requests are recorded (with `now()`'s time); `fail_next(status, times,
retry_after=None)` makes the next requests answer 429 (with Retry-After) or 5xx.
An address repeated between to and cc is refused (400), as SendGrid does.

Also serves the Email Activity query the mailer's `find` makes,
`GET /v3/messages?query=(unique_args['spreadpilot_key']="<key>")&limit=N`,
from the mails it accepted (`{"messages": [{"msg_id": ...}, ...]}`);
`fail_find(status, times)` makes the next queries fail, `queries` records them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_httpserver.httpserver import HTTPServerBase
from werkzeug import Request, Response

API_KEY = "SG.test-key"
_KEY_QUERY = re.compile(r"unique_args\['spreadpilot_key'\]=\"([^\"]*)\"")


@dataclass(frozen=True)
class SentMail:
    at: datetime
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    msg_id: str | None = None

    @property
    def to(self) -> list[str]:
        return self._addresses("to")

    @property
    def cc(self) -> list[str]:
        return self._addresses("cc")

    @property
    def key(self) -> str | None:
        value = self.body.get("custom_args", {}).get("spreadpilot_key")
        return str(value) if value is not None else None

    @property
    def attachments(self) -> list[tuple[str, str, str, bytes]]:
        """(filename, type, disposition, decoded content) of each attachment."""
        return [
            (
                a["filename"],
                a.get("type", ""),
                a.get("disposition", ""),
                base64.b64decode(a["content"]),
            )
            for a in self.body.get("attachments", [])
        ]

    def _addresses(self, field: str) -> list[str]:
        return [t["email"] for p in self.body.get("personalizations", []) for t in p.get(field, [])]

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
        self._find_faults: deque[int] = deque()
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._next = 1

    @property
    def api_host(self) -> str:
        return self.url_for("/").rstrip("/")

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.extend((status, retry_after) for _ in range(times))

    def fail_find(self, status: int, times: int = 1) -> None:
        """The next Email Activity queries answer `status`."""
        with self._lock:
            self._find_faults.extend(status for _ in range(times))

    def accepted(self) -> list[SentMail]:
        with self._lock:
            return [r for r in self.requests if r.status == 202]

    def dispatch(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        headers = {k: v for k, v in request.headers.items()}
        with self._lock:
            at = self.now()
            if request.path == "/v3/messages" and request.method == "GET":
                return self._activity(request, headers)
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
            if _repeated_address(body):
                self.requests.append(SentMail(at, 400, body, headers))
                return _errors(
                    400,
                    "Each email address in the personalization block should be "
                    "unique between to, cc, and bcc.",
                )
            msg_id, self._next = f"sg-{self._next}", self._next + 1
            self.requests.append(SentMail(at, 202, body, headers, msg_id))
        return Response("", 202, headers={"X-Message-Id": msg_id})

    def _activity(self, request: Request, headers: dict[str, str]) -> Response:
        """Email Activity: the accepted mails whose custom arg matches (lock held)."""
        query = request.args.get("query", "")
        self.queries.append(query)
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return _errors(401, "The provided authorization grant is invalid")
        if self._find_faults:
            return _errors(self._find_faults.popleft(), "error")
        match = _KEY_QUERY.search(query)
        if match is None:
            return _errors(400, "invalid query")
        limit = int(request.args.get("limit", "10"))
        found = [
            {"msg_id": f"{r.msg_id}.filter0001", "subject": r.subject, "status": "delivered"}
            for r in self.requests
            if r.status == 202 and r.key == match.group(1)
        ]
        body = json.dumps({"messages": found[:limit]})
        return Response(body, 200, mimetype="application/json")


def _repeated_address(body: dict[str, Any]) -> bool:
    for p in body.get("personalizations", []):
        emails = [t["email"].lower() for f in ("to", "cc", "bcc") for t in p.get(f, [])]
        if len(emails) != len(set(emails)):
            return True
    return False


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"errors": [{"message": message, "field": None, "help": None}]})
    return Response(body, status, headers=headers or {}, mimetype="application/json")
