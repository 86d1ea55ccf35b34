"""GspreadSignalSource: real gspread over real HTTP against the local Sheets v4 fake."""

from __future__ import annotations

import logging
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spreadpilot.adapters.embedded.csv_sheet import CsvSignalSource
from spreadpilot.adapters.sheets.gspread_source import GspreadSignalSource
from spreadpilot.domain.sheet import SHEET_HEADER, SheetFound, SheetIncomplete, parse_signal_sheet
from spreadpilot.domain.signal import Strategy
from spreadpilot.ports.signal_source import SignalSource, SignalSourceError
from tests.fakes.sheets_fixtures import (  # noqa: F401 - pytest fixtures
    fake_sheets_fixture,
    fake_sheets_server_fixture,
)
from tests.fakes.sheets_server import Cell, FakeSheetsServer
from tests.support.local_google import local_gspread_client

SHEET_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_segnali"
DAY = date(2026, 11, 24)
HEADER: list[Any] = list(SHEET_HEADER)
# As typed in an Italian-locale sheet: dates and numbers are number cells whose
# shown text differs from their stored value; "-" and "QQQ" are text.
ITALIAN_ROWS: list[list[Any]] = [
    HEADER,
    [Cell.date(date(2026, 11, 23), "23/11/2026"), "QQQ", "Short", 1, "-", "-", 492, 494],
    [],
    [None, None, None, None, None, None, None, None],
    [
        Cell.date(DAY, "24/11/2026"),
        "QQQ",
        "Long",
        Cell.number(2, "2,0"),
        Cell.number(486.5, "486,5"),
        Cell.number(488, "488,00"),
        "-",
        None,
        None,
    ],
    [Cell.date(date(2026, 11, 25), "25/11/2026"), "QQQ", "", None, "", None],
]
EXPECTED_ROWS = [
    HEADER,
    ["23/11/2026", "QQQ", "Short", "1", "-", "-", "492", "494"],
    [],
    [],
    ["24/11/2026", "QQQ", "Long", "2,0", "486,5", "488,00", "-"],
    ["25/11/2026", "QQQ"],
]


def source(
    server: FakeSheetsServer, worksheet: str = "Segnali", **options: Any
) -> GspreadSignalSource:
    options.setdefault("backoff", 0)  # no sleeping in tests; the schedule is tenacity's
    return GspreadSignalSource(server.gspread_client(), SHEET_ID, worksheet, timeout=5, **options)


@pytest.fixture
def italian_sheet(fake_sheets: FakeSheetsServer) -> FakeSheetsServer:
    spreadsheet = fake_sheets.add_spreadsheet(SHEET_ID, title="Segnali QQQ", locale="it_IT")
    spreadsheet.add_worksheet("Foglio1")
    spreadsheet.add_worksheet("Segnali", ITALIAN_ROWS)
    spreadsheet.add_worksheet("Storico", [["vecchio"]])
    return fake_sheets


# ------------------------------------------------------------------ reading


def test_reads_ragged_rows_as_the_text_the_strategist_sees(italian_sheet: FakeSheetsServer) -> None:
    assert source(italian_sheet).read_rows() == EXPECTED_ROWS


def test_one_request_for_formatted_values_with_its_timeout(italian_sheet: FakeSheetsServer) -> None:
    src = source(italian_sheet)
    src.read_rows()
    [request] = italian_sheet.requests
    assert request.method == "GET"
    assert request.path == f"/v4/spreadsheets/{SHEET_ID}/values/'Segnali'"
    assert request.param("valueRenderOption") == "FORMATTED_VALUE"
    assert request.param("majorDimension") == "ROWS"
    assert src._client.http_client.timeout == 5


def test_unformatted_values_would_have_lost_the_text(italian_sheet: FakeSheetsServer) -> None:
    """Why FORMATTED_VALUE: the stored values are serials and floats, not what was typed."""
    client = italian_sheet.gspread_client()
    body = client.http_client.values_get(
        SHEET_ID, "'Segnali'", params={"valueRenderOption": "UNFORMATTED_VALUE"}
    )
    assert body["values"][4][:6] == [46350, "QQQ", "Long", 2, 486.5, 488]


def test_worksheet_name_with_spaces_and_quotes(fake_sheets: FakeSheetsServer) -> None:
    spreadsheet = fake_sheets.add_spreadsheet(SHEET_ID)
    spreadsheet.add_worksheet("Segnali 'QQQ' 2026", [HEADER])
    assert source(fake_sheets, "Segnali 'QQQ' 2026").read_rows() == [HEADER]


def test_empty_worksheet_is_no_rows(fake_sheets: FakeSheetsServer) -> None:
    fake_sheets.add_spreadsheet(SHEET_ID).add_worksheet("Segnali")
    assert source(fake_sheets).read_rows() == []


def test_end_to_end_sheet_to_signal(italian_sheet: FakeSheetsServer) -> None:
    result = parse_signal_sheet(source(italian_sheet).read_rows(), DAY)
    assert isinstance(result, SheetFound)
    assert result.row == 5
    signal = result.signal
    assert (signal.trade_date, signal.ticker, signal.strategy, signal.qty_per_leg) == (
        DAY,
        "QQQ",
        Strategy.LONG,
        2,
    )
    assert (signal.buy_put, signal.sell_put) == (Decimal("486.5"), Decimal("488"))
    assert signal.describe() == "2026-11-24 QQQ Bull Put 486.5/488P x2"


def test_end_to_end_incomplete_then_found_as_the_strategist_types(
    fake_sheets: FakeSheetsServer,
) -> None:
    worksheet = fake_sheets.add_spreadsheet(SHEET_ID).add_worksheet(
        "Segnali", [HEADER, [Cell.date(DAY, "24/11/2026"), "QQQ", "Short", 1, "-", "-", 492]]
    )
    src = source(fake_sheets)
    assert parse_signal_sheet(src.read_rows(), DAY) == SheetIncomplete(3 - 1, ("Buy Call",))
    worksheet.set_rows([*worksheet.rows[:1], [*worksheet.rows[1], Cell.number(494, "494")]])
    result = parse_signal_sheet(src.read_rows(), DAY)
    assert isinstance(result, SheetFound)
    assert result.signal.spread.describe() == "Bear Call 492/494C"


def test_date_column_formatted_as_number_shows_the_serial(fake_sheets: FakeSheetsServer) -> None:
    fake_sheets.add_spreadsheet(SHEET_ID).add_worksheet(
        "Segnali", [HEADER, [Cell.date(DAY, "46350"), "QQQ", "Long", 2, 486, 488]]
    )
    rows = source(fake_sheets).read_rows()
    assert rows[1][0] == "46350"
    assert isinstance(parse_signal_sheet(rows, DAY), SheetFound)


def test_csv_and_sheets_sources_agree(italian_sheet: FakeSheetsServer, tmp_path: Path) -> None:
    """The embedded sheet answers exactly like the API for the same content."""
    lines = [";".join(f'"{c}"' if "," in c else c for c in row) for row in EXPECTED_ROWS]
    path = tmp_path / "signals.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    csv_source: SignalSource = CsvSignalSource(path)
    sheets_source: SignalSource = source(italian_sheet)
    assert csv_source.read_rows() == sheets_source.read_rows()


# ------------------------------------------------------------------ transient errors


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_errors_are_retried_then_succeed(
    italian_sheet: FakeSheetsServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    italian_sheet.fail_next(status, times=2)
    with caplog.at_level(logging.WARNING):
        assert source(italian_sheet, attempts=3).read_rows() == EXPECTED_ROWS
    assert len(italian_sheet.values_requests()) == 3
    assert all(r.param("valueRenderOption") == "FORMATTED_VALUE" for r in italian_sheet.requests)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.getMessage().split(",")[0] for r in retries] == [
        "signal sheet read failed (attempt 1 of 3)",
        "signal sheet read failed (attempt 2 of 3)",
    ]


def test_quota_errors_give_up_after_the_attempts(italian_sheet: FakeSheetsServer) -> None:
    italian_sheet.fail_next(429, times=5)
    with pytest.raises(SignalSourceError) as info:
        source(italian_sheet, attempts=3).read_rows()
    assert len(italian_sheet.requests) == 3
    message = str(info.value)
    assert message.startswith(
        "Google Sheets API still failing after 3 attempt(s) (429 RESOURCE_EXHAUSTED"
    )
    assert "Quota exceeded" in message
    assert message.endswith("the next poll tries again")


def test_server_errors_give_up_after_the_attempts(italian_sheet: FakeSheetsServer) -> None:
    italian_sheet.fail_next(503, times=2)
    with pytest.raises(SignalSourceError, match=r"after 2 attempt\(s\) \(503 UNAVAILABLE"):
        source(italian_sheet, attempts=2).read_rows()
    assert len(italian_sheet.requests) == 2


def test_a_timed_out_read_is_retried(italian_sheet: FakeSheetsServer) -> None:
    """The server holds the first request until released: the client's read timeout fires."""
    release = italian_sheet.stall_next(times=1)
    src = GspreadSignalSource(
        italian_sheet.gspread_client(), SHEET_ID, "Segnali", timeout=0.2, attempts=2, backoff=0
    )
    try:
        assert src.read_rows() == EXPECTED_ROWS
    finally:
        release.set()
    assert len(italian_sheet.requests) == 2


def test_timeouts_give_up_with_the_timeout_in_the_message(italian_sheet: FakeSheetsServer) -> None:
    release = italian_sheet.stall_next(times=2)
    src = GspreadSignalSource(
        italian_sheet.gspread_client(), SHEET_ID, "Segnali", timeout=0.2, attempts=2, backoff=0
    )
    try:
        with pytest.raises(SignalSourceError) as info:
            src.read_rows()
    finally:
        release.set()
    assert str(info.value).startswith(
        "could not reach the Google Sheets API after 2 attempt(s) (timeout 0.2 s each): ReadTimeout"
    )


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = local_gspread_client(f"http://127.0.0.1:{port}")
    src = GspreadSignalSource(client, SHEET_ID, "Segnali", timeout=2, attempts=2, backoff=0)
    with pytest.raises(SignalSourceError) as info:
        src.read_rows()
    assert str(info.value).startswith(
        "could not reach the Google Sheets API after 2 attempt(s) (timeout 2 s each): "
        "ConnectionError"
    )


# ------------------------------------------------------------------ permanent errors


def test_not_shared_with_the_service_account(italian_sheet: FakeSheetsServer) -> None:
    italian_sheet.spreadsheets[SHEET_ID].shared = False
    with pytest.raises(SignalSourceError) as info:
        source(italian_sheet, account="poller@spreadpilot.iam.gserviceaccount.com").read_rows()
    assert str(info.value) == (
        f"no permission to read spreadsheet {SHEET_ID!r} (403 PERMISSION_DENIED: The caller "
        "does not have permission); share the sheet with the service account "
        "(poller@spreadpilot.iam.gserviceaccount.com) as Viewer, and check SPREADPILOT_SHEET_ID"
    )
    assert len(italian_sheet.requests) == 1  # permanent: no retry


def test_sheets_api_disabled_in_the_project(italian_sheet: FakeSheetsServer) -> None:
    italian_sheet.fail_next(
        403,
        message="Google Sheets API has not been used in project 123 before or it is disabled.",
    )
    with pytest.raises(SignalSourceError, match=r"enable sheets\.googleapis\.com in that project"):
        source(italian_sheet).read_rows()
    assert len(italian_sheet.requests) == 1


def test_wrong_spreadsheet_id(fake_sheets: FakeSheetsServer) -> None:
    with pytest.raises(SignalSourceError) as info:
        source(fake_sheets).read_rows()
    assert str(info.value) == (
        f"spreadsheet {SHEET_ID!r} not found (404 NOT_FOUND: Requested entity was not found.); "
        "check SPREADPILOT_SHEET_ID: it is the part of the sheet's URL between /d/ and /edit"
    )
    assert len(fake_sheets.requests) == 1


def test_unknown_worksheet_lists_the_worksheets(italian_sheet: FakeSheetsServer) -> None:
    with pytest.raises(SignalSourceError) as info:
        source(italian_sheet, "Signals").read_rows()
    assert str(info.value) == (
        f"worksheet 'Signals' not found in spreadsheet {SHEET_ID!r}; worksheets are: "
        "'Foglio1', 'Segnali', 'Storico'; check SPREADPILOT_SHEET_WORKSHEET"
    )
    assert [r.path for r in italian_sheet.requests] == [
        f"/v4/spreadsheets/{SHEET_ID}/values/'Signals'",
        f"/v4/spreadsheets/{SHEET_ID}",
    ]


def test_unknown_worksheet_suggests_a_near_name(italian_sheet: FakeSheetsServer) -> None:
    with pytest.raises(SignalSourceError, match=r"\(did you mean 'Segnali'\?\)"):
        source(italian_sheet, "segnali ").read_rows()


def test_bad_credentials(italian_sheet: FakeSheetsServer) -> None:
    italian_sheet.fail_next(401)
    with pytest.raises(SignalSourceError) as info:
        source(italian_sheet).read_rows()
    assert "refused the credentials (401 UNAUTHENTICATED" in str(info.value)
    assert "SPREADPILOT_SHEET_CREDENTIALS_SECRET" in str(info.value)
    assert len(italian_sheet.requests) == 1


# ------------------------------------------------------------------ construction


def test_from_service_account_info_builds_a_readonly_client() -> None:
    rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "spreadpilot-test",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "poller@spreadpilot-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    src = GspreadSignalSource.from_service_account_info(info, SHEET_ID, "Segnali", timeout=7)
    assert (src.spreadsheet_id, src.worksheet, src.timeout) == (SHEET_ID, "Segnali", 7)
    http = src._client.http_client
    assert http.timeout == 7
    assert list(http.auth.scopes) == ["https://www.googleapis.com/auth/spreadsheets.readonly"]
    assert src._account == "poller@spreadpilot-test.iam.gserviceaccount.com"


def test_from_service_account_info_rejects_a_broken_key() -> None:
    with pytest.raises(SignalSourceError) as info:
        GspreadSignalSource.from_service_account_info(
            {"type": "service_account", "client_email": "x@y"}, SHEET_ID, "Segnali"
        )
    assert "not a valid service-account JSON" in str(info.value)
    assert "SPREADPILOT_SHEET_CREDENTIALS_SECRET" in str(info.value)
    assert info.value.__cause__ is None  # nothing from the key is chained into logs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"attempts": 0}, "attempts must be at least 1"),
        ({"spreadsheet_id": " "}, "set SPREADPILOT_SHEET_ID"),
        ({"worksheet": ""}, "set SPREADPILOT_SHEET_WORKSHEET"),
    ],
)
def test_settings_are_checked_up_front(
    fake_sheets: FakeSheetsServer, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"spreadsheet_id": SHEET_ID, "worksheet": "Segnali", **kwargs}
    with pytest.raises(ValueError, match=message):
        GspreadSignalSource(fake_sheets.gspread_client(), **args)


# ------------------------------------------------------------------ the fake itself


def test_fake_serves_gspread_high_level_reads(italian_sheet: FakeSheetsServer) -> None:
    """The fake is good enough for gspread's own helpers, as the real API is."""
    spreadsheet = italian_sheet.gspread_client().open_by_key(SHEET_ID)
    assert spreadsheet.title == "Segnali QQQ"
    assert spreadsheet.locale == "it_IT"
    assert [ws.title for ws in spreadsheet.worksheets()] == ["Foglio1", "Segnali", "Storico"]
    worksheet = spreadsheet.worksheet("Segnali")
    assert worksheet.get_values()[2] == [""] * 8  # gspread pads; the API does not
    assert worksheet.get("A5:F6") == [
        ["24/11/2026", "QQQ", "Long", "2,0", "486,5", "488,00"],
        ["25/11/2026", "QQQ"],
    ]
    assert worksheet.get("E5") == [["486,5"]]
    assert worksheet.get("A2:B") == [
        ["23/11/2026", "QQQ"],
        [],
        [],
        ["24/11/2026", "QQQ"],
        ["25/11/2026", "QQQ"],
    ]
    assert spreadsheet.values_batch_get(["'Storico'", "Segnali!D1:D2"])["valueRanges"][1][
        "values"
    ] == [
        ["Quantità per Leg"],
        ["1"],
    ]


def test_fake_answers_columns_and_render_options(italian_sheet: FakeSheetsServer) -> None:
    http = italian_sheet.gspread_client().http_client
    by_column = http.values_get(SHEET_ID, "'Segnali'!A1:A5", params={"majorDimension": "COLUMNS"})
    assert by_column["majorDimension"] == "COLUMNS"
    assert by_column["values"] == [["Data", "23/11/2026", "", "", "24/11/2026"]]
    dates = http.values_get(
        SHEET_ID,
        "'Segnali'!A5",
        params={
            "valueRenderOption": "UNFORMATTED_VALUE",
            "dateTimeRenderOption": "FORMATTED_STRING",
        },
    )
    assert dates["values"] == [["24/11/2026"]]
    first_sheet = http.values_get(SHEET_ID, "A1:B2")
    assert first_sheet["range"] == "Foglio1!A1:B2"
    assert "values" not in first_sheet  # an empty range has no 'values' at all
