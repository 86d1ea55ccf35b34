"""The commission mailer: every finished month's statement mailed to its
follower, operator in CC, PDF attached, exactly once (domain.md section 6).

Why it is shaped this way:
- **Work list = the `statements` collection.** The monthly rollup writes one
  document per (follower, month); a document is mailable while its status is
  UNSENT or FAILED and its month is complete. The query is on status alone (a
  single-field index in Firestore); `complete` is checked in the transaction.
- **The key is the PDF.** The statement is rebuilt from the billing rows and
  rendered byte-reproducibly; the mail's idempotency key is
  `statement:<follower>:<month>:<sha256(pdf)[:16]>`, carried by the mail (header
  and SendGrid custom arg) and stored on the document.
- **Exactly once.** (a) a transaction moves the document to SENDING with the
  key, a holder and a lease (only from UNSENT/FAILED, or from this holder);
  (b) the send is retried with exponential backoff (Retry-After honoured on
  429) while it is transient, the lease renewed before each try; (c) SENT with
  the message id and the billed figures is recorded only after the service
  accepted the mail. All tries failed -> FAILED (next run retries); refused
  (4xx) -> FAILED at once; both alert the operator (REPORT_FAILED).
- **Crashes never mail blind.** A document found SENDING after its lease means
  a run died around the send: the mailer asks the provider (`find(key)`):
  accepted -> SENT, no second mail; never accepted -> sent again; the question
  itself fails -> CHECK plus an alert naming the key to look up. The next run
  asks again for CHECK documents; it never sends one without an answer.
- **Billing snapshot.** SENT documents keep the figures mailed (billed_pnl,
  billed_commission, amount_due, currency, sha256): the rollup compares later
  recomputations with them and carries the difference as an adjustment.
- **Dry run.** Where the outbox is the configured delivery (embedded mode by
  default) mails and PDFs are written to DATA_DIR/outbox/statements and the
  documents are marked SENT with delivery "outbox", so re-runs do not repeat
  them (the embedded system behaves like the live one). A dry run forced on a
  live system (`dry_run=True`) is a preview: files only, no document changes,
  so the real mails still go out.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.statement import Statement
from spreadpilot.platform import collections as C
from spreadpilot.platform.events import MalformedEvent, PubSubEnvelope
from spreadpilot.platform.failpoints import failpoint
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.messaging import Attachment, DeliveryError, Mail
from spreadpilot.ports.secrets import MissingSecret
from spreadpilot.ports.store import Filter, Store, Transaction
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.delivery_retry import retry_wait
from spreadpilot.services.job_runs import record_job_run

if TYPE_CHECKING:
    from spreadpilot.platform.settings import Settings
    from spreadpilot.platform.wiring import Container

log = logging.getLogger("spreadpilot.commission_mailer")

SOURCE = "commission_mailer"
JOB = "commission-mail"
UNSENT, SENDING, SENT, FAILED, CHECK = "UNSENT", "SENDING", "SENT", "FAILED", "CHECK"
#: Statuses the run looks at: the mailable ones, and the two it must resolve first.
_QUERIED = [UNSENT, FAILED, SENDING, CHECK]
SKIPPED, DEFERRED, PREVIEW = "SKIPPED", "DEFERRED", "PREVIEW"
#: The fail point between the provider's acceptance and recording SENT.
AFTER_SEND = "statement_mail.after_send"

Delivery = Literal["sendgrid", "outbox", "preview"]
Render = Callable[[Statement], bytes]


class StatementBook(Protocol):
    """Rebuilds a statement from the stored rows (services.statements.StatementBook)."""

    def statement(self, follower_id: str, month: str) -> Statement: ...


class StatementMailer(Protocol):
    """A Mailer that can also say whether a mail with a key was already accepted."""

    def send(self, mail: Mail) -> str: ...

    def find(self, key: str) -> str | None: ...


class ClaimLost(Exception):
    """Another run took this statement over (our lease had passed): stop, send nothing."""


class MailPending(Exception):
    """Some statements failed transiently or were left for lack of time: raised by
    the tick handler so Pub/Sub redelivers the tick, which mails what is left."""


# --- the mail -----------------------------------------------------------------------------


def mail_key(statement: Statement, pdf: bytes) -> str:
    return f"statement:{statement.follower_id}:{statement.month}:{sha256(pdf)[:16]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def month_name(month: str) -> str:
    """'2026-11' -> 'November 2026'."""
    year, number = month.split("-")
    return f"{calendar.month_name[int(number)]} {year}"


def _money(amount: Decimal, currency: str, *, signed: bool = False) -> str:
    return f"{currency} {amount:{'+' if signed else ''},.2f}"


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def compose_mail(statement: Statement, pdf: bytes, key: str, cc: Sequence[str] = ()) -> Mail:
    """The statement mail: the month's P&L, the commission due where payable
    (FX rate and date when not billed in USD, adjustments of earlier months),
    otherwise that none is due; the PDF attached."""
    s = statement
    name = month_name(s.month)
    lines = [
        f"Dear {s.follower_name},",
        "",
        f"attached is your SpreadPilot statement for {name} "
        f"({s.period_start:%d %b} to {s.period_end:%d %b %Y}, IB account {s.ib_account}).",
        "",
        f"P&L for the month: {_money(s.pnl_usd, 'USD')} (realised "
        f"{_money(s.realised_usd, 'USD')}, change in unrealised "
        f"{_money(s.unrealised_change_usd, 'USD')}).",
    ]
    if s.commission_billed > 0:
        lines.append(
            f"Commission: {_percent(s.rate)} of the positive P&L = "
            f"{_money(s.commission_usd, 'USD')}."
        )
        if s.currency != "USD":
            when = f" of {s.fx_date:%Y-%m-%d}" if s.fx_date else ""
            lines.append(
                f"Converted to {s.currency} at {s.fx_rate} {s.currency} per USD (rate{when}): "
                f"{_money(s.commission_billed, s.currency)}."
            )
    if s.adjustments:
        lines.append("Adjustments of earlier statements:")
        lines.extend(
            f"  - {month_name(a.month)}: {a.reason}: "
            f"{_money(a.commission_billed, s.currency, signed=True)}"
            for a in s.adjustments
        )
    if s.is_payable:
        lines.append(f"Commission due: {_money(s.amount_due, s.currency)}.")
    else:
        lines.append(f"No commission is due for {name}.")
        if s.amount_due < 0:
            lines.append(f"Balance in your favour: {_money(-s.amount_due, s.currency)}.")
    if s.high_water_mark and s.carried_loss_usd > 0:
        lines.append(f"Losses carried forward: {_money(s.carried_loss_usd, 'USD')}.")
    lines += ["", "Kind regards,", s.operator.name, s.operator.email]
    return Mail(
        key=key,
        to=(s.follower_email,),
        cc=tuple(a for a in cc if a and a.lower() != s.follower_email.lower()),
        subject=f"SpreadPilot statement {name} — {s.follower_name}",
        text="\n".join(lines),
        attachments=(Attachment(s.filename, pdf, "application/pdf"),),
    )


def billed_figures(statement: Statement, pdf: bytes) -> dict[str, Any]:
    """What the mail states, stored on SENT: the rollup's corrections start here."""
    return {
        "billed_pnl": str(statement.pnl_usd),
        "billed_commission": str(statement.commission_billed),
        "amount_due": str(statement.amount_due),
        "currency": statement.currency,
        "sha256": sha256(pdf),
    }


# --- a run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailOutcome:
    statement_id: str
    status: str  # SENT, FAILED, CHECK, SKIPPED, DEFERRED, PREVIEW
    detail: str = ""
    message_id: str | None = None
    retryable: bool = False  # FAILED only: a later try may succeed (not refused)
    recovered: bool = False  # SENT only: found already accepted after a crash


@dataclass
class MailRun:
    delivery: Delivery
    started_at: datetime
    holder: str
    outcomes: list[MailOutcome] = field(default_factory=list)

    def _count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def sent(self) -> int:
        return self._count(SENT)

    @property
    def recovered(self) -> int:
        return sum(1 for o in self.outcomes if o.recovered)

    @property
    def failed(self) -> int:
        return self._count(FAILED)

    @property
    def checked(self) -> int:
        """Statements left in CHECK: the operator must look them up at SendGrid."""
        return self._count(CHECK)

    @property
    def skipped(self) -> int:
        return self._count(SKIPPED)

    @property
    def deferred(self) -> int:
        return self._count(DEFERRED)

    @property
    def previewed(self) -> int:
        return self._count(PREVIEW)

    @property
    def pending(self) -> bool:
        """Something a redelivered tick could still mail now."""
        return self.deferred > 0 or any(o.status == FAILED and o.retryable for o in self.outcomes)

    @property
    def status(self) -> str:
        """For job_runs: OK, or FAILED / CHECK when the operator has work."""
        if self.failed:
            return FAILED
        return CHECK if self.checked else "OK"

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "recovered": self.recovered,
            "failed": self.failed,
            "checked": self.checked,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "previewed": self.previewed,
        }

    def __str__(self) -> str:
        parts = [f"{n} {k}" for k, n in self.counts().items() if n or k in ("sent", "failed")]
        text = f"statements ({self.delivery}): " + ", ".join(parts)
        problems = [o for o in self.outcomes if o.status in (FAILED, CHECK)]
        return "\n".join([text, *(f"  {o.status} {o.statement_id}: {o.detail}" for o in problems)])


@dataclass(frozen=True)
class MailerConfig:
    operator_email: str
    delivery: Delivery = "sendgrid"
    attempts: int = 4  # tries per mail within a run
    retry_base: float = 2.0  # seconds before the 2nd try; doubled each time
    retry_max: float = 60.0  # backoff cap; a longer Retry-After ends this run's tries
    lease: timedelta = timedelta(minutes=10)  # > the function's 540 s timeout
    budget: timedelta = timedelta(seconds=420)  # no statement started nor retry waited after

    @classmethod
    def from_settings(cls, s: Settings, delivery: Delivery) -> MailerConfig:
        return cls(
            operator_email=s.operator_email,
            delivery=delivery,
            attempts=s.statement_mail_attempts,
        )


class CommissionMailer:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        mailer: StatementMailer,
        book: StatementBook,
        render: Render,
        config: MailerConfig,
        alerts: AlertPublisher | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.mailer = mailer
        self.book = book
        self.render = render
        self.config = config
        self.alerts = alerts
        self.holder = f"{SOURCE}-{uuid.uuid4().hex[:12]}"
        self._deadline: datetime | None = None

    def run(self) -> MailRun:
        """One pass over the statements; one statement's failure never stops the others."""
        started = self.clock.now()
        self._deadline = started + self.config.budget
        run = MailRun(self.config.delivery, started, self.holder)
        snaps = self.store.query(C.STATEMENTS, [Filter("status", "in", _QUERIED)])
        for snap in sorted(snaps, key=lambda s: s.id):
            if self.clock.now() > self._deadline:
                run.outcomes.append(MailOutcome(snap.id, DEFERRED, "run out of time"))
                continue
            try:
                outcome = self._one(snap.id, snap.data)
            except ClaimLost as exc:
                outcome = MailOutcome(snap.id, SKIPPED, str(exc))
            except Exception as exc:  # a bug or an outage of the store: the others still go
                log.exception("statement %s: unexpected error", snap.id, extra=self._extra(snap.id))
                error = f"{type(exc).__name__}: {exc}"
                self._alert(snap.id, snap.data, f"mailing it failed unexpectedly ({error})")
                outcome = MailOutcome(snap.id, FAILED, error, retryable=True)
            run.outcomes.append(outcome)
        log.info(
            "commission mail run: %s",
            str(run).splitlines()[0],
            extra={"operation": "commission_mail", "holder": self.holder, **run.counts()},
        )
        return run

    # -- one statement

    def _one(self, doc_id: str, doc: dict[str, Any]) -> MailOutcome:
        if not doc.get("complete"):
            return MailOutcome(doc_id, SKIPPED, "the month is not over")
        status = doc.get("status")
        if status in (SENDING, CHECK):
            lease = doc.get("lease_until")
            if status == SENDING and lease is not None and lease > self.clock.now():
                return MailOutcome(doc_id, SKIPPED, f"being mailed by {doc.get('holder')}")
            if self.config.delivery == "preview":
                return MailOutcome(doc_id, SKIPPED, f"{status}: left for the live run")
            taken = self._take_over(doc_id)
            if taken is None:
                return MailOutcome(doc_id, SKIPPED, "taken by another run")
            outcome = self._recover(doc_id, taken)
            if outcome is not None:
                return outcome
        return self._mail(doc_id, doc)

    def _recover(self, doc_id: str, doc: dict[str, Any]) -> MailOutcome | None:
        """A run died around the send: ask the provider. None = never accepted."""
        key = doc.get("mail_key")
        if not key:
            return None
        try:
            found = self.mailer.find(key)
        except (DeliveryError, MissingSecret) as exc:
            self._finish(doc_id, CHECK, last_error=f"cannot ask the provider: {exc}")
            self._alert(
                doc_id,
                doc,
                f"a run stopped while mailing it, and SendGrid could not be asked whether it "
                f"was accepted ({exc}). It is not re-sent blind. Look up the key {key} "
                "(custom arg spreadpilot_key) in SendGrid's Email Activity: accepted -> set "
                f"statements/{doc_id} status SENT; not accepted -> set it UNSENT. The next "
                "run asks again.",
            )
            return MailOutcome(doc_id, CHECK, f"outcome unknown, look up {key}: {exc}")
        if found is None:
            log.warning(
                "statement %s: an earlier run stopped mid-send and %s was never accepted; "
                "mailing it again",
                doc_id,
                key,
                extra=self._extra(doc_id, key=key),
            )
            return None
        self._mark_sent(doc_id, doc.get("mail") or {}, found, key)
        return MailOutcome(
            doc_id, SENT, "accepted before a crash; recorded, not re-sent", found, recovered=True
        )

    def _mail(self, doc_id: str, doc: dict[str, Any]) -> MailOutcome:
        try:
            statement = self.book.statement(doc["follower_id"], doc["month"])
            pdf = self.render(statement)
        except Exception as exc:
            log.exception("statement %s cannot be prepared", doc_id, extra=self._extra(doc_id))
            return self._failed(doc_id, doc, f"cannot prepare the statement: {exc}", False)
        key = mail_key(statement, pdf)
        mail = compose_mail(statement, pdf, key, (self.config.operator_email,))
        if self.config.delivery == "preview":
            return MailOutcome(doc_id, PREVIEW, "written to the outbox", self.mailer.send(mail))
        if not self._claim(doc_id, key, billed_figures(statement, pdf)):
            return MailOutcome(doc_id, SKIPPED, "taken by another run")
        try:
            message_id = self._send(doc_id, mail)
        except (DeliveryError, MissingSecret) as exc:
            retryable = isinstance(exc, DeliveryError) and not exc.permanent
            return self._failed(doc_id, doc, str(exc), retryable, key)
        failpoint(AFTER_SEND)
        self._mark_sent(doc_id, billed_figures(statement, pdf), message_id, key)
        log.info(
            "statement %s mailed to %s (%s)",
            doc_id,
            statement.follower_id,
            message_id,
            extra=self._extra(doc_id, key=key, message_id=message_id),
        )
        return MailOutcome(doc_id, SENT, "", message_id)

    def _send(self, doc_id: str, mail: Mail) -> str:
        """Transient errors retried with backoff (the service's Retry-After first);
        the lease is renewed before each try, so a slow run is never taken over."""
        cfg = self.config
        deadline = self._deadline or self.clock.now() + cfg.budget

        def wait(state: RetryCallState) -> float:
            return retry_wait(state.attempt_number, cfg.retry_base, cfg.retry_max, _after(state))

        def stop(state: RetryCallState) -> bool:
            """Out of tries, or a wait beyond the cap or past the run's deadline: the
            statement is left FAILED for the next run (or the tick's redelivery)."""
            pause, after = wait(state), _after(state)
            return (
                state.attempt_number >= cfg.attempts
                or (after is not None and after > cfg.retry_max)
                or self.clock.now() + timedelta(seconds=pause) > deadline
            )

        def before_sleep(state: RetryCallState) -> None:
            log.warning(
                "statement %s: try %d failed, next in %.1f s: %s",
                doc_id,
                state.attempt_number,
                state.upcoming_sleep,
                state.outcome.exception() if state.outcome else "",
                extra=self._extra(doc_id, attempt=state.attempt_number),
            )

        def attempt() -> str:
            self._renew(doc_id)
            return self.mailer.send(mail)

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(_transient),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _failed(
        self, doc_id: str, doc: dict[str, Any], error: str, retryable: bool, key: str | None = None
    ) -> MailOutcome:
        self._finish(doc_id, FAILED, last_error=error, retryable=retryable)
        why = "will be retried" if retryable else "was refused; fix it, the next run retries"
        self._alert(doc_id, doc, f"the statement mail failed and {why}: {error}")
        return MailOutcome(doc_id, FAILED, error, retryable=retryable)

    # -- store transitions

    def _take_over(self, doc_id: str) -> dict[str, Any] | None:
        """A SENDING document whose lease passed, or a CHECK one: ours, to resolve."""
        now = self.clock.now()

        def fn(txn: Transaction) -> dict[str, Any] | None:
            doc = txn.get(C.STATEMENTS, doc_id)
            if doc is None or doc.get("status") not in (SENDING, CHECK):
                return None
            lease = doc.get("lease_until")
            if doc["status"] == SENDING and lease is not None and lease > now:
                return None
            fields = {
                "status": SENDING,
                "holder": self.holder,
                "lease_until": now + self.config.lease,
            }
            txn.update(C.STATEMENTS, doc_id, fields)
            return {**doc, **fields}

        return self.store.transaction(fn)

    def _claim(self, doc_id: str, key: str, figures: dict[str, Any]) -> bool:
        """(a) UNSENT/FAILED (or SENDING held by us) -> SENDING with the key."""
        now = self.clock.now()

        def fn(txn: Transaction) -> bool:
            doc = txn.get(C.STATEMENTS, doc_id)
            if doc is None or not doc.get("complete"):
                return False
            status = doc.get("status")
            if status not in (UNSENT, FAILED) and not (
                status == SENDING and doc.get("holder") == self.holder
            ):
                return False
            txn.update(
                C.STATEMENTS,
                doc_id,
                {
                    "status": SENDING,
                    "mail_key": key,
                    "mail": figures,
                    "holder": self.holder,
                    "lease_until": now + self.config.lease,
                    "attempt_at": now,
                },
            )
            return True

        return self.store.transaction(fn)

    def _renew(self, doc_id: str) -> None:
        now = self.clock.now()

        def fn(txn: Transaction) -> None:
            doc = txn.get(C.STATEMENTS, doc_id) or {}
            if doc.get("status") != SENDING or doc.get("holder") != self.holder:
                raise ClaimLost(f"taken over by {doc.get('holder')} ({doc.get('status')})")
            txn.update(
                C.STATEMENTS,
                doc_id,
                {
                    "lease_until": now + self.config.lease,
                    "attempts": int(doc.get("attempts") or 0) + 1,
                    "last_attempt_at": now,
                },
            )

        self.store.transaction(fn)

    def _mark_sent(self, doc_id: str, figures: dict[str, Any], message_id: str, key: str) -> None:
        """(c) after the service accepted: SENT, with the billing snapshot. The mail
        went out, so this is recorded whoever holds the document now."""
        now = self.clock.now()
        fields = {
            **figures,
            "status": SENT,
            "message_id": message_id,
            "mail_key": key,
            "sent_at": now,
            "delivery": "outbox" if self.config.delivery == "outbox" else "sendgrid",
            "holder": None,
            "lease_until": None,
            "last_error": None,
        }

        def fn(txn: Transaction) -> None:
            doc = txn.get(C.STATEMENTS, doc_id)
            if doc is not None and doc.get("status") != SENT:
                txn.update(C.STATEMENTS, doc_id, fields)

        self.store.transaction(fn)

    def _finish(self, doc_id: str, status: str, *, last_error: str, retryable: bool = True) -> None:
        """FAILED or CHECK, only if nobody else moved the document meanwhile."""
        now = self.clock.now()

        def fn(txn: Transaction) -> None:
            doc = txn.get(C.STATEMENTS, doc_id) or {}
            mine = doc.get("status") == SENDING and doc.get("holder") == self.holder
            if not (mine or doc.get("status") in (UNSENT, FAILED)):
                return
            txn.update(
                C.STATEMENTS,
                doc_id,
                {
                    "status": status,
                    "last_error": last_error[:1000],
                    "retryable": retryable,
                    "failed_at": now,
                    "holder": None,
                    "lease_until": None,
                },
            )

        self.store.transaction(fn)

    # -- helpers

    def _alert(self, doc_id: str, doc: dict[str, Any], what: str) -> None:
        """REPORT_FAILED, once per statement and day (the router dedups repeats);
        an alert that cannot be raised is logged, the document already tells."""
        if self.alerts is None:
            return
        now = self.clock.now()
        fid, month = doc.get("follower_id"), doc.get("month")
        try:
            self.alerts.raise_alert(
                Alert.new(
                    AlertType.REPORT_FAILED,
                    f"statement {month} of {fid}: {what}",
                    at=now,
                    dedup_key=f"statement:{doc_id}:{now:%Y-%m-%d}",
                    source=SOURCE,
                    follower_id=fid,
                    details={"statement": doc_id, "month": month},
                )
            )
        except Exception:
            log.exception("could not raise the alert for %s", doc_id, extra=self._extra(doc_id))

    def _extra(self, doc_id: str, **more: object) -> dict[str, object]:
        return {"operation": "commission_mail", "statement": doc_id, "holder": self.holder, **more}


def _after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome else None
    return exc.retry_after if isinstance(exc, DeliveryError) else None


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not exc.permanent


# --- wiring, the CLI's entry and the tick handler --------------------------------------


def delivery_of(s: Settings, dry_run: bool | None) -> Delivery:
    """None: as configured (outbox in embedded mode, SendGrid in gcp); True: the
    outbox, recorded only where it is the configured delivery (else a preview);
    False: SendGrid."""
    configured = s.statement_delivery or ("live" if s.mode == "gcp" else "outbox")
    if dry_run is None:
        return "sendgrid" if configured == "live" else "outbox"
    if dry_run:
        return "outbox" if configured == "outbox" else "preview"
    return "sendgrid"


def build_commission_mailer(
    c: Container,
    dry_run: bool | None = None,
    *,
    book: StatementBook | None = None,
    render: Render | None = None,
) -> CommissionMailer:
    """The mailer for this process; SendGrid and the statement code are imported
    only when used, the API key read at the first send (never logged)."""
    s = c.settings
    delivery = delivery_of(s, dry_run)
    mailer: StatementMailer
    if delivery == "sendgrid":
        from spreadpilot.adapters.notify.sendgrid_mailer import SendGridMailer

        secrets = c.secrets
        mailer = SendGridMailer(
            lambda: secrets.get(s.alert_sendgrid_key_secret),
            sender=s.statement_email_from,
            host=s.alert_sendgrid_host,
            timeout=s.alert_rpc_timeout_seconds,
        )
    else:
        from spreadpilot.adapters.notify.outbox import OutboxEmail

        mailer = OutboxEmail(s.outbox_dir, s.statement_email_from, folder="statements")
    if book is None:
        from spreadpilot.services.statements import StatementBook as StoredBook

        book = StoredBook(c.store, s)
    return CommissionMailer(
        c.store,
        c.clock,
        mailer,
        book,
        render or _render_statement,
        MailerConfig.from_settings(s, delivery),
        alerts=c.alerts,
    )


def _render_statement(statement: Statement) -> bytes:
    """The real PDF renderer, imported at first use (fpdf2 is heavy)."""
    from spreadpilot.adapters.pdf.statement_pdf import render_statement

    return render_statement(statement)


def mail_statements(c: Container, dry_run: bool | None = None) -> MailRun:
    """Mail every unsent statement now (the CLI's entry); see `delivery_of`."""
    return c.commission_mailer(dry_run).run()


def commission_mail_tick(envelope: PubSubEnvelope, c: Container) -> None:
    """The commission_mailer function's handler: one run, recorded in job_runs.
    Raises MailPending (transient) while a redelivery could still mail something.
    The tick's body is informational (Cloud Scheduler's {"job": ...}); a late
    tick still runs: mailing has no deadline, and what was sent is never resent."""
    if envelope.data.strip() and not isinstance(envelope.json(), dict):
        raise MalformedEvent(
            f"message {envelope.message_id}: tick body must be a JSON object like "
            '{"job": "commission-mail"}'
        )
    run = mail_statements(c)
    record_job_run(
        c.store,
        JOB,
        run.started_at,
        run.status,
        holder=run.holder,
        detail=str(run).splitlines()[0],
        delivery=run.delivery,
        message_id=envelope.message_id,
        **run.counts(),
    )
    if run.pending:
        raise MailPending(
            f"{run.failed} statement mails failed, {run.deferred} deferred; kept FAILED/UNSENT "
            "in statements and retried on redelivery"
        )
