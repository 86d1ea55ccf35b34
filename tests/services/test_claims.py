"""Claims: create-if-absent, IN_PROGRESS -> DONE, takeover after a crashed holder's lease."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.platform.clock import SimClock
from spreadpilot.ports.store import EXPIRE_AT
from spreadpilot.services.claims import CLAIMS, ClaimLost, Claims, ClaimStatus

T0 = datetime(2026, 11, 24, 14, 31, tzinfo=UTC)


@pytest.fixture
def claims(tmp_path: Path) -> Claims:
    return Claims(SqliteStore(tmp_path / "s.db"), SimClock(T0), lease=timedelta(seconds=60))


def test_first_holder_wins_others_wait(claims: Claims) -> None:
    a = claims.acquire("publish:x", "a")
    b = claims.acquire("publish:x", "b")
    assert (a.acquired, a.status, a.attempt) == (True, ClaimStatus.IN_PROGRESS, 1)
    assert (b.acquired, b.holder) == (False, "a")
    assert claims.acquire("publish:x", "a").acquired  # re-entrant for the same holder


def test_done_is_final_and_carries_the_result(claims: Claims) -> None:
    claims.acquire("k", "a")
    claims.complete("k", "a", {"message_id": "42"})
    again = claims.acquire("k", "b")
    assert not again.acquired and again.done and again.result == {"message_id": "42"}
    claims.clock.sleep(3600)  # type: ignore[attr-defined]
    assert not claims.acquire("k", "b").acquired  # DONE never expires into a redo


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_complete(claims: Claims) -> None:
    claims.acquire("k", "dead")
    claims.clock.sleep(61)  # type: ignore[attr-defined]
    taken = claims.acquire("k", "live")
    assert taken.acquired and taken.taken_over and taken.attempt == 2
    with pytest.raises(ClaimLost, match="held by live, not dead"):
        claims.complete("k", "dead")
    claims.complete("k", "live")
    doc = claims.store.get(CLAIMS, "k")
    assert doc is not None and doc["status"] == "DONE" and doc["previous_holder"] == "dead"


def test_release_lets_a_retry_go_at_once(claims: Claims) -> None:
    claims.acquire("k", "a")
    claims.release("k", "a")
    assert claims.acquire("k", "b").acquired


def test_the_same_holder_after_a_release_starts_a_new_attempt(claims: Claims) -> None:
    first = claims.acquire("k", "a")
    assert claims.acquire("k", "a").attempt == first.attempt == 1  # a renewal, same run
    claims.release("k", "a")

    again = claims.acquire("k", "a")

    assert again.acquired and again.attempt == 2 and not again.taken_over
    assert claims.acquire("k", "a").attempt == 2  # and renewing keeps it


def test_claims_expire_through_ttl_field(claims: Claims) -> None:
    claims.acquire("k", "a")
    doc = claims.store.get(CLAIMS, "k")
    assert doc is not None and doc[EXPIRE_AT] == T0 + timedelta(days=30)


def test_keys_that_are_paths_are_refused(claims: Claims) -> None:
    with pytest.raises(ValueError, match="without '/'"):
        claims.acquire("signals/x", "a")
