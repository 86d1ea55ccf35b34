"""One typed settings object for every component.

Sources, later ones losing: environment variables `SPREADPILOT_<NAME>`, then a
TOML file named by `SPREADPILOT_CONFIG`, then the defaults below (domain.md).
Validated at start: a bad value stops the component with a message naming
the setting, the value and the fix, never a traceback.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time
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


# --- alert routing (issue 5)
AlertSeverityName = Literal["CRITICAL", "WARNING", "INFO"]
AlertChannel = Literal["telegram", "email", "log"]
DEFAULT_ALERT_ROUTES: dict[AlertSeverityName, tuple[AlertChannel, ...]] = {
    "CRITICAL": ("telegram", "email"),
    "WARNING": ("telegram",),
    "INFO": ("log",),
}
# --- end alert routing (issue 5)


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
    embedded_durable: bool = Field(
        True,
        description="embedded store and bus fsync every commit (survives power loss); "
        "false: a killed process loses nothing, a machine crash may (demos)",
    )
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

    # --- health (issue 5): gateway checks, heartbeat, health_ping, /health and /metrics
    health_host: str = Field(
        "127.0.0.1", description="address the agent's /health and /metrics server binds"
    )
    health_port: int = Field(
        8081, ge=0, le=65535, description="port of the agent's /health and /metrics (0: off)"
    )
    health_check_seconds: float = Field(
        15.0, gt=0, le=300, description="the agent checks each gateway this often"
    )
    health_check_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="a gateway's round trip (reqCurrentTime) must answer within"
    )
    health_failures_to_down: int = Field(
        3, ge=1, le=100, description="consecutive failed checks before a gateway is DOWN"
    )
    health_alert_after_seconds: int = Field(
        60, ge=0, le=3600, description="GATEWAY_UNREACHABLE once a gateway is down this long"
    )
    health_restart_budget: int = Field(
        3, ge=0, le=100, description="hung-gateway restarts allowed per budget window"
    )
    health_restart_window_seconds: int = Field(
        3600, ge=60, description="the restart budget's window"
    )
    health_restart_backoff_seconds: float = Field(
        60.0, ge=0, le=3600, description="first wait before restarting a hung gateway (doubles)"
    )
    health_restarter: Literal["docker", "command"] = Field(
        "docker",
        description="how a hung IB Gateway is restarted: docker = kill its container through "
        "the Docker socket (its systemd unit starts a fresh one), command = run "
        "health_restart_command",
    )
    health_docker_socket: Path = Field(
        Path("/var/run/docker.sock"), description="the VM's Docker socket (mounted in the agent)"
    )
    health_restart_container: str = Field(
        "ib-gateway-{gateway_id}", description="a gateway's container ({gateway_id} = its login)"
    )
    health_restart_command: str = Field(
        "systemctl restart ib-gateway-{gateway_id}.service",
        description="command that restarts one hung IB Gateway ({gateway_id} = its login)",
    )
    heartbeat_max_age_seconds: int = Field(
        120, ge=30, description="health_ping: COMPONENT_DOWN when the agent's heartbeat is older"
    )
    job_grace_seconds: int = Field(
        180, ge=60, description="health_ping: a due job run may be this late before JOB_MISSED"
    )
    # --- end health (issue 5)

    # --- alert routing (issue 5)
    alert_routes: dict[AlertSeverityName, tuple[AlertChannel, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_ALERT_ROUTES),
        description='severity -> channels (JSON), e.g. {"CRITICAL": ["telegram", "email"], '
        '"WARNING": ["telegram"], "INFO": ["log"]}; every alert is also logged',
    )
    alert_telegram_chat_ids: tuple[str, ...] = Field(
        (), description="operator chats (JSON list); a negative id is a group (20 msgs/min)"
    )
    alert_follower_chat_ids: dict[str, str] = Field(
        default_factory=dict,
        description="follower id -> chat (JSON): that follower's alerts also go to this chat",
    )
    alert_email_to: tuple[str, ...] = Field((), description="recipients of emailed alerts")
    alert_email_from: str = Field("alerts@spreadpilot.local", description="sender address")
    alert_delivery: Literal["outbox", "live"] | None = Field(
        None,
        description="outbox: files in DATA_DIR/outbox; live: Telegram + SendGrid. "
        "Default: outbox in embedded mode, live in gcp",
    )
    alert_telegram_base_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API base (the token is appended)"
    )
    alert_sendgrid_host: str = Field("https://api.sendgrid.com", description="SendGrid API host")
    alert_telegram_token_secret: str = Field(
        "telegram-bot-token", description="secret holding the Telegram bot token"
    )
    alert_sendgrid_key_secret: str = Field(
        "sendgrid-api-key", description="secret holding the SendGrid API key"
    )
    alert_cooldown_minutes: float = Field(
        15.0, ge=0, le=1440, description="an alert with the same dedup key is sent once per window"
    )
    alert_telegram_chat_per_second: int = Field(
        1, ge=1, le=30, description="flood limit: messages per second to one chat"
    )
    alert_telegram_group_per_minute: int = Field(
        20, ge=1, le=60, description="flood limit: messages per minute to one group chat"
    )
    alert_telegram_bot_per_second: int = Field(
        30, ge=1, le=1000, description="flood limit: messages per second across all chats"
    )
    alert_flood_margin: float = Field(
        0.05, ge=0, le=1, description="flood limits' periods are stretched by this fraction"
    )
    alert_max_attempts: int = Field(
        8, ge=1, le=100, description="send attempts per delivery before it is FAILED"
    )
    alert_retry_base_seconds: float = Field(
        30.0, gt=0, le=3600, description="first retry delay of a failed send (doubles)"
    )
    alert_retry_max_seconds: float = Field(900.0, gt=0, le=86400, description="retry delay cap")
    alert_max_wait_seconds: float = Field(
        20.0,
        ge=0,
        le=50,
        description="one invocation waits this long at most for a flood slot "
        "or a Retry-After; longer waits are left to the retry pass",
    )
    alert_send_lease_seconds: int = Field(
        60, ge=5, le=3600, description="a send claim older than this has an unknown outcome"
    )
    alert_rpc_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="timeout of one Telegram or SendGrid call"
    )
    status_base_url: str | None = Field(
        None, description="alerts link a follower as {status_base_url}/followers/{id}"
    )
    # --- end alert routing (issue 5)

    # --- risk (issue 5): time value, end-of-day, pre-open, emergency close (domain.md 5)
    risk_tv_safe_above: Decimal = Field(
        Decimal("1.00"), ge=0, description="short leg's time value above this: SAFE (USD/share)"
    )
    risk_tv_critical_at_or_below: Decimal = Field(
        Decimal("0.10"), ge=0, description="time value at or below this: CRITICAL (USD/share)"
    )
    risk_auto_close: Literal["all", "itm_only", "off"] = Field(
        "all",
        description="CRITICAL closes the spread: all (both reasons), itm_only (in the money "
        "only; out of the money is alerted), off (alert only)",
    )
    risk_close_order: Literal["market", "limit"] = Field(
        "limit",
        description="a risk/EOD/emergency close is a market order or an aggressive limit "
        "(natural debit + RISK_CLOSE_LIMIT_OFFSET)",
    )
    risk_close_limit_offset: Decimal = Field(
        Decimal("0.05"), ge=0, le=5, description="aggressive limit: this much above the natural"
    )
    risk_otm_buyback_debit: Decimal | None = Field(
        None,
        gt=0,
        description="out-of-the-money CRITICAL closes are limits at this debit (USD/share); "
        "unset: the same order as any close",
    )
    risk_close_wait_seconds: float = Field(
        60.0, gt=0, le=900, description="a close waits this long for its fill within one run"
    )
    risk_eod_action: Literal["close", "flag"] = Field(
        "close", description="end-of-day: spreads in or near the money are closed or flagged"
    )
    risk_eod_distance: Decimal = Field(
        Decimal("1.00"), ge=0, description="end-of-day: a leg this near the money counts (USD)"
    )
    risk_eod_minutes_before_close: int = Field(
        15, ge=1, le=120, description="the end-of-day check runs this long before the close"
    )
    risk_assignment_response: Literal["flatten", "alert"] = Field(
        "flatten", description="assigned QQQ shares: flattened at the open, or alerted only"
    )
    risk_min_available_funds: Decimal = Field(
        Decimal(0), ge=0, description="pre-open: an account with less AvailableFunds is NOT_READY"
    )
    # --- end risk (issue 5)

    # --- P&L, commissions, statements (issue 6)
    marks_interval_seconds: float = Field(
        30.0, ge=5, le=600, description="the agent marks open positions and reads fills this often"
    )
    pnl_recompute_days: int = Field(
        5,
        ge=1,
        le=60,
        description="the daily rollup also recomputes this many trading days before today "
        "(late fills and overnight settlements)",
    )
    pnl_exercise_threshold: Decimal = Field(
        Decimal("0.01"), ge=0, description="an expiring option this far in the money is exercised"
    )
    billing_currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="currency commissions are billed in (ISO 4217)"
    )
    fx_rate: Decimal | None = Field(
        None, gt=0, description="USD -> billing currency, when billing is not in USD"
    )
    fx_rate_date: date | None = Field(None, description="the day fx_rate was taken on")
    fx_rates_file: Path | None = Field(
        None,
        description="embedded: CSV 'date,currency,rate' (USD -> currency); the month's rate is "
        "the last on or before its last day",
    )
    commission_high_water_mark: bool = Field(
        False, description="losses carry forward: commission only on P&L above earlier losses"
    )
    operator_name: str = Field("SpreadPilot Operator", min_length=1, description="statement header")
    operator_email: str = Field(
        "operator@spreadpilot.local", description="statement header; in CC of every statement"
    )
    operator_address: tuple[str, ...] = Field((), description="statement header lines (JSON list)")
    statement_email_from: str = Field(
        "statements@spreadpilot.local", description="sender of the statement mails"
    )
    statement_delivery: Literal["outbox", "live"] | None = Field(
        None,
        description="outbox (dry run): the mails and PDFs are written to DATA_DIR/outbox; "
        "live: SendGrid. Default: outbox in embedded mode, live in gcp",
    )
    statement_mail_attempts: int = Field(
        4, ge=1, le=10, description="tries per statement mail within one run (backoff between)"
    )
    # --- end P&L (issue 6)

    # --- the operator's console (issue 8): admin_api, PIN, audit
    admin_username: str = Field(
        "operator", pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="the operator's login name"
    )
    admin_password_hash_secret: str = Field(
        "admin-password-hash", description="secret: scrypt hash of the operator's password"
    )
    admin_pin_hash_secret: str = Field(
        "admin-pin-hash", description="secret: scrypt hash of the PIN for dangerous actions"
    )
    admin_token_secret: str = Field(
        "admin-token-secret", description="secret: key signing the login tokens (>= 32 chars)"
    )
    admin_token_ttl_minutes: int = Field(
        15, ge=1, le=720, description="a login token's lifetime; then log in again"
    )
    admin_cors_origins: tuple[str, ...] = Field(
        (),
        description="browser origins allowed to call the API (JSON list of https://host); "
        "never '*'; empty: same-origin only",
    )
    admin_secure_cookies: bool | None = Field(
        None, description="session cookie Secure flag; default: true in gcp mode"
    )
    pin_max_attempts: int = Field(3, ge=1, le=10, description="wrong PINs before the lockout")
    pin_window_minutes: int = Field(15, ge=1, le=1440, description="window counting wrong PINs")
    pin_lockout_minutes: int = Field(15, ge=1, le=1440, description="how long a lockout lasts")
    audit_retention_days: int = Field(90, ge=1, le=3650, description="TTL of audit log rows")
    status_refresh_seconds: int = Field(
        30, ge=5, le=3600, description="the status page reloads itself this often"
    )
    # --- end the operator's console (issue 8)

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
        fx_missing = self.fx_rate is None or self.fx_rate_date is None
        if self.billing_currency != "USD" and self.fx_rates_file is None and fx_missing:
            raise ValueError(
                f"billing_currency is {self.billing_currency}: set SPREADPILOT_FX_RATE (USD -> "
                f"{self.billing_currency}) and SPREADPILOT_FX_RATE_DATE, or "
                "SPREADPILOT_FX_RATES_FILE"
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
