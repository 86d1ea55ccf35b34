"""Cloud Function signal_poller: a scheduler tick -> read, validate and claim the signal."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.handlers import signal_poll_tick

boot("signal_poller")


@functions_framework.cloud_event
def signal_poller(event: CloudEvent) -> None:
    run_pubsub("signal_poller", event, signal_poll_tick)
