"""Execution reports: what the gateway agent tells the rest of the system about
one order, event by event. The recorder folds them into one document per
orderRef; every report has an id so a redelivered report changes nothing."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ExecutionEvent(StrEnum):
    CLAIMED = "CLAIMED"  # the agent took the order (claim per orderRef)
    SKIPPED = "SKIPPED"  # not sent: MID_TOO_LOW, NO_MARGIN, stale, dry-run
    PLACED = "PLACED"  # acknowledged by IB (PreSubmitted / Submitted)
    MODIFIED = "MODIFIED"  # a ladder step lowered the credit
    PARTIAL = "PARTIAL"  # some contracts filled
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # confirmed by IB
    REJECTED = "REJECTED"  # IB refused (201, 110, ...)
    UNKNOWN = "UNKNOWN"  # reconcile could not tell: the order waits, never re-sent blind


TERMINAL = frozenset(
    {
        ExecutionEvent.SKIPPED,
        ExecutionEvent.FILLED,
        ExecutionEvent.CANCELLED,
        ExecutionEvent.REJECTED,
    }
)


class LegFillReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exec_id: str
    con_id: int
    side: str  # BOT / SLD
    quantity: int
    price: Decimal  # per share, positive
    commission: Decimal | None = None
    time: AwareDatetime


class ExecutionReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    report_id: str = Field(description="unique per report: order_ref + event + sequence")
    order_ref: str
    follower_id: str
    account: str
    gateway_id: str
    signal_id: str
    event: ExecutionEvent
    at: AwareDatetime
    quantity: int = Field(ge=0)
    filled: int = Field(ge=0, description="cumulative over every ladder step")
    credit: Decimal | None = Field(None, description="working limit, positive credit")
    avg_fill_credit: Decimal | None = None
    ladder_step: int | None = None
    fills: tuple[LegFillReport, ...] = ()
    perm_id: int | None = None
    reason: str = ""
    ib_code: int | None = None
    seq: int = Field(
        0, ge=0, description="emission order within one agent's run of the order (1, 2, ...)"
    )
    outcome: str = Field(
        "",
        description="terminal reports: how the order ended (FILLED, PARTIAL_FILL, "
        "LIMIT_REACHED, CANCELLED, REJECTED) or why it was not sent (MID_TOO_LOW, "
        "NO_MARGIN, SIGNAL_STALE, NOT_READY, DRY_RUN, MARKET_CLOSED, TOO_EARLY)",
    )


def report_id(order_ref: str, event: ExecutionEvent, sequence: int) -> str:
    return f"{order_ref}:{event.value}:{sequence}"
