"""Statements rebuilt from the stored rows (issue 6 item 4).

A statement is never stored as a file: it is rebuilt from the billing rows
(``pnl_monthly``, ``pnl_daily``, ``adjustments``, which never expire) and
rendered byte-reproducibly, so the PDF mailed and any later copy are the same
bytes for the same rows. The mailer keys its mail on the PDF's hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from spreadpilot.domain.errors import DomainValidationError, validate
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.money import cents
from spreadpilot.domain.statement import Adjustment, DayLine, Operator, Statement, mask_iban
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Filter, Store
from spreadpilot.services.pnl import (
    adjustments_for,
    dec,
    month_bounds,
    parse_month,
)


class OperatorSettings(Protocol):
    @property
    def operator_name(self) -> str: ...
    @property
    def operator_email(self) -> str: ...
    @property
    def operator_address(self) -> tuple[str, ...]: ...


class StatementMissing(LookupError):
    """No monthly row for this follower and month: run the monthly rollup first."""


def day_lines(rows: Sequence[Mapping[str, Any]]) -> tuple[DayLine, ...]:
    """Daily rows (date order) as statement lines; the cumulative is summed at full
    precision and rounded per line, so the last line equals the month's P&L."""
    running = Decimal(0)
    out = []
    for r in rows:
        pnl = dec(r["pnl"])
        running += pnl
        out.append(
            DayLine(
                day=date.fromisoformat(r["date"]),
                realised=cents(dec(r["realised"])),
                unrealised_change=cents(dec(r["unrealised"]) - dec(r["unrealised_before"])),
                pnl=cents(pnl),
                cumulative=cents(running),
                trades=int(r.get("trades", 0)),
            )
        )
    return tuple(out)


class StatementBook:
    def __init__(self, store: Store, settings: OperatorSettings) -> None:
        self.store = store
        self.operator = Operator(
            settings.operator_name, settings.operator_email, tuple(settings.operator_address)
        )

    def follower(self, follower_id: str) -> Follower:
        doc = self.store.get(C.FOLLOWERS, follower_id)
        if doc is None:
            raise StatementMissing(f"no follower {follower_id!r} in the store")
        try:
            return validate(Follower, doc, subject=f"follower {follower_id}")
        except DomainValidationError as exc:
            raise StatementMissing(f"follower {follower_id} is invalid: {exc}") from None

    def statement(self, follower_id: str, month: str) -> Statement:
        row = self.store.get(C.PNL_MONTHLY, f"{follower_id}_{month}")
        if row is None:
            raise StatementMissing(
                f"no P&L row for {follower_id} {month}: run `spreadpilot report --month {month}`"
            )
        f = self.follower(follower_id)
        daily = sorted(
            (
                s.data
                for s in self.store.query(
                    C.PNL_DAILY,
                    [Filter("follower_id", "==", follower_id), Filter("month", "==", month)],
                )
                if s.data["date"] <= row["through"]
            ),
            key=lambda r: r["date"],
        )
        adjustments = tuple(
            Adjustment(
                a["month"],
                a["reason"],
                dec(a["pnl_usd"]),
                dec(a["commission_billed"]),
            )
            for a in adjustments_for(self.store, follower_id, month)
        )
        amount = dec(row["commission_billed"]) + sum(
            (a.commission_billed for a in adjustments), Decimal(0)
        )
        first, last = month_bounds(*parse_month(month))
        return Statement(
            operator=self.operator,
            follower_id=f.id,
            follower_name=f.name,
            follower_email=f.email,
            iban_masked=mask_iban(f.iban),
            ib_account=f.ib_account,
            month=month,
            period_start=first,
            period_end=last if row.get("complete") else date.fromisoformat(row["through"]),
            complete=bool(row.get("complete")),
            realised_usd=dec(row["realised"]),
            unrealised_change_usd=dec(row["unrealised_end"]) - dec(row["unrealised_start"]),
            pnl_usd=dec(row["pnl"]),
            rate=dec(row["commission_rate"]),
            commission_usd=dec(row["commission_usd"]),
            currency=row["currency"],
            fx_rate=dec(row["fx_rate"]),
            fx_date=date.fromisoformat(row["fx_date"]) if row.get("fx_date") else None,
            pnl_billed=dec(row["pnl_billed"]),
            commission_billed=dec(row["commission_billed"]),
            adjustments=adjustments,
            amount_due=amount,
            is_payable=amount > 0,
            high_water_mark=bool(row.get("high_water_mark")),
            carried_loss_usd=dec(row.get("carried_loss_after")),
            days=day_lines(daily),
        )
