"""Tables the command line and the demo print: one rendering of an order everywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.table import Table

from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.domain.money import cents
from spreadpilot.services.traces import OrderSummary, Totals, TraceLine


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${cents(value)}"


def orders_table(
    dispatched: Mapping[str, Mapping[str, Any]],
    followers: Mapping[str, Mapping[str, Any]],
    orders: Sequence[OrderSummary],
    title: str,
) -> Table:
    """Every dispatched follower: why it was skipped, or each of its orders at IB (the
    opening sale, then any close)."""
    table = Table(
        "follower",
        "account",
        "order",
        "outcome",
        "filled",
        "price",
        "steps",
        "to fill",
        "orderRef / reason",
        title=title,
    )
    table.columns[-1].overflow = "fold"
    table.columns[-1].min_width = 27  # a whole orderRef on one line
    by_follower: dict[str, list[OrderSummary]] = {}
    for order in orders:
        by_follower.setdefault(order.follower_id, []).append(order)
    for fid in sorted(set(dispatched) | set(by_follower)):
        if fid not in by_follower:
            o = dispatched[fid]
            record = followers.get(fid, {})
            published = o["status"] == "PUBLISHED"
            table.add_row(
                fid,
                str(record.get("ib_account", "")),
                "-",
                "NOT EXECUTED YET" if published else str(o["status"]),
                *["-"] * 4,
                str(o["order_ref"] or o["reason"]),
            )
            continue
        for order in by_follower[fid]:
            ttf = order.time_to_fill
            table.add_row(
                fid,
                order.account,
                order.purpose,
                order.outcome,
                f"{order.filled}/{order.quantity}",
                _price(order.net_price),
                str(order.ladder_steps) if order.purpose == "OPEN" else "-",
                f"{ttf.total_seconds():.0f} s" if ttf is not None else "-",
                order.order_ref
                if order.outcome == "FILLED"
                else f"{order.order_ref}: {order.reason}",
            )
    return table


def _usd(value: Decimal | str) -> str:
    """Signed dollars and cents (stored rows hold Decimal strings)."""
    value = cents(Decimal(value))
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _price(value: Decimal | None) -> str:
    """A credit as $0.85, a debit as -$1.44 (per share)."""
    if value is None:
        return "-"
    return f"-${cents(-value)}" if value < 0 else f"${cents(value)}"


def totals_line(t: Totals) -> str:
    outcomes = ", ".join(f"{n} {k}" for k, n in t.outcomes.items()) or "none"
    paid = f", paid ${t.debit:,.2f} to close" if t.debit else ""
    return (
        f"Totals: {t.orders} orders ({outcomes}); {t.contracts_filled} of "
        f"{t.contracts_requested} contracts opened; credit ${t.premium:,.2f}{paid}, "
        f"commissions ${t.commission:,.2f}, net {_usd(t.net)}"
    )


def trace_header(doc: Mapping[str, Any], order: OrderSummary) -> str:
    return (
        f"{order.order_ref}  follower {order.follower_id}  account {order.account}  "
        f"gateway {order.gateway_id}  signal {doc.get('signal_id', '')}\n"
        f"outcome {order.outcome}: {order.filled}/{order.quantity} filled at "
        f"{_price(order.net_price)}, commission {_money(order.commission)}, "
        f"IB permId {doc.get('perm_id') or '-'}"
        + (f"\nreason: {order.reason}" if order.reason else "")
    )


def trace_table(lines: list[TraceLine]) -> Table:
    """Report by report: what the agent did and what IB answered."""
    table = Table("time (ET)", "event", "step", "credit", "filled", "detail", title="Trace")
    table.columns[-1].overflow = "fold"
    for line in lines:
        table.add_row(
            f"{line.at.astimezone(NEW_YORK):%H:%M:%S}",
            line.event,
            "-" if line.ladder_step is None else str(line.ladder_step),
            _money(line.credit),
            f"{line.filled}/{line.quantity}",
            line.detail,
        )
    return table


def pnl_day_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """One trading day per follower: realised, change in unrealised, the day's P&L."""
    table = Table(
        "follower",
        "account",
        "realised",
        "unrealised chg",
        "P&L",
        "trades",
        "held",
        "notes",
        title=title,
    )
    for col in (2, 3, 4, 5):
        table.columns[col].justify = "right"
    for r in sorted(rows, key=lambda r: r["follower_id"]):
        change = Decimal(r["unrealised"]) - Decimal(r["unrealised_before"])
        notes = []
        if r.get("provisional"):
            notes.append("expiry settled from the close (not yet seen at IB)")
        if r.get("marks_carried"):
            notes.append("last known marks")
        if r.get("unmarked"):
            notes.append(f"no mark: {', '.join(r['unmarked'])}")
        held = ", ".join(f"{h['quantity']:+d} {h['symbol']} {h['sec_type']}" for h in r["holdings"])
        table.add_row(
            r["follower_id"],
            r["account"],
            _usd(r["realised"]),
            _usd(change),
            _usd(r["pnl"]),
            str(r["trades"]),
            held or "-",
            "; ".join(notes),
        )
    return table


def month_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """One month per follower: P&L, commission, billing currency, payment state."""
    table = Table(
        "follower",
        "month",
        "P&L (USD)",
        "rate",
        "commission",
        "currency",
        "payable",
        "paid",
        title=title,
    )
    for col in (2, 3, 4):
        table.columns[col].justify = "right"
    for r in sorted(rows, key=lambda r: (r["month"], r["follower_id"])):
        fx = "" if r["currency"] == "USD" else f" @ {r['fx_rate']} ({r['fx_date']})"
        table.add_row(
            r["follower_id"],
            r["month"] + ("" if r.get("complete") else " (to date)"),
            _usd(r["pnl"]),
            f"{Decimal(r['commission_rate']):.1%}",
            f"{Decimal(r['commission_billed']):,.2f}",
            r["currency"] + fx,
            "yes" if r["is_payable"] else "no",
            f"yes ({r['paid_reference']})" if r.get("paid") else "no",
        )
    return table
