"""The vertical credit spread: the one trade SpreadPilot opens."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator


class SpreadKind(StrEnum):
    BULL_PUT = "BULL_PUT"  # sell the higher put, buy the lower put
    BEAR_CALL = "BEAR_CALL"  # sell the lower call, buy the higher call

    @property
    def right(self) -> str:
        return "P" if self is SpreadKind.BULL_PUT else "C"


class VerticalSpread(BaseModel):
    """Strikes in USD; `credit` (USD per share) is positive, never IB's signed price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SpreadKind
    short_strike: Decimal
    long_strike: Decimal
    credit: Decimal | None = None

    @model_validator(mode="after")
    def _check(self) -> VerticalSpread:
        if self.short_strike <= 0 or self.long_strike <= 0:
            raise ValueError("strikes must be positive")
        if self.kind is SpreadKind.BULL_PUT and not self.long_strike < self.short_strike:
            raise ValueError(
                f"a Bull Put buys the lower put: long strike {self.long_strike} must be "
                f"below short strike {self.short_strike}"
            )
        if self.kind is SpreadKind.BEAR_CALL and not self.long_strike > self.short_strike:
            raise ValueError(
                f"a Bear Call buys the higher call: long strike {self.long_strike} must be "
                f"above short strike {self.short_strike}"
            )
        if self.credit is not None and self.credit <= 0:
            raise ValueError(f"credit must be positive, got {self.credit}")
        return self

    @property
    def right(self) -> str:
        return self.kind.right

    @property
    def width(self) -> Decimal:
        return abs(self.short_strike - self.long_strike)

    def describe(self) -> str:
        name = "Bull Put" if self.kind is SpreadKind.BULL_PUT else "Bear Call"
        low, high = sorted((self.short_strike, self.long_strike))
        return f"{name} {low:f}/{high:f}{self.right}"
