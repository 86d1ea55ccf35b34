"""NYSE sessions from the maintained calendar, and New York dates across DST."""

from datetime import UTC, date, datetime, time

from spreadpilot.domain.calendar import MarketCalendar, ny_date, ny_datetime

CAL = MarketCalendar()


def test_holidays_weekends_and_early_closes() -> None:
    assert CAL.is_trading_day(date(2026, 11, 24))
    assert not CAL.is_trading_day(date(2026, 11, 26))  # Thanksgiving
    assert not CAL.is_trading_day(date(2026, 11, 28))  # Saturday
    friday = CAL.session(date(2026, 11, 27))
    assert friday is not None and friday.early_close
    assert friday.close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 13:00 ET
    normal = CAL.session(date(2026, 11, 24))
    assert normal is not None and not normal.early_close
    assert CAL.next_trading_day(date(2026, 11, 26)) == date(2026, 11, 27)


def test_new_york_date_not_utc_date() -> None:
    late_evening_ny = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 21:00 ET on the 24th
    assert ny_date(late_evening_ny) == date(2026, 11, 24)


def test_ny_wall_clock_is_dst_proof() -> None:
    assert ny_datetime(date(2026, 7, 1), time(9, 30)) == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert ny_datetime(date(2026, 12, 1), time(9, 30)) == datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
