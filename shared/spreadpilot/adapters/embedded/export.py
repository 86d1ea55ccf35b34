"""A portable export of any Store (SQLite or Firestore): JSON Lines, one document a line.

The daily 02:00 UTC backup in Google Cloud is Firestore's managed export
(Terraform's `firestore-export` job), restored with `gcloud firestore import`.
This format is the portable path beside it: Firestore -> file -> a laptop's
embedded store (to inspect or replay a day), or file -> a new project's
Firestore. Values keep their types exactly (datetimes are tagged as in the
SQLite store). Restoring never overwrites a document unless told to.

    python -m spreadpilot.adapters.embedded.export dump FILE   # the configured store -> FILE
    python -m spreadpilot.adapters.embedded.export load FILE [--replace]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from spreadpilot.adapters.embedded.sqlite_store import _dumps, _loads
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store

FORMAT = "spreadpilot-export"
VERSION = 1


class ExportFormatError(ValueError):
    """The file is not a spreadpilot export this version can read; names the line."""


@dataclass(frozen=True)
class Restored:
    written: int
    kept: int  #: documents already present and left as they were (replace=False)


def known_collections() -> list[str]:
    """Every collection named in spreadpilot.platform.collections."""
    return sorted({v for k, v in vars(C).items() if k.isupper() and isinstance(v, str)})


def export_store(store: Store, collections: Iterable[str], out: TextIO) -> int:
    """Write every document of `collections` to `out`; returns how many."""
    names = sorted(set(collections))
    out.write(_dumps({"format": FORMAT, "version": VERSION, "collections": names}) + "\n")
    count = 0
    for collection in names:
        for snap in sorted(store.query(collection), key=lambda s: s.id):
            out.write(_dumps({"collection": collection, "id": snap.id, "data": snap.data}) + "\n")
            count += 1
    return count


def import_store(store: Store, source: TextIO, *, replace: bool = False) -> Restored:
    """Write the export's documents into `store`. Present documents are kept
    unless `replace`; the header must name this format and version."""
    header = _line(source.readline(), 1)
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ExportFormatError(
            f"line 1: not a {FORMAT} version {VERSION} file (header {header!r})"
        )
    written = kept = 0
    for number, text in enumerate(source, start=2):
        if not text.strip():
            continue
        record = _line(text, number)
        collection, doc_id, data = record.get("collection"), record.get("id"), record.get("data")
        if not isinstance(collection, str) or not isinstance(doc_id, str):
            raise ExportFormatError(f"line {number}: needs string 'collection' and 'id'")
        if not isinstance(data, dict):
            raise ExportFormatError(f"line {number}: 'data' must be an object")
        if replace:
            store.set(collection, doc_id, data)
        elif not store.create(collection, doc_id, data):
            kept += 1
            continue
        written += 1
    return Restored(written, kept)


def _line(text: str, number: int) -> dict[str, object]:
    try:
        record = _loads(text)
    except ValueError as exc:
        raise ExportFormatError(f"line {number}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ExportFormatError(f"line {number}: expected a JSON object")
    return record


def main(argv: list[str] | None = None) -> int:
    from spreadpilot.platform.settings import settings
    from spreadpilot.platform.wiring import Container

    parser = argparse.ArgumentParser(prog="python -m spreadpilot.adapters.embedded.export")
    parser.add_argument("action", choices=["dump", "load"])
    parser.add_argument("file")
    parser.add_argument("--replace", action="store_true", help="load: overwrite present documents")
    args = parser.parse_args(argv)
    store = Container(settings()).store
    if args.action == "dump":
        with open(args.file, "w", encoding="utf-8") as out:
            count = export_store(store, known_collections(), out)
        print(f"exported {count} documents to {args.file}")  # noqa: T201
        return 0
    with open(args.file, encoding="utf-8") as source:
        result = import_store(store, source, replace=args.replace)
    print(f"restored {result.written} documents, kept {result.kept} present ones")  # noqa: T201
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
