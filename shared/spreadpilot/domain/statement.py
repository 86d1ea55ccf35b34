"""The monthly statement, as data: what the PDF shows and the mail states.
Pure; built by services/statements.py from the stored rows, rendered by
adapters/pdf/statement_pdf.py. Everything the PDF prints is here, and nothing
else (no clock reads), so the same data gives the same bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


def mask_iban(iban: str) -> str:
    """Country, check digits and the last 4 characters; the rest masked, in
    groups of four (e.g. DE89 **** **** **** **30 00)."""
    compact = "".join(iban.split()).upper()
    if len(compact) < 8:
        return "*" * len(compact)
    shown = compact[:4] + "*" * (len(compact) - 8) + compact[-4:]
    return " ".join(shown[i : i + 4] for i in range(0, len(shown), 4))


@dataclass(frozen=True)
class Operator:
    name: str
    email: str
    address: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayLine:
    day: date
    realised: Decimal  # USD, cents
    unrealised_change: Decimal  # USD, cents
    pnl: Decimal  # realised + unrealised change
    cumulative: Decimal  # month to date
    trades: int


@dataclass(frozen=True)
class Adjustment:
    """A correction of an earlier month whose statement was already mailed."""

    month: str  # YYYY-MM corrected
    reason: str
    pnl_usd: Decimal  # change of that month's P&L
    commission_billed: Decimal  # change of its commission, billing currency


@dataclass(frozen=True)
class Statement:
    operator: Operator
    follower_id: str
    follower_name: str
    follower_email: str
    iban_masked: str
    ib_account: str
    month: str  # YYYY-MM
    period_start: date
    period_end: date  # the month's last day, or the last day computed (month to date)
    complete: bool  # False: a month-to-date statement (the month is not over)
    realised_usd: Decimal
    unrealised_change_usd: Decimal
    pnl_usd: Decimal
    rate: Decimal
    commission_usd: Decimal
    currency: str
    fx_rate: Decimal
    fx_date: date | None
    pnl_billed: Decimal
    commission_billed: Decimal
    adjustments: tuple[Adjustment, ...]
    amount_due: Decimal  # commission + adjustments, billing currency (negative: a credit)
    is_payable: bool
    high_water_mark: bool
    carried_loss_usd: Decimal  # losses carried forward after this month (high-water mark)
    days: tuple[DayLine, ...]

    @property
    def key(self) -> str:
        return f"{self.follower_id}_{self.month}"

    @property
    def filename(self) -> str:
        return f"statement-{self.month}-{self.follower_id}.pdf"
