"""Contracts and market data: reqContractDetails, reqSecDefOptParams, reqMarketDataType,
reqMktData (snapshot and streaming) and cancelMktData.

Layouts mirror ib_async 2.1's decoder at server version 176:
- contractDetails (10): no version field (>= 164); `lastTimes` is
  'YYYYMMDD HH:MM:SS' for options (date + lastTradeTime), the size rules
  minSize/sizeIncrement/suggestedSizeIncrement close the message (164..179).
- tickPrice (1): `1, 6, reqId, tickType, price, size, attrMask`.
- tickSize (2): `2, 6, reqId, tickType, size`.
- tickOptionComputation (21): no version field (>= 156): `21, reqId, tickType,
  tickAttrib, iv, delta, optPrice, pvDividend, gamma, vega, theta, undPrice`
  with IB's "not computed" values -1 (iv, prices) and -2 (greeks).
- securityDefinitionOptionParameter (75) and its end (76): no version field.

Behaviour chosen where IB leaves a choice:
- An option without a live quote (before 09:30 ET, after the close, after
  expiry) gets bid and ask ticks with price -1 and size 0, IB's "empty"
  quote: ib_async keeps its empty price/size (-1/0), `hasBidAsk()` is False
  and `midpoint()` NaN, so the client never sees a two-sided
  quote. A zero bid (far out of the money) is sent the same way: no bid.
- Market data type: live data is always "subscribed", so types 1 and 3 are
  answered as live (58 says 1). Frozen types 2 and 4 show an option's last
  quote at the most recent close when it has no live quote (58 says 2).
- Streaming: every `MarketConfig.tick_interval` wall seconds the ticks are
  recomputed at `gateway.clock.now()` and only the changed ones are sent;
  nothing is sent while the gateway has lost connectivity (1100). A stream
  ends with cancelMktData or when the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

from ib_async import Contract, ContractDetails

from ibsim.handlers import SessionAPI, handles
from ibsim.instruments import OPTION_EXCHANGES, SYMBOL, Instruments
from ibsim.market import Greeks, Quote, QuoteBook
from ibsim.wire import IN, OUT
from spreadpilot.domain.calendar import ny_date

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("ibsim.handlers.market")

NO_SECURITY = "No security definition has been found for the request"
AMBIGUOUS = "The contract description specified for {} is ambiguous."
DUPLICATE_TICKER = "Duplicate ticker id"
UNKNOWN_TICKER = "Can't find EId with tickerId:{}"

# tick types (IB's TickTypeEnum)
BID_SIZE, BID, ASK, ASK_SIZE, LAST, LAST_SIZE, VOLUME, CLOSE, OPEN = 0, 1, 2, 3, 4, 5, 8, 9, 14
BID_OPTION, ASK_OPTION, LAST_OPTION, MODEL_OPTION = 10, 11, 12, 13
LIVE, FROZEN = 1, 2
#: attrMask bit 0: canAutoExecute (set on bid/ask as IB does)
CAN_AUTO_EXECUTE = 1
BBO_EXCHANGE = "9c0001"  # IB's SMART component map id, as sent in tickReqParams
SNAPSHOT_PERMISSIONS = 3


class _Streaming(Protocol):
    """What streaming needs of a session beyond SessionAPI (ibsim.server.Session has it)."""

    closed: bool

    def on_close(self, callback: Callable[[], None]) -> None: ...


@dataclass
class _Sub:
    """One reqMktData subscription and what was last sent for it (to send changes only)."""

    req_id: int
    kind: str  # STK | OPT | BAG
    con_id: int = 0
    legs: list[tuple[int, int, str]] = field(default_factory=list)
    sent: dict[tuple[str, int], Any] = field(default_factory=dict)
    data_type: int = 0


@dataclass
class _State:
    """Per-session market-data state: the requested type and live subscriptions."""

    data_type: int = LIVE
    subs: dict[int, _Sub] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    hooked: bool = False


_FALLBACK_STATES: dict[int, _State] = {}


def _state(session: SessionAPI) -> _State:
    store = getattr(session, "state", None)
    if isinstance(store, dict):
        found = store.get("market")
        if not isinstance(found, _State):
            found = store["market"] = _State()
        return found
    return _FALLBACK_STATES.setdefault(id(session), _State())


def _hook_close(session: SessionAPI, st: _State) -> None:
    """Drop the subscriptions and stop the stream when the connection ends."""
    if st.hooked:
        return
    st.hooked = True
    on_close = getattr(session, "on_close", None)
    if on_close is None:
        return

    def closed() -> None:
        st.subs.clear()
        if st.task is not None:
            st.task.cancel()
            st.task = None
        _FALLBACK_STATES.pop(id(session), None)

    cast("_Streaming", session).on_close(closed)


def _closed(session: SessionAPI) -> bool:
    return bool(getattr(session, "closed", False))


# -- parsing ----------------------------------------------------------------------


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _float(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _contract(fields: list[str], at: int) -> Contract:
    """The 12 contract fields ib_async writes for a Contract (client.send's format)."""
    f = (fields[at : at + 12] + [""] * 12)[:12]
    return Contract(
        conId=_int(f[0]),
        symbol=f[1],
        secType=f[2],
        lastTradeDateOrContractMonth=f[3],
        strike=_float(f[4]),
        right=f[5],
        multiplier=f[6],
        exchange=f[7],
        primaryExchange=f[8],
        currency=f[9],
        localSymbol=f[10],
        tradingClass=f[11],
    )


# -- contract details ---------------------------------------------------------------


def contract_details_fields(req_id: int, cd: ContractDetails) -> list[object]:
    """One contractDetails (10) message in Decoder.contractDetails' order at version 176."""
    c = cd.contract
    assert c is not None
    last_times = c.lastTradeDateOrContractMonth
    if last_times and cd.lastTradeTime:
        last_times = f"{last_times} {cd.lastTradeTime}"
    fields: list[object] = [
        OUT.CONTRACT_DATA,
        req_id,
        c.symbol,
        c.secType,
        last_times,
        c.strike,
        c.right,
        c.exchange,
        c.currency,
        c.localSymbol,
        cd.marketName,
        c.tradingClass,
        c.conId,
        cd.minTick,
        c.multiplier,
        cd.orderTypes,
        cd.validExchanges,
        cd.priceMagnifier,
        cd.underConId,
        cd.longName,
        c.primaryExchange,
        cd.contractMonth,
        cd.industry,
        cd.category,
        cd.subcategory,
        cd.timeZoneId,
        cd.tradingHours,
        cd.liquidHours,
        cd.evRule,
        cd.evMultiplier or "",
        len(cd.secIdList),
    ]
    for tag_value in cd.secIdList:
        fields += [tag_value.tag, tag_value.value]
    fields += [
        cd.aggGroup,
        cd.underSymbol,
        cd.underSecType,
        cd.marketRuleIds,
        cd.realExpirationDate,
        cd.stockType,
        cd.minSize,
        cd.sizeIncrement,
        cd.suggestedSizeIncrement,
    ]
    return fields


@handles(IN.REQ_CONTRACT_DETAILS)
def req_contract_details(session: SessionAPI, fields: list[str]) -> None:
    """`9, 8, reqId, contract(12), includeExpired, secIdType, secId, issuerId` -> 10* + 52."""
    req_id = _int(fields[1] if len(fields) > 1 else "", -1)
    instruments = session.gateway.instruments
    contract = _contract(fields, 2)
    sec_id_type = fields[15].upper() if len(fields) > 15 else ""
    sec_id = fields[16].upper() if len(fields) > 16 else ""
    if sec_id_type and sec_id:
        if (sec_id_type, sec_id) == ("ISIN", "US46090E1038"):
            exchange = contract.exchange
            contract = instruments.stock()
            contract.exchange = exchange
        else:
            contract = Contract()
    rows = instruments.resolve(contract)
    if not rows:
        session.error(req_id, 200, NO_SECURITY)
        return
    for cd in rows:
        session.send(*contract_details_fields(req_id, cd))
    session.send(OUT.CONTRACT_DATA_END, 1, req_id)


def _listing_day(instruments: Instruments, now: datetime) -> date:
    """The trading day whose chain is listed now: today until its close, then the next."""
    day = ny_date(now)
    session = instruments.session(day)
    if session is not None and now <= session.close:
        return day
    for ahead in range(1, 15):
        candidate = day + timedelta(days=ahead)
        if instruments.session(candidate) is not None:
            return candidate
    return day


@handles(IN.REQ_SEC_DEF_OPT_PARAMS)
def req_sec_def_opt_params(session: SessionAPI, fields: list[str]) -> None:
    """`78, reqId, symbol, futFopExchange, underlyingSecType, underlyingConId` -> 75* + 76."""
    f = (fields + [""] * 5)[:5]
    req_id = _int(f[0], -1)
    symbol, exchange, sec_type, con_id = f[1].upper(), f[2].upper(), f[3].upper(), _int(f[4])
    instruments = session.gateway.instruments
    if symbol == SYMBOL and sec_type in ("", "STK") and con_id in (0, instruments.stock_con_id):
        expirations, strikes = instruments.chain(
            _listing_day(instruments, session.gateway.clock.now())
        )
        exchanges = OPTION_EXCHANGES.split(",")
        if exchange:
            exchanges = [e for e in exchanges if e == exchange]
        for name in exchanges if expirations else []:
            session.send(
                OUT.SECURITY_DEFINITION_OPTION_PARAMETER,
                req_id,
                name,
                instruments.stock_con_id,
                SYMBOL,
                "100",
                len(expirations),
                *[f"{e:%Y%m%d}" for e in expirations],
                len(strikes),
                *strikes,
            )
    session.send(OUT.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id)


# -- market data --------------------------------------------------------------------


@handles(IN.REQ_MARKET_DATA_TYPE)
def req_market_data_type(session: SessionAPI, fields: list[str]) -> None:
    """`59, 1, type`: remembered for this connection's next reqMktData."""
    requested = _int(fields[1] if len(fields) > 1 else "", LIVE)
    _state(session).data_type = requested if requested in (1, 2, 3, 4) else LIVE


@handles(IN.REQ_MKT_DATA)
def req_mkt_data(session: SessionAPI, fields: list[str]) -> None:
    """`1, 11, reqId, contract(12), [legs], dnc, ticks, snapshot, regSnapshot, options`."""
    req_id = _int(fields[1] if len(fields) > 1 else "", -1)
    contract = _contract(fields, 2)
    pos = 14
    legs: list[tuple[int, int, str]] = []
    if contract.secType.upper() == "BAG":
        count = _int(fields[pos] if len(fields) > pos else "")
        pos += 1
        for _ in range(count):
            con_id, ratio, action = fields[pos : pos + 3]
            legs.append((_int(con_id), _int(ratio, 1), action))
            pos += 4
    has_dnc = fields[pos] == "1" if len(fields) > pos else False
    pos += 4 if has_dnc else 1
    snapshot = len(fields) > pos + 1 and fields[pos + 1] == "1"
    regulatory = len(fields) > pos + 2 and fields[pos + 2] == "1"

    st = _state(session)
    if req_id in st.subs:
        session.error(req_id, 322, DUPLICATE_TICKER)
        return
    book = session.gateway.quotes
    sub = _subscription(req_id, contract, legs, session.gateway.instruments)
    if sub is None:
        session.error(req_id, 200, NO_SECURITY)
        return
    if sub is False:
        session.error(req_id, 200, AMBIGUOUS.format(contract.symbol or contract.localSymbol))
        return
    assert isinstance(sub, _Sub)
    now = session.gateway.clock.now()
    session.send(OUT.TICK_REQ_PARAMS, req_id, 0.01, BBO_EXCHANGE, SNAPSHOT_PERMISSIONS)
    _publish(session, book, sub, now, st.data_type)
    if snapshot or regulatory:
        session.send(OUT.TICK_SNAPSHOT_END, 1, req_id)
        return
    st.subs[req_id] = sub
    _hook_close(session, st)
    if st.task is None or st.task.done():
        st.task = asyncio.get_running_loop().create_task(_stream(session, st))


def _subscription(
    req_id: int,
    contract: Contract,
    legs: list[tuple[int, int, str]],
    instruments: Instruments,
) -> _Sub | bool | None:
    """The subscription for a request; None = unknown contract, False = ambiguous."""
    if contract.secType.upper() == "BAG":
        if not legs or any(instruments.by_con_id(c) is None for c, _, _ in legs):
            return None
        return _Sub(req_id, "BAG", legs=legs)
    found = instruments.by_con_id(contract.conId) if contract.conId else None
    if found is None and not contract.conId:
        matches = {
            cd.contract.conId: cd.contract for cd in instruments.resolve(contract) if cd.contract
        }
        if len(matches) > 1:
            return False
        found = next(iter(matches.values()), None)
    if found is None:
        return None
    return _Sub(req_id, found.secType, con_id=found.conId)


@handles(IN.CANCEL_MKT_DATA)
def cancel_mkt_data(session: SessionAPI, fields: list[str]) -> None:
    """`2, 2, reqId`: the stream stops; IB answers nothing (300 for an unknown id)."""
    req_id = _int(fields[1] if len(fields) > 1 else "", -1)
    st = _state(session)
    if st.subs.pop(req_id, None) is None:
        session.error(req_id, 300, UNKNOWN_TICKER.format(req_id))
        return
    if not st.subs and st.task is not None:
        st.task.cancel()
        st.task = None


async def _stream(session: SessionAPI, st: _State) -> None:
    """Recompute every subscription at the gateway's clock, every tick interval."""
    gateway = session.gateway
    with contextlib.suppress(asyncio.CancelledError):
        while st.subs and not _closed(session):
            await asyncio.sleep(gateway.market.config.tick_interval)
            if _closed(session) or not gateway.ib_connected:
                continue
            now = gateway.clock.now()
            for sub in list(st.subs.values()):
                try:
                    _publish(session, gateway.quotes, sub, now, st.data_type)
                except Exception:
                    log.exception("market data for reqId %d failed", sub.req_id)
    if st.task is asyncio.current_task():
        st.task = None


# -- ticks --------------------------------------------------------------------------


def _frozen_moment(book: QuoteBook, now: datetime) -> datetime | None:
    """The most recent session close at or before `now` (frozen data's time)."""
    market = book.market
    day = ny_date(now)
    session = market.session_of(day)
    if session is not None and now >= session.close:
        return session.close
    previous = market.previous_trading_day(day)
    if previous is None:
        return None
    prior = market.session_of(previous)
    return prior.close if prior else None


def _publish(
    session: SessionAPI, book: QuoteBook, sub: _Sub, now: datetime, requested: int
) -> None:
    """Send the ticks of one subscription at `now` that differ from what was last sent."""
    data_type = LIVE
    quote: Quote | None
    priced_at = now
    if sub.kind == "BAG":
        quote = book.combo_quote(sub.legs, now)
    else:
        quote = book.quote(sub.con_id, now)
        if quote is None and sub.kind == "OPT" and requested in (2, 4):
            frozen = _frozen_moment(book, now)
            quote = book.quote(sub.con_id, frozen) if frozen is not None else None
            if quote is not None and frozen is not None:
                data_type, priced_at = FROZEN, frozen
    if sub.data_type != data_type:
        sub.data_type = data_type
        session.send(OUT.MARKET_DATA_TYPE, 1, sub.req_id, data_type)

    def price(tick: int, value: Decimal | float, size: int, mask: int = 0) -> None:
        if sub.sent.get(("p", tick)) != (value, size):
            sub.sent["p", tick] = (value, size)
            session.send(OUT.TICK_PRICE, 6, sub.req_id, tick, value, size, mask)

    def size_tick(tick: int, value: int) -> None:
        if sub.sent.get(("s", tick)) != value:
            sub.sent["s", tick] = value
            session.send(OUT.TICK_SIZE, 6, sub.req_id, tick, value)

    if quote is None:
        price(BID, -1, 0, CAN_AUTO_EXECUTE)
        price(ASK, -1, 0, CAN_AUTO_EXECUTE)
        return
    if quote.bid_size > 0:
        price(BID, quote.bid, quote.bid_size, CAN_AUTO_EXECUTE)
    else:
        price(BID, -1, 0, CAN_AUTO_EXECUTE)
    if quote.ask_size > 0:
        price(ASK, quote.ask, quote.ask_size, CAN_AUTO_EXECUTE)
    else:
        price(ASK, -1, 0, CAN_AUTO_EXECUTE)
    if sub.kind != "BAG":
        price(LAST, quote.last, quote.last_size)
        size_tick(VOLUME, quote.volume)
    if sub.kind == "STK":
        price(CLOSE, book.market.for_day(ny_date(now)).previous_close, 0)
        day_session = book.market.session_of(ny_date(now))
        if day_session is not None and now >= day_session.open:
            price(OPEN, book.market.for_day(ny_date(now)).open_price, 0)
    if sub.kind == "OPT":
        model = book.greeks(sub.con_id, priced_at)
        bid = book.greeks(sub.con_id, priced_at, quote.bid) if quote.bid_size else None
        ask = book.greeks(sub.con_id, priced_at, quote.ask)
        last = book.greeks(sub.con_id, priced_at, quote.last)
        spot = model.underlying if model else -1.0
        for tick, greeks in ((BID_OPTION, bid), (ASK_OPTION, ask), (LAST_OPTION, last)):
            _computation(session, sub, tick, greeks, spot, price_based=True)
        _computation(session, sub, MODEL_OPTION, model, spot, price_based=False)


def _computation(
    session: SessionAPI,
    sub: _Sub,
    tick: int,
    greeks: Greeks | None,
    spot: float,
    *,
    price_based: bool,
) -> None:
    """tickOptionComputation (21); -1/-2 stand for values IB could not compute."""
    if greeks is None:
        values = (-1.0, -2.0, -1.0, -1.0, -2.0, -2.0, -2.0, spot)
    else:
        values = (
            greeks.iv,
            greeks.delta,
            greeks.price,
            0.0,  # present value of dividends: none within a 0DTE option's life
            greeks.gamma,
            greeks.vega,
            greeks.theta,
            greeks.underlying,
        )
    rounded = tuple(round(v, 6) for v in values)
    if sub.sent.get(("g", tick)) == rounded:
        return
    sub.sent["g", tick] = rounded
    session.send(OUT.TICK_OPTION_COMPUTATION, sub.req_id, tick, int(price_based), *rounded)
