"""Health (open), login, the current session and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spreadpilot.admin.app import app_auth, version
from spreadpilot.admin.auth import session_json
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import Unauthenticated
from spreadpilot.admin.registry import API, Reply
from spreadpilot.platform import collections as C


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@API.route(
    "GET", "/health", summary="Is the console up (store reachable)?", tag="session", public=True
)
def health(ctx: Ctx) -> Reply:
    """The only open endpoint: no data, just whether this instance can reach the store."""
    try:
        ctx.c.store.get(C.HEALTH, "admin_api")
        store: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # any store failure turns the check red, with the reason
        store = {"status": "down", "error": type(exc).__name__}
    status = "ok" if store["status"] == "ok" else "down"
    body = {
        "status": status,
        "component": "admin_api",
        "version": version(),
        "time": ctx.c.clock.now(),
        "checks": {"store": store},
    }
    return Reply(body, 200 if status == "ok" else 503)


@API.route(
    "POST",
    "/auth/login",
    summary="Log in: a short-lived bearer token",
    tag="session",
    body=LoginIn,
    public=True,
    audit="auth.login",
)
def login(ctx: Ctx, body: LoginIn) -> dict[str, Any]:
    """Failed logins are audited with the name tried and the caller's IP."""
    ctx.audit_details["username"] = body.username
    auth = app_auth()
    if not auth.check_password(body.username, body.password):
        raise Unauthenticated("wrong username or password")
    ctx.operator = body.username
    return session_json(auth.issue(body.username))


@API.route(
    "GET", "/auth/session", summary="Who is logged in, the token's expiry, PIN state", tag="session"
)
def current_session(ctx: Ctx) -> dict[str, Any]:
    auth = app_auth()
    session = ctx.session
    assert session is not None  # the route is not public: the wrapper verified it
    pin = auth.pin_guard().status(session.operator)
    return {
        "operator": session.operator,
        "issued_at": session.issued_at,
        "expires_at": session.issued_at + auth.ttl,
        "pin": {"failures": pin.failures, "locked_until": pin.locked_until},
        "dry_run": ctx.c.settings.dry_run,
        "mode": ctx.c.settings.mode,
    }


@API.route("GET", "/openapi.json", summary="This API's OpenAPI document", tag="session")
def openapi(ctx: Ctx) -> dict[str, Any]:
    return API.openapi(version())
