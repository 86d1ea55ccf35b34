"""The Store contract, run against SqliteStore and FirestoreStore (emulator).

Both adapters must give the same answers, with Firestore's semantics as the
reference: what the services see in embedded mode is what they see on GCP.
"""

from __future__ import annotations

import multiprocessing
import queue
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.adapters.gcp.firestore_store import FirestoreStore
from spreadpilot.ports.store import (
    EXPIRE_AT,
    AlreadyExists,
    Conflict,
    Filter,
    NotFound,
    Store,
    StoreError,
    Transaction,
)
from tests.contract.store.conftest import StoreSpec, create_worker, increment_worker
from tests.support.firestore_emulator import ENV_VAR, FirestoreEmulator

T0 = datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=UTC)
NEW_YORK = timezone(timedelta(hours=-5))


def ids(snapshots: list[Any]) -> list[str]:
    return [s.id for s in snapshots]


def assert_plain_utc(value: Any) -> None:
    assert type(value) is datetime, type(value)  # not a subclass (DatetimeWithNanoseconds)
    assert value.tzinfo is UTC


# --- get / set / create / update / delete ------------------------------------


def test_get_missing_is_none(store: Store) -> None:
    assert store.get("things", "nope") is None


def test_set_creates_then_replaces_whole_document(store: Store) -> None:
    store.set("things", "a", {"x": 1, "y": "keep?"})
    assert store.get("things", "a") == {"x": 1, "y": "keep?"}
    store.set("things", "a", {"x": 2})
    assert store.get("things", "a") == {"x": 2}


def test_collections_are_separate(store: Store) -> None:
    store.set("one", "same", {"v": 1})
    store.set("two", "same", {"v": 2})
    assert store.get("one", "same") == {"v": 1}
    assert store.get("two", "same") == {"v": 2}


def test_create_is_true_exactly_once_and_keeps_the_first(store: Store) -> None:
    assert store.create("claims", "k1", {"holder": "first"}) is True
    assert store.create("claims", "k1", {"holder": "second"}) is False
    assert store.get("claims", "k1") == {"holder": "first"}


def test_update_merges_top_level_fields(store: Store) -> None:
    store.set("things", "a", {"x": 1, "nested": {"p": 1, "q": 2}, "keep": True})
    store.update("things", "a", {"x": 2, "nested": {"p": 9}, "new": "yes"})
    # top-level merge: "nested" is replaced as a whole, not deep-merged
    assert store.get("things", "a") == {"x": 2, "nested": {"p": 9}, "keep": True, "new": "yes"}


def test_update_field_names_are_literal_not_paths(store: Store) -> None:
    store.set("things", "a", {"m": {"n": 1}})
    store.update("things", "a", {"m.n": 2})
    assert store.get("things", "a") == {"m": {"n": 1}, "m.n": 2}


def test_update_missing_raises_not_found_and_creates_nothing(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update("things", "ghost", {"x": 1})
    assert store.get("things", "ghost") is None
    assert issubclass(NotFound, StoreError)


def test_update_with_no_fields_is_rejected(store: Store) -> None:
    store.set("things", "a", {"x": 1})
    with pytest.raises(ValueError, match="at least one field"):
        store.update("things", "a", {})


def test_delete_is_idempotent(store: Store) -> None:
    store.set("things", "a", {"x": 1})
    store.delete("things", "a")
    assert store.get("things", "a") is None
    store.delete("things", "a")  # deleting a missing document is fine
    assert store.create("things", "a", {"x": 2}) is True


def test_returned_documents_are_copies(store: Store) -> None:
    items = [1, 2]
    store.set("things", "a", {"list": items, "map": {"k": "v"}})
    items.append(3)
    got = store.get("things", "a")
    assert got == {"list": [1, 2], "map": {"k": "v"}}
    assert got is not None
    got["map"]["k"] = "changed"
    assert store.get("things", "a") == {"list": [1, 2], "map": {"k": "v"}}


@pytest.mark.parametrize(
    ("collection", "doc_id"),
    [("things", "a/b"), ("things", ""), ("a/b", "x"), ("things", ".."), ("things", "__x__")],
)
def test_invalid_paths_are_rejected(store: Store, collection: str, doc_id: str) -> None:
    with pytest.raises(ValueError):
        store.set(collection, doc_id, {"x": 1})


# --- value types ---------------------------------------------------------------


def test_types_round_trip_exactly(store: Store) -> None:
    doc: dict[str, Any] = {
        "none": None,
        "true": True,
        "false": False,
        "zero": 0,
        "int": -42,
        "big": 2**62,
        "float_whole": 1.0,
        "float": 0.1,
        "huge": 1e300,
        "empty": "",
        "unicode": "€ — naïve 日本語 🚀",
        "at": T0,
        "at_ny": datetime(2026, 11, 24, 9, 30, tzinfo=NEW_YORK),
        "list": [1, 2.5, "three", None, True, T0, {"in": "list"}],
        "empty_list": [],
        "empty_map": {},
        "map": {"deep": {"deeper": [{"at": T0}]}},
        "$dt": "a user field that looks like the embedded store's tag",
        "tagged": {"$dt": "not a datetime"},
        "price": "488.05",  # money travels as str
    }
    store.set("types", "doc", doc)
    got = store.get("types", "doc")
    assert got is not None

    expected = dict(doc, at_ny=datetime(2026, 11, 24, 14, 30, tzinfo=UTC))
    assert got == expected
    for key in ("zero", "int", "big"):
        assert type(got[key]) is int, key
    for key in ("float_whole", "float", "huge"):
        assert type(got[key]) is float, key
    assert got["true"] is True and got["false"] is False
    assert type(got["list"][0]) is int and type(got["list"][1]) is float
    assert got["list"][4] is True
    for value in (got["at"], got["at_ny"], got["list"][5], got["map"]["deep"]["deeper"][0]["at"]):
        assert_plain_utc(value)
    assert got["at"].microsecond == 123456
    assert got["tagged"] == {"$dt": "not a datetime"}


@pytest.mark.parametrize(
    ("doc", "error", "names"),
    [
        ({"price": Decimal("1.5")}, TypeError, "price"),
        ({"at": datetime(2026, 11, 24, 9, 30)}, TypeError, "at"),  # naive
        ({"m": {"deep": [1, datetime(2026, 1, 1)]}}, TypeError, "m.deep[1]"),
        ({"tags": {"a", "b"}}, TypeError, "tags"),
        ({"pair": (1, 2)}, TypeError, "pair"),
        ({"blob": b"bytes"}, TypeError, "blob"),
        ({"grid": [[1, 2]]}, TypeError, "grid[0]"),
        ({"n": 2**64}, ValueError, "n"),
        ({"": 1}, ValueError, "''"),
        ({"__name__": 1}, ValueError, "__name__"),
    ],
)
def test_unstorable_values_are_rejected_naming_the_field(
    store: Store, doc: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=re.escape(names)):
        store.set("types", "bad", doc)
    with pytest.raises(error):
        store.create("types", "bad", doc)
    assert store.get("types", "bad") is None
    store.set("types", "good", {"ok": 1})
    with pytest.raises(error):
        store.update("types", "good", doc)
    assert store.get("types", "good") == {"ok": 1}


# --- queries -------------------------------------------------------------------

MIXED: dict[str, dict[str, Any]] = {
    "a": {"x": 1},
    "b": {"x": 2.5},
    "c": {"x": 3},
    "d": {"x": None},
    "e": {"y": 1},  # no x at all
    "f": {"x": "2"},
    "g": {"x": True},
    "h": {"x": 2},
}


@pytest.fixture
def mixed(store: Store) -> Store:
    for doc_id, data in MIXED.items():
        store.set("mixed", doc_id, data)
    return store


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        # == compares numbers as numbers, but never bool with int or str with number
        ("==", 2, ["h"]),
        ("==", 1.0, ["a"]),
        ("==", 2.5, ["b"]),
        ("==", True, ["g"]),
        ("==", "2", ["f"]),
        ("==", None, ["d"]),
        # != skips missing fields and nulls; results come ordered by the field
        # (Firestore's implicit order: bool < numbers < strings, then id)
        ("!=", 2, ["g", "a", "b", "c", "f"]),
        ("!=", None, ["g", "a", "h", "b", "c", "f"]),
        # ranges stay inside the value's type class, ordered by the field
        ("<", 3, ["a", "h", "b"]),
        ("<=", 2.5, ["a", "h", "b"]),
        (">", 1, ["h", "b", "c"]),
        (">=", 2, ["h", "b", "c"]),
        (">", "1", ["f"]),
        ("<", True, []),
        # in: any of the values, ordered by id
        ("in", [1, "2", 3], ["a", "c", "f"]),
        ("in", [2.0, False], ["h"]),
    ],
)
def test_query_operators(mixed: Store, op: Any, value: Any, expected: list[str]) -> None:
    assert ids(mixed.query("mixed", [Filter("x", op, value)])) == expected


def test_query_returns_data_and_orders_by_id_by_default(mixed: Store) -> None:
    result = mixed.query("mixed")
    assert ids(result) == sorted(MIXED)
    assert {s.id: s.data for s in result} == MIXED


def test_query_combines_filters(store: Store) -> None:
    for i in range(6):
        store.set("orders", f"o{i}", {"follower": "alice" if i % 2 else "bruno", "qty": i})
    result = store.query("orders", [Filter("follower", "==", "alice"), Filter("qty", ">", 1)])
    assert ids(result) == ["o3", "o5"]
    assert [s.data["qty"] for s in result] == [3, 5]


@pytest.fixture
def ranked(store: Store) -> Store:
    rows = {"r1": 3, "r2": 1, "r3": 2, "r4": 2, "r5": 5}
    for doc_id, rank in rows.items():
        store.set("ranked", doc_id, {"rank": rank, "meta": {"score": -rank}})
    store.set("ranked", "r0-unranked", {"other": 1})
    return store


def test_order_by_ascending_descending_and_limit(ranked: Store) -> None:
    # ties are broken by document id, in the same direction
    assert ids(ranked.query("ranked", order_by="rank")) == ["r2", "r3", "r4", "r1", "r5"]
    assert ids(ranked.query("ranked", order_by="rank", descending=True)) == [
        "r5",
        "r1",
        "r4",
        "r3",
        "r2",
    ]
    assert ids(ranked.query("ranked", order_by="rank", limit=2)) == ["r2", "r3"]
    assert ids(ranked.query("ranked", order_by="rank", descending=True, limit=1)) == ["r5"]
    assert len(ranked.query("ranked", limit=3)) == 3


def test_order_by_skips_documents_without_the_field(ranked: Store) -> None:
    assert "r0-unranked" not in ids(ranked.query("ranked", order_by="rank"))
    assert "r0-unranked" in ids(ranked.query("ranked"))


def test_dotted_paths_filter_and_order_nested_fields(ranked: Store) -> None:
    assert ids(ranked.query("ranked", [Filter("meta.score", "<=", -3)])) == ["r5", "r1"]
    assert ids(ranked.query("ranked", order_by="meta.score", limit=2)) == ["r5", "r1"]


def test_filter_on_one_field_ordered_by_another(ranked: Store) -> None:
    result = ranked.query("ranked", [Filter("rank", ">=", 2)], order_by="meta.score")
    assert ids(result) == ["r5", "r1", "r3", "r4"]  # score -5, -3, -2, -2 (then by rank, id)


def test_datetimes_compare_by_instant_not_by_text(store: Store) -> None:
    # Local times with different offsets: text order differs from time order.
    times = {
        "early": datetime(2026, 11, 24, 9, 0, tzinfo=NEW_YORK),  # 14:00Z
        "mid": datetime(2026, 11, 24, 15, 30, tzinfo=timezone(timedelta(hours=1))),  # 14:30Z
        "late": datetime(2026, 11, 24, 14, 45, tzinfo=UTC),
        "latest": datetime(2026, 11, 24, 10, 0, tzinfo=NEW_YORK),  # 15:00Z
    }
    for doc_id, at in times.items():
        store.set("events", doc_id, {"at": at})
    store.set("events", "text", {"at": "2026-11-24T23:59:59+00:00"})  # a str, not a time

    assert ids(store.query("events", order_by="at")) == ["early", "mid", "late", "latest", "text"]
    assert ids(store.query("events", order_by="at", descending=True, limit=2)) == [
        "text",
        "latest",
    ]
    after = store.query("events", [Filter("at", ">", datetime(2026, 11, 24, 14, 15, tzinfo=UTC))])
    assert ids(after) == ["mid", "late", "latest"]
    same_instant = datetime(2026, 11, 24, 9, 30, tzinfo=NEW_YORK)
    assert ids(store.query("events", [Filter("at", "==", same_instant)])) == ["mid"]
    for snapshot in after:
        assert_plain_utc(snapshot.data["at"])


@pytest.mark.parametrize(
    ("filters", "kwargs"),
    [
        ([Filter("x", "in", [])], {}),
        ([Filter("x", "in", [None])], {}),
        ([Filter("x", "in", 3)], {}),
        ([Filter("x", "in", list(range(31)))], {}),
        ([Filter("x", "<", None)], {}),
        ([Filter("x", "=~", 1)], {}),  # type: ignore[arg-type]
        ([Filter("x y", "==", 1)], {}),
        ([Filter("x", "==", Decimal(1))], {}),
        ([], {"descending": True}),
        ([], {"order_by": "x", "limit": 0}),
    ],
)
def test_invalid_queries_are_rejected(
    mixed: Store, filters: list[Filter], kwargs: dict[str, Any]
) -> None:
    with pytest.raises((ValueError, TypeError)):
        mixed.query("mixed", filters, **kwargs)


# --- transactions --------------------------------------------------------------


def test_transaction_commits_all_writes_and_returns_fn_result(store: Store) -> None:
    store.set("acct", "src", {"cash": 100})
    store.set("acct", "dst", {"cash": 0})
    store.set("acct", "old", {"gone": "soon"})

    def move(txn: Transaction) -> str:
        src, dst = txn.get("acct", "src"), txn.get("acct", "dst")
        assert src is not None and dst is not None
        txn.update("acct", "src", {"cash": src["cash"] - 30})
        txn.set("acct", "dst", {"cash": dst["cash"] + 30, "at": T0})
        txn.create("acct", "log-1", {"moved": 30})
        txn.delete("acct", "old")
        return "moved"

    assert store.transaction(move) == "moved"
    assert store.get("acct", "src") == {"cash": 70}
    assert store.get("acct", "dst") == {"cash": 30, "at": T0}
    assert store.get("acct", "log-1") == {"moved": 30}
    assert store.get("acct", "old") is None


def test_transaction_writes_apply_in_order(store: Store) -> None:
    def steps(txn: Transaction) -> None:
        txn.set("seq", "a", {"v": 1, "w": 1})
        txn.update("seq", "a", {"v": 2})
        txn.set("seq", "b", {"v": 1})
        txn.delete("seq", "b")

    store.transaction(steps)
    assert store.get("seq", "a") == {"v": 2, "w": 1}
    assert store.get("seq", "b") is None


def test_transaction_is_all_or_nothing_when_fn_raises(store: Store) -> None:
    store.set("acct", "src", {"cash": 100})

    class Boom(Exception):
        pass

    def half(txn: Transaction) -> None:
        src = txn.get("acct", "src")
        assert src is not None
        txn.update("acct", "src", {"cash": 0})
        txn.set("acct", "dst", {"cash": 100})
        raise Boom

    with pytest.raises(Boom):  # fn's own exception comes out unchanged
        store.transaction(half)
    assert store.get("acct", "src") == {"cash": 100}
    assert store.get("acct", "dst") is None


def test_uncommitted_writes_are_invisible_to_others(store: Store, other_store: Store) -> None:
    store.set("acct", "a", {"v": 1})
    seen: list[Any] = []

    def change(txn: Transaction) -> None:
        first = txn.get("acct", "a")
        again = txn.get("acct", "a")  # the transaction's snapshot is stable
        assert first == again == {"v": 1}
        txn.set("acct", "a", {"v": 2})
        txn.create("acct", "b", {"v": 3})
        seen.append((other_store.get("acct", "a"), other_store.get("acct", "b")))

    store.transaction(change)
    assert seen == [({"v": 1}, None)]
    assert other_store.get("acct", "a") == {"v": 2}
    assert other_store.get("acct", "b") == {"v": 3}


def test_reads_after_writes_are_refused(store: Store) -> None:
    def bad(txn: Transaction) -> None:
        txn.set("acct", "a", {"v": 1})
        txn.get("acct", "a")

    with pytest.raises(ValueError, match="before"):
        store.transaction(bad)
    assert store.get("acct", "a") is None


def test_create_in_transaction_on_existing_fails_the_whole_commit(store: Store) -> None:
    store.set("claims", "k", {"holder": "first"})
    calls = 0

    def claim(txn: Transaction) -> None:
        nonlocal calls
        calls += 1
        txn.set("claims", "side-effect", {"done": True})
        txn.create("claims", "k", {"holder": "second"})

    with pytest.raises(AlreadyExists):
        store.transaction(claim)
    assert calls == 1  # not retried: it would fail the same way
    assert store.get("claims", "k") == {"holder": "first"}
    assert store.get("claims", "side-effect") is None


def test_update_in_transaction_on_missing_fails_the_whole_commit(store: Store) -> None:
    def touch(txn: Transaction) -> None:
        txn.set("acct", "side-effect", {"done": True})
        txn.update("acct", "ghost", {"v": 1})

    with pytest.raises(NotFound):
        store.transaction(touch)
    assert store.get("acct", "side-effect") is None
    assert store.get("acct", "ghost") is None


def test_transaction_rejects_unstorable_values(store: Store) -> None:
    def bad(txn: Transaction) -> None:
        txn.set("acct", "ok", {"v": 1})
        txn.set("acct", "bad", {"price": Decimal("1.5")})

    with pytest.raises(TypeError, match="price"):
        store.transaction(bad)
    assert store.get("acct", "ok") is None


def test_claim_pattern_read_then_create_if_absent(store: Store) -> None:
    def acquire(txn: Transaction) -> bool:
        if txn.get("claims", "order-1") is not None:
            return False
        txn.create("claims", "order-1", {"status": "IN_PROGRESS", EXPIRE_AT: T0})
        return True

    assert store.transaction(acquire) is True
    assert store.transaction(acquire) is False
    assert store.get("claims", "order-1") == {"status": "IN_PROGRESS", EXPIRE_AT: T0}


def test_threads_sharing_one_store_lose_no_increment(store: Store) -> None:
    threads, increments = 3, 4
    store.set("counters", "shared", {"n": 0})
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def add_one(txn: Transaction) -> None:
        doc = txn.get("counters", "shared")
        assert doc is not None
        txn.set("counters", "shared", {"n": doc["n"] + 1})

    def work() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(increments):
                store.transaction(add_one, max_attempts=50)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=90)
    assert not errors
    assert store.get("counters", "shared") == {"n": threads * increments}


# --- real OS processes -----------------------------------------------------------


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[Any]:
    """Start one spawned process per args tuple (plus a shared barrier and result
    queue), and return what each reported; fail with the child's traceback."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    results = ctx.Queue()
    processes = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args]
    for process in processes:
        process.start()
    try:
        reports = []
        for _ in processes:
            try:
                reports.append(results.get(timeout=120))
            except queue.Empty:
                codes = [p.exitcode for p in processes]
                pytest.fail(f"a child process did not report (exit codes {codes})")
        for process in processes:
            process.join(timeout=30)
        errors = [detail for status, detail in reports if status != "ok"]
        assert not errors, "\n".join(errors)
        assert [p.exitcode for p in processes] == [0] * len(processes)
        return [detail for _, detail in reports]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.slow
def test_processes_racing_transactions_lose_no_increment(store: Store, spec: StoreSpec) -> None:
    # The emulator settles each lock collision by a 2 s timeout, so Firestore
    # gets fewer increments per process to stay quick; the race is the same.
    processes, increments = (4, 25) if spec.kind == "sqlite" else (4, 10)
    store.set("counters", "shared", {"n": 0})
    calls = run_processes(increment_worker, [(spec, increments)] * processes)
    assert store.get("counters", "shared") == {"n": processes * increments}
    assert sum(calls) >= processes * increments


@pytest.mark.slow
def test_processes_racing_create_have_exactly_one_winner(store: Store, spec: StoreSpec) -> None:
    outcomes = run_processes(create_worker, [(spec, me) for me in range(8)])
    winners = [me for me, won in outcomes if won]
    assert len(winners) == 1
    assert store.get("races", "the-one") == {"winner": winners[0]}


# --- adapter-specific --------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def test_sqlite_purge_expired_deletes_only_documents_past_expiry(
    sqlite_store: SqliteStore,
) -> None:
    now = T0
    docs: dict[tuple[str, str], dict[str, Any]] = {
        ("claims", "expired"): {EXPIRE_AT: now - timedelta(minutes=1)},
        ("claims", "expired-ny"): {EXPIRE_AT: datetime(2026, 11, 24, 9, 29, tzinfo=NEW_YORK)},
        ("claims", "exactly-now"): {EXPIRE_AT: now},
        ("claims", "later"): {EXPIRE_AT: now + timedelta(seconds=1)},
        ("claims", "no-expiry"): {"x": 1},
        ("claims", "not-a-time"): {EXPIRE_AT: "2000-01-01T00:00:00+00:00"},
        ("orders", "expired"): {EXPIRE_AT: now - timedelta(days=1)},
        ("kept", "expired"): {EXPIRE_AT: now - timedelta(days=1)},  # not asked for
    }
    for (collection, doc_id), data in docs.items():
        sqlite_store.set(collection, doc_id, data)
    sqlite_store.update("claims", "later", {EXPIRE_AT: now - timedelta(seconds=1)})
    sqlite_store.set("claims", "renewed", {EXPIRE_AT: now - timedelta(days=1)})
    sqlite_store.set("claims", "renewed", {EXPIRE_AT: now + timedelta(days=1)})

    assert sqlite_store.purge_expired(["claims", "orders"], now) == 4
    remaining = {(c, s.id) for c in ("claims", "orders", "kept") for s in sqlite_store.query(c)}
    assert remaining == {
        ("claims", "exactly-now"),
        ("claims", "no-expiry"),
        ("claims", "not-a-time"),
        ("claims", "renewed"),
        ("kept", "expired"),
    }
    assert sqlite_store.purge_expired(["claims", "orders"], now) == 0
    with pytest.raises(TypeError):
        sqlite_store.purge_expired(["claims"], datetime(2026, 11, 24, 14, 30))


def test_sqlite_uses_wal(sqlite_store: SqliteStore) -> None:
    sqlite_store.set("things", "a", {"x": 1})
    raw = sqlite3.connect(sqlite_store.path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_sqlite_gives_up_with_conflict_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.db", busy_timeout=0.05, write_attempts=2)
    store.set("things", "a", {"x": 1})
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    calls = 0

    def fn(txn: Transaction) -> None:
        nonlocal calls
        calls += 1

    try:
        with pytest.raises(Conflict):
            store.transaction(fn, max_attempts=2)
        with pytest.raises(StoreError):
            store.set("things", "a", {"x": 2})
        assert calls == 0
        assert store.get("things", "a") == {"x": 1}  # WAL: readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.transaction(fn)
    assert calls == 1
    store.close()


def test_sqlite_refuses_direct_writes_inside_a_transaction(sqlite_store: SqliteStore) -> None:
    def sneaky(txn: Transaction) -> None:
        sqlite_store.set("things", "a", {"x": 1})

    with pytest.raises(RuntimeError, match="Transaction object"):
        sqlite_store.transaction(sneaky)
    assert sqlite_store.get("things", "a") is None


@pytest.fixture
def firestore_store(firestore_emulator: FirestoreEmulator) -> FirestoreStore:
    firestore_emulator.reset()
    return FirestoreStore.from_project(firestore_emulator.project)


@pytest.mark.emulator
def test_firestore_purge_expired_leaves_it_to_ttl(firestore_store: FirestoreStore) -> None:
    store = firestore_store
    store.set("claims", "expired", {EXPIRE_AT: T0 - timedelta(days=1)})
    assert store.purge_expired(["claims"], T0) == 0
    assert store.get("claims", "expired") is not None


@pytest.mark.timeout(60)
def test_firestore_unreachable_server_fails_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused connection surfaces as StoreError after `timeout`, not after the
    client's default retry deadline (60-300 s); pytest-timeout guards the bound."""
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(ENV_VAR, f"127.0.0.1:{sock.getsockname()[1]}")
        store = FirestoreStore.from_project("unreachable", timeout=0.3)
        calls: list[Callable[[], object]] = [
            lambda: store.get("things", "a"),
            lambda: store.set("things", "a", {"x": 1}),
            lambda: store.create("things", "a", {"x": 1}),
            lambda: store.update("things", "a", {"x": 1}),
            lambda: store.delete("things", "a"),
            lambda: store.query("things", [Filter("x", "==", 1)]),
            lambda: store.transaction(lambda txn: txn.get("things", "a")),
        ]
        for call in calls:
            with pytest.raises(StoreError) as caught:
                call()
            assert not isinstance(caught.value, Conflict | NotFound | AlreadyExists)


@pytest.mark.emulator
def test_firestore_contention_past_max_attempts_raises_conflict(
    firestore_store: FirestoreStore,
) -> None:
    """Two transactions that both read before either writes deadlock on their
    locks; Firestore aborts one (or both) and with one attempt each that
    surfaces as Conflict, while whatever did commit is intact."""
    store = firestore_store
    store.set("counters", "shared", {"n": 0})
    both_read = threading.Barrier(2)
    outcomes: list[str] = []

    def add_one(txn: Transaction) -> None:
        doc = txn.get("counters", "shared")
        assert doc is not None
        both_read.wait(timeout=10)
        txn.set("counters", "shared", {"n": doc["n"] + 1})

    def work() -> None:
        try:
            store.transaction(add_one, max_attempts=1)
            outcomes.append("committed")
        except Conflict:
            outcomes.append("conflict")

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(outcomes) in (["committed", "conflict"], ["conflict", "conflict"])
    assert store.get("counters", "shared") == {"n": outcomes.count("committed")}
