"""The operator's hand on the signal path: a manual signal, and one follower's re-send.

Both go through the automatic path's own rules, so neither can trade twice:

- a manual signal is claimed exactly like a sheet read (one signal per New York
  date and ticker, create-if-absent) and published once under the same claim; the
  dispatcher then sends every enabled follower's order as on any morning;
- a re-send rebuilds one follower's intent under the same deterministic orderRef
  and reopens its claims; it is refused while anything of that orderRef is (or may
  be) at IB, because IB keeps an order under its orderRef and a second order under
  the same one is never sent. The executor still reconciles the orderRef at IB
  before it sends anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spreadpilot.domain.calendar import ny_date
from spreadpilot.domain.errors import DomainValidationError, validate
from spreadpilot.domain.execution import ExecutionEvent
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.orders import Purpose, order_ref
from spreadpilot.domain.signal import Signal, signal_id
from spreadpilot.platform import collections as C
from spreadpilot.platform.wiring import Container
from spreadpilot.services.claims import ClaimStatus
from spreadpilot.services.signal_poller import PollStatus


class Refused(Exception):
    """The action conflicts with the current state; the message says what to do."""


@dataclass(frozen=True)
class ManualSignalResult:
    signal_id: str
    description: str
    claimed_at: datetime


@dataclass(frozen=True)
class ResendResult:
    follower_id: str
    order_ref: str
    status: str  # INTENT (published) | SKIPPED | FAILED
    quantity: int
    reason: str


def send_manual_signal(
    c: Container, fields: dict[str, Any], *, by: str, reason: str
) -> ManualSignalResult:
    """Today's signal typed by the operator; DomainValidationError names bad fields."""
    now = c.clock.now()
    today = ny_date(now)
    session = c.calendar.session(today)
    if session is None:
        raise Refused(f"{today} is not an NYSE trading day: there is nothing to trade")
    if now >= session.close:
        raise Refused(
            f"the {today} session closed at {session.close:%H:%M} UTC: a 0DTE signal can no "
            "longer be traded"
        )
    signal = validate(
        Signal,
        {**fields, "trade_date": today.isoformat(), "ticker": c.settings.signal_ticker},
        subject="signal",
    )
    outcome = c.signal_poller().claim_manual(signal, by=by, reason=reason)
    if outcome.status is PollStatus.ALREADY_CLAIMED:
        raise Refused(
            f"today's signal is already claimed ({outcome.detail}); a second one is never "
            "traded. Re-send one follower's order instead if its order failed."
        )
    claimed = c.store.get(C.SIGNALS, signal.id) or {}
    return ManualSignalResult(signal.id, signal.describe(), claimed.get("claimed_at", now))


def resend_order(c: Container, follower_id: str, *, by: str) -> ResendResult:
    now = c.clock.now()
    today = ny_date(now)
    sid = signal_id(today, c.settings.signal_ticker)
    if c.store.get(C.SIGNALS, sid) is None:
        raise Refused(
            f"no signal is claimed for {today}: there is no order to re-send (send a manual "
            "signal if the sheet is down)"
        )
    data = c.store.get(C.FOLLOWERS, follower_id)
    if data is None:
        raise LookupError(follower_id)
    try:
        follower = validate(Follower, data, subject=f"follower {follower_id}")
    except DomainValidationError as exc:
        raise Refused(f"fix the follower's record first: {exc}") from None
    if (why := follower.skip_reason()) is not None:
        raise Refused(f"follower {follower_id} does not trade ({why}): enable it first")
    ref = order_ref(today, c.settings.signal_ticker, follower_id, Purpose.OPEN)
    _check_nothing_at_ib(c, ref)
    outcome = c.dispatcher().resend(sid, follower_id, by=by)
    return ResendResult(
        follower_id, ref, outcome.status, outcome.quantity, outcome.reason or "published"
    )


#: Execution states after which IB holds (or may hold) an order under the orderRef.
_AT_IB = {
    ExecutionEvent.PLACED,
    ExecutionEvent.MODIFIED,
    ExecutionEvent.PARTIAL,
    ExecutionEvent.FILLED,
    ExecutionEvent.CANCELLED,
    ExecutionEvent.REJECTED,
    ExecutionEvent.UNKNOWN,
}


def _check_nothing_at_ib(c: Container, ref: str) -> None:
    execution = c.store.get(C.EXECUTIONS, ref)
    if execution is not None:
        state = ExecutionEvent(execution["state"])
        if state in _AT_IB or execution.get("placed_at") or execution.get("filled"):
            raise Refused(
                f"{ref} reached IB (state {state.value}, {execution.get('filled', 0)} filled): "
                "IB keeps that order under its orderRef and a second order under the same "
                "orderRef is never sent. Trade this follower by hand in TWS if needed."
            )
    claim = c.store.get(C.CLAIMS, f"execute:{ref}")
    if claim is not None and claim["status"] == ClaimStatus.IN_PROGRESS:
        if str(claim["holder"]).startswith("reopened-by:"):
            raise Refused(
                f"{ref} was already re-sent by {claim['holder'].split(':', 1)[1]} at "
                f"{claim.get('reopened_at')}; it waits for the gateway agent"
            )
        if claim["lease_expires_at"] > c.clock.now():
            raise Refused(f"{ref} is being executed by {claim['holder']} right now; wait for it")
        raise Refused(
            f"{ref} was interrupted at the agent (claim lease expired); its message is "
            "redelivered and reconciled at IB automatically, so it is not re-sent by hand"
        )
    intent = c.store.get(C.ORDER_INTENTS, ref)
    if intent is not None and intent.get("status") == "PUBLISHED" and execution is None:
        raise Refused(
            f"{ref} was published and waits for the gateway agent; check the agent's health "
            "(a re-send would not reach it sooner)"
        )
