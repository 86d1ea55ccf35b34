"""Telegram through python-telegram-bot's `Bot`, with a configurable base_url
so tests can point the real client at a local server.

PTB is asyncio-only; the router is synchronous and may run in several threads
(the bench), so one private event loop in a daemon thread runs every call and
the Bot (with its HTTP connection pool) is initialised once (getMe) and reused
by a warm instance.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from spreadpilot.ports.messaging import ChatMessage, DeliveryError

T = TypeVar("T")


class TelegramChat:
    """Chat port on the Bot API. No idempotency key exists in the Bot API, so a
    send whose outcome is unknown (crash after the request) must not be repeated:
    `idempotent = False` tells the router (at most once after the claim)."""

    idempotent = False

    def __init__(
        self,
        token: Callable[[], str],
        base_url: str = "https://api.telegram.org/bot",
        timeout: float = 10.0,
    ) -> None:
        self._token = token  # read lazily: a missing secret fails the send, not the boot
        self._base_url = base_url
        self._timeout = timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Bot | None = None

    def send(self, message: ChatMessage) -> str:
        bot = self._ensure_bot()
        try:
            sent = self._run(bot.send_message(chat_id=message.chat_id, text=message.text))
        except RetryAfter as exc:
            with warnings.catch_warnings():  # PTB 22 warns that the type becomes timedelta
                warnings.simplefilter("ignore")
                wait = _seconds(exc.retry_after)
            raise DeliveryError(f"telegram flood control: {exc}", retry_after=wait) from exc
        except ChatMigrated as exc:
            raise DeliveryError(
                f"telegram chat {message.chat_id} became supergroup {exc.new_chat_id}: "
                "update SPREADPILOT_ALERT_TELEGRAM_CHAT_IDS",
                permanent=True,
            ) from exc
        except (BadRequest, Forbidden, InvalidToken) as exc:
            raise DeliveryError(
                f"telegram refused chat {message.chat_id}: {exc}", permanent=True
            ) from exc
        except NetworkError as exc:  # 5xx, timeouts, connection errors
            raise DeliveryError(f"telegram unavailable: {exc}") from exc
        except TelegramError as exc:
            raise DeliveryError(f"telegram error: {exc}") from exc
        return str(sent.message_id)

    def warm_up(self) -> None:
        """Initialise the Bot (getMe) now, so a send reserved for a flood slot is
        not late by the first call's handshake."""
        self._ensure_bot()

    def close(self) -> None:
        with self._lock:
            loop, bot = self._loop, self._bot
            self._loop = self._bot = None
        if loop is not None:
            if bot is not None:
                asyncio.run_coroutine_threadsafe(bot.shutdown(), loop).result(self._timeout)
            loop.call_soon_threadsafe(loop.stop)

    def _ensure_bot(self) -> Bot:
        with self._lock:
            if self._bot is not None:
                return self._bot
            token = self._token()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="telegram", daemon=True).start()
                self._loop = loop
            request = HTTPXRequest(
                connection_pool_size=16,
                read_timeout=self._timeout,
                write_timeout=self._timeout,
                connect_timeout=self._timeout,
                pool_timeout=self._timeout,
            )
            bot = Bot(token, base_url=self._base_url, request=request)
            try:
                self._run(bot.initialize())  # getMe: a bad token is refused here
            except InvalidToken as exc:
                raise DeliveryError(f"telegram rejected the bot token: {exc}") from exc
            except TelegramError as exc:
                raise DeliveryError(f"telegram getMe failed: {exc}") from exc
            self._bot = bot
            return bot

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout * 3)


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
