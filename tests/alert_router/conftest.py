"""The alert router against the real python-telegram-bot and sendgrid clients,
talking to local HTTP fakes that record requests on the simulated clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.adapters.notify.sendgrid_mailer import SendGridMailer
from spreadpilot.adapters.notify.telegram_chat import TelegramChat
from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.ports.secrets import MissingSecret
from spreadpilot.services.alert_router import AlertRouter, RouterConfig
from tests.fakes.sendgrid_server import API_KEY, FakeSendGridServer
from tests.fakes.telegram_server import TOKEN, FakeTelegramServer
from tests.support.embedded import Platform, make_platform

CHAT, GROUP = "100", "-200"
OPERATOR_EMAIL = "ops@example.com"


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    return make_platform(tmp_path)


@pytest.fixture
def telegram(p: Platform) -> Iterator[FakeTelegramServer]:
    server = FakeTelegramServer(p.clock.now)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sendgrid(p: Platform) -> Iterator[FakeSendGridServer]:
    server = FakeSendGridServer(p.clock.now)
    server.start()
    yield server
    server.stop()


@dataclass
class Secrets:
    """Secret values the adapters read lazily; None = not configured."""

    token: str | None = TOKEN
    key: str | None = API_KEY

    def get_token(self) -> str:
        if self.token is None:
            raise MissingSecret(
                "secret 'telegram-bot-token' is not set: "
                "export SPREADPILOT_SECRET_TELEGRAM_BOT_TOKEN"
            )
        return self.token

    def get_key(self) -> str:
        if self.key is None:
            raise MissingSecret("secret 'sendgrid-api-key' is not set")
        return self.key


BASE_CONFIG = RouterConfig(
    routes={
        Severity.CRITICAL: ("telegram", "email"),
        Severity.WARNING: ("telegram",),
        Severity.INFO: ("log",),
    },
    chat_ids=(CHAT,),
    email_to=(OPERATOR_EMAIL,),
    cooldown=timedelta(minutes=15),
    retry_base=2.0,
    retry_max=60.0,
    max_wait=20.0,
    max_attempts=4,
    status_base_url="https://status.example.com",
)

RouterFactory = Callable[..., AlertRouter]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def make_router(
    p: Platform, telegram: FakeTelegramServer, sendgrid: FakeSendGridServer, secrets: Secrets
) -> Iterator[RouterFactory]:
    chats: list[TelegramChat] = []

    def build(**overrides: Any) -> AlertRouter:
        chat = TelegramChat(secrets.get_token, base_url=telegram.base_url, timeout=5)
        chats.append(chat)
        mailer = SendGridMailer(
            secrets.get_key, sender="alerts@example.com", host=sendgrid.api_host, timeout=5
        )
        return AlertRouter(p.c.store, p.clock, replace(BASE_CONFIG, **overrides), chat, mailer)

    yield build
    for chat in chats:
        chat.close()


def alert(
    p: Platform,
    type: AlertType = AlertType.ORDER_REJECTED,
    key: str = "k1",
    follower: str | None = "alice",
    message: str = "IB rejected SP-20261124-QQQ-alice-OPEN: no trading permission",
    severity: Severity | None = None,
) -> Alert:
    return Alert.new(
        type,
        message,
        at=p.clock.now(),
        dedup_key=key,
        source="gateway-agent",
        follower_id=follower,
        severity=severity,
    )
