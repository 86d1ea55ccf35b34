"""Cloud Function pnl_rollup: a rollup tick (daily 16:30 ET, monthly 00:10 ET on the 1st)."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.handlers import pnl_rollup_tick

boot("pnl_rollup")


@functions_framework.cloud_event
def pnl_rollup(event: CloudEvent) -> None:
    run_pubsub("pnl_rollup", event, pnl_rollup_tick)
