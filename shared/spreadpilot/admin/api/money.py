"""Money: the day's and the month's P&L per follower, commissions, recording payments.

Reads the rollups' rows as `services/pnl.py` wrote them (figures are Decimal
strings; totals are summed as Decimal, never float) and records payments through
`services/billing.py`, the same function as `spreadpilot commissions mark-paid`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spreadpilot.admin.api.trading import FollowerDayQuery, day_of
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import ConflictError, Invalid, NotFoundError
from spreadpilot.admin.registry import API
from spreadpilot.domain.errors import FieldError
from spreadpilot.domain.money import cents
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Filter
from spreadpilot.services.billing import BillingError, commissions, mark_paid
from spreadpilot.services.pnl import dec, month_key, parse_month

TAG = "money"


def _month(value: str) -> str:
    """'YYYY-MM' normalised; ValueError naming the expected form (pydantic -> 422)."""
    year, month = parse_month(value)
    return f"{year:04d}-{month:02d}"


class MonthlyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: str | None = Field(None, description="YYYY-MM (default: this month in New York)")
    follower: str | None = Field(None, min_length=1, max_length=32, description="one follower id")

    @field_validator("month")
    @classmethod
    def _valid(cls, value: str | None) -> str | None:
        return None if value is None else _month(value)


class CommissionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: str | None = Field(None, description="YYYY-MM (default: every month)")
    payable: bool = Field(False, description="only months with a commission due")
    unpaid: bool = Field(False, description="only payable months not yet paid")

    @field_validator("month")
    @classmethod
    def _valid(cls, value: str | None) -> str | None:
        return None if value is None else _month(value)


class MarkPaidIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str = Field(
        min_length=1, max_length=100, description="the bank transfer's reference"
    )
    paid_on: dt.date | None = Field(None, description="when the money arrived (default: today)")


def _where(
    month: str | None = None, day: dt.date | None = None, follower: str | None = None
) -> list[Filter]:
    """Equality filters only (Firestore serves them without a composite index)."""
    pairs = (
        ("month", month),
        ("date", day.isoformat() if day else None),
        ("follower_id", follower),
    )
    return [Filter(f, "==", v) for f, v in pairs if v is not None]


def _sum(rows: Iterable[Mapping[str, Any]], key: str) -> Decimal:
    return sum((dec(r.get(key)) for r in rows), Decimal(0))


# --- daily -------------------------------------------------------------------------

_DAILY_FIELDS = (
    "follower_id",
    "account",
    "date",
    "realised",
    "unrealised",
    "unrealised_before",
    "pnl",
    "pnl_cents",
    "commissions",
    "trades",
    "holdings",
    "provisional",
    "unmarked",
    "marks_carried",
    "month_realised",
    "month_commissions",
    "month_days_traded",
)


@API.route(
    "GET",
    "/pnl/daily",
    summary="The day's P&L per follower (realised, unrealised, IB commissions) and totals",
    tag=TAG,
    query=FollowerDayQuery,
)
def pnl_daily(ctx: Ctx, query: FollowerDayQuery) -> dict[str, Any]:
    """As the last rollup left it (16:30 ET, recomputed for late data); `provisional`
    and `unmarked` name the figures that may still move."""
    day = day_of(ctx, query)
    snaps = ctx.c.store.query(C.PNL_DAILY, _where(day=day, follower=query.follower))
    rows = sorted((s.data for s in snaps), key=lambda r: str(r["follower_id"]))
    return {
        "date": day,
        "rows": [{k: r.get(k) for k in _DAILY_FIELDS} for r in rows],
        "totals": {
            "followers": len(rows),
            "realised": cents(_sum(rows, "realised")),
            "unrealised": cents(_sum(rows, "unrealised")),
            "pnl": cents(_sum(rows, "pnl")),
            "commissions": cents(_sum(rows, "commissions")),
            "provisional": sum(1 for r in rows if r.get("provisional")),
        },
        "note": None
        if rows
        else f"no P&L rows for {day}: the daily rollup runs at 16:30 ET on trading days",
    }


# --- monthly -----------------------------------------------------------------------

_MONTHLY_FIELDS = (
    "follower_id",
    "month",
    "account",
    "realised",
    "unrealised_start",
    "unrealised_end",
    "pnl",
    "ib_commissions",
    "trading_days",
    "provisional_days",
    "commission_rate",
    "commission_base",
    "commission_usd",
    "currency",
    "fx_rate",
    "fx_date",
    "commission_billed",
    "pnl_billed",
    "is_payable",
    "high_water_mark",
    "carried_loss_before",
    "carried_loss_after",
    "complete",
    "through",
    "paid",
    "paid_reference",
    "paid_at",
    "paid_on",
)


def monthly_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in _MONTHLY_FIELDS}


def _due(rows: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Unpaid commission per billing currency."""
    due: dict[str, Decimal] = {}
    for r in rows:
        if r.get("is_payable") and not r.get("paid"):
            due[r["currency"]] = due.get(r["currency"], Decimal(0)) + dec(r["commission_billed"])
    return dict(sorted(due.items()))


@API.route(
    "GET",
    "/pnl/monthly",
    summary="The month's P&L and commission per follower, with billing state",
    tag=TAG,
    query=MonthlyQuery,
)
def pnl_monthly(ctx: Ctx, query: MonthlyQuery) -> dict[str, Any]:
    """Billing state: paid (reference, when) and the statement's mail status."""
    key = query.month or month_key(ctx.today)
    store = ctx.c.store
    rows = sorted(
        (s.data for s in store.query(C.PNL_MONTHLY, _where(month=key, follower=query.follower))),
        key=lambda r: str(r["follower_id"]),
    )
    statements = {
        s.data.get("follower_id"): s.data
        for s in store.query(C.STATEMENTS, _where(month=key, follower=query.follower))
    }
    out = []
    for r in rows:
        st = statements.get(r["follower_id"])
        statement = None
        if st is not None:
            statement = {
                "status": st.get("status"),
                "amount_due": st.get("amount_due"),
                "currency": st.get("currency"),
                "adjustments": st.get("adjustments", []),
                "sent_at": st.get("sent_at"),
            }
        out.append({**monthly_json(r), "statement": statement})
    return {
        "month": key,
        "rows": out,
        "totals": {
            "followers": len(rows),
            "pnl": cents(_sum(rows, "pnl")),
            "ib_commissions": cents(_sum(rows, "ib_commissions")),
            "payable": sum(1 for r in rows if r.get("is_payable")),
            "paid": sum(1 for r in rows if r.get("paid")),
            "unpaid_due": _due(rows),
        },
        "note": None if rows else f"no monthly rows for {key}: the monthly rollup writes them",
    }


# --- commissions -------------------------------------------------------------------


@API.route(
    "GET",
    "/commissions",
    summary="Commission rows with payment state (filter: month, payable, unpaid)",
    tag=TAG,
    query=CommissionsQuery,
)
def commission_list(ctx: Ctx, query: CommissionsQuery) -> dict[str, Any]:
    """What `spreadpilot commissions list` shows, with the unpaid total per currency."""
    rows = commissions(ctx.c.store, month=query.month, payable=query.payable, unpaid=query.unpaid)
    return {"rows": [monthly_json(r) for r in rows], "unpaid_due": _due(rows)}


@API.route(
    "POST",
    "/commissions/<follower_id>/<month>/paid",
    summary="Record a commission payment (idempotent per reference)",
    tag=TAG,
    body=MarkPaidIn,
    audit="commission.mark_paid",
    errors=(409,),
)
def commission_paid(ctx: Ctx, follower_id: str, month: str, body: MarkPaidIn) -> dict[str, Any]:
    """The same reference again changes nothing (`recorded` false); another reference
    for a paid month is refused (409, naming the reference on record)."""
    try:
        key = _month(month)
    except ValueError as exc:
        raise Invalid(f"month: {exc}", fields=[FieldError("month", month, str(exc))]) from None
    if body.paid_on is not None and body.paid_on > ctx.today:
        rule = f"is in the future (today is {ctx.today} in New York)"
        raise Invalid(f"paid_on: {rule}", fields=[FieldError("paid_on", str(body.paid_on), rule)])
    doc_id = f"{follower_id}_{key}"
    store = ctx.c.store
    if store.get(C.PNL_MONTHLY, doc_id) is None:
        raise NotFoundError(
            f"no commission row for {follower_id} {key}; GET /api/v1/commissions lists them"
        )
    try:
        recorded = mark_paid(store, ctx.c.clock, follower_id, key, body.reference)
    except BillingError as exc:
        raise ConflictError(str(exc)) from None
    if recorded:
        # billing.mark_paid has no paid_on (yet): the date the money arrived, beside it
        store.update(C.PNL_MONTHLY, doc_id, {"paid_on": (body.paid_on or ctx.today).isoformat()})
    row = store.get(C.PNL_MONTHLY, doc_id) or {}
    ctx.audit_details["recorded"] = recorded
    return {"recorded": recorded, **monthly_json(row)}
