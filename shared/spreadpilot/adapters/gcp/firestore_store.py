"""The document store on Cloud Firestore (or its emulator).

Why it looks like this:

* Every RPC carries both a timeout and a retry whose deadline is that same
  timeout. A timeout alone is not enough: the client's default retry keeps
  retrying an unreachable server for 60-300 s whatever timeout is passed.
* The client's own transaction helper begins, commits and rolls back with no
  timeout at all, so transactions are driven here, through a Transaction
  subclass whose begin/commit/rollback carry the timeout.
* create() is never retried by the transport: a retried create whose first
  attempt landed would report "already existed" for our own document.
* Aborted transactions are re-run after a jittered, growing pause (see
  _pause): without it, rivals in the emulator abort each other in lockstep.
* Inputs go through the same checks as the embedded store, so both accept and
  reject exactly the same documents and queries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.transaction import Transaction as _ClientTransaction

from spreadpilot.adapters.embedded.sqlite_store import (
    check_aware,
    check_document,
    check_path,
    check_query,
)
from spreadpilot.ports.store import (
    AlreadyExists,
    Conflict,
    Document,
    Filter,
    NotFound,
    Snapshot,
    StoreError,
    Transaction,
)

T = TypeVar("T")

#: Server-side hiccups worth retrying within one call's deadline.
_TRANSIENT = (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.ResourceExhausted)


def _plain(value: Any) -> Any:
    """Firestore returns DatetimeWithNanoseconds; callers get plain aware UTC datetimes."""
    if isinstance(value, datetime):
        v = value.astimezone(UTC)
        return datetime(
            v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC
        )
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _update_paths(fields: Document) -> Document:
    """update() merges top-level fields: quote names so 'a.b' is not a nested path."""
    check_document(fields)
    if not fields:
        raise ValueError("update() needs at least one field")
    return {FieldPath(name).to_api_repr(): value for name, value in fields.items()}


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn google.api_core errors into the port's StoreError family."""
    try:
        yield
    except gexc.AlreadyExists as exc:
        raise AlreadyExists(f"{what}: {exc.message}") from exc
    except gexc.NotFound as exc:
        raise NotFound(f"{what}: {exc.message}") from exc
    except gexc.Aborted as exc:
        raise Conflict(f"{what}: {exc.message}") from exc
    except gexc.GoogleAPIError as exc:  # includes RetryError (deadline spent on retries)
        raise StoreError(f"{what}: {exc}") from exc


class _TimedTransaction(_ClientTransaction):
    """The client's Transaction with a deadline on begin, commit and rollback."""

    def __init__(self, client: firestore.Client, timeout: float) -> None:
        super().__init__(client)
        self._timeout = timeout

    def _call(self, name: str, request: dict[str, Any]) -> Any:
        method = getattr(self._client._firestore_api, name)
        return method(
            request={"database": self._client._database_string, **request},
            metadata=self._client._rpc_metadata,
            retry=None,  # whole attempts are retried by FirestoreStore.transaction
            timeout=self._timeout,
        )

    def _begin(self, retry_id: bytes | None = None) -> None:
        self._id = self._call(
            "begin_transaction", {"options": self._options_protobuf(retry_id)}
        ).transaction

    def _rollback(self) -> None:
        try:
            self._call("rollback", {"transaction": self._id})
        finally:
            self._clean_up()

    def _commit(self) -> list[Any]:
        response = self._call("commit", {"writes": self._write_pbs, "transaction": self._id})
        self._clean_up()
        self.write_results = list(response.write_results)
        self.commit_time = response.commit_time
        return self.write_results


class FirestoreTransaction:
    """The port's Transaction over one attempt of a Firestore transaction."""

    def __init__(self, store: FirestoreStore, txn: _TimedTransaction) -> None:
        self._store = store
        self._txn = txn
        self._wrote = False

    def get(self, collection: str, doc_id: str) -> Document | None:
        if self._wrote:
            raise ValueError("transaction reads must come before its writes (as in Firestore)")
        ref = self._store._ref(collection, doc_id)
        with _mapped(f"get {collection}/{doc_id} in transaction"):
            snaps = list(
                self._txn.get(ref, retry=self._store._txn_retry, timeout=self._store.timeout)
            )
        if not snaps or not snaps[0].exists:
            return None
        data: Document = _plain(snaps[0].to_dict())
        return data

    def set(self, collection: str, doc_id: str, data: Document) -> None:
        check_document(data)
        self._txn.set(self._store._ref(collection, doc_id), data)
        self._wrote = True

    def create(self, collection: str, doc_id: str, data: Document) -> None:
        check_document(data)
        self._txn.create(self._store._ref(collection, doc_id), data)
        self._wrote = True

    def update(self, collection: str, doc_id: str, fields: Document) -> None:
        self._txn.update(self._store._ref(collection, doc_id), _update_paths(fields))
        self._wrote = True

    def delete(self, collection: str, doc_id: str) -> None:
        self._txn.delete(self._store._ref(collection, doc_id))
        self._wrote = True


class FirestoreStore:
    """Store on Firestore; every call is bounded by ``timeout`` seconds."""

    def __init__(self, client: firestore.Client, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout
        # Plain calls also retry ABORTED: a write to a document some transaction
        # holds is aborted when its lock wait times out (2 s in the emulator),
        # and get/set/update/delete are safe to repeat. Reads inside a
        # transaction must not: an aborted transaction is re-run as a whole.
        self._retry = self._deadline(gexc.Aborted, *_TRANSIENT)
        self._txn_retry = self._deadline(*_TRANSIENT)

    @classmethod
    def from_project(
        cls, project: str, database: str = "(default)", timeout: float = 10.0
    ) -> FirestoreStore:
        """A store on a new client. Honours FIRESTORE_EMULATOR_HOST (no credentials then)."""
        return cls(firestore.Client(project=project, database=database), timeout)

    def _deadline(self, *errors: type[Exception]) -> retries.Retry:
        """Retry these errors with backoff, but never past this store's timeout."""
        return retries.Retry(
            predicate=retries.if_exception_type(*errors),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=self.timeout,
        )

    def _ref(self, collection: str, doc_id: str) -> DocumentReference:
        check_path(collection, doc_id)
        return self.client.collection(collection).document(doc_id)

    def get(self, collection: str, doc_id: str) -> Document | None:
        ref = self._ref(collection, doc_id)
        with _mapped(f"get {collection}/{doc_id}"):
            snap = ref.get(retry=self._retry, timeout=self.timeout)
        if not snap.exists:
            return None
        data: Document = _plain(snap.to_dict())
        return data

    def set(self, collection: str, doc_id: str, data: Document) -> None:
        ref = self._ref(collection, doc_id)
        check_document(data)
        with _mapped(f"set {collection}/{doc_id}"):
            ref.set(data, retry=self._retry, timeout=self.timeout)

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        ref = self._ref(collection, doc_id)
        check_document(data)
        try:
            with _mapped(f"create {collection}/{doc_id}"):
                ref.create(data, retry=None, timeout=self.timeout)
        except AlreadyExists:
            return False
        return True

    def update(self, collection: str, doc_id: str, fields: Document) -> None:
        ref = self._ref(collection, doc_id)
        paths = _update_paths(fields)
        with _mapped(f"update {collection}/{doc_id}"):
            ref.update(paths, retry=self._retry, timeout=self.timeout)

    def delete(self, collection: str, doc_id: str) -> None:
        ref = self._ref(collection, doc_id)
        with _mapped(f"delete {collection}/{doc_id}"):
            ref.delete(retry=self._retry, timeout=self.timeout)

    def query(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Snapshot]:
        check_path(collection)
        check_query(filters, order_by, descending, limit)
        q: Any = self.client.collection(collection)
        for f in filters:
            q = q.where(filter=FieldFilter(f.field, f.op, f.value))
        if order_by is not None:
            direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
            q = q.order_by(order_by, direction=direction)
        if limit is not None:
            q = q.limit(limit)
        with _mapped(f"query {collection}"):
            return [
                Snapshot(snap.id, _plain(snap.to_dict()))
                for snap in q.stream(retry=self._retry, timeout=self.timeout)
            ]

    def transaction(self, fn: Callable[[Transaction], T], max_attempts: int = 5) -> T:
        """Run fn in a Firestore transaction; ABORTED (contention) re-runs it
        with the first attempt's id (keeping its place in the lock queue)
        after a jittered pause. A commit that times out is not re-run: it may
        have landed, and fn is not idempotent in general."""
        txn = _TimedTransaction(self.client, self.timeout)
        retry_id: bytes | None = None
        last: Exception | None = None
        for attempt in range(max_attempts):
            txn._clean_up()
            with _mapped("begin transaction"):
                txn._begin(retry_id=retry_id)
            retry_id = retry_id or txn._id
            try:
                result = fn(FirestoreTransaction(self, txn))
            except BaseException as exc:
                self._abandon(txn)
                if isinstance(exc, Conflict) and isinstance(exc.__cause__, gexc.Aborted):
                    last = exc  # a read lost a lock race: retry like a failed commit
                    _pause(attempt, max_attempts)
                    continue
                raise
            try:
                with _mapped("commit transaction"):
                    txn._commit()
                return result
            except Conflict as exc:  # ABORTED: someone else won; run fn again
                last = exc
                _pause(attempt, max_attempts)
            except BaseException:
                txn._clean_up()  # a failed commit ends the transaction on the server
                raise
        raise Conflict(f"transaction gave up after {max_attempts} attempts: {last}") from last

    @staticmethod
    def _abandon(txn: _TimedTransaction) -> None:
        """Best-effort rollback to release the locks fn's reads took."""
        if txn.in_progress:  # on failure the server drops it anyway when it expires
            with suppress(gexc.GoogleAPIError):
                txn._rollback()

    def purge_expired(self, collections: Iterable[str], now: datetime) -> int:
        """Firestore's TTL policy on EXPIRE_AT deletes expired documents itself."""
        check_aware(now)
        return 0


def _pause(attempt: int, attempts: int) -> None:
    """Full-jitter exponential backoff (0-0.5 s, 0-1 s, then 0-2 s). Aborted
    rivals must not restart in lockstep: the emulator breaks lock-upgrade
    deadlocks only by a 2 s lock timeout that aborts them all, so with short
    pauses they collide again at once (measured: 4 processes x 25 increments
    took 117 s with 0-20 ms pauses, 9-20 s with these)."""
    if attempt + 1 < attempts:  # no point waiting before giving up
        time.sleep(random.uniform(0, min(2.0, 0.5 * 2**attempt)))  # noqa: S311 - jitter
