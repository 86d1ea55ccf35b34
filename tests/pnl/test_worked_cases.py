"""Hand-worked P&L cases, checked to the cent through the store and the rollup
(domain.md section 6's worked example and the cases issue 6 names)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from spreadpilot.domain.pnl import TradeKind
from spreadpilot.platform import collections as C
from spreadpilot.services.pnl import FxError
from spreadpilot.services.statements import StatementBook

from .book import QQQ, Book, at, call, follower, make_store, monthly, put, rollup, row

D1 = date(2026, 11, 24)  # Tuesday
D2 = date(2026, 11, 25)
AFTER_MONTH = at(date(2026, 12, 2), "09:00")


def worked_example(book: Book, day: date = D1) -> None:
    """Bull Put 486/488, 2 contracts, 0.75 credit, 0.65 per contract per leg."""
    book.spread(day, put(day, "488"), put(day, "486"), 2, "0.75")


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = make_store(tmp_path)
    yield s
    s.close()


def test_expires_worthless_is_the_credit_less_four_commissions(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    book.marks(D1, "490.00")
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    r = row(store, D1)
    assert Decimal(r["pnl_cents"]) == Decimal("147.40")
    assert Decimal(r["realised"]) == Decimal("147.40")
    assert Decimal(r["unrealised"]) == 0
    assert r["holdings"] == []
    assert sorted(r["provisional"]) == ["QQQ 20261124 P 486", "QQQ 20261124 P 488"]


def test_observed_expiry_replaces_the_provisional_one(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    book.marks(D1, "490.00")
    book.settled(
        D1,
        [(put(D1, "488"), -2, TradeKind.EXPIRED), (put(D1, "486"), 2, TradeKind.EXPIRED)],
        observed=0,
    )
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    r = row(store, D1)
    assert Decimal(r["pnl_cents"]) == Decimal("147.40")
    assert r["provisional"] == []


def test_closed_early_for_a_five_cent_debit(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    # the CLOSE combo: short leg bought back at 0.10, long leg sold at 0.05 -> 0.05 debit
    book.fill(D1, "14:02", put(D1, "488"), 2, "0.10", ref="SP-20261124-QQQ-alice-CLOSE")
    book.fill(D1, "14:02", put(D1, "486"), -2, "0.05", ref="SP-20261124-QQQ-alice-CLOSE")
    book.marks(D1, "489.00")
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    r = row(store, D1)
    # 150.00 - 10.00 - 2.60 - 2.60
    assert Decimal(r["pnl_cents"]) == Decimal("134.80")
    assert Decimal(r["commissions"]) == Decimal("5.20")
    assert r["trades"] == 4 and r["provisional"] == []


def test_max_loss_through_assignment_and_exercise(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    book.marks(D1, "480.00")
    book.settled(
        D1,
        [(put(D1, "488"), -2, TradeKind.ASSIGNED), (put(D1, "486"), 2, TradeKind.EXERCISED)],
        observed=0,  # 200 shares bought at 488 and 200 sold at 486
    )
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    r = row(store, D1)
    # 400.00 - 150.00 + 2.60 = 252.60 loss
    assert Decimal(r["pnl_cents"]) == Decimal("-252.60")
    assert r["holdings"] == []


def test_short_leg_assigned_overnight_then_flattened(store, tmp_path) -> None:
    """Shares carried overnight are unrealised at the close, realised at the flatten."""
    book = Book(store)
    worked_example(book)
    book.marks(D1, "487.00")
    book.settled(
        D1,
        [(put(D1, "488"), -2, TradeKind.ASSIGNED), (put(D1, "486"), 2, TradeKind.EXPIRED)],
        observed=200,
    )
    book.fill(D2, "09:30", QQQ, -200, "486.50", fee=Decimal("1.00"), ref="SP-FLATTEN")
    book.marks(D2, "486.40")
    pnl, _ = rollup(store, tmp_path, at(D2, "16:30"))
    pnl.days(D1, D2)
    day1, day2 = row(store, D1), row(store, D2)
    assert Decimal(day1["realised"]) == Decimal("147.40")  # 250 - 100 - 2.60
    assert Decimal(day1["unrealised"]) == Decimal("-200")  # 200 shares at 488, marked 487
    assert Decimal(day1["pnl_cents"]) == Decimal("-52.60")
    assert day1["holdings"][0]["quantity"] == 200
    assert Decimal(day2["realised"]) == Decimal("-301.00")  # (486.50 - 488) x 200 - 1.00
    assert Decimal(day2["pnl_cents"]) == Decimal("-101.00")
    assert day2["holdings"] == []


def test_partial_fill_counts_only_what_filled(store, tmp_path) -> None:
    book = Book(store)
    book.spread(D1, put(D1, "488"), put(D1, "486"), 1, "0.75")  # 1 of the 2 ordered
    book.marks(D1, "495.00")
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    assert Decimal(row(store, D1)["pnl_cents"]) == Decimal("73.70")  # 75.00 - 2 x 0.65


def test_an_ib_liquidation_without_our_order_ref_counts(store, tmp_path) -> None:
    book = Book(store)
    book.spread(D1, call(D1, "500"), call(D1, "502"), 2, "0.60")  # Bear Call
    # IB liquidates the short call at 1.80 before expiry; the long expires worthless
    book.fill(D1, "15:40", call(D1, "500"), 2, "1.80", ref="")
    book.marks(D1, "499.00")
    pnl, _ = rollup(store, tmp_path, at(D1, "16:30"))
    pnl.days(D1, D1)
    # sold 500C at 1.10, bought 502C at 0.50, bought back 500C at 1.80: (1.10-0.50-1.80) x 200
    # = -240.00; fees 6 x 0.65 = 3.90
    assert Decimal(row(store, D1)["pnl_cents"]) == Decimal("-243.90")


def test_intraday_open_spread_is_unrealised_from_marks(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    book.marks(D1, "489.00", {put(D1, "488"): "0.40", put(D1, "486"): "0.10"}, over=False)
    pnl, _ = rollup(store, tmp_path, at(D1, "12:00"))
    pnl.days(D1, D1)
    r = row(store, D1)
    # still open: realised is the commissions only; unrealised = credit 150 - cost to close 60
    assert Decimal(r["realised"]) == Decimal("-2.60")
    assert Decimal(r["unrealised"]) == Decimal("90.00")
    assert Decimal(r["pnl_cents"]) == Decimal("87.40")


def test_losing_month_bills_no_commission(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book, D1)
    book.marks(D1, "480.00")  # max loss, settled from the close price
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH)
    pnl.month_job(2026, 11, full=True)
    m = monthly(store, "2026-11")
    assert Decimal(m["pnl"]) == Decimal("-252.60")
    assert Decimal(m["commission_usd"]) == 0 and m["is_payable"] is False
    assert store.get(C.STATEMENTS, "alice_2026-11")["is_payable"] is False


def test_winning_month_is_realised_plus_change_in_unrealised(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book, D1)
    book.marks(D1, "490.00")
    worked_example(book, D2)
    book.marks(D2, "480.00")
    book.spread(
        date(2026, 11, 30),
        put(date(2026, 11, 30), "480"),
        put(date(2026, 11, 30), "478"),
        2,
        "0.75",
    )
    book.marks(date(2026, 11, 30), "490.00")
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH)
    pnl.month_job(2026, 11, full=True)
    m = monthly(store, "2026-11")
    assert Decimal(m["pnl"]) == Decimal("42.20")  # 147.40 - 252.60 + 147.40
    assert Decimal(m["commission_usd"]) == Decimal("8.44")  # 20 %
    assert m["trading_days"] == 3 and m["complete"] is True
    assert m["currency"] == "USD" and m["is_payable"] is True


def test_fx_billed_month_stores_the_rate_and_its_date(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book)
    book.marks(D1, "490.00")
    pnl, _ = rollup(
        store,
        tmp_path,
        AFTER_MONTH,
        billing_currency="EUR",
        fx_rate=Decimal("0.9213"),
        fx_rate_date=date(2026, 11, 30),
    )
    pnl.month_job(2026, 11, full=True)
    m = monthly(store, "2026-11")
    assert Decimal(m["commission_usd"]) == Decimal("29.48")  # 20 % of 147.40
    # 147.40 x 0.20 x 0.9213 = 27.159924 -> 27.16 (rounded once, half-up)
    assert Decimal(m["commission_billed"]) == Decimal("27.16")
    assert Decimal(m["pnl_billed"]) == Decimal("135.80")  # 147.40 x 0.9213 = 135.79962
    assert (m["currency"], m["fx_rate"], m["fx_date"]) == ("EUR", "0.9213", "2026-11-30")


def test_fx_rate_from_a_file_takes_the_last_rate_of_the_month(store, tmp_path) -> None:
    rates = tmp_path / "fx.csv"
    rates.write_text(
        "date,currency,rate\n2026-10-30,EUR,0.9100\n2026-11-27,EUR,0.9300\n2026-12-01,EUR,0.99\n"
    )
    book = Book(store)
    worked_example(book)
    book.marks(D1, "490.00")
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH, billing_currency="EUR", fx_rates_file=rates)
    pnl.month_job(2026, 11, full=True)
    m = monthly(store, "2026-11")
    assert (m["fx_rate"], m["fx_date"], m["commission_billed"]) == ("0.9300", "2026-11-27", "27.42")


def test_a_bad_fx_file_line_names_the_line_and_the_fix(store, tmp_path) -> None:
    rates = tmp_path / "fx.csv"
    rates.write_text("date,currency,rate\n2026-11-27,EUR,zero\n")
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH, billing_currency="EUR", fx_rates_file=rates)
    with pytest.raises(FxError, match=r"fx\.csv:2: expected 'date,currency,rate'"):
        pnl.month(2026, 11)


def test_high_water_mark_carries_losses_forward(store, tmp_path) -> None:
    book = Book(store)
    oct_day, nov_day = date(2026, 10, 29), D1
    worked_example(book, oct_day)
    book.marks(oct_day, "480.00")  # -252.60 in October
    book.spread(nov_day, put(nov_day, "488"), put(nov_day, "486"), 6, "0.75")
    book.marks(nov_day, "490.00")  # 450.00 - 12 x 0.65 = 442.20 in November
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH, commission_high_water_mark=True)
    pnl.month_job(2026, 10, full=True)
    pnl.month_job(2026, 11, full=True)
    october, november = monthly(store, "2026-10"), monthly(store, "2026-11")
    assert Decimal(october["carried_loss_after"]) == Decimal("252.60")
    assert Decimal(november["commission_base"]) == Decimal("189.60")  # 442.20 - 252.60
    assert Decimal(november["commission_usd"]) == Decimal("37.92")


def test_late_settlement_recomputes_the_day_and_month_and_adjusts_the_next_statement(
    store, tmp_path
) -> None:
    """Friday Oct 30 closes at 488.05: the 488 put looks worthless and October is
    mailed with it; Monday's pre-open sees it was assigned after all."""
    friday, monday = date(2026, 10, 30), date(2026, 11, 2)
    book = Book(store)
    worked_example(book, friday)
    book.marks(friday, "488.05")
    pnl, clock = rollup(store, tmp_path, at(date(2026, 11, 1), "00:10"))
    pnl.month_job(2026, 10, full=True)
    assert Decimal(monthly(store, "2026-10")["pnl"]) == Decimal("147.40")
    # the mailer mails it (its SENT record keeps what was billed)
    store.update(
        C.STATEMENTS,
        "alice_2026-10",
        {"status": "SENT", "billed_pnl": "147.40", "billed_commission": "29.48"},
    )
    book.settled(
        friday,
        [(put(friday, "488"), -2, TradeKind.ASSIGNED), (put(friday, "486"), 2, TradeKind.EXPIRED)],
        observed=200,
    )
    book.fill(monday, "09:30", QQQ, -200, "488.05", fee=Decimal("1.00"))
    book.marks(monday, "488.10")
    clock.set(at(monday, "16:30"))
    run = pnl.daily_job()
    assert run.months == ["2026-10"] and run.adjustments == 1
    # October: the 200 shares bought at 488 were worth 488.05 at Friday's close
    october = monthly(store, "2026-10")
    assert Decimal(october["pnl"]) == Decimal("157.40")
    assert Decimal(october["commission_usd"]) == Decimal("31.48")
    adjustment = store.get(C.ADJUSTMENTS, "alice_2026-10_r1")
    assert adjustment is not None
    assert (adjustment["applies_to"], adjustment["pnl_usd"], adjustment["commission_billed"]) == (
        "2026-11",
        "10.00",
        "2.00",
    )
    # re-running changes nothing and adds no second adjustment
    assert pnl.daily_job().adjustments == 0
    # November's statement carries the line; its amount due includes it
    clock.set(AFTER_MONTH)
    pnl.month_job(2026, 11, full=True)
    statement = StatementBook(store, pnl.settings).statement("alice", "2026-11")
    assert [(a.month, a.pnl_usd, a.commission_billed) for a in statement.adjustments] == [
        ("2026-10", Decimal("10.00"), Decimal("2.00"))
    ]
    # November itself: shares sold at 488.05 after the 488.05 close mark: 0 - 1.00 fee
    assert statement.pnl_usd == Decimal("-1.00")
    assert statement.amount_due == Decimal("2.00") and statement.is_payable


def test_rerunning_a_rollup_leaves_the_same_rows(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book, D1)
    book.marks(D1, "487.00")
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH)
    pnl.month_job(2026, 11, full=True)
    before = {
        c: sorted((s.id, s.data) for s in store.query(c)) for c in (C.PNL_DAILY, C.PNL_MONTHLY)
    }
    run = pnl.month_job(2026, 11, full=True)
    after = {
        c: sorted((s.id, s.data) for s in store.query(c)) for c in (C.PNL_DAILY, C.PNL_MONTHLY)
    }
    assert after == before
    assert run.changed == 0


def test_statement_rows_add_up_to_the_month(store, tmp_path) -> None:
    book = Book(store)
    worked_example(book, D1)
    book.marks(D1, "487.00")  # shares carried overnight
    book.fill(D2, "09:30", QQQ, -200, "487.50", fee=Decimal("1.00"))
    book.marks(D2, "487.20")
    pnl, _ = rollup(store, tmp_path, AFTER_MONTH, follower())
    pnl.month_job(2026, 11, full=True)
    s = StatementBook(store, pnl.settings).statement("alice", "2026-11")
    # every trading day from the first trade on: quiet days show 0, the month adds up
    assert [line.day for line in s.days] == [D1, D2, date(2026, 11, 27), date(2026, 11, 30)]
    assert [line.pnl for line in s.days][2:] == [Decimal("0.00"), Decimal("0.00")]
    assert s.days[-1].cumulative == s.pnl_usd == Decimal(monthly(store, "2026-11")["pnl"])
    assert s.iban_masked == "DE89 **** **** **** **30 00"
    assert s.complete and s.period_end == date(2026, 11, 30)
