"""ibsim.codec against ib_async 2.1's own client and decoder (no sockets, no mocks).

Requests: a real `IB` builds and serialises placeOrder/cancelOrder/... through
its real Client and Connection; a stand-in transport only collects the bytes,
which `decode_place_order` must turn back into the same Contract and Order.
Answers: the codec's fields are framed as on the wire and fed to the same
real Connection (data_received), so ib_async's Decoder and Wrapper build the
Trade/Order/OrderState/Fill objects the application would see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import struct
from collections.abc import Awaitable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from ib_async import IB
from ib_async.contract import ComboLeg, Contract, DeltaNeutralContract, Option, TagValue
from ib_async.decoder import Decoder
from ib_async.objects import CommissionReport, Execution, ExecutionFilter, SoftDollarTier
from ib_async.order import (
    LimitOrder,
    MarketOrder,
    Order,
    OrderComboLeg,
    OrderState,
    PriceCondition,
    TimeCondition,
    Trade,
)
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER, dataclassAsDict
from ib_async.wrapper import Wrapper

from ibsim.codec import (
    BAG_CON_ID,
    MAX_DOUBLE_TEXT,
    CodecError,
    combo_legs_descrip,
    decode_cancel_order,
    decode_place_order,
    decode_req_completed_orders,
    decode_req_executions,
    encode_commission_report,
    encode_completed_order,
    encode_completed_orders_end,
    encode_exec_details,
    encode_exec_details_end,
    encode_open_order,
    encode_open_order_end,
    encode_order_status,
    encode_record_completed_order,
    encode_record_open_order,
    encode_record_status,
    text,
    to_decimal,
)

T = TypeVar("T")
CLIENT_ID = 7
ACCOUNT = "U1000001"
ORDER_REF = "SP-20261124-QQQ-alice-OPEN"
EXPIRY = "20261124"
LONG_PUT, SHORT_PUT = 700_100_479, 700_100_480
FILL_TIME = datetime(2026, 11, 24, 15, 31, 5, tzinfo=UTC)  # 10:31:05 New York


# ---------------------------------------------------------------- harness


class CaptureTransport:
    """Stands in for the asyncio socket transport: keeps what the client writes."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass


def frame(fields: list[object]) -> bytes:
    """One message as the gateway puts it on the wire (fields are already text)."""
    body = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack(">I", len(body)) + body


def unframe(data: bytes) -> list[list[str]]:
    out = []
    while data:
        (size,) = struct.unpack(">I", data[:4])
        out.append(data[4 : 4 + size].decode().split("\0")[:-1])
        data = data[4 + size :]
    return out


class Harness:
    """A real IB whose connection is fed and drained in memory."""

    def __init__(self, server_version: int = 176) -> None:
        self.ib = IB()
        self.transport = CaptureTransport()
        self.ib.client.conn.transport = self.transport
        self.ib.wrapper.clientId = CLIENT_ID
        self.ib.client.clientId = CLIENT_ID
        # the handshake answer, then what makes the client ready
        self.feed([server_version, "20261124 09:00:00 EST"])
        self.feed([9, 1, 1])
        self.feed([15, 1, f"{ACCOUNT},U1000002"])
        assert self.ib.client.isReady()
        assert self.ib.client.serverVersion() == server_version
        self.sent()

    def feed(self, fields: list[object]) -> None:
        self.ib.client.conn.data_received(frame(fields))  # type: ignore[no-untyped-call]

    def sent(self) -> list[list[str]]:
        """Messages the client wrote since the last call, each as its field list."""
        messages = unframe(self.transport.data)
        self.transport.data = b""
        return messages

    def sent_one(self, msg_id: int) -> list[str]:
        messages = self.sent()
        assert [m[0] for m in messages] == [str(msg_id)]
        return messages[0]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """ib_async's futures and throttle need a current loop; it never runs here."""
    new = asyncio.new_event_loop()
    asyncio.set_event_loop(new)
    yield new
    new.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def no_decoder_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """ib_async's Decoder swallows exceptions into its log: a logged error fails the test."""
    caplog.set_level(logging.ERROR, logger="ib_async")
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def h(loop: asyncio.AbstractEventLoop, no_decoder_errors: None) -> Harness:
    return Harness()


@dataclass
class Record:
    """The engine's OrderRecord shape, as the codec's record helpers read it."""

    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    order: Order
    order_state: OrderState = field(default_factory=OrderState)
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    remaining: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    why_held: str = ""


@dataclass
class Recorder(Wrapper):
    """A real Wrapper that also keeps the raw callback arguments."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def openOrder(self, order_id: int, contract: Contract, order: Order, state: Any) -> None:
        self.calls.append(("openOrder", (order_id, contract, order, state)))
        super().openOrder(order_id, contract, order, state)

    def completedOrder(self, contract: Contract, order: Order, state: Any) -> None:
        self.calls.append(("completedOrder", (contract, order, state)))

    def execDetails(self, req_id: int, contract: Contract, execution: Execution) -> None:
        self.calls.append(("execDetails", (req_id, contract, execution)))


def decode_with(version: int, fields: list[object], ib: IB) -> list[tuple[str, tuple[Any, ...]]]:
    """Run fields through ib_async's Decoder at a server version, with a recording Wrapper."""
    recorder = Recorder(ib)
    Decoder(recorder, version).interpret([str(f) for f in fields])  # type: ignore[no-untyped-call]
    return recorder.calls


# ---------------------------------------------------------------- contracts and orders


def put(strike: int, con_id: int) -> Option:
    return Option(
        "QQQ",
        EXPIRY,
        strike,
        "P",
        "SMART",
        multiplier="100",
        currency="USD",
        conId=con_id,
        localSymbol=f"QQQ   261124P00{strike}000",
        tradingClass="QQQ",
    )


def credit_vertical() -> Contract:
    """Bull put: buy the 479 put, sell the 480 put (BUY BAG at a negative price)."""
    return Contract(
        secType="BAG",
        symbol="QQQ",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=LONG_PUT, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=SHORT_PUT, ratio=1, action="SELL", exchange="SMART"),
        ],
    )


def vertical_order(**kw: Any) -> Order:
    return LimitOrder(
        "BUY",
        2,
        -0.75,
        orderRef=ORDER_REF,
        account=ACCOUNT,
        tif="DAY",
        smartComboRoutingParams=[TagValue("NonGuaranteed", "1")],
        **kw,
    )


def normalized(obj: Any, skip: Collection[str] = frozenset()) -> dict[str, Any]:
    """Dataclass fields as ib_async would decode them (Decimal -> float, None -> unset)."""
    out = {}
    for key, value in dataclassAsDict(obj).items():
        if key in skip:
            continue
        if key == "volatility" and value is None:  # placeOrder sets it to None (non-VOL orders)
            value = UNSET_DOUBLE
        if isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out


def assert_same_order(decoded: Order, original: Order, skip: Collection[str] = frozenset()) -> None:
    want = normalized(original, {"clientId", *skip})
    got = normalized(decoded, {"clientId", *skip})
    assert {k: (got[k], want[k]) for k in want if got[k] != want[k]} == {}


def assert_same_contract(decoded: Contract, original: Contract) -> None:
    want, got = normalized(original), normalized(decoded)
    assert {k: (got[k], want[k]) for k in want if got[k] != want[k]} == {}


def fut(awaitable: Awaitable[T]) -> asyncio.Future[T]:
    """ib_async's *Async request methods return the wrapper's Future (typed Awaitable)."""
    assert isinstance(awaitable, asyncio.Future)
    return awaitable


def place(h: Harness, contract: Contract, order: Order) -> tuple[Trade, list[str]]:
    trade = h.ib.placeOrder(contract, order)
    return trade, h.sent_one(3)


# ---------------------------------------------------------------- (a) placeOrder round trips


def test_lmt_option_order_round_trips(h: Harness) -> None:
    contract = put(480, SHORT_PUT)
    order = LimitOrder("SELL", 3, 1.25, account=ACCOUNT, orderRef=ORDER_REF, tif="DAY")
    trade, fields = place(h, contract, order)

    order_id, got_contract, got_order = decode_place_order(fields[1:], 176)

    assert order_id == trade.order.orderId == got_order.orderId
    assert_same_contract(got_contract, contract)
    assert_same_order(got_order, order)
    assert (got_order.action, got_order.totalQuantity, got_order.lmtPrice) == ("SELL", 3.0, 1.25)
    assert got_order.auxPrice == UNSET_DOUBLE and got_order.transmit is True
    assert got_contract.strike == 480.0 and isinstance(got_contract.strike, float)


def test_mkt_option_order_round_trips_with_unset_prices(h: Harness) -> None:
    contract = put(479, LONG_PUT)
    order = MarketOrder("BUY", 1, account=ACCOUNT, orderRef="ref-mkt")
    _, fields = place(h, contract, order)

    _, got_contract, got_order = decode_place_order(fields[1:], 176)

    assert_same_contract(got_contract, contract)
    assert_same_order(got_order, order)
    assert got_order.orderType == "MKT"
    assert got_order.lmtPrice == UNSET_DOUBLE and got_order.volatility == UNSET_DOUBLE


def test_bag_credit_vertical_round_trips(h: Harness) -> None:
    contract = credit_vertical()
    order = vertical_order(orderComboLegs=[OrderComboLeg(-1.05), OrderComboLeg(0.30)])
    _, fields = place(h, contract, order)
    assert len(fields) == 138  # 134 + two leg prices + one routing tag/value pair

    _, got_contract, got_order = decode_place_order(fields[1:], 176)

    assert_same_contract(got_contract, contract)
    assert_same_order(got_order, order)
    assert got_contract.secType == "BAG"
    assert [(leg.conId, leg.ratio, leg.action) for leg in got_contract.comboLegs] == [
        (LONG_PUT, 1, "BUY"),
        (SHORT_PUT, 1, "SELL"),
    ]
    assert got_contract.comboLegs[0].exemptCode == -1
    assert got_order.lmtPrice == -0.75
    assert (got_order.orderRef, got_order.account) == (ORDER_REF, ACCOUNT)
    assert [leg.price for leg in got_order.orderComboLegs] == [-1.05, 0.30]
    assert got_order.smartComboRoutingParams == [TagValue("NonGuaranteed", "1")]
    assert to_decimal(got_order.lmtPrice) == Decimal("-0.75")


def test_two_leg_bag_is_134_fields_on_the_wire(h: Harness) -> None:
    _, fields = place(h, credit_vertical(), LimitOrder("BUY", 1, -0.75, account=ACCOUNT))
    assert len(fields) == 134


def test_decimal_prices_and_quantities_round_trip_as_floats(h: Harness) -> None:
    order = LimitOrder("BUY", Decimal("2"), Decimal("-0.75"), account=ACCOUNT)  # type: ignore[arg-type]
    _, fields = place(h, credit_vertical(), order)
    assert fields[17:20] == ["2", "LMT", "-0.75"]

    _, _, got = decode_place_order(fields[1:], 176)

    assert (got.totalQuantity, got.lmtPrice) == (2.0, -0.75)
    assert isinstance(got.lmtPrice, float)


def test_whatif_bag_order_round_trips(h: Harness) -> None:
    order = vertical_order()
    future = fut(h.ib.whatIfOrderAsync(credit_vertical(), order))
    fields = h.sent_one(3)

    order_id, _, got = decode_place_order(fields[1:], 176)

    assert got.whatIf is True
    assert order.whatIf is False  # ib_async sends a copy
    assert_same_order(got, order, {"whatIf", "orderId"})  # the copy's id is a reqId
    assert got.orderId == order_id >= 1
    assert not future.done()


def test_transmit_false_round_trips(h: Harness) -> None:
    order = vertical_order(transmit=False)
    _, fields = place(h, credit_vertical(), order)

    _, _, got = decode_place_order(fields[1:], 176)

    assert got.transmit is False
    assert_same_order(got, order)


def kitchen_sink(order_type: str) -> tuple[Contract, Order]:
    """Every optional branch of placeOrder/openOrder at once, with distinctive values."""
    contract = credit_vertical()
    contract.conId = BAG_CON_ID
    contract.exchange = "IBKRATS"  # minTradeQty is sent for IBKRATS only
    contract.secIdType, contract.secId = "ISIN", "US46090E1038"
    contract.primaryExchange = "NASDAQ"
    contract.deltaNeutralContract = DeltaNeutralContract(320227571, 0.25, 481.5)
    for i, leg in enumerate(contract.comboLegs):
        leg.openClose, leg.shortSaleSlot, leg.designatedLocation, leg.exemptCode = 1, 2, "LOC", i
    order = Order(
        action="SELL",
        totalQuantity=5,
        orderType=order_type,
        lmtPrice=-1.15,
        auxPrice=0.05,
        tif="GTD",
        activeStartTime="20261124 09:35:00 US/Eastern",
        activeStopTime="20261124 15:55:00 US/Eastern",
        ocaGroup="oca-1",
        ocaType=2,
        orderRef=ORDER_REF,
        transmit=False,
        parentId=41,
        blockOrder=True,
        sweepToFill=True,
        displaySize=3,
        triggerMethod=4,
        outsideRth=True,
        hidden=True,
        goodAfterTime="20261124 09:31:00 US/Eastern",
        goodTillDate="20261124 16:00:00 US/Eastern",
        rule80A="I",
        allOrNone=True,
        minQty=2,
        percentOffset=0.01,
        overridePercentageConstraints=True,
        trailStopPrice=1.5,
        trailingPercent=2.5,
        faGroup="grp",
        faProfile="prof",
        faMethod="EqualQuantity",
        faPercentage="50",
        designatedLocation="DL",
        openClose="C",
        origin=1,
        shortSaleSlot=2,
        exemptCode=7,
        discretionaryAmt=0.02,
        eTradeOnly=True,
        firmQuoteOnly=True,
        nbboPriceCap=9.5,
        optOutSmartRouting=True,
        auctionStrategy=2,
        startingPrice=1.1,
        stockRefPrice=480.5,
        delta=0.3,
        stockRangeLower=470.0,
        stockRangeUpper=490.0,
        randomizePrice=True,
        randomizeSize=True,
        volatilityType=2,
        deltaNeutralOrderType="LMT",
        deltaNeutralAuxPrice=0.4,
        deltaNeutralConId=320227571,
        deltaNeutralSettlingFirm="SF",
        deltaNeutralClearingAccount="CA",
        deltaNeutralClearingIntent="IB",
        deltaNeutralOpenClose="O",
        deltaNeutralShortSale=True,
        deltaNeutralShortSaleSlot=1,
        deltaNeutralDesignatedLocation="DDL",
        continuousUpdate=True,
        referencePriceType=1,
        scaleInitLevelSize=10,
        scaleSubsLevelSize=5,
        scalePriceIncrement=0.05,
        scalePriceAdjustValue=0.01,
        scalePriceAdjustInterval=30,
        scaleProfitOffset=0.2,
        scaleAutoReset=True,
        scaleInitPosition=4,
        scaleInitFillQty=3,
        scaleRandomPercent=True,
        scaleTable="tbl",
        hedgeType="D",
        hedgeParam="0.5",
        account=ACCOUNT,
        settlingFirm="FIRM",
        clearingAccount="CLR",
        clearingIntent="Away",
        algoStrategy="Adaptive",
        algoParams=[TagValue("adaptivePriority", "Normal")],
        smartComboRoutingParams=[TagValue("NonGuaranteed", "1"), TagValue("LeginPrio", "0")],
        algoId="algo-9",
        whatIf=False,
        notHeld=True,
        solicited=True,
        modelCode="MODEL",
        orderComboLegs=[OrderComboLeg(-1.2), OrderComboLeg(0.05)],
        orderMiscOptions=[TagValue("a", "1"), TagValue("b", "x")],
        referenceContractId=12345,
        peggedChangeAmount=0.1,
        isPeggedChangeAmountDecrease=True,
        referenceChangeAmount=0.2,
        referenceExchangeId="NYSE",
        adjustedOrderType="STP",
        triggerPrice=2.5,
        adjustedStopPrice=2.4,
        adjustedStopLimitPrice=2.3,
        adjustedTrailingAmount=0.7,
        adjustableTrailingUnit=1,
        lmtPriceOffset=0.03,
        conditions=[
            PriceCondition(1, "o", False, 470.25, 320227571, "SMART", 2),
            TimeCondition(3, "a", True, "20261124 15:00:00 US/Eastern"),
        ],
        conditionsCancelOrder=True,
        conditionsIgnoreRth=True,
        extOperator="ext",
        softDollarTier=SoftDollarTier("tier", "42", ""),
        cashQty=1000.0,
        mifid2DecisionMaker="dm",
        mifid2DecisionAlgo="da",
        mifid2ExecutionTrader="et",
        mifid2ExecutionAlgo="ea",
        dontUseAutoPriceForHedge=True,
        isOmsContainer=True,
        discretionaryUpToLimitPrice=True,
        usePriceMgmtAlgo=True,
        duration=60,
        postToAts=1,
        autoCancelParent=True,
        advancedErrorOverride="8229",
        manualOrderTime="20261124 10:00:00",
        minTradeQty=2,
        minCompeteSize=3,
        competeAgainstBestOffset=math.inf if order_type == "PEG BEST" else 0.02,
        midOffsetAtWhole=0.01,
        midOffsetAtHalf=0.005,
    )
    return contract, order


VERSIONS = [157, 158, 159, 160, 162, 166, 169, 170, 176, 177, 178]
PEG_BENCH_FIELDS = {
    "referenceContractId",
    "isPeggedChangeAmountDecrease",
    "peggedChangeAmount",
    "referenceChangeAmount",
    "referenceExchangeId",
}
NOT_SENT_BY_PLACE_ORDER = {
    "basisPoints",
    "basisPointsType",
    "autoCancelDate",
    "filledQuantity",
    "refFuturesConId",
    "shareholder",
    "imbalanceOnly",
    "routeMarketableToBbo",
    "parentPermId",
}


def gated_place_order_fields(order: Order, contract: Contract, version: int) -> set[str]:
    """Order fields Client.placeOrder leaves out at this server version."""
    out = set(NOT_SENT_BY_PLACE_ORDER)
    out |= {"faProfile"} if version >= 177 else set()
    out |= {"duration"} if version < 158 else set()
    out |= {"postToAts"} if version < 160 else set()
    out |= {"autoCancelParent"} if version < 162 else set()
    out |= {"advancedErrorOverride"} if version < 166 else set()
    out |= {"manualOrderTime"} if version < 169 else set()
    peg = {"minTradeQty", "minCompeteSize", "competeAgainstBestOffset"}
    peg |= {"midOffsetAtWhole", "midOffsetAtHalf"}
    if version >= 170:
        if contract.exchange == "IBKRATS":
            peg.discard("minTradeQty")
        if order.orderType == "PEG BEST":
            peg -= {"minCompeteSize", "competeAgainstBestOffset"}
            if order.competeAgainstBestOffset == math.inf:
                peg -= {"midOffsetAtWhole", "midOffsetAtHalf"}
        if order.orderType == "PEG MID":
            peg -= {"midOffsetAtWhole", "midOffsetAtHalf"}
    if order.orderType != "PEG BENCH":
        peg |= PEG_BENCH_FIELDS
    return out | peg


@pytest.mark.parametrize("order_type", ["PEG BENCH", "PEG BEST", "PEG MID"])
@pytest.mark.parametrize("version", VERSIONS)
def test_every_place_order_branch_round_trips_at_every_version(
    loop: asyncio.AbstractEventLoop, no_decoder_errors: None, version: int, order_type: str
) -> None:
    h = Harness(version)
    contract, order = kitchen_sink(order_type)
    _, fields = place(h, contract, order)

    _, got_contract, got_order = decode_place_order(fields[1:], version)

    assert_same_contract(got_contract, contract)
    gated = gated_place_order_fields(order, contract, version)
    assert_same_order(got_order, order, gated | {"softDollarTier"})
    assert got_order.softDollarTier.name == "tier" and got_order.softDollarTier.val == "42"
    for name in gated:
        assert getattr(got_order, name) == getattr(Order(), name), name
    assert got_order.conditions == order.conditions
    assert got_order.orderMiscOptions == order.orderMiscOptions


def test_cancel_and_request_messages_decode(h: Harness) -> None:
    trade = h.ib.placeOrder(credit_vertical(), vertical_order())
    h.sent()
    h.ib.cancelOrder(trade.order, manualCancelOrderTime="20261124 10:00:00")
    assert decode_cancel_order(h.sent_one(4)[1:], 176) == (
        trade.order.orderId,
        "20261124 10:00:00",
    )

    h.ib.reqExecutionsAsync(ExecutionFilter(clientId=CLIENT_ID, acctCode=ACCOUNT, symbol="QQQ"))
    req_id, flt = decode_req_executions(h.sent_one(7)[1:])
    assert req_id in h.ib.wrapper._futures
    assert flt == ExecutionFilter(clientId=CLIENT_ID, acctCode=ACCOUNT, symbol="QQQ")

    h.ib.reqCompletedOrdersAsync(apiOnly=True)
    assert decode_req_completed_orders(h.sent_one(99)[1:]) is True


def test_malformed_place_order_raises_codec_error_naming_the_field(h: Harness) -> None:
    _, fields = place(h, credit_vertical(), vertical_order())
    body = fields[1:]

    bad = list(body)
    bad[16] = "two"
    with pytest.raises(CodecError) as err:
        decode_place_order(bad, 176)
    assert (err.value.position, err.value.field) == (16, "totalQuantity")
    assert "'two'" in str(err.value)

    with pytest.raises(CodecError) as err:
        decode_place_order([*body, "extra"], 176)
    assert err.value.position == len(body)
    assert "trailing" in str(err.value)

    with pytest.raises(CodecError) as err:
        decode_place_order(body[:-1], 176)
    assert (err.value.field, err.value.position) == ("manualOrderTime", len(body) - 1)

    with pytest.raises(CodecError) as err:
        decode_place_order(body[:40], 176)
    assert "ends after 40 fields" in str(err.value)


# ---------------------------------------------------------------- (b) answers into ib_async


def placed_record(
    h: Harness, contract: Contract, order: Order, **kw: Any
) -> tuple[Trade, Record, list[str]]:
    """Place through ib_async, decode as the gateway would, and make the engine record."""
    trade, fields = place(h, contract, order)
    order_id, got_contract, got_order = decode_place_order(fields[1:], 176)
    record = Record(order_id, CLIENT_ID, 900_000 + order_id, got_contract, got_order, **kw)
    return trade, record, fields


def test_open_order_for_a_two_leg_bag_is_144_fields(h: Harness) -> None:
    _, record, _ = placed_record(h, credit_vertical(), vertical_order())
    record.order.smartComboRoutingParams = []
    fields = encode_record_open_order(record, 176)
    assert len(fields) == 144
    assert fields[0] == 5
    assert all(isinstance(f, str) for f in fields[1:])


def test_open_order_and_status_update_the_live_trade(h: Harness) -> None:
    contract = credit_vertical()
    trade, record, _ = placed_record(h, contract, vertical_order())
    record.contract.conId = BAG_CON_ID

    h.feed(encode_record_open_order(record, 176))
    h.feed(encode_record_status(record, 176))

    assert trade.order.permId == record.perm_id
    assert trade.orderStatus.status == "Submitted"
    assert trade.orderStatus.permId == record.perm_id
    assert trade.order.lmtPrice == -0.75 and trade.order.orderRef == ORDER_REF
    assert h.ib.wrapper.permId2Trade[record.perm_id] is trade

    filled: list[Trade] = []
    trade.filledEvent += filled.append
    record.status, record.filled, record.remaining = "Filled", Decimal(2), Decimal(0)
    record.avg_fill_price = record.last_fill_price = Decimal("-0.75")
    h.feed(encode_record_status(record, 176))

    status = trade.orderStatus
    assert (status.status, status.filled, status.remaining) == ("Filled", 2.0, 0.0)
    assert (status.avgFillPrice, status.lastFillPrice, status.clientId) == (-0.75, -0.75, 7)
    assert trade.isDone() and filled == [trade]


def test_req_open_orders_rebuilds_the_trade_after_a_reconnect(h: Harness) -> None:
    """A fresh client (no local Trade) gets the whole order back from openOrder."""
    contract, order = credit_vertical(), vertical_order()
    _, record, _ = placed_record(h, contract, order)
    assert record.contract.conId == 0  # as placed; IB answers with the combo conId

    fresh = Harness()
    future = fut(fresh.ib.reqOpenOrdersAsync())
    assert fresh.sent_one(5) == ["5", "1"]
    fresh.feed(encode_open_order(record, 176))
    fresh.feed(encode_open_order_end())

    [trade] = future.result()
    assert type(trade.contract).__name__ == "Bag"
    assert trade.contract.conId == BAG_CON_ID
    assert trade.contract.comboLegs == contract.comboLegs
    assert trade.contract.comboLegsDescrip == f"{LONG_PUT}|1,{SHORT_PUT}|-1"
    got = trade.order
    assert (got.orderId, got.clientId, got.permId) == (record.order_id, CLIENT_ID, record.perm_id)
    assert (got.action, got.totalQuantity, got.orderType, got.lmtPrice) == (
        "BUY",
        2.0,
        "LMT",
        -0.75,
    )
    assert (got.orderRef, got.account, got.tif) == (ORDER_REF, ACCOUNT, "DAY")
    assert got.smartComboRoutingParams == [TagValue("NonGuaranteed", "1")]
    assert trade.orderStatus.status == "Submitted"


def test_encode_open_order_tuple_form_sends_the_orders_own_ids(h: Harness) -> None:
    order = vertical_order()
    order.orderId, order.clientId, order.permId = 31, CLIENT_ID, 777
    fields = encode_open_order(31, credit_vertical(), order, OrderState(status="PreSubmitted"), 176)
    [(_, (order_id, _, got, state))] = decode_with(176, fields, h.ib)
    assert (order_id, got.clientId, got.permId, state.status) == (
        31,
        CLIENT_ID,
        777,
        "PreSubmitted",
    )


# openOrder/completedOrder do not carry everything placeOrder sends.
NOT_IN_OPEN_ORDER = NOT_SENT_BY_PLACE_ORDER - {"basisPoints", "basisPointsType"} | {
    "transmit",
    "activeStartTime",
    "activeStopTime",
    "scaleTable",
    "overridePercentageConstraints",
    "algoId",
    "orderMiscOptions",
    "mifid2DecisionMaker",
    "mifid2DecisionAlgo",
    "mifid2ExecutionTrader",
    "mifid2ExecutionAlgo",
    "extOperator",
    "advancedErrorOverride",
    "manualOrderTime",
}
NOT_IN_COMPLETED_ORDER = NOT_SENT_BY_PLACE_ORDER - {
    "autoCancelDate",
    "filledQuantity",
    "refFuturesConId",
    "shareholder",
    "imbalanceOnly",
    "routeMarketableToBbo",
    "parentPermId",
} | {
    "orderId",
    "clientId",
    "transmit",
    "activeStartTime",
    "activeStopTime",
    "scaleTable",
    "overridePercentageConstraints",
    "algoId",
    "orderMiscOptions",
    "mifid2DecisionMaker",
    "mifid2DecisionAlgo",
    "mifid2ExecutionTrader",
    "mifid2ExecutionAlgo",
    "extOperator",
    "advancedErrorOverride",
    "manualOrderTime",
    "blockOrder",
    "auctionStrategy",
    "eTradeOnly",
    "firmQuoteOnly",
    "nbboPriceCap",
    "parentId",
    "optOutSmartRouting",
    "whatIf",
    "adjustedOrderType",
    "triggerPrice",
    "adjustedStopPrice",
    "adjustedStopLimitPrice",
    "adjustedTrailingAmount",
    "adjustableTrailingUnit",
    "softDollarTier",
    "discretionaryUpToLimitPrice",
    "usePriceMgmtAlgo",
    "duration",
    "postToAts",
    "deltaNeutralSettlingFirm",
    "deltaNeutralClearingAccount",
    "deltaNeutralClearingIntent",
    "deltaNeutralOpenClose",
}


def sink_expectations(order: Order, version: int) -> Order:
    """The kitchen-sink order with the fields no message carries set as the extras."""
    order.basisPoints, order.basisPointsType = 0.5, 3
    order.autoCancelDate, order.filledQuantity, order.refFuturesConId = "20261124", 5.0, 99
    order.shareholder, order.imbalanceOnly, order.routeMarketableToBbo = "sh", True, True
    order.parentPermId = 4242
    order.softDollarTier = SoftDollarTier("tier", "42", "Tier 42")
    order.volatility = 0.2
    if version >= 177:
        order.faProfile = ""
    return order


def version_gated_answer_fields(order: Order, version: int, *, completed: bool) -> set[str]:
    """Order fields an openOrder/completedOrder leaves out for this order and version."""
    out: set[str] = set() if order.orderType == "PEG BENCH" else set(PEG_BENCH_FIELDS)
    if version >= 177:
        out.add("faProfile")
    if version < 170:
        out |= {"minTradeQty", "minCompeteSize", "competeAgainstBestOffset"}
        out |= {"midOffsetAtWhole", "midOffsetAtHalf"}
    if not completed:
        out |= {"duration"} if version < 159 else set()
        out |= {"postToAts"} if version < 160 else set()
        out |= {"autoCancelParent"} if version < 162 else set()
    return out


@pytest.mark.parametrize("order_type", ["PEG BENCH", "PEG BEST"])
@pytest.mark.parametrize("version", VERSIONS)
def test_open_order_carries_every_field_at_every_version(
    loop: asyncio.AbstractEventLoop, no_decoder_errors: None, version: int, order_type: str
) -> None:
    ib = IB()
    contract, order = kitchen_sink(order_type)
    order = sink_expectations(order, version)
    order.orderId, order.clientId, order.permId = 55, CLIENT_ID, 123456
    state = OrderState(status="PreSubmitted", warningText="careful", commissionCurrency="USD")

    fields = encode_open_order(55, contract, order, state, version)
    [(name, (order_id, got_contract, got, got_state))] = decode_with(version, fields, ib)

    assert (name, order_id, got_state.status) == ("openOrder", 55, "PreSubmitted")
    assert got_state.warningText == "careful"
    skip = NOT_IN_OPEN_ORDER | version_gated_answer_fields(order, version, completed=False)
    assert_same_order(got, order, skip)
    assert got.clientId == CLIENT_ID
    for attr in skip:
        assert getattr(got, attr) == getattr(Order(), attr), attr
    contract_skip = {"primaryExchange", "secIdType", "secId"}
    want = normalized(contract, contract_skip | {"comboLegsDescrip"})
    assert normalized(got_contract, contract_skip | {"comboLegsDescrip"}) == want
    assert got_contract.comboLegsDescrip == f"{LONG_PUT}|1,{SHORT_PUT}|-1"


@pytest.mark.parametrize("order_type", ["PEG BENCH", "PEG BEST"])
@pytest.mark.parametrize("version", VERSIONS)
def test_completed_order_carries_every_field_at_every_version(
    loop: asyncio.AbstractEventLoop, no_decoder_errors: None, version: int, order_type: str
) -> None:
    ib = IB()
    contract, order = kitchen_sink(order_type)
    order = sink_expectations(order, version)
    order.permId = 123456
    state = OrderState(
        status="Filled",
        completedTime="20261124 10:31:05 America/New_York",
        completedStatus="Filled Size: 5",
    )

    fields = encode_completed_order(contract, order, state, version)
    [(name, (got_contract, got, got_state))] = decode_with(version, fields, ib)

    assert name == "completedOrder"
    assert (got_state.status, got_state.completedStatus) == ("Filled", "Filled Size: 5")
    assert got_state.completedTime == "20261124 10:31:05 America/New_York"
    skip = NOT_IN_COMPLETED_ORDER | version_gated_answer_fields(order, version, completed=True)
    assert_same_order(got, order, skip)
    for attr in skip:
        assert getattr(got, attr) == getattr(Order(), attr), attr
    contract_skip = {"primaryExchange", "secIdType", "secId", "comboLegsDescrip"}
    assert normalized(got_contract, contract_skip) == normalized(contract, contract_skip)


def test_whatif_reply_resolves_with_margins_and_maps_the_sentinel(h: Harness) -> None:
    future = fut(h.ib.whatIfOrderAsync(credit_vertical(), vertical_order()))
    order_id, contract, order = decode_place_order(h.sent_one(3)[1:], 176)
    state = OrderState(
        status="PreSubmitted",
        initMarginBefore="0",
        maintMarginBefore="0",
        equityWithLoanBefore="100000",
        initMarginChange="200",
        maintMarginChange="200",
        equityWithLoanChange="-1.3",
        initMarginAfter="200",
        maintMarginAfter="200",
        equityWithLoanAfter="99998.7",
        commission=UNSET_DOUBLE,  # IB's max-double: not computed
        minCommission=1.3,
        maxCommission=UNSET_DOUBLE,
        commissionCurrency="USD",
    )
    record = Record(order_id, CLIENT_ID, 0, contract, order, state, status="PreSubmitted")

    fields = encode_record_open_order(record, 176)
    commission_at = fields.index("PreSubmitted") + 10  # status, 9 margins, commission
    assert fields[commission_at : commission_at + 3] == [MAX_DOUBLE_TEXT, "1.3", MAX_DOUBLE_TEXT]
    h.feed(fields)

    result = future.result()
    assert isinstance(result, OrderState)
    assert (result.initMarginChange, result.maintMarginChange) == ("200", "200")
    assert result.equityWithLoanAfter == "99998.7"
    assert result.commission == UNSET_DOUBLE and result.maxCommission == UNSET_DOUBLE
    assert result.minCommission == 1.3
    assert result.numeric().commission is None
    assert h.ib.wrapper.trades == {}  # whatIf never becomes a trade


def test_whatif_reply_without_margins_leaves_the_request_waiting(h: Harness) -> None:
    """ib_async only accepts a whatIf reply whose initMarginChange is not the sentinel."""
    future = fut(h.ib.whatIfOrderAsync(credit_vertical(), vertical_order()))
    order_id, contract, order = decode_place_order(h.sent_one(3)[1:], 176)
    record = Record(order_id, CLIENT_ID, 0, contract, order, OrderState(), status="PreSubmitted")
    h.feed(encode_record_open_order(record, 176))
    assert not future.done()

    record.order_state = OrderState(initMarginChange="150", commission=1.3)
    h.feed(encode_record_open_order(record, 176))
    assert future.result().commission == 1.3


def leg_executions(record: Record) -> list[tuple[Contract, Execution]]:
    """One execution per leg of the filled vertical, then the combo's own."""
    out: list[tuple[Contract, Execution]] = []
    for i, (con_id, side, price, strike) in enumerate(
        [(LONG_PUT, "BOT", 0.30, 479), (SHORT_PUT, "SLD", 1.05, 480)], start=1
    ):
        execution = Execution(
            execId=f"0000e1a7.6740b1c2.0{i}.01",
            time=FILL_TIME,
            acctNumber=ACCOUNT,
            exchange="CBOE",
            side=side,
            shares=2.0,
            price=price,
            permId=record.perm_id,
            clientId=CLIENT_ID,
            orderId=record.order_id,
            cumQty=2.0,
            avgPrice=price,
            orderRef=ORDER_REF,
            lastLiquidity=2,
        )
        out.append((put(strike, con_id), execution))
    bag = Contract(secType="BAG", conId=BAG_CON_ID, symbol="QQQ", exchange="SMART", currency="USD")
    combo = dataclasses.replace(out[0][1], execId="0000e1a7.6740b1c2.03.01", side="BOT")
    combo.price = combo.avgPrice = -0.75
    out.append((bag, combo))
    return out


def test_live_exec_details_and_commission_reports_reach_the_trade(h: Harness) -> None:
    trade, record, _ = placed_record(h, credit_vertical(), vertical_order())
    record.contract.conId = BAG_CON_ID
    h.feed(encode_record_open_order(record, 176))
    fills_seen: list[Any] = []
    reports: list[Any] = []
    trade.fillEvent += lambda _t, fill: fills_seen.append(fill)
    trade.commissionReportEvent += lambda _t, _f, report: reports.append(report)

    executions = leg_executions(record)
    for contract, execution in executions:
        fields = encode_exec_details(-1, contract, execution, 176)
        assert fields[15] == "20261124 10:31:05 America/New_York"
        h.feed(fields)
    for _, execution in executions[:2]:
        report = CommissionReport(execution.execId, 1.3, "USD", UNSET_DOUBLE, UNSET_DOUBLE, 0)
        fields = encode_commission_report(report)
        assert fields[5:7] == [MAX_DOUBLE_TEXT, MAX_DOUBLE_TEXT]
        h.feed(fields)

    assert len(trade.fills) == len(fills_seen) == 3
    assert [f.contract.conId for f in trade.fills] == [LONG_PUT, SHORT_PUT, BAG_CON_ID]
    assert trade.filled() == 2.0  # ib_async counts only the BAG execution of a combo
    for fill, (contract, sent) in zip(trade.fills, executions, strict=True):
        got = fill.execution
        assert got.time == FILL_TIME
        skip = {"time"}
        assert normalized(got, skip) == normalized(sent, skip)
        assert fill.contract.secType == contract.secType
    leg = trade.fills[1]
    assert (leg.contract.strike, leg.contract.right, leg.contract.multiplier) == (480.0, "P", "100")
    assert leg.contract.lastTradeDateOrContractMonth == EXPIRY
    assert [r.commission for r in reports] == [1.3, 1.3]
    assert all(r.realizedPNL == 0.0 and r.yield_ == 0.0 for r in reports)  # the wrapper maps max
    assert trade.fills[0].commissionReport.currency == "USD"


def test_req_executions_replays_fills_after_a_reconnect(h: Harness) -> None:
    _, record, _ = placed_record(h, credit_vertical(), vertical_order())
    executions = leg_executions(record)
    fresh = Harness()
    future = fut(fresh.ib.reqExecutionsAsync())
    req_id, _ = decode_req_executions(fresh.sent_one(7)[1:])

    for contract, execution in executions:
        fresh.feed(encode_exec_details(req_id, contract, execution, 176))
    fresh.feed(encode_exec_details_end(req_id))

    fills = future.result()
    assert [f.execution.execId for f in fills] == [e.execId for _, e in executions]
    assert {f.execution.orderRef for f in fills} == {ORDER_REF}
    assert fills[0].time == FILL_TIME


def test_exec_details_version_178_adds_pending_price_revision(
    loop: asyncio.AbstractEventLoop, no_decoder_errors: None
) -> None:
    contract, execution = leg_executions(Record(1, CLIENT_ID, 5, credit_vertical(), Order()))[0]
    execution.pendingPriceRevision = True
    assert len(encode_exec_details(-1, contract, execution, 176)) == 31
    fields = encode_exec_details(-1, contract, execution, 178)
    assert len(fields) == 32
    [(_, (_, _, got))] = decode_with(178, fields, IB())
    assert got.pendingPriceRevision is True


def test_req_completed_orders_replays_done_orders(h: Harness) -> None:
    _, record, _ = placed_record(h, credit_vertical(), vertical_order())
    record.contract.conId = BAG_CON_ID
    record.status, record.filled = "Filled", Decimal(2)
    record.order_state = OrderState(
        completedTime="20261124 10:31:05 America/New_York", completedStatus="Filled Size: 2"
    )
    fresh = Harness()
    future = fut(fresh.ib.reqCompletedOrdersAsync(apiOnly=True))
    fresh.sent()

    fresh.feed(encode_record_completed_order(record, 176))
    fresh.feed(encode_completed_orders_end())

    [trade] = future.result()
    assert trade.orderStatus.status == "Filled"
    assert trade.order.permId == record.perm_id
    assert trade.order.orderId == 0  # completedOrder carries no orderId/clientId (as IB)
    assert (trade.order.orderRef, trade.order.lmtPrice) == (ORDER_REF, -0.75)
    assert trade.order.filledQuantity == 2.0
    assert trade.contract.comboLegs == credit_vertical().comboLegs
    assert fresh.ib.wrapper.permId2Trade[record.perm_id] is trade
    assert encode_completed_order(record, 176) == encode_record_completed_order(record, 176)


def test_order_status_fields_are_text_in_ib_order() -> None:
    fields = encode_order_status(
        12, "PreSubmitted", Decimal(0), Decimal(2), 0.0, 900012, 0, 0.0, 7, "locate", 0.0
    )
    assert fields == [
        3,
        "12",
        "PreSubmitted",
        "0",
        "2",
        "0",
        "900012",
        "0",
        "0",
        "7",
        "locate",
        "0",
    ]
    assert encode_open_order_end() == [53, "1"]
    assert encode_completed_orders_end() == [102]
    assert encode_exec_details_end(4) == [55, "1", "4"]


def test_wire_text_and_decimal_helpers() -> None:
    assert [text(v) for v in (None, True, False, 3, UNSET_INTEGER, UNSET_DOUBLE)] == [
        "",
        "1",
        "0",
        "3",
        "",
        "",
    ]
    assert [text(v) for v in (-0.75, 2.0, 0.1 + 0.2, math.inf)] == [
        "-0.75",
        "2",
        "0.30000000000000004",
        "Infinity",  # Java's text, which ib_async's float() reads (its own "Infinite" fails)
    ]
    assert [text(Decimal(s)) for s in ("0.650", "100", "-0.75", "1E+1")] == [
        "0.65",
        "100",
        "-0.75",
        "10",
    ]
    assert to_decimal(-0.75) == Decimal("-0.75")
    assert to_decimal(UNSET_DOUBLE) is None and to_decimal(None) is None
    assert to_decimal(Decimal("1.30")) == Decimal("1.30")
    legs = credit_vertical().comboLegs
    assert combo_legs_descrip(legs) == f"{LONG_PUT}|1,{SHORT_PUT}|-1"
