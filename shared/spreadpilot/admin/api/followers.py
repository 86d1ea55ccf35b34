"""Followers: CRUD on the one canonical Follower model, enable/disable, onboarding.

Every write validates the whole record with `Follower` (the dispatcher's model), so
a rule lives in one place; uniqueness (id, email, IB account) is checked against
the store. Disabling all followers and deleting one need the PIN.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spreadpilot.admin.app import invalid
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import ConflictError, Invalid, NotFoundError
from spreadpilot.admin.registry import API, Reply
from spreadpilot.domain.errors import DomainValidationError, FieldError, validate
from spreadpilot.domain.follower import Follower, FollowerState
from spreadpilot.domain.statement import mask_iban
from spreadpilot.platform import collections as C
from spreadpilot.services.health import AGENT

TAG = "followers"


class FollowerList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=1000, description="page size")
    after: str | None = Field(None, description="the last id of the previous page")
    enabled: bool | None = Field(None, description="only enabled (true) or disabled (false)")


class FollowerPatch(BaseModel):
    """Fields to change; the merged record is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    email: str | None = None
    iban: str | None = None
    ib_account: str | None = None
    gateway_id: str | None = None
    commission_rate: Decimal | None = None
    enabled: bool | None = None
    state: FollowerState | None = None
    sizing_multiplier: Decimal | None = None
    max_contracts: int | None = None


class Onboarding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway_id: str = Field(min_length=1, description="the IB Gateway that serves the account")
    ib_account: str = Field(min_length=1, description="the IB account, e.g. U1234567")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why (kept in the audit log)")


def follower_json(follower: Follower, *, masked: bool = False) -> dict[str, Any]:
    doc = follower.to_doc()
    if masked:
        doc["iban"] = mask_iban(follower.iban)
    doc["trades"] = follower.trades
    return doc


def _load(ctx: Ctx, follower_id: str) -> Follower:
    data = ctx.c.store.get(C.FOLLOWERS, follower_id)
    if data is None:
        raise NotFoundError(f"no follower {follower_id!r}; GET /api/v1/followers lists them")
    try:
        return validate(Follower, data, subject=f"follower {follower_id}")
    except DomainValidationError as exc:
        raise ConflictError(
            f"the stored record of {follower_id} is invalid ({exc}); replace it with PUT"
        ) from None


def _check_unique(ctx: Ctx, follower: Follower) -> None:
    """Email and IB account belong to one follower each (the store has no unique index)."""
    errors = []
    for snap in ctx.c.store.query(C.FOLLOWERS):
        if snap.id == follower.id:
            continue
        if str(snap.data.get("email", "")).lower() == follower.email.lower():
            errors.append(FieldError("email", follower.email, f"already used by {snap.id}"))
        if snap.data.get("ib_account") == follower.ib_account:
            errors.append(
                FieldError("ib_account", follower.ib_account, f"already used by {snap.id}")
            )
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.rule}" for e in errors), fields=errors)


def _check_gateway(ctx: Ctx, gateway_id: str) -> None:
    """A gateway the agent reports; unchecked while the agent has never reported."""
    beat = ctx.c.store.get(C.HEARTBEATS, AGENT) or {}
    known = sorted(beat.get("gateways") or {})
    if known and gateway_id not in known:
        rule = f"unknown gateway; the agent serves {', '.join(known)}"
        raise Invalid(f"gateway_id: {rule}", fields=[FieldError("gateway_id", gateway_id, rule)])


def _save(ctx: Ctx, data: dict[str, Any]) -> Follower:
    try:
        follower = validate(Follower, data, subject="follower")
    except DomainValidationError as exc:
        raise invalid(exc) from None
    _check_unique(ctx, follower)
    _check_gateway(ctx, follower.gateway_id)
    ctx.c.store.set(C.FOLLOWERS, follower.id, follower.to_doc())
    return follower


@API.route(
    "GET",
    "/followers",
    summary="List followers (IBAN masked), paged by id",
    tag=TAG,
    query=FollowerList,
)
def list_all(ctx: Ctx, query: FollowerList) -> dict[str, Any]:
    """Records that no longer validate are listed with their problems, never hidden."""
    snaps = sorted(ctx.c.store.query(C.FOLLOWERS), key=lambda s: s.id)
    if query.after:
        snaps = [s for s in snaps if s.id > query.after]
    items: list[dict[str, Any]] = []
    for snap in snaps:
        if query.enabled is not None and bool(snap.data.get("enabled", True)) != query.enabled:
            continue
        if len(items) == query.limit:
            break
        try:
            items.append(follower_json(Follower.model_validate(snap.data), masked=True))
        except Exception as exc:  # pydantic's ValidationError: show the record and why
            items.append({"id": snap.id, "invalid": True, "problem": str(exc)[:500]})
    more = len(items) == query.limit and snaps and items[-1]["id"] != snaps[-1].id
    return {"followers": items, "next": items[-1]["id"] if more else None}


@API.route(
    "POST",
    "/followers",
    summary="Add a follower",
    tag=TAG,
    body=Follower,
    audit="follower.create",
    status=201,
    errors=(409,),
)
def create(ctx: Ctx, body: Follower) -> dict[str, Any]:
    if ctx.c.store.get(C.FOLLOWERS, body.id) is not None:
        raise ConflictError(f"follower {body.id!r} exists; change it with PATCH or PUT")
    return follower_json(_save(ctx, body.to_doc()))


@API.route("GET", "/followers/<follower_id>", summary="One follower, IBAN in full", tag=TAG)
def get_one(ctx: Ctx, follower_id: str) -> dict[str, Any]:
    return follower_json(_load(ctx, follower_id))


@API.route(
    "PUT",
    "/followers/<follower_id>",
    summary="Replace a follower's record",
    tag=TAG,
    body=Follower,
    audit="follower.replace",
)
def replace(ctx: Ctx, follower_id: str, body: Follower) -> dict[str, Any]:
    if body.id != follower_id:
        rule = f"must equal the path's id {follower_id!r} (ids never change)"
        raise Invalid(f"id: {rule}", fields=[FieldError("id", body.id, rule)])
    if ctx.c.store.get(C.FOLLOWERS, follower_id) is None:
        raise NotFoundError(f"no follower {follower_id!r}; create it with POST /followers")
    return follower_json(_save(ctx, body.to_doc()))


@API.route(
    "PATCH",
    "/followers/<follower_id>",
    summary="Change some of a follower's fields",
    tag=TAG,
    body=FollowerPatch,
    audit="follower.update",
)
def update(ctx: Ctx, follower_id: str, body: FollowerPatch) -> dict[str, Any]:
    current = ctx.c.store.get(C.FOLLOWERS, follower_id)
    if current is None:
        raise NotFoundError(f"no follower {follower_id!r}")
    changes = body.model_dump(mode="json", exclude_unset=True)
    ctx.audit_details["before"] = {k: current.get(k) for k in changes}
    return follower_json(_save(ctx, {**current, **changes}))


@API.route(
    "DELETE",
    "/followers/<follower_id>",
    summary="Delete a follower (PIN)",
    tag=TAG,
    pin=True,
    audit="follower.delete",
    errors=(409,),
)
def delete(ctx: Ctx, follower_id: str) -> dict[str, Any]:
    """Only a disabled follower: billing rows (P&L, commissions) are kept regardless."""
    data = ctx.c.store.get(C.FOLLOWERS, follower_id)
    if data is None:
        raise NotFoundError(f"no follower {follower_id!r}")
    if data.get("enabled", True):
        raise ConflictError(
            f"{follower_id} is enabled: disable it first (POST .../disable), so no order is "
            "dispatched to a follower being deleted"
        )
    ctx.audit_details["record"] = data
    ctx.c.store.delete(C.FOLLOWERS, follower_id)
    return {"deleted": follower_id}


def _set_enabled(ctx: Ctx, follower_id: str, enabled: bool) -> dict[str, Any]:
    follower = _load(ctx, follower_id)
    ctx.c.store.update(C.FOLLOWERS, follower_id, {"enabled": enabled})
    ctx.audit_details["was_enabled"] = follower.enabled
    return follower_json(follower.model_copy(update={"enabled": enabled}))


@API.route(
    "POST",
    "/followers/<follower_id>/enable",
    summary="Enable a follower",
    tag=TAG,
    audit="follower.enable",
)
def enable(ctx: Ctx, follower_id: str) -> dict[str, Any]:
    """From the next dispatch on; an order already dispatched today is unaffected."""
    return _set_enabled(ctx, follower_id, True)


@API.route(
    "POST",
    "/followers/<follower_id>/disable",
    summary="Disable a follower",
    tag=TAG,
    audit="follower.disable",
)
def disable(ctx: Ctx, follower_id: str) -> dict[str, Any]:
    """No new orders; open positions stay (close them with an emergency close)."""
    return _set_enabled(ctx, follower_id, False)


@API.route(
    "POST",
    "/followers/disable-all",
    summary="Disable every follower (PIN)",
    tag=TAG,
    body=Reason,
    pin=True,
    audit="follower.disable_all",
)
def disable_all(ctx: Ctx, body: Reason) -> dict[str, Any]:
    """Stops new orders for everyone; open positions stay (see emergency close)."""
    changed = []
    for snap in sorted(ctx.c.store.query(C.FOLLOWERS), key=lambda s: s.id):
        if snap.data.get("enabled", True):
            ctx.c.store.update(C.FOLLOWERS, snap.id, {"enabled": False})
            changed.append(snap.id)
    ctx.audit_details["disabled"] = changed
    return {"disabled": changed}


@API.route(
    "POST",
    "/followers/<follower_id>/onboarding",
    summary="Connect an onboarding follower to its gateway and account",
    tag=TAG,
    body=Onboarding,
    audit="follower.onboard",
)
def onboard(ctx: Ctx, follower_id: str, body: Onboarding) -> Reply:
    """Sets the gateway and IB account and makes the follower ACTIVE (it trades from the
    next dispatch if enabled)."""
    current = ctx.c.store.get(C.FOLLOWERS, follower_id)
    if current is None:
        raise NotFoundError(f"no follower {follower_id!r}; create it first (state ONBOARDING)")
    changes = {**body.model_dump(), "state": FollowerState.ACTIVE.value}
    return Reply(follower_json(_save(ctx, {**current, **changes})))
