"""The audit log: one record per operator action, failed login or PIN attempt.

Kept in the store (C.AUDIT) for `retention` (90 days by default): each document
carries `expire_at`, which Firestore's TTL policy and the embedded store's
purge both act on. Document ids start with the UTC time, so they sort in time
order in any console listing, and end in a random suffix so two actions in the
same microsecond never collide.

Details are defensive: a key that looks like a credential (pin, password,
token, secret, in any case or compound such as `new_pin` or `apiToken`) is
dropped at any depth, so a careless caller cannot write a secret into a
record kept for months. Every record is also one structured log line
(event "audit"), so the trail survives even if the store write is lost.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from spreadpilot.platform import collections as C
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import EXPIRE_AT, Document, Filter, Store

log = logging.getLogger("spreadpilot.audit")

OUTCOMES = ("ok", "refused", "failed")
SECRET_WORDS = frozenset(
    {
        "pin",
        "pins",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "token",
        "tokens",
        "secret",
        "secrets",
    }
)
_MAX_TEXT = 2000
_MAX_DEPTH = 5
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@dataclass(frozen=True)
class AuditEntry:
    id: str
    at: datetime
    actor: str
    action: str
    resource: str
    outcome: str
    details: dict[str, Any]
    ip: str | None
    request_id: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (`at` as an ISO 8601 string) for the console's API."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "outcome": self.outcome,
            "details": _jsonable(self.details),
            "ip": self.ip,
            "request_id": self.request_id,
        }

    @classmethod
    def from_doc(cls, doc_id: str, doc: Document) -> AuditEntry:
        return cls(
            id=doc_id,
            at=doc["at"],
            actor=doc["actor"],
            action=doc["action"],
            resource=doc["resource"],
            outcome=doc["outcome"],
            details=dict(doc.get("details") or {}),
            ip=doc.get("ip"),
            request_id=doc.get("request_id"),
        )


def is_secret_key(key: str) -> bool:
    """True for a key naming a credential: one of its words is in SECRET_WORDS."""
    return any(word.lower() in SECRET_WORDS for word in _WORDS.findall(key))


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details safe to keep: credential-named keys dropped at any depth, values made
    storable (Decimal, date, enum and unknown objects as text, long text cut)."""
    return {str(k): _clean(v, 1) for k, v in details.items() if not is_secret_key(str(k))}


def _clean(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "..."
    if isinstance(value, datetime):
        return value if value.utcoffset() is not None else value.isoformat()
    if isinstance(value, Enum):
        return _clean(value.value, depth)
    if isinstance(value, Decimal | date):
        return str(value)
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return _clean(str(value), depth)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _entry_id(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


class AuditLog:
    def __init__(
        self, store: Store, clock: Clock, retention: timedelta = timedelta(days=90)
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, got {retention}")
        self.store = store
        self.clock = clock
        self.retention = retention

    def record(
        self,
        *,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        details: dict[str, Any] | None = None,
        ip: str | None = None,
        request_id: str | None = None,
    ) -> AuditEntry:
        """Write one entry (and its log line); ValueError on an unknown outcome or an
        empty actor/action/resource."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} must be one of {', '.join(OUTCOMES)}")
        for field, value in (("actor", actor), ("action", action), ("resource", resource)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"audit {field} must be a non-empty string, got {value!r}")
        at = self.clock.now().astimezone(UTC)
        entry = AuditEntry(
            id=_entry_id(at),
            at=at,
            actor=actor,
            action=action,
            resource=resource,
            outcome=outcome,
            details=scrub(details or {}),
            ip=ip,
            request_id=request_id,
        )
        log.info(
            "audit %s %s %s by %s",
            action,
            resource,
            outcome,
            actor,
            extra={
                "event": "audit",
                "audit_id": entry.id,
                "actor": actor,
                "action": action,
                "resource": resource,
                "outcome": outcome,
                "details": _jsonable(entry.details),
                "ip": ip,
                "request_id": request_id,
            },
        )
        self.store.set(
            C.AUDIT,
            entry.id,
            {
                "at": at,
                "actor": actor,
                "action": action,
                "resource": resource,
                "outcome": outcome,
                "details": entry.details,
                "ip": ip,
                "request_id": request_id,
                EXPIRE_AT: at + self.retention,
            },
        )
        return entry

    def recent(
        self,
        *,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first, optionally of one actor and/or action, at or after `since`.

        Without actor/action: one range query ordered on `at` (served by Firestore's
        single-field index). With them: equality filters only, sorted here, so no
        composite index has to be deployed (an operator's 90 days are small).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if since is not None and since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        equal = [Filter(f, "==", v) for f, v in (("actor", actor), ("action", action)) if v]
        if not equal:
            rng = [Filter("at", ">=", since)] if since is not None else []
            snaps = self.store.query(C.AUDIT, rng, order_by="at", descending=True, limit=limit)
        else:
            snaps = self.store.query(C.AUDIT, equal)
        entries = [AuditEntry.from_doc(s.id, s.data) for s in snaps]
        if since is not None:
            entries = [e for e in entries if e.at >= since]
        entries.sort(key=lambda e: (e.at, e.id), reverse=True)
        return entries[:limit]
