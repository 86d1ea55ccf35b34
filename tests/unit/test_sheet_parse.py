"""parse_signal_sheet: every rule of domain.md section 2, with the text the operator reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spreadpilot.domain.errors import FieldError
from spreadpilot.domain.sheet import (
    SHEET_HEADER,
    SheetAmbiguous,
    SheetFound,
    SheetIncomplete,
    SheetInvalid,
    SheetNotFound,
    parse_signal_sheet,
)
from spreadpilot.domain.signal import Strategy

DAY = date(2026, 11, 24)
H = list(SHEET_HEADER)
LONG = ["24/11/2026", "QQQ", "Long", "2", "486", "488"]
SHORT = ["24/11/2026", "QQQ", "Short", "2", "-", "-", "492", "494"]


def sheet(*rows: list[str], header: list[str] = H) -> list[list[str]]:
    return [list(header), *[list(r) for r in rows]]


def with_cell(row: list[str], index: int, value: str) -> list[str]:
    out = list(row) + [""] * max(0, index + 1 - len(row))
    out[index] = value
    return out


# ------------------------------------------------------------------ found


@dataclass(frozen=True)
class Want:
    strategy: Strategy
    qty: int
    short: str
    long: str
    row: int = 2


BULL = Want(Strategy.LONG, 2, "488", "486")
BEAR = Want(Strategy.SHORT, 2, "492", "494")

FOUND = [
    ("long ragged row", sheet(LONG), BULL),
    ("short with dashes", sheet(SHORT), BEAR),
    (
        "short with empty put cells",
        sheet(["24/11/2026", "QQQ", "Short", "2", "", "", "492", "494"]),
        BEAR,
    ),
    ("short with en dash and em dash", sheet(with_cell(with_cell(SHORT, 4, "–"), 5, "—")), BEAR),
    ("iso date", sheet(with_cell(LONG, 0, "2026-11-24")), BULL),
    ("dotted date", sheet(with_cell(LONG, 0, "24.11.2026")), BULL),
    ("dashed date", sheet(with_cell(LONG, 0, "24-11-2026")), BULL),
    ("two-digit year", sheet(with_cell(LONG, 0, "24/11/26")), BULL),
    ("year first with slashes", sheet(with_cell(LONG, 0, "2026/11/24")), BULL),
    ("sheet serial", sheet(with_cell(LONG, 0, "46350")), BULL),
    ("sheet serial with fraction, comma", sheet(with_cell(LONG, 0, "46350,75")), BULL),
    ("sheet serial with fraction, dot", sheet(with_cell(LONG, 0, "46350.5")), BULL),
    ("italian month name", sheet(with_cell(LONG, 0, "martedì 24 novembre 2026")), BULL),
    ("short month name", sheet(with_cell(LONG, 0, "24-nov-2026")), BULL),
    ("english month name", sheet(with_cell(LONG, 0, "24 Nov. 2026")), BULL),
    ("date with time", sheet(with_cell(LONG, 0, "24/11/2026 9.30.00")), BULL),
    ("iso datetime", sheet(with_cell(LONG, 0, "2026-11-24T09:30:00")), BULL),
    ("date with spaces", sheet(with_cell(LONG, 0, "  24/11/2026 ")), BULL),
    (
        "decimal comma",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486,5", "488"]),
        Want(Strategy.LONG, 2, "488", "486.5"),
    ),
    (
        "decimal dot",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486.5", "488"]),
        Want(Strategy.LONG, 2, "488", "486.5"),
    ),
    (
        "dollar and stray spaces",
        sheet(["24/11/2026", "QQQ", "Long", "2", " $ 486,50 ", "488 $"]),
        Want(Strategy.LONG, 2, "488", "486.5"),
    ),
    (
        "no-break spaces and zero-width marks",
        sheet(["24/11/2026", "QQQ", "Long", "2", "\u00a0486\u00a0", "\u200b488"]),
        BULL,
    ),
    ("trailing zeros normalised", sheet(with_cell(LONG, 5, "488,00")), BULL),
    ("qty with decimal zero", sheet(with_cell(LONG, 3, "2,0")), BULL),
    ("qty with two decimal zeros", sheet(with_cell(LONG, 3, "2.00")), BULL),
    ("qty with spaces", sheet(with_cell(LONG, 3, " 2 ")), BULL),
    ("strategy in any case", sheet(with_cell(LONG, 2, " lONG ")), BULL),
    ("ticker in any case", sheet(with_cell(LONG, 1, " qqq ")), BULL),
    (
        "english headers",
        sheet(
            LONG,
            header=[
                "Date",
                "Ticker",
                "Strategy",
                "Qty per leg",
                "Buy Put",
                "Sell Put",
                "Sell Call",
                "Buy Call",
            ],
        ),
        BULL,
    ),
    (
        "header variants: case, accents, spacing",
        sheet(
            LONG,
            header=[
                " DATA",
                "ticker",
                "STRATEGIA",
                "quantita  per_leg",
                "buy put",
                "SELL PUT",
                "Sell  Call",
                "buy call ",
            ],
        ),
        BULL,
    ),
    (
        "quantity per leg alias",
        sheet(LONG, header=[*H[:3], "Quantity per leg", *H[4:]]),
        BULL,
    ),
    (
        "columns reordered, extra columns ignored",
        [
            [
                "Note",
                "Sell Put",
                "Buy Put",
                "Data",
                "Credito",
                "Strategia",
                "Ticker",
                "Buy Call",
                "Sell Call",
                "Quantità per Leg",
            ],
            ["ok", "488", "486", "24/11/2026", "0,35", "Long", "QQQ", "", "", "2"],
        ],
        BULL,
    ),
    (
        "header after empty rows keeps sheet row numbers",
        [[], ["", ""], H, [], LONG],
        Want(Strategy.LONG, 2, "488", "486", row=5),
    ),
    (
        "other days around, with problems of their own",
        sheet(
            ["23/11/2026", "QQQ", "Banana", "x", "1", "0"],
            [],
            ["", "", "", "", "", "", "", ""],
            LONG,
            ["31/13/2026", "QQQ", "Long", "2", "486", "488"],
            ["25/11/2026", "QQQ", "Long", "2", "488", "486"],
        ),
        Want(Strategy.LONG, 2, "488", "486", row=5),
    ),
    ("identical duplicate rows", sheet(LONG, LONG), BULL),
    (
        "duplicates typed differently but equal",
        sheet(LONG, ["2026-11-24", "qqq", "long", "2,0", "486.0", "488,00", "-", "–"]),
        BULL,
    ),
    (
        "a pre-filled date-only row is not a second signal",
        sheet(["24/11/2026", "QQQ"], LONG),
        Want(Strategy.LONG, 2, "488", "486", row=3),
    ),
    (
        "half-point strikes",
        sheet(with_cell(with_cell(LONG, 4, "486,5"), 5, "487,5")),
        Want(Strategy.LONG, 2, "487.5", "486.5"),
    ),
    (
        "thousands and decimals together",
        sheet(with_cell(with_cell(LONG, 4, "1.486,5"), 5, "1,488.5")),
        Want(Strategy.LONG, 2, "1488.5", "1486.5"),
    ),
]


@pytest.mark.parametrize(("rows", "want"), [pytest.param(r, w, id=i) for i, r, w in FOUND])
def test_found(rows: list[list[str]], want: Want) -> None:
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetFound), result
    signal = result.signal
    assert result.row == want.row
    assert (signal.trade_date, signal.ticker, signal.strategy) == (DAY, "QQQ", want.strategy)
    assert signal.qty_per_leg == want.qty
    assert signal.spread.short_strike == Decimal(want.short)
    assert signal.spread.long_strike == Decimal(want.long)
    assert str(signal.spread.short_strike) == want.short  # normalised: '488,00' -> 488
    assert str(signal.spread.long_strike) == want.long
    other = (
        (signal.sell_call, signal.buy_call)
        if want.strategy is Strategy.LONG
        else (signal.buy_put, signal.sell_put)
    )
    assert other == (None, None)


def test_single_digit_day_and_month_read_day_first() -> None:
    result = parse_signal_sheet(sheet(with_cell(LONG, 0, "5/3/2026")), date(2026, 3, 5))
    assert isinstance(result, SheetFound)
    assert parse_signal_sheet(sheet(with_cell(LONG, 0, "5/3/2026")), date(2026, 5, 3)) == (
        SheetNotFound(())
    )


def test_display_format_change_keeps_the_content_hash() -> None:
    """A column reformatted from 0 to 0,00 after the claim must not look like an edit."""
    before = parse_signal_sheet(sheet(LONG), DAY)
    after = parse_signal_sheet(
        sheet(["24/11/2026", "QQQ", "Long", "2,00", "486,00", "488,00"]), DAY
    )
    assert isinstance(before, SheetFound) and isinstance(after, SheetFound)
    assert before.signal.content_hash() == after.signal.content_hash()


# ------------------------------------------------------------------ incomplete

INCOMPLETE = [
    ("strategy empty", sheet(with_cell(LONG, 2, "")), ("Strategia",)),
    ("strategy dash", sheet(with_cell(LONG, 2, "-")), ("Strategia",)),
    ("qty empty", sheet(with_cell(LONG, 3, "")), ("Quantità per Leg",)),
    ("ticker empty", sheet(with_cell(LONG, 1, "")), ("Ticker",)),
    ("long: sell put missing (ragged)", sheet(LONG[:5]), ("Sell Put",)),
    ("long: buy put dash", sheet(with_cell(LONG, 4, "-")), ("Buy Put",)),
    ("short: buy call missing", sheet(SHORT[:7]), ("Buy Call",)),
    (
        "short: no strikes yet",
        sheet(["24/11/2026", "QQQ", "Short", "2"]),
        ("Sell Call", "Buy Call"),
    ),
    (
        "only the date and strategy",
        sheet(["24/11/2026", "", "Long"]),
        ("Ticker", "Quantità per Leg", "Buy Put", "Sell Put"),
    ),
    ("only the date", sheet(["24/11/2026"]), ("Ticker", "Strategia", "Quantità per Leg")),
    (
        "strategy missing while both sides are filled: wait for it",
        sheet(["24/11/2026", "QQQ", "", "2", "486", "488", "492", "494"]),
        ("Strategia",),
    ),
    (
        "names columns as the sheet writes them",
        sheet(
            ["24/11/2026", "QQQ", "Long", "", "486"],
            header=["Date", "Ticker", "Strategy", "Qty per leg", *H[4:]],
        ),
        ("Qty per leg", "Sell Put"),
    ),
]


@pytest.mark.parametrize(("rows", "missing"), [pytest.param(r, m, id=i) for i, r, m in INCOMPLETE])
def test_incomplete(rows: list[list[str]], missing: tuple[str, ...]) -> None:
    assert parse_signal_sheet(rows, DAY) == SheetIncomplete(row=2, missing=missing)


# ------------------------------------------------------------------ invalid

# (id, rows, row, [(field, value, words the rule must contain)])
INVALID = [
    (
        "unknown strategy",
        sheet(with_cell(LONG, 2, "Bull")),
        2,
        [("Strategia", "Bull", ["must be Long", "or Short", "write one of them"])],
    ),
    (
        "italian strategy word",
        sheet(with_cell(LONG, 2, "Lunga")),
        2,
        [("Strategia", "Lunga", ["must be Long"])],
    ),
    (
        "non-QQQ ticker",
        sheet(with_cell(LONG, 1, "SPY")),
        2,
        [("Ticker", "SPY", ["only QQQ is traded", "write QQQ"])],
    ),
    (
        "qty zero",
        sheet(with_cell(LONG, 3, "0")),
        2,
        [("Quantità per Leg", "0", ["at least 1 contract"])],
    ),
    (
        "qty negative",
        sheet(with_cell(LONG, 3, "-1")),
        2,
        [("Quantità per Leg", "-1", ["at least 1 contract"])],
    ),
    (
        "qty fractional",
        sheet(with_cell(LONG, 3, "2,5")),
        2,
        [("Quantità per Leg", "2,5", ["whole number of contracts"])],
    ),
    (
        "qty thousands-or-decimal",
        sheet(with_cell(LONG, 3, "1.000")),
        2,
        [("Quantità per Leg", "1.000", ["ambiguous", "without a thousands separator"])],
    ),
    (
        "qty words",
        sheet(with_cell(LONG, 3, "due")),
        2,
        [("Quantità per Leg", "due", ["is not a number", "e.g. 2"])],
    ),
    (
        "qty with unit",
        sheet(with_cell(LONG, 3, "2 contratti")),
        2,
        [("Quantità per Leg", "2 contratti", ["is not a number"])],
    ),
    (
        "strike text",
        sheet(with_cell(LONG, 4, "abc")),
        2,
        [("Buy Put", "abc", ["is not a number; Long needs this strike, e.g. 486 or 486,5"])],
    ),
    (
        "strike with inner space",
        sheet(with_cell(LONG, 4, "4 86")),
        2,
        [("Buy Put", "4 86", ["space inside the number"])],
    ),
    (
        "strike zero",
        sheet(with_cell(LONG, 4, "0")),
        2,
        [("Buy Put", "0", ["positive strike price"])],
    ),
    (
        "strike negative",
        sheet(with_cell(LONG, 4, "-486")),
        2,
        [("Buy Put", "-486", ["positive strike price"])],
    ),
    (
        "strike 3 decimals or thousands",
        sheet(with_cell(LONG, 4, "486,500")),
        2,
        [("Buy Put", "486,500", ["ambiguous", "at most two decimals"])],
    ),
    (
        "strike misplaced separators",
        sheet(with_cell(LONG, 5, "4.88,0")),
        2,
        [("Sell Put", "4.88,0", ["misplaced thousands separator"])],
    ),
    (
        "strike other currency",
        sheet(with_cell(LONG, 5, "€488")),
        2,
        [("Sell Put", "€488", ["is not a number"])],
    ),
    (
        "long strikes in the wrong order",
        sheet(["24/11/2026", "QQQ", "Long", "2", "488", "486"]),
        2,
        [
            (
                "Buy Put",
                "488",
                ["buys the lower put", "Buy Put must be below Sell Put (486)", "swap"],
            )
        ],
    ),
    (
        "long strikes equal",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486", "486"]),
        2,
        [("Buy Put", "486", ["must be below Sell Put"])],
    ),
    (
        "short strikes in the wrong order",
        sheet(["24/11/2026", "QQQ", "Short", "2", "", "", "494", "492"]),
        2,
        [
            (
                "Buy Call",
                "492",
                ["buys the higher call", "Buy Call must be above Sell Call (494)", "swap"],
            )
        ],
    ),
    (
        "incomplete and invalid: invalid wins",
        sheet(["24/11/2026", "QQQ", "Lunga", ""]),
        2,
        [("Strategia", "Lunga", ["must be Long"])],
    ),
    (
        "every broken cell is listed",
        sheet(["24/11/2026", "SPY", "Long", "x", "486", "abc"]),
        2,
        [
            ("Ticker", "SPY", ["only QQQ"]),
            ("Quantità per Leg", "x", ["is not a number"]),
            ("Sell Put", "abc", ["is not a number"]),
        ],
    ),
    (
        "a garbage strike on the other side is invalid, not just ambiguous",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486", "488", "n/a"]),
        2,
        [("Sell Call", "n/a", ["is not a number", "use '-' or leave it empty"])],
    ),
    (
        "an unknown ticker row for the day is rejected, not skipped",
        sheet(with_cell(LONG, 1, "QQQQ")),
        2,
        [("Ticker", "QQQQ", ["only QQQ"])],
    ),
    (
        "names columns as the sheet writes them",
        sheet(
            ["24/11/2026", "QQQ", "Long", "2,5", "486", "488"],
            header=["Date", "Ticker", "Strategy", "Qty per leg", *H[4:]],
        ),
        2,
        [("Qty per leg", "2,5", ["whole number"])],
    ),
    (
        "header missing a column",
        [
            ["Data", "Ticker", "Strategia", "Quantità per Leg", "Buy Put", "Sell Put", "Buy Call"],
            LONG,
        ],
        1,
        [
            (
                "header",
                "Sell Call",
                [
                    "row 1 is read as the header",
                    "no column 'Sell Call'",
                    "add it",
                    "found headers: 'Data', 'Ticker'",
                    "'Buy Call'",
                ],
            )
        ],
    ),
    (
        "header missing the date names its alias",
        [H[1:], LONG],
        1,
        [("header", "Data", ["no column 'Data' (or 'Date')"])],
    ),
    (
        "header below empty rows",
        [[], ["Titolo"], H[:4]],
        2,
        [
            ("header", "Data", ["row 2 is read as the header", "found headers: 'Titolo'"]),
            ("header", "Ticker", []),
            ("header", "Strategia", []),
            ("header", "Quantità per Leg", ["(or 'Qty per leg' / 'Quantity per leg')"]),
            ("header", "Buy Put", []),
            ("header", "Sell Put", []),
            ("header", "Sell Call", []),
            ("header", "Buy Call", []),
        ],
    ),
    (
        "duplicated header",
        [[*H, "Sell Put"], LONG],
        1,
        [
            (
                "header",
                "Sell Put",
                ["column F ('Sell Put') and column I ('Sell Put')", "delete or rename one"],
            )
        ],
    ),
    (
        "header duplicated through an alias",
        [[*H, "Qty per leg"], LONG],
        1,
        [("header", "Qty per leg", ["column D ('Quantità per Leg') and column I ('Qty per leg')"])],
    ),
    (
        "empty worksheet",
        [],
        1,
        [("header", "", ["the worksheet is empty", "Data, Ticker, Strategia"])],
    ),
    ("only empty rows", [[], ["", " "]], 1, [("header", "", ["the worksheet is empty"])]),
]


@pytest.mark.parametrize(
    ("rows", "row", "expected"), [pytest.param(r, n, e, id=i) for i, r, n, e in INVALID]
)
def test_invalid(
    rows: list[list[str]], row: int, expected: list[tuple[str, str, list[str]]]
) -> None:
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetInvalid), result
    assert result.row == row
    assert [(e.field, e.value) for e in result.errors] == [(f, v) for f, v, _ in expected]
    for error, (_, _, words) in zip(result.errors, expected, strict=True):
        for word in words:
            assert word in error.rule, (word, error.rule)


def test_invalid_errors_are_field_errors() -> None:
    result = parse_signal_sheet(sheet(with_cell(LONG, 3, "2,5")), DAY)
    assert isinstance(result, SheetInvalid)
    assert result.errors == (
        FieldError(
            "Quantità per Leg", "2,5", "must be a whole number of contracts per leg, e.g. 2"
        ),
    )


# ------------------------------------------------------------------ ambiguous

# (id, rows, rows reported, words the reason must contain)
AMBIGUOUS = [
    (
        "two different rows for the day",
        sheet(LONG, with_cell(LONG, 5, "489")),
        (2, 3),
        [
            "rows 2 and 3 both have Data 2026-11-24",
            "Sell Put '488' vs '489'",
            "delete the wrong row",
        ],
    ),
    (
        "same day written two ways, different trades",
        sheet(LONG, [], ["2026-11-24", "QQQ", "Short", "2", "", "", "492", "494"]),
        (2, 4),
        ["Strategia 'Long' vs 'Short'", "Buy Put '486' vs ''", "Buy Call '' vs '494'"],
    ),
    (
        "three rows",
        sheet(LONG, LONG, with_cell(LONG, 3, "3")),
        (2, 3, 4),
        ["rows 2, 3 and 4 all have", "Quantità per Leg '2' vs '3'"],
    ),
    (
        "long with the call side filled in",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486", "488", "492", "494"]),
        (2,),
        [
            "Strategia is Long, which uses Buy Put and Sell Put",
            "Sell Call ('492') and Buy Call ('494') are also filled in",
            "clear Sell Call and Buy Call (empty or '-')",
            "if the trade is Short, change Strategia and clear Buy Put and Sell Put",
        ],
    ),
    (
        "short with one put strike filled in",
        sheet(["24/11/2026", "QQQ", "Short", "2", "", "488", "492", "494"]),
        (2,),
        ["Strategia is Short", "Sell Put ('488') is also filled in", "clear Sell Put"],
    ),
    (
        "other side filled while own side incomplete: ambiguous first",
        sheet(["24/11/2026", "QQQ", "Long", "2", "486", "", "492"]),
        (2,),
        ["clear Sell Call"],
    ),
    (
        "day/month order in doubt",
        sheet(
            ["11/04/2026", "QQQ", "Long", "2", "486", "488"],
            ["11/24/2025", "QQQ", "Long", "1", "400", "402"],
        ),
        (2, 3),
        [
            "row 3 holds a month-first (US order) date",
            "write every Data day-first",
            "locale to Italy",
        ],
    ),
]


@pytest.mark.parametrize(
    ("rows", "numbers", "words"), [pytest.param(r, n, w, id=i) for i, r, n, w in AMBIGUOUS]
)
def test_ambiguous(rows: list[list[str]], numbers: tuple[int, ...], words: list[str]) -> None:
    day = date(2026, 4, 11) if "11/04/2026" in rows[1] else DAY
    result = parse_signal_sheet(rows, day)
    assert isinstance(result, SheetAmbiguous), result
    assert result.rows == numbers
    for word in words:
        assert word in result.reason, (word, result.reason)


def test_unambiguous_day_first_row_is_trusted_despite_us_dates_elsewhere() -> None:
    rows = sheet(LONG, ["11/24/2025", "QQQ", "Long", "1", "400", "402"])
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetFound) and result.row == 2


# ------------------------------------------------------------------ not found

NOT_FOUND = [
    ("header only", sheet(), ()),
    (
        "other days only",
        sheet(with_cell(LONG, 0, "23/11/2026"), with_cell(LONG, 0, "2026-11-25")),
        (),
    ),
    (
        "not a date",
        sheet(with_cell(LONG, 0, "31/13/2026")),
        ("row 2: Data '31/13/2026' is not a date: no such day (day/month/year)",),
    ),
    (
        "no such day",
        sheet(with_cell(LONG, 0, "2026-02-30")),
        ("row 2: Data '2026-02-30' is not a date: no such day (year-month-day)",),
    ),
    (
        "month-first date",
        sheet(with_cell(LONG, 0, "11/24/2026")),
        (
            "row 2: Data '11/24/2026' is not a date: it reads only month-first (US order); "
            "write it day-first (24/11/2026) or as 2026-11-24",
        ),
    ),
    (
        "a year is not a serial",
        sheet(with_cell(LONG, 0, "2026")),
        (
            "row 2: Data '2026' is not a date: a number, but not a sheet date serial "
            "(days since 1899-12-30) of 2000-2099",
        ),
    ),
    (
        "words",
        sheet(with_cell(LONG, 0, "oggi")),
        (
            "row 2: Data 'oggi' is not a date: "
            "expected 24/11/2026, 2026-11-24 or a sheet date serial",
        ),
    ),
    (
        "content without a date",
        sheet(with_cell(LONG, 0, "")),
        ("row 2: Data is empty; the row is ignored until it has a date",),
    ),
    ("a ticker alone is not content", sheet(["", "QQQ"]), ()),
    (
        "warnings use the sheet's header text",
        sheet(with_cell(LONG, 0, "x"), header=["Date", *H[1:]]),
        ("row 2: Date 'x' is not a date: expected 24/11/2026, 2026-11-24 or a sheet date serial",),
    ),
]


@pytest.mark.parametrize(("rows", "warnings"), [pytest.param(r, w, id=i) for i, r, w in NOT_FOUND])
def test_not_found(rows: list[list[str]], warnings: tuple[str, ...]) -> None:
    assert parse_signal_sheet(rows, DAY) == SheetNotFound(warnings)


def test_not_found_warnings_are_capped() -> None:
    rows = sheet(*[with_cell(LONG, 0, f"bad{i}") for i in range(30)])
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetNotFound)
    assert len(result.warnings) == 21
    assert result.warnings[0].startswith("row 2: Data 'bad0'")
    assert result.warnings[-1] == "... and 10 more rows with problems"


def test_a_row_for_another_traded_ticker_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import spreadpilot.domain.sheet as sheet_module

    monkeypatch.setattr(sheet_module, "SUPPORTED_TICKERS", frozenset({"QQQ", "SPY"}))
    rows = sheet(with_cell(LONG, 1, "SPY"), LONG)
    result = parse_signal_sheet(rows, DAY)
    assert isinstance(result, SheetFound) and result.row == 3
    assert parse_signal_sheet(sheet(with_cell(LONG, 1, "SPY")), DAY) == SheetNotFound(())


# ------------------------------------------------------------------ properties

CELL_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "-",
            "–",
            "Long",
            "short",
            "QQQ",
            "SPY",
            "24/11/2026",
            "2026-11-24",
            "46350",
            "46350,5",
            "11/24/2026",
            "24/11/26",
            "486,5",
            "1.234,5",
            "1.000",
            "2,0",
            "$ 488",
            "0",
            "-3",
            "abc",
            "24 nov 2026",
            "martedì",
            "\u00a0",
            "9" * 40,
            "1" + "0" * 30,
        ]
    ),
)
ROW = st.lists(CELL_TEXT, max_size=10)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(ROW, max_size=8),
    header=st.one_of(st.just(H), st.permutations(H).map(list), ROW),
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2110, 1, 1)),
)
def test_never_raises_on_any_cell_text(body: list[list[str]], header: list[str], day: date) -> None:
    result = parse_signal_sheet([header, *body], day)
    assert isinstance(
        result, SheetFound | SheetIncomplete | SheetNotFound | SheetInvalid | SheetAmbiguous
    )
    if isinstance(result, SheetFound):
        assert result.signal.trade_date == day
        assert 2 <= result.row <= len(body) + 1
        assert result.signal.ticker == "QQQ"
    if isinstance(result, SheetInvalid):
        assert result.errors and all(e.rule for e in result.errors)


def _render_date(day: date, style: int) -> str:
    serial = (day - date(1899, 12, 30)).days
    months = ["gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"]
    return [
        day.isoformat(),
        f"{day:%d/%m/%Y}",
        f"{day.day}/{day.month}/{day.year}",
        f"{day:%d.%m.%Y}",
        f"{day:%d-%m-%y}",
        str(serial),
        f"{serial},25",
        f"{day.day} {months[day.month - 1]} {day.year}",
        f" {day:%d/%m/%Y} 0.00.00",
    ][style]


def _render_number(value: Decimal, style: int) -> str:
    text = f"{value:f}"
    whole, _, frac = text.partition(".")
    if style == 0:
        return text
    if style == 1:
        return text.replace(".", ",")
    if style == 2:
        return f" $ {whole},{frac or '00'} "
    if style == 3 and frac:  # Italian thousands: only with decimals, else ambiguous by design
        grouped = f"{int(whole):,}".replace(",", ".")
        return f"{grouped},{frac}"
    if style == 4 and frac:
        return f"{int(whole):,}.{frac}"
    return f"{text}$"


HEADERS = [
    ("Data", "Date"),
    ("Ticker", "TICKER"),
    ("Strategia", "Strategy"),
    ("Quantità per Leg", "Qty per leg", "Quantity per leg", "quantita per leg"),
    ("Buy Put", "buy put"),
    ("Sell Put",),
    ("Sell Call",),
    ("Buy Call", "BUY CALL"),
]


@st.composite
def signal_sheets(
    draw: st.DrawFn,
) -> tuple[list[list[str]], date, Strategy, int, Decimal, Decimal, int]:
    day = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
    strategy = draw(st.sampled_from(Strategy))
    qty = draw(st.integers(min_value=1, max_value=50))
    low = Decimal(draw(st.integers(min_value=2, max_value=4000))) / 2
    high = low + Decimal(draw(st.integers(min_value=1, max_value=40))) / 2
    order = draw(st.permutations(range(8)))
    names = [draw(st.sampled_from(options)) for options in HEADERS]
    # Long: Buy Put < Sell Put; Short: Sell Call < Buy Call
    strikes = [low, high, None, None] if strategy is Strategy.LONG else [None, None, low, high]
    unused = draw(st.sampled_from(["", "-", "–"]))
    cells = [
        _render_date(day, draw(st.integers(0, 8))),
        draw(st.sampled_from(["QQQ", "qqq", " QQQ "])),
        draw(
            st.sampled_from([strategy.value, strategy.value.upper(), f" {strategy.value.lower()} "])
        ),
        draw(st.sampled_from([str(qty), f"{qty},0", f" {qty} "])),
        *[unused if s is None else _render_number(s, draw(st.integers(0, 5))) for s in strikes],
    ]
    header = [names[i] for i in order]
    row = [cells[i] for i in order]
    while row and row[-1] == "":
        row.pop()  # the API drops trailing empty cells
    others = [
        [
            _render_date(day + timedelta(days=delta), draw(st.integers(0, 8))) if i == 0 else c
            for i, c in enumerate(cells)
        ]
        for delta in draw(st.lists(st.sampled_from([-3, -1, 1, 7, 365]), max_size=3, unique=True))
    ]
    others = [[o[i] for i in order] for o in others]
    position = draw(st.integers(0, len(others)))
    body = [*others[:position], row, *others[position:]]
    return [header, *body], day, strategy, qty, low, high, position + 2


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(case=signal_sheets())
def test_any_tolerated_spelling_reads_back_exactly(
    case: tuple[list[list[str]], date, Strategy, int, Decimal, Decimal, int],
) -> None:
    rows, day, strategy, qty, low, high, row_number = case
    result = parse_signal_sheet(rows, day)
    assert isinstance(result, SheetFound), (rows, result)
    assert result.row == row_number
    signal = result.signal
    assert (signal.trade_date, signal.strategy, signal.qty_per_leg) == (day, strategy, qty)
    if strategy is Strategy.LONG:
        assert (signal.buy_put, signal.sell_put, signal.sell_call, signal.buy_call) == (
            low,
            high,
            None,
            None,
        )
    else:
        assert (signal.buy_put, signal.sell_put, signal.sell_call, signal.buy_call) == (
            None,
            None,
            low,
            high,
        )


@settings(max_examples=200)
@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    delta=st.integers(min_value=-4000, max_value=4000).filter(bool),
    style=st.integers(0, 8),
)
def test_a_row_for_another_day_never_matches(day: date, delta: int, style: int) -> None:
    other = day + timedelta(days=delta)
    if not date(2000, 1, 1) <= other <= date(2099, 12, 31):
        return
    rows = sheet(with_cell(LONG, 0, _render_date(other, style)))
    assert isinstance(parse_signal_sheet(rows, day), SheetNotFound)
