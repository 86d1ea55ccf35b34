"""Statements for the mailer tests, built directly (no rollup): a small book
implementing the mailer's StatementBook protocol and a one-page fpdf2 PDF with
fixed metadata, so the same statement always gives the same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from spreadpilot.adapters.notify.sendgrid_mailer import SendGridMailer
from spreadpilot.adapters.pdf.statement_pdf import render_statement
from spreadpilot.domain.statement import Adjustment, Operator, Statement
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store
from spreadpilot.services.commission_mailer import MailerConfig
from tests.fakes.sendgrid_server import API_KEY

OPERATOR_EMAIL = "ops@example.com"
OPERATOR = Operator("SpreadPilot Operator", OPERATOR_EMAIL, ("1 Main St",))
MONTH = "2026-11"
CENT = Decimal("0.01")
CONFIG = MailerConfig(operator_email=OPERATOR_EMAIL, attempts=4, retry_base=2.0, retry_max=60.0)


def sendgrid_mailer(host: str) -> SendGridMailer:
    """The real adapter, pointed at the fake server."""
    return SendGridMailer(lambda: API_KEY, sender="statements@example.com", host=host, timeout=5)


def make_statement(
    follower_id: str = "alice",
    month: str = MONTH,
    *,
    pnl: str = "1234.56",
    rate: str = "0.20",
    currency: str = "USD",
    fx_rate: str = "1",
    fx_date: date | None = None,
    adjustments: tuple[Adjustment, ...] = (),
) -> Statement:
    """A complete month's statement with its commission computed as the domain does
    (rate x positive P&L, converted, cents half-up; adjustments added)."""
    p, r, fx = Decimal(pnl), Decimal(rate), Decimal(fx_rate)
    commission = (r * p).quantize(CENT, ROUND_HALF_UP) if p > 0 else Decimal("0.00")
    billed = (commission * fx).quantize(CENT, ROUND_HALF_UP)
    amount = billed + sum((a.commission_billed for a in adjustments), Decimal(0))
    year, number = (int(x) for x in month.split("-"))
    return Statement(
        operator=OPERATOR,
        follower_id=follower_id,
        follower_name=follower_id.capitalize() + " Rossi",
        follower_email=f"{follower_id}@example.com",
        iban_masked="DE89 **** **** **** **30 00",
        ib_account="U1234567",
        month=month,
        period_start=date(year, number, 1),
        period_end=date(year, number, 30),
        complete=True,
        realised_usd=p,
        unrealised_change_usd=Decimal("0.00"),
        pnl_usd=p,
        rate=r,
        commission_usd=commission,
        currency=currency,
        fx_rate=fx,
        fx_date=fx_date,
        pnl_billed=(p * fx).quantize(CENT, ROUND_HALF_UP),
        commission_billed=billed,
        adjustments=adjustments,
        amount_due=amount,
        is_payable=amount > 0,
        high_water_mark=False,
        carried_loss_usd=Decimal("0.00"),
        days=(),
    )


def render_pdf(statement: Statement) -> bytes:
    """The real renderer (the mail attaches exactly these bytes)."""
    return render_statement(statement)


class Book:
    """The mailer's StatementBook protocol over statements held in memory."""

    def __init__(self, *statements: Statement) -> None:
        self.statements = {(s.follower_id, s.month): s for s in statements}

    def statement(self, follower_id: str, month: str) -> Statement:
        try:
            return self.statements[(follower_id, month)]
        except KeyError:
            raise LookupError(f"no statement for {follower_id} {month}") from None


def seed(store: Store, statement: Statement, **fields: Any) -> str:
    """The statements document the monthly rollup writes (UNSENT, complete)."""
    doc_id = f"{statement.follower_id}_{statement.month}"
    doc: dict[str, Any] = {
        "follower_id": statement.follower_id,
        "month": statement.month,
        "email": statement.follower_email,
        "status": "UNSENT",
        "sha256": None,
        "pnl": str(statement.pnl_usd),
        "commission_billed": str(statement.commission_billed),
        "amount_due": str(statement.amount_due),
        "currency": statement.currency,
        "is_payable": statement.is_payable,
        "complete": True,
        "prepared_at": datetime(2026, 12, 1, 5, 10, tzinfo=UTC),
    }
    store.set(C.STATEMENTS, doc_id, {**doc, **fields})
    return doc_id


def doc(store: Store, doc_id: str) -> Mapping[str, Any]:
    found = store.get(C.STATEMENTS, doc_id)
    assert found is not None, doc_id
    return found
