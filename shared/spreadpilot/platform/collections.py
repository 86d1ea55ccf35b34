"""Store collection names, in one place (Terraform's TTL policies follow EXPIRES)."""

from __future__ import annotations

SIGNALS = "signals"  # one per (New York date, ticker): the claimed signal
FOLLOWERS = "followers"
ORDER_INTENTS = "order_intents"  # one per orderRef
EXECUTIONS = "executions"  # one per orderRef: every report, fills, the ladder trace
DISPATCHES = "dispatches"  # per signal: each follower's outcome
JOB_RUNS = "job_runs"  # every scheduled run, including skips (for the missed-job check)
DEAD_LETTERS = "dead_letters"  # events a function could not process, kept whole
CLAIMS = "claims"
ALERTS = "alerts"

#: Collections whose documents carry `expire_at` (TTL); all others are kept.
EXPIRES = (CLAIMS, EXECUTIONS, JOB_RUNS)  # executions: 365 days (raw trade logs)
