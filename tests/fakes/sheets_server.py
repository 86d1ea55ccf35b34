"""A local Google Sheets API v4 server for tests: real HTTP on 127.0.0.1.

It serves the read paths a reader uses, the way the real API answers them:
- GET /v4/spreadsheets/{id}: metadata (properties, sheets[].properties);
- GET /v4/spreadsheets/{id}/values/{range} and .../values:batchGet: a
  ValueRange with majorDimension ROWS (or COLUMNS), trailing empty cells and
  trailing empty rows dropped, empty rows inside the range as [], the
  'values' key absent when the range is empty;
- valueRenderOption FORMATTED_VALUE (default: the text shown in the cell),
  UNFORMATTED_VALUE (numbers as JSON numbers, dates as serials unless
  dateTimeRenderOption=FORMATTED_STRING) and FORMULA;
- errors in Google's JSON shape: 404 unknown spreadsheet, 403 not shared,
  400 "Unable to parse range" for an unknown worksheet.

Cells are set as the user typed them: a str is a text cell (shown as is in
every render option), an int/float a number cell shown in the sheet's locale
(it_IT: decimal comma), a Cell gives both the shown text and the stored value
(Cell.date for a date typed into an Italian sheet). Requests are recorded;
`fail_next` makes the next N requests answer 429/500/403/... and `stall_next`
holds the next N requests until released (to exercise client timeouts).
The `fields` parameter is accepted and ignored (answers are a superset).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote

import gspread
from pytest_httpserver.httpserver import HTTPServerBase
from werkzeug import Request, Response

from tests.support.local_google import local_gspread_client

SHEET_EPOCH = date(1899, 12, 30)

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
    "minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:0'.",
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "Deadline exceeded.",
}


@dataclass(frozen=True)
class Cell:
    """A cell whose shown text differs from its stored value (numbers, dates, formulas)."""

    formatted: str
    value: str | int | float | bool
    formula: str | None = None
    is_date: bool = False

    @classmethod
    def number(cls, value: int | float, formatted: str) -> Cell:
        return cls(formatted, value)

    @classmethod
    def date(cls, day: date, formatted: str, fraction: float = 0.0) -> Cell:
        serial: int | float = (day - SHEET_EPOCH).days + fraction
        return cls(formatted, serial if fraction else int(serial), is_date=True)

    @classmethod
    def with_formula(cls, formula: str, value: str | int | float, formatted: str) -> Cell:
        return cls(formatted, value, formula=formula)


CellInput: TypeAlias = str | int | float | Cell | None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # decoded
    params: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass
class FakeWorksheet:
    title: str
    sheet_id: int
    rows: list[list[CellInput]] = field(default_factory=list)
    row_count: int = 1000
    column_count: int = 26

    def set_rows(self, rows: list[list[CellInput]]) -> None:
        self.rows = [list(r) for r in rows]
        self.row_count = max(self.row_count, len(self.rows))
        self.column_count = max([self.column_count, *(len(r) for r in self.rows)])

    def cell(self, row: int, col: int) -> CellInput:
        if row < len(self.rows) and col < len(self.rows[row]):
            return self.rows[row][col]
        return None


@dataclass
class FakeSpreadsheet:
    spreadsheet_id: str
    title: str
    locale: str = "it_IT"
    time_zone: str = "Europe/Rome"
    shared: bool = True
    worksheets: list[FakeWorksheet] = field(default_factory=list)

    def add_worksheet(self, title: str, rows: list[list[CellInput]] | None = None) -> FakeWorksheet:
        ws = FakeWorksheet(
            title, sheet_id=0 if not self.worksheets else 1000 + len(self.worksheets)
        )
        ws.set_rows(rows or [])
        self.worksheets.append(ws)
        return ws

    def worksheet(self, title: str) -> FakeWorksheet | None:
        return next((w for w in self.worksheets if w.title == title), None)

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {
                "title": self.title,
                "locale": self.locale,
                "autoRecalc": "ON_CHANGE",
                "timeZone": self.time_zone,
            },
            "sheets": [
                {
                    "properties": {
                        "sheetId": ws.sheet_id,
                        "title": ws.title,
                        "index": i,
                        "sheetType": "GRID",
                        "gridProperties": {
                            "rowCount": ws.row_count,
                            "columnCount": ws.column_count,
                        },
                    }
                }
                for i, ws in enumerate(self.worksheets)
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }


@dataclass
class _Fault:
    status: int | None = None
    message: str | None = None
    stall: threading.Event | None = None


class _ApiError(Exception):
    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or _MESSAGES.get(status, "error")


class FakeSheetsServer(HTTPServerBase):
    """Start with `with FakeSheetsServer() as server:` or start()/stop()."""

    STALL_LIMIT_SECONDS = 30.0  # a stalled request is released at the latest after this

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, threaded=True)
        self._lock = threading.Lock()
        self.spreadsheets: dict[str, FakeSpreadsheet] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()

    # ----------------------------------------------------------- test API
    @property
    def base_url(self) -> str:
        return self.url_for("/").rstrip("/")

    def gspread_client(self) -> gspread.Client:
        """A real gspread client whose Google API calls reach this server."""
        return local_gspread_client(self.base_url)

    def add_spreadsheet(
        self, spreadsheet_id: str, title: str = "Segnali QQQ", locale: str = "it_IT"
    ) -> FakeSpreadsheet:
        sheet = FakeSpreadsheet(spreadsheet_id, title, locale)
        self.spreadsheets[spreadsheet_id] = sheet
        return sheet

    def fail_next(self, status: int, times: int = 1, message: str | None = None) -> None:
        """The next `times` requests (any path) answer `status` with Google's error body."""
        with self._lock:
            self._faults.extend(_Fault(status=status, message=message) for _ in range(times))

    def stall_next(self, times: int = 1) -> threading.Event:
        """The next `times` requests wait until the returned event is set, then answer."""
        event = threading.Event()
        with self._lock:
            self._faults.extend(_Fault(stall=event) for _ in range(times))
        return event

    def reset(self) -> None:
        with self._lock:
            self.spreadsheets.clear()
            self.requests.clear()
            pending = list(self._faults)
            self._faults.clear()
        for fault in pending:
            if fault.stall is not None:
                fault.stall.set()
        self.clear()

    def values_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if "/values" in r.path]

    # ----------------------------------------------------------- HTTP
    def dispatch(self, request: Request) -> Response:
        raw_path = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "")
        raw_path = raw_path.split("?", 1)[0] or request.path
        recorded = RecordedRequest(
            request.method,
            unquote(raw_path),
            {k: request.args.getlist(k) for k in request.args},
            dict(request.headers),
        )
        with self._lock:
            self.requests.append(recorded)
            fault = self._faults.popleft() if self._faults else None
        try:
            if fault is not None and fault.stall is not None:
                fault.stall.wait(self.STALL_LIMIT_SECONDS)
            if fault is not None and fault.status is not None:
                raise _ApiError(fault.status, fault.message)
            return _json(200, self._route(request.method, raw_path, request.query_string))
        except _ApiError as exc:
            body = {
                "error": {
                    "code": exc.status,
                    "message": exc.message,
                    "status": _STATUS.get(exc.status, "UNKNOWN"),
                }
            }
            return _json(exc.status, body)

    def _route(self, method: str, raw_path: str, query: bytes) -> dict[str, Any]:
        if method != "GET":
            raise _ApiError(501, f"fake Sheets server: {method} is not implemented")
        params = parse_qs(query.decode(), keep_blank_values=True)
        match = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(?P<rest>.*)", raw_path)
        if not match:
            raise _ApiError(404, f"fake Sheets server: no route for {unquote(raw_path)}")
        sheet = self._spreadsheet(unquote(match.group(1)))
        rest = match.group("rest")
        if rest == "":
            return sheet.metadata()
        if rest == "/values:batchGet":
            return {
                "spreadsheetId": sheet.spreadsheet_id,
                "valueRanges": [_values(sheet, rng, params) for rng in params.get("ranges", [])],
            }
        if rest.startswith("/values/"):
            return _values(sheet, unquote(rest.removeprefix("/values/")), params)
        raise _ApiError(404, f"fake Sheets server: no route for {unquote(raw_path)}")

    def _spreadsheet(self, spreadsheet_id: str) -> FakeSpreadsheet:
        sheet = self.spreadsheets.get(spreadsheet_id)
        if sheet is None:
            raise _ApiError(404)
        if not sheet.shared:
            raise _ApiError(403)
        return sheet


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


# ------------------------------------------------------------------ ranges and values


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def quote_title(title: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_]+", title) and not re.fullmatch(r"[A-Za-z]{1,3}[0-9]+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


_A1 = re.compile(r"([A-Za-z]*)([0-9]*)(?::([A-Za-z]*)([0-9]*))?")
#: What an unquoted range without '!' must look like to mean "on the first sheet".
_BARE_A1 = re.compile(r"[A-Za-z]+[0-9]+(?::[A-Za-z]+[0-9]*)?|[A-Za-z]+:[A-Za-z]+|[0-9]+:[0-9]+")


def _split_range(text: str) -> tuple[str | None, str | None]:
    """('Sheet', 'A1:B2') from "'Sheet'!A1:B2"; None title means the first sheet."""
    if text.startswith("'"):
        title, i = "", 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    title += "'"
                    i += 2
                    continue
                i += 1
                break
            title += text[i]
            i += 1
        else:
            raise _ApiError(400, f"Unable to parse range: {text}")
        rest = text[i:]
        if rest == "":
            return title, None
        if rest.startswith("!"):
            return title, rest[1:]
        raise _ApiError(400, f"Unable to parse range: {text}")
    if "!" in text:
        title, a1 = text.rsplit("!", 1)
        return title, a1
    return text, None


def _bounds(a1: str | None, ws: FakeWorksheet, original: str) -> tuple[int, int, int, int]:
    """Inclusive 0-based (row1, col1, row2, col2) clipped to the grid."""
    last_row, last_col = ws.row_count - 1, ws.column_count - 1
    if not a1:
        return 0, 0, last_row, last_col
    m = _A1.fullmatch(a1)
    if not m or not any(m.groups()):
        raise _ApiError(400, f"Unable to parse range: {original}")
    c1, r1, c2, r2 = m.groups()
    single = m.group(0).find(":") < 0
    row1 = int(r1) - 1 if r1 else 0
    col1 = _column_index(c1) if c1 else 0
    if single:
        row2 = row1 if r1 else last_row
        col2 = col1 if c1 else last_col
    else:
        row2 = int(r2) - 1 if r2 else last_row
        col2 = _column_index(c2) if c2 else last_col
    return row1, col1, min(row2, last_row), min(col2, last_col)


def _render(cell: CellInput, option: str, datetime_option: str, locale: str) -> Any:
    if cell is None or cell == "":
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, Cell):
        if option == "FORMATTED_VALUE":
            return cell.formatted
        if option == "FORMULA" and cell.formula is not None:
            return cell.formula
        if cell.is_date and datetime_option == "FORMATTED_STRING":
            return cell.formatted
        return cell.value
    if isinstance(cell, bool):
        return ("VERO" if cell else "FALSO") if option == "FORMATTED_VALUE" else cell
    if isinstance(cell, int | float):
        if option != "FORMATTED_VALUE":
            return cell
        text = str(int(cell)) if float(cell).is_integer() else repr(float(cell))
        return text.replace(".", ",") if locale.startswith("it") else text
    raise TypeError(f"unsupported cell {cell!r}")


def _trim(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for row in rows:
        row = list(row)
        while row and row[-1] == "":
            row.pop()
        out.append(row)
    while out and not out[-1]:
        out.pop()
    return out


def _values(sheet: FakeSpreadsheet, rng: str, params: dict[str, list[str]]) -> dict[str, Any]:
    title, a1 = _split_range(rng)
    ws = sheet.worksheet(title) if title is not None else None
    bare = not rng.startswith("'") and "!" not in rng
    if ws is None and bare and _BARE_A1.fullmatch(rng) and sheet.worksheets:
        ws, a1 = sheet.worksheets[0], rng  # "A1:H10" alone means the first sheet
    if ws is None:
        raise _ApiError(400, f"Unable to parse range: {rng}")
    option = (params.get("valueRenderOption") or ["FORMATTED_VALUE"])[0]
    datetime_option = (params.get("dateTimeRenderOption") or ["SERIAL_NUMBER"])[0]
    dimension = (params.get("majorDimension") or ["ROWS"])[0]
    if option not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
        raise _ApiError(400, f"Invalid value at 'value_render_option' ({option})")
    if dimension not in ("ROWS", "COLUMNS"):
        raise _ApiError(400, f"Invalid value at 'major_dimension' ({dimension})")
    row1, col1, row2, col2 = _bounds(a1, ws, rng)
    block = [
        [
            _render(ws.cell(r, c), option, datetime_option, sheet.locale)
            for c in range(col1, col2 + 1)
        ]
        for r in range(row1, row2 + 1)
    ]
    if dimension == "COLUMNS":
        block = [list(col) for col in zip(*block, strict=True)] if block else []
    body: dict[str, Any] = {
        "range": f"{quote_title(ws.title)}!{column_letter(col1)}{row1 + 1}:"
        f"{column_letter(col2)}{row2 + 1}",
        "majorDimension": dimension,
    }
    values = _trim(block)
    if values:
        body["values"] = values
    return body
