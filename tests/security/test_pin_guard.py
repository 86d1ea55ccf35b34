"""PinGuard on the real embedded store: wrong PINs counted, the lockout, its end,
the window, reset on success, and one lockout shared by every instance."""

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.platform.passwords import BadHash, hash_secret
from spreadpilot.platform.wiring import Container
from spreadpilot.services.pin_guard import PinGuard, PinLocked, PinRejected, PinStatus
from tests.support.embedded import Platform, make_platform

PIN = "482916"
WRONG = "730519"
PIN_HASH = hash_secret(PIN)


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return make_platform(tmp_path)


def guard_of(p: Platform, c: Container | None = None) -> PinGuard:
    return PinGuard((c or p.c).store, p.clock, lambda: PIN_HASH)


def test_right_pin_passes(platform: Platform) -> None:
    guard = guard_of(platform)
    guard.check("operator", PIN)
    assert guard.status("operator") == PinStatus(0, None)


def test_wrong_pins_count_down_then_lock(platform: Platform) -> None:
    guard = guard_of(platform)
    with pytest.raises(PinRejected) as first:
        guard.check("operator", WRONG)
    assert first.value.remaining == 2
    with pytest.raises(PinRejected) as second:
        guard.check("operator", WRONG)
    assert second.value.remaining == 1
    assert "1 attempt left" in str(second.value)
    now = platform.clock.now()
    with pytest.raises(PinLocked) as third:  # the attempt that reaches the limit locks
        guard.check("operator", WRONG)
    assert third.value.until == now + timedelta(minutes=15)
    assert guard.status("operator") == PinStatus(3, now + timedelta(minutes=15))


def test_locked_refuses_even_the_right_pin(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(3):
        with pytest.raises((PinRejected, PinLocked)):
            guard.check("operator", WRONG)
    until = platform.clock.now() + timedelta(minutes=15)
    platform.clock.advance(timedelta(minutes=5))
    with pytest.raises(PinLocked) as fourth:
        guard.check("operator", PIN)
    assert fourth.value.until == until
    assert fourth.value.until.tzinfo is not None and fourth.value.until.utcoffset() == timedelta(0)
    assert str(fourth.value) == f"PIN locked until {until:%H:%M} UTC after 3 wrong attempts"
    assert guard.status("operator").locked_until == until  # refusals do not extend it


def test_lockout_ends_and_the_count_starts_again(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(3):
        with pytest.raises((PinRejected, PinLocked)):
            guard.check("operator", WRONG)
    platform.clock.advance(timedelta(minutes=15, seconds=1))
    assert guard.status("operator") == PinStatus(0, None)
    with pytest.raises(PinRejected) as after:
        guard.check("operator", WRONG)
    assert after.value.remaining == 2  # the locked-out failures were paid for
    guard.check("operator", PIN)


def test_failures_outside_the_window_are_forgotten(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(2):
        with pytest.raises(PinRejected):
            guard.check("operator", WRONG)
    platform.clock.advance(timedelta(minutes=15, seconds=1))
    assert guard.status("operator").failures == 0
    with pytest.raises(PinRejected) as caught:
        guard.check("operator", WRONG)
    assert caught.value.remaining == 2


def test_failures_slide_out_of_the_window_one_by_one(platform: Platform) -> None:
    guard = guard_of(platform)
    with pytest.raises(PinRejected):
        guard.check("operator", WRONG)
    platform.clock.advance(timedelta(minutes=10))
    with pytest.raises(PinRejected):
        guard.check("operator", WRONG)
    platform.clock.advance(timedelta(minutes=6))  # the first is 16 minutes old
    with pytest.raises(PinRejected) as caught:
        guard.check("operator", WRONG)
    assert caught.value.remaining == 1


def test_success_resets_the_failures(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(2):
        with pytest.raises(PinRejected):
            guard.check("operator", WRONG)
    guard.check("operator", PIN)
    assert guard.status("operator") == PinStatus(0, None)
    assert platform.c.store.get(C.PIN_ATTEMPTS, "operator") is None
    with pytest.raises(PinRejected) as caught:
        guard.check("operator", WRONG)
    assert caught.value.remaining == 2


def test_right_pin_on_the_last_attempt_passes(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(2):
        with pytest.raises(PinRejected):
            guard.check("operator", WRONG)
    guard.check("operator", PIN)
    assert guard.status("operator") == PinStatus(0, None)


@pytest.mark.parametrize("garbage", ["", " ", "x" * 10_000, "48291６", "482916 "])
def test_empty_or_garbage_pin_is_a_wrong_attempt(platform: Platform, garbage: str) -> None:
    guard = guard_of(platform)
    with pytest.raises(PinRejected):
        guard.check("operator", garbage)
    assert guard.status("operator").failures == 1


def test_operators_are_counted_apart(platform: Platform) -> None:
    guard = guard_of(platform)
    for _ in range(3):
        with pytest.raises((PinRejected, PinLocked)):
            guard.check("operator", WRONG)
    guard.check("deputy", PIN)
    assert guard.status("deputy") == PinStatus(0, None)


def test_lockout_holds_across_two_instances_sharing_the_store(platform: Platform) -> None:
    second = Container(platform.settings, clock=platform.clock)  # another store instance
    assert second.store is not platform.c.store
    a, b = guard_of(platform), guard_of(platform, second)
    with pytest.raises(PinRejected):
        a.check("operator", WRONG)
    with pytest.raises(PinRejected) as on_b:
        b.check("operator", WRONG)
    assert on_b.value.remaining == 1  # b saw a's failure
    until = platform.clock.now() + timedelta(minutes=15)
    with pytest.raises(PinLocked):
        a.check("operator", WRONG)
    with pytest.raises(PinLocked) as on_b_locked:
        b.check("operator", PIN)
    assert on_b_locked.value.until == until
    assert b.status("operator") == PinStatus(3, until)
    platform.clock.advance(timedelta(minutes=16))
    b.check("operator", PIN)
    assert a.status("operator") == PinStatus(0, None)


def test_settings_shape_the_guard(platform: Platform) -> None:
    guard = PinGuard(
        platform.c.store,
        platform.clock,
        lambda: PIN_HASH,
        max_attempts=1,
        window=timedelta(minutes=1),
        lockout=timedelta(minutes=2),
    )
    now = platform.clock.now()
    with pytest.raises(PinLocked) as caught:
        guard.check("operator", WRONG)
    assert caught.value.until == now + timedelta(minutes=2)
    assert "after 1 wrong attempts" in str(caught.value)


def test_a_bad_stored_hash_is_a_configuration_error_not_a_failure(platform: Platform) -> None:
    guard = PinGuard(platform.c.store, platform.clock, lambda: "not-a-hash")
    with pytest.raises(BadHash):
        guard.check("operator", PIN)
    assert guard.status("operator").failures == 0


def test_logs_name_the_outcome_and_never_the_pin(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    guard = guard_of(platform)
    with caplog.at_level(logging.INFO, logger="spreadpilot.security"):
        guard.check("operator", PIN)
        for _ in range(3):
            with pytest.raises((PinRejected, PinLocked)):
                guard.check("operator", WRONG)
        with pytest.raises(PinLocked):
            guard.check("operator", PIN)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "PIN verified"
    assert sum("Invalid PIN" in m for m in messages) == 3
    assert sum("locked out" in m for m in messages) == 2
    for record in caplog.records:
        assert record.operation == "pin_check"  # type: ignore[attr-defined]
        assert record.operator == "operator"  # type: ignore[attr-defined]
        text = repr(vars(record))
        assert PIN not in text and WRONG not in text


def test_bad_operator_id_is_refused(platform: Platform) -> None:
    with pytest.raises(ValueError, match="operator"):
        guard_of(platform).check("a/b", PIN)


def test_pin_locked_until_is_utc() -> None:
    eastern = datetime(2026, 11, 24, 9, 30, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")
    )
    locked = PinLocked(eastern, 3)
    assert locked.until.tzinfo is UTC
    assert str(locked) == "PIN locked until 09:30 UTC after 3 wrong attempts"


def test_parallel_guesses_get_no_more_attempts_than_the_limit(platform: Platform) -> None:
    """Ten instances guessing at once: each attempt is counted before its PIN is
    verified, so only three are ever verified; the others meet the lockout."""
    from concurrent.futures import ThreadPoolExecutor

    guards = [
        guard_of(platform, Container(platform.settings, clock=platform.clock)) for _ in range(10)
    ]

    def attempt(guard: PinGuard) -> str:
        try:
            guard.check("operator", WRONG)
        except PinRejected:
            return "rejected"
        except PinLocked:
            return "locked"
        return "passed"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, guards))
    assert outcomes.count("rejected") == 2  # attempts 1 and 2; the 3rd locked
    assert outcomes.count("locked") == 8
    assert guards[0].status("operator").failures == 3
