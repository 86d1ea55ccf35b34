"""Money is Decimal, rounded explicitly: cents, half-up (domain.md section 6)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
#: Option contracts on QQQ cover 100 shares.
CONTRACT_MULTIPLIER = 100


def to_decimal(value: object) -> Decimal:
    """Exact Decimal from int/str/Decimal. Floats are refused: they already lost cents."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"money must not be {type(value).__name__}: pass a str or Decimal")
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return result


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
