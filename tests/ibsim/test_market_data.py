"""Contracts and market data as unmodified ib_async sees them from the simulator."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal

import pytest
from ib_async import IB, ComboLeg, Contract, Option, Stock, Ticker

from ibsim.handlers.market import NO_SECURITY
from ibsim.instruments import STOCK_CON_ID
from ibsim.market import Quote, QuoteBook
from ibsim.scenario import Scenario
from ibsim.server import Gateway
from spreadpilot.platform.clock import SimClock
from tests.ibsim.conftest import DAY, START, Connect, MakeGateway, errors_of, ny, wait_for

EXPIRY = DAY.strftime("%Y%m%d")


def _put(strike: float = 600) -> Option:
    return Option("QQQ", EXPIRY, strike, "P", "SMART")


def _quote(gateway: Gateway, con_id: int, moment: datetime) -> Quote | None:
    assert isinstance(gateway.quotes, QuoteBook)
    return gateway.quotes.quote(con_id, moment)


def _shows(ticker: Ticker, quote: Quote) -> bool:
    """The ticker carries exactly this quote (bid/ask/sizes/last); no bid shows as IB's -1."""
    return (
        ticker.bid == (float(quote.bid) if quote.bid_size else -1)
        and ticker.ask == float(quote.ask)
        and ticker.bidSize == quote.bid_size
        and ticker.askSize == quote.ask_size
        and ticker.last == float(quote.last)
    )


@pytest.fixture(autouse=True)
def _decoder_accepts_every_message(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """ib_async's decoder logs (and swallows) any message it cannot parse: there must be none."""
    caplog.set_level(logging.WARNING, logger="ib_async")
    yield
    broken = [
        r.getMessage()
        for r in caplog.records
        if r.name == "ib_async.Decoder" or "Unknown reqId" in r.getMessage()
    ]
    assert broken == []


@pytest.fixture
def fast(make_gateway: MakeGateway) -> Gateway:
    """A gateway streaming every 20 ms of wall time (SimClock at 09:25 New York)."""
    scenario = Scenario.parse(
        {"clock": {"start": START, "speed": "sim"}, "market": {"tick_interval": 0.02}}
    )
    return make_gateway(scenario)


def _set(gateway: Gateway, hhmm: str) -> None:
    assert isinstance(gateway.clock, SimClock)
    gateway.clock.set(ny(hhmm))


# -- contracts ----------------------------------------------------------------------


def test_qualify_qqq_stock_and_a_0dte_put(ib: IB) -> None:
    stock, put = Stock("QQQ", "SMART", "USD"), _put()
    assert ib.qualifyContracts(stock, put) == [stock, put]
    assert (stock.conId, stock.primaryExchange, stock.exchange) == (STOCK_CON_ID, "NASDAQ", "SMART")
    assert put.conId > 0 and put.conId != STOCK_CON_ID
    assert (put.localSymbol, put.multiplier, put.tradingClass) == (
        "QQQ   261124P00600000",
        "100",
        "QQQ",
    )
    [details] = ib.reqContractDetails(_put())
    assert details.contract is not None and details.contract.conId == put.conId
    assert details.contract.lastTradeDateOrContractMonth == EXPIRY
    assert details.lastTradeTime == "16:00:00"
    assert details.underConId == STOCK_CON_ID and details.minTick == 0.01
    assert details.marketName == "QQQ" and details.timeZoneId == "US/Eastern"
    assert "SMART" in details.validExchanges.split(",")
    assert details.realExpirationDate == EXPIRY and details.contractMonth == "202611"
    assert details.minSize == 1 and details.sizeIncrement == 1
    [session] = [s for s in details.liquidSessions() if s.start.date() == DAY]
    assert (session.start.hour, session.start.minute, session.end.hour) == (9, 30, 16)
    [stock_details] = ib.reqContractDetails(Contract(conId=STOCK_CON_ID))
    assert stock_details.longName == "INVESCO QQQ TRUST SERIES 1"
    assert [(t.tag, t.value) for t in stock_details.secIdList] == [("ISIN", "US46090E1038")]


def test_unknown_contract_is_error_200(ib: IB) -> None:
    errors = errors_of(ib)
    assert ib.qualifyContracts(_put(strike=700)) == [None]
    assert ib.reqContractDetails(Stock("NOPE", "SMART", "USD")) == []
    codes = [(code, message) for _, code, message in errors]
    assert codes.count((200, NO_SECURITY)) == 2


def test_an_under_specified_option_is_ambiguous(ib: IB) -> None:
    rows = ib.reqContractDetails(Option("QQQ", EXPIRY, 600, "", "SMART"))
    assert sorted(r.contract.right for r in rows if r.contract) == ["C", "P"]
    assert ib.qualifyContracts(Option("QQQ", EXPIRY, 600, "", "SMART")) == [None]


def test_sec_def_opt_params_lists_todays_expiry_and_dollar_strikes(ib: IB) -> None:
    chains = ib.reqSecDefOptParams("QQQ", "", "STK", STOCK_CON_ID)
    smart = [c for c in chains if c.exchange == "SMART"]
    assert len(smart) == 1
    chain = smart[0]
    assert chain.expirations == [EXPIRY]
    assert chain.strikes == [float(k) for k in range(550, 651)]
    assert str(chain.underlyingConId) == str(STOCK_CON_ID)  # the decoder keeps it as text
    assert (chain.tradingClass, chain.multiplier) == ("QQQ", "100")
    assert ib.reqSecDefOptParams("SPY", "", "STK", 756733) == []


# -- market data --------------------------------------------------------------------


def test_stock_snapshot_before_the_open(gateway: Gateway, ib: IB) -> None:
    stock = Stock("QQQ", "SMART", "USD")
    ib.qualifyContracts(stock)
    [ticker] = ib.reqTickers(stock)
    quote = _quote(gateway, STOCK_CON_ID, ny("09:25"))
    assert quote is not None and _shows(ticker, quote)
    assert ticker.close == 600.0 and ticker.marketDataType == 1
    assert ticker.modelGreeks is None


def test_no_option_quote_before_0930(gateway: Gateway, ib: IB) -> None:
    put = _put()
    ib.qualifyContracts(put)
    [ticker] = ib.reqTickers(put)
    assert not ticker.hasBidAsk()
    # IB's empty quote (price -1, size 0), as ib_async's defaults keep it
    assert (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize) == (-1, 0, -1, 0)
    assert math.isnan(ticker.midpoint())
    assert ticker.modelGreeks is None and ticker.bidGreeks is None


def test_option_snapshot_after_the_open_has_quote_and_greeks(
    gateway: Gateway, ib: IB, at: Callable[[str], None]
) -> None:
    put = _put()
    ib.qualifyContracts(put)
    at("10:00")
    [ticker] = ib.reqTickers(put)
    quote = _quote(gateway, put.conId, ny("10:00"))
    assert quote is not None and _shows(ticker, quote)
    assert ticker.hasBidAsk() and ticker.bid < ticker.ask
    assert ticker.volume == quote.volume
    model = ticker.modelGreeks
    assert model is not None
    assert model.delta is not None and -1 < model.delta < 0
    assert model.gamma is not None and model.gamma > 0
    assert model.impliedVol is not None and model.impliedVol > 0
    assert model.theta is not None and model.theta < 0
    assert model.undPrice == float(gateway.market.underlying(ny("10:00")))
    assert ticker.bidGreeks is not None and ticker.askGreeks is not None
    bid_iv, ask_iv = ticker.bidGreeks.impliedVol, ticker.askGreeks.impliedVol
    assert bid_iv is not None and ask_iv is not None and bid_iv < ask_iv
    assert ticker.bidGreeks.optPrice == ticker.bid and ticker.askGreeks.optPrice == ticker.ask


def test_streaming_follows_the_clock_and_stops_on_cancel(fast: Gateway, connect: Connect) -> None:
    ib = connect(fast)
    put = _put(598)
    ib.qualifyContracts(put)
    ticker = ib.reqMktData(put)
    assert wait_for(ib, lambda: ticker.marketDataType == 1 and ticker.askSize == 0)
    assert not ticker.hasBidAsk()  # 09:25: options are not quoted yet

    for hhmm in ("09:31", "11:00", "15:59"):
        _set(fast, hhmm)
        quote = _quote(fast, put.conId, ny(hhmm))
        assert quote is not None
        assert wait_for(ib, lambda q=quote: _shows(ticker, q)), hhmm  # type: ignore[misc]
        assert ticker.modelGreeks is not None
        assert ticker.modelGreeks.undPrice == float(fast.market.underlying(ny(hhmm)))

    _set(fast, "16:00:30")  # expired: the quote is withdrawn
    assert wait_for(ib, lambda: not ticker.hasBidAsk())

    ib.cancelMktData(put)
    assert wait_for(ib, lambda: not _subscriptions(fast))


def test_streaming_ends_when_the_connection_closes(fast: Gateway, connect: Connect) -> None:
    ib = connect(fast)
    stock = Stock("QQQ", "SMART", "USD")
    ib.qualifyContracts(stock)
    ticker = ib.reqMktData(stock)
    assert wait_for(ib, lambda: ticker.hasBidAsk())
    assert _subscriptions(fast) == [1]
    ib.disconnect()
    probe = connect(fast, client_id=2)
    assert wait_for(probe, lambda: _subscriptions(fast) == [])


def _subscriptions(gateway: Gateway) -> list[int]:
    """Live market-data subscriptions per connected client (gateway side)."""

    def count() -> list[int]:
        out = []
        for session in gateway.sessions.values():
            state = session.state.get("market")
            if state is not None and state.subs:
                out.append(len(state.subs))
        return out

    return gateway.call(count)


def test_frozen_data_shows_the_close_after_expiry(gateway: Gateway, ib: IB) -> None:
    put = _put(math.ceil(gateway.market.underlying(ny("16:00"))) + 3)  # in the money
    ib.qualifyContracts(put)
    assert isinstance(gateway.clock, SimClock)
    gateway.clock.set(ny("17:00"))
    [live] = ib.reqTickers(put)
    assert not live.hasBidAsk() and live.marketDataType == 1
    ib.reqMarketDataType(2)
    [frozen] = ib.reqTickers(put)
    close_quote = _quote(gateway, put.conId, ny("16:00"))
    assert close_quote is not None and _shows(frozen, close_quote)
    assert frozen.hasBidAsk() and frozen.marketDataType == 2


def test_combo_market_data_uses_ibs_sign_convention(
    gateway: Gateway, ib: IB, at: Callable[[str], None]
) -> None:
    long_put, short_put = _put(590), _put(595)
    ib.qualifyContracts(long_put, short_put)
    bag = Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_put.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short_put.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )
    at("11:00")
    [ticker] = ib.reqTickers(bag)
    long_q = _quote(gateway, long_put.conId, ny("11:00"))
    short_q = _quote(gateway, short_put.conId, ny("11:00"))
    assert long_q is not None and short_q is not None
    natural_credit = short_q.bid - long_q.ask
    assert Decimal(str(ticker.ask)) == -natural_credit
    assert Decimal(str(ticker.bid)) == long_q.bid - short_q.ask
    assert ticker.bid < ticker.ask < 0


def test_market_data_for_an_unknown_contract_is_error_200(ib: IB) -> None:
    errors = errors_of(ib)
    ticker = ib.reqMktData(Contract(conId=424242, exchange="SMART"))
    assert wait_for(ib, lambda: any(code == 200 for _, code, _ in errors))
    assert math.isnan(ticker.bid)


def test_market_data_for_an_ambiguous_contract_is_error_200_with_a_reply(ib: IB) -> None:
    errors = errors_of(ib)
    # ib_async's Ticker layer refuses unqualified options; other TWS clients may send one.
    no_right = Option("QQQ", EXPIRY, 600, "", "SMART")  # a call and a put both match
    ib.client.reqMktData(ib.client.getReqId(), no_right, "", False, False, [])
    assert wait_for(ib, lambda: any(code == 200 for _, code, _ in errors))
    message = next(m for _, code, m in errors if code == 200)
    assert "is ambiguous" in message
