"""Commands for the gateway agent on the ``commands`` topic, and the emergency close.

Two kinds of message arrive on ``commands`` (subscription ``agent-commands``):

- a scheduled job's tick, ``{"job": "time-value-check"}`` (Cloud Scheduler,
  scheduler/jobs.yaml);
- an operator command, ``{"command": "emergency-close", "command_id": ..., ...}``,
  published by `request_emergency_close` (the CLI ``spreadpilot close`` now, the
  admin API behind the operator's PIN later). The agent closes every open spread
  of the named followers (or of all) as one combo each (EMERGENCY orderRef).
  The command id makes it idempotent: a redelivered or re-published command with
  the same id is executed once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock

COMMANDS_TOPIC = "commands"
EMERGENCY_CLOSE: Literal["emergency-close"] = "emergency-close"
RECONNECT_GATEWAY: Literal["reconnect-gateway"] = "reconnect-gateway"
#: The scheduled jobs the gateway agent runs (scheduler/jobs.yaml, consumer gateway-agent).
AGENT_JOBS = ("pre-open-check", "time-value-check", "eod-check")


class JobTick(BaseModel):
    """A scheduled job's tick as Cloud Scheduler publishes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: Literal["pre-open-check", "time-value-check", "eod-check"]
    #: the local scheduler says when the tick was due (Cloud Scheduler's body is the job)
    scheduled_time: AwareDatetime | None = None


class EmergencyClose(BaseModel):
    """Close every open spread of `followers` (or of all followers) now, as combos."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: Literal["emergency-close"] = EMERGENCY_CLOSE
    command_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    followers: tuple[str, ...] = ()
    all: bool = False
    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(min_length=1, max_length=100)
    requested_at: AwareDatetime

    @model_validator(mode="after")
    def _targets(self) -> EmergencyClose:
        if self.all == bool(self.followers):
            raise ValueError("name the followers or set all, not both and not neither")
        return self

    def describe(self) -> str:
        who = "all followers" if self.all else ", ".join(self.followers)
        return f"emergency close of {who} by {self.requested_by}: {self.reason}"


class GatewayReconnect(BaseModel):
    """Drop and re-open one gateway's API connection now (the operator's force-reconnect),
    without waiting for the agent's back-off; the gateway process itself is untouched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: Literal["reconnect-gateway"] = RECONNECT_GATEWAY
    command_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    gateway_id: str = Field(min_length=1, max_length=100)
    requested_by: str = Field(min_length=1, max_length=100)
    requested_at: AwareDatetime


Command = JobTick | EmergencyClose | GatewayReconnect


class CommandError(ValueError):
    """A message on ``commands`` that is not a command the agent knows."""


def parse_command(data: bytes) -> Command:
    """A JobTick or an EmergencyClose; CommandError (with why) for anything else."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CommandError(f"not a JSON object: {raw!r}"[:300])
    try:
        if "job" in raw:
            return JobTick.model_validate(raw)
        if raw.get("command") == EMERGENCY_CLOSE:
            return EmergencyClose.model_validate(raw)
        if raw.get("command") == RECONNECT_GATEWAY:
            return GatewayReconnect.model_validate(raw)
    except ValidationError as exc:
        raise CommandError(str(exc).replace("\n", " ")[:500]) from None
    raise CommandError(
        f"unknown command {raw.get('command', raw.get('job'))!r}: expected a job of "
        f"{', '.join(AGENT_JOBS)} or command {EMERGENCY_CLOSE} or {RECONNECT_GATEWAY}"
    )


def request_emergency_close(
    bus: Bus,
    clock: Clock,
    *,
    reason: str,
    requested_by: str,
    followers: Sequence[str] = (),
    all_followers: bool = False,
    command_id: str | None = None,
) -> EmergencyClose:
    """Publish an emergency close for the gateway agent (the admin API's entry point).

    Returns the command (its `command_id` names it in the store's ``commands`` and
    in ``job_runs``); publishing the same command id again changes nothing."""
    now: datetime = clock.now()
    command = EmergencyClose(
        command_id=command_id or f"emergency-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        followers=tuple(dict.fromkeys(followers)),
        all=all_followers,
        reason=reason,
        requested_by=requested_by,
        requested_at=now,
    )
    return _publish(bus, command)


def request_reconnect(
    bus: Bus, clock: Clock, *, gateway_id: str, requested_by: str
) -> GatewayReconnect:
    """Publish a force-reconnect of one gateway for the agent (the admin API's entry point)."""
    now: datetime = clock.now()
    command = GatewayReconnect(
        command_id=f"reconnect-{gateway_id}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        gateway_id=gateway_id,
        requested_by=requested_by,
        requested_at=now,
    )
    return _publish(bus, command)


C = TypeVar("C", EmergencyClose, GatewayReconnect)


def _publish(bus: Bus, command: C) -> C:
    bus.publish(
        COMMANDS_TOPIC,
        command.model_dump_json().encode(),
        {"command": command.command, "command_id": command.command_id},
    )
    return command
