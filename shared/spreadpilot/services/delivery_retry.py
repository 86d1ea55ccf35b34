"""The backoff schedule shared by every outbound delivery (alert router, commission
mailer): exponential from a base, capped, and the service's own Retry-After
(Telegram's RetryAfter, SendGrid's 429) taking precedence when it gave one."""

from __future__ import annotations


def retry_wait(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): the
    service's Retry-After if given, else base, 2*base, 4*base... up to cap."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return float(min(base * 2 ** (max(attempt, 1) - 1), cap))
