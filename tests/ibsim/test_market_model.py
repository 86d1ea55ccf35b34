"""The seeded market model: path, Black-Scholes with a smile, quotes and their hours."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from ibsim.instruments import Instruments
from ibsim.market import (
    MarketConfig,
    MarketModel,
    QuoteBook,
    SpreadTier,
    bs_price,
    implied_vol,
)
from spreadpilot.domain.calendar import MarketCalendar, ny_datetime

CAL = MarketCalendar()
DAY = date(2026, 11, 24)  # a normal Tuesday
EARLY = date(2026, 11, 27)  # the Friday after Thanksgiving: closes 13:00 ET
THANKSGIVING = date(2026, 11, 26)
TICK = Decimal("0.01")


def ny(hhmm: str, day: date = DAY) -> datetime:
    return ny_datetime(day, time.fromisoformat(hhmm))


@pytest.fixture(scope="module")
def market() -> MarketModel:
    return MarketModel(MarketConfig(), DAY, CAL)


@pytest.fixture(scope="module")
def book(market: MarketModel) -> QuoteBook:
    return QuoteBook(market, Instruments(CAL, market))


def _times(day: date = DAY) -> list[datetime]:
    start = ny("09:30", day)
    return [start + timedelta(minutes=m) for m in range(0, 391, 13)]


# -- path -----------------------------------------------------------------------------


def test_same_seed_same_path_other_seed_other_path(market: MarketModel) -> None:
    again = MarketModel(MarketConfig(), DAY, CAL)
    other = MarketModel(MarketConfig(seed=2), DAY, CAL)
    moments = _times()
    assert [market.underlying(t) for t in moments] == [again.underlying(t) for t in moments]
    assert [market.underlying(t) for t in moments] != [other.underlying(t) for t in moments]
    assert market.underlying(ny("09:30")) == other.underlying(ny("09:30")) == Decimal("600.00")


def test_each_day_has_its_own_path(market: MarketModel) -> None:
    monday = date(2026, 11, 23)
    assert market.underlying(ny("12:00", monday)) != market.underlying(ny("12:00"))
    assert market.for_day(monday).underlying(ny("12:00", monday)) == market.underlying(
        ny("12:00", monday)
    )


def test_path_is_flat_outside_the_session_and_on_the_tick(market: MarketModel) -> None:
    assert market.underlying(ny("08:00")) == market.underlying(ny("09:30")) == Decimal("600.00")
    assert market.underlying(ny("18:00")) == market.underlying(ny("16:00"))
    for moment in _times():
        price = market.underlying(moment)
        assert price % TICK == 0
        assert Decimal(500) < price < Decimal(700)  # 0.18 vol: a day moves a few dollars


def test_non_trading_day_shows_the_previous_close(market: MarketModel) -> None:
    wednesday_close = market.underlying(ny("16:00", date(2026, 11, 25)))
    assert market.underlying(ny("12:00", THANKSGIVING)) == wednesday_close


def test_waypoints_are_hit_exactly() -> None:
    config = MarketConfig(
        waypoints=[(time(14, 0), Decimal("612.34")), (time(10, 30), Decimal("596"))]
    )
    model = MarketModel(config, DAY, CAL)
    assert model.underlying(ny("09:30")) == Decimal("600.00")
    assert model.underlying(ny("10:30")) == Decimal("596.00")
    assert model.underlying(ny("14:00")) == Decimal("612.34")
    # between waypoints the path still moves (a bridge, not a straight line)
    assert model.underlying(ny("12:00")) not in (Decimal("596.00"), Decimal("612.34"))


def test_a_0930_waypoint_replaces_the_open_and_bad_waypoints_are_refused() -> None:
    model = MarketModel(MarketConfig(waypoints=[(time(9, 30), Decimal(590))]), DAY, CAL)
    assert model.underlying(ny("09:30")) == Decimal("590.00")
    assert model.open_price == Decimal("590.00")
    with pytest.raises(ValueError, match="outside"):
        MarketModel(MarketConfig(waypoints=[(time(15, 0), Decimal(600))]), EARLY, CAL)
    with pytest.raises(ValidationError):
        MarketConfig(waypoints=[(time(10, 0), Decimal(600)), (time(10, 0), Decimal(601))])


def test_waypoints_parse_from_scenario_text() -> None:
    config = MarketConfig.model_validate({"waypoints": [["10:30", 596]]})
    assert config.waypoints == [(time(10, 30), Decimal(596))]


# -- Black-Scholes ----------------------------------------------------------------------


@pytest.mark.parametrize("strike", [570, 590, 598, 600, 603, 615, 640])
def test_put_call_parity_within_a_tick(market: MarketModel, strike: int) -> None:
    for moment in _times():
        spot = market.underlying(moment)
        call = market.option_price(strike, "C", moment)
        put = market.option_price(strike, "P", moment)
        assert abs((call - put) - (spot - strike)) <= TICK


def test_time_value_reaches_zero_at_the_close(market: MarketModel) -> None:
    close = ny("16:00")
    spot = market.underlying(close)
    assert market.years_to_expiry(close) == 0
    assert market.years_to_expiry(close - timedelta(minutes=1)) > 0
    for strike in range(590, 611):
        assert market.option_price(strike, "C", close) == max(Decimal(0), spot - strike)
        assert market.option_price(strike, "P", close) == max(Decimal(0), strike - spot)
    # after the close an expired option keeps its settlement value
    assert market.option_price(600, "P", ny("17:00")) == market.option_price(600, "P", close)


def test_time_to_expiry_is_trading_time(market: MarketModel) -> None:
    full = market.years_to_expiry(ny("09:30"))
    assert full == pytest.approx(1 / 252)
    assert market.years_to_expiry(ny("12:45")) == pytest.approx(full / 2)
    assert market.years_to_expiry(ny("08:00")) == full  # pre-open: the whole session left
    # an option of tomorrow's expiry still has tomorrow's session ahead after today's close
    tomorrow = date(2026, 11, 25)
    assert market.years_to_expiry(ny("16:00"), tomorrow) == pytest.approx(1 / 252)


def test_greeks_signs_and_skew(market: MarketModel) -> None:
    moment = ny("11:00")
    spot = float(market.underlying(moment))
    for strike in (590, 600, 610):
        call = market.greeks(strike, "C", moment)
        put = market.greeks(strike, "P", moment)
        assert 0 < call.delta < 1 and -1 < put.delta < 0
        assert call.delta - put.delta == pytest.approx(1)
        assert call.gamma > 0 and call.gamma == pytest.approx(put.gamma)
        assert call.vega > 0 and call.theta < 0 and put.theta < 0
        assert call.underlying == spot
    otm = 0.02 * spot
    put_wing = market.smile_iv(spot - otm, spot)
    call_wing = market.smile_iv(spot + otm, spot)
    atm = market.smile_iv(spot, spot)
    assert put_wing > call_wing > atm == pytest.approx(0.18)


def test_greeks_at_the_close_are_those_of_the_payoff(market: MarketModel) -> None:
    close = ny("16:00")
    spot = float(market.underlying(close))
    itm_put = market.greeks(math.ceil(spot) + 2, "P", close)
    otm_call = market.greeks(math.ceil(spot) + 2, "C", close)
    assert itm_put.delta == -1 and otm_call.delta == 0
    assert itm_put.gamma == itm_put.vega == itm_put.theta == 0


def test_implied_vol_inverts_the_price() -> None:
    price = bs_price(600, 595, 0.5 / 252, 0.23, "P")
    assert implied_vol(price, 600, 595, 0.5 / 252, "P") == pytest.approx(0.23, abs=1e-5)
    assert implied_vol(0.0, 600, 595, 0.5 / 252, "P") is None  # no bid: not computable
    assert implied_vol(1.0, 600, 595, 0.0, "P") is None


# -- quotes -----------------------------------------------------------------------------


def test_option_quotes_follow_the_spread_rules(market: MarketModel, book: QuoteBook) -> None:
    instruments = book.instruments
    tiers = market.config.option_spread_tiers
    seen_widths: set[Decimal] = set()
    for moment in _times():
        for strike in range(560, 641, 4):
            for right in "CP":
                con_id = instruments.option(DAY, Decimal(strike), right).conId
                quote = book.quote(con_id, moment)
                assert quote is not None
                theo = Decimal(str(market.theoretical(strike, right, moment, DAY)))
                width = next(t.width for t in tiers if t.up_to is None or theo < t.up_to)
                assert quote.bid % TICK == 0 and quote.ask % TICK == 0
                assert Decimal(0) <= quote.bid <= quote.mid <= quote.ask
                assert quote.bid < quote.ask  # never crossed nor locked
                assert quote.bid <= quote.last <= quote.ask
                if quote.bid > 0:
                    assert quote.ask - quote.bid == width
                    assert quote.bid_size > 0
                else:
                    assert quote.bid_size == 0  # a zero bid is no bid
                    assert quote.ask <= width
                assert quote.ask_size > 0
                # the theoretical value lies within the quote
                assert quote.bid - TICK / 2 <= theo <= quote.ask + TICK / 2
                if theo < Decimal("1.00"):
                    assert quote.ask - quote.bid == TICK or quote.bid == 0
                seen_widths.add(quote.ask - quote.bid)
    assert Decimal("0.01") in seen_widths and max(seen_widths) >= Decimal("0.10")


def test_far_out_of_the_money_near_the_close_bids_zero(
    market: MarketModel, book: QuoteBook
) -> None:
    moment = ny("15:55")
    spot = market.underlying(moment)
    strike = Decimal(int(spot) - 25)
    quote = book.quote(book.instruments.option(DAY, strike, "P").conId, moment)
    assert quote is not None
    assert (quote.bid, quote.ask, quote.bid_size) == (Decimal(0), TICK, 0)


def test_stock_quotes_all_day_a_cent_wide(market: MarketModel, book: QuoteBook) -> None:
    stock = book.instruments.stock_con_id
    for hhmm in ("04:00", "09:00", "09:30", "12:00", "16:00", "19:00"):
        moment = ny(hhmm)
        quote = book.quote(stock, moment)
        assert quote is not None
        assert quote.ask - quote.bid == TICK
        assert quote.last in (quote.bid, quote.ask)
        assert quote.last == market.underlying(moment)
        assert quote.bid_size > 0 and quote.ask_size > 0


def test_no_option_quotes_before_0930_or_after_the_close(book: QuoteBook) -> None:
    con_id = book.instruments.option(DAY, Decimal(600), "P").conId
    assert book.quote(con_id, ny("09:29:59")) is None
    assert book.quote(con_id, ny("09:30")) is not None
    assert book.quote(con_id, ny("16:00")) is not None
    assert book.quote(con_id, ny("16:00:01")) is None
    assert book.quote(con_id, ny("10:00", date(2026, 11, 25))) is None  # expired
    tomorrow = book.instruments.option(date(2026, 11, 25), Decimal(600), "P").conId
    assert book.quote(tomorrow, ny("09:29")) is None
    assert book.quote(tomorrow, ny("10:00")) is not None  # 1DTE trades today
    assert book.quote(123456, ny("10:00")) is None  # unknown conId


def test_quotes_are_deterministic(book: QuoteBook) -> None:
    con_id = book.instruments.option(DAY, Decimal(598), "P").conId
    other = QuoteBook(MarketModel(MarketConfig(), DAY, CAL), book.instruments)
    for moment in _times():
        assert book.quote(con_id, moment) == other.quote(con_id, moment)


def test_early_close_day_closes_at_1300() -> None:
    model = MarketModel(MarketConfig(), EARLY, CAL)
    book = QuoteBook(model, Instruments(CAL, model))
    assert model.session is not None and model.session.close == ny("13:00", EARLY)
    assert model.years_to_expiry(ny("09:30", EARLY)) == pytest.approx(3.5 / 6.5 / 252)
    assert model.years_to_expiry(ny("13:00", EARLY)) == 0
    assert model.years_to_expiry(ny("12:59", EARLY)) > 0
    spot = model.underlying(ny("13:00", EARLY))
    assert model.option_price(600, "C", ny("13:00", EARLY)) == max(Decimal(0), spot - 600)
    con_id = book.instruments.option(EARLY, Decimal(600), "C").conId
    assert book.quote(con_id, ny("13:00", EARLY)) is not None
    assert book.quote(con_id, ny("13:00:01", EARLY)) is None
    assert model.underlying(ny("15:00", EARLY)) == spot  # the path ends at 13:00


def test_combo_quote_uses_ibs_sign_convention(market: MarketModel, book: QuoteBook) -> None:
    moment = ny("11:00")
    instruments = book.instruments
    long_put = instruments.option(DAY, Decimal(590), "P").conId
    short_put = instruments.option(DAY, Decimal(595), "P").conId
    combo = book.combo_quote([(long_put, 1, "BUY"), (short_put, 1, "SELL")], moment)
    long_q, short_q = book.quote(long_put, moment), book.quote(short_put, moment)
    assert combo is not None and long_q is not None and short_q is not None
    natural_credit = short_q.bid - long_q.ask
    assert combo.ask == -natural_credit < 0  # buying the combo at the ask receives the credit
    assert combo.bid == long_q.bid - short_q.ask
    assert combo.bid < combo.ask
    assert book.combo_quote([(long_put, 1, "BUY"), (short_put, 1, "SELL")], ny("09:00")) is None


def test_config_rejects_inconsistent_spread_rules() -> None:
    with pytest.raises(ValidationError):
        MarketConfig(option_spread_tiers=[SpreadTier(up_to=Decimal(1), width=Decimal("0.01"))])
    with pytest.raises(ValidationError):
        MarketConfig(option_spread_tiers=[SpreadTier(up_to=None, width=Decimal("0.015"))])
    with pytest.raises(ValidationError):
        MarketConfig(option_size_range=(10, 5))
