"""Risk of open spreads (domain.md section 5): time value bands, spreads from positions.

Pure: no IB, no store, no clock. The services feed it positions and quotes.

- Time value (TV) of an option = its mid - intrinsic (call max(0, S-K), put
  max(0, K-S)). Bands, judged on the **short leg**: SAFE above
  ``safe_above`` ($1.00), CRITICAL at or below ``critical_at_or_below``
  ($0.10), RISK in between.
- CRITICAL has two meanings and the alert says which: in the money with (almost)
  no time value left (early-assignment risk), or out of the money and nearly
  worthless (the profit is taken; buying back for cents removes pin/gap risk).
- IB shows a vertical as two option positions: a spread is a short and a long
  QQQ option of the same account, expiry and right, quantities opposite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from spreadpilot.domain.spread import SpreadKind, VerticalSpread

ZERO = Decimal(0)


class Band(StrEnum):
    SAFE = "SAFE"
    RISK = "RISK"
    CRITICAL = "CRITICAL"


class CriticalReason(StrEnum):
    ITM_NO_TIME_VALUE = "ITM_NO_TIME_VALUE"  # in the money, no time value: assignment risk
    OTM_NEARLY_WORTHLESS = "OTM_NEARLY_WORTHLESS"  # out of the money, profit taken

    def describe(self) -> str:
        if self is CriticalReason.ITM_NO_TIME_VALUE:
            return "short leg in the money with almost no time value (early-assignment risk)"
        return "short leg out of the money and nearly worthless (profit taken; pin/gap risk)"


class AutoClose(StrEnum):
    ALL = "all"  # the strategy's rule: close on both CRITICAL reasons
    ITM_ONLY = "itm_only"  # close only the in-the-money case; the other is alerted
    OFF = "off"  # alert only


@dataclass(frozen=True)
class Thresholds:
    safe_above: Decimal = Decimal("1.00")
    critical_at_or_below: Decimal = Decimal("0.10")

    def __post_init__(self) -> None:
        if not ZERO <= self.critical_at_or_below < self.safe_above:
            raise ValueError(
                f"thresholds must satisfy 0 <= critical ({self.critical_at_or_below}) "
                f"< safe ({self.safe_above})"
            )


def intrinsic(right: str, strike: Decimal, spot: Decimal) -> Decimal:
    """Call max(0, S-K); put max(0, K-S)."""
    if right == "C":
        return max(ZERO, spot - strike)
    if right == "P":
        return max(ZERO, strike - spot)
    raise ValueError(f"right must be C or P, got {right!r}")


def time_value(mid: Decimal, right: str, strike: Decimal, spot: Decimal) -> Decimal:
    """Mid minus intrinsic; can be slightly negative when the bid sits below parity."""
    return mid - intrinsic(right, strike, spot)


def band_of(tv: Decimal, thresholds: Thresholds) -> Band:
    if tv <= thresholds.critical_at_or_below:
        return Band.CRITICAL
    if tv > thresholds.safe_above:
        return Band.SAFE
    return Band.RISK


@dataclass(frozen=True)
class Reading:
    """One look at a short leg: what the band decision was made from."""

    spot: Decimal
    mid: Decimal
    intrinsic: Decimal
    time_value: Decimal
    band: Band
    in_the_money: bool
    reason: CriticalReason | None  # set when CRITICAL

    def describe(self) -> str:
        state = "ITM" if self.in_the_money else "OTM"
        return (
            f"TV {self.time_value:.2f} ({state}; mid {self.mid:.2f}, intrinsic "
            f"{self.intrinsic:.2f}, QQQ {self.spot:.2f})"
        )


def assess(
    right: str, strike: Decimal, bid: Decimal, ask: Decimal, spot: Decimal, t: Thresholds
) -> Reading:
    """The band of a short leg from its quote and the underlying."""
    mid = (bid + ask) / 2
    value = intrinsic(right, strike, spot)
    tv = mid - value
    band = band_of(tv, t)
    itm = value > 0
    reason = None
    if band is Band.CRITICAL:
        reason = CriticalReason.ITM_NO_TIME_VALUE if itm else CriticalReason.OTM_NEARLY_WORTHLESS
    return Reading(spot, mid, value, tv, band, itm, reason)


def should_auto_close(reading: Reading, policy: AutoClose) -> bool:
    """CRITICAL closes per the policy (the strategy's default closes both cases)."""
    if reading.band is not Band.CRITICAL or policy is AutoClose.OFF:
        return False
    return policy is AutoClose.ALL or reading.reason is CriticalReason.ITM_NO_TIME_VALUE


# --------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class OptionLeg:
    """One QQQ option position of one account (quantity signed: short < 0)."""

    account: str
    con_id: int
    expiry: str  # YYYYMMDD
    right: str  # C / P
    strike: Decimal
    quantity: int


@dataclass(frozen=True)
class OpenSpread:
    """A vertical held in one account: `quantity` contracts of each leg."""

    account: str
    expiry: str
    short: OptionLeg
    long: OptionLeg
    quantity: int

    @property
    def right(self) -> str:
        return self.short.right

    @property
    def spread_id(self) -> str:
        """Stable name of the spread, e.g. 20261124-P600-598 (ids of status records)."""
        return f"{self.expiry}-{self.right}{self.short.strike:f}-{self.long.strike:f}"

    @property
    def vertical(self) -> VerticalSpread:
        kind = SpreadKind.BULL_PUT if self.right == "P" else SpreadKind.BEAR_CALL
        return VerticalSpread(
            kind=kind, short_strike=self.short.strike, long_strike=self.long.strike
        )

    @property
    def credit_spread(self) -> bool:
        """Our strategy's shape: the long leg further out of the money than the short."""
        if self.right == "P":
            return self.long.strike < self.short.strike
        return self.long.strike > self.short.strike


def pair_spreads(legs: Iterable[OptionLeg]) -> tuple[list[OpenSpread], list[OptionLeg]]:
    """Verticals from option positions; returns (spreads, legs left unpaired).

    Per (account, expiry, right) each short is paired with the nearest long on its
    out-of-the-money side (the credit-spread shape), then with any remaining long;
    the paired quantity is the smaller of the two and the rest stays for others."""
    groups: dict[tuple[str, str, str], list[OptionLeg]] = {}
    for leg in legs:
        if leg.quantity:
            groups.setdefault((leg.account, leg.expiry, leg.right), []).append(leg)
    spreads: list[OpenSpread] = []
    left: list[OptionLeg] = []
    for (account, expiry, right), group in sorted(groups.items()):
        shorts = {leg.con_id: -leg.quantity for leg in group if leg.quantity < 0}
        longs = {leg.con_id: leg.quantity for leg in group if leg.quantity > 0}
        by_id = {leg.con_id: leg for leg in group}
        # the short nearest the money first (the riskiest gets its hedge first)
        order = sorted(shorts, key=lambda c: by_id[c].strike, reverse=(right == "P"))
        for sid in order:
            short = by_id[sid]
            ranked = sorted(longs, key=lambda cid: _hedge_rank(short, by_id[cid]))
            for lid in ranked:
                n = min(shorts[sid], longs[lid])
                if n <= 0:
                    continue
                spreads.append(OpenSpread(account, expiry, short, by_id[lid], n))
                shorts[sid] -= n
                longs[lid] -= n
                if shorts[sid] == 0:
                    break
        for cid, n in [*((c, -n) for c, n in shorts.items()), *longs.items()]:
            if n:
                left.append(OptionLeg(account, cid, expiry, right, by_id[cid].strike, n))
    return spreads, left


def _hedge_rank(short: OptionLeg, long: OptionLeg) -> tuple[int, Decimal]:
    """Longs on the short's out-of-the-money side first (the credit shape), nearest first."""
    wing = long.strike < short.strike if short.right == "P" else long.strike > short.strike
    return (0 if wing else 1, abs(long.strike - short.strike))


def near_the_money(
    spread: OpenSpread, spot: Decimal, distance: Decimal
) -> list[tuple[OptionLeg, Decimal]]:
    """The legs in the money or within `distance` of it: (leg, how far out of the money;
    <= 0 means in the money). Used by the end-of-day check."""
    out: list[tuple[OptionLeg, Decimal]] = []
    for leg in (spread.short, spread.long):
        otm_by = (spot - leg.strike) if leg.right == "P" else (leg.strike - spot)
        if otm_by <= distance:
            out.append((leg, otm_by))
    return out


def describe_legs(flags: Sequence[tuple[OptionLeg, Decimal]]) -> str:
    parts = []
    for leg, otm_by in flags:
        side = "short" if leg.quantity < 0 else "long"
        where = "in the money" if otm_by <= 0 else f"{otm_by:.2f} from the money"
        parts.append(f"{side} {leg.strike:f}{leg.right} {where}")
    return ", ".join(parts)
