"""The embedded broker in the demo: the IB Gateway simulator, reached with real ib_async.

Until the gateway agent exists (issue 4), the demo shows what the agent will
see for each intent: the legs qualified, the combo's mid and natural credit
from live quotes, and IB's whatIf margin and commission, per follower account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spreadpilot.domain.money import cents
from spreadpilot.ports.clock import Clock


@dataclass(frozen=True)
class Preview:
    follower_id: str
    account: str
    quantity: int
    mid_credit: Decimal
    natural_credit: Decimal
    margin: Decimal
    commission: Decimal


def preview_intents(intents: list[dict[str, Any]], clock: Clock) -> tuple[int, list[Preview]]:
    """Start ibsim on the demo's clock, connect as the agent would, and price every intent."""
    from ib_async import IB, ComboLeg, Contract, LimitOrder, Option

    from ibsim.scenario import Scenario, build_gateway

    accounts = sorted({i["ib_account"] for i in intents})
    scenario = Scenario.parse(
        {"clock": {"start": clock.now(), "speed": "sim"}, "accounts": accounts}
    )
    gateway = build_gateway(scenario, clock).start_in_thread()
    ib = IB()
    try:
        ib.connect("127.0.0.1", gateway.port, clientId=1, timeout=10)
        previews = []
        for intent in intents:
            spread, expiry = intent["spread"], intent["trade_date"].replace("-", "")
            right = "P" if spread["kind"] == "BULL_PUT" else "C"
            short = Option(
                "QQQ", expiry, float(spread["short_strike"]), right, "SMART", currency="USD"
            )
            long_ = Option(
                "QQQ", expiry, float(spread["long_strike"]), right, "SMART", currency="USD"
            )
            ib.qualifyContracts(short, long_)
            ts, tl = ib.reqTickers(short, long_)
            mid = cents(Decimal(str(ts.midpoint())) - Decimal(str(tl.midpoint())))
            natural = cents(Decimal(str(ts.bid)) - Decimal(str(tl.ask)))
            bag = Contract(
                secType="BAG",
                symbol="QQQ",
                exchange="SMART",
                currency="USD",
                comboLegs=[
                    ComboLeg(conId=long_.conId, ratio=1, action="BUY", exchange="SMART"),
                    ComboLeg(conId=short.conId, ratio=1, action="SELL", exchange="SMART"),
                ],
            )
            order = LimitOrder(
                "BUY",
                intent["quantity"],
                -float(max(mid, Decimal("0.01"))),
                account=intent["ib_account"],
                orderRef=intent["order_ref"],
            )
            state = ib.whatIfOrder(bag, order)
            commission = state.commission if math.isfinite(state.commission) else 0.0
            previews.append(
                Preview(
                    intent["follower_id"],
                    intent["ib_account"],
                    intent["quantity"],
                    mid,
                    natural,
                    cents(Decimal(str(state.initMarginChange or 0))),
                    cents(Decimal(str(commission))),
                )
            )
        return gateway.port, previews
    finally:
        ib.disconnect()
        gateway.stop_thread()
