"""The monthly statement as a PDF (fpdf2).

Byte-reproducible: everything printed comes from the `Statement` (no clock
reads), the creation date is the period's end, and the font is DejaVu Sans
vendored in `fonts/` (a system font could differ between machines and change
the embedded subset, hence the bytes). DejaVu covers € and —.

Layout (A4 portrait): operator header, title with the month, follower
details (IBAN masked), the summary (P&L, rate, commission, FX, adjustments,
amount due), a chart of cumulative P&L over the month, then the daily table
(its header repeated on every page), "Page X of Y" in the footer.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache
from itertools import pairwise
from pathlib import Path

from fpdf import FPDF

from spreadpilot.domain.statement import Statement

FONTS = Path(__file__).with_name("fonts")
FONT = "DejaVu"
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF "}
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
BAND = (241, 243, 245)
GAIN = (25, 135, 84)
LOSS = (200, 35, 51)
ACCENT = (13, 71, 161)


def money(value: Decimal, currency: str = "USD") -> str:
    """1,234.50 with the currency's symbol; a loss as −$12.00 (a real minus sign)."""
    symbol = SYMBOLS.get(currency, f"{currency} ")
    amount = f"{abs(value):,.2f}"
    return f"−{symbol}{amount}" if value < 0 else f"{symbol}{amount}"


def month_name(month: str) -> str:
    year, number = (int(p) for p in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC).strftime("%B %Y")


@cache
def _font_file() -> str:
    return str(FONTS / "DejaVuSans.ttf")


class _Pdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        # one face: emphasis is size and colour. Each embedded face costs ~13 ms of
        # font subsetting per document (bench/statements.py), a second face halves
        # the statements per second.
        self.add_font(FONT, "", _font_file())
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(16, 14, 16)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")


def render_statement(s: Statement) -> bytes:
    """The statement's PDF bytes (the same bytes for the same statement)."""
    pdf = _Pdf(f"{s.operator.name} · statement {s.month} · {s.follower_id}")
    pdf.set_creation_date(datetime.combine(s.period_end, time(0), UTC))
    pdf.set_title(f"Statement {s.month} {s.follower_name}")
    pdf.set_author(s.operator.name)
    pdf.set_producer("SpreadPilot")
    pdf.alias_nb_pages()
    pdf.add_page()
    _header(pdf, s)
    _summary(pdf, s)
    _chart(pdf, s)
    _table(pdf, s)
    return bytes(pdf.output())


def _header(pdf: _Pdf, s: Statement) -> None:
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, "", 13)
    pdf.cell(0, 7, s.operator.name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 8.5)
    pdf.set_text_color(*MUTED)
    for line in (*s.operator.address, s.operator.email):
        pdf.cell(0, 4.2, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_text_color(*ACCENT)
    pdf.set_font(FONT, "", 18)
    pdf.cell(0, 9, f"Monthly statement — {month_name(s.month)}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(*MUTED)
    period = f"Period {s.period_start:%d %b %Y} – {s.period_end:%d %b %Y}"
    if not s.complete:
        period += f" (month to date, through {s.period_end:%d %b %Y}; not final)"
    pdf.cell(0, 5, period, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    details = [
        ("Follower", f"{s.follower_name} ({s.follower_id})"),
        ("Email", s.follower_email),
        ("IB account", s.ib_account),
        ("IBAN", s.iban_masked),
    ]
    pdf.set_draw_color(*RULE)
    y0 = pdf.get_y()
    for label, value in details:
        pdf.set_font(FONT, "", 8.5)
        pdf.set_text_color(*MUTED)
        pdf.cell(28, 5, label)
        pdf.set_font(FONT, "", 9)
        pdf.set_text_color(*INK)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.line(pdf.l_margin, y0 - 1.5, pdf.w - pdf.r_margin, y0 - 1.5)
    pdf.ln(4)


def _summary(pdf: _Pdf, s: Statement) -> None:
    usd, cur = "USD", s.currency
    lines: list[tuple[str, str, bool]] = [
        ("Realised P&L (net of IB commissions)", money(s.realised_usd, usd), False),
        ("Change in unrealised P&L", money(s.unrealised_change_usd, usd), False),
        ("P&L of the month", money(s.pnl_usd, usd), True),
        ("Commission rate", f"{s.rate * 100:.2f}%", False),
    ]
    if s.high_water_mark:
        lines.append(("Losses carried forward (high-water mark)", money(s.carried_loss_usd), False))
    lines.append(("Commission", money(s.commission_usd, usd), False))
    if cur != usd:
        fx = f"1 USD = {s.fx_rate} {cur}" + (f" on {s.fx_date:%d %b %Y}" if s.fx_date else "")
        lines += [
            ("Exchange rate", fx, False),
            (f"P&L in {cur}", money(s.pnl_billed, cur), False),
            (f"Commission in {cur}", money(s.commission_billed, cur), False),
        ]
    for a in s.adjustments:
        lines.append(
            (
                f"Adjustment {a.month}: {a.reason}",
                f"P&L {money(a.pnl_usd, usd)} / {money(a.commission_billed, cur)}",
                False,
            )
        )
    pdf.set_font(FONT, "", 11)
    pdf.set_text_color(*INK)
    pdf.cell(0, 7, "Summary", new_x="LMARGIN", new_y="NEXT")
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for label, value, strong in lines:
        pdf.set_font(FONT, "", 9.6 if strong else 9)
        pdf.set_text_color(*INK)
        pdf.cell(width - 62, 5.6, label, border="B")
        pdf.cell(62, 5.6, value, border="", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_fill_color(*BAND)
    pdf.set_font(FONT, "", 11)
    if s.amount_due > 0:
        label, color = "Commission due", INK
        amount = money(s.amount_due, cur)
    elif s.amount_due < 0:
        label, color = "Credit in your favour", GAIN
        amount = money(-s.amount_due, cur)
    else:
        label, color = "No commission this month: P&L not positive", MUTED
        amount = money(Decimal(0), cur)
    pdf.set_text_color(*color)
    pdf.cell(width - 62, 9, f"  {label}", fill=True)
    pdf.cell(62, 9, f"{amount}  ", fill=True, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)


def _chart(pdf: _Pdf, s: Statement) -> None:
    """Cumulative P&L by trading day: a line over a zero rule, min and max labelled."""
    pdf.set_font(FONT, "", 11)
    pdf.set_text_color(*INK)
    pdf.cell(0, 7, "Cumulative P&L over the month (USD)", new_x="LMARGIN", new_y="NEXT")
    x0, y0 = pdf.l_margin + 18, pdf.get_y() + 2
    w, h = pdf.w - pdf.r_margin - x0, 48.0
    pdf.set_draw_color(*RULE)
    pdf.rect(x0, y0, w, h)
    points = [Decimal(0), *(line.cumulative for line in s.days)]
    top, bottom = max(points), min(points)
    if top == bottom:
        top, bottom = top + 1, bottom - 1
    span = top - bottom

    def y_of(v: Decimal) -> float:
        return y0 + h - float((v - bottom) / span) * h

    pdf.set_font(FONT, "", 7)
    pdf.set_text_color(*MUTED)
    for value in (top, Decimal(0), bottom):
        pdf.set_xy(pdf.l_margin, y_of(value) - 2)
        pdf.cell(17, 4, f"{value:,.0f}", align="R")
    pdf.set_draw_color(*MUTED)
    pdf.set_dash_pattern(dash=1, gap=1)
    pdf.line(x0, y_of(Decimal(0)), x0 + w, y_of(Decimal(0)))
    pdf.set_dash_pattern()
    step = w / max(len(points) - 1, 1)
    coords = [(x0 + i * step, y_of(v)) for i, v in enumerate(points)]
    pdf.set_line_width(0.6)
    pdf.set_draw_color(*(GAIN if points[-1] >= 0 else LOSS))
    for (xa, ya), (xb, yb) in pairwise(coords):
        pdf.line(xa, ya, xb, yb)
    pdf.set_line_width(0.2)
    pdf.set_fill_color(*(GAIN if points[-1] >= 0 else LOSS))
    for x, y in coords[1:]:
        pdf.ellipse(x - 0.7, y - 0.7, 1.4, 1.4, style="F")
    if s.days:
        pdf.set_text_color(*MUTED)
        pdf.set_xy(x0, y0 + h + 0.5)
        pdf.cell(w / 2, 4, f"{s.days[0].day:%d %b}")
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


def _table_header(pdf: _Pdf) -> None:
    pdf.set_font(FONT, "", 8.5)
    pdf.set_fill_color(*BAND)
    pdf.set_text_color(*INK)
    for title, width, align in COLUMNS:
        pdf.cell(width, 6, title, fill=True, align=align)
    pdf.ln(6)


def _table(pdf: _Pdf, s: Statement) -> None:
    pdf.set_font(FONT, "", 11)
    pdf.set_text_color(*INK)
    pdf.cell(0, 7, "Daily P&L (USD)", new_x="LMARGIN", new_y="NEXT")
    if not s.days:
        pdf.set_font(FONT, "", 9)
        pdf.set_text_color(*MUTED)
        pdf.cell(0, 6, "No trades and no positions this month.", new_x="LMARGIN", new_y="NEXT")
        return
    _table_header(pdf)
    pdf.set_draw_color(*RULE)
    for line in s.days:
        if pdf.will_page_break(5.2):
            pdf.add_page()
            _table_header(pdf)
        cells = (
            f"{line.day:%a %d %b}",
            money(line.realised),
            money(line.unrealised_change),
            money(line.pnl),
            money(line.cumulative),
            str(line.trades),
        )
        for (_, width, align), text in zip(COLUMNS, cells, strict=True):
            pdf.set_font(FONT, "", 8.5)
            negative = text.startswith("−")
            pdf.set_text_color(*(LOSS if negative else INK))
            pdf.cell(width, 5.2, text, border="", align=align)
        pdf.ln(5.2)
