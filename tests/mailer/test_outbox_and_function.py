"""The embedded delivery (outbox files, documents marked SENT), a preview on a
live system (files only), and functions/commission_mailer/main.py through the
Functions Framework with a real CloudEvent: the run recorded in job_runs."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import functions_framework
import pytest

from spreadpilot.platform import collections as C
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from spreadpilot.services.commission_mailer import (
    CommissionMailer,
    build_commission_mailer,
    mail_statements,
)
from tests.fakes.sendgrid_server import API_KEY, FakeSendGridServer
from tests.mailer.conftest import MONDAY
from tests.mailer.support import OPERATOR_EMAIL, Book, doc, render_pdf, seed
from tests.support.cloudevents import binary, pubsub_body
from tests.support.embedded import REPO, Platform, make_platform


def outbox(p: Platform) -> Path:
    return p.settings.outbox_dir / "statements"


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def use_test_statements(p: Platform, book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's mailer, with the test book and PDF instead of the rollup's."""

    def build(dry_run: bool | None = None) -> CommissionMailer:
        return build_commission_mailer(p.c, dry_run, book=book, render=render_pdf)

    monkeypatch.setattr(p.c, "commission_mailer", build)


def test_embedded_mails_go_to_the_outbox_once_and_are_recorded(
    tmp_path: Path, book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make_platform(tmp_path, start=MONDAY, operator_email=OPERATOR_EMAIL)
    use_test_statements(p, book, monkeypatch)
    alice = book.statement("alice", "2026-11")
    ids = [seed(p.c.store, alice), seed(p.c.store, book.statement("bruno", "2026-11"))]

    run = mail_statements(p.c)

    assert run.delivery == "outbox" and run.sent == 2
    emls = sorted(outbox(p).glob("*.eml"))
    pdfs = sorted(outbox(p).glob("*.pdf"))
    assert len(emls) == 2 and len(pdfs) == 2
    first = read_eml(emls[0])
    assert first["To"] == "alice@example.com" and first["Cc"] == OPERATOR_EMAIL
    assert first["Subject"] == "SpreadPilot statement November 2026 — Alice Rossi"
    (part,) = list(first.iter_attachments())
    assert part.get_filename() == alice.filename
    assert part.get_content() == render_pdf(alice) == pdfs[0].read_bytes()
    for doc_id in ids:
        d = doc(p.c.store, doc_id)
        assert d["status"] == "SENT" and d["delivery"] == "outbox"

    assert mail_statements(p.c).outcomes == []  # a re-run repeats nothing
    assert len(list(outbox(p).glob("*.eml"))) == 2


def test_a_dry_run_on_a_live_system_only_previews(
    tmp_path: Path, book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make_platform(tmp_path, start=MONDAY, statement_delivery="live")
    use_test_statements(p, book, monkeypatch)
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"))

    run = mail_statements(p.c, dry_run=True)

    assert run.delivery == "preview" and run.previewed == 1 and run.sent == 0
    assert len(list(outbox(p).glob("*.eml"))) == 1
    assert doc(p.c.store, doc_id)["status"] == "UNSENT"  # the real mail still goes out
    assert "1 previewed" in str(run)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    yield tmp_path
    use_container(None)
    settings.cache_clear()


def post_tick(event_id: str) -> int:
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="commission_mailer",
        source=str(REPO / "functions" / "commission_mailer" / "main.py"),
        signature_type="cloudevent",
    )
    body = pubsub_body({"job": "commission-mail"}, message_id=event_id)
    mode = binary(body, event_id=event_id, topic="mail-ticks")
    return int(app.test_client().post("/", **mode).status_code)


def test_the_function_mails_and_records_its_run_and_asks_for_redelivery_while_pending(
    env: Path, book: Book, monkeypatch: pytest.MonkeyPatch, sendgrid: FakeSendGridServer
) -> None:
    monkeypatch.setenv("SPREADPILOT_SECRET_SENDGRID_API_KEY", API_KEY)
    p = make_platform(
        env, start=MONDAY, statement_delivery="live", alert_sendgrid_host=sendgrid.api_host
    )
    use_container(p.c)
    use_test_statements(p, book, monkeypatch)
    seed(p.c.store, book.statement("alice", "2026-11"))
    seed(p.c.store, book.statement("bruno", "2026-11"))
    sendgrid.fail_next(503, times=4)  # alice's four tries

    assert post_tick("t-1") == 500  # alice FAILED (transient): Pub/Sub redelivers the tick
    assert post_tick("t-1") == 200  # the redelivery mails alice; bruno went the first time

    assert sorted(m.to[0] for m in sendgrid.accepted()) == [
        "alice@example.com",
        "bruno@example.com",
    ]
    runs = sorted(
        (s.data for s in p.c.store.query(C.JOB_RUNS) if s.data["job"] == "commission-mail"),
        key=lambda r: r["ran_at"],
    )
    assert [(r["status"], r["sent"], r["failed"]) for r in runs] == [("FAILED", 1, 1), ("OK", 1, 0)]
    assert runs[0]["detail"].startswith("statements (sendgrid): 1 sent, 1 failed")
