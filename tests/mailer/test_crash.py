"""A real process killed between SendGrid's acceptance and recording SENT: the
next run learns from SendGrid's Email Activity that the mail went out and records
it, so the follower gets exactly one mail."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spreadpilot.platform.failpoints import ENV
from spreadpilot.services.commission_mailer import AFTER_SEND, SENDING, SENT, CommissionMailer
from tests.fakes.sendgrid_server import FakeSendGridServer
from tests.mailer.support import (
    CONFIG,
    Book,
    doc,
    make_statement,
    render_pdf,
    seed,
    sendgrid_mailer,
)
from tests.support.embedded import REPO, Platform, make_platform


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Platform, FakeSendGridServer]]:
    p = make_platform(tmp_path, start=datetime.now(UTC))  # the child runs on real time
    server = FakeSendGridServer(p.clock.now)
    server.start()
    yield p, server
    server.stop()


def test_a_process_killed_after_the_send_never_mails_twice(
    live: tuple[Platform, FakeSendGridServer], tmp_path: Path
) -> None:
    p, sendgrid = live
    alice = make_statement("alice")
    doc_id = seed(p.c.store, alice)

    child = subprocess.run(
        [sys.executable, "-m", "tests.mailer.crash_child", str(tmp_path), sendgrid.api_host],
        cwd=REPO,
        env={**os.environ, ENV: f"{AFTER_SEND}=exit"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert child.returncode == 137, child.stderr
    (mail,) = sendgrid.accepted()
    dead = doc(p.c.store, doc_id)
    assert dead["status"] == SENDING and dead["mail_key"] == mail.key  # died before SENT

    # the next run, after the dead run's lease: SendGrid says it was accepted
    p.clock.set(dead["lease_until"] + timedelta(seconds=1))
    mailer = CommissionMailer(
        p.c.store,
        p.clock,
        sendgrid_mailer(sendgrid.api_host),
        Book(alice),
        render_pdf,
        CONFIG,
        alerts=p.c.alerts,
    )
    run = mailer.run()

    assert len(sendgrid.accepted()) == 1  # exactly one mail
    assert run.sent == 1 and run.recovered == 1
    d = doc(p.c.store, doc_id)
    assert d["status"] == SENT and d["mail_key"] == mail.key
    assert d["message_id"].startswith(f"{mail.msg_id}.")
    assert d["billed_commission"] == "246.91" and d["sha256"] == d["mail"]["sha256"]
    assert mailer.run().outcomes == []  # and a later run has nothing to do
