"""The dispatcher: one intent per active follower, idempotent, stale-safe."""

from datetime import timedelta
from pathlib import Path

import pytest

from spreadpilot.platform import collections as C
from spreadpilot.services.dispatcher import UnknownSignal
from tests.support.embedded import ACTIVE, Platform, bull_put_row, make_platform

SID = "2026-11-24_QQQ"


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    p = make_platform(tmp_path)
    p.write_sheet(bull_put_row())
    p.c.signal_poller().run()
    p.drain("dispatcher")
    return p


def test_one_intent_per_active_follower_with_sizing_and_reasons(p: Platform) -> None:
    summary = p.c.dispatcher().dispatch(SID)
    got = {o.follower_id: (o.status, o.quantity, o.order_ref, o.reason) for o in summary.outcomes}
    assert got == {
        "alice": ("INTENT", 2, "SP-20261124-QQQ-alice-OPEN", ""),
        "bruno": ("INTENT", 3, "SP-20261124-QQQ-bruno-OPEN", ""),  # 2 x 2 capped at 3
        "carla": ("SKIPPED", 0, None, "disabled"),
        "dario": ("INTENT", 1, "SP-20261124-QQQ-dario-OPEN", ""),  # 2 x 0.5
        "elena": ("SKIPPED", 0, None, "state is SUSPENDED"),
    }
    orders = p.drain("agent-orders")
    assert sorted(o["follower_id"] for o in orders) == sorted(ACTIVE)
    alice = next(o for o in orders if o["follower_id"] == "alice")
    assert alice["spread"] == {
        "kind": "BULL_PUT",
        "short_strike": "488",
        "long_strike": "486",
        "credit": None,
    }
    assert alice["ib_account"] == "U1000001" and alice["purpose"] == "OPEN"
    doc = p.c.store.get(C.DISPATCHES, SID)
    assert doc is not None and doc["followers"]["carla"]["reason"] == "disabled"


def test_redelivery_creates_nothing_new(p: Platform) -> None:
    for _ in range(3):
        p.c.dispatcher().dispatch(SID)
    assert len(p.drain("agent-orders")) == len(ACTIVE)
    assert len(p.c.store.query(C.ORDER_INTENTS)) == len(ACTIVE)


def test_stale_signal_is_dropped_with_an_alert(p: Platform) -> None:
    p.clock.advance(timedelta(minutes=31))
    summary = p.c.dispatcher().dispatch(SID)
    assert summary.status == "STALE" and summary.outcomes == ()
    assert p.drain("agent-orders") == []
    alerts = [a for a in p.drain("alerts-hold") if a["type"] == "SIGNAL_STALE"]
    assert len(alerts) == 1 and "31 min ago (limit 30 min)" in alerts[0]["message"]


def test_late_redelivery_of_a_dispatched_signal_is_not_stale(p: Platform) -> None:
    p.c.dispatcher().dispatch(SID)
    p.clock.advance(timedelta(hours=2))
    assert p.c.dispatcher().dispatch(SID).status == "DISPATCHED"
    assert [a for a in p.drain("alerts-hold") if a["type"] == "SIGNAL_STALE"] == []


def test_unknown_signal_is_unprocessable(p: Platform) -> None:
    with pytest.raises(UnknownSignal, match="only claimed signals dispatch"):
        p.c.dispatcher().dispatch("2026-11-25_QQQ")


def test_a_broken_follower_record_is_skipped_and_alerted_the_rest_trade(p: Platform) -> None:
    p.c.store.update(C.FOLLOWERS, "alice", {"iban": "IT00BROKEN"})
    summary = p.c.dispatcher().dispatch(SID)
    alice = next(o for o in summary.outcomes if o.follower_id == "alice")
    assert alice.status == "SKIPPED" and "iban" in alice.reason
    assert len(summary.intents) == len(ACTIVE) - 1
    (alert,) = [a for a in p.drain("alerts-hold") if a["type"] == "CONFIG_INVALID"]
    assert alert["follower_id"] == "alice" and "not a valid IBAN" in alert["message"]
