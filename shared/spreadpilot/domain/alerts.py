"""The one Alert schema and its types (domain.md section 7), used by every producer."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class AlertType(StrEnum):
    COMPONENT_DOWN = "COMPONENT_DOWN"
    GATEWAY_UNREACHABLE = "GATEWAY_UNREACHABLE"
    COMPONENT_RECOVERED = "COMPONENT_RECOVERED"
    NO_MARGIN = "NO_MARGIN"
    MID_TOO_LOW = "MID_TOO_LOW"
    LIMIT_REACHED = "LIMIT_REACHED"
    PARTIAL_FILL = "PARTIAL_FILL"
    ORDER_REJECTED = "ORDER_REJECTED"
    ASSIGNMENT_DETECTED = "ASSIGNMENT_DETECTED"
    SETTLEMENT_MISMATCH = "SETTLEMENT_MISMATCH"  # expiry shares at IB fit no outcome of the legs
    TIME_VALUE_RISK = "TIME_VALUE_RISK"
    TIME_VALUE_CRITICAL = "TIME_VALUE_CRITICAL"
    POSITION_CLOSED = "POSITION_CLOSED"
    SIGNAL_MISSING = "SIGNAL_MISSING"
    SIGNAL_INVALID = "SIGNAL_INVALID"
    SIGNAL_CHANGED = "SIGNAL_CHANGED"
    SIGNAL_STALE = "SIGNAL_STALE"
    REPORT_FAILED = "REPORT_FAILED"
    HEARTBEAT_MISSED = "HEARTBEAT_MISSED"
    JOB_MISSED = "JOB_MISSED"
    NOT_READY = "NOT_READY"
    MESSAGE_DEAD_LETTERED = "MESSAGE_DEAD_LETTERED"
    CONFIG_INVALID = "CONFIG_INVALID"


#: Default severity per type; a producer may raise it, never silently lower it.
DEFAULT_SEVERITY: dict[AlertType, Severity] = {
    AlertType.COMPONENT_DOWN: Severity.CRITICAL,
    AlertType.GATEWAY_UNREACHABLE: Severity.CRITICAL,
    AlertType.COMPONENT_RECOVERED: Severity.INFO,
    AlertType.NO_MARGIN: Severity.WARNING,
    AlertType.MID_TOO_LOW: Severity.WARNING,
    AlertType.LIMIT_REACHED: Severity.WARNING,
    AlertType.PARTIAL_FILL: Severity.WARNING,
    AlertType.ORDER_REJECTED: Severity.CRITICAL,
    AlertType.ASSIGNMENT_DETECTED: Severity.CRITICAL,
    AlertType.SETTLEMENT_MISMATCH: Severity.CRITICAL,
    AlertType.TIME_VALUE_RISK: Severity.WARNING,
    AlertType.TIME_VALUE_CRITICAL: Severity.CRITICAL,
    AlertType.POSITION_CLOSED: Severity.WARNING,
    AlertType.SIGNAL_MISSING: Severity.CRITICAL,
    AlertType.SIGNAL_INVALID: Severity.CRITICAL,
    AlertType.SIGNAL_CHANGED: Severity.WARNING,
    AlertType.SIGNAL_STALE: Severity.CRITICAL,
    AlertType.REPORT_FAILED: Severity.CRITICAL,
    AlertType.HEARTBEAT_MISSED: Severity.CRITICAL,
    AlertType.JOB_MISSED: Severity.WARNING,
    AlertType.NOT_READY: Severity.CRITICAL,
    AlertType.MESSAGE_DEAD_LETTERED: Severity.CRITICAL,
    AlertType.CONFIG_INVALID: Severity.CRITICAL,
}


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="derived from the dedup key: a retried publish is the same alert")
    type: AlertType
    severity: Severity
    message: str = Field(min_length=1)
    time: AwareDatetime
    dedup_key: str
    follower_id: str | None = None
    source: str = Field(description="component that raised it")
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        type: AlertType,
        message: str,
        *,
        at: datetime,
        dedup_key: str,
        source: str,
        follower_id: str | None = None,
        severity: Severity | None = None,
        details: dict[str, Any] | None = None,
    ) -> Alert:
        """dedup_key says what makes two alerts 'the same event' (e.g. type+date+follower)."""
        key = f"{type.value}:{dedup_key}"
        return cls(
            id=hashlib.sha256(key.encode()).hexdigest()[:20],
            type=type,
            severity=severity or DEFAULT_SEVERITY[type],
            message=message,
            time=at,
            dedup_key=key,
            follower_id=follower_id,
            source=source,
            details=details or {},
        )
