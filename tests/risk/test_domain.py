"""The pure risk domain: time value, bands, both CRITICAL reasons, spreads from positions."""

from __future__ import annotations

from decimal import Decimal

from spreadpilot.domain.risk import (
    AutoClose,
    Band,
    CriticalReason,
    OptionLeg,
    Thresholds,
    assess,
    near_the_money,
    pair_spreads,
    should_auto_close,
)

T = Thresholds()


def D(value: object) -> Decimal:
    return Decimal(str(value))


def test_bands_and_reasons() -> None:
    assert assess("P", D(600), D("2.00"), D("2.10"), D(600), T).band is Band.SAFE
    assert assess("P", D(600), D("1.00"), D("1.00"), D(600), T).band is Band.RISK  # 1.00: RISK
    itm = assess("P", D(600), D("4.02"), D("4.06"), D(596), T)  # TV 0.04, in the money
    assert itm.band is Band.CRITICAL and itm.reason is CriticalReason.ITM_NO_TIME_VALUE
    otm = assess("C", D(610), D("0.04"), D("0.06"), D(600), T)  # worth 0.05, out of the money
    assert otm.band is Band.CRITICAL and otm.reason is CriticalReason.OTM_NEARLY_WORTHLESS
    assert assess("P", D(600), D("0.09"), D("0.11"), D(601), T).band is Band.CRITICAL  # 0.10
    assert should_auto_close(itm, AutoClose.ITM_ONLY) and not should_auto_close(
        otm, AutoClose.ITM_ONLY
    )
    assert should_auto_close(otm, AutoClose.ALL) and not should_auto_close(itm, AutoClose.OFF)


def test_spreads_from_positions() -> None:
    legs = [
        OptionLeg("U1", 1, "20261124", "P", D(600), -2),
        OptionLeg("U1", 2, "20261124", "P", D(598), 2),
        OptionLeg("U1", 3, "20261124", "C", D(610), -1),  # naked: no long call
        OptionLeg("U2", 4, "20261124", "P", D(598), 1),  # another account: not a hedge for U1
    ]
    spreads, left = pair_spreads(legs)
    (s,) = spreads
    assert (s.short.strike, s.long.strike, s.quantity, s.spread_id) == (
        D(600),
        D(598),
        2,
        "20261124-P600-598",
    )
    assert s.credit_spread and s.vertical.describe() == "Bull Put 598/600P"
    assert sorted((leg.con_id, leg.quantity) for leg in left) == [(3, -1), (4, 1)]
    flags = near_the_money(s, D("600.50"), D(1))
    assert [leg.strike for leg, _ in flags] == [D(600)]
