"""A local Telegram Bot API server for tests and the bench: real HTTP on 127.0.0.1.

Serves what python-telegram-bot's `Bot(token, base_url=...)` calls:
`POST /bot<token>/getMe` and `POST /bot<token>/sendMessage` (form or JSON
body), answering in the Bot API's envelope (`{"ok": true, "result": ...}`,
errors as `{"ok": false, "error_code", "description", "parameters"}`).

- Every request is recorded with its time from `now` (a simulated clock's
  `now()` in tests, so flood limits are checked on simulated time).
- Flood control like Telegram's, on the accepted messages: at most
  `chat_per_second` per chat in any 1 s window, `group_per_minute` per group
  chat (negative id) in any 60 s window, `bot_per_second` across chats; a
  message over a limit is refused with 429 and `parameters.retry_after`.
- `fail_next(status, times, retry_after=None)` makes the next requests answer
  429 (with retry_after) or 5xx; `unknown_chats` answer 400 "chat not found".
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_httpserver.httpserver import HTTPServerBase
from werkzeug import Request, Response

TOKEN = "123456:TEST-token"


@dataclass(frozen=True)
class SentMessage:
    at: datetime
    chat_id: str
    text: str
    status: int  # 200 accepted, else the error answered


@dataclass
class _Fault:
    status: int
    retry_after: int | None


class FakeTelegramServer(HTTPServerBase):
    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        *,
        token: str = TOKEN,
        chat_per_second: int = 1,
        group_per_minute: int = 20,
        bot_per_second: int = 30,
        enforce_limits: bool = True,
    ) -> None:
        super().__init__("127.0.0.1", 0, threaded=True)
        self.now = now or (lambda: datetime.now(UTC))
        self.token = token
        self.limits = (chat_per_second, group_per_minute, bot_per_second)
        self.enforce_limits = enforce_limits
        self.unknown_chats: set[str] = set()
        self.messages: list[SentMessage] = []  # every sendMessage, accepted or not
        self.calls: list[str] = []  # method names in order (getMe, sendMessage)
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._next_id = 1

    @property
    def base_url(self) -> str:
        """What Bot(token, base_url=...) needs: the token is appended."""
        return self.url_for("/bot").rstrip("/")

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(times))

    def accepted(self, chat_id: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [
                m
                for m in self.messages
                if m.status == 200 and (chat_id is None or m.chat_id == chat_id)
            ]

    def refused(self, status: int = 429) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.messages if m.status == status]

    # ----------------------------------------------------------- HTTP
    def dispatch(self, request: Request) -> Response:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith(prefix):
            return _error(401, "Unauthorized")  # what Telegram answers a wrong token
        method = request.path[len(prefix) :]
        params = _params(request)
        with self._lock:
            at = self.now()
            self.calls.append(method)
            if method == "getMe":
                return _ok({"id": 1, "is_bot": True, "first_name": "SpreadPilot", "username": "sp"})
            if method != "sendMessage":
                return _error(404, "Not Found: method not found")
            chat_id, text = str(params.get("chat_id", "")), str(params.get("text", ""))
            if self._faults:
                fault = self._faults.popleft()
                self.messages.append(SentMessage(at, chat_id, text, fault.status))
                if fault.status == 429:
                    return _error(429, "Too Many Requests", fault.retry_after or 1)
                return _error(fault.status, "Internal Server Error")
            if chat_id in self.unknown_chats:
                self.messages.append(SentMessage(at, chat_id, text, 400))
                return _error(400, "Bad Request: chat not found")
            wait = self._over_limit(chat_id, at) if self.enforce_limits else 0.0
            if wait > 0:
                self.messages.append(SentMessage(at, chat_id, text, 429))
                return _error(429, "Too Many Requests", max(1, math.ceil(wait)))
            self.messages.append(SentMessage(at, chat_id, text, 200))
            message_id, self._next_id = self._next_id, self._next_id + 1
        chat_type = "group" if chat_id.startswith("-") else "private"
        return _ok(
            {
                "message_id": message_id,
                "date": int(at.timestamp()),
                "chat": {"id": int(chat_id) if _is_int(chat_id) else 0, "type": chat_type},
                "text": text,
            }
        )

    def _over_limit(self, chat_id: str, at: datetime) -> float:
        """Seconds until this message would fit; 0 if it fits now (windows [at - p, at])."""
        per_chat, per_group, per_bot = self.limits
        t = at.timestamp()
        ok = [(m.chat_id, m.at.timestamp()) for m in self.messages if m.status == 200]
        mine = [x for c, x in ok if c == chat_id]
        everyone = [x for _, x in ok]
        checks = [(mine, per_chat, 1.0), (everyone, per_bot, 1.0)]
        if chat_id.startswith("-"):
            checks.append((mine, per_group, 60.0))
        wait = 0.0
        for times, count, period in checks:
            inside = sorted(x for x in times if x > t - period)
            if len(inside) >= count:
                wait = max(wait, inside[-count] + period - t)
        return wait


def _params(request: Request) -> dict[str, Any]:
    if request.is_json:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {}
    return {**request.args.to_dict(), **request.form.to_dict()}


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _ok(result: Any) -> Response:
    return Response(json.dumps({"ok": True, "result": result}), 200, mimetype="application/json")


def _error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
        body["description"] = f"Too Many Requests: retry after {retry_after}"
    return Response(json.dumps(body), code, mimetype="application/json")
