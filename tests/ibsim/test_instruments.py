"""QQQ contracts, conIds, the daily chain and IB's qualify semantics."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest
from ib_async import Contract, Option, Stock

from ibsim.instruments import STOCK_CON_ID, Instruments, occ_symbol
from ibsim.market import MarketConfig, MarketModel
from spreadpilot.domain.calendar import MarketCalendar

CAL = MarketCalendar()
DAY = date(2026, 11, 24)
EARLY = date(2026, 11, 27)
THANKSGIVING = date(2026, 11, 26)


@pytest.fixture(scope="module")
def instruments() -> Instruments:
    return Instruments(CAL, MarketModel(MarketConfig(), DAY, CAL))


def test_stock_qualifies_by_fields_and_by_con_id(instruments: Instruments) -> None:
    rows = instruments.resolve(Stock("QQQ", "SMART", "USD"))
    assert len(rows) == 1
    details = rows[0]
    assert details.contract is not None
    c = details.contract
    assert (c.conId, c.secType, c.exchange, c.primaryExchange, c.currency) == (
        STOCK_CON_ID,
        "STK",
        "SMART",
        "NASDAQ",
        "USD",
    )
    assert details.minTick == 0.01 and details.stockType == "ETF"
    assert "20261124:0930-20261124:1600" in details.liquidHours
    assert "20261126:CLOSED" in details.liquidHours
    by_id = instruments.resolve(Contract(conId=STOCK_CON_ID))
    assert [r.contract.conId for r in by_id if r.contract] == [STOCK_CON_ID]


def test_a_0dte_put_qualifies_with_ibs_details(instruments: Instruments) -> None:
    rows = instruments.resolve(Option("QQQ", "20261124", 600, "P", "SMART"))
    assert len(rows) == 1
    details = rows[0]
    c = details.contract
    assert c is not None
    assert c.conId == instruments.option(DAY, Decimal(600), "P").conId
    assert (c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike, c.right) == (
        "QQQ",
        "OPT",
        "20261124",
        600.0,
        "P",
    )
    assert (c.multiplier, c.exchange, c.currency, c.tradingClass) == ("100", "SMART", "USD", "QQQ")
    assert c.localSymbol == "QQQ   261124P00600000"
    assert details.marketName == "QQQ" and details.minTick == 0.01
    assert details.underConId == STOCK_CON_ID and details.underSymbol == "QQQ"
    assert details.lastTradeTime == "16:00:00" and details.realExpirationDate == "20261124"
    assert details.timeZoneId == "US/Eastern"
    assert "SMART" in details.validExchanges.split(",")
    # PUT/CALL spelled out and a float strike from the wire qualify the same contract
    same = instruments.resolve(Option("QQQ", "20261124", 600.0, "PUT", "SMART", "100", "USD"))
    assert [r.contract.conId for r in same if r.contract] == [c.conId]


def test_qualify_by_con_id_and_by_local_symbol(instruments: Instruments) -> None:
    con_id = instruments.option(DAY, Decimal(605), "C").conId
    by_id = instruments.resolve(Contract(conId=con_id, exchange="SMART"))
    assert len(by_id) == 1 and by_id[0].contract is not None
    assert by_id[0].contract.localSymbol == "QQQ   261124C00605000"
    local = instruments.resolve(
        Contract(secType="OPT", localSymbol="QQQ   261124C00605000", exchange="SMART")
    )
    assert [r.contract.conId for r in local if r.contract] == [con_id]


def test_under_specified_options_are_ambiguous(instruments: Instruments) -> None:
    both_rights = instruments.resolve(Option("QQQ", "20261124", 600, "", "SMART"))
    assert {r.contract.right for r in both_rights if r.contract} == {"C", "P"}
    every_exchange = instruments.resolve(Option("QQQ", "20261124", 600, "P"))
    assert len(every_exchange) > 1
    assert len({r.contract.conId for r in every_exchange if r.contract}) == 1
    assert "SMART" in {r.contract.exchange for r in every_exchange if r.contract}
    every_strike = instruments.resolve(Option("QQQ", "20261124", 0, "P", "SMART"))
    assert len(every_strike) == 101


@pytest.mark.parametrize(
    "contract",
    [
        Stock("SPY", "SMART", "USD"),
        Option("QQQ", "20261124", 700, "P", "SMART"),  # outside the listed strikes
        Option("QQQ", "20261124", 600.5, "P", "SMART"),  # not on the $1 grid
        Option("QQQ", "20261126", 600, "P", "SMART"),  # Thanksgiving: no expiry
        Option("QQQ", "20261123", 600, "P", "SMART"),  # expired yesterday
        Option("QQQ", "20261124", 600, "P", "SMART", currency="EUR"),
        Option("QQQ", "20261124", 600, "P", "NOWHERE"),
        Option("QQQ", "20261124", 600, "X", "SMART"),
        Option("QQQ", "20261124", 600, "P", "SMART", multiplier="10"),
        Contract(conId=999),
        Contract(conId=1_000_000_001),  # decodes to a strike that is not listed
        Contract(),
    ],
)
def test_unknown_contracts_resolve_to_nothing(instruments: Instruments, contract: Contract) -> None:
    assert instruments.resolve(contract) == []


def test_chain_has_a_same_day_expiry_and_dollar_strikes(instruments: Instruments) -> None:
    expirations, strikes = instruments.chain(DAY)
    assert expirations == [DAY]
    assert strikes == [Decimal(k) for k in range(550, 651)]
    assert instruments.chain(THANKSGIVING) == ([], [])
    assert instruments.chain(date(2026, 11, 28)) == ([], [])  # Saturday
    assert instruments.chain(EARLY)[0] == [EARLY]


def test_strikes_follow_the_days_open() -> None:
    model = MarketModel(MarketConfig(waypoints=[(time(9, 30), Decimal("587.40"))]), DAY, CAL)
    instruments = Instruments(CAL, model, strike_range=10)
    assert instruments.chain(DAY)[1] == [Decimal(k) for k in range(577, 598)]


def test_con_ids_are_unique_stable_and_decodable(instruments: Instruments) -> None:
    seen: set[int] = set()
    for day in (DAY, date(2026, 11, 25), EARLY):
        for strike in instruments.chain(day)[1]:
            for right in "CP":
                contract = instruments.option(day, strike, right)
                assert contract.conId not in seen and contract.conId != STOCK_CON_ID
                assert 0 < contract.conId < 2**31
                seen.add(contract.conId)
                assert instruments.option_spec(contract.conId) == (day, strike, right)
                assert instruments.by_con_id(contract.conId) == contract
    fresh = Instruments(CAL, MarketModel(MarketConfig(seed=9), DAY, CAL))
    assert (
        fresh.option(DAY, Decimal(600), "P").conId
        == instruments.option(DAY, Decimal(600), "P").conId
    )


def test_early_close_option_stops_trading_at_1300(instruments: Instruments) -> None:
    rows = instruments.resolve(Option("QQQ", "20261127", 600, "C", "SMART"))
    assert len(rows) == 1
    assert rows[0].lastTradeTime == "13:00:00"
    assert "20261127:0930-20261127:1300" in rows[0].liquidHours


def test_occ_symbol_layout() -> None:
    assert occ_symbol(date(2026, 1, 2), Decimal("612.5"), "CALL") == "QQQ   260102C00612500"
