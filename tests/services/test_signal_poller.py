"""The poller on the embedded platform: every branch of domain.md section 2."""

from datetime import date, timedelta
from pathlib import Path

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.services.signal_poller import PollStatus
from tests.support.embedded import DAY, Platform, bull_put_row, make_platform


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    return make_platform(tmp_path)


def alerts_of(p: Platform, kind: str) -> list[dict[str, object]]:
    return [a for a in p.drain("alerts-hold") if a["type"] == kind]


def test_complete_row_is_claimed_and_published_once(p: Platform) -> None:
    p.write_sheet(bull_put_row())
    first = p.c.signal_poller().run()
    assert first.status is PollStatus.CLAIMED
    assert first.signal_id == "2026-11-24_QQQ"
    assert "Bull Put 486/488P x2" in first.detail
    doc = p.c.store.get(C.SIGNALS, "2026-11-24_QQQ")
    assert doc is not None and doc["published"] and doc["sheet_row"] == 2
    again = p.c.signal_poller().run()
    assert again.status is PollStatus.ALREADY_CLAIMED
    messages = p.drain("dispatcher")
    assert [m["signal_id"] for m in messages] == ["2026-11-24_QQQ"]


def test_incomplete_row_keeps_polling_within_the_run(p: Platform) -> None:
    p.write_sheet(["24/11/2026", "QQQ", "Long"])
    started = p.clock.now()
    outcome = p.c.signal_poller().run()
    assert outcome.status is PollStatus.WAITING
    assert outcome.reads == 3
    assert p.clock.now() - started == timedelta(seconds=30)
    assert "Quantità per Leg" in outcome.detail and "Sell Put" in outcome.detail
    assert p.c.store.get(C.SIGNALS, "2026-11-24_QQQ") is None


def test_row_completed_between_reads_is_claimed_in_the_same_run(p: Platform) -> None:
    p.write_sheet(["24/11/2026", "QQQ", "Long"])

    class Typist:
        """The strategist finishes typing while the poller waits between reads."""

        def __init__(self) -> None:
            self.reads = 0

        def read_rows(self) -> list[list[str]]:
            self.reads += 1
            if self.reads == 2:
                p.write_sheet(bull_put_row())
            return p.c.signal_source.read_rows()

    poller = p.c.signal_poller()
    poller.source = Typist()
    outcome = poller.run()
    assert outcome.status is PollStatus.CLAIMED and outcome.reads == 2


def test_invalid_row_alerts_at_once_naming_column_value_rule(p: Platform) -> None:
    p.write_sheet(["24/11/2026", "QQQ", "Long", "2", "490", "488"])
    outcome = p.c.signal_poller().run()
    assert outcome.status is PollStatus.INVALID
    assert outcome.reads == 1
    p.c.signal_poller().run()  # the same bad row next minute: no second alert
    (alert,) = alerts_of(p, "SIGNAL_INVALID")
    assert "490" in str(alert["message"]) and "Buy Put" in str(alert["message"])
    assert p.c.store.get(C.SIGNALS, "2026-11-24_QQQ") is None
    p.write_sheet(bull_put_row())  # the strategist fixes it
    assert p.c.signal_poller().run().status is PollStatus.CLAIMED


def test_deadline_raises_signal_missing_once_with_the_reason(p: Platform) -> None:
    p.write_sheet(["24/11/2026", "QQQ", "Long", "2"])
    p.at("09:40")
    assert p.c.signal_poller().run().status is PollStatus.MISSING
    p.at("09:41")
    assert p.c.signal_poller().run().status is PollStatus.MISSING
    (alert,) = alerts_of(p, "SIGNAL_MISSING")
    assert "by 09:40 ET" in str(alert["message"])
    assert "Buy Put" in str(alert["message"])  # why: the still-empty strike columns


def test_unreadable_sheet_is_reported_at_the_deadline(p: Platform) -> None:
    p.settings.sheet_csv_path.unlink(missing_ok=True)
    waiting = p.c.signal_poller().run()
    assert waiting.status is PollStatus.WAITING and "sheet unreachable" in waiting.detail
    p.at("09:40")
    assert p.c.signal_poller().run().status is PollStatus.MISSING
    (alert,) = alerts_of(p, "SIGNAL_MISSING")
    assert "sheet unreachable" in str(alert["message"])


def test_edit_after_claim_raises_signal_changed_and_trades_nothing_new(p: Platform) -> None:
    p.write_sheet(bull_put_row())
    p.c.signal_poller().run()
    p.write_sheet(bull_put_row(qty="5"))
    for _ in range(2):
        assert p.c.signal_poller().run().status is PollStatus.CHANGED
    (alert,) = alerts_of(p, "SIGNAL_CHANGED")
    assert "x2" in str(alert["message"]) and "x5" in str(alert["message"])
    assert len(p.drain("dispatcher")) == 1
    doc = p.c.store.get(C.SIGNALS, "2026-11-24_QQQ")
    assert doc is not None and doc["signal"]["qty_per_leg"] == 2


def test_non_trading_day_does_nothing_but_record_the_skip(tmp_path: Path) -> None:
    from datetime import time

    from spreadpilot.domain.calendar import ny_datetime

    p = make_platform(tmp_path, start=ny_datetime(date(2026, 11, 26), time(9, 30)))
    p.write_sheet(bull_put_row(day=date(2026, 11, 26)))
    outcome = p.c.signal_poller().run()
    assert outcome.status is PollStatus.SKIPPED and "not an NYSE trading day" in outcome.detail
    runs = p.c.store.query(C.JOB_RUNS)
    assert [r.data["status"] for r in runs] == ["SKIPPED"]
    assert p.drain("dispatcher") == []


def test_before_the_poll_start_is_skipped(tmp_path: Path) -> None:
    from datetime import time

    from spreadpilot.domain.calendar import ny_datetime

    p = make_platform(tmp_path, start=ny_datetime(DAY, time(9, 20)))
    p.write_sheet(bull_put_row())
    outcome = p.c.signal_poller().run()
    assert outcome.status is PollStatus.SKIPPED and "before 09:27" in outcome.detail


def test_crashed_holder_between_claim_and_publish_is_taken_over(p: Platform) -> None:
    """A claim whose holder died (lease expired) is taken over; a live one is respected."""
    p.write_sheet(bull_put_row())
    dead = p.c.signal_poller()
    dead.holder = "poller-dead"
    sig = bull_put_row()
    del sig
    # The dead poller claimed the signal and the publish, then vanished.
    from spreadpilot.domain.sheet import SheetFound, parse_signal_sheet

    found = parse_signal_sheet(p.c.signal_source.read_rows(), DAY)
    assert isinstance(found, SheetFound)
    p.c.store.create(
        C.SIGNALS,
        found.signal.id,
        {
            "signal": found.signal.model_dump(mode="json"),
            "content_hash": found.signal.content_hash(),
            "sheet_row": 2,
            "claimed_at": p.clock.now(),
            "claimed_by": "poller-dead",
            "published": False,
        },
    )
    p.c.claims.acquire(f"publish-signal:{found.signal.id}", "poller-dead")
    live = p.c.signal_poller()
    assert live.run().status is PollStatus.ALREADY_CLAIMED
    assert p.drain("dispatcher") == []  # the holder's lease is still running
    p.clock.advance(timedelta(seconds=p.settings.claim_lease_seconds + 1))
    live.run()
    assert [m["signal_id"] for m in p.drain("dispatcher")] == [found.signal.id]
    doc = p.c.store.get(C.SIGNALS, found.signal.id)
    assert doc is not None and doc["published"]
