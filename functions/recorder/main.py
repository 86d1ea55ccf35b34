"""Cloud Function recorder: an execution report -> its order's document in the store."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.handlers import record_execution

boot("recorder")


@functions_framework.cloud_event
def recorder(event: CloudEvent) -> None:
    run_pubsub("recorder", event, record_execution)
