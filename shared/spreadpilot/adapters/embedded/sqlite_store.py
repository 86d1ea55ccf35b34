"""The document store on one SQLite file, shared by several processes and threads.

Why it looks like this:

* WAL mode lets readers run while one writer writes; every write takes the
  write lock up front (``BEGIN IMMEDIATE``) so two writers never deadlock
  upgrading read locks, and a busy database is waited for (busy_timeout) and
  then retried, never silently skipped.
* A connection per thread (and per process: a forked child opens its own),
  because sqlite3 connections must not be shared across threads mid-statement.
* Documents are JSON with datetimes tagged as fixed-width UTC ISO strings, so
  every storable type round-trips exactly (int stays int, 1.0 stays float).
* Queries filter and order in Python with Firestore's rules (type classes,
  missing fields, null handling, implicit ordering): the embedded store must
  answer exactly what Firestore would, and collections here are small.
* The validation helpers below are shared with the Firestore adapter so both
  reject the same inputs before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

from spreadpilot.ports.store import (
    EXPIRE_AT,
    AlreadyExists,
    Conflict,
    Document,
    Filter,
    NotFound,
    Op,
    Snapshot,
    StoreError,
    Transaction,
)

T = TypeVar("T")

_OPS = frozenset(get_args(Op))
_RANGE_OPS = frozenset({"<", "<=", ">", ">="})
_INEQUALITY_OPS = _RANGE_OPS | {"!="}
_INT64 = (-(2**63), 2**63 - 1)
_MAX_IN = 30  # Firestore's limit on the values of an "in" filter
_FIELD_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = re.compile(r"__.*__")
_DT_TAG = "$dt"


# --- validation shared by both adapters ------------------------------------


def check_path(collection: str, doc_id: str | None = None) -> None:
    """Reject names Firestore rejects, so the embedded store cannot accept them."""
    for kind, name in (("collection", collection), ("document id", doc_id)):
        if name is None:
            continue
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid {kind} {name!r}: non-empty, no '/', not '.' or '..'")
        if _RESERVED.fullmatch(name):
            raise ValueError(f"invalid {kind} {name!r}: names like __x__ are reserved")


def check_document(data: Mapping[str, Any], where: str = "") -> None:
    """Raise TypeError/ValueError naming the field if data is not storable."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where or 'document'}: expected a dict, not {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"field name {key!r} in {where or 'document'}: not a non-empty str")
        if _RESERVED.fullmatch(key):
            raise ValueError(f"field name {key!r}: names like __x__ are reserved by Firestore")
        _check_value(value, f"{where}.{key}" if where else key)


def _check_value(value: Any, field: str, in_list: bool = False) -> None:
    if value is None or isinstance(value, bool | float | str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"field {field!r}: int {value} does not fit in 64 bits")
    elif isinstance(value, datetime):
        if value.utcoffset() is None:
            raise TypeError(f"field {field!r}: naive datetime {value!r}; use an aware one")
    elif isinstance(value, list):
        if in_list:
            raise TypeError(f"field {field!r}: a list directly inside a list is not storable")
        for i, item in enumerate(value):
            _check_value(item, f"{field}[{i}]", in_list=True)
    elif isinstance(value, dict):
        check_document(value, field)
    else:
        raise TypeError(
            f"field {field!r}: {type(value).__name__} is not storable (use None, bool, int, "
            "float, str, aware datetime, list or dict; money as str)"
        )


def check_field_path(path: str) -> None:
    """Query paths are dotted identifiers, which both stores read the same way."""
    if not isinstance(path, str) or not all(
        _FIELD_SEGMENT.fullmatch(part) for part in path.split(".")
    ):
        raise ValueError(f"field path {path!r}: dotted identifiers only (e.g. 'a.b_c')")


def check_query(
    filters: Sequence[Filter], order_by: str | None, descending: bool, limit: int | None
) -> None:
    for f in filters:
        check_field_path(f.field)
        if f.op not in _OPS:
            raise ValueError(f"filter on {f.field!r}: unknown op {f.op!r}")
        if f.op == "in":
            if not isinstance(f.value, list) or not 0 < len(f.value) <= _MAX_IN:
                raise ValueError(f"filter on {f.field!r}: 'in' needs a list of 1..{_MAX_IN} values")
            if any(v is None for v in f.value):
                raise ValueError(f"filter on {f.field!r}: 'in' cannot match None; use '=='")
            _check_value(f.value, f.field)
        else:
            _check_value(f.value, f.field)
        if f.op in _RANGE_OPS and (
            f.value is None or (isinstance(f.value, float) and math.isnan(f.value))
        ):
            raise ValueError(f"filter on {f.field!r}: {f.op!r} cannot compare with None/NaN")
    if order_by is not None:
        check_field_path(order_by)
    elif descending:
        raise ValueError("descending=True needs order_by")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int, not {limit!r}")


def check_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise TypeError(f"expected an aware datetime, got {now!r}")


# --- encoding ----------------------------------------------------------------


def _utc_text(value: datetime) -> str:
    """Fixed-width UTC ISO text: string order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _encode(value: Any) -> Any:
    """JSON-ready form. Datetimes become {"$dt": iso}; user keys starting with
    "$" get one more "$" so they can never be mistaken for the tag."""
    if isinstance(value, datetime):
        return {_DT_TAG: _utc_text(value)}
    if isinstance(value, dict):
        return {("$" + k if k.startswith("$") else k): _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode_object(obj: dict[str, Any]) -> Any:
    """json's object_hook (called per object, innermost first, in C's parse loop):
    undoes _encode without walking lists and scalars in Python (rollups read
    hundreds of thousands of documents)."""
    if _DT_TAG in obj and len(obj) == 1:
        return datetime.fromisoformat(obj[_DT_TAG])
    for k in obj:
        if k[:1] == "$":
            return {(k[1:] if k.startswith("$") else k): v for k, v in obj.items()}
    return obj


def _dumps(data: Document) -> str:
    return json.dumps(_encode(data), ensure_ascii=False, separators=(",", ":"))


def _loads(text: str) -> Document:
    data: Document = json.loads(text, object_hook=_decode_object)
    return data


def _expiry(data: Document) -> str | None:
    value = data.get(EXPIRE_AT)
    return _utc_text(value) if isinstance(value, datetime) else None


# --- Firestore's query semantics ---------------------------------------------

_MISSING = object()


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _key(value: Any) -> tuple[Any, ...]:
    """Firestore's total order: null < bool < NaN < numbers < timestamps <
    strings < arrays < maps; ints and floats compare as numbers."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, 0) if isinstance(value, float) and math.isnan(value) else (2, 1, value)
    if isinstance(value, datetime):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, list):
        return (5, tuple(_key(v) for v in value))
    return (6, tuple((k, _key(v)) for k, v in sorted(value.items())))


def _matches(data: Document, f: Filter) -> bool:
    value = _lookup(data, f.field)
    if value is _MISSING:
        return False
    key = _key(value)
    if f.op == "==":
        return key == _key(f.value)
    if f.op == "!=":  # Firestore's != never matches null
        return value is not None and key != _key(f.value)
    if f.op == "in":
        return any(key == _key(v) for v in f.value)
    target = _key(f.value)
    if key[0] != target[0] or key[:2] == (2, 0):  # other type class, or NaN
        return False
    if f.op == "<":
        return key < target
    if f.op == "<=":
        return key <= target
    if f.op == ">":
        return key > target
    return key >= target


_PLAIN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SQL_OPS = {"==": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _prefilter(filters: Sequence[Filter]) -> tuple[str, list[Any]]:
    """SQL conditions that narrow the scan before documents are decoded: equality on
    text and comparisons on datetimes (stored as fixed-width UTC text, so text order
    is time order). Only a superset is selected; `_select` applies every filter with
    Firestore's semantics afterwards (a range on a datetime matches datetimes only,
    as in Firestore, so nothing it would keep is left out)."""
    where, params = "", []
    for f in filters:
        op = _SQL_OPS.get(f.op)
        if op is None or not _PLAIN_PATH.fullmatch(f.field):
            continue
        if isinstance(f.value, datetime) and f.value.utcoffset() is not None:
            where += f" AND json_extract(data, '$.{f.field}.\"{_DT_TAG}\"') {op} ?"
            params.append(_utc_text(f.value))
        elif isinstance(f.value, str) and op == "=":
            where += f" AND json_extract(data, '$.{f.field}') = ?"
            params.append(f.value)
    return where, params


def _select(
    rows: Iterable[tuple[str, Document]],
    filters: Sequence[Filter],
    order_by: str | None,
    descending: bool,
    limit: int | None,
) -> list[Snapshot]:
    """Filter and order like Firestore: explicit order, then the inequality
    fields (alphabetically), then the document id, all in one direction;
    documents lacking an ordered field are left out."""
    fields = [order_by] if order_by else []
    fields += sorted({f.field for f in filters if f.op in _INEQUALITY_OPS} - set(fields))
    picked = []
    for doc_id, data in rows:
        if not all(_matches(data, f) for f in filters):
            continue
        values = [_lookup(data, field) for field in fields]
        if _MISSING not in values:
            picked.append((tuple(_key(v) for v in values), doc_id, data))
    picked.sort(key=lambda item: (item[0], item[1]), reverse=descending)
    return [Snapshot(doc_id, data) for _, doc_id, data in picked[:limit]]


# --- the store ---------------------------------------------------------------


def _is_busy(exc: sqlite3.Error) -> bool:
    primary = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # extended codes keep it in the low byte
    return primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _pause(attempt: int) -> None:
    """Jittered backoff so colliding writers do not collide again in lockstep."""
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # noqa: S311 - jitter, not crypto


class _Busy(Exception):
    """The write lock stayed taken for every attempt."""


#: Fields with an expression index (see _SCHEMA); an equality on one of them is
#: looked up through it (INDEXED BY: without ANALYZE statistics SQLite would scan
#: the collection by its primary key instead).
INDEXED_FIELDS = ("date", "month", "follower_id")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT NOT NULL,
        expire_at TEXT,  -- UTC ISO copy of data.expire_at, for purge_expired
        PRIMARY KEY (collection, id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS documents_expiry ON documents (collection, expire_at)
        WHERE expire_at IS NOT NULL""",
    # Firestore indexes every field; here the fields the services select whole
    # collections by (a day's fills and rows, a month's rows, one follower's rows)
    # get an expression index the prefilter's json_extract(...) = ? can use, so a
    # day of 10,000 followers is not found by scanning the year.
    *(
        f"""CREATE INDEX IF NOT EXISTS documents_{name} ON documents
            (collection, json_extract(data, '$.{name}'))"""
        for name in INDEXED_FIELDS
    ),
)


class SqliteStore:
    """Store on one SQLite file; safe for many processes and threads at once."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float = 5.0,
        write_attempts: int = 5,
        *,
        durable: bool = True,
    ) -> None:
        """`durable`: every commit is fsynced (survives power loss; for money). False
        syncs at checkpoints only: a commit survives a killed process, not a machine
        crash (demos, benches: several times fewer fsyncs)."""
        self.path = Path(path)
        self.durable = durable
        self.busy_timeout = busy_timeout
        self.write_attempts = write_attempts
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(_create_schema)

    # connections

    def _connection(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        pid = os.getpid()
        if held is not None and held[0] == pid:
            return held[1]
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot use WAL (journal_mode is {mode})")
            # money: a commit survives power loss (NORMAL: a process crash only)
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except BaseException:
            conn.close()
            raise
        self._local.conn = (pid, conn)
        with self._lock:
            self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def _immediate(self, body: Callable[[sqlite3.Connection], T], attempts: int) -> T:
        """Run body holding the write lock, committing at the end; retried while
        the database is busy, rolled back if body raises."""
        last: sqlite3.Error | None = None
        for attempt in range(attempts):
            try:
                conn = self._connection()
                if conn.in_transaction:
                    raise RuntimeError(
                        "store used directly inside transaction(); use the Transaction object"
                    )
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise StoreError(f"{self.path}: {exc}") from exc
                last = exc
                _pause(attempt)
        raise _Busy(f"{self.path}: still locked after {attempts} attempts") from last

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._immediate(body, self.write_attempts)
        except _Busy as exc:
            raise StoreError(str(exc)) from exc.__cause__

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    # Store

    def get(self, collection: str, doc_id: str) -> Document | None:
        check_path(collection, doc_id)
        rows = self._read(
            "SELECT data FROM documents WHERE collection = ? AND id = ?", (collection, doc_id)
        )
        return _loads(rows[0][0]) if rows else None

    def set(self, collection: str, doc_id: str, data: Document) -> None:
        check_path(collection, doc_id)
        row = _Row.of(data)
        self._write(lambda conn: row.put(conn, collection, doc_id))

    def create(self, collection: str, doc_id: str, data: Document) -> bool:
        check_path(collection, doc_id)
        row = _Row.of(data)
        return self._write(lambda conn: row.insert(conn, collection, doc_id))

    def update(self, collection: str, doc_id: str, fields: Document) -> None:
        check_path(collection, doc_id)
        row = _Row.of(fields, update=True)
        self._write(lambda conn: row.merge(conn, collection, doc_id))

    def delete(self, collection: str, doc_id: str) -> None:
        check_path(collection, doc_id)
        self._write(lambda conn: _remove(conn, collection, doc_id))

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
        where, params = _prefilter(filters)
        indexed = next(
            (
                f" INDEXED BY documents_{f.field}"
                for f in filters
                if f.op == "==" and f.field in INDEXED_FIELDS and isinstance(f.value, str)
            ),
            "",
        )
        rows = self._read(
            f"SELECT id, data FROM documents{indexed} WHERE collection = ?{where}",  # noqa: S608
            (collection, *params),
        )
        return _select(
            ((doc_id, _loads(text)) for doc_id, text in rows), filters, order_by, descending, limit
        )

    def transaction(self, fn: Callable[[Transaction], T], max_attempts: int = 5) -> T:
        """fn runs while this process holds the write lock, so its reads are a
        consistent snapshot nobody can change before its writes commit. Only
        acquiring the lock can collide; that is retried, then Conflict."""

        def body(conn: sqlite3.Connection) -> T:
            txn = SqliteTransaction(conn)
            result = fn(txn)
            txn._apply()
            return result

        try:
            return self._immediate(body, max_attempts)
        except _Busy as exc:
            raise Conflict(str(exc)) from exc.__cause__

    def purge_expired(self, collections: Iterable[str], now: datetime) -> int:
        check_aware(now)
        names = list(collections)
        for name in names:
            check_path(name)
        cutoff = _utc_text(now)

        def body(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    "DELETE FROM documents WHERE collection = ? AND expire_at < ?", (name, cutoff)
                ).rowcount
                for name in names
            )

        return self._write(body)


class SqliteTransaction:
    """Reads go to the locked connection; writes are encoded at once (later
    changes to the caller's dicts do not leak in) and applied in order at
    commit, so as in Firestore a failed create/update fails the whole commit."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._writes: list[Callable[[sqlite3.Connection], object]] = []

    def get(self, collection: str, doc_id: str) -> Document | None:
        check_path(collection, doc_id)
        if self._writes:
            raise ValueError("transaction reads must come before its writes (as in Firestore)")
        return _fetch(self._conn, collection, doc_id)

    def set(self, collection: str, doc_id: str, data: Document) -> None:
        check_path(collection, doc_id)
        row = _Row.of(data)
        self._writes.append(lambda conn: row.put(conn, collection, doc_id))

    def create(self, collection: str, doc_id: str, data: Document) -> None:
        check_path(collection, doc_id)
        row = _Row.of(data)

        def write(conn: sqlite3.Connection) -> None:
            if not row.insert(conn, collection, doc_id):
                raise AlreadyExists(f"{collection}/{doc_id} already exists")

        self._writes.append(write)

    def update(self, collection: str, doc_id: str, fields: Document) -> None:
        check_path(collection, doc_id)
        row = _Row.of(fields, update=True)
        self._writes.append(lambda conn: row.merge(conn, collection, doc_id))

    def delete(self, collection: str, doc_id: str) -> None:
        check_path(collection, doc_id)
        self._writes.append(lambda conn: _remove(conn, collection, doc_id))

    def _apply(self) -> None:
        for write in self._writes:
            write(self._conn)


# --- statements (run while holding the write lock) -----------------------------


def _create_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def _fetch(conn: sqlite3.Connection, collection: str, doc_id: str) -> Document | None:
    row = conn.execute(
        "SELECT data FROM documents WHERE collection = ? AND id = ?", (collection, doc_id)
    ).fetchone()
    return _loads(row[0]) if row else None


def _remove(conn: sqlite3.Connection, collection: str, doc_id: str) -> None:
    conn.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, doc_id))


@dataclass(frozen=True)
class _Row:
    """A validated, encoded document (or update) ready to be written."""

    text: str
    fields: Document

    @classmethod
    def of(cls, data: Document, update: bool = False) -> _Row:
        check_document(data)
        if update and not data:
            raise ValueError("update() needs at least one field")
        text = _dumps(data)
        return cls(text, _loads(text))

    def put(self, conn: sqlite3.Connection, collection: str, doc_id: str) -> None:
        conn.execute(
            "INSERT INTO documents (collection, id, data, expire_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, "
            "expire_at = excluded.expire_at",
            (collection, doc_id, self.text, _expiry(self.fields)),
        )

    def insert(self, conn: sqlite3.Connection, collection: str, doc_id: str) -> bool:
        cursor = conn.execute(
            "INSERT INTO documents (collection, id, data, expire_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, id) DO NOTHING",
            (collection, doc_id, self.text, _expiry(self.fields)),
        )
        return cursor.rowcount == 1

    def merge(self, conn: sqlite3.Connection, collection: str, doc_id: str) -> None:
        current = _fetch(conn, collection, doc_id)
        if current is None:
            raise NotFound(f"{collection}/{doc_id} does not exist")
        _Row.of({**current, **self.fields}).put(conn, collection, doc_id)
