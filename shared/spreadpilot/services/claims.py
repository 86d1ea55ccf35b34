"""Claims: the idempotency guard around every side effect.

A claim is a create-if-absent record per business key: IN_PROGRESS while one
holder performs the side effect, DONE after. A holder that crashed leaves an
IN_PROGRESS record whose lease expires; the next caller takes it over and
redoes the (idempotent downstream) step. DONE is final: it is never redone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import EXPIRE_AT, Store, Transaction

CLAIMS = "claims"


class ClaimStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class ClaimLost(RuntimeError):
    """The lease expired and another holder took the claim over."""


@dataclass(frozen=True)
class ClaimResult:
    acquired: bool
    status: ClaimStatus
    holder: str
    attempt: int
    result: dict[str, Any] | None = None
    taken_over: bool = False

    @property
    def done(self) -> bool:
        return self.status is ClaimStatus.DONE


def claim_doc_id(key: str) -> str:
    """Firestore ids may not contain '/'; keys are business keys, never paths."""
    if not key or "/" in key or key in {".", ".."} or len(key.encode()) > 1000:
        raise ValueError(f"claim key {key!r} must be 1-1000 bytes without '/'")
    return key


class Claims:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        lease: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.store = store
        self.clock = clock
        self.lease = lease
        self.retention = retention

    def acquire(self, key: str, holder: str) -> ClaimResult:
        doc_id = claim_doc_id(key)
        now = self.clock.now()

        def attempt(txn: Transaction) -> ClaimResult:
            doc = txn.get(CLAIMS, doc_id)
            if doc is None:
                txn.create(CLAIMS, doc_id, self._record(key, holder, now, attempt=1))
                return ClaimResult(True, ClaimStatus.IN_PROGRESS, holder, 1)
            status = ClaimStatus(doc["status"])
            if status is ClaimStatus.DONE:
                return ClaimResult(False, status, doc["holder"], doc["attempt"], doc.get("result"))
            if doc["holder"] == holder:
                if doc["lease_expires_at"] <= now:
                    # released or lapsed: the same holder starts a new attempt (its
                    # reports and logs must tell the two runs apart)
                    n = int(doc["attempt"]) + 1
                    txn.update(CLAIMS, doc_id, {"lease_expires_at": now + self.lease, "attempt": n})
                    return ClaimResult(True, status, holder, n)
                txn.update(CLAIMS, doc_id, {"lease_expires_at": now + self.lease})
                return ClaimResult(True, status, holder, doc["attempt"])
            if doc["lease_expires_at"] <= now:
                n = int(doc["attempt"]) + 1
                txn.set(CLAIMS, doc_id, self._record(key, holder, now, attempt=n, prev=doc))
                return ClaimResult(True, status, holder, n, taken_over=True)
            return ClaimResult(False, status, doc["holder"], doc["attempt"])

        return self.store.transaction(attempt)

    def complete(self, key: str, holder: str, result: dict[str, Any] | None = None) -> None:
        doc_id = claim_doc_id(key)
        now = self.clock.now()

        def attempt(txn: Transaction) -> None:
            doc = txn.get(CLAIMS, doc_id)
            if doc is None or doc["holder"] != holder:
                owner = doc["holder"] if doc else "nobody"
                raise ClaimLost(f"claim {key} is held by {owner}, not {holder}")
            if doc["status"] == ClaimStatus.DONE:
                return
            txn.update(
                CLAIMS, doc_id, {"status": ClaimStatus.DONE.value, "done_at": now, "result": result}
            )

        self.store.transaction(attempt)

    def release(self, key: str, holder: str) -> None:
        """Give up an IN_PROGRESS claim after a failure so a retry need not wait for the lease."""
        doc_id = claim_doc_id(key)

        def attempt(txn: Transaction) -> None:
            doc = txn.get(CLAIMS, doc_id)
            if doc and doc["holder"] == holder and doc["status"] == ClaimStatus.IN_PROGRESS:
                txn.update(CLAIMS, doc_id, {"lease_expires_at": self.clock.now()})

        self.store.transaction(attempt)

    def reopen(self, key: str, by: str) -> bool:
        """Let a DONE claim be taken again (the operator's re-send of an order that never
        reached IB). The next acquirer takes it over as a new attempt, so its reports
        are told apart from the first run's. False if there is nothing to reopen (no
        claim yet, or one still IN_PROGRESS: its holder is working on it)."""
        doc_id = claim_doc_id(key)
        now = self.clock.now()

        def attempt(txn: Transaction) -> bool:
            doc = txn.get(CLAIMS, doc_id)
            if doc is None or doc["status"] != ClaimStatus.DONE:
                return False
            txn.update(
                CLAIMS,
                doc_id,
                {
                    "status": ClaimStatus.IN_PROGRESS.value,
                    "holder": f"reopened-by:{by}",
                    "lease_expires_at": now,
                    "reopened_at": now,
                    "previous_result": doc.get("result"),
                },
            )
            return True

        return self.store.transaction(attempt)

    def _record(
        self,
        key: str,
        holder: str,
        now: datetime,
        *,
        attempt: int,
        prev: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "key": key,
            "status": ClaimStatus.IN_PROGRESS.value,
            "holder": holder,
            "attempt": attempt,
            "claimed_at": now,
            "lease_expires_at": now + self.lease,
            EXPIRE_AT: now + self.retention,
        }
        if prev is not None:
            record["previous_holder"] = prev["holder"]
        return record
