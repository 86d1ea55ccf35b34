"""Cloud Function health_ping: a scheduler tick (every minute) -> one health check."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.health import health_tick

boot("health_ping")


@functions_framework.cloud_event
def health_ping(event: CloudEvent) -> None:
    run_pubsub("health_ping", event, health_tick)
