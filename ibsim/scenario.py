"""A scripted trading day: clock, accounts, market, fill behaviour, pacing, faults.

Loaded from YAML or JSON (YAML is a superset), e.g.::

    clock: {start: "2026-11-24T09:25", speed: 60}   # New York time; 60x real time
    accounts: [DU000001, DU000002]                    # several = advisor style
    seed: 7
    market: {spot: 600, volatility: 0.2, waypoints: [["10:30", 596]]}
    fills: {improvement_probability: 0.3}
    pacing: {enabled: true, max_per_second: 50}
    faults:
      - {at: "10:15", action: lose_connectivity}
      - {at: "10:16", action: restore_data_lost}
      - {at: "12:00:30", action: restart}
      - {at: "13:00", action: shut_down}                # down (connections refused)...
      - {at: "13:05", action: come_back}                # ...until it listens again

`market` is `ibsim.market.MarketConfig` and `fills` `ibsim.engine.EngineConfig`.
Errors name the field and say how to fix it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ibsim.market import MarketConfig, MarketModel, QuoteBook
from spreadpilot.domain.calendar import NEW_YORK, MarketCalendar, ny_date, ny_datetime
from spreadpilot.platform.clock import ScaledClock, SimClock, SystemClock
from spreadpilot.ports.clock import Clock

if TYPE_CHECKING:
    from ibsim.server import Gateway

M = TypeVar("M", bound=BaseModel)

FaultName = Literal[
    "lose_connectivity", "restore", "restore_data_lost", "restart", "shut_down", "come_back"
]

#: How to fix a field, shown after pydantic's own message.
_FIXES: dict[str, str] = {
    "clock.start": "write New York local time as YYYY-MM-DDTHH:MM[:SS], e.g. 2026-11-24T09:25",
    "clock.speed": 'write a positive number (1 = real time, 60 = a minute per second) or "sim"',
    "accounts": "write a non-empty list of distinct IB account ids, e.g. [DU000001, DU000002]",
    "seed": "write an integer",
    "market": "see ibsim.market.MarketConfig for the fields (spot, volatility, waypoints, ...)",
    "fills": "see ibsim.engine.EngineConfig for the fields (improvement_probability, ...)",
    "pacing.enabled": "write true or false",
    "pacing.max_per_second": "write a positive integer (IB: 50)",
    "faults.at": 'write New York time as "HH:MM" or "HH:MM:SS", quoted in YAML',
    "faults.action": "use lose_connectivity, restore, restore_data_lost, restart, shut_down "
    "or come_back",
}


class ScenarioError(ValueError):
    """A scenario that cannot run; the message lists every bad field and its fix."""


class ClockConfig(BaseModel):
    """When the simulated day starts and how fast it runs."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = Field(
        default=None,
        description="New York time the clock starts at (naive = New York); None = now.",
    )
    speed: float | Literal["sim"] = Field(
        default=1.0,
        description='1.0 = real time, N = N times faster, "sim" = the embedded SimClock '
        "(advanced by the platform or a test).",
    )

    @field_validator("start")
    @classmethod
    def _new_york(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=NEW_YORK)
        return value.astimezone(UTC)

    @field_validator("speed")
    @classmethod
    def _positive(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and value <= 0:
            raise ValueError("speed must be positive")
        return value


class PacingConfig(BaseModel):
    """IB's message pacing: over `max_per_second` on a connection -> error 100, disconnect."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_per_second: int = Field(default=50, gt=0)


class Fault(BaseModel):
    """One scripted fault at a New York time of the scenario's day."""

    model_config = ConfigDict(extra="forbid")

    at: time
    action: FaultName

    @field_validator("at", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            # YAML 1.1 reads unquoted 10:15 as sexagesimal 615 (minutes) and
            # 10:15:30 as 36930 (seconds); before 00:24 the two would collide.
            seconds = value * 60 if value < 24 * 60 else value
            if seconds < 24 * 3600:
                return time(seconds // 3600, seconds // 60 % 60, seconds % 60)
            raise ValueError(f"{value} is not HH:MM or HH:MM:SS (quote the time in YAML)")
        if isinstance(value, str):
            try:
                return time.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not HH:MM or HH:MM:SS") from None
        return value


def _validated(model: type[M], value: Any) -> M:
    """`value` as a `model`, its errors joined into one message for the field."""
    if value is None:
        return model()
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None


class Scenario(BaseModel):
    """A whole simulated day for one gateway."""

    model_config = ConfigDict(extra="forbid")

    clock: ClockConfig = Field(default_factory=ClockConfig)
    accounts: list[str] = Field(default_factory=lambda: ["DU000001"])
    seed: int = Field(default=1, description="Seed of the engine's random choices.")
    market: MarketConfig | None = Field(default=None, description="ibsim.market.MarketConfig.")
    fills: Any = Field(default=None, description="ibsim.engine.EngineConfig fields.")
    pacing: PacingConfig = Field(default_factory=PacingConfig)
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: list[str]) -> list[str]:
        cleaned = [a.strip() for a in value]
        if not cleaned:
            raise ValueError("at least one account is needed")
        bad = [a for a in cleaned if not a or not a.isalnum()]
        if bad:
            raise ValueError(f"account ids are letters and digits only, got {bad}")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("account ids must be distinct")
        return cleaned

    @field_validator("market", mode="before")
    @classmethod
    def _market(cls, value: Any) -> MarketConfig:
        return _validated(MarketConfig, value)

    @field_validator("fills", mode="before")
    @classmethod
    def _fills(cls, value: Any) -> Any:
        from ibsim.engine import EngineConfig  # not at the top: see build_gateway

        return _validated(EngineConfig, value)

    # -- loading ------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Scenario:
        """Read a YAML/JSON scenario file; ScenarioError names every bad field."""
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML/JSON: {exc}") from None
        return cls.parse(raw or {}, source=str(path))

    @classmethod
    def parse(cls, raw: Any, source: str = "scenario") -> Scenario:
        """Validate a mapping (e.g. parsed JSON) into a Scenario, with readable errors."""
        if not isinstance(raw, dict):
            raise ScenarioError(f"{source}: the top level must be a mapping of fields")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ScenarioError(_explain(exc, source)) from None

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        return cls.parse(json.loads(text))

    # -- derived --------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> datetime:
        """The clock's start as an aware UTC moment (now when not set)."""
        return self.clock.start or (now or datetime.now(UTC))

    def day(self, now: datetime | None = None) -> date:
        """The New York date the scenario's faults refer to."""
        return ny_date(self.start(now))

    def fault_schedule(self, day: date) -> list[tuple[datetime, str]]:
        """Faults as (aware UTC moment, action) on `day`, in time order."""
        return sorted((ny_datetime(day, f.at), f.action) for f in self.faults)


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc)
        key = ".".join(p for p in loc if not p.isdigit())
        fix = _FIXES.get(key) or _FIXES.get(loc[0] if loc else "", "")
        line = f"  {field or '(top)'}: {err['msg']}"
        if err["type"] == "extra_forbidden":
            line = f"  {field}: unknown field"
            fix = "remove it or check the spelling"
        lines.append(line + (f" (fix: {fix})" if fix else ""))
    return "\n".join(lines)


def make_clock(scenario: Scenario) -> Clock:
    """The clock a scenario asks for: SimClock for "sim", system time, or a scaled clock."""
    speed = scenario.clock.speed
    start = scenario.clock.start
    if speed == "sim":
        return SimClock(start or datetime.now(UTC))
    if start is None and speed == 1.0:
        return SystemClock()
    return ScaledClock(start or datetime.now(UTC), float(speed))


def build_gateway(
    scenario: Scenario,
    clock: Clock,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    calendar: MarketCalendar | None = None,
) -> Gateway:
    """A Gateway for a scenario on a given clock (not started).

    Faults are scheduled on the New York day of the clock's current time.
    """
    # imported here, not at the top: they load ib_async, slow for every CLI start
    from ibsim.engine import Engine, EngineConfig
    from ibsim.instruments import Instruments
    from ibsim.server import Gateway

    calendar = calendar or MarketCalendar()
    now = clock.now()
    config = scenario.market if scenario.market is not None else MarketConfig()
    market = MarketModel(config, ny_date(now), calendar)
    instruments = Instruments(calendar, market)
    quotes = QuoteBook(market, instruments)
    engine = Engine(
        clock,
        quotes,
        instruments,
        list(scenario.accounts),
        scenario.fills if scenario.fills is not None else EngineConfig(),
        calendar,
        scenario.seed,
    )
    gateway = Gateway(
        clock,
        list(scenario.accounts),
        market,
        instruments,
        engine,
        quotes=quotes,
        pacing=scenario.pacing.enabled,
        max_msgs_per_sec=scenario.pacing.max_per_second,
        host=host,
        port=port,
        calendar=calendar,
    )
    for at, action in scenario.fault_schedule(scenario.day(now)):
        gateway.schedule_fault(at, action)
    return gateway
