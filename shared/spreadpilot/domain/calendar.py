"""NYSE trading days and sessions, from the maintained exchange_calendars library.

Trading dates are New York dates. The calendar is pure given its data; the
library object is built once per process (it is the slow part).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


def ny_date(moment: datetime) -> date:
    """The New York calendar date of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError("ny_date needs an aware datetime")
    return moment.astimezone(NEW_YORK).date()


def ny_datetime(day: date, at: time) -> datetime:
    """An aware UTC moment for a New York wall-clock time on a date (DST-proof)."""
    return datetime.combine(day, at, NEW_YORK).astimezone(UTC)


@dataclass(frozen=True)
class Session:
    day: date
    open: datetime  # aware UTC
    close: datetime  # aware UTC

    @property
    def early_close(self) -> bool:
        return self.close.astimezone(NEW_YORK).time() < time(16, 0)


@cache
def _xnys() -> Any:
    import exchange_calendars  # heavy (pandas): imported only when a calendar is needed

    # The library's own default end is one year ahead; earlier history is not needed.
    return exchange_calendars.get_calendar("XNYS", start="2020-01-01")


class MarketCalendar:
    """NYSE sessions. Out-of-range dates raise instead of guessing."""

    def is_trading_day(self, day: date) -> bool:
        return bool(_xnys().is_session(day.isoformat()))

    def session(self, day: date) -> Session | None:
        cal = _xnys()
        key = day.isoformat()
        if not cal.is_session(key):
            return None
        open_ = cal.session_open(key).to_pydatetime().astimezone(UTC)
        close = cal.session_close(key).to_pydatetime().astimezone(UTC)
        return Session(day=day, open=open_, close=close)

    def next_trading_day(self, day: date, include: bool = True) -> date:
        candidate = day if include else day + timedelta(days=1)
        for _ in range(14):
            if self.is_trading_day(candidate):
                return candidate
            candidate += timedelta(days=1)
        raise ValueError(f"no NYSE session within two weeks of {day}")
