"""CsvSignalSource: the embedded sheet answers like the Sheets API (raw text, ragged rows)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.csv_sheet import CsvSignalSource, detect_delimiter
from spreadpilot.domain.sheet import SHEET_HEADER, SheetFound, parse_signal_sheet
from spreadpilot.ports.signal_source import SignalSource, SignalSourceError

HEADER = list(SHEET_HEADER)
DAY = date(2026, 11, 24)


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "signals.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_italian_export_semicolons_bom_crlf(tmp_path: Path) -> None:
    text = (
        "\ufeffData;Ticker;Strategia;Quantità per Leg;Buy Put;Sell Put;Sell Call;Buy Call\r\n"
        "23/11/2026;QQQ;Short;1;;;492;494\r\n"
        ";;;;;;;\r\n"
        "24/11/2026;QQQ;Long;2;486,5;488;-;-\r\n"
        "25/11/2026;QQQ;;;;;;\r\n"
        ";;;;;;;\r\n"
    )
    rows = CsvSignalSource(write(tmp_path, text)).read_rows()
    assert rows == [
        HEADER,
        ["23/11/2026", "QQQ", "Short", "1", "", "", "492", "494"],
        [],
        ["24/11/2026", "QQQ", "Long", "2", "486,5", "488", "-", "-"],
        ["25/11/2026", "QQQ"],
    ]
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetFound)
    assert result.row == 4
    assert result.signal.buy_put is not None and str(result.signal.buy_put) == "486.5"


def test_comma_delimited_with_quoted_decimal_commas(tmp_path: Path) -> None:
    text = ",".join(HEADER) + '\n24/11/2026,QQQ,Long,2,"486,5","488,0",,\n'
    rows = CsvSignalSource(write(tmp_path, text)).read_rows()
    assert rows == [HEADER, ["24/11/2026", "QQQ", "Long", "2", "486,5", "488,0"]]


def test_tab_delimited(tmp_path: Path) -> None:
    text = "\t".join(HEADER) + "\n2026-11-24\tQQQ\tShort\t3\t-\t-\t492\t494\n"
    rows = CsvSignalSource(write(tmp_path, text)).read_rows()
    assert rows[1] == ["2026-11-24", "QQQ", "Short", "3", "-", "-", "492", "494"]


def test_cells_keep_their_text_and_spaces(tmp_path: Path) -> None:
    """Like FORMATTED_VALUE: the source does not trim or coerce; the parser does."""
    text = ";".join(HEADER) + "\n 24/11/2026 ; qqq ; long ;2,0; $ 486 ;488\n"
    rows = CsvSignalSource(write(tmp_path, text)).read_rows()
    assert rows[1] == [" 24/11/2026 ", " qqq ", " long ", "2,0", " $ 486 ", "488"]
    assert isinstance(parse_signal_sheet(rows, DAY), SheetFound)


def test_windows_1252_export_is_decoded(tmp_path: Path) -> None:
    text = ";".join(HEADER) + "\n24/11/2026;QQQ;Long;2;486;488\n"
    rows = CsvSignalSource(write(tmp_path, text, encoding="cp1252")).read_rows()
    assert rows[0][3] == "Quantità per Leg"
    assert isinstance(parse_signal_sheet(rows, DAY), SheetFound)


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    text = "\n\n" + ";".join(HEADER) + "\n24/11/2026;QQQ;Long;2;486,5;488\n"
    rows = CsvSignalSource(write(tmp_path, text)).read_rows()
    assert rows[:2] == [[], []]
    assert rows[3] == ["24/11/2026", "QQQ", "Long", "2", "486,5", "488"]
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetFound) and result.row == 4


def test_empty_file_is_no_rows(tmp_path: Path) -> None:
    assert CsvSignalSource(write(tmp_path, "")).read_rows() == []


def test_reread_on_every_call(tmp_path: Path) -> None:
    path = write(tmp_path, ";".join(HEADER) + "\n")
    source = CsvSignalSource(path)
    assert len(source.read_rows()) == 1
    path.write_text(";".join(HEADER) + "\n24/11/2026;QQQ;Long;2;486;488\n", encoding="utf-8")
    assert len(source.read_rows()) == 2


def test_missing_file_names_path_and_setting(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "signals.csv"
    with pytest.raises(SignalSourceError) as info:
        CsvSignalSource(path).read_rows()
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)
    assert "SPREADPILOT_SHEET_CSV" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SignalSourceError, match=r"is a directory.*SPREADPILOT_SHEET_CSV"):
        CsvSignalSource(tmp_path).read_rows()


def test_implements_the_port(tmp_path: Path) -> None:
    source: SignalSource = CsvSignalSource(write(tmp_path, ";".join(HEADER)))
    assert source.read_rows() == [HEADER]


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        ("Data;Ticker;Strategia", ";"),
        ("Data,Ticker,Strategia", ","),
        ("Data\tTicker\tStrategia", "\t"),
        ('"Data;x",Ticker,Strategia', ","),  # quoted delimiters do not count
        ("Data", ","),
        ("", ";"),  # blank lines are skipped: the next line decides
    ],
)
def test_detect_delimiter(first_line: str, expected: str) -> None:
    assert detect_delimiter(first_line + "\n24/11/2026;1,5\n") == expected
