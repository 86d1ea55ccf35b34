"""The morning signal path, second half: one order intent per enabled follower.

Idempotent under redelivery: intents are created under their deterministic
orderRef (create-if-absent) and each is published once under a claim, so a
message delivered three times yields exactly one intent and one publish per
follower. A stale signal (too old to trade) is recorded and alerted, never
dispatched.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spreadpilot.domain.alerts import Alert, AlertType
from spreadpilot.domain.calendar import ny_date
from spreadpilot.domain.errors import DomainValidationError, Unprocessable, validate
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.orders import OrderIntent, Purpose, order_ref
from spreadpilot.domain.signal import Signal
from spreadpilot.platform import collections as C
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Store
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import Claims

ORDERS_TOPIC = "orders"
SOURCE = "dispatcher"
log = logging.getLogger("spreadpilot.dispatcher")


class UnknownSignal(Unprocessable):
    """The message names a signal that was never claimed: a bug or a forged message."""


@dataclass(frozen=True)
class FollowerOutcome:
    follower_id: str
    status: str  # INTENT | SKIPPED
    order_ref: str | None = None
    quantity: int = 0
    reason: str = ""


@dataclass(frozen=True)
class DispatchSummary:
    signal_id: str
    status: str  # DISPATCHED | STALE
    outcomes: tuple[FollowerOutcome, ...]

    @property
    def intents(self) -> list[FollowerOutcome]:
        return [o for o in self.outcomes if o.status == "INTENT"]


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        clock: Clock,
        claims: Claims,
        alerts: AlertPublisher,
        max_age: timedelta = timedelta(minutes=30),
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.claims = claims
        self.alerts = alerts
        self.max_age = max_age
        self.holder = holder or f"dispatcher-{os.getpid()}"

    def dispatch(self, sid: str) -> DispatchSummary:
        doc = self.store.get(C.SIGNALS, sid)
        if doc is None:
            raise UnknownSignal(
                f"signal {sid!r} is not in the store: only claimed signals dispatch"
            )
        signal = Signal.model_validate(doc["signal"])
        now = self.clock.now()
        stale = self._stale_reason(signal, doc["claimed_at"], now)
        if stale:
            return self._drop_stale(signal, stale)

        outcomes = [
            self._one(signal, doc["content_hash"], fid, data) for fid, data in self._followers()
        ]
        failures = [o for o in outcomes if o.status == "FAILED"]
        summary = DispatchSummary(sid, "DISPATCHED", tuple(o for o in outcomes))
        self.store.set(C.DISPATCHES, sid, _summary_doc(summary, now))
        log.info(
            "dispatched %s: %d intents, %d skipped",
            sid,
            len(summary.intents),
            len(outcomes) - len(summary.intents),
            extra={"operation": "dispatch", "signal_id": sid},
        )
        if failures:
            # Redelivery retries just these: the others are DONE under their claims.
            raise RuntimeError(
                "publishing failed for "
                + ", ".join(f"{o.follower_id} ({o.reason})" for o in failures)
            )
        return summary

    def resend(self, sid: str, fid: str, *, by: str) -> FollowerOutcome:
        """The operator's re-send of one follower's order after its cause was fixed.

        The same orderRef and the same claim as the morning's dispatch: the intent is
        rebuilt from the follower's current record (the fix may be in it), its publish
        and execute claims are reopened, and the executor reconciles the orderRef at IB
        before sending, as on any run. The caller checks that nothing reached IB."""
        doc = self.store.get(C.SIGNALS, sid)
        if doc is None:
            raise UnknownSignal(f"signal {sid!r} is not in the store: nothing to re-send")
        signal = Signal.model_validate(doc["signal"])
        data = self.store.get(C.FOLLOWERS, fid)
        if data is None:
            raise UnknownSignal(f"follower {fid!r} does not exist")
        ref = order_ref(signal.trade_date, signal.ticker, fid, Purpose.OPEN)
        for key in (f"publish-order:{ref}", f"execute:{ref}"):
            self.claims.reopen(key, by)
        outcome = self._one(signal, doc["content_hash"], fid, data, resent_by=by)
        summary = self.store.get(C.DISPATCHES, sid) or {
            "signal_id": sid,
            "status": "DISPATCHED",
            "followers": {},
        }
        summary["followers"][fid] = {
            "status": outcome.status,
            "order_ref": outcome.order_ref,
            "quantity": outcome.quantity,
            "reason": outcome.reason or f"re-sent by {by}",
        }
        summary["updated_at"] = self.clock.now()
        self.store.set(C.DISPATCHES, sid, summary)
        return outcome

    # ----------------------------------------------------------- helpers
    def _followers(self) -> list[tuple[str, dict[str, Any]]]:
        return sorted((s.id, s.data) for s in self.store.query(C.FOLLOWERS))

    def _one(
        self,
        signal: Signal,
        content_hash: str,
        fid: str,
        data: dict[str, Any],
        resent_by: str | None = None,
    ) -> FollowerOutcome:
        try:
            follower = validate(Follower, data, subject=f"follower {fid}")
        except DomainValidationError as exc:
            self.alerts.raise_alert(
                Alert.new(
                    AlertType.CONFIG_INVALID,
                    f"Follower {fid} was skipped for {signal.id}: its record is invalid ({exc}). "
                    "Fix the follower record; then re-send its order.",
                    at=self.clock.now(),
                    dedup_key=f"{signal.id}:{fid}",
                    source=SOURCE,
                    follower_id=fid,
                )
            )
            return FollowerOutcome(fid, "SKIPPED", reason=f"invalid follower record: {exc}")
        reason = follower.skip_reason()
        if reason:
            return FollowerOutcome(fid, "SKIPPED", reason=reason)
        qty = follower.contracts_for(signal.qty_per_leg)
        if qty < 1:
            return FollowerOutcome(
                fid,
                "SKIPPED",
                reason=f"sizing gives 0 contracts ({signal.qty_per_leg} x "
                f"{follower.sizing_multiplier} rounded down)",
            )
        intent = OrderIntent.build(
            signal_id=signal.id,
            signal_hash=content_hash,
            trade_date=signal.trade_date,
            ticker=signal.ticker,
            follower_id=fid,
            ib_account=follower.ib_account,
            gateway_id=follower.gateway_id,
            purpose=Purpose.OPEN,
            spread=signal.spread,
            quantity=qty,
        )
        record: dict[str, Any] = {
            "intent": intent.model_dump(mode="json"),
            "status": "NEW",
            "created_at": self.clock.now(),
        }
        if resent_by is None:
            self.store.create(C.ORDER_INTENTS, intent.order_ref, record)
        else:  # the re-send's intent replaces the first: nothing of it reached IB
            previous = self.store.get(C.ORDER_INTENTS, intent.order_ref) or {}
            record.update(
                resent_by=resent_by,
                resent_at=record["created_at"],
                resends=int(previous.get("resends", 0)) + 1,
            )
            self.store.set(C.ORDER_INTENTS, intent.order_ref, record)
        try:
            self._publish(intent)
        except Exception as exc:  # one follower's failure never blocks the others
            log.exception(
                "publishing %s failed",
                intent.order_ref,
                extra={"follower_id": fid, "order_ref": intent.order_ref},
            )
            return FollowerOutcome(fid, "FAILED", intent.order_ref, qty, reason=str(exc))
        return FollowerOutcome(fid, "INTENT", intent.order_ref, qty)

    def _publish(self, intent: OrderIntent) -> None:
        key = f"publish-order:{intent.order_ref}"
        claim = self.claims.acquire(key, self.holder)
        if not claim.acquired:
            return
        try:
            message_id = self.bus.publish(
                ORDERS_TOPIC,
                json.dumps(intent.model_dump(mode="json")).encode(),
                {
                    "order_ref": intent.order_ref,
                    "follower_id": intent.follower_id,
                    "gateway_id": intent.gateway_id,
                },
                ordering_key=intent.gateway_id,
            )
        except Exception:
            self.claims.release(key, self.holder)
            raise
        self.store.update(
            C.ORDER_INTENTS, intent.order_ref, {"status": "PUBLISHED", "message_id": message_id}
        )
        self.claims.complete(key, self.holder, {"message_id": message_id})

    def _stale_reason(self, signal: Signal, claimed_at: datetime, now: datetime) -> str | None:
        if signal.trade_date != ny_date(now):
            return f"signal is for {signal.trade_date}, today in New York is {ny_date(now)}"
        if now - claimed_at > self.max_age:
            age, limit = (int(d.total_seconds() // 60) for d in (now - claimed_at, self.max_age))
            return f"signal was claimed {age} min ago (limit {limit} min)"
        return None

    def _drop_stale(self, signal: Signal, reason: str) -> DispatchSummary:
        existing = self.store.get(C.DISPATCHES, signal.id)
        if existing is not None and existing.get("status") == "DISPATCHED":
            # A late redelivery of a signal dispatched in time: nothing to do.
            return DispatchSummary(signal.id, "DISPATCHED", _outcomes(existing))
        now = self.clock.now()
        summary = DispatchSummary(signal.id, "STALE", ())
        log.warning(
            "dropped stale signal %s: %s", signal.id, reason, extra={"signal_id": signal.id}
        )
        self.store.create(C.DISPATCHES, signal.id, {**_summary_doc(summary, now), "reason": reason})
        self.alerts.raise_alert(
            Alert.new(
                AlertType.SIGNAL_STALE,
                f"Signal {signal.describe()} arrived too late to trade: {reason}. "
                "No orders were sent.",
                at=now,
                dedup_key=signal.id,
                source=SOURCE,
            )
        )
        return summary


def _summary_doc(summary: DispatchSummary, now: datetime) -> dict[str, Any]:
    return {
        "signal_id": summary.signal_id,
        "status": summary.status,
        "updated_at": now,
        "followers": {
            o.follower_id: {
                "status": o.status,
                "order_ref": o.order_ref,
                "quantity": o.quantity,
                "reason": o.reason,
            }
            for o in summary.outcomes
        },
    }


def _outcomes(doc: dict[str, Any]) -> tuple[FollowerOutcome, ...]:
    return tuple(
        FollowerOutcome(
            fid, v["status"], v.get("order_ref"), v.get("quantity", 0), v.get("reason", "")
        )
        for fid, v in sorted(doc.get("followers", {}).items())
    )
