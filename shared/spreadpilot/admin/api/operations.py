"""Operations: alerts (and acknowledging them), component health, the system's
configuration as deployed, and the audit log.

Acknowledgement lives in `services/alerts.py` (`acknowledge`, `is_open`), so any
other front end marks alerts the same way; health is what health_ping and the
agent's heartbeat left in the store (this endpoint checks nothing itself, so it
stays cheap under the status page's refresh).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from spreadpilot.admin.app import version
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import NotFoundError
from spreadpilot.admin.registry import API
from spreadpilot.domain.alerts import Severity
from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.platform import collections as C
from spreadpilot.platform.health_http import DEGRADED, DOWN, OK, Status, worst
from spreadpilot.platform.schedules import jobs
from spreadpilot.services.alerts import UnknownAlert, acknowledge, is_open
from spreadpilot.services.health import AGENT
from spreadpilot.services.health import JOB as HEALTH_PING

TAG = "operations"
#: At most this many newest alerts are read per listing (filters apply to them).
ALERT_SCAN = 2000
_GATEWAY_STATUS: dict[str, Status] = {"UP": OK, "DOWN": DOWN}


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: bool = Field(True, description="only alerts not yet acknowledged (false: all)")
    severity: Severity | None = Field(None, description="INFO, WARNING or CRITICAL")
    limit: int = Field(100, ge=1, le=500, description="newest first, at most this many")


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(None, max_length=500, description="what was done about it")


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=500, description="newest first, at most this many")
    action: str | None = Field(
        None, min_length=1, max_length=64, description="e.g. alert.acknowledge"
    )
    actor: str | None = Field(None, min_length=1, max_length=64, description="operator name")


# --- alerts ------------------------------------------------------------------------


def alert_json(doc: dict[str, Any], alert_id: str) -> dict[str, Any]:
    return {
        "id": alert_id,
        "type": doc.get("type"),
        "severity": doc.get("severity"),
        "message": doc.get("message"),
        "time": doc.get("time"),
        "follower_id": doc.get("follower_id"),
        "source": doc.get("source"),
        "details": doc.get("details") or {},
        "published": bool(doc.get("published")),
        "open": is_open(doc),
        "acknowledged_at": doc.get("acknowledged_at"),
        "acknowledged_by": doc.get("acknowledged_by"),
        "ack_note": doc.get("ack_note"),
    }


@API.route(
    "GET",
    "/alerts",
    summary="Alerts raised, newest first (default: only open ones)",
    tag=TAG,
    query=AlertsQuery,
)
def alerts(ctx: Ctx, query: AlertsQuery) -> dict[str, Any]:
    """One query ordered on `time` (single-field index); the open and severity filters
    apply to the newest ALERT_SCAN alerts, so no composite index is needed."""
    snaps = ctx.c.store.query(C.ALERTS, order_by="time", descending=True, limit=ALERT_SCAN)
    wanted = [
        s
        for s in snaps
        if (not query.open or is_open(s.data))
        and (query.severity is None or s.data.get("severity") == query.severity.value)
    ]
    return {
        "alerts": [alert_json(s.data, s.id) for s in wanted[: query.limit]],
        "matching": len(wanted),
        "open": sum(1 for s in snaps if is_open(s.data)),
        "scanned": len(snaps),
        "scan_limit_reached": len(snaps) == ALERT_SCAN,
    }


@API.route(
    "POST",
    "/alerts/<alert_id>/acknowledge",
    summary="Acknowledge an alert: it leaves the open list (idempotent)",
    tag=TAG,
    body=AckIn,
    audit="alert.acknowledge",
)
def acknowledge_alert(ctx: Ctx, alert_id: str, body: AckIn) -> dict[str, Any]:
    """A second acknowledgement changes nothing and returns the first (`new` false)."""
    try:
        acked = acknowledge(
            ctx.c.store,
            ctx.c.clock,
            alert_id,
            by=ctx.operator or "operator",
            note=body.note or "",
        )
    except UnknownAlert:
        raise NotFoundError(
            f"no alert {alert_id!r}; GET /api/v1/alerts?open=false lists them"
        ) from None
    ctx.audit_details["new"] = acked.new
    doc = ctx.c.store.get(C.ALERTS, alert_id) or {}
    return {**alert_json(doc, alert_id), "new": acked.new}


# --- components --------------------------------------------------------------------


def _status(value: Any) -> Status:
    return value if value in (OK, DEGRADED, DOWN) else DEGRADED


def _as_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _age(now: dt.datetime, at: dt.datetime | None) -> float | None:
    return None if at is None else round((now - at).total_seconds(), 1)


def _agent(ctx: Ctx, now: dt.datetime) -> tuple[dict[str, Any], list[Status]]:
    """The agent's heartbeat and its gateways: fresh within heartbeat_max_age_seconds."""
    beat = ctx.c.store.get(C.HEARTBEATS, AGENT)
    max_age = ctx.c.settings.heartbeat_max_age_seconds
    view: dict[str, Any]
    if beat is None:
        view = {"status": DEGRADED, "detail": "no heartbeat recorded yet (agent not running?)"}
        return {"heartbeat": view, "gateways": {}}, [DEGRADED]
    at = _as_time(beat.get("at"))
    age = _age(now, at)
    fresh = age is not None and age <= max_age
    gateways: dict[str, Any] = {}
    statuses: list[Status] = [OK if fresh else DOWN]
    for gid, g in sorted((beat.get("gateways") or {}).items()):
        status = _GATEWAY_STATUS.get(str(g.get("health")), DEGRADED) if fresh else DEGRADED
        gateways[gid] = {"status": status, **g}
        statuses.append(status)
    view = {
        "status": statuses[0],
        "at": at,
        "age_seconds": age,
        "max_age_seconds": max_age,
        "holder": beat.get("holder"),
        "versions": beat.get("versions") or {},
        "in_flight": beat.get("in_flight"),
        "processed": beat.get("processed"),
        "detail": None if fresh else f"no heartbeat for {age} s (limit {max_age} s)",
    }
    return {"heartbeat": view, "gateways": gateways}, statuses


@API.route(
    "GET",
    "/components",
    summary="Health of every component, the agent's heartbeat and gateways; overall status",
    tag=TAG,
)
def components(ctx: Ctx) -> dict[str, Any]:
    """From the store only: health_ping's last result per component (stale after the
    job grace) and the agent's heartbeat; overall = the worst."""
    now = ctx.c.clock.now()
    grace = ctx.c.settings.job_grace_seconds
    found = {s.id: s.data for s in ctx.c.store.query(C.HEALTH)}
    out: dict[str, dict[str, Any]] = {}
    statuses: list[Status] = []
    for name, doc in sorted(found.items()):
        status = _status(doc.get("status"))
        at = _as_time(doc.get("time") or doc.get("last"))
        entry = {**doc, "status": status, "age_seconds": _age(now, at)}
        if name == HEALTH_PING and at is not None and (now - at).total_seconds() > grace:
            entry["status"] = status = worst([status, DEGRADED])
            entry["detail"] = f"health_ping last ran {_age(now, at)} s ago (expected every minute)"
        out[name] = entry
        statuses.append(status)
    if HEALTH_PING not in out:
        out[HEALTH_PING] = {"status": DEGRADED, "detail": "health_ping has not run yet"}
        statuses.append(DEGRADED)
    agent, agent_statuses = _agent(ctx, now)
    statuses += agent_statuses
    return {"status": worst(statuses), "time": now, "components": out, "agent": agent}


# --- system ------------------------------------------------------------------------


def _next_fire(crons: tuple[str, ...], zone: str, now: dt.datetime) -> dt.datetime:
    local = now.astimezone(ZoneInfo(zone))
    fires: list[dt.datetime] = [croniter(c, local).get_next(dt.datetime) for c in crons]
    return min(fires).astimezone(dt.UTC)


def _schedules(now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": job.name,
            "description": job.description,
            "schedules": list(job.schedules),
            "time_zone": job.time_zone,
            "consumer": job.consumer,
            "records_runs": job.records_runs,
            "next_run": _next_fire(job.schedules, job.time_zone, now),
        }
        for job in sorted(jobs().values(), key=lambda j: j.name)
    ]


@API.route(
    "GET",
    "/system",
    summary="Mode, version, the dry-run switch, delivery modes, session and CORS settings",
    tag=TAG,
)
def system(ctx: Ctx) -> dict[str, Any]:
    """What this deployment runs with; `dry_run` true means orders are whatIf only."""
    s = ctx.c.settings
    now = ctx.c.clock.now()
    default = "live" if s.mode == "gcp" else "outbox"
    try:
        schedules: list[dict[str, Any]] | None = _schedules(now)
        schedules_error = None
    except (OSError, ValueError) as exc:  # jobs.yaml not shipped with this deployment
        schedules, schedules_error = None, str(exc)[:300]
    return {
        "mode": s.mode,
        "project": s.project_id,
        "version": version(),
        "dry_run": s.dry_run,
        "alert_delivery": s.alert_delivery or default,
        "statement_delivery": s.statement_delivery or default,
        "ticker": s.signal_ticker,
        "billing_currency": s.billing_currency,
        "admin_token_ttl_minutes": s.admin_token_ttl_minutes,
        "admin_cors_origins": list(s.admin_cors_origins),
        "audit_retention_days": s.audit_retention_days,
        "time": now,
        "time_new_york": now.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S"),
        "schedules": schedules,
        "schedules_error": schedules_error,
    }


# --- audit -------------------------------------------------------------------------


@API.route(
    "GET",
    "/audit",
    summary="The audit log, newest first (filter: action, actor)",
    tag=TAG,
    query=AuditQuery,
)
def audit(ctx: Ctx, query: AuditQuery) -> dict[str, Any]:
    """Every operator action, failed login and PIN attempt (kept audit_retention_days)."""
    entries = ctx.audit_log.recent(limit=query.limit, actor=query.actor, action=query.action)
    return {"entries": [e.to_json() for e in entries]}
