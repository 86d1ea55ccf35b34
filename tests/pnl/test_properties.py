"""Property tests: the rollups against an independent recomputation written here
plainly from the raw executions and marks (cash in and out plus the change in
what the account holds is worth), not the production ledger called twice."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spreadpilot.domain.commission import FxRate, commission
from spreadpilot.platform import collections as C

from .book import QQQ, Book, at, call, make_store, put, rollup

DAYS = [date(2026, 11, d) for d in (2, 3, 4, 5, 6, 9)]  # consecutive NYSE sessions
CENT = Decimal("0.01")


def half_up(value: Decimal) -> Decimal:
    """domain.md: cents, half-up (Decimal's default context rounds half-even)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Leg:
    day_index: int
    right: str
    strike: int
    quantity: int  # signed
    price: Decimal
    fee: Decimal
    hhmm: str


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9.99"), places=2)
fees = st.sampled_from([Decimal("0"), Decimal("0.65"), Decimal("1.0365")])
legs = st.builds(
    Leg,
    day_index=st.integers(0, len(DAYS) - 1),
    right=st.sampled_from(["P", "C"]),
    strike=st.integers(480, 500),
    quantity=st.integers(-4, 4).filter(bool),
    price=money,
    fee=fees,
    hhmm=st.sampled_from(["09:31", "10:15", "12:00", "15:40"]),
)
closes = st.lists(
    st.decimals(min_value=Decimal("478"), max_value=Decimal("502"), places=2),
    min_size=len(DAYS),
    max_size=len(DAYS),
)
# shares sold (or bought back) at the next open: (day index, signed shares, price)
stock_trades = st.lists(
    st.tuples(
        st.integers(1, len(DAYS) - 1),
        st.integers(-400, 400).filter(bool),
        st.decimals(min_value=Decimal("478"), max_value=Decimal("502"), places=2),
    ),
    max_size=3,
)


def independent(
    legs: list[Leg], stocks: list[tuple[int, int, Decimal]], closes: list[Decimal]
) -> list[Decimal]:
    """Each day's P&L = cash that day + value held at its close - value held the day
    before. Options are 0DTE: at the close one at least 0.01 in the money delivers
    100 shares per contract at its strike (calls to the holder, puts from him)."""
    shares = 0
    value_before = Decimal(0)
    out = []
    for i in range(len(DAYS)):
        cash = Decimal(0)
        options: dict[tuple[str, int], int] = defaultdict(int)
        for leg in legs:
            if leg.day_index != i:
                continue
            cash += -leg.quantity * leg.price * 100 - abs(leg.quantity) * leg.fee
            options[(leg.right, leg.strike)] += leg.quantity
        for d, qty, price in stocks:
            if d == i:
                cash += -qty * price
                shares += qty
        close = closes[i]
        for (right, strike), qty in options.items():
            in_the_money = (close - strike) if right == "C" else (strike - close)
            if qty and in_the_money >= CENT:
                delivered = qty * 100 * (1 if right == "C" else -1)
                shares += delivered
                cash -= delivered * strike
        value = shares * close
        out.append(cash + value - value_before)
        value_before = value
    return out


def write(book: Book, legs: list[Leg], stocks: list[tuple[int, int, Decimal]], closes) -> None:
    for leg in legs:
        day = DAYS[leg.day_index]
        ins = (put if leg.right == "P" else call)(day, str(leg.strike))
        book.fill(day, leg.hhmm, ins, leg.quantity, str(leg.price), fee=leg.fee)
    for d, qty, price in stocks:
        book.fill(DAYS[d], "09:30", QQQ, qty, str(price), fee=Decimal(0))
    for i, day in enumerate(DAYS):
        book.marks(day, str(closes[i]))


def snapshot(store) -> dict[str, list[tuple[str, object]]]:  # type: ignore[no-untyped-def]
    return {
        c: sorted((s.id, s.data) for s in store.query(c))
        for c in (C.PNL_DAILY, C.PNL_MONTHLY, C.STATEMENTS)
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(legs=st.lists(legs, max_size=8), stocks=stock_trades, closes=closes)
def test_rollups_match_an_independent_recomputation(legs, stocks, closes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        store = make_store(path)
        try:
            write(Book(store), legs, stocks, closes)
            pnl, _ = rollup(store, path, at(date(2026, 12, 1), "09:00"))
            pnl.month_job(2026, 11, full=True)
            expected = independent(legs, stocks, closes)
            rows = {s.data["date"]: s.data for s in store.query(C.PNL_DAILY)}
            for day, want in zip(DAYS, expected, strict=True):
                got = rows.get(day.isoformat())
                if got is None:  # nothing traded or held: no row, nothing earned
                    assert want == 0
                    continue
                assert Decimal(got["pnl_cents"]) == half_up(want), day
            month = store.get(C.PNL_MONTHLY, "alice_2026-11")
            assert month is not None
            assert Decimal(month["pnl"]) == half_up(sum(expected, Decimal(0)))
            assert Decimal(month["commission_usd"]) >= 0
            # idempotent: the same inputs rolled up again leave the same rows
            before = snapshot(store)
            assert pnl.month_job(2026, 11, full=True).changed == 0
            pnl.days(DAYS[0], DAYS[-1])
            assert snapshot(store) == before
        finally:
            store.close()


@given(
    pnl=st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=4),
    rate=st.decimals(min_value=Decimal("0"), max_value=Decimal("0.5"), places=3),
    fx=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2"), places=4),
    carried=st.decimals(min_value=Decimal("0"), max_value=Decimal("50000"), places=2),
    hwm=st.booleans(),
)
def test_commission_is_never_negative_and_is_rate_times_positive_base(
    pnl, rate, fx, carried, hwm
) -> None:
    c = commission(
        pnl, rate, FxRate("EUR", fx, date(2026, 11, 30)), high_water_mark=hwm, carried_loss=carried
    )
    assert c.commission_usd >= 0 and c.commission_billed >= 0
    base = pnl.quantize(CENT) - (carried if hwm else 0)
    assert c.is_payable == (c.commission_billed > 0)
    if base <= 0:
        assert c.commission_usd == 0
        assert c.carried_loss_after == (-base if hwm else 0)
    else:
        assert c.commission_usd == half_up(base * rate)
        assert c.commission_billed == half_up(base * rate * fx)
        assert c.carried_loss_after == 0
