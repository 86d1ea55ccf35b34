"""The operator's actions on trading: emergency close, manual signal, re-send, reconnect.

The first three move money and need the PIN; each goes through the same service
as the automatic path (`services/emergency.py`, `services/operator_orders.py`), so
the claim and orderRef rules hold whoever asks.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spreadpilot.admin.app import invalid
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import ConflictError, Invalid, NotFoundError
from spreadpilot.admin.registry import API, Reply
from spreadpilot.domain.errors import DomainValidationError, FieldError
from spreadpilot.domain.signal import Strategy
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store
from spreadpilot.services.emergency import request_emergency_close, request_reconnect
from spreadpilot.services.operator_orders import Refused, resend_order, send_manual_signal

TAG = "actions"


class EmergencyCloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    followers: list[str] = Field(default_factory=list, description="ids to close; or all")
    all: bool = Field(False, description="close every follower's open spreads")
    reason: str = Field(min_length=3, max_length=500)

    @model_validator(mode="after")
    def _targets(self) -> EmergencyCloseIn:
        if self.all == bool(self.followers):
            raise ValueError("name the followers or set all: true, not both and not neither")
        return self


class ManualSignalIn(BaseModel):
    """Today's signal as the sheet would carry it (strikes of the traded side only)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(description="Long = Bull Put, Short = Bear Call")
    qty_per_leg: int = Field(gt=0, le=1000)
    buy_put: Decimal | None = None
    sell_put: Decimal | None = None
    sell_call: Decimal | None = None
    buy_call: Decimal | None = None
    reason: str = Field(min_length=3, max_length=500, description="e.g. the sheet is down")


def known_followers(store: Store, ids: list[str]) -> None:
    """422 naming the unknown ids (the API and the status page's close form)."""
    missing = [f for f in ids if store.get(C.FOLLOWERS, f) is None]
    if missing:
        rule = f"unknown follower(s) {', '.join(missing)}"
        raise Invalid(f"followers: {rule}", fields=[FieldError("followers", missing, rule)])


@API.route(
    "POST",
    "/emergency-close",
    summary="Close open spreads now, one follower or all (PIN)",
    tag=TAG,
    body=EmergencyCloseIn,
    pin=True,
    audit="emergency.close",
    status=202,
)
def emergency_close(ctx: Ctx, body: EmergencyCloseIn) -> dict[str, Any]:
    """Published to the gateway agent, which closes each open spread as one combo
    (EMERGENCY orderRef); follow it with GET /emergency-close/{command_id}."""
    known_followers(ctx.c.store, body.followers)
    command = request_emergency_close(
        ctx.c.bus,
        ctx.c.clock,
        reason=body.reason,
        requested_by=ctx.operator or "operator",
        followers=body.followers,
        all_followers=body.all,
    )
    ctx.audit_details["command_id"] = command.command_id
    return {"command_id": command.command_id, "status": "SENT", "describe": command.describe()}


@API.route("GET", "/emergency-close/<command_id>", summary="An emergency close's outcome", tag=TAG)
def emergency_close_outcome(ctx: Ctx, command_id: str) -> dict[str, Any]:
    doc = ctx.c.store.get(C.COMMANDS, command_id)
    if doc is None:
        return {"command_id": command_id, "status": "PENDING", "followers": {}}
    return {"command_id": command_id, "status": doc.get("status", "RUNNING"), **doc}


@API.route(
    "POST",
    "/signals/manual",
    summary="Send today's signal by hand (sheet down) (PIN)",
    tag=TAG,
    body=ManualSignalIn,
    pin=True,
    audit="signal.manual",
    status=201,
    errors=(409,),
)
def manual_signal(ctx: Ctx, body: ManualSignalIn) -> dict[str, Any]:
    fields = body.model_dump(mode="json", exclude={"reason"}, exclude_none=True)
    try:
        result = send_manual_signal(
            ctx.c, fields, by=ctx.operator or "operator", reason=body.reason
        )
    except DomainValidationError as exc:
        raise invalid(exc) from None
    except Refused as exc:
        raise ConflictError(str(exc)) from None
    ctx.audit_details["signal_id"] = result.signal_id
    return {
        "signal_id": result.signal_id,
        "signal": result.description,
        "claimed_at": result.claimed_at,
        "status": "CLAIMED",
    }


@API.route(
    "POST",
    "/followers/<follower_id>/resend",
    summary="Re-send one follower's order of today after its cause is fixed (PIN)",
    tag=TAG,
    pin=True,
    audit="order.resend",
    status=202,
    errors=(409,),
)
def resend(ctx: Ctx, follower_id: str) -> dict[str, Any]:
    """Refused while anything of that orderRef is, or may be, at IB."""
    try:
        result = resend_order(ctx.c, follower_id, by=ctx.operator or "operator")
    except LookupError:
        raise NotFoundError(f"no follower {follower_id!r}") from None
    except Refused as exc:
        raise ConflictError(str(exc)) from None
    ctx.audit_details.update(order_ref=result.order_ref, status=result.status)
    return {
        "follower_id": result.follower_id,
        "order_ref": result.order_ref,
        "status": result.status,
        "quantity": result.quantity,
        "reason": result.reason,
    }


@API.route(
    "POST",
    "/gateways/<gateway_id>/reconnect",
    summary="Force one gateway's API connection to reconnect now",
    tag=TAG,
    audit="gateway.reconnect",
    status=202,
)
def reconnect(ctx: Ctx, gateway_id: str) -> Reply:
    """The agent drops and re-opens the connection, skipping its back-off; the outcome is
    in job_runs (reconnect-gateway) and the gateway's health."""
    command = request_reconnect(
        ctx.c.bus, ctx.c.clock, gateway_id=gateway_id, requested_by=ctx.operator or "operator"
    )
    ctx.audit_details["command_id"] = command.command_id
    return Reply({"command_id": command.command_id, "status": "SENT"}, 202)
