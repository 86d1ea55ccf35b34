"""The follower: one canonical model, used by the store, the dispatcher and
(later) the admin API, so a rule lives in exactly one place."""

from __future__ import annotations

import re
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from stdnum import iban as _iban
from stdnum.exceptions import ValidationError as StdnumError

FOLLOWER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class FollowerState(StrEnum):
    ONBOARDING = "ONBOARDING"  # configured, not yet connected to a gateway
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"  # kept for billing, trades nothing


# Pure string checks, cached: every read of the followers (the dispatcher, the
# console's lists) re-validates each record, and these two are most of that cost.
@lru_cache(maxsize=8192)
def _email(value: str) -> str:
    try:
        return _validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address ({exc})") from None


@lru_cache(maxsize=8192)
def _iban_checked(value: str) -> str:
    try:
        return str(_iban.validate(value))
    except StdnumError as exc:
        raise ValueError(f"not a valid IBAN ({exc}); check the digits") from None


Email = Annotated[str, AfterValidator(_email)]
Iban = Annotated[str, AfterValidator(_iban_checked)]


class Follower(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(description="lowercase slug, used in orderRef and document ids")
    name: str = Field(min_length=1, max_length=120)
    email: Email
    iban: Iban
    ib_account: str = Field(
        pattern=r"^[A-Z]{1,3}\d{4,10}$", description="IB account, e.g. U1234567"
    )
    gateway_id: str = Field(min_length=1, description="which IB Gateway serves this account")
    commission_rate: Decimal = Field(ge=0, le=Decimal("0.5"), description="share of positive P&L")
    enabled: bool = True
    state: FollowerState = FollowerState.ACTIVE
    sizing_multiplier: Decimal = Field(default=Decimal(1), gt=0, le=10)
    max_contracts: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not FOLLOWER_ID.match(value):
            raise ValueError(
                "must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
            )
        return value

    @property
    def trades(self) -> bool:
        return self.enabled and self.state is FollowerState.ACTIVE

    def skip_reason(self) -> str | None:
        """Why this follower gets no order today, or None if it trades."""
        if not self.enabled:
            return "disabled"
        if self.state is not FollowerState.ACTIVE:
            return f"state is {self.state.value}"
        return None

    def contracts_for(self, signal_qty: int) -> int:
        """Sized quantity: multiplier rounded down (never more risk than asked), then capped."""
        sized = int((Decimal(signal_qty) * self.sizing_multiplier).to_integral_value(ROUND_FLOOR))
        if self.max_contracts is not None:
            sized = min(sized, self.max_contracts)
        return sized

    def to_doc(self) -> dict[str, object]:
        return self.model_dump(mode="json")
