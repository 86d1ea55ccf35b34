"""Marks, fills and observed settlements against the real simulator through the real
ib_async: the risk tests' desk (tests/risk/conftest.py), whose agent also runs the
marks loop. IB books expiries 4 h after the close here, after the final marks."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from ib_async import IB, MarketOrder, Stock

from spreadpilot.platform import collections as C
from spreadpilot.services import pnl_records as R
from tests.execution.conftest import make_gateway, make_rig  # noqa: F401  (fixtures)
from tests.ibsim.conftest import DAY
from tests.risk.conftest import Desk, MakeDesk, make_desk  # noqa: F401  (fixture)

NEXT_DAY = DAY.replace(day=25)
OVERNIGHT = {"settlement_delay_seconds": 4 * 3600}


@pytest.fixture
def desk_for(make_desk: MakeDesk) -> Any:  # noqa: F811
    """desk_for(waypoints, **fills): a desk whose simulator books expiries overnight."""

    def make(waypoints: list[list[Any]] | None = None, **fills: Any) -> Desk:
        return make_desk(waypoints=waypoints, fills={**OVERNIGHT, **fills})

    return make


def doc(desk: Desk, collection: str, account: str, day: Any = DAY) -> dict[str, Any]:
    found = desk.rig.store.get(collection, R.doc_id(account, day))
    assert found is not None, f"{collection}/{R.doc_id(account, day)} missing"
    return found


def marks(desk: Desk, account: str, day: Any = DAY) -> dict[str, Any]:
    return doc(desk, C.MARKS, account, day)


def fills(desk: Desk, account: str, day: Any = DAY) -> dict[str, Any]:
    return doc(desk, C.FILLS, account, day)


async def manual_trade(desk: Desk, account: str, action: str, shares: int) -> None:
    """A trade of another client (TWS, a person) with no orderRef: a QQQ market order."""
    assert desk.rig.gateway is not None
    ib = IB()
    await ib.connectAsync("127.0.0.1", desk.rig.gateway.port, clientId=99)
    try:
        stock = Stock("QQQ", "SMART", "USD")
        await ib.qualifyContractsAsync(stock)
        order = MarketOrder(action, shares)
        order.account = account
        trade = ib.placeOrder(stock, order)
        for _ in range(200):
            if trade.isDone():
                break
            await asyncio.sleep(0.02)
        assert trade.orderStatus.status == "Filled", trade.orderStatus
    finally:
        ib.disconnect()


def sim_commissions(desk: Desk, account: str) -> Decimal:
    """The simulator's own record: commissions charged on the account's leg executions."""
    assert desk.rig.gateway is not None
    return sum(
        (
            f.commission_amount
            for f in desk.rig.gateway.engine.fills(account)
            if f.contract.secType != "BAG"
        ),
        Decimal(0),
    )
