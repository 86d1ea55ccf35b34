"""The monthly statement as a PDF (fpdf2).

Byte-reproducible: everything printed comes from the `Statement` (no clock
reads), the creation date is the period's end, fpdf2 derives the file /ID from
the content, and the font is DejaVu Sans vendored in `fonts/`: a system font
could differ between machines and change the embedded subset, hence the bytes.

The vendored file is a subset of DejaVu Sans 2.37 (Latin with its extensions,
Greek, Cyrillic, punctuation, currency signs: names, € and — render), made with

    pyftsubset DejaVuSans.ttf --unicodes="$FONT_UNICODES" --layout-features='*' \
        --glyph-names --notdef-outline --no-hinting --output-file=fonts/DejaVuSans.ttf

(FONT_UNICODES below). fpdf2 parses the font for every document and subsets it
again on output, and the work grows with the file: the full 740 KB font costs
~30 ms per statement, this 115 KB subset ~3 ms. One face only: a second (bold)
face is one more parse and subset per document; emphasis is size and colour.
A character the subset lacks is printed as its base letter or "?", never
silently dropped.

Layout (A4 portrait): operator header, title with the month, follower
details (IBAN masked), the summary (P&L, rate, commission, FX, adjustments,
amount due, payable or not), a chart of cumulative P&L over the month, then
the daily table (its header repeated on every page), "Page X of Y" below.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from itertools import pairwise
from pathlib import Path

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]  # fpdf2's own dependency
from fpdf import FPDF

from spreadpilot.domain.statement import Adjustment, DayLine, Statement

FONTS = Path(__file__).with_name("fonts")
FONT_FILE = FONTS / "DejaVuSans.ttf"
FONT_UNICODES = (
    "U+0020-007E,U+00A0-024F,U+0300-036F,U+0370-03FF,U+0400-04FF,U+1E00-1EFF,"
    "U+2010-2027,U+2030-203A,U+20A0-20BF,U+2122,U+2190-2193,U+2212"
)
FONT = "DejaVu"
MINUS = "−"  # U+2212: every negative amount, in the summary, the chart and the table
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF "}
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
BAND = (241, 243, 245)
GAIN = (25, 135, 84)
LOSS = (200, 35, 51)
ACCENT = (13, 71, 161)
ZERO = Decimal(0)
VALUE_WIDTH = 82.0  # mm, the summary's right-aligned column


def money(value: Decimal, currency: str = "USD") -> str:
    """1,234.50 with the currency's symbol; a loss as −$12.00 (a real minus sign)."""
    symbol = SYMBOLS.get(currency, f"{currency} ")
    amount = f"{abs(value):,.2f}"
    return f"{MINUS}{symbol}{amount}" if value < 0 else f"{symbol}{amount}"


def month_name(month: str) -> str:
    """'2026-11' -> 'November 2026' (English, whatever the machine's locale)."""
    year, number = (int(p) for p in month.split("-"))
    return f"{date(year, number, 1):%B %Y}"


@cache
def _covered() -> frozenset[int]:
    """The code points the vendored font has glyphs for (read once per process)."""
    return frozenset(TTFont(FONT_FILE, lazy=True).getBestCmap())


def printable(text: str) -> str:
    """`text` with what the font cannot draw replaced: its base letter when it has
    one the font covers (NFKD), else "?". fpdf2 would drop it with a log line; a
    billing document must not lose part of a name without a trace."""
    covered = _covered()
    if all(ord(c) in covered for c in text):
        return text
    out = []
    for char in text:
        if ord(char) in covered:
            out.append(char)
            continue
        base = "".join(
            c
            for c in unicodedata.normalize("NFKD", char)
            if ord(c) in covered and not unicodedata.combining(c)
        )
        out.append(base or "?")
    return "".join(out)


class _Pdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.add_font(FONT, "", str(FONT_FILE))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(16, 14, 16)

    @property
    def content_width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def style(self, size: float, color: tuple[int, int, int] = INK) -> None:
        self.set_font(FONT, "", size)
        self.set_text_color(*color)

    def heading(self, text: str) -> None:
        self.style(11)
        self.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-12)
        self.style(7.5, MUTED)
        self.cell(0, 5, self.footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")


def render_statement(s: Statement) -> bytes:
    """The statement's PDF bytes (the same bytes for the same statement)."""
    pdf = _Pdf(printable(f"{s.operator.name} · statement {s.month} · {s.follower_id}"))
    pdf.set_creation_date(datetime.combine(s.period_end, time(0), UTC))
    pdf.set_title(printable(f"Statement {s.month} {s.follower_name}"))
    pdf.set_author(printable(s.operator.name))
    pdf.set_producer("SpreadPilot")
    pdf.alias_nb_pages()
    pdf.add_page()
    _header(pdf, s)
    _summary(pdf, s)
    _chart(pdf, s)
    _table(pdf, s)
    return bytes(pdf.output())


def _header(pdf: _Pdf, s: Statement) -> None:
    pdf.style(13)
    pdf.cell(0, 7, printable(s.operator.name), new_x="LMARGIN", new_y="NEXT")
    pdf.style(8.5, MUTED)
    for line in (*s.operator.address, s.operator.email):
        pdf.cell(0, 4.2, printable(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.style(18, ACCENT)
    pdf.cell(0, 9, f"Monthly statement — {month_name(s.month)}", new_x="LMARGIN", new_y="NEXT")
    pdf.style(9, MUTED)
    period = f"Period {s.period_start:%d %b %Y} – {s.period_end:%d %b %Y}"
    if not s.complete:
        period += f" (month to date, through {s.period_end:%d %b %Y}; not final)"
    pdf.cell(0, 5, period, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    details = (
        ("Follower", f"{s.follower_name} ({s.follower_id})"),
        ("Email", s.follower_email),
        ("IB account", s.ib_account),
        ("IBAN", s.iban_masked),
    )
    pdf.set_draw_color(*RULE)
    pdf.line(pdf.l_margin, pdf.get_y() - 1.5, pdf.w - pdf.r_margin, pdf.get_y() - 1.5)
    for label, value in details:
        pdf.style(8.5, MUTED)
        pdf.cell(28, 5, label)
        pdf.style(9)
        pdf.cell(0, 5, printable(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _summary_row(pdf: _Pdf, label: str, value: str, size: float = 9) -> None:
    """Label left, value right, a rule under the whole row."""
    pdf.style(size)
    pdf.cell(pdf.content_width - VALUE_WIDTH, 5.6, label)
    pdf.cell(VALUE_WIDTH, 5.6, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*RULE)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())


def _adjustment(pdf: _Pdf, a: Adjustment, currency: str) -> None:
    """One correction of a mailed month: figures on the row, the reason wrapped below
    it (a reason of any length never runs into the figures)."""
    pdf.style(9)
    pdf.cell(pdf.content_width - VALUE_WIDTH, 5.6, f"Adjustment to {month_name(a.month)}")
    figures = f"P&L {money(a.pnl_usd)} · commission {money(a.commission_billed, currency)}"
    pdf.cell(VALUE_WIDTH, 5.6, figures, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.style(8, MUTED)
    pdf.set_x(pdf.l_margin + 4)
    pdf.multi_cell(pdf.content_width - 4, 4, printable(a.reason), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(pdf.get_y() + 0.8)
    pdf.set_draw_color(*RULE)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())


def _summary(pdf: _Pdf, s: Statement) -> None:
    usd, cur = "USD", s.currency
    pdf.heading("Summary")
    _summary_row(pdf, "Realised P&L (net of IB commissions)", money(s.realised_usd))
    _summary_row(pdf, "Change in unrealised P&L", money(s.unrealised_change_usd))
    _summary_row(pdf, "P&L of the month", money(s.pnl_usd), size=9.8)
    if s.high_water_mark:
        _summary_row(pdf, "Losses carried forward (high-water mark)", money(s.carried_loss_usd))
    _summary_row(pdf, "Commission rate", f"{s.rate * 100:.2f}%")
    _summary_row(pdf, "Commission", money(s.commission_usd, usd))
    if cur != usd:
        on = f" on {s.fx_date:%d %b %Y}" if s.fx_date else ""
        _summary_row(pdf, "Exchange rate", f"1 USD = {s.fx_rate} {cur}{on}")
        _summary_row(pdf, f"P&L in {cur}", money(s.pnl_billed, cur))
        _summary_row(pdf, f"Commission in {cur}", money(s.commission_billed, cur))
    for a in s.adjustments:
        _adjustment(pdf, a, cur)
    pdf.ln(2.5)
    credit = s.amount_due < 0
    pdf.set_fill_color(*BAND)
    pdf.style(11, GAIN if credit else INK)
    label = "Credit in your favour" if credit else "Amount due"
    pdf.cell(pdf.content_width - VALUE_WIDTH, 9, f"  {label}", fill=True)
    amount = money(abs(s.amount_due), cur)
    pdf.cell(VALUE_WIDTH, 9, f"{amount}  ", fill=True, align="R", new_x="LMARGIN", new_y="NEXT")
    status = "Commission due" if s.is_payable else "No commission this month: P&L not positive"
    if s.adjustments:
        status += "; the amount includes the adjustments above"
    pdf.style(8.5, INK if s.is_payable else MUTED)
    pdf.cell(0, 5.5, f"  {status}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _axis_label(value: Decimal) -> str:
    text = f"{abs(value):,.0f}"
    return f"{MINUS}{text}" if value < 0 else text


def _chart(pdf: _Pdf, s: Statement) -> None:
    """Cumulative P&L by trading day from 0 at the month's start: a line over a
    dashed zero rule, the axis labelled at the highest and lowest values."""
    pdf.heading("Cumulative P&L over the month (USD)")
    x0, y0 = pdf.l_margin + 18, pdf.get_y() + 2
    w, h = pdf.w - pdf.r_margin - x0, 46.0
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    pdf.rect(x0, y0, w, h)
    points = [ZERO, *(line.cumulative for line in s.days)]
    top, bottom = max(points), min(points)
    pad = (top - bottom) / 20 or Decimal(1)  # the line never sits on the frame
    span = top - bottom + 2 * pad

    def y_of(v: Decimal) -> float:
        return y0 + h - float((v - bottom + pad) / span) * h

    pdf.style(7, MUTED)
    for value in dict.fromkeys((top, ZERO, bottom)):  # distinct, in order
        pdf.set_xy(pdf.l_margin, y_of(value) - 2)
        pdf.cell(17, 4, _axis_label(value), align="R")
        pdf.line(x0 - 1, y_of(value), x0, y_of(value))
    pdf.set_draw_color(*MUTED)
    pdf.set_dash_pattern(dash=1, gap=1)
    pdf.line(x0, y_of(ZERO), x0 + w, y_of(ZERO))
    pdf.set_dash_pattern()
    if not s.days:
        pdf.set_xy(x0, y0 + h / 2 - 6)
        pdf.cell(w, 4, "No trading days in the period", align="C")
        pdf.set_y(y0 + h + 6)
        return
    color = GAIN if points[-1] >= 0 else LOSS
    step = w / (len(points) - 1)
    coords = [(x0 + i * step, y_of(v)) for i, v in enumerate(points)]
    pdf.set_line_width(0.6)
    pdf.set_draw_color(*color)
    for (xa, ya), (xb, yb) in pairwise(coords):
        pdf.line(xa, ya, xb, yb)
    pdf.set_line_width(0.2)
    pdf.set_fill_color(*color)
    for x, y in coords[1:]:
        pdf.ellipse(x - 0.7, y - 0.7, 1.4, 1.4, style="F")
    pdf.style(7, MUTED)
    pdf.set_xy(x0, y0 + h + 0.5)
    pdf.cell(w / 2, 4, f"{s.period_start:%d %b}")
    pdf.cell(w / 2, 4, f"{s.days[-1].day:%d %b}", align="R")
    pdf.set_y(y0 + h + 8)


COLUMNS = (
    ("Date", 30, "L"),
    ("Realised", 32, "R"),
    ("Unrealised chg", 32, "R"),
    ("Day P&L", 30, "R"),
    ("Cumulative", 32, "R"),
    ("Trades", 22, "R"),
)
ROW = 5.2


def _table_row(pdf: _Pdf, cells: Iterable[str], header: bool = False) -> None:
    pdf.set_fill_color(*BAND)
    for (_, width, align), text in zip(COLUMNS, cells, strict=True):
        pdf.style(8.5, LOSS if text.startswith(MINUS) else INK)
        pdf.cell(width, ROW + (0.8 if header else 0), text, align=align, fill=header)
    pdf.ln(ROW + (0.8 if header else 0))


def _day_cells(line: DayLine) -> tuple[str, ...]:
    return (
        f"{line.day:%a %d %b}",
        money(line.realised),
        money(line.unrealised_change),
        money(line.pnl),
        money(line.cumulative),
        str(line.trades),
    )


def _table(pdf: _Pdf, s: Statement) -> None:
    pdf.heading("Daily P&L (USD)")
    if not s.days:
        pdf.style(9, MUTED)
        pdf.cell(0, 6, "No trades and no positions this month.", new_x="LMARGIN", new_y="NEXT")
        return
    titles = [title for title, _, _ in COLUMNS]
    _table_row(pdf, titles, header=True)
    for line in s.days:
        if pdf.will_page_break(ROW):
            pdf.add_page()
            _table_row(pdf, titles, header=True)
        _table_row(pdf, _day_cells(line))
