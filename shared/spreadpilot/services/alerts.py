"""Raising alerts: publish-only onto the alerts topic (the router comes later).

Each alert is recorded under its id before publishing, so the same event
raised by a retried run is published once, and a crash between record and
publish is healed by the next raise of the same alert.
"""

from __future__ import annotations

import json
import logging

from spreadpilot.domain.alerts import Alert, Severity
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.store import Store

ALERTS_TOPIC = "alerts"
ALERTS = "alerts"
log = logging.getLogger("spreadpilot.alerts")

_LEVEL = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING}


class AlertPublisher:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus

    def raise_alert(self, alert: Alert) -> bool:
        """True if this call published it; False if the same alert was already out."""
        doc = alert.model_dump(mode="json")
        created = self.store.create(ALERTS, alert.id, {**doc, "published": False})
        if not created:
            existing = self.store.get(ALERTS, alert.id) or {}
            if existing.get("published"):
                return False
        self.bus.publish(
            ALERTS_TOPIC,
            json.dumps(doc).encode(),
            {"type": alert.type.value, "severity": alert.severity.value, "alert_id": alert.id},
        )
        self.store.update(ALERTS, alert.id, {"published": True})
        log.log(
            _LEVEL.get(alert.severity, logging.ERROR),
            "alert %s: %s",
            alert.type.value,
            alert.message,
            extra={
                "alert_id": alert.id,
                "alert_type": alert.type.value,
                "follower_id": alert.follower_id,
                "dedup_key": alert.dedup_key,
            },
        )
        return True
