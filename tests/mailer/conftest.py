"""The commission mailer against the real sendgrid client talking real HTTP to the
fake SendGrid server, on the embedded SQLite store and a simulated clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.services.commission_mailer import CommissionMailer
from tests.fakes.sendgrid_server import FakeSendGridServer
from tests.mailer.support import CONFIG, Book, make_statement, render_pdf, sendgrid_mailer
from tests.support.embedded import Platform, make_platform

#: Monday 7 December 2026, 09:00 UTC: the first commission-mail run after November.
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

MailerFactory = Callable[..., CommissionMailer]


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    return make_platform(tmp_path, start=MONDAY)


@pytest.fixture
def sendgrid(p: Platform) -> Iterator[FakeSendGridServer]:
    server = FakeSendGridServer(p.clock.now)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def book() -> Book:
    return Book(make_statement("alice"), make_statement("bruno", pnl="-250.00"))


@pytest.fixture
def make_mailer(p: Platform, sendgrid: FakeSendGridServer, book: Book) -> MailerFactory:
    def build(**overrides: Any) -> CommissionMailer:
        return CommissionMailer(
            overrides.pop("store", p.c.store),
            p.clock,
            overrides.pop("mailer", sendgrid_mailer(sendgrid.api_host)),
            overrides.pop("book", book),
            render_pdf,
            replace(CONFIG, **overrides),
            alerts=p.c.alerts,
        )

    return build
