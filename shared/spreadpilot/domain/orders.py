"""Order intents: what the dispatcher asks the gateway agent to do, keyed by a
deterministic orderRef so every retry, redelivery and reconcile finds it."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from spreadpilot.domain.spread import VerticalSpread


class Purpose(StrEnum):
    OPEN = "OPEN"
    CLOSE = "CLOSE"  # risk close (time value critical)
    EOD = "EOD"  # end-of-day 0DTE close
    EMERGENCY = "EMERGENCY"
    FLATTEN = "FLATTEN"  # assigned shares


def order_ref(trade_date: date, ticker: str, follower_id: str, purpose: Purpose) -> str:
    """IB's orderRef for our orders: the business key (order ids can roll back)."""
    return f"SP-{trade_date:%Y%m%d}-{ticker}-{follower_id}-{purpose.value}"


class OrderIntent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_ref: str
    signal_id: str
    trade_date: date
    ticker: str
    follower_id: str
    ib_account: str
    gateway_id: str
    purpose: Purpose
    spread: VerticalSpread
    quantity: int = Field(gt=0, description="contracts per leg after sizing")
    signal_hash: str

    @classmethod
    def build(
        cls,
        *,
        signal_id: str,
        signal_hash: str,
        trade_date: date,
        ticker: str,
        follower_id: str,
        ib_account: str,
        gateway_id: str,
        purpose: Purpose,
        spread: VerticalSpread,
        quantity: int,
    ) -> OrderIntent:
        return cls(
            order_ref=order_ref(trade_date, ticker, follower_id, purpose),
            signal_id=signal_id,
            signal_hash=signal_hash,
            trade_date=trade_date,
            ticker=ticker,
            follower_id=follower_id,
            ib_account=ib_account,
            gateway_id=gateway_id,
            purpose=purpose,
            spread=spread,
            quantity=quantity,
        )
