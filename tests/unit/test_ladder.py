"""The limit ladder: planning, pacing stretch and the step function (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadpilot.domain.alerts import AlertType
from spreadpilot.domain.ladder import (
    OUTCOME_ALERT,
    AwaitQuotes,
    LadderAction,
    LadderConfig,
    LadderMove,
    LadderOutcome,
    LadderPlan,
    LadderRejection,
    LadderState,
    ladder_step,
    messages_floor_seconds,
    plan_ladder,
    round_down_to_tick,
    stretch_step_seconds,
)
from spreadpilot.platform.settings import SettingsError, load_settings
from spreadpilot.ports.broker import OrderSnapshot, OrderState, SpreadQuote

D = Decimal
AT = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def quote(
    short_bid: str | None, short_ask: str | None, long_bid: str | None, long_ask: str | None
) -> SpreadQuote:
    def dec(v: str | None) -> Decimal | None:
        return None if v is None else D(v)

    return SpreadQuote(AT, dec(short_bid), dec(short_ask), dec(long_bid), dec(long_ask))


def plan_of(q: SpreadQuote, config: LadderConfig | None = None) -> LadderPlan:
    result = plan_ladder(q, config or LadderConfig())
    assert isinstance(result, LadderPlan), result
    return result


def snap(state: OrderState, filled: int = 0, quantity: int = 2) -> OrderSnapshot:
    return OrderSnapshot(
        order_ref="SP-20261124-QQQ-f1-OPEN",
        account="DU111",
        order_id=7,
        perm_id=70,
        state=state,
        quantity=quantity,
        filled=filled,
        credit=None,
        avg_fill_credit=None,
    )


def prices(*values: str) -> tuple[Decimal, ...]:
    return tuple(D(v) for v in values)


# --- config and settings ---------------------------------------------------------------


def test_defaults_follow_the_domain() -> None:
    s = load_settings()
    config = LadderConfig.from_settings(s)
    assert config == LadderConfig(
        start="mid",
        tick=D("0.01"),
        step_seconds=5.0,
        min_credit=D("0.70"),
        max_steps=10,
        pacing_per_second=45,
    )
    assert s.order_max_age_minutes == 30


def test_settings_from_env_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADPILOT_LADDER_TICK", "0.05")
    monkeypatch.setenv("SPREADPILOT_LADDER_MIN_CREDIT", "0.50")
    monkeypatch.setenv("SPREADPILOT_LADDER_START", "natural")
    config = LadderConfig.from_settings(load_settings())
    assert (config.tick, config.min_credit, config.start) == (D("0.05"), D("0.50"), "natural")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ladder_tick": "0"}, "SPREADPILOT_LADDER_TICK = '0': Input should be greater than 0"),
        ({"ladder_max_steps": -1}, "SPREADPILOT_LADDER_MAX_STEPS = -1"),
        ({"gateway_pacing_per_second": 51}, "SPREADPILOT_GATEWAY_PACING_PER_SECOND = 51"),
        ({"gateway_pacing_per_second": 0}, "SPREADPILOT_GATEWAY_PACING_PER_SECOND = 0"),
        ({"ladder_start": "best"}, "SPREADPILOT_LADDER_START = 'best'"),
        ({"ladder_step_seconds": 0}, "SPREADPILOT_LADDER_STEP_SECONDS = 0"),
        ({"order_max_age_minutes": 0}, "SPREADPILOT_ORDER_MAX_AGE_MINUTES = 0"),
        (
            {"ladder_tick": "0.05", "ladder_min_credit": "0.01"},
            "SPREADPILOT_LADDER_MIN_CREDIT 0.01 must be at least one tick "
            "(SPREADPILOT_LADDER_TICK 0.05)",
        ),
        (
            {"ladder_tick": "0.05", "ladder_min_credit": "0.72"},
            "SPREADPILOT_LADDER_MIN_CREDIT 0.72 must be a multiple of SPREADPILOT_LADDER_TICK 0.05",
        ),
    ],
)
def test_bad_ladder_settings_are_named(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tick": D("0")}, "tick 0 must be > 0"),
        ({"tick": D("0.05"), "min_credit": D("0.01")}, "must be at least one tick"),
        ({"min_credit": D("0.705")}, "must be a multiple of the tick"),
        ({"max_steps": -1}, "max_steps -1 must be >= 0"),
        ({"step_seconds": 0.0}, "step_seconds 0.0 must be > 0"),
        ({"pacing_per_second": 51}, "pacing_per_second 51 must be 1..50"),
        ({"start": "best"}, "start 'best' is not one of"),
    ],
)
def test_config_built_in_code_obeys_the_same_rules(
    kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValueError, match="invalid ladder config") as caught:
        LadderConfig(**kwargs)  # type: ignore[arg-type]
    assert expected in str(caught.value)


# --- planning ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "config", "expected"),
    [
        pytest.param(
            quote("1.00", "1.10", "0.20", "0.30"),  # mid 0.80: exactly 10 ticks above floor
            LadderConfig(),
            prices(*(f"0.{n}" for n in range(80, 69, -1))),
            id="mid-on-tick-reaches-floor-at-max-steps",
        ),
        pytest.param(
            quote("1.00", "1.11", "0.20", "0.30"),  # mid 0.805 -> 0.80, never above mid
            LadderConfig(max_steps=3),
            prices("0.80", "0.79", "0.78", "0.77"),
            id="half-cent-mid-rounds-down",
        ),
        pytest.param(
            quote("1.80", "1.90", "0.30", "0.40"),  # mid 1.50: max_steps binds first
            LadderConfig(),
            prices(*(f"1.{n}" for n in range(50, 39, -1))),
            id="max-steps-binds",
        ),
        pytest.param(
            quote("1.00", "1.06", "0.30", "0.36"),  # mid 0.70 == floor
            LadderConfig(),
            prices("0.70"),
            id="mid-at-floor-one-price",
        ),
        pytest.param(
            quote("1.00", "1.07", "0.30", "0.36"),  # mid 0.705 -> 0.70
            LadderConfig(),
            prices("0.70"),
            id="mid-half-tick-above-floor",
        ),
        pytest.param(
            quote("1.00", "1.10", "0.20", "0.30"),
            LadderConfig(max_steps=0),
            prices("0.80"),
            id="zero-steps",
        ),
        pytest.param(
            quote("1.20", "1.30", "0.30", "0.34"),  # mid 0.93, tick 0.05 -> 0.90
            LadderConfig(tick=D("0.05")),
            prices("0.90", "0.85", "0.80", "0.75", "0.70"),
            id="nickel-tick",
        ),
        pytest.param(
            quote("1.50", "1.70", "0.20", "0.40"),  # mid 1.30, natural 1.10
            LadderConfig(start="natural", max_steps=2),
            prices("1.10", "1.09", "1.08"),
            id="natural-start",
        ),
        pytest.param(
            quote("1.00", "1.40", "0.20", "0.50"),  # mid 0.85, natural 0.50 < floor
            LadderConfig(start="natural"),
            prices("0.70"),
            id="natural-below-floor-starts-at-floor",
        ),
        pytest.param(
            quote("1.00", "1.10", "0", "0.05"),  # a far OTM long leg may bid 0
            LadderConfig(max_steps=1),
            prices("1.02", "1.01"),
            id="long-bid-zero-is-two-sided",
        ),
    ],
)
def test_plan(q: SpreadQuote, config: LadderConfig, expected: tuple[Decimal, ...]) -> None:
    plan = plan_of(q, config)
    assert plan.prices == expected
    assert plan.start == expected[0] and plan.last_step == len(expected) - 1
    assert plan.step_seconds == config.step_seconds
    assert plan.duration_seconds == len(expected) * config.step_seconds
    assert (plan.mid_credit, plan.natural_credit) == (q.mid_credit, q.natural_credit)


@pytest.mark.parametrize(
    ("q", "mid_text"),
    [
        (quote("1.00", "1.05", "0.30", "0.36"), "0.695"),
        (quote("0.10", "0.12", "0.30", "0.36"), "-0.22"),
    ],
)
def test_mid_below_floor_is_rejected_naming_both(q: SpreadQuote, mid_text: str) -> None:
    result = plan_ladder(q, LadderConfig())
    assert isinstance(result, LadderRejection)
    assert result.alert_type is AlertType.MID_TOO_LOW
    assert (result.mid_credit, result.min_credit) == (D(mid_text), D("0.70"))
    assert f"mid credit {mid_text}" in result.message
    assert "minimum credit 0.70" in result.message


@pytest.mark.parametrize(
    ("q", "missing"),
    [
        (quote(None, "1.10", "0.20", "0.30"), ("short bid",)),
        (quote("0", "1.10", "0.20", "0.30"), ("short bid",)),
        (quote("1.00", None, "0.20", "0.30"), ("short ask",)),
        (quote("1.00", "1.10", None, "0.30"), ("long bid",)),
        (quote("1.00", "1.10", "0.20", "0"), ("long ask",)),
        (quote(None, None, None, None), ("short bid", "short ask", "long bid", "long ask")),
    ],
)
def test_not_two_sided_waits_for_quotes(q: SpreadQuote, missing: tuple[str, ...]) -> None:
    # Also when the mid would be far below the floor: no quote, no judgement.
    result = plan_ladder(q, LadderConfig())
    assert isinstance(result, AwaitQuotes)
    assert result.missing == missing
    assert "waiting for two-sided quotes" in result.message


@pytest.mark.parametrize(
    ("credit", "tick", "expected"),
    [
        ("0.805", "0.01", "0.80"),
        ("0.80", "0.01", "0.80"),
        ("0.7999", "0.01", "0.79"),
        ("0.93", "0.05", "0.90"),
        ("-0.005", "0.01", "-0.01"),
    ],
)
def test_round_down_to_tick(credit: str, tick: str, expected: str) -> None:
    assert round_down_to_tick(D(credit), D(tick)) == D(expected)


cents = st.integers(min_value=0, max_value=500).map(lambda n: D(n) / 100)


@st.composite
def quotes(draw: st.DrawFn) -> SpreadQuote:
    short_bid = draw(cents)
    short_ask = short_bid + draw(cents.filter(lambda c: c <= 1))
    long_bid = draw(cents)
    long_ask = long_bid + draw(cents.filter(lambda c: c <= 1))
    return SpreadQuote(AT, short_bid, short_ask, long_bid, long_ask)


@st.composite
def configs(draw: st.DrawFn) -> LadderConfig:
    tick = draw(st.sampled_from([D("0.01"), D("0.05"), D("0.10")]))
    return LadderConfig(
        start=draw(st.sampled_from(["mid", "natural"])),
        tick=tick,
        min_credit=tick * draw(st.integers(min_value=1, max_value=150)),
        max_steps=draw(st.integers(min_value=0, max_value=30)),
        step_seconds=draw(st.floats(min_value=0.1, max_value=60)),
    )


@given(q=quotes(), config=configs())
@settings(max_examples=400)
def test_plan_properties(q: SpreadQuote, config: LadderConfig) -> None:
    result = plan_ladder(q, config)
    if not q.two_sided:
        assert isinstance(result, AwaitQuotes)
        return
    if q.mid_credit < config.min_credit:
        assert isinstance(result, LadderRejection)
        return
    assert isinstance(result, LadderPlan)
    p = result.prices
    assert 1 <= len(p) <= config.max_steps + 1
    assert min(p) >= config.min_credit  # never below the floor
    assert p[0] <= q.mid_credit  # never asks above the mid
    assert all(price % config.tick == 0 for price in p)  # on the tick grid
    assert all(a - b == config.tick for a, b in pairwise(p))  # one tick per step
    if config.start == "mid":
        assert q.mid_credit - p[0] < config.tick  # the best on-grid price at or below mid
    if len(p) < config.max_steps + 1:
        assert p[-1] == config.min_credit  # stopped early only because it hit the floor


# --- pacing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("followers", "expected"),
    [(1, 5.0), (10, 5.0), (100, 5.0), (500, 500 / 45), (0, 5.0)],
)
def test_stretch_for_followers_on_one_gateway(followers: int, expected: float) -> None:
    assert stretch_step_seconds(LadderConfig(), followers) == pytest.approx(expected)


def test_stretch_examples() -> None:
    assert stretch_step_seconds(LadderConfig(), 500) == pytest.approx(11.111, abs=1e-3)
    fast = LadderConfig(step_seconds=1.0)
    assert stretch_step_seconds(fast, 100) == pytest.approx(100 / 45)  # 2.22 s
    assert stretch_step_seconds(fast, 100, messages_per_step=2) == pytest.approx(200 / 45)
    assert stretch_step_seconds(fast, 100, budget_per_second=50) == pytest.approx(2.0)
    assert stretch_step_seconds(fast, 100, messages_per_step=0) == 1.0
    # The budget defaults to the config's (settings: gateway_pacing_per_second).
    assert stretch_step_seconds(LadderConfig(step_seconds=1.0, pacing_per_second=20), 100) == 5.0
    assert LadderConfig().for_gateway(500).step_seconds == pytest.approx(500 / 45)
    assert plan_of(quote("1.00", "1.10", "0.20", "0.30"), LadderConfig().for_gateway(900)) == (
        plan_of(quote("1.00", "1.10", "0.20", "0.30"), LadderConfig(step_seconds=20.0))
    )


@given(
    followers=st.integers(min_value=0, max_value=5000),
    per_step=st.integers(min_value=0, max_value=4),
    budget=st.integers(min_value=1, max_value=50),
    base=st.floats(min_value=0.1, max_value=60),
)
def test_stretched_steps_never_exceed_the_budget(
    followers: int, per_step: int, budget: int, base: float
) -> None:
    interval = stretch_step_seconds(LadderConfig(step_seconds=base), followers, per_step, budget)
    assert interval >= base
    assert followers * per_step / interval <= budget * (1 + 1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"followers_on_gateway": -1}, "followers_on_gateway -1"),
        ({"followers_on_gateway": 1, "messages_per_step": -1}, "messages_per_step -1"),
        ({"followers_on_gateway": 1, "budget_per_second": 0}, "budget_per_second 0"),
    ],
)
def test_stretch_refuses_nonsense(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stretch_step_seconds(LadderConfig(), **kwargs)


def test_messages_floor() -> None:
    assert messages_floor_seconds(0) == 0
    assert messages_floor_seconds(99) == pytest.approx(2.2)  # 100 orders: 99 before the last
    assert messages_floor_seconds(499, 45) == pytest.approx(499 / 45)
    assert messages_floor_seconds(100, 50) == 2.0
    with pytest.raises(ValueError, match="n_messages -1"):
        messages_floor_seconds(-1)
    with pytest.raises(ValueError, match="budget_per_second 0"):
        messages_floor_seconds(1, 0)


# --- the step function -------------------------------------------------------------------

W, P, R = OrderState.WORKING, OrderState.PENDING, OrderState.RESTING
F, C, X = OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED
PLAN = plan_of(quote("1.00", "1.10", "0.20", "0.30"), LadderConfig(max_steps=4))  # 0.80..0.76
SHORT = plan_of(quote("1.00", "1.08", "0.30", "0.34"), LadderConfig())  # 0.72, 0.71, 0.70
DUE = 5.0  # the step's interval is over


@dataclass(frozen=True)
class Step:
    """One scripted executor call: the snapshot seen, how long the price has worked,
    and the expected decision."""

    state: OrderState
    filled: int
    elapsed: float
    move: LadderMove
    credit: str | None = None
    outcome: LadderOutcome | None = None
    wait: float | None = None


def run(plan: LadderPlan, quantity: int, script: list[Step]) -> LadderState:
    state = LadderState(plan, quantity)
    for i, s in enumerate(script):
        state, action = ladder_step(
            state, snap(s.state, s.filled, quantity), elapsed_seconds=s.elapsed
        )
        expected = LadderAction(
            s.move, None if s.credit is None else D(s.credit), s.wait, s.outcome
        )
        assert action == expected, f"call {i}: {action} != {expected}"
    return state


SCRIPTS: dict[str, tuple[LadderPlan, int, list[Step], int, int]] = {
    # name: (plan, quantity, script, final step, final filled)
    "fill-on-step-0": (
        PLAN,
        2,
        [
            Step(P, 0, 0.0, LadderMove.WAIT),  # unacknowledged: never modified
            Step(W, 0, 1.0, LadderMove.WAIT, wait=4.0),
            Step(F, 2, 2.0, LadderMove.DONE, outcome=LadderOutcome.FILLED),
        ],
        0,
        2,
    ),
    "fill-after-3-steps": (
        PLAN,
        2,
        [
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.79"),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.78"),
            Step(W, 0, 0.5, LadderMove.WAIT, wait=4.5),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.77"),
            Step(W, 2, 0.2, LadderMove.DONE, outcome=LadderOutcome.FILLED),  # fills lead status
        ],
        3,
        2,
    ),
    "partial-then-exhausted": (
        SHORT,
        3,
        [
            Step(W, 1, DUE, LadderMove.MODIFY, credit="0.71"),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.70"),  # stale snapshot: still 1
            Step(W, 1, DUE, LadderMove.CANCEL_REMAINDER, outcome=LadderOutcome.PARTIAL_FILL),
            Step(W, 1, 9.0, LadderMove.WAIT),  # cancel not yet confirmed: nothing more
            Step(C, 1, 9.5, LadderMove.DONE, outcome=LadderOutcome.PARTIAL_FILL),
        ],
        2,
        1,
    ),
    "no-fill": (
        SHORT,
        2,
        [
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.71"),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.70"),
            Step(W, 0, 4.0, LadderMove.WAIT, wait=1.0),
            Step(W, 0, DUE, LadderMove.GIVE_UP, outcome=LadderOutcome.LIMIT_REACHED),
            Step(C, 0, 5.1, LadderMove.DONE, outcome=LadderOutcome.LIMIT_REACHED),
        ],
        2,
        0,
    ),
    "fill-races-the-cancel": (
        SHORT,
        2,
        [
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.71"),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.70"),
            Step(W, 0, DUE, LadderMove.GIVE_UP, outcome=LadderOutcome.LIMIT_REACHED),
            Step(F, 2, 5.1, LadderMove.DONE, outcome=LadderOutcome.FILLED),
        ],
        2,
        2,
    ),
    "resting-before-the-open-never-steps": (
        PLAN,
        1,
        [
            Step(R, 0, 60.0, LadderMove.WAIT),
            Step(W, 0, 0.0, LadderMove.WAIT, wait=5.0),
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.79"),
            Step(P, 0, 30.0, LadderMove.WAIT),  # modify not acknowledged yet
        ],
        1,
        0,
    ),
    "rejected": (PLAN, 2, [Step(X, 0, 0.0, LadderMove.DONE, outcome=LadderOutcome.REJECTED)], 0, 0),
    "cancelled-by-someone-else": (
        PLAN,
        2,
        [
            Step(W, 0, DUE, LadderMove.MODIFY, credit="0.79"),
            Step(C, 0, 1.0, LadderMove.DONE, outcome=LadderOutcome.CANCELLED),
        ],
        1,
        0,
    ),
    "zero-steps-gives-up-after-one-interval": (
        plan_of(quote("1.00", "1.10", "0.20", "0.30"), LadderConfig(max_steps=0)),
        2,
        [
            Step(W, 0, 4.9, LadderMove.WAIT, wait=pytest.approx(0.1)),  # type: ignore[arg-type]
            Step(W, 0, DUE, LadderMove.GIVE_UP, outcome=LadderOutcome.LIMIT_REACHED),
        ],
        0,
        0,
    ),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_step_function_over_scripted_snapshots(name: str) -> None:
    plan, quantity, script, final_step, final_filled = SCRIPTS[name]
    state = run(plan, quantity, script)
    assert (state.step, state.filled) == (final_step, final_filled)
    assert state.credit == plan.prices[final_step]
    assert state.remaining == quantity - final_filled


def test_state_advance_is_ladder_step() -> None:
    state = LadderState(PLAN, 2)
    assert state.advance(snap(W), elapsed_seconds=DUE) == ladder_step(
        state, snap(W), elapsed_seconds=DUE
    )


def test_stretched_plan_paces_the_steps() -> None:
    plan = plan_of(quote("1.00", "1.10", "0.20", "0.30"), LadderConfig().for_gateway(500))
    state = LadderState(plan, 1)
    _, action = ladder_step(state, snap(W, quantity=1), elapsed_seconds=5.0)
    assert action.move is LadderMove.WAIT
    assert action.wait_seconds == pytest.approx(500 / 45 - 5.0)


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="3 filled of 2 ordered"):
        ladder_step(LadderState(PLAN, 2), snap(W, 3), elapsed_seconds=0.0)
    with pytest.raises(ValueError, match="quantity 0"):
        LadderState(PLAN, 0)
    with pytest.raises(ValueError, match="step 5 outside the plan"):
        LadderState(PLAN, 1, step=5)


@given(
    config=configs(),
    quantity=st.integers(min_value=1, max_value=10),
    events=st.lists(
        st.tuples(
            st.sampled_from([W, W, W, P, R]),
            st.integers(min_value=0, max_value=10),
            st.floats(min_value=0, max_value=120),
        ),
        max_size=60,
    ),
)
def test_step_function_properties(
    config: LadderConfig, quantity: int, events: list[tuple[OrderState, int, float]]
) -> None:
    """Over any sequence of live snapshots: credits only go down one tick at a time and
    never below the floor, at most max_steps modifications, filled never decreases, and
    the ladder ends in a cancel only after its last price."""
    plan = plan_of(quote("20.00", "20.10", "0.20", "0.30"), config)  # mid 19.80 > any floor
    state = LadderState(plan, quantity)
    modifies: list[Decimal] = []
    previous_filled = 0
    for order_state, raw_filled, elapsed in events:
        filled = min(raw_filled, quantity)
        state, action = ladder_step(
            state, snap(order_state, filled, quantity), elapsed_seconds=elapsed
        )
        assert state.filled >= previous_filled
        previous_filled = state.filled
        if action.move is LadderMove.MODIFY:
            assert action.credit is not None and action.credit >= config.min_credit
            modifies.append(action.credit)
        elif action.move in (LadderMove.CANCEL_REMAINDER, LadderMove.GIVE_UP):
            assert state.step == plan.last_step and state.cancel_requested
            assert (action.move is LadderMove.CANCEL_REMAINDER) == (state.filled > 0)
        elif action.move is LadderMove.DONE:
            assert action.outcome is LadderOutcome.FILLED and state.filled == quantity
            break
    assert len(modifies) <= config.max_steps
    assert list(plan.prices[1 : len(modifies) + 1]) == modifies


def test_each_unhappy_outcome_names_its_alert() -> None:
    assert OUTCOME_ALERT == {
        LadderOutcome.PARTIAL_FILL: AlertType.PARTIAL_FILL,
        LadderOutcome.LIMIT_REACHED: AlertType.LIMIT_REACHED,
        LadderOutcome.REJECTED: AlertType.ORDER_REJECTED,
    }
