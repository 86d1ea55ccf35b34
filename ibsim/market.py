"""Deterministic, seeded market for the simulator: QQQ path, option prices, quotes.

Why a model and not recorded data: tests and the demo must see the same
prices for the same seed and day, script the day (waypoints) and reach the
close with options worth exactly their intrinsic value.

- Underlying: geometric Brownian motion sampled once per second of the
  regular session, from a `random.Random` seeded with (seed, day). Optional
  waypoints [(New York time, price)] turn the path into a Brownian bridge that
  passes exactly through them. Before the open the price is the open price,
  after the close the closing price; a non-trading day shows the previous
  session's close.
- Options: Black-Scholes without rates or dividends (the carry of a 0DTE
  option over a few hours is about a cent, below the spread), volatility from
  a smile in log-moneyness (steeper for puts), time measured in trading time:
  the seconds of regular sessions left until the expiry's close (16:00 ET,
  13:00 on early closes) over 252 x 6.5 h. It is zero at the close, where the
  price is the intrinsic value.
- Quotes: the theoretical price rounded to the tick, widened by a width that
  grows with the price (tiers), never crossed, bid >= 0 (a zero bid has no
  size, as on OPRA); stock quotes a cent wide. Sizes are pseudo-random but
  a pure function of (seed, conId, second).

Everything here is pure math on `math`; prices leave as Decimal on the tick.
"""

from __future__ import annotations

import itertools
import math
import random
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spreadpilot.domain.calendar import MarketCalendar, Session, ny_date, ny_datetime

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ibsim.instruments import Instruments

TRADING_DAYS_PER_YEAR = 252
SECONDS_PER_TRADING_DAY = 23_400  # 6.5 h: a full regular session
SECONDS_PER_YEAR = TRADING_DAYS_PER_YEAR * SECONDS_PER_TRADING_DAY

Right = Literal["C", "P"]


def normalize_right(right: str) -> Right:
    """IB accepts C/CALL/P/PUT in any case; the model works with C/P."""
    value = right.strip().upper()
    if value in ("C", "CALL"):
        return "C"
    if value in ("P", "PUT"):
        return "P"
    raise ValueError(f"not an option right: {right!r}")


# --------------------------------------------------------------------------- config


class SpreadTier(BaseModel):
    """Quoted width for options whose theoretical price is below `up_to`."""

    model_config = ConfigDict(frozen=True)

    up_to: Decimal | None = Field(
        description="Upper bound (exclusive) of the theoretical price for this tier; "
        "None = no bound (the last tier)."
    )
    width: Decimal = Field(gt=0, description="Ask minus bid in USD, a multiple of the tick.")


def _default_tiers() -> list[SpreadTier]:
    """Widths seen on 0DTE QQQ (penny class): a cent for cheap options, wider in the money."""
    return [
        SpreadTier(up_to=Decimal("1.00"), width=Decimal("0.01")),
        SpreadTier(up_to=Decimal("2.50"), width=Decimal("0.02")),
        SpreadTier(up_to=Decimal("5.00"), width=Decimal("0.03")),
        SpreadTier(up_to=Decimal("10.00"), width=Decimal("0.05")),
        SpreadTier(up_to=Decimal("20.00"), width=Decimal("0.10")),
        SpreadTier(up_to=None, width=Decimal("0.20")),
    ]


class MarketConfig(BaseModel):
    """Everything that shapes the simulated market; same config + day = same prices."""

    model_config = ConfigDict(frozen=True)

    seed: int = Field(
        default=1, description="Seed of the path and quote sizes (mixed with the day)."
    )
    spot: Decimal = Field(
        default=Decimal("600.00"), gt=0, description="QQQ price at the 09:30 ET open of every day."
    )
    previous_close: Decimal | None = Field(
        default=None, gt=0, description="Prior session's close (tick 9 'close'); None = `spot`."
    )
    volatility: float = Field(
        default=0.18, ge=0, le=3, description="Annualized volatility of the underlying path."
    )
    drift: float = Field(default=0.0, description="Annualized drift of the underlying path.")
    atm_iv: float | None = Field(
        default=None,
        gt=0,
        description="At-the-money implied volatility used for pricing; None = `volatility`.",
    )
    put_skew: float = Field(
        default=4.0,
        ge=0,
        description="IV added per unit of log-moneyness below spot, ln(S/K) (puts' skew): "
        "a strike 2% below spot gets +0.08.",
    )
    call_skew: float = Field(
        default=1.0, ge=0, description="IV added per unit of log-moneyness above spot, ln(K/S)."
    )
    smile_curvature: float = Field(
        default=20.0, ge=0, description="IV added per squared log-moneyness (both sides)."
    )
    min_iv: float = Field(default=0.05, gt=0, description="Floor of the smile.")
    max_iv: float = Field(default=2.0, gt=0, description="Cap of the smile.")
    tick: Decimal = Field(
        default=Decimal("0.01"), gt=0, description="Price increment of QQQ and its options."
    )
    option_spread_tiers: list[SpreadTier] = Field(
        default_factory=_default_tiers,
        description="Option width by theoretical price, ascending `up_to`, last tier unbounded.",
    )
    stock_spread: Decimal = Field(
        default=Decimal("0.01"), gt=0, description="QQQ stock bid/ask width."
    )
    option_size_range: tuple[int, int] = Field(
        default=(5, 250), description="Inclusive range of option bid/ask sizes (contracts)."
    )
    stock_size_range: tuple[int, int] = Field(
        default=(100, 2500), description="Inclusive range of stock bid/ask sizes (shares)."
    )
    stock_daily_volume: int = Field(
        default=45_000_000, ge=0, description="QQQ shares traded over a full session."
    )
    waypoints: list[tuple[time, Decimal]] = Field(
        default_factory=list,
        description="[(New York time, price)] the configured day's path passes through "
        "(Brownian bridge); times within the session. A 09:30 waypoint replaces `spot`.",
    )
    tick_interval: float = Field(
        default=0.25,
        gt=0,
        description="Wall-clock seconds between streaming market-data updates.",
    )

    @field_validator("option_spread_tiers")
    @classmethod
    def _tiers_ascending(cls, tiers: list[SpreadTier]) -> list[SpreadTier]:
        if not tiers or tiers[-1].up_to is not None:
            raise ValueError("the last spread tier must have up_to=None")
        bounds = [t.up_to for t in tiers[:-1]]
        if any(b is None for b in bounds) or bounds != sorted(b for b in bounds if b is not None):
            raise ValueError("spread tiers must be ascending by up_to")
        return tiers

    @field_validator("waypoints")
    @classmethod
    def _waypoints_sorted(cls, points: list[tuple[time, Decimal]]) -> list[tuple[time, Decimal]]:
        times = [t for t, _ in points]
        if len(set(times)) != len(times):
            raise ValueError("two waypoints at the same time")
        if any(p <= 0 for _, p in points):
            raise ValueError("waypoint prices must be positive")
        return sorted(points)

    @model_validator(mode="after")
    def _ranges(self) -> MarketConfig:
        for name in ("option_size_range", "stock_size_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be 0 < low <= high")
        if self.min_iv > self.max_iv:
            raise ValueError("min_iv > max_iv")
        for width in [t.width for t in self.option_spread_tiers] + [self.stock_spread]:
            if width % self.tick:
                raise ValueError(f"spread width {width} is not a multiple of the tick")
        return self

    @property
    def pricing_iv(self) -> float:
        return self.atm_iv if self.atm_iv is not None else self.volatility


# --------------------------------------------------------------------------- math


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def intrinsic(spot: float, strike: float, right: Right) -> float:
    return max(0.0, spot - strike) if right == "C" else max(0.0, strike - spot)


def bs_price(spot: float, strike: float, years: float, vol: float, right: Right) -> float:
    """Black-Scholes with r = q = 0; the intrinsic value when no time or no vol is left."""
    sd = vol * math.sqrt(max(years, 0.0))
    if sd < 1e-12:
        return intrinsic(spot, strike, right)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if right == "C":
        return spot * norm_cdf(d1) - strike * norm_cdf(d2)
    return strike * norm_cdf(-d2) - spot * norm_cdf(-d1)


@dataclass(frozen=True)
class Greeks:
    """IB's option computation: iv, delta, gamma, vega (per vol point), theta (per day).

    `price` is the option price the greeks belong to, `underlying` the spot used.
    Theta is the decay per trading day (time runs in trading time).
    """

    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    price: float
    underlying: float


def bs_greeks(spot: float, strike: float, years: float, vol: float, right: Right) -> Greeks:
    price = bs_price(spot, strike, years, vol, right)
    sd = vol * math.sqrt(max(years, 0.0))
    if sd < 1e-12:
        if right == "C":
            delta = 1.0 if spot > strike else (0.5 if spot == strike else 0.0)
        else:
            delta = -1.0 if spot < strike else (-0.5 if spot == strike else 0.0)
        return Greeks(vol, delta, 0.0, 0.0, 0.0, price, spot)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    pdf = norm_pdf(d1)
    delta = norm_cdf(d1) if right == "C" else norm_cdf(d1) - 1.0
    gamma = pdf / (spot * sd)
    sqrt_t = math.sqrt(years)
    vega = spot * pdf * sqrt_t / 100.0
    theta = -spot * pdf * vol / (2.0 * sqrt_t) / TRADING_DAYS_PER_YEAR
    return Greeks(vol, delta, gamma, vega, theta, price, spot)


def implied_vol(
    price: float, spot: float, strike: float, years: float, right: Right
) -> float | None:
    """Volatility that reprices `price` (bisection); None when no volatility can (IB's -1)."""
    if years <= 0:
        return None
    floor = intrinsic(spot, strike, right)
    cap = spot if right == "C" else strike
    if not floor + 1e-9 < price < cap:
        return None
    low, high = 1e-4, 10.0
    if bs_price(spot, strike, years, high, right) < price:
        return None
    for _ in range(100):
        mid = 0.5 * (low + high)
        if bs_price(spot, strike, years, mid, right) < price:
            low = mid
        else:
            high = mid
        if high - low < 1e-7:
            break
    return 0.5 * (low + high)


def round_to_tick(value: float | Decimal, tick: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    steps = (Decimal(str(value)) / tick).quantize(Decimal(1), rounding=rounding)
    return steps * tick


def _mix(*parts: int) -> int:
    """splitmix64 over the parts: cheap, stable pseudo-randomness (sizes, volumes)."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
        state = (state * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state


# --------------------------------------------------------------------------- model


class _Shared:
    """Caches shared by the models of several days built from one root model."""

    def __init__(self, calendar: MarketCalendar) -> None:
        self.calendar = calendar
        self.sessions: dict[date, Session | None] = {}
        self.days: OrderedDict[date, MarketModel] = OrderedDict()
        self.root: date | None = None  # the configured day: never evicted

    def session(self, day: date) -> Session | None:
        if day not in self.sessions:
            try:
                self.sessions[day] = self.calendar.session(day)
            except Exception:  # outside the calendar's range: no session
                self.sessions[day] = None
        return self.sessions[day]


class MarketModel:
    """The market of one New York day; other days are reached through `for_day`.

    Every query takes an aware moment; a moment on another day is answered by
    that day's model (same config without waypoints, its own seeded path).
    """

    DAY_CACHE = 8  # models of other days kept (a path is ~190 kB)

    def __init__(
        self,
        config: MarketConfig,
        day: date,
        calendar: MarketCalendar,
        *,
        _shared: _Shared | None = None,
    ) -> None:
        self.config = config
        self.day = day
        self.calendar = calendar
        self._shared = _shared or _Shared(calendar)
        if self._shared.root is None:
            self._shared.root = day
        self._shared.days.setdefault(day, self)
        self.session: Session | None = self._shared.session(day)
        self._path: array[float] | None = None
        self.open_price = config.spot
        if self.session is not None:
            self._build_path(self.session)

    # -- path

    def _build_path(self, session: Session) -> None:
        cfg = self.config
        n = int((session.close - session.open).total_seconds())
        # Simulation, not cryptography: a str seed is hashed with SHA-512, stable across runs.
        rng = random.Random(f"ibsim-market:{cfg.seed}:{self.day.isoformat()}")  # noqa: S311
        dt = 1.0 / SECONDS_PER_YEAR
        step_sd = cfg.volatility * math.sqrt(dt)
        step_mu = (cfg.drift - 0.5 * cfg.volatility**2) * dt
        free = array("d", [0.0]) * (n + 1)
        x = 0.0
        for i in range(1, n + 1):
            x += step_mu + step_sd * rng.gauss(0.0, 1.0)
            free[i] = x
        anchors: list[tuple[int, float]] = [(0, math.log(cfg.spot))]
        for at, price in cfg.waypoints:
            moment = ny_datetime(self.day, at)
            if not session.open <= moment <= session.close:
                raise ValueError(f"waypoint {at} is outside the {self.day} session")
            index = round((moment - session.open).total_seconds())
            if index == 0:
                anchors[0] = (0, math.log(price))
            else:
                anchors.append((index, math.log(price)))
        path = array("d", [0.0]) * (n + 1)
        for (i0, v0), (i1, v1) in itertools.pairwise(anchors):
            gap = (free[i1] - free[i0]) - (v1 - v0)
            for j in range(i0, i1 + 1):
                path[j] = v0 + (free[j] - free[i0]) - (j - i0) / (i1 - i0) * gap
        last_i, last_v = anchors[-1]
        for j in range(last_i, n + 1):
            path[j] = last_v + free[j] - free[last_i]
        for j in range(n + 1):
            path[j] = math.exp(path[j])
        for i, value in anchors:  # exact at the anchors despite exp(log(p))
            path[i] = math.exp(value)
        self._path = path
        self.open_price = round_to_tick(path[0], cfg.tick)

    def for_day(self, day: date) -> MarketModel:
        """The model of another day (cached): same config, no waypoints, own path."""
        shared = self._shared
        model = shared.days.get(day)
        if model is not None:
            shared.days.move_to_end(day)
            return model
        config = (
            self.config.model_copy(update={"waypoints": []})
            if self.config.waypoints
            else self.config
        )
        model = MarketModel(config, day, self.calendar, _shared=shared)
        while len(shared.days) > self.DAY_CACHE + 1:
            for key in shared.days:
                if key != shared.root:
                    del shared.days[key]
                    break
        return model

    def open_price_on(self, day: date) -> Decimal:
        """The open of a day without building its path (only this day has waypoints)."""
        return self.open_price if day == self.day else self.config.spot

    def session_of(self, day: date) -> Session | None:
        return self._shared.session(day)

    def previous_trading_day(self, day: date) -> date | None:
        for back in range(1, 15):
            candidate = day - timedelta(days=back)
            if self.session_of(candidate) is not None:
                return candidate
        return None

    def underlying_raw(self, at: datetime) -> float:
        """Exact path value (interpolated between seconds), before rounding to the tick."""
        day = ny_date(at)
        if day != self.day:
            return self.for_day(day).underlying_raw(at)
        if self.session is None or self._path is None:
            previous = self.previous_trading_day(day)
            if previous is None:
                return float(self.config.spot)
            model = self.for_day(previous)
            assert model.session is not None
            return model.underlying_raw(model.session.close)
        path = self._path
        seconds = (at - self.session.open).total_seconds()
        n = len(path) - 1
        if seconds <= 0:
            return path[0]
        if seconds >= n:
            return path[n]
        i = int(seconds)
        frac = seconds - i
        return path[i] + (path[i + 1] - path[i]) * frac if frac else path[i]

    def underlying(self, at: datetime) -> Decimal:
        """QQQ price at `at`, on the tick (the last trade)."""
        return round_to_tick(self.underlying_raw(at), self.config.tick)

    @property
    def previous_close(self) -> Decimal:
        return self.config.previous_close or self.config.spot

    # -- options

    def smile_iv(self, strike: float, spot: float) -> float:
        """Implied volatility of a strike: ATM level plus put/call skew and curvature."""
        cfg = self.config
        m = math.log(strike / spot)
        iv = cfg.pricing_iv + cfg.smile_curvature * m * m
        iv += cfg.put_skew * -m if m < 0 else cfg.call_skew * m
        return min(cfg.max_iv, max(cfg.min_iv, iv))

    def expiry_close(self, expiry: date) -> datetime | None:
        session = self.session_of(expiry)
        return session.close if session else None

    def years_to_expiry(self, at: datetime, expiry: date | None = None) -> float:
        """Regular-session seconds left until the expiry's close, in trading years."""
        expiry = expiry or ny_date(at)
        day = ny_date(at)
        total = 0.0
        while day <= expiry:
            session = self.session_of(day)
            if session is not None:
                start = max(at, session.open)
                if session.close > start:
                    total += (session.close - start).total_seconds()
            day += timedelta(days=1)
        return total / SECONDS_PER_YEAR

    def _pricing_inputs(
        self, strike: Decimal | float, at: datetime, expiry: date | None
    ) -> tuple[float, float, float, float]:
        """(spot, strike, years, iv); after the expiry's close the spot is frozen there."""
        expiry = expiry or ny_date(at)
        close = self.expiry_close(expiry)
        moment = min(at, close) if close is not None else at
        spot = float(self.underlying(moment))
        k = float(strike)
        years = self.years_to_expiry(moment, expiry)
        return spot, k, years, self.smile_iv(k, spot)

    def theoretical(
        self, strike: Decimal | float, right: str, at: datetime, expiry: date | None = None
    ) -> float:
        spot, k, years, iv = self._pricing_inputs(strike, at, expiry)
        return bs_price(spot, k, years, iv, normalize_right(right))

    def option_price(
        self, strike: Decimal | float, right: str, at: datetime, expiry: date | None = None
    ) -> Decimal:
        """Model price on the tick; `expiry` defaults to the day of `at` (0DTE)."""
        return round_to_tick(self.theoretical(strike, right, at, expiry), self.config.tick)

    def greeks(
        self, strike: Decimal | float, right: str, at: datetime, expiry: date | None = None
    ) -> Greeks:
        """Model greeks at the smile's volatility (IB's tick 13, 'modelGreeks')."""
        spot, k, years, iv = self._pricing_inputs(strike, at, expiry)
        return bs_greeks(spot, k, years, iv, normalize_right(right))

    def greeks_at_price(
        self,
        strike: Decimal | float,
        right: str,
        at: datetime,
        price: Decimal | float,
        expiry: date | None = None,
    ) -> Greeks | None:
        """Greeks at the volatility implied by a quoted price (IB's bid/ask/last ticks)."""
        spot, k, years, _ = self._pricing_inputs(strike, at, expiry)
        r = normalize_right(right)
        iv = implied_vol(float(price), spot, k, years, r)
        if iv is None:
            return None
        g = bs_greeks(spot, k, years, iv, r)
        return Greeks(g.iv, g.delta, g.gamma, g.vega, g.theta, float(price), spot)

    # -- quotes

    def option_width(self, theoretical: float) -> Decimal:
        value = Decimal(str(theoretical))
        for tier in self.config.option_spread_tiers:
            if tier.up_to is None or value < tier.up_to:
                return tier.width
        raise AssertionError("unreachable: the last tier is unbounded")

    def _size(self, con_id: int, at: datetime, side: int, sizes: tuple[int, int]) -> int:
        low, high = sizes
        second = int(at.timestamp())
        return low + _mix(self.config.seed, con_id, second, side) % (high - low + 1)

    def session_fraction(self, at: datetime) -> float:
        session = self.session_of(ny_date(at))
        if session is None:
            return 0.0
        span = (session.close - session.open).total_seconds()
        return min(1.0, max(0.0, (at - session.open).total_seconds() / span))

    def stock_quote(self, con_id: int, at: datetime) -> Quote:
        cfg = self.config
        raw = self.underlying_raw(at)
        bid = round_to_tick(raw, cfg.tick, ROUND_FLOOR)
        ask = bid + cfg.stock_spread
        last = min(max(round_to_tick(raw, cfg.tick), bid), ask)
        fraction = self.session_fraction(at)
        return Quote(
            bid=bid,
            ask=ask,
            last=last,
            bid_size=self._size(con_id, at, 1, cfg.stock_size_range),
            ask_size=self._size(con_id, at, 2, cfg.stock_size_range),
            last_size=100,
            volume=int(cfg.stock_daily_volume * fraction),
        )

    def option_quote(
        self, con_id: int, strike: Decimal | float, right: str, at: datetime, expiry: date
    ) -> Quote:
        """Two-sided quote around the theoretical price (no trading-hours check here)."""
        cfg = self.config
        theo = self.theoretical(strike, right, at, expiry)
        width = self.option_width(theo)
        bid = round_to_tick(theo - float(width) / 2, cfg.tick)
        ask = bid + width
        if bid <= 0:
            bid = Decimal(0) * cfg.tick
            ask = max(ask, cfg.tick)
        last = min(max(round_to_tick(theo, cfg.tick), bid, cfg.tick), ask)
        bid_size = 0 if bid == 0 else self._size(con_id, at, 1, cfg.option_size_range)
        base_volume = 200 + _mix(cfg.seed, con_id) % 20_000
        return Quote(
            bid=bid,
            ask=ask,
            last=last,
            bid_size=bid_size,
            ask_size=self._size(con_id, at, 2, cfg.option_size_range),
            last_size=1 + _mix(cfg.seed, con_id, int(at.timestamp()), 3) % 20,
            volume=int(base_volume * self.session_fraction(at)),
        )


@dataclass(frozen=True)
class Quote:
    """Top of book: Decimal prices on the tick, integer sizes; bid 0 means no bid (size 0)."""

    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_size: int
    ask_size: int
    last_size: int = 0
    volume: int = 0

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


class QuoteBook:
    """Quotes by conId at a moment: the engine's and the market-data handler's price source.

    Stock: at any moment (flat outside the session). Options: on trading days
    from 09:30 ET to the close, up to and including their expiry day's close;
    None before the open, after the close and after expiry.
    """

    def __init__(self, market: MarketModel, instruments: Instruments) -> None:
        self.market = market
        self.instruments = instruments
        # last quote per conId: the engine asks again and again at one clock reading
        self._last: dict[int, tuple[datetime, Quote | None]] = {}

    def option_open(self, expiry: date, at: datetime) -> bool:
        """Whether an option of `expiry` trades (and is quoted) at `at`."""
        day = ny_date(at)
        if day > expiry:
            return False
        session = self.market.session_of(day)
        return session is not None and session.open <= at <= session.close

    def quote(self, con_id: int, at: datetime) -> Quote | None:
        cached = self._last.get(con_id)
        if cached is not None and cached[0] == at:
            return cached[1]
        quote = self._quote(con_id, at)
        if len(self._last) > 4096:
            self._last.clear()
        self._last[con_id] = (at, quote)
        return quote

    def _quote(self, con_id: int, at: datetime) -> Quote | None:
        if con_id == self.instruments.stock_con_id:
            return self.market.stock_quote(con_id, at)
        spec = self.instruments.option_spec(con_id)
        if spec is None:
            return None
        expiry, strike, right = spec
        if not self.option_open(expiry, at):
            return None
        return self.market.option_quote(con_id, strike, right, at, expiry)

    def greeks(self, con_id: int, at: datetime, price: Decimal | None = None) -> Greeks | None:
        """Model greeks (price None) or greeks implied by a price; None for non-options."""
        spec = self.instruments.option_spec(con_id)
        if spec is None:
            return None
        expiry, strike, right = spec
        if price is None:
            return self.market.greeks(strike, right, at, expiry)
        return self.market.greeks_at_price(strike, right, at, price, expiry)

    def combo_quote(self, legs: Sequence[tuple[int, int, str]], at: datetime) -> Quote | None:
        """Quote of a BAG from (conId, ratio, action) legs, in IB's sign convention.

        Bid = what selling the combo receives (BUY legs at their bid, SELL legs
        at their ask); a credit vertical therefore quotes negative prices.
        """
        bid = ask = last = Decimal(0)
        bid_size = ask_size = None
        for con_id, ratio, action in legs:
            leg = self.quote(con_id, at)
            if leg is None or ratio <= 0:
                return None
            if action.upper() == "BUY":
                bid += ratio * leg.bid
                ask += ratio * leg.ask
                last += ratio * leg.last
                sizes = (leg.bid_size // ratio, leg.ask_size // ratio)
            else:
                bid -= ratio * leg.ask
                ask -= ratio * leg.bid
                last -= ratio * leg.last
                sizes = (leg.ask_size // ratio, leg.bid_size // ratio)
            bid_size = sizes[0] if bid_size is None else min(bid_size, sizes[0])
            ask_size = sizes[1] if ask_size is None else min(ask_size, sizes[1])
        if bid_size is None or ask_size is None:
            return None
        return Quote(bid, ask, min(max(last, bid), ask), bid_size, ask_size)
