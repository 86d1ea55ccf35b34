"""The PIN policy: weak PINs are refused naming the rule, strong ones pass."""

import pytest

from spreadpilot.domain.pin import PIN_MIN_LENGTH, WeakPin, check_pin_strength, generate_pin
from spreadpilot.local.demo_login import DEMO_PIN

WEAK = [
    ("", "digits only"),
    ("12 456", "digits only"),
    ("12a456", "digits only"),
    ("١٢٣٤٥٦", "digits only"),  # Arabic-Indic digits are digits, but not 0-9
    ("48291", "at least 6 digits"),
    ("4829", "at least 6 digits"),
    ("000000", "one digit repeated"),
    ("77777777", "one digit repeated"),
    ("123456", "ascending or descending run"),
    ("987654", "ascending or descending run"),
    ("890123", "ascending or descending run"),  # wraps 9 -> 0
    ("321098", "ascending or descending run"),
    ("1234567890", "ascending or descending run"),
    ("121212", "short block repeated"),
    ("123123", "short block repeated"),
    ("112112", "short block repeated"),
    ("696969", "short block repeated"),
    ("520520", "short block repeated"),
    ("1212121", "short block repeated"),  # a block repeated, cut short
    ("111222", "well-known PIN"),
    ("123321", "well-known PIN"),
    ("147258", "well-known PIN"),
    ("112233", "well-known PIN"),
]


@pytest.mark.parametrize(("pin", "rule"), WEAK, ids=[p or "empty" for p, _ in WEAK])
def test_weak_pins_are_refused_naming_the_rule(pin: str, rule: str) -> None:
    with pytest.raises(WeakPin, match=rule):
        check_pin_strength(pin)


@pytest.mark.parametrize("pin", ["4545", "454545", "765432", "999999", "258258", "abcdef"])
def test_the_message_never_repeats_the_pin(pin: str) -> None:
    with pytest.raises(WeakPin) as caught:
        check_pin_strength(pin)
    assert pin not in str(caught.value)


@pytest.mark.parametrize("pin", ["482916", "730519", "1357924", "90817263", "205813"])
def test_strong_pins_pass(pin: str) -> None:
    check_pin_strength(pin)


def test_weak_pin_is_a_value_error() -> None:
    assert issubclass(WeakPin, ValueError)


def test_demo_pin_passes_the_policy() -> None:
    check_pin_strength(DEMO_PIN)


@pytest.mark.parametrize("length", [6, 8, 12])
def test_generated_pins_are_strong_and_of_the_length(length: int) -> None:
    pins = {generate_pin(length) for _ in range(50)}
    for pin in pins:
        assert len(pin) == length and pin.isdigit()
        check_pin_strength(pin)
    assert len(pins) > 40  # random, not a fixed sequence


def test_default_length_is_the_minimum() -> None:
    assert len(generate_pin()) == PIN_MIN_LENGTH == 6


def test_short_generated_pin_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 6 digits"):
        generate_pin(5)
