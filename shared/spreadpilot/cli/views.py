"""Tables the command line and the demo print: one rendering of an order everywhere."""

from __future__ import annotations

from collections.abc import Mapping
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
    orders: Mapping[str, OrderSummary],
    title: str,
) -> Table:
    """Every dispatched follower: why it was skipped, or what the agent did at IB."""
    table = Table(
        "follower",
        "account",
        "gateway",
        "outcome",
        "filled",
        "credit",
        "ladder steps",
        "time to fill",
        "orderRef / reason",
        title=title,
    )
    table.columns[-1].overflow = "fold"
    table.columns[-1].min_width = 27  # a whole orderRef on one line
    for fid in sorted(set(dispatched) | set(orders)):
        order = orders.get(fid)
        if order is None:
            o = dispatched[fid]
            record = followers.get(fid, {})
            published = o["status"] == "PUBLISHED"
            table.add_row(
                fid,
                str(record.get("ib_account", "")),
                str(record.get("gateway_id", "")),
                "NOT EXECUTED YET" if published else str(o["status"]),
                *["-"] * 4,
                str(o["order_ref"] or o["reason"]),
            )
            continue
        ttf = order.time_to_fill
        table.add_row(
            fid,
            order.account,
            order.gateway_id,
            order.outcome,
            f"{order.filled}/{order.quantity}",
            _money(order.avg_fill_credit),
            str(order.ladder_steps),
            f"{ttf.total_seconds():.0f} s" if ttf is not None else "-",
            order.order_ref if order.outcome == "FILLED" else f"{order.order_ref}: {order.reason}",
        )
    return table


def totals_line(t: Totals) -> str:
    outcomes = ", ".join(f"{n} {k}" for k, n in t.outcomes.items()) or "none"
    return (
        f"Totals: {t.orders} orders ({outcomes}); {t.contracts_filled} of "
        f"{t.contracts_requested} contracts filled; credit ${t.premium:,.2f}, "
        f"commissions ${t.commission:,.2f}, net ${t.net:,.2f}"
    )


def trace_header(doc: Mapping[str, Any], order: OrderSummary) -> str:
    return (
        f"{order.order_ref}  follower {order.follower_id}  account {order.account}  "
        f"gateway {order.gateway_id}  signal {doc.get('signal_id', '')}\n"
        f"outcome {order.outcome}: {order.filled}/{order.quantity} filled at "
        f"{_money(order.avg_fill_credit)}, commission {_money(order.commission)}, "
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
