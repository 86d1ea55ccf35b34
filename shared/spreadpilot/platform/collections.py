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
# --- alert routing (issue 5)
# ALERT_DELIVERIES (below, shared with health): one per (alert occurrence, channel,
# destination); health counts status == "FAILED"
ALERT_DEDUP = "alert_dedup"  # one per dedup key: cooldown window, occurrences
ALERT_RATE = "alert_rate"  # flood-limit slots per chat (and per bot)
# --- health (issue 5)
HEARTBEATS = "heartbeats"  # one per long-lived component (doc "gateway-agent")
HEALTH = "health"  # the last health check result per component, for status views
ALERT_DELIVERIES = "alert_deliveries"  # the alert router's deliveries (status FAILED counted)

# --- risk (issue 5)
RISK_STATUS = "risk_status"  # one per follower and spread: band, time value, close state
ASSIGNMENTS = "assignments"  # one per account and day: assigned shares, flatten state
COMMANDS = "commands"  # one per agent command id (emergency closes): outcome per follower

# --- P&L, commissions, statements (issue 6). The agent writes the raw inputs
# (raw trade logs, 365 days like executions); the rollups and the mailer write
# the billing records, which never expire.
FILLS = "fills"  # one per account and NY date: every IB execution of the day (ours or not)
MARKS = "marks"  # one per account and NY date: the latest positions with marks (every 30 s)
SETTLEMENTS = "settlements"  # one per account and expiry date: expiries/assignments seen at IB
PNL_DAILY = "pnl_daily"  # one per (follower, date): realised, unrealised, holdings at the end
PNL_MONTHLY = "pnl_monthly"  # one per (follower, year, month): P&L and commission, billing state
ADJUSTMENTS = "adjustments"  # corrections of a mailed month, carried to the next statement
STATEMENTS = "statements"  # one per (follower, month): the statement's fingerprint and mail state

# --- the operator's console (issue 8)
AUDIT = "audit"  # one per operator action, failed login or PIN attempt (90 days)
PIN_ATTEMPTS = "pin_attempts"  # one per operator: recent wrong PINs, lockout until
LOGIN_ATTEMPTS = "login_attempts"  # one per (username, client IP): recent failed logins

#: Collections whose documents carry `expire_at` (TTL); all others are kept.
#: executions, fills, marks, settlements: 365 days (raw trade logs); audit: 90 days.
EXPIRES = (CLAIMS, EXECUTIONS, JOB_RUNS, FILLS, MARKS, SETTLEMENTS, AUDIT)
