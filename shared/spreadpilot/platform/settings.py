"""One typed settings object for every component.

Sources, later ones losing: environment variables `SPREADPILOT_<NAME>`, then a
TOML file named by `SPREADPILOT_CONFIG`, then the defaults below (domain.md).
Validated at start: a bad value stops the component with a message naming
the setting, the value and the fix, never a traceback.
"""

from __future__ import annotations

import os
from datetime import datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SPREADPILOT_"
CONFIG_FILE_ENV = "SPREADPILOT_CONFIG"


class SettingsError(ValueError):
    """Bad configuration; the message lists every bad setting and its fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    # --- where it runs
    mode: Literal["embedded", "gcp"] = Field(
        "embedded", description="embedded: SQLite store, local bus, CSV sheet, outbox files"
    )
    data_dir: Path = Field(Path(".spreadpilot/data"), description="embedded store, bus, outbox")
    project_id: str = Field("spreadpilot-local", min_length=1, description="GCP project")
    firestore_database: str = "(default)"
    rpc_timeout_seconds: float = Field(10.0, gt=0, le=120, description="every cloud call's timeout")
    secrets_dir: Path | None = Field(None, description="embedded: one file per secret")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    clock_start: datetime | None = Field(
        None,
        description="embedded only: run on a scaled clock from this aware time (ISO 8601, "
        "e.g. 2026-11-24T10:00:00-05:00) instead of the system clock; for tests and demos",
    )
    clock_epoch: float | None = Field(
        None, description="Unix time matching clock_start, so several processes agree"
    )
    clock_speed: float = Field(1.0, gt=0, le=3600, description="scaled clock speed (1 = real)")

    # --- the signal sheet (domain.md section 2)
    sheet_id: str | None = Field(None, description="Google spreadsheet id (gcp mode)")
    sheet_worksheet: str = Field("Segnali", min_length=1, description="worksheet (tab) name")
    sheet_csv: Path | None = Field(None, description="embedded sheet; default DATA_DIR/signals.csv")
    sheet_credentials_secret: str = Field(
        "sheets-service-account", description="secret holding the service-account JSON"
    )
    signal_ticker: str = "QQQ"
    signal_poll_start: time = Field(time(9, 27), description="New York time the poll starts")
    signal_deadline: time = Field(time(9, 40), description="New York time of SIGNAL_MISSING")
    signal_reads_per_run: int = Field(3, ge=1, le=10, description="sheet reads in one poller run")
    signal_read_interval_seconds: float = Field(15.0, ge=0, le=60)
    signal_max_age_minutes: int = Field(
        30, ge=1, le=390, description="older signal events are stale: dropped, never traded"
    )
    tick_max_age_seconds: int = Field(
        120, ge=10, description="older scheduler ticks are dropped (the next minute's tick follows)"
    )

    # --- idempotency
    claim_lease_seconds: int = Field(
        60, ge=5, le=3600, description="an IN_PROGRESS claim older than this is taken over"
    )
    claim_retention_days: int = Field(30, ge=1, description="TTL of claim records")

    # --- trading
    dry_run: bool = Field(False, description="broker adapter sends whatIf only, routes nothing")

    # --- execution (issue 4): the limit ladder and gateway pacing (domain.md sections 3-4)
    ladder_start: Literal["mid", "natural"] = Field(
        "mid",
        description="first ladder price: mid credit (default) or natural credit (marketable), "
        "rounded down to the tick",
    )
    ladder_tick: Decimal = Field(
        Decimal("0.01"), gt=0, le=1, description="credit lowered by this much per step (USD/share)"
    )
    ladder_step_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="time at each price before the next step (stretched by pacing)",
    )
    ladder_min_credit: Decimal = Field(
        Decimal("0.70"),
        gt=0,
        description="floor: never ask less; a mid below it is rejected up front (MID_TOO_LOW)",
    )
    ladder_max_steps: int = Field(
        10, ge=0, le=1000, description="price reductions after the first price, then cancel"
    )
    gateway_pacing_per_second: int = Field(
        45, ge=1, le=50, description="messages/s one gateway connection may send (IB caps at 50)"
    )
    order_max_age_minutes: int = Field(
        30, ge=1, le=390, description="an order whose signal is older is dropped with an alert"
    )

    @model_validator(mode="after")
    def _ladder_consistent(self) -> Settings:
        """The floor must be a price the ladder can reach: at least one tick and on the
        tick grid (prices are start - k * tick, start itself on the grid)."""
        tick, floor = self.ladder_tick, self.ladder_min_credit
        if floor < tick:
            raise ValueError(
                f"SPREADPILOT_LADDER_MIN_CREDIT {floor} must be at least one tick "
                f"(SPREADPILOT_LADDER_TICK {tick})"
            )
        if floor % tick != 0:
            raise ValueError(
                f"SPREADPILOT_LADDER_MIN_CREDIT {floor} must be a multiple of "
                f"SPREADPILOT_LADDER_TICK {tick}, or the ladder can never price at the floor"
            )
        return self

    # --- end execution (issue 4)

    @field_validator("signal_ticker")
    @classmethod
    def _ticker(cls, value: str) -> str:
        if value != "QQQ":
            raise ValueError("only QQQ is traded; set SPREADPILOT_SIGNAL_TICKER=QQQ")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.signal_deadline <= self.signal_poll_start:
            raise ValueError(
                f"signal_deadline {self.signal_deadline} must be after "
                f"signal_poll_start {self.signal_poll_start}"
            )
        if self.clock_start is not None:
            if self.clock_start.tzinfo is None:
                raise ValueError(
                    "SPREADPILOT_CLOCK_START must carry its UTC offset, "
                    "e.g. 2026-11-24T10:00:00-05:00"
                )
            if self.mode == "gcp":
                raise ValueError(
                    "SPREADPILOT_CLOCK_START is for embedded tests and demos; unset it in gcp mode"
                )
        if self.mode == "gcp" and not self.sheet_id:
            raise ValueError("mode is gcp: set SPREADPILOT_SHEET_ID to the signal spreadsheet id")
        return self

    @property
    def sheet_csv_path(self) -> Path:
        return self.sheet_csv or self.data_dir / "signals.csv"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _describe(errors: list[Any]) -> str:
    lines = []
    for err in errors:
        name = str(err["loc"][0]) if err["loc"] else "(settings)"
        env = f"{ENV_PREFIX}{name.upper()}" if err["loc"] else "(settings)"
        rule = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            rule = "unknown setting; check the spelling against `spreadpilot settings show`"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {env}{shown}: {rule}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Settings from env/file (+ explicit overrides); SettingsError names every bad one."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_ENV}={config_file}: file not found; fix the path")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc.errors())) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise SettingsError(f"{CONFIG_FILE_ENV}={config_file}: cannot read it ({exc})") from None


@cache
def settings() -> Settings:
    """Process-wide settings, validated once at first use."""
    return load_settings()
