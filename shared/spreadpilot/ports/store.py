"""Document store port: the subset of Firestore the services rely on.

Values stored are JSON-like: None, bool, int, float, str, aware datetime,
lists and dicts of those. Money is never stored as float: models serialise
Decimal to str before it reaches the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

Document = dict[str, Any]
T = TypeVar("T")

#: Comparison operators a query may use; the same set Firestore supports natively.
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in"]

#: Field holding a document's expiry time. Firestore's TTL policy is declared on
#: this field; the embedded store purges on it. Claims use their own lease field.
EXPIRE_AT = "expire_at"


@dataclass(frozen=True)
class Filter:
    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Snapshot:
    id: str
    data: Document


class StoreError(Exception):
    """A store operation failed in a way the caller may retry."""


class NotFound(StoreError):
    """update() on a document that does not exist."""


class Conflict(StoreError):
    """A transaction kept colliding with concurrent writers and gave up."""


class Transaction(Protocol):
    """Reads see a consistent snapshot; writes apply atomically on commit.

    As in Firestore, every read must happen before the first write.
    """

    def get(self, collection: str, doc_id: str) -> Document | None: ...

    def set(self, collection: str, doc_id: str, data: Document) -> None: ...

    def create(self, collection: str, doc_id: str, data: Document) -> None:
        """Fails the commit (raises AlreadyExists) if the document exists."""
        ...

    def update(self, collection: str, doc_id: str, fields: Document) -> None: ...

    def delete(self, collection: str, doc_id: str) -> None: ...


class AlreadyExists(StoreError):
    """create() on a document that already exists."""


class Store(Protocol):
    def get(self, collection: str, doc_id: str) -> Document | None: ...

    def set(self, collection: str, doc_id: str, data: Document) -> None:
        """Create or replace the whole document."""
        ...

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        """Create-if-absent. True if this call created it, False if it existed."""
        ...

    def update(self, collection: str, doc_id: str, fields: Document) -> None:
        """Merge top-level fields into an existing document; NotFound if absent."""
        ...

    def delete(self, collection: str, doc_id: str) -> None:
        """Delete if present; deleting a missing document is not an error."""
        ...

    def query(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Snapshot]: ...

    def transaction(self, fn: Callable[[Transaction], T], max_attempts: int = 5) -> T:
        """Run fn in a transaction, re-running it on contention (fn must be pure
        apart from its transaction calls). Raises Conflict after max_attempts."""
        ...

    def purge_expired(self, collections: Iterable[str], now: datetime) -> int:
        """Delete documents whose EXPIRE_AT is before now; returns how many.
        Firestore does this itself through TTL policies (and returns 0 here)."""
        ...
