"""What a handler gets: the container, who is calling, from where, and the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from spreadpilot.admin.auth import Session
from spreadpilot.domain.calendar import ny_date
from spreadpilot.platform.wiring import Container
from spreadpilot.services.audit_log import AuditEntry, AuditLog


@dataclass
class Ctx:
    c: Container
    request_id: str
    ip: str | None
    operator: str | None = None
    #: the verified login of this request (None on open routes)
    session: Session | None = None
    #: set by the route wrapper for audited routes; the handler may add details
    audit_details: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def audit_log(self) -> AuditLog:
        return AuditLog(
            self.c.store,
            self.c.clock,
            retention=timedelta(days=self.c.settings.audit_retention_days),
        )

    def audit(
        self,
        action: str,
        resource: str,
        outcome: str = "ok",
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        return self.audit_log.record(
            actor=actor or self.operator or "anonymous",
            action=action,
            resource=resource,
            outcome=outcome,
            details=details,
            ip=self.ip,
            request_id=self.request_id,
        )

    @property
    def today(self) -> date:
        return ny_date(self.c.clock.now())
