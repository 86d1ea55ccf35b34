"""Cloud Function dispatcher: a claimed signal -> one order intent per enabled follower."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.handlers import dispatch_signal

boot("dispatcher")


@functions_framework.cloud_event
def dispatcher(event: CloudEvent) -> None:
    run_pubsub("dispatcher", event, dispatch_signal)
