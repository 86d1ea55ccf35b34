"""Fixtures for the store contract: the same tests against SqliteStore and FirestoreStore.

SqliteStore runs on a fresh temp file per test; FirestoreStore on one
Firestore emulator per session, wiped (reset) before each test. A StoreSpec is
the picklable recipe a spawned child process uses to open the same store.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.ports.store import Store, Transaction
from tests.support.firestore_emulator import (
    ENV_VAR,
    FirestoreEmulator,
    emulator_environment,
    unavailable_reason,
)


@dataclass(frozen=True)
class StoreSpec:
    """What a process (this one or a spawned child) needs to open the store under test."""

    kind: str  # "sqlite" | "firestore"
    target: str  # the SQLite file, or the Firestore project

    def open(self) -> Store:
        if self.kind == "sqlite":
            return SqliteStore(Path(self.target))
        if not os.environ.get(ENV_VAR):  # never reach for the real Firestore from a test
            raise RuntimeError(f"{ENV_VAR} is not set in this process")
        from spreadpilot.adapters.gcp.firestore_store import FirestoreStore

        return FirestoreStore.from_project(self.target, timeout=10.0)


def close(store: Store) -> None:
    if isinstance(store, SqliteStore):
        store.close()


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with FirestoreEmulator() as emulator, emulator_environment(emulator.host):
        yield emulator


@pytest.fixture(
    params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)],
)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "store.db"))
    emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
    emulator.reset()
    return StoreSpec("firestore", emulator.project)


@pytest.fixture
def store(spec: StoreSpec) -> Iterator[Store]:
    opened = spec.open()
    yield opened
    close(opened)


@pytest.fixture
def other_store(spec: StoreSpec) -> Iterator[Store]:
    """A second, independent store on the same data (its own connection/client)."""
    opened = spec.open()
    yield opened
    close(opened)


# --- work for spawned child processes (module level so spawn can import it) ---


def _report(results: Queue[Any], body: Callable[[], Any]) -> None:
    try:
        results.put(("ok", body()))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise


def increment_worker(
    spec: StoreSpec, increments: int, barrier: Barrier, results: Queue[Any]
) -> None:
    """Add 1 to counters/shared `increments` times, each in its own transaction."""

    def body() -> int:
        store = spec.open()
        calls = 0

        def add_one(txn: Transaction) -> None:
            nonlocal calls
            calls += 1
            doc = txn.get("counters", "shared")
            txn.set("counters", "shared", {"n": (doc["n"] if doc else 0) + 1})

        barrier.wait(timeout=60)
        for _ in range(increments):
            # The emulator resolves lock contention by 2 s timeouts, so 4 busy
            # processes need more attempts than a production default would.
            store.transaction(add_one, max_attempts=50)
        close(store)
        return calls

    _report(results, body)


def create_worker(spec: StoreSpec, me: int, barrier: Barrier, results: Queue[Any]) -> None:
    """Race everybody else to create races/the-one; report whether this call won."""

    def body() -> tuple[int, bool]:
        store = spec.open()
        barrier.wait(timeout=60)
        won = store.create("races", "the-one", {"winner": me})
        close(store)
        return me, won

    _report(results, body)
