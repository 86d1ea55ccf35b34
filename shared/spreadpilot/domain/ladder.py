"""The limit ladder (domain.md section 3) and its pacing budget (section 4), as pure logic.

The gateway agent owns the clock and the IB connection; this module owns the
decisions. Every function here is a function of its arguments only (no I/O, no
clock reads), so the executor, the benchmark and the tests all agree on what the
ladder does.

Rounding rule: every ladder price is a multiple of the tick, and a quote that
falls between ticks is rounded DOWN (toward a lower credit). A credit is never
asked above the mid (or, for the "natural" start, above the natural credit, so a
marketable start stays marketable). Rounding up would ask for more than the
quotes justify and waste the first step on a price that is less likely to fill;
rounding down costs at most one tick, which the ladder would give up anyway.

Because the floor (minimum credit) is itself required to sit on the tick grid,
a mid at or above the floor always rounds to a price at or above the floor: the
only up-front rejection is the domain's "mid below the minimum" (MID_TOO_LOW).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Literal, Protocol

from spreadpilot.domain.alerts import AlertType
from spreadpilot.ports.broker import OrderSnapshot, OrderState, SpreadQuote

LadderStart = Literal["mid", "natural"]
LADDER_STARTS: frozenset[str] = frozenset({"mid", "natural"})

#: IB's cap is 50 messages/s per connection; the default budget keeps 5/s headroom
#: for the other traffic on the connection (quotes, cancels, reconcile).
IB_MESSAGES_PER_SECOND = 50


class LadderSettings(Protocol):
    """The settings fields the ladder reads. A protocol, so the domain does not
    import the platform layer; `spreadpilot.platform.settings.Settings` satisfies it."""

    @property
    def ladder_start(self) -> LadderStart: ...
    @property
    def ladder_tick(self) -> Decimal: ...
    @property
    def ladder_step_seconds(self) -> float: ...
    @property
    def ladder_min_credit(self) -> Decimal: ...
    @property
    def ladder_max_steps(self) -> int: ...
    @property
    def gateway_pacing_per_second(self) -> int: ...


@dataclass(frozen=True)
class LadderConfig:
    """The ladder's parameters, validated again here so a config built in code (tests,
    bench) obeys the same rules as one loaded from settings."""

    start: LadderStart = "mid"
    tick: Decimal = Decimal("0.01")
    step_seconds: float = 5.0
    min_credit: Decimal = Decimal("0.70")
    max_steps: int = 10
    pacing_per_second: int = 45

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.start not in LADDER_STARTS:
            problems.append(f"start {self.start!r} is not one of {sorted(LADDER_STARTS)}")
        if not self.tick.is_finite() or self.tick <= 0:
            problems.append(f"tick {self.tick} must be > 0")
        elif not self.min_credit.is_finite() or self.min_credit < self.tick:
            problems.append(f"min_credit {self.min_credit} must be at least one tick ({self.tick})")
        elif self.min_credit % self.tick != 0:
            problems.append(
                f"min_credit {self.min_credit} must be a multiple of the tick {self.tick}"
            )
        if not self.step_seconds > 0:
            problems.append(f"step_seconds {self.step_seconds} must be > 0")
        if self.max_steps < 0:
            problems.append(f"max_steps {self.max_steps} must be >= 0")
        if not 1 <= self.pacing_per_second <= IB_MESSAGES_PER_SECOND:
            problems.append(
                f"pacing_per_second {self.pacing_per_second} must be 1..{IB_MESSAGES_PER_SECOND}"
            )
        if problems:
            raise ValueError("invalid ladder config: " + "; ".join(problems))

    @classmethod
    def from_settings(cls, s: LadderSettings) -> LadderConfig:
        return cls(
            start=s.ladder_start,
            tick=s.ladder_tick,
            step_seconds=s.ladder_step_seconds,
            min_credit=s.ladder_min_credit,
            max_steps=s.ladder_max_steps,
            pacing_per_second=s.gateway_pacing_per_second,
        )

    def for_gateway(self, followers_on_gateway: int, messages_per_step: int = 1) -> LadderConfig:
        """This config with its step interval stretched for a gateway shared by
        `followers_on_gateway` followers (see `stretch_step_seconds`)."""
        stretched = stretch_step_seconds(self, followers_on_gateway, messages_per_step)
        return replace(self, step_seconds=stretched)


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class LadderPlan:
    """The prices the ladder will try, in order: `prices[0]` is placed, each later one
    is a modification `step_seconds` after the previous price started."""

    prices: tuple[Decimal, ...]
    step_seconds: float
    mid_credit: Decimal
    natural_credit: Decimal
    min_credit: Decimal
    tick: Decimal

    @property
    def start(self) -> Decimal:
        return self.prices[0]

    @property
    def last_step(self) -> int:
        """Index of the last price; the ladder is exhausted once it has had its interval."""
        return len(self.prices) - 1

    @property
    def duration_seconds(self) -> float:
        """Nominal time from placement to the give-up decision (every price gets one interval)."""
        return len(self.prices) * self.step_seconds


@dataclass(frozen=True)
class LadderRejection:
    """Nothing may be sent: the quotes cannot pay the minimum credit."""

    alert_type: AlertType
    message: str
    mid_credit: Decimal
    min_credit: Decimal


@dataclass(frozen=True)
class AwaitQuotes:
    """Not a rejection: a leg is not quoted on both sides yet (before or just after the
    open); read the quotes again and plan again. `missing` names the empty sides."""

    missing: tuple[str, ...]

    @property
    def message(self) -> str:
        return "waiting for two-sided quotes on both legs; missing: " + ", ".join(self.missing)


def round_down_to_tick(credit: Decimal, tick: Decimal) -> Decimal:
    """The largest multiple of `tick` that is <= `credit` (never asks above the quote)."""
    return (credit / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def _missing_sides(quote: SpreadQuote) -> tuple[str, ...]:
    sides = {
        "short bid": (quote.short_bid, False),
        "short ask": (quote.short_ask, False),
        "long bid": (quote.long_bid, True),  # a far OTM long leg may bid 0
        "long ask": (quote.long_ask, False),
    }
    return tuple(
        name
        for name, (price, zero_ok) in sides.items()
        if price is None or price < 0 or (price == 0 and not zero_ok)
    )


def plan_ladder(
    quote: SpreadQuote, config: LadderConfig
) -> LadderPlan | LadderRejection | AwaitQuotes:
    """Plan the ladder for one quote snapshot.

    - Not two-sided -> AwaitQuotes (an order placed now would rest unpriced).
    - Mid below the floor -> LadderRejection(MID_TOO_LOW), naming both numbers.
    - Else prices from the start (rounded down to the tick, see the module doc),
      one tick lower per step, never below the floor, at most `max_steps` steps.
    """
    if not quote.two_sided:
        return AwaitQuotes(_missing_sides(quote) or ("two-sided quote",))
    mid, natural = quote.mid_credit, quote.natural_credit
    floor, tick = config.min_credit, config.tick
    if mid < floor:
        return LadderRejection(
            alert_type=AlertType.MID_TOO_LOW,
            message=f"mid credit {mid} is below the minimum credit {floor}: nothing sent",
            mid_credit=mid,
            min_credit=floor,
        )
    start = round_down_to_tick(mid, tick)
    if config.start == "natural":
        # Marketable start, but never above the mid nor below the floor.
        start = min(start, max(floor, round_down_to_tick(natural, tick)))
    ticks_above_floor = int((start - floor) / tick)  # exact: both on the tick grid
    steps = min(config.max_steps, ticks_above_floor)
    prices = tuple(start - k * tick for k in range(steps + 1))
    return LadderPlan(
        prices=prices,
        step_seconds=config.step_seconds,
        mid_credit=mid,
        natural_credit=natural,
        min_credit=floor,
        tick=tick,
    )


# --- pacing ---------------------------------------------------------------------------


def stretch_step_seconds(
    config: LadderConfig,
    followers_on_gateway: int,
    messages_per_step: int = 1,
    budget_per_second: int | None = None,
) -> float:
    """The step interval for one gateway shared by `followers_on_gateway` ladders.

    Each step of each follower costs `messages_per_step` messages (a modify), so N
    followers stepping every T seconds send N * m / T messages per second; keeping that
    within the budget needs T >= N * m / budget. Steps stretch rather than break IB's
    pacing limit, and never shrink below the configured interval. The budget defaults
    to the config's (settings: gateway_pacing_per_second, 45/s).
    """
    budget = config.pacing_per_second if budget_per_second is None else budget_per_second
    if followers_on_gateway < 0:
        raise ValueError(f"followers_on_gateway {followers_on_gateway} must be >= 0")
    if messages_per_step < 0:
        raise ValueError(f"messages_per_step {messages_per_step} must be >= 0")
    if budget < 1:
        raise ValueError(f"budget_per_second {budget} must be >= 1")
    return max(config.step_seconds, followers_on_gateway * messages_per_step / budget)


def messages_floor_seconds(n_messages: int, budget_per_second: int = 45) -> float:
    """Theoretical minimum time to send `n_messages` at `budget_per_second`.

    Pass the messages that must go out BEFORE the last order (for N followers with one
    placeOrder each, N - 1): that is the floor the benchmark's "within 10%" target
    measures against; the last message itself goes out at once.
    """
    if n_messages < 0:
        raise ValueError(f"n_messages {n_messages} must be >= 0")
    if budget_per_second < 1:
        raise ValueError(f"budget_per_second {budget_per_second} must be >= 1")
    return n_messages / budget_per_second


# --- stepping -------------------------------------------------------------------------


class LadderMove(StrEnum):
    MODIFY = "MODIFY"  # lower the working order's credit to `credit`
    WAIT = "WAIT"  # nothing to send now; look again after `wait_seconds` or on an update
    CANCEL_REMAINDER = "CANCEL_REMAINDER"  # ladder over with a partial fill: cancel the rest
    GIVE_UP = "GIVE_UP"  # ladder over, nothing filled: cancel (LIMIT_REACHED)
    DONE = "DONE"  # the order is final at IB: report `outcome`, send nothing more


class LadderOutcome(StrEnum):
    FILLED = "FILLED"
    PARTIAL_FILL = "PARTIAL_FILL"  # some filled, the remainder cancelled
    LIMIT_REACHED = "LIMIT_REACHED"  # nothing filled by the last price, cancelled
    CANCELLED = "CANCELLED"  # cancelled by someone else (IB, the operator), nothing filled
    REJECTED = "REJECTED"  # IB refused the order (snapshot.reason says why)


#: The alert each non-fill outcome raises (domain.md section 7).
OUTCOME_ALERT: dict[LadderOutcome, AlertType] = {
    LadderOutcome.PARTIAL_FILL: AlertType.PARTIAL_FILL,
    LadderOutcome.LIMIT_REACHED: AlertType.LIMIT_REACHED,
    LadderOutcome.REJECTED: AlertType.ORDER_REJECTED,
}


@dataclass(frozen=True)
class LadderAction:
    move: LadderMove
    credit: Decimal | None = None  # MODIFY: the new limit
    wait_seconds: float | None = None  # WAIT: until the step is due; None = until IB updates
    outcome: LadderOutcome | None = None  # DONE; CANCEL_REMAINDER / GIVE_UP: what they report


@dataclass(frozen=True)
class LadderState:
    """Where one order's ladder stands. Immutable: `advance` returns the next state.

    `filled` is the cumulative filled quantity carried across steps, and it never
    goes down: a late or stale snapshot (after a reconnect) cannot un-fill contracts.
    """

    plan: LadderPlan
    quantity: int
    step: int = 0
    filled: int = 0
    cancel_requested: bool = False

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity {self.quantity} must be > 0")
        if not 0 <= self.step <= self.plan.last_step:
            raise ValueError(f"step {self.step} outside the plan (0..{self.plan.last_step})")

    @property
    def credit(self) -> Decimal:
        """The limit the working order should carry at this step."""
        return self.plan.prices[self.step]

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    def advance(
        self, snapshot: OrderSnapshot, *, elapsed_seconds: float
    ) -> tuple[LadderState, LadderAction]:
        """See `ladder_step`."""
        return ladder_step(self, snapshot, elapsed_seconds=elapsed_seconds)


def _final_outcome(state: LadderState, order_state: OrderState) -> LadderOutcome:
    """The outcome of an order IB ended (cancelled or rejected) before it fully filled.
    A partial fill is reported as PARTIAL_FILL whoever ended the order: what matters
    to the trader is that the remainder is no longer working."""
    if state.filled > 0:
        return LadderOutcome.PARTIAL_FILL
    if order_state is OrderState.REJECTED:
        return LadderOutcome.REJECTED
    return LadderOutcome.LIMIT_REACHED if state.cancel_requested else LadderOutcome.CANCELLED


def ladder_step(
    state: LadderState, snapshot: OrderSnapshot, *, elapsed_seconds: float
) -> tuple[LadderState, LadderAction]:
    """Decide what the executor does next for one order.

    Call it on every snapshot update and whenever a WAIT's `wait_seconds` ran out.
    `elapsed_seconds` is how long the current price has been working (the executor's
    clock, passed in, so this stays pure).

    - Everything filled, or IB says Filled -> DONE(FILLED), whatever else is going on
      (a fill can race a modify or our cancel: the fill wins).
    - Cancelled or rejected at IB -> DONE with PARTIAL_FILL (something filled),
      LIMIT_REACHED (we cancelled, nothing filled), CANCELLED (someone else did,
      nothing filled) or REJECTED (nothing filled).
    - PENDING (unacknowledged) or RESTING (waiting for the open) -> WAIT: modifying an
      order that cannot trade yet only spends pacing budget.
    - A cancel already requested -> WAIT for IB's confirmation.
    - The current price has not had its interval -> WAIT for the rest of it.
    - Otherwise the next price (MODIFY), or at the last price: CANCEL_REMAINDER
      (PARTIAL_FILL) when something filled, GIVE_UP (LIMIT_REACHED) when nothing did.
    """
    if snapshot.filled > state.quantity:
        raise ValueError(
            f"order {snapshot.order_ref}: IB reports {snapshot.filled} filled "
            f"of {state.quantity} ordered"
        )
    state = replace(state, filled=max(state.filled, snapshot.filled))

    if state.filled >= state.quantity or snapshot.state is OrderState.FILLED:
        # IB's Filled status means the whole quantity, even if the fill count lags it.
        state = replace(state, filled=state.quantity)
        return state, LadderAction(LadderMove.DONE, outcome=LadderOutcome.FILLED)
    if snapshot.state in (OrderState.CANCELLED, OrderState.REJECTED):
        outcome = _final_outcome(state, snapshot.state)
        return state, LadderAction(LadderMove.DONE, outcome=outcome)
    if snapshot.state in (OrderState.PENDING, OrderState.RESTING) or state.cancel_requested:
        return state, LadderAction(LadderMove.WAIT)

    # WORKING, partly or not filled.
    left = state.plan.step_seconds - elapsed_seconds
    if left > 0:
        return state, LadderAction(LadderMove.WAIT, wait_seconds=left)
    if state.step < state.plan.last_step:
        state = replace(state, step=state.step + 1)
        return state, LadderAction(LadderMove.MODIFY, credit=state.credit)
    state = replace(state, cancel_requested=True)
    if state.filled > 0:
        return state, LadderAction(LadderMove.CANCEL_REMAINDER, outcome=LadderOutcome.PARTIAL_FILL)
    return state, LadderAction(LadderMove.GIVE_UP, outcome=LadderOutcome.LIMIT_REACHED)
