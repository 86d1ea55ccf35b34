"""Commission on monthly P&L (domain.md section 6). Pure.

commission = rate x base when base > 0, else 0, where base is the month's P&L,
or, with the high-water mark on, the month's P&L less the losses carried
forward from earlier months. P&L is USD; the bill is in the operator's billing
currency: every billed figure is the USD figure x the FX rate (USD -> billing
currency) stored with the row together with the rate's date. Rounding is
explicit: cents, half-up, once, on the final figure (rate x base x FX).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from spreadpilot.domain.money import cents

ZERO = Decimal(0)
USD = "USD"


@dataclass(frozen=True)
class FxRate:
    """How many units of `currency` one USD bought on `day` (USD itself: 1)."""

    currency: str
    rate: Decimal
    day: date | None = None  # None only for USD

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"FX rate USD->{self.currency} must be positive, got {self.rate}")
        if self.currency != USD and self.day is None:
            raise ValueError(f"FX rate USD->{self.currency} needs the date it was taken on")

    @classmethod
    def usd(cls) -> FxRate:
        return cls(USD, Decimal(1))

    def convert(self, usd: Decimal) -> Decimal:
        return cents(usd * self.rate)


@dataclass(frozen=True)
class Commission:
    pnl_usd: Decimal  # the month's P&L, cents
    rate: Decimal
    base_usd: Decimal  # what the rate applies to (P&L less carried losses)
    commission_usd: Decimal  # cents, >= 0
    fx: FxRate
    commission_billed: Decimal  # in fx.currency, cents, >= 0
    pnl_billed: Decimal  # the month's P&L in fx.currency, cents (for the statement)
    carried_loss_before: Decimal  # USD, >= 0 (high-water mark only)
    carried_loss_after: Decimal
    high_water_mark: bool

    @property
    def is_payable(self) -> bool:
        return self.commission_billed > 0


def commission(
    pnl_usd: Decimal,
    rate: Decimal,
    fx: FxRate,
    *,
    high_water_mark: bool = False,
    carried_loss: Decimal = ZERO,
) -> Commission:
    """The month's commission. Never negative: a losing month bills 0 (and, with
    the high-water mark, its loss is carried to the next months)."""
    if not ZERO <= rate <= 1:
        raise ValueError(f"commission rate must be within 0..1, got {rate}")
    if carried_loss < 0:
        raise ValueError("carried loss is a positive amount of USD")
    pnl = cents(pnl_usd)
    carried = carried_loss if high_water_mark else ZERO
    base = pnl - carried
    if base > 0:
        due_usd = base * rate
        after = ZERO
    else:
        due_usd = ZERO
        after = -base if high_water_mark else ZERO
    return Commission(
        pnl_usd=pnl,
        rate=rate,
        base_usd=max(base, ZERO),
        commission_usd=cents(due_usd),
        fx=fx,
        commission_billed=fx.convert(due_usd),
        pnl_billed=fx.convert(pnl),
        carried_loss_before=carried,
        carried_loss_after=after,
        high_water_mark=high_water_mark,
    )
