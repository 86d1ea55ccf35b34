"""Parse the strategist's signal sheet into one Signal, or the reason not to trade.

Pure: no I/O, no clock. The sheet is typed by people in an Italian locale, so
cells are read as raw text and parsed tolerantly, but nothing is ever guessed
(domain.md section 2). Rules:

- Header: the first non-empty row. Names match after normalising case, accents
  and spaces: Data|Date, Ticker, Strategia|Strategy, Quantità per Leg|Qty per
  leg|Quantity per leg, Buy Put, Sell Put, Sell Call, Buy Call. All eight are
  required, other columns are ignored, a duplicated one is rejected. Messages
  name columns as the sheet writes them.
- Rows: 1-based sheet row numbers; ragged rows (trailing empty cells dropped)
  are padded; fully empty rows are skipped; a row with content but no date is
  ignored with a warning.
- Dates: 2026-11-24 (year first), 24/11/2026, 24-11-2026, 24.11.2026, 24/11/26
  (two-digit years are 20yy, day first, as the Italian sheet itself reads
  them), 24 nov 2026 / 24 novembre 2026, or a sheet serial number (days since
  1899-12-30, years 2000-2099, any fraction ignored); a trailing time is
  ignored. Month-first (US) order is never assumed: if the date column holds a
  date that only reads month-first and today's row is written in an order-
  ambiguous way (04/11/2026), the result is SheetAmbiguous.
- Numbers: 486 · 486,5 · 486.5 · " $ 486,50 ". With both '.' and ',' the last
  one is the decimal mark (1.234,5 and 1,234.5); a single '.' or ',' followed
  by exactly three digits (1.234, 486,500) is rejected as ambiguous (thousands
  or decimals?). Strikes are normalised, so 486,50 == 486.5.
- Quantity: a whole number >= 1. "2,0" / "2.00" count as 2 (that is how a cell
  formatted with decimals shows 2); "2,5", "0", "-1" and "1.000" are invalid.
- Unused strike: empty, '-', '–' or '—'.
- Outcome for today's row, first match wins: Invalid (a cell is present but
  wrong: reject now) > Ambiguous (two different rows for the date; the other
  side's strikes filled in: reject) > Incomplete (a needed cell is empty: keep
  polling) > Found. Identical duplicate rows count once; a row holding only the
  date (a pre-filled calendar row) is ignored when another row for the date has
  content. A row for today with another supported ticker is skipped; one with
  an unsupported ticker is Invalid.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeAlias

from spreadpilot.domain.errors import DomainValidationError, FieldError, validate
from spreadpilot.domain.signal import SUPPORTED_TICKERS, Signal, Strategy

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SheetFound:
    """Today's row is complete and valid."""

    signal: Signal
    row: int


@dataclass(frozen=True)
class SheetIncomplete:
    """Today's row exists but cells the strategy needs are empty: keep polling."""

    row: int
    missing: tuple[str, ...]


@dataclass(frozen=True)
class SheetNotFound:
    """No row for the date; warnings say which rows could not be read and why."""

    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SheetInvalid:
    """A cell is present but wrong: reject at once, naming column, value and fix."""

    row: int
    errors: tuple[FieldError, ...]


@dataclass(frozen=True)
class SheetAmbiguous:
    """The sheet admits more than one reading: reject, never guess."""

    rows: tuple[int, ...]
    reason: str


SheetResult: TypeAlias = (
    SheetFound | SheetIncomplete | SheetNotFound | SheetInvalid | SheetAmbiguous
)

# --------------------------------------------------------------------------- columns

DATE, TICKER, STRATEGY, QTY = "date", "ticker", "strategy", "qty"
BUY_PUT, SELL_PUT, SELL_CALL, BUY_CALL = "buy_put", "sell_put", "sell_call", "buy_call"
_STRIKES = (BUY_PUT, SELL_PUT, SELL_CALL, BUY_CALL)
_CONTENT = (STRATEGY, QTY, *_STRIKES)  # what makes a row more than a calendar entry
_SIDES: dict[Strategy, tuple[str, str]] = {
    # (long leg bought lower/higher, short leg sold)
    Strategy.LONG: (BUY_PUT, SELL_PUT),
    Strategy.SHORT: (BUY_CALL, SELL_CALL),
}

#: Canonical sheet name (Italian, as in domain.md) and the English aliases accepted.
_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    DATE: ("Data", ("Date",)),
    TICKER: ("Ticker", ()),
    STRATEGY: ("Strategia", ("Strategy",)),
    QTY: ("Quantità per Leg", ("Qty per leg", "Quantity per leg")),
    BUY_PUT: ("Buy Put", ()),
    SELL_PUT: ("Sell Put", ()),
    SELL_CALL: ("Sell Call", ()),
    BUY_CALL: ("Buy Call", ()),
}
#: The header row as the live sheet writes it, in column order (demo, tests, templates).
SHEET_HEADER: tuple[str, ...] = tuple(name for name, _ in _COLUMNS.values())
_UNUSED = frozenset({"-", "–", "—", "−"})
_MAX_WARNINGS = 20
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _normalise_header(text: str) -> str:
    """Case, accents and spacing do not matter: 'Quantità  per_Leg' == 'quantita per leg'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.split(r"[\s_.]+", plain.casefold())).strip()


def _clean(cell: object) -> str:
    """Cell text without surrounding whitespace (NBSP included) or invisible marks."""
    text = cell if isinstance(cell, str) else ("" if cell is None else str(cell))
    return text.translate(_INVISIBLE).strip()


_ALIAS_TO_KEY = {
    _normalise_header(name): key
    for key, (canonical, aliases) in _COLUMNS.items()
    for name in (canonical, *aliases)
}


def _col_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


@dataclass(frozen=True)
class _Header:
    row: int
    index: dict[str, int]  # column key -> 0-based position
    names: dict[str, str]  # column key -> header text as the sheet writes it


@dataclass(frozen=True)
class _Row:
    number: int
    cells: dict[str, str]  # column key -> cleaned text ("" when absent)


def _read_header(rows: Sequence[Sequence[str]]) -> _Header | SheetInvalid:
    position = next((i for i, row in enumerate(rows) if any(_clean(c) for c in row)), None)
    if position is None:
        return SheetInvalid(
            1,
            (
                FieldError(
                    "header",
                    "",
                    "the worksheet is empty: its first row must be the header "
                    + _expected_headers()
                    + "; check that the configured worksheet is the signal sheet",
                ),
            ),
        )
    header_row = rows[position]
    index: dict[str, int] = {}
    names: dict[str, str] = {}
    errors: list[FieldError] = []
    for col, raw in enumerate(header_row):
        text = _clean(raw)
        key = _ALIAS_TO_KEY.get(_normalise_header(text))
        if key is None:
            continue
        if key in index:
            errors.append(
                FieldError(
                    "header",
                    text,
                    f"column {_col_letter(index[key])} ({names[key]!r}) and column "
                    f"{_col_letter(col)} ({text!r}) are the same column; delete or rename "
                    "one of them so the signal cannot be read from the wrong one",
                )
            )
            continue
        index[key] = col
        names[key] = text
    missing = [key for key in _COLUMNS if key not in index]
    if missing:
        found = ", ".join(repr(_clean(c)) for c in header_row if _clean(c)) or "none"
        for key in missing:
            canonical, aliases = _COLUMNS[key]
            also = f" (or {' / '.join(repr(a) for a in aliases)})" if aliases else ""
            errors.append(
                FieldError(
                    "header",
                    canonical,
                    f"row {position + 1} is read as the header and has no column "
                    f"{canonical!r}{also}; add it (found headers: {found})",
                )
            )
    if errors:
        return SheetInvalid(position + 1, tuple(errors))
    return _Header(position + 1, index, names)


def _expected_headers() -> str:
    return ", ".join(canonical for canonical, _ in _COLUMNS.values())


# --------------------------------------------------------------------------- dates

_SHEET_EPOCH = date(1899, 12, 30)
_SERIAL_MIN = (date(2000, 1, 1) - _SHEET_EPOCH).days
_SERIAL_MAX = (date(2099, 12, 31) - _SHEET_EPOCH).days
_TIME = r"(?:[ T]+[0-9]{1,2}[:.][0-9]{2}(?:[:.][0-9]{2}(?:[.,][0-9]+)?)?)?"
_RE_SERIAL = re.compile(r"([0-9]{1,6})(?:[.,][0-9]+)?")
_RE_YMD = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})" + _TIME)
_RE_DMY = re.compile(r"([0-9]{1,2})([-/.])([0-9]{1,2})\2([0-9]{4}|[0-9]{2})" + _TIME)
_RE_TEXT = re.compile(
    r"(?:[a-z]+\.?,?\s+)?([0-9]{1,2})[\s./-]*([a-z]+)\.?[\s./-]*([0-9]{4}|[0-9]{2})" + _TIME
)
_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "gennaio gen january jan",
        "febbraio feb february",
        "marzo mar march",
        "aprile apr april",
        "maggio mag may",
        "giugno giu june jun",
        "luglio lug july jul",
        "agosto ago august aug",
        "settembre set september sep sept",
        "ottobre ott october oct",
        "novembre nov november",
        "dicembre dic december dec",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number


@dataclass(frozen=True)
class _ParsedDate:
    value: date | None
    problem: str = ""
    order_ambiguous: bool = False  # day and month could be swapped (04/11/2026)
    month_first_only: bool = False  # valid only read month-first (11/24/2026)


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_date(text: str) -> _ParsedDate:
    if m := _RE_SERIAL.fullmatch(text):
        serial = int(m.group(1))
        if _SERIAL_MIN <= serial <= _SERIAL_MAX:
            return _ParsedDate(_SHEET_EPOCH + timedelta(days=serial))
        return _ParsedDate(
            None, "a number, but not a sheet date serial (days since 1899-12-30) of 2000-2099"
        )
    if m := _RE_YMD.fullmatch(text):
        year, month, day = int(m.group(1)), int(m.group(3)), int(m.group(4))
        value = _make_date(year, month, day)
        return _ParsedDate(value, "" if value else "no such day (year-month-day)")
    if m := _RE_DMY.fullmatch(text):
        day, month, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if len(m.group(4)) == 2:
            year += 2000
        value = _make_date(year, month, day)
        if value is None:
            swapped = _make_date(year, day, month)
            if swapped is not None:
                return _ParsedDate(
                    None,
                    "it reads only month-first (US order); write it day-first "
                    f"({month:02d}/{day:02d}/{year}) or as {swapped.isoformat()}",
                    month_first_only=True,
                )
            return _ParsedDate(None, "no such day (day/month/year)")
        return _ParsedDate(value, order_ambiguous=day <= 12 and month <= 12 and day != month)
    folded = _normalise_header(text)
    if m := _RE_TEXT.fullmatch(folded):
        month_number = _MONTHS.get(m.group(2))
        if month_number is not None:
            year = int(m.group(3)) + (2000 if len(m.group(3)) == 2 else 0)
            value = _make_date(year, month_number, int(m.group(1)))
            return _ParsedDate(value, "" if value else "no such day")
    return _ParsedDate(None, "expected 24/11/2026, 2026-11-24 or a sheet date serial")


# --------------------------------------------------------------------------- numbers


class _CellError(ValueError):
    """A cell's text breaks a rule; the message is the rule with its fix."""


_SPACE_GROUPED = re.compile(r"[0-9]{1,3}(?:\s[0-9]{3})+(?:[.,][0-9]+)?")


def _grouped(text: str, sep: str) -> bool:
    return re.fullmatch(r"[0-9]{1,3}(?:" + re.escape(sep) + r"[0-9]{3})+", text) is not None


def _parse_number(text: str) -> Decimal:
    """Exact Decimal from Italian or English notation; raises _CellError on doubt."""
    s = text.replace("\u2212", "-")
    if s.count("$") > 1:
        raise _CellError("is not a number")
    s = s.replace("$", " ").strip()
    negative = s.startswith("-")
    if s.startswith(("-", "+")):
        s = s[1:].strip()
    if re.search(r"[0-9]\s+[0-9]", s) and not _SPACE_GROUPED.fullmatch(s):
        raise _CellError("has a space inside the number; write it without spaces, e.g. 486,5")
    s = re.sub(r"\s+", "", s)
    if not re.fullmatch(r"[0-9][0-9.,]*", s) or s[-1] in ".,":
        raise _CellError("is not a number")
    dots, commas = s.count("."), s.count(",")
    frac = ""
    if dots and commas:
        dec = "." if s.rfind(".") > s.rfind(",") else ","
        thousands = "," if dec == "." else "."
        if s.count(dec) != 1:
            raise _CellError("is not a number (mixed '.' and ',')")
        whole, frac = s.split(dec)
        if not _grouped(whole, thousands):
            raise _CellError(f"has a misplaced thousands separator {thousands!r}")
        whole = whole.replace(thousands, "")
    elif dots or commas:
        sep = "." if dots else ","
        if s.count(sep) > 1:
            if not _grouped(s, sep):
                raise _CellError(f"has a misplaced thousands separator {sep!r}")
            whole = s.replace(sep, "")
        else:
            whole, frac = s.split(sep)
            if len(frac) == 3 and 1 <= len(whole.lstrip("0")) <= 3:
                raise _CellError(
                    f"is ambiguous: {sep!r} followed by three digits may be a thousands "
                    "separator or a decimal mark; write it without a thousands separator "
                    "(e.g. 1234) and with at most two decimals (e.g. 486,5)"
                )
    else:
        whole = s
    value = Decimal(f"{whole}.{frac}" if frac else whole)
    return -value if negative else value


def _canonical(value: Decimal) -> Decimal:
    """486.50 -> 486.5 and 486.0 -> 486, so a display-format change is not an edit."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _parse_strike(text: str) -> Decimal:
    value = _parse_number(text)
    if value <= 0:
        raise _CellError("must be a positive strike price in USD, e.g. 486 or 486,5")
    return _canonical(value)


def _parse_qty(text: str) -> int:
    try:
        value = _parse_number(text)
    except _CellError as exc:
        raise _CellError(f"{exc}; write the number of contracts per leg, e.g. 2") from None
    if value != value.to_integral_value():
        raise _CellError("must be a whole number of contracts per leg, e.g. 2")
    if value < 1:
        raise _CellError("must be at least 1 contract per leg")
    return int(value)


def _parse_strategy(text: str) -> Strategy:
    for strategy in Strategy:
        if text.casefold() == strategy.value.casefold():
            return strategy
    raise _CellError(
        "must be Long (Bull Put: Buy Put + Sell Put) or Short (Bear Call: Sell Call + "
        "Buy Call); write one of them"
    )


# --------------------------------------------------------------------------- the parse


def parse_signal_sheet(rows: list[list[str]], trade_date: date, ticker: str = "QQQ") -> SheetResult:
    """The signal for `trade_date` (a New York date) and `ticker`, or why there is none.

    Never raises on cell content: every outcome is a SheetResult.
    """
    ticker = ticker.strip().upper()
    header = _read_header(rows)
    if isinstance(header, SheetInvalid):
        return header
    date_name = header.names[DATE]
    warnings: list[str] = []
    matches: list[tuple[_Row, _ParsedDate]] = []
    month_first_rows: list[int] = []
    for position in range(header.row, len(rows)):
        raw = rows[position]
        if not any(_clean(c) for c in raw):
            continue
        row = _Row(
            position + 1,
            {key: _clean(raw[i]) if i < len(raw) else "" for key, i in header.index.items()},
        )
        date_text = row.cells[DATE]
        if not date_text:
            if any(not _blank(row.cells[key]) for key in _CONTENT):
                warnings.append(
                    f"row {row.number}: {date_name} is empty; "
                    "the row is ignored until it has a date"
                )
            continue
        parsed = _parse_date(date_text)
        if parsed.value is None:
            warnings.append(
                f"row {row.number}: {date_name} {date_text!r} is not a date: {parsed.problem}"
            )
            if parsed.month_first_only:
                month_first_rows.append(row.number)
            continue
        if parsed.value == trade_date:
            matches.append((row, parsed))

    if not matches:
        return _not_found(warnings)

    swappable = [row.number for row, parsed in matches if parsed.order_ambiguous]
    if swappable and month_first_rows:
        return SheetAmbiguous(
            tuple(sorted({*swappable, *month_first_rows})),
            f"{date_name} of row {swappable[0]} reads as {trade_date.isoformat()} day-first, "
            f"but row {month_first_rows[0]} holds a month-first (US order) date, so the "
            f"column's order is in doubt; write every {date_name} day-first (24/11/2026) or "
            "as 2026-11-24, or set the sheet's locale to Italy",
        )

    # A row for another traded ticker belongs to that ticker's signal; an unknown
    # ticker stays in, to be rejected as Invalid rather than silently skipped.
    others = SUPPORTED_TICKERS - {ticker}
    candidates = [row for row, _ in matches if _ticker_of(row) not in others]
    if not candidates:
        return _not_found(warnings)
    with_content = [r for r in candidates if any(not _blank(r.cells[k]) for k in _CONTENT)]
    if with_content:
        candidates = with_content
    distinct: dict[tuple[object, ...], _Row] = {}
    for row in candidates:
        distinct.setdefault(_fingerprint(row), row)
    if len(distinct) > 1:
        return _ambiguous_rows(list(distinct.values()), candidates, header, trade_date)
    return _evaluate(candidates[0], header, trade_date, ticker)


def _not_found(warnings: list[str]) -> SheetNotFound:
    if len(warnings) > _MAX_WARNINGS:
        extra = len(warnings) - _MAX_WARNINGS
        warnings = [*warnings[:_MAX_WARNINGS], f"... and {extra} more rows with problems"]
    return SheetNotFound(tuple(warnings))


def _blank(text: str) -> bool:
    return not text or text in _UNUSED


def _ticker_of(row: _Row) -> str:
    text = row.cells[TICKER]
    return "" if _blank(text) else text.upper()


def _fingerprint(row: _Row) -> tuple[object, ...]:
    """What a row says, independent of how it is typed ('486,5' == '486.50')."""
    strategy = row.cells[STRATEGY]
    parts: list[object] = [_ticker_of(row), "" if _blank(strategy) else strategy.casefold()]
    for key in (QTY, *_STRIKES):
        text = "" if _blank(row.cells[key]) else row.cells[key]
        try:
            parts.append(_canonical(_parse_number(text)) if text else "")
        except _CellError:
            parts.append(text)
    return tuple(parts)


def _ambiguous_rows(
    distinct: list[_Row], candidates: list[_Row], header: _Header, trade_date: date
) -> SheetAmbiguous:
    first, second = distinct[0], distinct[1]
    keys = (TICKER, STRATEGY, QTY, *_STRIKES)
    a, b = _fingerprint(first), _fingerprint(second)
    diffs = [
        f"{header.names[key]} {first.cells[key]!r} vs {second.cells[key]!r}"
        for key, x, y in zip(keys, a, b, strict=True)
        if x != y
    ]
    numbers = [r.number for r in candidates]
    listed = ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"
    return SheetAmbiguous(
        tuple(numbers),
        f"rows {listed} {'both' if len(numbers) == 2 else 'all'} have {header.names[DATE]} "
        f"{trade_date.isoformat()} but differ "
        f"(row {first.number} vs row {second.number}: {'; '.join(diffs)}); delete the wrong "
        f"row or correct its {header.names[DATE]}",
    )


def _evaluate(row: _Row, header: _Header, trade_date: date, ticker: str) -> SheetResult:
    names, cells = header.names, row.cells
    errors: list[FieldError] = []
    missing: list[str] = []

    if _blank(cells[TICKER]):
        missing.append(names[TICKER])
    elif _ticker_of(row) != ticker:
        errors.append(
            FieldError(
                names[TICKER],
                cells[TICKER],
                f"only {ticker} is traded; write {ticker} or delete the row",
            )
        )

    strategy: Strategy | None = None
    if _blank(cells[STRATEGY]):
        missing.append(names[STRATEGY])
    else:
        try:
            strategy = _parse_strategy(cells[STRATEGY])
        except _CellError as exc:
            errors.append(FieldError(names[STRATEGY], cells[STRATEGY], str(exc)))

    qty: int | None = None
    if _blank(cells[QTY]):
        missing.append(names[QTY])
    else:
        try:
            qty = _parse_qty(cells[QTY])
        except _CellError as exc:
            errors.append(FieldError(names[QTY], cells[QTY], str(exc)))

    strikes: dict[str, Decimal] = {}
    filled: list[str] = []
    for key in _STRIKES:
        text = cells[key]
        if _blank(text):
            continue
        filled.append(key)
        try:
            strikes[key] = _parse_strike(text)
        except _CellError as exc:
            if strategy is not None and key in _SIDES[strategy]:
                fix = f"{strategy.value} needs this strike, e.g. 486 or 486,5"
            else:
                fix = "use '-' or leave it empty if the leg is unused"
            rule = f"{exc}; {fix}"
            errors.append(FieldError(names[key], text, rule))

    if strategy is not None:
        long_leg, short_leg = _SIDES[strategy]
        missing.extend(names[key] for key in (long_leg, short_leg) if key not in filled)
        if long_leg in strikes and short_leg in strikes:
            errors.extend(_order_error(strategy, strikes, cells, names))

    if errors:
        return SheetInvalid(row.number, tuple(errors))

    if strategy is not None:
        other = [k for k in _STRIKES if k not in _SIDES[strategy] and k in filled]
        if other:
            return SheetAmbiguous((row.number,), _other_side_reason(strategy, other, cells, names))

    if missing:
        return SheetIncomplete(row.number, tuple(_ordered(missing, names)))

    assert strategy is not None and qty is not None
    try:
        signal = validate(
            Signal,
            {
                "trade_date": trade_date,
                "ticker": ticker,
                "strategy": strategy,
                "qty_per_leg": qty,
                **{key: strikes[key] for key in _SIDES[strategy]},
            },
            subject=f"signal in row {row.number}",
        )
    except DomainValidationError as exc:  # defence in depth: the checks above mirror Signal's
        return SheetInvalid(row.number, tuple(exc.errors))
    return SheetFound(signal, row.number)


def _ordered(missing: list[str], names: dict[str, str]) -> list[str]:
    order = {names[key]: i for i, key in enumerate(_COLUMNS)}
    return sorted(missing, key=lambda name: order.get(name, len(order)))


def _order_error(
    strategy: Strategy, strikes: dict[str, Decimal], cells: dict[str, str], names: dict[str, str]
) -> list[FieldError]:
    if strategy is Strategy.LONG:
        bought, sold = strikes[BUY_PUT], strikes[SELL_PUT]
        if bought < sold:
            return []
        return [
            FieldError(
                names[BUY_PUT],
                cells[BUY_PUT],
                f"Long (Bull Put) buys the lower put: {names[BUY_PUT]} must be below "
                f"{names[SELL_PUT]} ({cells[SELL_PUT]}); swap the two strikes if they were "
                "typed in the wrong columns",
            )
        ]
    bought, sold = strikes[BUY_CALL], strikes[SELL_CALL]
    if bought > sold:
        return []
    return [
        FieldError(
            names[BUY_CALL],
            cells[BUY_CALL],
            f"Short (Bear Call) buys the higher call: {names[BUY_CALL]} must be above "
            f"{names[SELL_CALL]} ({cells[SELL_CALL]}); swap the two strikes if they were "
            "typed in the wrong columns",
        )
    ]


def _other_side_reason(
    strategy: Strategy, other: list[str], cells: dict[str, str], names: dict[str, str]
) -> str:
    used = " and ".join(names[k] for k in _SIDES[strategy])
    stray = " and ".join(f"{names[k]} ({cells[k]!r})" for k in other)
    to_clear = " and ".join(names[k] for k in other)
    flip = Strategy.SHORT if strategy is Strategy.LONG else Strategy.LONG
    flip_clear = " and ".join(names[k] for k in _SIDES[strategy])
    return (
        f"{names[STRATEGY]} is {strategy.value}, which uses {used}, but {stray} "
        f"{'is' if len(other) == 1 else 'are'} also filled in; clear {to_clear} (empty or '-'), "
        f"or if the trade is {flip.value}, change {names[STRATEGY]} and clear {flip_clear}"
    )
