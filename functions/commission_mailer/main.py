"""Cloud Function commission_mailer: a scheduler tick (Monday 09:00 UTC) -> every
unsent statement mailed once, PDF attached, operator in CC."""

import functions_framework
from cloudevents.http import CloudEvent

from spreadpilot.platform.entry import boot, run_pubsub
from spreadpilot.services.commission_mailer import commission_mail_tick

boot("commission_mailer")


@functions_framework.cloud_event
def commission_mailer(event: CloudEvent) -> None:
    run_pubsub("commission_mailer", event, commission_mail_tick)
