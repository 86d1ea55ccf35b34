"""The portable export round-trips a store: every document, every value type, exactly.

SQLite -> file -> a fresh SQLite, and Firestore (emulator) -> file -> SQLite,
the disaster-recovery path from the cloud to a laptop."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.export import (
    ExportFormatError,
    export_store,
    import_store,
    known_collections,
    main,
)
from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store
from tests.support.firestore_emulator import (
    FirestoreEmulator,
    emulator_environment,
    unavailable_reason,
)

AT = datetime(2026, 11, 24, 14, 27, 3, 123456, tzinfo=UTC)
DOCUMENTS = {
    (C.SIGNALS, "2026-11-24_QQQ"): {
        "status": "DONE",
        "claimed_at": AT,
        "spread": {"short": "488", "long": "486", "qty": 2},
        "ratio": 1.0,
        "count": 1,
        "flags": [True, None, "x"],
        "$weird": {"$dt": "not a date"},
    },
    (C.FOLLOWERS, "alice"): {"name": "Alice", "enabled": True, "multiplier": "2", "max": 3},
    (C.CLAIMS, "publish-order:SP-1"): {"holder": "h", "expire_at": AT, "history": [AT, AT]},
}


def seed(store: Store) -> None:
    for (collection, doc_id), data in DOCUMENTS.items():
        store.set(collection, doc_id, data)


def contents(store: Store) -> dict[tuple[str, str], dict[str, object]]:
    return {(c, s.id): s.data for c in known_collections() for s in store.query(c)}


def round_trip(source: Store, target: Store) -> None:
    buffer = io.StringIO()
    assert export_store(source, known_collections(), buffer) == len(DOCUMENTS)
    buffer.seek(0)
    restored = import_store(target, buffer)
    assert (restored.written, restored.kept) == (len(DOCUMENTS), 0)


def test_sqlite_round_trip_keeps_every_value_and_type(tmp_path: Path) -> None:
    source, target = SqliteStore(tmp_path / "a.db"), SqliteStore(tmp_path / "b.db")
    seed(source)
    round_trip(source, target)
    assert contents(target) == DOCUMENTS
    claimed = target.get(C.SIGNALS, "2026-11-24_QQQ") or {}
    assert claimed["claimed_at"] == AT and claimed["claimed_at"].tzinfo is not None
    assert type(claimed["ratio"]) is float and type(claimed["count"]) is int


def test_restore_keeps_present_documents_unless_told_to_replace(tmp_path: Path) -> None:
    source, target = SqliteStore(tmp_path / "a.db"), SqliteStore(tmp_path / "b.db")
    seed(source)
    target.set(C.FOLLOWERS, "alice", {"name": "Alice (edited after the backup)"})
    buffer = io.StringIO()
    export_store(source, known_collections(), buffer)
    buffer.seek(0)
    assert import_store(target, buffer).kept == 1
    assert (target.get(C.FOLLOWERS, "alice") or {})["name"] == "Alice (edited after the backup)"
    buffer.seek(0)
    assert import_store(target, buffer, replace=True).written == len(DOCUMENTS)
    assert target.get(C.FOLLOWERS, "alice") == DOCUMENTS[(C.FOLLOWERS, "alice")]


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"format": "other", "version": 1}\n', "line 1: not a spreadpilot-export"),
        (
            '{"format": "spreadpilot-export", "version": 1, "collections": []}\nnot json\n',
            "line 2: not JSON",
        ),
        (
            '{"format": "spreadpilot-export", "version": 1, "collections": []}\n{"id": "x"}\n',
            "line 2: needs",
        ),
    ],
)
def test_a_damaged_file_is_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    target = SqliteStore(tmp_path / "b.db")
    with pytest.raises(ExportFormatError, match=message):
        import_store(target, io.StringIO(text))


def test_the_command_dumps_and_loads_the_configured_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spreadpilot.platform.settings import settings

    source_dir, target_dir, file = tmp_path / "src", tmp_path / "dst", tmp_path / "backup.jsonl"
    source_dir.mkdir()
    seed(SqliteStore(source_dir / "store.db"))
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(source_dir))
    settings.cache_clear()
    assert main(["dump", str(file)]) == 0
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(target_dir))
    settings.cache_clear()
    assert main(["load", str(file)]) == 0
    settings.cache_clear()
    assert contents(SqliteStore(target_dir / "store.db")) == DOCUMENTS
    assert "restored 3 documents" in capsys.readouterr().out


@pytest.fixture(scope="module")
def firestore() -> Iterator[Store]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from spreadpilot.adapters.gcp.firestore_store import FirestoreStore

    with FirestoreEmulator(project="export-test") as emulator, emulator_environment(emulator.host):
        yield FirestoreStore.from_project(emulator.project, timeout=10.0)


@pytest.mark.emulator
def test_firestore_exports_into_an_embedded_store(firestore: Store, tmp_path: Path) -> None:
    seed(firestore)
    target = SqliteStore(tmp_path / "laptop.db")
    round_trip(firestore, target)
    assert contents(target) == DOCUMENTS
