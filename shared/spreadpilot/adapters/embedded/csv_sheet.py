"""The embedded-mode signal sheet: a local CSV file with the live sheet's columns.

It answers like the Sheets API does (FORMATTED_VALUE text, trailing empty cells
and trailing empty rows dropped) so the same domain parser reads both. Files
come from people's spreadsheet programs, hence the tolerance:
- delimiter ';' (Italian Excel/LibreOffice exports, since ',' is the decimal
  mark), ',' or tab, chosen from the header line;
- UTF-8 with or without BOM; a file that is not UTF-8 is read as Windows-1252,
  what Italian Excel writes for "CSV (delimitato dal separatore di elenco)".
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from spreadpilot.ports.signal_source import SignalSourceError

_DELIMITERS = (";", ",", "\t")


def detect_delimiter(text: str) -> str:
    """The delimiter used most on the first non-empty line (the header).

    Header names hold no ';' or ',', so their count there is unambiguous,
    unlike data lines where ',' is the Italian decimal mark.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: _count_outside_quotes(first, d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_csv_rows(text: str) -> list[list[str]]:
    """Rows as the Sheets API would return them: ragged, no trailing empties."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text))
    rows: list[list[str]] = []
    for row in reader:
        while row and not row[-1].strip():
            row.pop()
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


class CsvSignalSource:
    """SignalSource over a local CSV file (SPREADPILOT_SHEET_CSV), re-read on every call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read_rows(self) -> list[list[str]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise SignalSourceError(
                f"signal sheet CSV {str(self.path)!r} does not exist; create it with the header "
                "Data;Ticker;Strategia;Quantità per Leg;Buy Put;Sell Put;Sell Call;Buy Call "
                "or point SPREADPILOT_SHEET_CSV at the right file"
            ) from None
        except IsADirectoryError:
            raise SignalSourceError(
                f"signal sheet CSV {str(self.path)!r} is a directory; point "
                "SPREADPILOT_SHEET_CSV at the CSV file"
            ) from None
        except OSError as exc:
            raise SignalSourceError(
                f"cannot read signal sheet CSV {str(self.path)!r} ({exc.strerror or exc}); "
                "check the file's permissions or SPREADPILOT_SHEET_CSV"
            ) from exc
        try:
            return parse_csv_rows(decode(raw))
        except csv.Error as exc:
            raise SignalSourceError(
                f"signal sheet CSV {str(self.path)!r} is not a readable CSV ({exc})"
            ) from exc
