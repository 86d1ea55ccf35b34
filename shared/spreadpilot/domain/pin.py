"""The PIN policy for dangerous console actions (pure).

A 6-digit PIN has a million values, but people pick from a few hundred: the
rules below refuse the patterns that studies of chosen PINs find at the top
(Wang et al., "Understanding Human-chosen PINs", 2017; DataGenetics' 4-digit
analysis), so an attacker's three guesses before the lockout are worth little.
A date (DDMMYY) is not detected: do not use one, or use `generate_pin`.
"""

from __future__ import annotations

import itertools
import secrets

PIN_MIN_LENGTH = 6

#: Frequent 6-digit PINs that no structural rule below catches (mirrors,
#: keypad shapes, number words). Runs (123456, 654321), one digit repeated
#: (000000) and repeated blocks (696969, 520520, 123123) are refused by rule.
WELL_KNOWN_PINS = frozenset(
    {
        "111222",  # two digits, three times each
        "112233",
        "123321",  # mirrored
        "321123",
        "102030",
        "147258",  # keypad columns
        "147852",  # keypad shapes
        "159357",
        "159753",
        "258369",
        "741852",
        "789456",  # keypad rows
        "456123",
        "135790",  # odd, then even digits
        "246810",
        "112358",  # Fibonacci
        "314159",  # pi
        "131420",  # Chinese number words ("life-long love")
        "520131",  # Chinese number words ("I love you for life")
    }
)


class WeakPin(ValueError):
    """The PIN breaks a rule of the policy; the message names the rule (never the PIN)."""


def check_pin_strength(pin: str) -> None:
    """Raise WeakPin naming the first rule `pin` breaks; return if it is strong."""
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit():
        raise WeakPin("the PIN must be digits only (0-9)")
    if len(pin) < PIN_MIN_LENGTH:
        raise WeakPin(f"the PIN must have at least {PIN_MIN_LENGTH} digits (it has {len(pin)})")
    if len(set(pin)) == 1:
        raise WeakPin("the PIN must not be one digit repeated (like 111111)")
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {9}):
        raise WeakPin(
            "the PIN must not be an ascending or descending run (like 123456, 987654 or 890123)"
        )
    for size in range(2, len(pin) // 2 + 1):
        if pin == (pin[:size] * len(pin))[: len(pin)]:
            raise WeakPin(
                f"the PIN must not be a short block repeated (a block of {size} digits, "
                "like 121212, 123123 or 112112)"
            )
    if pin in WELL_KNOWN_PINS:
        raise WeakPin("the PIN must not be a well-known PIN (like 111222, 123321 or 147258)")


def generate_pin(length: int = PIN_MIN_LENGTH) -> str:
    """A uniformly random PIN (from `secrets`) that passes the policy."""
    if length < PIN_MIN_LENGTH:
        raise ValueError(f"a PIN needs at least {PIN_MIN_LENGTH} digits, got length {length}")
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        try:
            check_pin_strength(pin)
        except WeakPin:
            continue
        return pin
