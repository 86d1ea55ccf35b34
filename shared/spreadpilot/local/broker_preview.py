"""The embedded broker in the demo: the IB Gateway simulator, reached through the
same IBBroker adapter the gateway agent uses (so the credit-to-IB-price
conversion stays in one place).

For each intent it shows what the agent sees before trading: the legs
qualified, the combo's mid and natural credit from live quotes, and IB's
whatIf margin and commission for the follower's account.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spreadpilot.domain.money import cents
from spreadpilot.domain.spread import VerticalSpread
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
    from ibsim.scenario import Scenario, build_gateway

    accounts = sorted({i["ib_account"] for i in intents})
    scenario = Scenario.parse(
        {"clock": {"start": clock.now(), "speed": "sim"}, "accounts": accounts}
    )
    gateway = build_gateway(scenario, clock).start_in_thread()
    try:
        return gateway.port, asyncio.run(_preview(gateway.port, accounts, intents, clock))
    finally:
        gateway.stop_thread()


async def _preview(
    port: int, accounts: list[str], intents: list[dict[str, Any]], clock: Clock
) -> list[Preview]:
    from spreadpilot.adapters.ib.broker import IBBroker

    broker = IBBroker("127.0.0.1", port, client_id=1, accounts=accounts, clock=clock)
    await broker.connect()
    try:
        previews = []
        for intent in intents:
            spread = VerticalSpread.model_validate(intent["spread"])
            legs = await broker.qualify(spread, intent["trade_date"].replace("-", ""))
            quote = await broker.quote(legs)
            mid, natural = cents(quote.mid_credit), cents(quote.natural_credit)
            check = await broker.what_if(
                legs, intent["ib_account"], intent["quantity"], max(mid, Decimal("0.01"))
            )
            previews.append(
                Preview(
                    intent["follower_id"],
                    intent["ib_account"],
                    intent["quantity"],
                    mid,
                    natural,
                    cents(check.init_margin_change or Decimal(0)),
                    cents(check.commission or Decimal(0)),
                )
            )
        return previews
    finally:
        await broker.disconnect()
