"""The strategist's daily signal: identity (date, ticker), content hash for edits."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spreadpilot.domain.spread import SpreadKind, VerticalSpread

SUPPORTED_TICKERS = frozenset({"QQQ"})


class Strategy(StrEnum):
    LONG = "Long"  # Bull Put credit spread
    SHORT = "Short"  # Bear Call credit spread

    @property
    def spread_kind(self) -> SpreadKind:
        return SpreadKind.BULL_PUT if self is Strategy.LONG else SpreadKind.BEAR_CALL


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trade_date: date = Field(description="New York trading date; 0DTE expiry")
    ticker: str
    strategy: Strategy
    qty_per_leg: int = Field(gt=0)
    buy_put: Decimal | None = None
    sell_put: Decimal | None = None
    sell_call: Decimal | None = None
    buy_call: Decimal | None = None

    @model_validator(mode="after")
    def _check(self) -> Signal:
        if self.ticker not in SUPPORTED_TICKERS:
            raise ValueError(f"ticker {self.ticker!r} is not traded; only QQQ")
        self.spread  # noqa: B018 - builds and validates the spread's strikes
        return self

    @property
    def id(self) -> str:
        """Identity: one signal per New York date and ticker."""
        return signal_id(self.trade_date, self.ticker)

    @property
    def spread(self) -> VerticalSpread:
        if self.strategy is Strategy.LONG:
            short, long_ = self.sell_put, self.buy_put
        else:
            short, long_ = self.sell_call, self.buy_call
        if short is None or long_ is None:
            raise ValueError(f"{self.strategy.value} needs both strikes of its side")
        return VerticalSpread(kind=self.strategy.spread_kind, short_strike=short, long_strike=long_)

    def content_hash(self) -> str:
        """Stable hash of what would be traded; notices edits after the claim."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.trade_date} {self.ticker} {self.spread.describe()} x{self.qty_per_leg}"


def signal_id(trade_date: date, ticker: str) -> str:
    return f"{trade_date.isoformat()}_{ticker}"
