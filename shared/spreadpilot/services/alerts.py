"""Raising alerts: publish-only onto the alerts topic (the router comes later).

Each alert is recorded under its id before publishing, so the same event
raised by a retried run is published once, and a crash between record and
publish is healed by the next raise of the same alert.

The operator acknowledges an alert (`acknowledge`) on its own document
(``acknowledged_at``, ``acknowledged_by``, ``ack_note``): an acknowledged alert
leaves the open list (`is_open`); nothing is deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spreadpilot.domain.alerts import Alert, Severity
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.store import Store, Transaction

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


class UnknownAlert(LookupError):
    """No alert has this id."""


@dataclass(frozen=True)
class Acknowledgement:
    alert_id: str
    at: datetime
    by: str
    note: str
    new: bool  # False: it was acknowledged before; nothing changed


def is_open(doc: Mapping[str, Any]) -> bool:
    """Not yet acknowledged by the operator."""
    return not (doc.get("acknowledged_at") or doc.get("acknowledged"))


def acknowledge(
    store: Store, clock: Clock, alert_id: str, *, by: str, note: str = ""
) -> Acknowledgement:
    """Mark an alert as seen (UnknownAlert if none has this id). Idempotent: a second
    acknowledgement keeps the first one's time, operator and note."""

    def ack(txn: Transaction) -> Acknowledgement:
        doc = txn.get(ALERTS, alert_id)
        if doc is None:
            raise UnknownAlert(alert_id)
        if not is_open(doc):
            return Acknowledgement(
                alert_id,
                doc.get("acknowledged_at") or clock.now(),
                str(doc.get("acknowledged_by") or ""),
                str(doc.get("ack_note") or ""),
                new=False,
            )
        at = clock.now()
        txn.update(
            ALERTS,
            alert_id,
            {"acknowledged": True, "acknowledged_at": at, "acknowledged_by": by, "ack_note": note},
        )
        return Acknowledgement(alert_id, at, by, note, new=True)

    acked = store.transaction(ack)
    if acked.new:
        log.info(
            "alert %s acknowledged by %s",
            alert_id,
            by,
            extra={"operation": "alert_ack", "alert_id": alert_id},
        )
    return acked
