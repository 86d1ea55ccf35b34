"""Recording a scheduled job's run in ``job_runs`` (every run, SKIPPED included).

health_ping's missed-job check reads these records for the jobs that
scheduler/jobs.yaml marks ``records_runs: true``; a consumer that records its
runs calls `record_job_run` once per run (a holiday run with status SKIPPED).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from spreadpilot.platform import collections as C
from spreadpilot.ports.store import EXPIRE_AT, Store

log = logging.getLogger("spreadpilot.jobs")

RETENTION = timedelta(days=30)


def record_job_run(
    store: Store,
    job: str,
    ran_at: datetime,
    status: str,
    *,
    holder: str = "",
    detail: str = "",
    **fields: object,
) -> str:
    """Store one run (`job`, `ran_at`, `status`, ...) and log it (operation=job_run);
    returns the record's id."""
    doc_id = f"{job}_{ran_at:%Y%m%dT%H%M%S}" + (f"_{holder}" if holder else "")
    store.set(
        C.JOB_RUNS,
        doc_id,
        {
            "job": job,
            "ran_at": ran_at,
            "status": status,
            "detail": detail,
            **fields,
            EXPIRE_AT: ran_at + RETENTION,
        },
    )
    log.info(
        "job %s ran: %s%s",
        job,
        status,
        f" ({detail})" if detail else "",
        extra={"operation": "job_run", "job": job, "status": status},
    )
    return doc_id
