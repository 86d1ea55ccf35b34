"""Exactly-once IB orders, shown with real agent processes (``spreadpilot agent``).

Each test runs OS processes on the shared embedded store and bus against the
IB Gateway simulator (in this process, on the same scaled clock), and checks
three records: the simulator's own orders (exactly one IB order per orderRef,
never a duplicate), the claim, and the recorder's document for the orderRef.

- an agent SIGKILLed right after placeOrder, before anything was reported: the
  restarted agent (same clientId) finds the order at IB by orderRef and finishes it;
- one order message delivered five times (duplicates in one batch, while the
  order works, and after it is done): one IB order;
- two agents (different clientIds) given the same intent while the first is
  executing it: one IB order.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.agent.crash_support import CrashRig, crash_rig, intent, wait_until
from tests.execution.conftest import ACCOUNT
from tests.ibsim.conftest import MakeGateway, make_gateway  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

AFTER_PLACE = "execution.after_place"


@pytest.fixture
def rig(tmp_path: Path, make_gateway: MakeGateway) -> Iterator[CrashRig]:  # noqa: F811
    yield from crash_rig(tmp_path, make_gateway)


def only_order(rig: CrashRig, order_ref: str) -> Any:
    """The one IB order the simulator holds for `order_ref`; fails on none or a duplicate."""
    orders = rig.orders(order_ref)
    assert len(orders) == 1, f"expected exactly one IB order for {order_ref}, got {orders}"
    assert len(rig.orders()) == 1, f"other IB orders exist: {rig.orders()}"
    return orders[0]


def credit(order: Any) -> Decimal:
    """The order's limit as a credit (IB's BAG price of a credit spread is negative)."""
    return -Decimal(str(order.order.lmtPrice))


def kinds(doc: dict[str, Any]) -> list[str]:
    return [e["event"] for e in doc["events"]]


def outcomes(results: list[dict[str, Any]]) -> list[str]:
    return [r["outcome"] for r in results]


def settled(rig: CrashRig, order_ref: str) -> bool:
    """Done at IB and in the claim, and every order message acked (none left or dead)."""
    return rig.claim_done(order_ref) and rig.pending_orders() == 0


def test_agent_killed_after_place_is_restarted_and_finishes_the_one_order(
    rig: CrashRig,
) -> None:
    order = intent()
    ref = order.order_ref
    rig.publish(order)

    first = rig.start_agent("agent-1", failpoint=AFTER_PLACE)
    first.wait_for_failpoint(AFTER_PLACE)
    first.sigkill()

    # What the dead agent left: an order working at IB, a claim, no report of it.
    placed = only_order(rig, ref)
    assert placed.status in {"PreSubmitted", "Submitted"} and placed.client_id == 7
    assert credit(placed) == Decimal("0.60")  # the ladder's first price (the mid)
    claim = rig.claim(ref)
    assert claim is not None and claim["status"] == "IN_PROGRESS"
    assert claim["holder"].endswith(f":{first.pid}")
    rig.record()
    assert kinds(rig.execution(ref)) == ["CLAIMED"]  # the placeOrder is nowhere recorded

    # systemd restarts the agent with the same clientId once IB has dropped the old one;
    # the message comes back after its ack deadline, the claim's lease has run out.
    wait_until(lambda: 7 not in rig.gateway.client_ids(), "IB forgetting the dead clientId 7")
    second = rig.start_agent("agent-2")
    wait_until(lambda: settled(rig, ref), "the restarted agent finishing the order")
    assert second.stop() == 0

    filled = only_order(rig, ref)  # reconciled by orderRef: no second placeOrder
    assert filled.perm_id == placed.perm_id and filled.order_id == placed.order_id
    assert filled.status == "Filled" and filled.filled == 2 and filled.account == ACCOUNT
    assert credit(filled) == Decimal("0.54")  # the same order, laddered down by agent-2
    assert outcomes(second.executions(ref))[0] == "FILLED"
    assert set(outcomes(second.executions(ref))) <= {"FILLED", "ALREADY_DONE"}

    rig.record()
    doc = rig.execution(ref)
    assert doc["state"] == "FILLED" and doc["outcome"] == "FILLED"
    assert doc["filled"] == 2 and doc["perm_id"] == placed.perm_id
    claims = [e["reason"] for e in doc["events"] if e["event"] == "CLAIMED"]
    assert len(claims) == 2
    assert f":{first.pid} (attempt 1)" in claims[0]
    assert f":{second.pid} (attempt 2, taken over from an expired lease)" in claims[1]
    assert kinds(doc)[-1] == "FILLED" and kinds(doc).count("FILLED") == 1
    assert {f["side"] for f in doc["fills"]} == {"BOT", "SLD"}
    final = rig.claim(ref)
    assert final is not None and final["result"] == {"outcome": "FILLED", "filled": 2}
    assert rig.dead_letters() == 0


def test_a_message_delivered_five_times_makes_one_ib_order(rig: CrashRig) -> None:
    order = intent()
    ref = order.order_ref
    rig.publish(order, times=2)  # two copies waiting when the agent starts

    agent = rig.start_agent("agent")
    wait_until(lambda: rig.orders(ref) != [], "the order reaching IB")
    rig.publish(order, times=2)  # two more while the order works at IB
    wait_until(lambda: settled(rig, ref), "the order filled and every copy acked")
    rig.publish(order)  # and a fifth after it is done
    wait_until(lambda: rig.pending_orders() == 0, "the fifth copy acked")
    assert agent.stop() == 0

    order_at_ib = only_order(rig, ref)
    assert order_at_ib.status == "Filled" and order_at_ib.filled == 2
    results = agent.executions(ref)
    assert outcomes(results).count("FILLED") == 1
    assert set(outcomes(results)) == {"FILLED", "ALREADY_DONE"}
    assert all(r["settled"] for r in results)
    # Every copy was settled (acked) by some result: none lost, none dead-lettered.
    assert sum(r["deliveries"] for r in results) >= 5
    assert rig.dead_letters() == 0

    rig.record()
    doc = rig.execution(ref)
    assert doc["state"] == "FILLED" and doc["filled"] == 2
    assert doc["perm_id"] == order_at_ib.perm_id
    assert kinds(doc).count("CLAIMED") == 1 and kinds(doc).count("PLACED") == 1
    assert kinds(doc).count("FILLED") == 1


def test_two_agents_given_the_same_intent_make_one_ib_order(rig: CrashRig) -> None:
    order = intent()
    ref = order.order_ref
    # No holder crashes here: a lease far longer than the test, so a stall is a stall.
    lease = {"SPREADPILOT_CLAIM_LEASE_SECONDS": "600"}
    rig.publish(order)

    first = rig.start_agent("agent-7", client_id=7, env=lease)
    wait_until(lambda: rig.orders(ref) != [], "agent-7 placing the order")
    second = rig.start_agent("agent-8", client_id=8, env=lease)
    wait_until(second.connected, "agent-8 connected to the same gateway")
    assert sorted(rig.gateway.client_ids()) == [7, 8]

    # agent-7 stalls mid-execution (its order working at IB, its claim held) and the
    # same intent is delivered again: only agent-8 can take it now.
    first.freeze(rig.databases)
    try:
        rig.publish(order)
        wait_until(lambda: second.executions(ref) != [], "agent-8 handling the intent")
    finally:
        first.thaw()
    assert outcomes(second.executions(ref)) == ["NOT_CLAIMED"]
    assert only_order(rig, ref).status in {"PreSubmitted", "Submitted"}  # agent-8 sent nothing

    wait_until(lambda: settled(rig, ref), "the order filled and both copies acked")
    assert first.stop() == 0 and second.stop() == 0

    filled = only_order(rig, ref)
    assert filled.client_id == 7 and filled.status == "Filled" and filled.filled == 2
    results = {a.name: outcomes(a.executions(ref)) for a in (first, second)}
    assert results["agent-7"].count("FILLED") == 1
    assert "FILLED" not in results["agent-8"]
    every = results["agent-7"] + results["agent-8"]
    assert set(every) <= {"FILLED", "NOT_CLAIMED", "ALREADY_DONE"}
    assert rig.dead_letters() == 0

    rig.record()
    doc = rig.execution(ref)
    assert doc["state"] == "FILLED" and doc["filled"] == 2
    assert doc["perm_id"] == filled.perm_id
    (claimed,) = [e["reason"] for e in doc["events"] if e["event"] == "CLAIMED"]
    assert f":{first.pid} (attempt 1)" in claimed
    assert kinds(doc).count("PLACED") == 1 and kinds(doc).count("FILLED") == 1
