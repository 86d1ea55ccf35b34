"""Statement mails through SendGrid (the real client, real HTTP, the fake server):
what the mail holds, retries, failures, re-runs, races and crash recovery."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.statement import Adjustment
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Filter
from spreadpilot.services.commission_mailer import CHECK, FAILED, SENDING, SENT, mail_key
from tests.fakes.sendgrid_server import FakeSendGridServer
from tests.mailer.conftest import MailerFactory
from tests.mailer.support import (
    OPERATOR_EMAIL,
    Book,
    doc,
    make_statement,
    render_pdf,
    seed,
    sendgrid_mailer,
)
from tests.support.embedded import Platform


def report_failed(p: Platform) -> list[dict[str, Any]]:
    return [s.data for s in p.c.store.query(C.ALERTS, [Filter("type", "==", "REPORT_FAILED")])]


def test_a_payable_statement_is_mailed_once_with_the_pdf_and_the_operator_in_cc(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    alice = book.statement("alice", "2026-11")
    doc_id = seed(p.c.store, alice)

    run = make_mailer().run()

    (mail,) = sendgrid.accepted()
    pdf = render_pdf(alice)
    assert mail.to == ["alice@example.com"] and mail.cc == [OPERATOR_EMAIL]
    assert mail.subject == "SpreadPilot statement November 2026 — Alice Rossi"
    ((filename, mime, disposition, content),) = mail.attachments
    assert (filename, mime, disposition) == (alice.filename, "application/pdf", "attachment")
    assert content.startswith(b"%PDF") and content == pdf
    assert "P&L for the month: USD 1,234.56" in mail.text
    assert "Commission due: USD 246.91." in mail.text
    assert mail.key == mail_key(alice, pdf) == mail.headers.get("X-Spreadpilot-Key", mail.key)
    d = doc(p.c.store, doc_id)
    assert d["status"] == SENT and d["message_id"] == "sg-1" and d["delivery"] == "sendgrid"
    assert d["sent_at"] == p.clock.now() and d["lease_until"] is None
    # the billing snapshot the rollup's corrections start from
    assert (d["billed_pnl"], d["billed_commission"], d["amount_due"], d["currency"]) == (
        "1234.56",
        "246.91",
        "246.91",
        "USD",
    )
    assert d["sha256"].startswith(mail.key.rsplit(":", 1)[1])
    assert (run.sent, run.failed, run.checked) == (1, 0, 0)
    assert str(run).startswith("statements (sendgrid): 1 sent, 0 failed")


def test_no_commission_due_is_said_when_not_payable(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("bruno", "2026-11"))
    make_mailer().run()
    (mail,) = sendgrid.accepted()
    assert "P&L for the month: USD -250.00" in mail.text
    assert "No commission is due for November 2026." in mail.text
    assert "Commission due" not in mail.text and "Commission:" not in mail.text
    assert doc(p.c.store, doc_id)["billed_commission"] == "0.00"


def test_a_statement_billed_in_eur_states_the_rate_its_date_and_the_adjustments(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory
) -> None:
    fix = Adjustment(
        "2026-10", "2026-10 recomputed after a late assignment", Decimal("-50"), Decimal("-9.21")
    )
    eur = make_statement(
        "dario", currency="EUR", fx_rate="0.9210", fx_date=date(2026, 11, 30), adjustments=(fix,)
    )
    seed(p.c.store, eur)
    make_mailer(book=Book(eur)).run()
    (mail,) = sendgrid.accepted()
    assert "Commission: 20% of the positive P&L = USD 246.91." in mail.text
    assert "Converted to EUR at 0.9210 EUR per USD (rate of 2026-11-30): EUR 227.40." in mail.text
    assert "  - October 2026: 2026-10 recomputed after a late assignment: EUR -9.21" in mail.text
    assert "Commission due: EUR 218.19." in mail.text


def test_a_cc_equal_to_the_recipient_is_dropped(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    seed(p.c.store, book.statement("alice", "2026-11"))
    make_mailer(operator_email="ALICE@example.com").run()
    (mail,) = sendgrid.accepted()
    assert mail.cc == []


def test_429_with_retry_after_and_500_are_retried_then_sent(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"))
    sendgrid.fail_next(429, retry_after=30)
    sendgrid.fail_next(500)

    run = make_mailer().run()

    statuses = [r.status for r in sendgrid.requests]
    assert statuses == [429, 500, 202]
    times = [r.at for r in sendgrid.requests]
    assert times[1] - times[0] >= timedelta(seconds=30)  # Retry-After honoured
    assert times[2] - times[1] >= timedelta(seconds=4)  # the backoff grew (2 s, then 4 s)
    d = doc(p.c.store, doc_id)
    assert d["status"] == SENT and d["attempts"] == 3
    assert run.sent == 1 and not report_failed(p)


def test_all_tries_failing_leave_it_failed_with_an_alert_and_the_next_run_sends(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"))
    sendgrid.fail_next(503, times=4)

    run = make_mailer().run()

    assert [r.status for r in sendgrid.requests] == [503] * 4 and not sendgrid.accepted()
    d = doc(p.c.store, doc_id)
    assert d["status"] == FAILED and "503" in d["last_error"] and d["retryable"] is True
    assert run.failed == 1 and run.pending and run.status == FAILED
    (alert,) = report_failed(p)
    assert alert["follower_id"] == "alice" and "will be retried" in alert["message"]

    p.clock.advance(timedelta(minutes=10))
    again = make_mailer().run()
    assert again.sent == 1 and len(sendgrid.accepted()) == 1
    assert doc(p.c.store, doc_id)["status"] == SENT


def test_a_refusal_fails_at_once(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"))
    sendgrid.fail_next(400, times=3)

    run = make_mailer().run()

    assert [r.status for r in sendgrid.requests] == [400]
    d = doc(p.c.store, doc_id)
    assert d["status"] == FAILED and d["retryable"] is False and "400" in d["last_error"]
    assert run.failed == 1 and not run.pending
    assert "refused" in report_failed(p)[0]["message"]


def test_a_rerun_after_sent_sends_nothing(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    seed(p.c.store, book.statement("alice", "2026-11"))
    seed(p.c.store, book.statement("bruno", "2026-11"))
    assert make_mailer().run().sent == 2
    p.clock.advance(timedelta(days=7))
    run = make_mailer().run()
    assert len(sendgrid.accepted()) == 2 and len(sendgrid.requests) == 2
    assert run.outcomes == [] and run.sent == 0


def test_an_unfinished_month_is_not_mailed(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"), complete=False)
    run = make_mailer().run()
    assert run.skipped == 1 and not sendgrid.requests
    assert doc(p.c.store, doc_id)["status"] == "UNSENT"


def test_a_statement_that_cannot_be_rebuilt_fails_with_an_alert(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory
) -> None:
    doc_id = seed(p.c.store, make_statement("zoe"))
    run = make_mailer().run()
    assert run.failed == 1 and not sendgrid.requests
    assert "cannot prepare" in doc(p.c.store, doc_id)["last_error"]
    assert report_failed(p)


def test_two_mailers_racing_on_one_store_send_one_mail(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id = seed(p.c.store, book.statement("alice", "2026-11"))
    both_prepared = threading.Barrier(2, timeout=10)

    class SlowBook(Book):
        def statement(self, follower_id: str, month: str) -> Any:
            both_prepared.wait()  # both runs read UNSENT and rebuild before either claims
            return super().statement(follower_id, month)

    racing = SlowBook(*book.statements.values())
    other_store = SqliteStore(p.settings.data_dir / "store.db")  # a second process's handle
    mailers = [make_mailer(book=racing), make_mailer(book=racing, store=other_store)]
    runs: list[Any] = [None, None]

    def go(i: int) -> None:
        runs[i] = mailers[i].run()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(sendgrid.accepted()) == 1
    assert sorted(r.sent for r in runs) == [0, 1] and sorted(r.skipped for r in runs) == [0, 1]
    assert doc(p.c.store, doc_id)["status"] == SENT


def _died_while_sending(p: Platform, book: Book, **fields: Any) -> tuple[str, str]:
    """The document a run leaves when it dies between its claim and recording SENT."""
    alice = book.statement("alice", "2026-11")
    key = mail_key(alice, render_pdf(alice))
    dead = {
        "status": SENDING,
        "mail_key": key,
        "holder": "commission_mailer-dead",
        "lease_until": p.clock.now() - timedelta(seconds=1),
    }
    doc_id = seed(p.c.store, alice, **{**dead, **fields})
    return doc_id, key


def test_a_send_never_accepted_before_a_crash_is_sent_after_the_lease(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id, key = _died_while_sending(p, book)
    run = make_mailer().run()
    (mail,) = sendgrid.accepted()
    assert mail.key == key and run.sent == 1 and run.recovered == 0
    assert any("spreadpilot_key" in q and key in q for q in sendgrid.queries)
    assert doc(p.c.store, doc_id)["status"] == SENT


def test_a_sending_statement_within_its_lease_is_left_alone(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id, _ = _died_while_sending(p, book, lease_until=p.clock.now() + timedelta(minutes=5))
    run = make_mailer().run()
    assert run.skipped == 1 and not sendgrid.requests and not sendgrid.queries
    assert doc(p.c.store, doc_id)["status"] == SENDING


def test_when_the_provider_cannot_be_asked_it_is_left_to_check_never_sent_blind(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    doc_id, key = _died_while_sending(p, book)
    sendgrid.fail_find(500)

    run = make_mailer().run()

    assert not sendgrid.requests and run.checked == 1 and run.status == CHECK
    d = doc(p.c.store, doc_id)
    assert d["status"] == CHECK and "500" in d["last_error"]
    (alert,) = report_failed(p)
    assert key in alert["message"] and "Email Activity" in alert["message"]

    # the next run asks again; SendGrid answers "never accepted": sent now, once
    p.clock.advance(timedelta(days=1))
    again = make_mailer().run()
    assert again.sent == 1 and len(sendgrid.accepted()) == 1
    assert doc(p.c.store, doc_id)["status"] == SENT


def test_find_asks_the_email_activity_api(sendgrid: FakeSendGridServer) -> None:
    from spreadpilot.ports.messaging import DeliveryError, Mail

    mailer = sendgrid_mailer(sendgrid.api_host)
    assert mailer.find("statement:alice:2026-11:0123") is None
    message_id = mailer.send(
        Mail(key="statement:alice:2026-11:0123", to=("a@example.com",), subject="s", text="t")
    )
    assert mailer.find("statement:alice:2026-11:0123") == f"{message_id}.filter0001"
    assert mailer.find("statement:alice:2026-11:9999") is None
    sendgrid.fail_find(503)
    with pytest.raises(DeliveryError) as transient:
        mailer.find("statement:alice:2026-11:0123")
    assert not transient.value.permanent
    sendgrid.fail_find(403)
    with pytest.raises(DeliveryError) as refused:
        mailer.find("statement:alice:2026-11:0123")
    assert refused.value.permanent


def test_a_long_retry_after_ends_the_tries_and_a_spent_budget_defers_the_rest(
    p: Platform, sendgrid: FakeSendGridServer, make_mailer: MailerFactory, book: Book
) -> None:
    class SlowBook(Book):
        def statement(self, follower_id: str, month: str) -> Any:
            p.clock.advance(timedelta(seconds=31))  # a slow rebuild
            return super().statement(follower_id, month)

    alice = seed(p.c.store, book.statement("alice", "2026-11"))
    bruno = seed(p.c.store, book.statement("bruno", "2026-11"))
    sendgrid.fail_next(429, retry_after=120)  # beyond retry_max (60 s): not waited for

    run = make_mailer(book=SlowBook(*book.statements.values()), budget=timedelta(seconds=30)).run()

    assert [r.status for r in sendgrid.requests] == [429]
    assert doc(p.c.store, alice)["status"] == FAILED and run.failed == 1
    assert run.deferred == 1 and run.pending  # the tick's redelivery mails the rest
    assert doc(p.c.store, bruno)["status"] == "UNSENT"
