"""The operator's billing commands: which commissions are due, and recording a
payment. The monthly rows are billing records: a payment is recorded on the row
(reference, time) and never removed; recording the same payment twice is a no-op."""

from __future__ import annotations

from typing import Any

from spreadpilot.platform import collections as C
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Filter, Store, Transaction


class BillingError(ValueError):
    """A payment that cannot be recorded as asked; the message says why and what to do."""


def commissions(
    store: Store, *, month: str | None = None, payable: bool = False, unpaid: bool = False
) -> list[dict[str, Any]]:
    filters = [Filter("month", "==", month)] if month else []
    rows = [s.data for s in store.query(C.PNL_MONTHLY, filters)]
    if payable:
        rows = [r for r in rows if r["is_payable"]]
    if unpaid:
        rows = [r for r in rows if r["is_payable"] and not r.get("paid")]
    return sorted(rows, key=lambda r: (r["month"], r["follower_id"]))


def mark_paid(store: Store, clock: Clock, follower_id: str, month: str, reference: str) -> bool:
    """Record a payment. True if recorded now, False if this reference already was."""
    reference = reference.strip()
    if not reference:
        raise BillingError("--reference is required: the bank transfer's reference")
    doc_id = f"{follower_id}_{month}"

    def pay(txn: Transaction) -> bool:
        row = txn.get(C.PNL_MONTHLY, doc_id)
        if row is None:
            raise BillingError(
                f"no commission row for {follower_id} {month}: check the follower id and "
                "the month (YYYY-MM), or run `spreadpilot report --month` first"
            )
        if not row.get("complete"):
            raise BillingError(f"{month} is not over yet: its commission is not final")
        if not row["is_payable"]:
            raise BillingError(f"{follower_id} owes no commission for {month} (P&L not positive)")
        if row.get("paid"):
            if row.get("paid_reference") == reference:
                return False
            raise BillingError(
                f"{follower_id} {month} is already paid (reference "
                f"{row.get('paid_reference')!r}); a different reference is refused"
            )
        txn.update(
            C.PNL_MONTHLY,
            doc_id,
            {"paid": True, "paid_reference": reference, "paid_at": clock.now()},
        )
        return True

    return store.transaction(pay)
