"""The PIN check in front of dangerous console actions, with a lockout.

State lives in the store (one document per operator in C.PIN_ATTEMPTS), not in
the process, so every instance of the admin_api function sees the same
failures and the same lockout.

An attempt is counted as a failure *before* the PIN is verified (first
transaction) and forgiven only if it turns out right (second transaction).
Counting afterwards would let concurrent requests all pass the lockout check
before any failure is written (a hundred parallel guesses instead of three);
a request that dies in between stays counted, which is the safe side. The
attempt that reaches max_attempts locks at once: if it is the right PIN, its
success lifts the lock again. The scrypt verification runs between the two
transactions, never inside one (a retried transaction would hash again and
hold the store's lock for the hash's duration).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spreadpilot.platform import collections as C
from spreadpilot.platform.passwords import check_hash, verify_secret
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Document, Store, Transaction

log = logging.getLogger("spreadpilot.security")

#: Longer input is not hashed as given (a PIN is a few digits): it still costs
#: one scrypt and one failure, like any wrong PIN.
_MAX_INPUT = 128


class PinLocked(Exception):
    """Too many wrong PINs: every PIN (even the right one) is refused until `until`."""

    def __init__(self, until: datetime, attempts: int) -> None:
        self.until = until.astimezone(UTC)
        self.attempts = attempts
        super().__init__(f"PIN locked until {self.until:%H:%M} UTC after {attempts} wrong attempts")


class PinRejected(Exception):
    """A wrong PIN; `remaining` wrong attempts are left before the lockout."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        word = "attempt" if remaining == 1 else "attempts"
        super().__init__(f"wrong PIN: {remaining} {word} left before the lockout")


@dataclass(frozen=True)
class PinStatus:
    failures: int
    locked_until: datetime | None


@dataclass(frozen=True)
class _Begun:
    """What the first transaction decided."""

    locked_until: datetime | None  # set: refused, or this attempt reached the limit
    failures: int  # wrong attempts in the window, this one included
    refused: bool  # already locked before this attempt


def _doc_id(operator: str) -> str:
    if not operator or "/" in operator or operator in {".", ".."} or len(operator) > 128:
        raise ValueError(f"operator {operator!r} must be 1-128 characters without '/'")
    return operator


class PinGuard:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        pin_hash: Callable[[], str],
        *,
        max_attempts: int = 3,
        window: timedelta = timedelta(minutes=15),
        lockout: timedelta = timedelta(minutes=15),
    ) -> None:
        """`pin_hash` is called on every check, so a rotated secret applies at once
        (MissingSecret and BadHash from it propagate: a configuration error, not a
        wrong PIN, and nothing is counted)."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if window <= timedelta(0) or lockout <= timedelta(0):
            raise ValueError("window and lockout must be positive")
        self.store = store
        self.clock = clock
        self.pin_hash = pin_hash
        self.max_attempts = max_attempts
        self.window = window
        self.lockout = lockout

    def check(self, operator: str, pin: str) -> None:
        """Return if `pin` is right; raise PinLocked or PinRejected otherwise.

        Success clears the operator's failures. An empty or garbage PIN is a wrong one.
        """
        doc_id = _doc_id(operator)
        encoded = self.pin_hash()
        check_hash(encoded)  # before counting: a missing or bad secret costs no attempt
        now = self.clock.now()
        extra: dict[str, Any] = {"operation": "pin_check", "operator": operator}

        begun = self.store.transaction(lambda tx: self._begin(tx, doc_id, now))
        if begun.refused:
            assert begun.locked_until is not None
            log.warning(
                "PIN refused: locked out until %s",
                f"{begun.locked_until:%H:%M} UTC",
                extra={**extra, "locked_until": begun.locked_until.isoformat()},
            )
            raise PinLocked(begun.locked_until, begun.failures)

        candidate = pin if isinstance(pin, str) and 0 < len(pin) <= _MAX_INPUT else ""
        # an empty or oversized PIN costs the same hash as any other and never matches
        right = verify_secret(candidate or "-", encoded) and bool(candidate)
        if right:
            self.store.transaction(lambda tx: self._clear(tx, doc_id))
            log.info("PIN verified", extra=extra)
            return
        if begun.locked_until is not None:
            log.warning(
                "Invalid PIN: locked out until %s after %d wrong attempts",
                f"{begun.locked_until:%H:%M} UTC",
                begun.failures,
                extra={
                    **extra,
                    "failures": begun.failures,
                    "locked_until": begun.locked_until.isoformat(),
                },
            )
            raise PinLocked(begun.locked_until, begun.failures)
        remaining = self.max_attempts - begun.failures
        log.warning(
            "Invalid PIN: %d attempts left",
            remaining,
            extra={**extra, "failures": begun.failures, "remaining": remaining},
        )
        raise PinRejected(remaining)

    def status(self, operator: str) -> PinStatus:
        """Wrong attempts within the window and the lockout's end (None: not locked)."""
        doc = self.store.get(C.PIN_ATTEMPTS, _doc_id(operator)) or {}
        now = self.clock.now()
        locked = _locked_until(doc, now)
        if locked is not None:
            return PinStatus(int(doc["locked_after"]), locked)
        return PinStatus(len(self._live_failures(doc, now)), None)

    # --- the two transactions

    def _begin(self, tx: Transaction, doc_id: str, now: datetime) -> _Begun:
        doc = tx.get(C.PIN_ATTEMPTS, doc_id) or {}
        locked = _locked_until(doc, now)
        if locked is not None:
            return _Begun(locked, int(doc["locked_after"]), refused=True)
        failures = [*self._live_failures(doc, now), now]
        until = now + self.lockout if len(failures) >= self.max_attempts else None
        tx.set(
            C.PIN_ATTEMPTS,
            doc_id,
            {
                "operator": doc_id,
                "failures": failures,
                "locked_until": until,
                "locked_after": len(failures) if until else None,
                "updated_at": now,
            },
        )
        return _Begun(until, len(failures), refused=False)

    @staticmethod
    def _clear(tx: Transaction, doc_id: str) -> None:
        tx.delete(C.PIN_ATTEMPTS, doc_id)

    def _live_failures(self, doc: Document, now: datetime) -> list[datetime]:
        """Wrong attempts that still count: within the window, and none from before
        a lockout that has ended (the lockout paid for them)."""
        if doc.get("locked_until") is not None:
            return []
        since = now - self.window
        return [t for t in doc.get("failures", []) if isinstance(t, datetime) and t > since]


def _locked_until(doc: Document, now: datetime) -> datetime | None:
    until = doc.get("locked_until")
    return until if isinstance(until, datetime) and until > now else None
