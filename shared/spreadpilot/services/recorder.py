"""The recorder: folds execution reports into one document per orderRef.

Idempotent and order-insensitive: reports are keyed by report_id (a redelivery
is a no-op), leg fills by IB's exec id (the same execution reported twice
counts once), and the summary is recomputed from the whole history, so a late
or out-of-order report can never leave a wrong state behind.

Documents are raw trade logs, kept 365 days from the order's first report
(domain.md section 6): `expire_at` drives Firestore's TTL policy (Terraform's
ttl_collections follow collections.EXPIRES) and the embedded store's purge.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spreadpilot.domain.execution import TERMINAL, ExecutionEvent, ExecutionReport
from spreadpilot.platform import collections as C
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import EXPIRE_AT, Store, Transaction

#: How long an order's document is kept after its first report (raw trade logs).
RETENTION = timedelta(days=365)


class Recorder:
    def __init__(self, store: Store, clock: Clock, retention: timedelta = RETENTION) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention

    def record(self, report: ExecutionReport) -> bool:
        """True if this report was new; False for a redelivery."""
        doc_id = report.order_ref

        def fold(txn: Transaction) -> bool:
            doc = txn.get(C.EXECUTIONS, doc_id)
            events: list[dict[str, Any]] = list(doc["events"]) if doc else []
            if any(e["report_id"] == report.report_id for e in events):
                return False
            events.append(report.model_dump(mode="json"))
            events.sort(key=_event_order)
            summary = _summary(events, self.clock.now().isoformat(), self.retention)
            txn.set(C.EXECUTIONS, doc_id, summary)
            return True

        return self.store.transaction(fold)


#: Within one timestamp (a step and its fill can share a second of the clock) the
#: agent's emission order decides; reports without it (a previous holder's, or
#: older ones) fall back to the lifecycle: claim, placement, steps, fills, the end.
_RANK = {
    ExecutionEvent.CLAIMED: 0,
    ExecutionEvent.PLACED: 1,
    ExecutionEvent.MODIFIED: 2,
    ExecutionEvent.PARTIAL: 3,
    ExecutionEvent.UNKNOWN: 4,
}


def _event_order(e: dict[str, Any]) -> tuple[datetime, int, int, str]:
    # parsed, not compared as text: "…:50.2Z" sorts before "…:50Z" as a string
    at = datetime.fromisoformat(e["at"])
    rank = e.get("seq") or 100 + _RANK.get(ExecutionEvent(e["event"]), 5)
    return (at, rank, e.get("filled", 0), e["report_id"])


def _summary(events: list[dict[str, Any]], now: str, retention: timedelta) -> dict[str, Any]:
    """The document: identity from the reports, state from the latest decisive event."""
    first, last = events[0], events[-1]
    fills: dict[str, dict[str, Any]] = {}
    for e in events:
        for leg in e["fills"]:
            fills.setdefault(leg["exec_id"], leg)
    terminal = [e for e in events if ExecutionEvent(e["event"]) in TERMINAL]
    state = terminal[-1] if terminal else last
    commission = sum(
        (Decimal(f["commission"]) for f in fills.values() if f["commission"]), Decimal(0)
    )
    placed = next((e["at"] for e in events if e["event"] == ExecutionEvent.PLACED), None)
    filled_at = next((e["at"] for e in events if e["event"] == ExecutionEvent.FILLED), None)
    return {
        "order_ref": first["order_ref"],
        "follower_id": first["follower_id"],
        "account": first["account"],
        "gateway_id": first["gateway_id"],
        "signal_id": first["signal_id"],
        "state": state["event"],
        "quantity": max(e["quantity"] for e in events),
        "filled": max(e["filled"] for e in events),
        "avg_fill_credit": next(
            (e["avg_fill_credit"] for e in reversed(events) if e["avg_fill_credit"] is not None),
            None,
        ),
        "last_credit": next(
            (e["credit"] for e in reversed(events) if e["credit"] is not None), None
        ),
        "ladder_steps": max((e["ladder_step"] or 0 for e in events), default=0),
        "commission": str(commission),
        "fills": sorted(fills.values(), key=lambda f: (f["time"], f["exec_id"])),
        "perm_id": next((e["perm_id"] for e in events if e["perm_id"]), None),
        "outcome": state.get("outcome") or "",
        "reason": state["reason"],
        "ib_code": state["ib_code"],
        "placed_at": placed,
        "filled_at": filled_at,
        "first_report_at": first["at"],
        "updated_at": now,
        # a timestamp (not text): Firestore's TTL reads only timestamp fields
        EXPIRE_AT: datetime.fromisoformat(first["at"]) + retention,
        "events": events,
    }
