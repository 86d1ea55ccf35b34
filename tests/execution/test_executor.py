"""The executor end to end: real ib_async (IBBroker) against the real simulator.

Every test checks three records: the ExecutionReports on the executions topic,
the alerts on alerts-hold, and the simulator's own orders (exactly the expected
IB orders, never a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spreadpilot.domain.alerts import AlertType
from spreadpilot.domain.execution import ExecutionEvent
from spreadpilot.domain.ladder import LadderOutcome
from spreadpilot.domain.spread import VerticalSpread
from spreadpilot.ports.broker import (
    Broker,
    Legs,
    MarginCheck,
    OrderSnapshot,
    ReconcileUnknown,
    Reconciliation,
    SpreadQuote,
)
from spreadpilot.services.execution import (
    ALREADY_DONE,
    NO_GATEWAY,
    NOT_CLAIMED,
    SKIPPED,
    UNKNOWN,
    ExecutionResult,
    Executor,
    clock_sleep,
    execute_many,
)
from tests.execution.conftest import ACCOUNT, WIDE_QUOTES, MakeRig, Rig
from tests.ibsim.conftest import ny

FILLED = LadderOutcome.FILLED.value


def events(reports: list[dict[str, Any]], ref: str | None = None) -> list[str]:
    return [r["event"] for r in reports if ref is None or r["order_ref"] == ref]


def alert_types(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["type"] for a in alerts]


def only_order(rig: Rig, ref: str) -> Any:
    orders = rig.orders(ref)
    assert len(orders) == 1, f"expected exactly one IB order for {ref}, got {orders}"
    return orders[0]


# --- fills -------------------------------------------------------------------------------


def test_full_fill_at_the_first_price(make_rig: MakeRig) -> None:
    rig = make_rig()
    intent = rig.intent()
    result = rig.execute(intent, ladder=rig.ladder(start="natural", min_credit="0.50"))

    assert result.outcome == FILLED and result.settled
    assert result.filled == 2 and result.ladder_steps == 0
    reports = rig.reports()
    assert events(reports) == ["CLAIMED", "PLACED", "FILLED"]
    filled = reports[-1]
    assert filled["report_id"] == f"{intent.order_ref}:FILLED:0"
    assert filled["filled"] == 2 and filled["ladder_step"] == 0
    assert {(f["con_id"], f["side"]) for f in filled["fills"]} and all(
        f["quantity"] >= 1 for f in filled["fills"]
    )
    assert {f["side"] for f in filled["fills"]} == {"BOT", "SLD"}
    assert rig.alerts() == []
    order = only_order(rig, intent.order_ref)
    assert order.status == "Filled" and order.account == ACCOUNT


def test_fill_after_ladder_steps_lowering_the_credit(make_rig: MakeRig) -> None:
    # 0.06-wide quotes: mid credit 0.60, natural 0.54 -> the ladder must come down.
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    intent = rig.intent()
    result = rig.execute(intent, ladder=rig.ladder(min_credit="0.50", max_steps=10))

    assert result.outcome == FILLED and result.filled == 2
    assert result.ladder_steps == 6  # 0.60 down to the natural 0.54, a tick per step
    assert result.credit == Decimal("0.54")
    reports = rig.reports()
    kinds = events(reports)
    assert kinds[:2] == ["CLAIMED", "PLACED"] and kinds[-1] == "FILLED"
    modified = [r for r in reports if r["event"] == "MODIFIED"]
    assert len(modified) == result.ladder_steps
    assert [m["ladder_step"] for m in modified] == list(range(1, result.ladder_steps + 1))
    credits = [Decimal(reports[1]["credit"])] + [Decimal(m["credit"]) for m in modified]
    assert all(a - b == Decimal("0.01") for a, b in itertools.pairwise(credits))
    assert credits[0] > credits[-1] >= Decimal("0.50")
    assert len({r["report_id"] for r in reports}) == len(reports)
    order = only_order(rig, intent.order_ref)
    assert order.status == "Filled"
    assert -Decimal(str(order.order.lmtPrice)) == credits[-1]  # the modified working order


def test_no_fill_cancel_confirmed_and_limit_reached(make_rig: MakeRig) -> None:
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    intent = rig.intent()
    result = rig.execute(intent, ladder=rig.ladder(min_credit="0.50", max_steps=2))

    assert result.outcome == LadderOutcome.LIMIT_REACHED.value and result.settled
    assert result.filled == 0 and result.ladder_steps == 2
    assert events(rig.reports()) == ["CLAIMED", "PLACED", "MODIFIED", "MODIFIED", "CANCELLED"]
    assert alert_types(rig.alerts()) == [AlertType.LIMIT_REACHED.value]
    assert only_order(rig, intent.order_ref).status == "Cancelled"


def test_partial_fill_remainder_cancelled(make_rig: MakeRig) -> None:
    rig = make_rig(
        fills={
            "partial_fill_probability": 1.0,
            "partial_fill_max_fraction": 0.5,
            "partial_fill_rest_seconds": 3600,
        }
    )
    intent = rig.intent(quantity=4)
    result = rig.execute(intent, ladder=rig.ladder(start="natural", min_credit="0.50", max_steps=0))

    assert result.outcome == LadderOutcome.PARTIAL_FILL.value
    assert 0 < result.filled < 4
    reports = rig.reports()
    assert events(reports) == ["CLAIMED", "PLACED", "PARTIAL", "CANCELLED"]
    assert reports[-1]["filled"] == result.filled and reports[-1]["fills"]
    assert alert_types(rig.alerts()) == [AlertType.PARTIAL_FILL.value]
    order = only_order(rig, intent.order_ref)
    assert order.status == "Cancelled" and int(order.filled) == result.filled


# --- rejected up front --------------------------------------------------------------------


def test_mid_below_the_minimum_credit_sends_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    intent = rig.intent()
    result = rig.execute(intent, ladder=rig.ladder(min_credit="0.70"))  # mid is 0.60

    assert result.outcome == SKIPPED and result.settled
    assert events(rig.reports()) == ["CLAIMED", "SKIPPED"]
    (alert,) = rig.alerts()
    assert alert["type"] == AlertType.MID_TOO_LOW.value and "0.70" in alert["message"]
    assert rig.orders() == []


def test_no_margin_sends_nothing(make_rig: MakeRig) -> None:
    rig = make_rig(fills={"initial_cash": "10"})
    result = rig.execute(rig.intent(), ladder=rig.ladder(min_credit="0.50"))

    assert result.outcome == SKIPPED and "margin" in result.reason
    assert events(rig.reports()) == ["CLAIMED", "SKIPPED"]
    assert alert_types(rig.alerts()) == [AlertType.NO_MARGIN.value]
    assert rig.orders() == []


def test_stale_signal_is_dropped_with_an_alert(make_rig: MakeRig) -> None:
    rig = make_rig()
    old = rig.clock.now() - timedelta(minutes=45)
    result = rig.execute(rig.intent(), ladder=rig.ladder(min_credit="0.50"), signal_at=old)

    assert result.outcome == SKIPPED and "45 min" in result.reason
    assert events(rig.reports()) == ["CLAIMED", "SKIPPED"]
    assert alert_types(rig.alerts()) == [AlertType.SIGNAL_STALE.value]
    assert rig.orders() == []


def test_pre_open_intent_waits_for_0930(make_rig: MakeRig) -> None:
    rig = make_rig(start="09:27")
    intent = rig.intent()
    result = rig.execute(intent, ladder=rig.ladder(start="natural", min_credit="0.50"))

    assert result.outcome == FILLED
    placed = rig.reports()[1]
    assert placed["event"] == "PLACED" and placed["at"] >= "2026-11-24T14:30:00"
    order = only_order(rig, intent.order_ref)
    assert order.placed_at is not None and order.placed_at >= ny("09:30")


def test_dry_run_routes_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    result = rig.execute(rig.intent(), ladder=rig.ladder(min_credit="0.50"), dry_run=True)

    assert result.outcome == SKIPPED and "dry-run" in result.reason
    _claimed, report = rig.reports()
    assert report["event"] == ExecutionEvent.SKIPPED.value and "dry-run" in report["reason"]
    assert rig.orders() == []


# --- exactly once ----------------------------------------------------------------------


def test_same_intent_twice_concurrently_and_again_after_done_is_one_order(
    make_rig: MakeRig,
) -> None:
    rig = make_rig()
    intent = rig.intent()
    ladder = rig.ladder(start="natural", min_credit="0.50")

    async def go() -> list[ExecutionResult]:
        async with rig.connected() as broker:
            first = Executor(broker, rig.context("agent-1"))
            second = Executor(broker, rig.context("agent-2"))
            both = await asyncio.gather(
                first.execute(intent, ladder=ladder), second.execute(intent, ladder=ladder)
            )
            again = await first.execute(intent, ladder=ladder)  # a redelivery
            return [*both, again]

    one, two, again = rig.run(go)
    assert sorted([one.outcome, two.outcome]) == sorted([FILLED, NOT_CLAIMED])
    assert again.outcome == ALREADY_DONE and again.settled
    assert events(rig.reports()) == ["CLAIMED", "PLACED", "FILLED"]
    assert only_order(rig, intent.order_ref).status == "Filled"


class Crash(BaseException):
    """The agent dies: nothing catches it, nothing is released."""


def test_after_a_crash_the_next_holder_reconciles_and_resumes_the_one_order(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES}, lease_seconds=60.0)
    intent = rig.intent()
    ladder = rig.ladder(min_credit="0.50", max_steps=10)

    async def crash_at_first_wait(_seconds: float) -> None:
        raise Crash

    async def go() -> tuple[ExecutionResult, ExecutionResult]:
        async with rig.connected() as broker:
            dying = Executor(broker, rig.context("agent-1", sleep=crash_at_first_wait))
            with contextlib.suppress(Crash):
                await dying.execute(intent, ladder=ladder)
            # The same message comes back while agent-1's lease still runs: hands off.
            early = await Executor(broker, rig.context("agent-2")).execute(intent, ladder=ladder)
            rig.clock.advance(timedelta(seconds=61))  # the lease expires
            resumed = await Executor(broker, rig.context("agent-2")).execute(intent, ladder=ladder)
            return early, resumed

    early, resumed = rig.run(go)
    assert early.outcome == NOT_CLAIMED and not early.settled
    assert resumed.outcome == FILLED and resumed.resumed
    reports = rig.reports()
    kinds = events(reports)
    placed = {r["report_id"] for r in reports if r["event"] == "PLACED"}
    assert len(placed) == 1 and kinds[-1] == "FILLED"  # a resume repeats PLACED's id
    claims = [r["reason"] for r in reports if r["event"] == "CLAIMED"]
    assert len(claims) == 2 and "agent-2 (attempt 2, taken over" in claims[1]
    order = only_order(rig, intent.order_ref)  # reconcile found it: no second order
    assert order.status == "Filled"


def test_a_stale_order_found_working_at_ib_is_cancelled_never_left_unattended(
    make_rig: MakeRig,
) -> None:
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES}, lease_seconds=60.0)
    intent = rig.intent()
    ladder = rig.ladder(min_credit="0.50", max_steps=10)
    signal_at = rig.clock.now()

    async def crash_at_first_wait(_seconds: float) -> None:
        raise Crash

    async def go() -> ExecutionResult:
        async with rig.connected() as broker:
            dying = Executor(broker, rig.context("agent-1", sleep=crash_at_first_wait))
            with contextlib.suppress(Crash):
                await dying.execute(intent, ladder=ladder, signal_at=signal_at)
            rig.clock.advance(timedelta(minutes=45))  # the agent was down for 45 minutes
            return await Executor(broker, rig.context("agent-2")).execute(
                intent, ladder=ladder, signal_at=signal_at
            )

    result = rig.run(go)

    assert result.outcome == "LIMIT_REACHED" and result.settled and result.filled == 0
    assert "45 min old" in result.reason and "cancelled" in result.reason
    order = only_order(rig, intent.order_ref)  # the one order: found, not re-sent
    assert order.status == "Cancelled"
    kinds = events(rig.reports())
    assert "MODIFIED" not in kinds and kinds[-1] == "CANCELLED"
    assert AlertType.SIGNAL_STALE.value in alert_types(rig.alerts())


class Unreachable:
    """A broker whose reconcile cannot tell (IB did not answer in time)."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.dry_run = inner.dry_run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def reconcile(self, order_refs: list[str]) -> Reconciliation:
        raise ReconcileUnknown("no answer to reqCompletedOrders in time")


def test_reconcile_unknown_waits_with_an_alert_and_sends_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    intent = rig.intent()

    async def go() -> ExecutionResult:
        async with rig.connected() as broker:
            executor = Executor(Unreachable(broker), rig.context())
            return await executor.execute(intent, ladder=rig.ladder(min_credit="0.50"))

    result = rig.run(go)
    assert result.outcome == UNKNOWN and not result.settled
    assert events(rig.reports()) == ["CLAIMED", "UNKNOWN"]
    assert alert_types(rig.alerts()) == [AlertType.GATEWAY_UNREACHABLE.value]
    assert rig.orders() == []
    claim = rig.store.get("claims", f"execute:{intent.order_ref}")
    assert claim is not None and claim["status"] == "IN_PROGRESS"  # released nothing


# --- many followers ---------------------------------------------------------------------


def test_execute_many_runs_followers_concurrently_and_isolates_a_missing_gateway(
    make_rig: MakeRig,
) -> None:
    accounts = ["DU1", "DU2", "DU3"]
    rig = make_rig(accounts=accounts)
    intents = [rig.intent(f"f{i}", account=account) for i, account in enumerate(accounts, start=1)]
    lost = rig.intent("lost", account="DU1", gateway_id="gw-down")
    ladder = rig.ladder(start="natural", min_credit="0.50")

    async def go() -> list[ExecutionResult]:
        async with rig.connected(accounts=accounts) as broker:
            context = rig.context(config=replace(rig.config, ladder=ladder))
            return await execute_many([*intents, lost], {"gw-1": broker}, context, timeout=60)

    results = rig.run(go)
    assert [r.outcome for r in results] == [FILLED, FILLED, FILLED, NO_GATEWAY]
    for intent in intents:
        assert only_order(rig, intent.order_ref).account == intent.ib_account
    assert rig.orders(lost.order_ref) == []
    assert AlertType.GATEWAY_UNREACHABLE.value in alert_types(rig.alerts())


# --- without the simulator: the replies IB gives too rarely to stage -------------------


class Stub:
    """A Broker stand-in with scripted replies; records what was sent."""

    dry_run = False

    def __init__(self, margins: list[MarginCheck]) -> None:
        self.margins = margins
        self.sent: list[str] = []

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    def is_connected(self) -> bool:
        return True

    async def qualify(self, spread: VerticalSpread, expiry: str) -> Legs:
        return Legs(spread, expiry, short_con_id=1, long_con_id=2)

    async def quote(self, legs: Legs) -> SpreadQuote:
        d = Decimal
        return SpreadQuote(datetime.now(UTC), d("0.72"), d("0.73"), d("0.12"), d("0.13"))

    async def what_if(
        self, legs: Legs, account: str, quantity: int, credit: Decimal
    ) -> MarginCheck:
        self.sent.append("whatIf")
        return self.margins.pop(0)

    async def place(self, *args: Any) -> OrderSnapshot:
        raise AssertionError("nothing may be placed")

    async def modify(self, order_ref: str, credit: Decimal) -> OrderSnapshot:
        raise AssertionError("nothing may be modified")

    async def cancel(self, order_ref: str) -> OrderSnapshot:
        raise AssertionError("nothing may be cancelled")

    def snapshot(self, order_ref: str) -> OrderSnapshot | None:
        return None

    async def reconcile(self, order_refs: list[str]) -> Reconciliation:
        return Reconciliation({})


INCOMPLETE = MarginCheck(False, None, None, None, None)


def test_an_incomplete_what_if_is_retried_once_then_skipped_never_guessed(bare: Rig) -> None:
    stub = Stub([INCOMPLETE, INCOMPLETE])
    intent = bare.intent()
    ladder = bare.ladder(min_credit="0.50")
    result = bare.run(lambda: Executor(stub, bare.context()).execute(intent, ladder=ladder))

    assert result.outcome == SKIPPED and "never guessed" in result.reason
    assert stub.sent == ["whatIf", "whatIf"]
    assert events(bare.reports()) == ["CLAIMED", "SKIPPED"]
    assert alert_types(bare.alerts()) == [AlertType.NO_MARGIN.value]


def test_a_signal_claimed_too_long_ago_in_the_store_is_stale(bare: Rig) -> None:
    intent = bare.intent()
    claimed = bare.clock.now() - timedelta(minutes=31)
    bare.store.set("signals", intent.signal_id, {"claimed_at": claimed})
    stub = Stub([])
    result = bare.run(lambda: Executor(stub, bare.context()).execute(intent))

    assert result.outcome == SKIPPED and stub.sent == []
    assert alert_types(bare.alerts()) == [AlertType.SIGNAL_STALE.value]


def test_concurrent_sleepers_on_a_sim_clock_do_not_add_up(bare: Rig) -> None:
    start = bare.clock.now()

    async def go() -> None:
        await asyncio.gather(*(clock_sleep(bare.clock, 5) for _ in range(10)))

    bare.run(go)
    assert bare.clock.now() - start == timedelta(seconds=5)
