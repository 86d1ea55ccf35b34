"""Domain rules: validation messages name field, value and rule; money is exact."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.domain.errors import DomainValidationError, validate
from spreadpilot.domain.follower import Follower, FollowerState
from spreadpilot.domain.money import cents, to_decimal
from spreadpilot.domain.orders import OrderIntent, Purpose, order_ref
from spreadpilot.domain.signal import Signal
from spreadpilot.domain.spread import SpreadKind, VerticalSpread

GOOD = {
    "id": "alice",
    "name": "Alice Rossi",
    "email": "alice@example.com",
    "iban": "IT60 X054 2811 1010 0000 0123 456",
    "ib_account": "U1000001",
    "gateway_id": "gw-main",
    "commission_rate": "0.20",
}


def test_follower_normalises_iban_and_keeps_decimal_rate() -> None:
    f = validate(Follower, GOOD)
    assert f.iban == "IT60X0542811101000000123456"
    assert f.commission_rate == Decimal("0.20")
    assert f.trades and f.skip_reason() is None


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("email", "alice-at-example", "not a valid email address"),
        ("iban", "IT60X0542811101000000123457", "not a valid IBAN"),
        ("commission_rate", "0.9", "less than or equal to 0.5"),
        ("id", "Alice Rossi", "must be 1-32 characters"),
        ("ib_account", "1234", "should match pattern"),
        ("sizing_multiplier", "0", "greater than 0"),
        ("max_contracts", 0, "greater than or equal to 1"),
    ],
)
def test_follower_errors_name_field_value_and_rule(field: str, value: object, rule: str) -> None:
    with pytest.raises(DomainValidationError) as caught:
        validate(Follower, {**GOOD, field: value}, subject="follower alice")
    (error,) = caught.value.errors
    assert error.field == field
    assert error.value == value
    assert rule in error.rule
    assert f"{field}={value!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("multiplier", "cap", "qty", "expected"),
    [
        ("1", None, 2, 2),
        ("2", 3, 2, 3),
        ("0.5", None, 3, 1),
        ("0.4", None, 2, 0),
        ("1.5", 10, 3, 4),
    ],
)
def test_sizing_rounds_down_then_caps(
    multiplier: str, cap: int | None, qty: int, expected: int
) -> None:
    f = validate(Follower, {**GOOD, "sizing_multiplier": multiplier, "max_contracts": cap})
    assert f.contracts_for(qty) == expected


def test_disabled_and_suspended_followers_say_why() -> None:
    assert validate(Follower, {**GOOD, "enabled": False}).skip_reason() == "disabled"
    suspended = validate(Follower, {**GOOD, "state": FollowerState.SUSPENDED})
    assert suspended.skip_reason() == "state is SUSPENDED"


def _signal(**kw: object) -> Signal:
    base: dict[str, object] = {
        "trade_date": date(2026, 11, 24),
        "ticker": "QQQ",
        "strategy": "Long",
        "qty_per_leg": 2,
        "buy_put": Decimal(486),
        "sell_put": Decimal(488),
    }
    return Signal.model_validate({**base, **kw})


def test_long_is_bull_put_short_is_bear_call() -> None:
    bull = _signal().spread
    assert (bull.kind, bull.short_strike, bull.long_strike, bull.right) == (
        SpreadKind.BULL_PUT,
        Decimal(488),
        Decimal(486),
        "P",
    )
    bear = _signal(
        strategy="Short", buy_put=None, sell_put=None, sell_call=Decimal(492), buy_call=Decimal(494)
    ).spread
    assert (bear.kind, bear.short_strike, bear.long_strike, bear.width) == (
        SpreadKind.BEAR_CALL,
        Decimal(492),
        Decimal(494),
        Decimal(2),
    )


def test_signal_identity_is_date_and_ticker_and_hash_notices_edits() -> None:
    a, b = _signal(), _signal(qty_per_leg=3)
    assert a.id == b.id == "2026-11-24_QQQ"
    assert a.content_hash() != b.content_hash()
    assert a.content_hash() == _signal().content_hash()


def test_strikes_in_wrong_order_are_rejected_with_the_rule() -> None:
    with pytest.raises(ValueError, match="long strike 490 must be below short strike 488"):
        _signal(buy_put=Decimal(490))
    with pytest.raises(ValueError, match="must be above short strike"):
        VerticalSpread(
            kind=SpreadKind.BEAR_CALL, short_strike=Decimal(494), long_strike=Decimal(492)
        )


def test_credit_is_positive_in_the_domain() -> None:
    with pytest.raises(ValueError, match="credit must be positive"):
        VerticalSpread(
            kind=SpreadKind.BULL_PUT,
            short_strike=Decimal(488),
            long_strike=Decimal(486),
            credit=Decimal("-0.75"),
        )


def test_non_qqq_ticker_rejected() -> None:
    with pytest.raises(ValueError, match="only QQQ"):
        _signal(ticker="SPY")


def test_order_ref_is_deterministic_per_date_ticker_follower_purpose() -> None:
    ref = order_ref(date(2026, 11, 24), "QQQ", "alice", Purpose.OPEN)
    assert ref == "SP-20261124-QQQ-alice-OPEN"
    assert ref != order_ref(date(2026, 11, 24), "QQQ", "alice", Purpose.CLOSE)
    s = _signal()
    intent = OrderIntent.build(
        signal_id=s.id,
        signal_hash=s.content_hash(),
        trade_date=s.trade_date,
        ticker="QQQ",
        follower_id="alice",
        ib_account="U1",
        gateway_id="gw",
        purpose=Purpose.OPEN,
        spread=s.spread,
        quantity=2,
    )
    assert intent.order_ref == ref
    assert OrderIntent.model_validate(intent.model_dump(mode="json")) == intent


def test_alert_id_follows_the_dedup_key() -> None:
    at = datetime(2026, 11, 24, 14, 40, tzinfo=UTC)
    a = Alert.new(AlertType.SIGNAL_MISSING, "x", at=at, dedup_key="2026-11-24:QQQ", source="t")
    b = Alert.new(AlertType.SIGNAL_MISSING, "y", at=at, dedup_key="2026-11-24:QQQ", source="t")
    c = Alert.new(AlertType.SIGNAL_INVALID, "x", at=at, dedup_key="2026-11-24:QQQ", source="t")
    assert a.id == b.id != c.id
    assert a.severity is Severity.CRITICAL
    assert a.dedup_key == "SIGNAL_MISSING:2026-11-24:QQQ"
    with pytest.raises(ValueError, match="timezone"):
        Alert.new(AlertType.NO_MARGIN, "x", at=datetime(2026, 1, 1), dedup_key="k", source="t")


def test_money_refuses_floats_and_rounds_half_up() -> None:
    with pytest.raises(TypeError, match="float"):
        to_decimal(0.1)
    assert cents(Decimal("0.125")) == Decimal("0.13")
    assert cents(Decimal("-0.125")) == Decimal("-0.13")
    assert to_decimal("147.40") == Decimal("147.40")
