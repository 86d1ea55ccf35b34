"""Cloud Function alert_router: an alert (or a Cloud Monitoring incident) -> Telegram / email."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.alert_router import FUNCTION, route_alert_event

boot(FUNCTION)


@functions_framework.cloud_event
def alert_router(event: CloudEvent) -> None:
    run_pubsub(FUNCTION, event, route_alert_event)
