"""Connecting real ib_async to the simulated gateway: handshake, start-up, accounts, clientIds.

Most account/order/execution answers are checked twice: with `StandIn`, a
fixed-answer implementation of the engine's query API (to pin exact row
layouts, other clients' orders and error routing without driving a market),
and, at the end, with build_gateway's real engine, orders placed straight
into it as the orders handler will.
"""

from __future__ import annotations

import logging
import socket
import statistics
import time as _time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from ib_async import IB, Contract, Execution, ExecutionFilter, Order, OrderState
from ib_async.objects import CommissionReport

from ibsim.server import Gateway
from ibsim.wire import (
    API_PREFIX,
    IN,
    OUT,
    UNSET,
    UNSET_DOUBLE,
    UNSET_INTEGER,
    decode_fields,
    encode_message,
    fmt,
    handshake_request,
    split_frames,
)
from spreadpilot.platform.clock import SimClock
from tests.ibsim.conftest import START, Connect, MakeGateway, errors_of, ny, wait_for

ACCOUNT = "DU000001"


# -- a stand-in of the engine's query API -------------------------------------------------


@dataclass
class Record:
    """OrderRecord's fields (ibsim.engine contract)."""

    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    order: Order
    order_state: OrderState
    status: str
    filled: Decimal = Decimal(0)
    remaining: Decimal = Decimal(1)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    why_held: str = ""


@dataclass
class FillRec:
    contract: Contract
    execution: Execution
    commission: CommissionReport


@dataclass
class PositionRec:
    account: str
    contract: Contract
    quantity: Decimal
    avg_cost: Decimal


@dataclass
class StatusEvent:
    record: Record


@dataclass
class FillEvent:
    record: Record
    fill: FillRec


@dataclass
class ErrorEvent:
    client_id: int
    req_id: int
    code: int
    message: str


def option(strike: int, right: str, con_id: int) -> Contract:
    return Contract(
        conId=con_id,
        symbol="QQQ",
        secType="OPT",
        lastTradeDateOrContractMonth="20261124",
        strike=float(strike),
        right=right,
        multiplier="100",
        exchange="SMART",
        currency="USD",
        localSymbol=f"QQQ   261124{right}00{strike}000",
        tradingClass="QQQ",
    )


SHORT_PUT = option(598, "P", 7001)


def working_order(order_id: int = 5, client_id: int = 1, ref: str = "sp-alice-1") -> Record:
    order = Order(
        orderId=order_id,
        clientId=client_id,
        permId=9000 + order_id,
        action="SELL",
        totalQuantity=2,
        orderType="LMT",
        lmtPrice=1.05,
        tif="DAY",
        account=ACCOUNT,
        orderRef=ref,
    )
    return Record(
        order_id,
        client_id,
        9000 + order_id,
        SHORT_PUT,
        order,
        OrderState(status="Submitted"),
        "Submitted",
        remaining=Decimal(2),
    )


def a_fill(record: Record, exec_id: str = "0001.01", client_id: int = 1) -> FillRec:
    execution = Execution(
        execId=exec_id,
        time=ny("09:31"),
        acctNumber=ACCOUNT,
        exchange="CBOE",
        side="SLD",
        shares=2.0,
        price=1.05,
        permId=record.perm_id,
        clientId=client_id,
        orderId=record.order_id,
        cumQty=2.0,
        avgPrice=1.05,
        orderRef=record.order.orderRef,
    )
    return FillRec(SHORT_PUT, execution, CommissionReport(exec_id, 1.3, "USD", UNSET_DOUBLE))


@dataclass
class StandIn:
    """The engine's query API with fixed answers; `pending` is what step() returns next."""

    working: list[Record] = field(default_factory=list)
    done: list[Record] = field(default_factory=list)
    executions: list[FillRec] = field(default_factory=list)
    holdings: list[PositionRec] = field(default_factory=list)
    values: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "NetLiquidation": ("100000.00", "USD"),
            "AvailableFunds": ("99600.00", "USD"),
            "BuyingPower": ("398400.00", "USD"),
            "TotalCashValue": ("100210.00", "USD"),
        }
    )
    pnl_values: tuple[Decimal, Decimal, Decimal] = (Decimal("12.5"), Decimal("-3"), Decimal(0))
    pending: list[Any] = field(default_factory=list)

    def step(self) -> list[Any]:
        out, self.pending = self.pending, []
        return out

    def open_orders(self, client_id: int | None) -> list[Record]:
        return [r for r in self.working if client_id is None or r.client_id == client_id]

    def completed_orders(self) -> list[Record]:
        return list(self.done)

    def fills(self, account: str | None = None) -> list[FillRec]:
        return [f for f in self.executions if account in (None, f.execution.acctNumber)]

    def positions(self) -> list[PositionRec]:
        return list(self.holdings)

    def account_values(self, account: str) -> dict[str, tuple[str, str]]:
        return dict(self.values)

    def pnl(self, account: str) -> tuple[Decimal, Decimal, Decimal]:
        return self.pnl_values


# -- wire ---------------------------------------------------------------------------


def test_fmt_renders_fields_as_ib_does() -> None:
    assert [fmt(v) for v in (None, UNSET, True, False, 3, UNSET_INTEGER)] == [
        "",
        "",
        "1",
        "0",
        "3",
        "",
    ]
    assert fmt(Decimal("1.50")) == "1.5"
    assert fmt(Decimal("100")) == "100"
    assert fmt(Decimal("-0.75")) == "-0.75"
    assert fmt(2.0) == "2"
    assert fmt(0.1) == "0.1"
    assert fmt(UNSET_DOUBLE) == "1.7976931348623157E308"


def test_framing_round_trips_and_keeps_partial_data() -> None:
    one = encode_message(IN.REQ_IDS, 1, 1)
    two = encode_message(OUT.MANAGED_ACCTS, 1, "DU1,DU2")
    buffer = bytearray(one + two[:5])
    assert [decode_fields(f) for f in split_frames(buffer)] == [["8", "1", "1"]]
    buffer += two[5:]
    assert [decode_fields(f) for f in split_frames(buffer)] == [["15", "1", "DU1,DU2"]]
    assert buffer == bytearray()


def test_raw_handshake_answers_version_176_and_a_connection_time(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(handshake_request(157, 178))
        buffer = bytearray()
        while not (frames := split_frames(buffer)):
            buffer += sock.recv(4096)
    version, connection_time = decode_fields(frames[0])
    assert version == "176"
    assert connection_time == "20261124 09:25:00 EST"
    assert API_PREFIX == b"API\0"


def test_a_client_without_176_in_its_range_is_refused(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(handshake_request(100, 151))
        assert sock.recv(4096) == b""  # closed without an answer


# -- start-up -------------------------------------------------------------------------


def test_connect_completes_without_any_timed_out_request(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ib_async")
    ib = connect(gateway, client_id=1, timeout=4)
    assert ib.isConnected()
    assert ib.managedAccounts() == [ACCOUNT]
    assert ib.client.getReqId() >= 1  # nextValidId seen
    assert not [r for r in caplog.records if "timed out" in r.getMessage()]
    assert any("Synchronization complete" in r.getMessage() for r in caplog.records)


def test_connect_is_fast_median_of_20(gateway: Gateway) -> None:
    """Measured and printed (pytest -s), not asserted: a timing is not a behaviour."""
    ib = IB()
    took = []
    for _ in range(20):
        began = _time.perf_counter()
        ib.connect("127.0.0.1", gateway.port, clientId=3, timeout=4)
        took.append(_time.perf_counter() - began)
        ib.disconnect()
        wait_for(ib, lambda: 3 not in gateway.client_ids())
    print(f"\nibsim connect: median {statistics.median(took) * 1000:.1f} ms over 20")


def test_current_time_is_the_gateway_clock(gateway: Gateway, ib: IB) -> None:
    assert ib.reqCurrentTime() == START
    gateway.clock.set(ny("10:00"))  # type: ignore[attr-defined]
    assert ib.reqCurrentTime() == ny("10:00")


class RawClient:
    """The protocol by hand, for answers ib_async does not surface (e.g. reqIds)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = bytearray()
        self.frames: list[bytes] = []
        self.sock.sendall(handshake_request())
        self.version = self.read()[0]

    def send(self, *fields: object) -> None:
        self.sock.sendall(encode_message(*fields))

    def read(self) -> list[str]:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.buffer += data
            self.frames += split_frames(self.buffer)
        return decode_fields(self.frames.pop(0))

    def read_until(self, msg_id: int) -> list[str]:
        while (fields := self.read())[0] != str(msg_id):
            pass
        return fields

    def close(self) -> None:
        self.sock.close()


def test_next_valid_id_and_req_ids_stay_above_the_clients_order_ids(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(engine=StandIn(working=[working_order(order_id=41)]))
    raw = RawClient(gateway.port)
    try:
        assert raw.version == "176"
        raw.send(IN.START_API, 2, 1, "")
        assert raw.read_until(OUT.NEXT_VALID_ID) == ["9", "1", "42"]
        raw.send(IN.REQ_IDS, 1, 1)
        assert raw.read_until(OUT.NEXT_VALID_ID) == ["9", "1", "42"]
    finally:
        raw.close()


def test_advisor_gateway_lists_every_account_and_answers_each_sub_account(
    make_gateway: MakeGateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = [f"DU{n:06d}" for n in range(1, 6)]
    gateway = make_gateway(accounts=accounts, engine=StandIn())
    caplog.set_level(logging.INFO, logger="ib_async")
    ib = connect(gateway)
    assert ib.managedAccounts() == accounts
    assert not [r for r in caplog.records if "timed out" in r.getMessage()]
    # one reqAccountUpdatesMulti per account at connect, each answered
    tagged = {(v.account, v.tag) for v in ib.accountValues()}
    assert {(a, "NetLiquidation") for a in accounts} <= tagged


def test_startup_with_the_modules_that_exist(gateway: Gateway, ib: IB) -> None:
    """build_gateway's own engine (or none): positions, summary, PnL all answered."""
    assert ib.positions() == []
    assert ib.reqCurrentTime() == START
    summary = ib.accountSummary()
    if gateway.engine is None:
        assert summary == []
    else:
        assert {v.tag for v in summary} >= {"NetLiquidation", "AvailableFunds"}
    assert ib.reqExecutions() == []


# -- accounts, positions, PnL, orders, executions (stand-in engine) ---------------------


@pytest.fixture
def stand_in() -> StandIn:
    position = PositionRec(ACCOUNT, SHORT_PUT, Decimal(-2), Decimal("104.35"))
    done = working_order(order_id=3, ref="sp-alice-0")
    done.status = "Filled"
    done.order_state = OrderState(status="Filled")
    return StandIn(
        working=[working_order(order_id=5), working_order(order_id=6, client_id=2, ref="other")],
        done=[done],
        executions=[a_fill(done)],
        holdings=[position],
    )


@pytest.fixture
def served(make_gateway: MakeGateway, stand_in: StandIn) -> Gateway:
    return make_gateway(engine=stand_in)


def test_positions_and_portfolio(served: Gateway, connect: Connect) -> None:
    ib = connect(served)
    [position] = ib.positions()
    assert (position.account, position.contract.conId, position.position) == (ACCOUNT, 7001, -2)
    assert position.avgCost == pytest.approx(104.35)
    assert position.contract.localSymbol == SHORT_PUT.localSymbol
    [item] = ib.portfolio()
    assert (item.contract.conId, item.position, item.account) == (7001, -2, ACCOUNT)


def test_account_values_and_summary(served: Gateway, connect: Connect) -> None:
    ib = connect(served)
    values = {v.tag: v.value for v in ib.accountValues() if not v.modelCode}
    assert values["NetLiquidation"] == "100000.00"
    summary = {(v.account, v.tag): (v.value, v.currency) for v in ib.accountSummary()}
    assert summary[(ACCOUNT, "AvailableFunds")] == ("99600.00", "USD")
    assert summary[(ACCOUNT, "BuyingPower")] == ("398400.00", "USD")


def test_pnl_is_answered_and_streams_changes(
    served: Gateway, stand_in: StandIn, connect: Connect
) -> None:
    ib = connect(served)
    pnl = ib.reqPnL(ACCOUNT)
    assert wait_for(ib, lambda: pnl.dailyPnL == 12.5)
    assert (pnl.unrealizedPnL, pnl.realizedPnL) == (-3.0, 0.0)
    served.call(setattr, stand_in, "pnl_values", (Decimal(20), Decimal(5), Decimal(15)))
    assert wait_for(ib, lambda: pnl.dailyPnL == 20.0)
    ib.cancelPnL(ACCOUNT)


def test_open_orders_at_connect_are_the_clients_own(served: Gateway, connect: Connect) -> None:
    ib = connect(served, client_id=1)
    trades = ib.openTrades()
    assert [(t.order.orderId, t.order.orderRef) for t in trades] == [(5, "sp-alice-1")]
    assert trades[0].orderStatus.status == "Submitted"
    assert trades[0].contract.conId == 7001
    everyone = ib.reqAllOpenOrders()
    assert sorted(t.order.orderRef for t in everyone) == ["other", "sp-alice-1"]


def test_completed_orders_and_executions_replay_the_day(served: Gateway, connect: Connect) -> None:
    ib = connect(served, client_id=9)
    [completed] = ib.reqCompletedOrders(apiOnly=False)
    assert (completed.order.orderRef, completed.orderStatus.status) == ("sp-alice-0", "Filled")
    [fill] = ib.reqExecutions()
    assert (fill.execution.orderRef, fill.execution.shares, fill.execution.side) == (
        "sp-alice-0",
        2.0,
        "SLD",
    )
    assert fill.execution.time == ny("09:31")
    # ib_async keeps the commission on the fill it saw first (at connect)
    [known] = ib.fills()
    assert known.commissionReport.commission == pytest.approx(1.3)
    assert ib.reqExecutions(ExecutionFilter(acctCode="DU999999")) == []
    assert ib.reqExecutions(ExecutionFilter(side="BUY")) == []
    assert len(ib.reqExecutions(ExecutionFilter(time="20261124 09:30:00"))) == 1
    assert ib.reqExecutions(ExecutionFilter(time="20261124-14:32:00")) == []  # UTC: 09:32 ET


def test_pump_routes_engine_events_to_the_owning_client_only(
    served: Gateway, stand_in: StandIn, connect: Connect
) -> None:
    ib1 = connect(served, client_id=1)
    ib2 = connect(served, client_id=2)
    errors2 = errors_of(ib2)
    [trade] = ib1.openTrades()
    record = stand_in.working[0]
    record.status = "Filled"
    record.filled, record.remaining = Decimal(2), Decimal(0)
    record.avg_fill_price = record.last_fill_price = Decimal("1.05")
    fill = a_fill(record, exec_id="0002.01")
    position = PositionRec(ACCOUNT, SHORT_PUT, Decimal(-4), Decimal("104.35"))

    def engine_fills() -> None:
        stand_in.holdings = [position]
        stand_in.pending = [StatusEvent(record), FillEvent(record, fill)]
        stand_in.pending.append(ErrorEvent(2, 6, 202, "Order Canceled - reason:"))

    served.call(engine_fills)
    served.pump()
    assert wait_for(ib1, lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))
    assert trade.fills[0].execution.execId == "0002.01"
    assert wait_for(ib1, lambda: trade.fills[0].commissionReport.commission > 0)
    # streamed: the position subscription made at connect sees the new size
    assert wait_for(ib1, lambda: [p.position for p in ib1.positions()] == [-4])
    # the other client got only its own error (routed after the fill, so a
    # misrouted fill would have arrived before it), not client 1's fill
    assert wait_for(ib2, lambda: (6, 202, "Order Canceled - reason:") in errors2)
    assert "0002.01" not in {f.execution.execId for f in ib2.fills()}


def test_every_message_is_logged_readably(
    gateway: Gateway, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ibsim.wire")
    connect(gateway, client_id=4)
    lines = [r.getMessage() for r in caplog.records if r.name == "ibsim.wire"]
    assert any("<- START_API(71) 2|4|" in line for line in lines)
    assert any("-> MANAGED_ACCTS(15) 1|DU000001" in line for line in lines)
    assert any("<- REQ_POSITIONS(61)" in line for line in lines)
    assert any("-> POSITION_END(62)" in line for line in lines)


# -- clientId rules ---------------------------------------------------------------------


def test_a_duplicate_client_id_is_refused_and_the_first_stays(
    gateway: Gateway, connect: Connect
) -> None:
    first = connect(gateway, client_id=1)
    second = IB()
    errors = errors_of(second)
    with pytest.raises((TimeoutError, ConnectionError)):
        second.connect("127.0.0.1", gateway.port, clientId=1, timeout=1)
    assert [code for _, code, _ in errors] == [326]
    assert not second.isConnected()
    assert first.isConnected()
    assert first.reqCurrentTime() == START
    assert gateway.client_ids() == [1]


def test_at_most_32_clients(gateway: Gateway, connect: Connect) -> None:
    clients = [connect(gateway, client_id=n) for n in range(32)]
    extra = IB()
    errors = errors_of(extra)
    with pytest.raises((TimeoutError, ConnectionError)):
        extra.connect("127.0.0.1", gateway.port, clientId=99, timeout=1)
    assert [code for _, code, _ in errors] == [502]
    assert len(gateway.client_ids()) == 32
    clients[0].disconnect()
    assert wait_for(clients[1], lambda: 0 not in gateway.client_ids())
    again = connect(gateway, client_id=99)
    assert again.isConnected()


def test_a_client_id_is_free_again_after_disconnect(gateway: Gateway, connect: Connect) -> None:
    first = connect(gateway, client_id=5)
    first.disconnect()
    assert wait_for(IB(), lambda: gateway.client_ids() == [])
    assert connect(gateway, client_id=5).isConnected()


def test_connect_answers_while_connectivity_is_lost(gateway: Gateway, connect: Connect) -> None:
    gateway.lose_connectivity()
    ib = IB()
    errors = errors_of(ib)
    ib.connect("127.0.0.1", gateway.port, clientId=1, timeout=4)
    try:
        assert wait_for(ib, lambda: any(code == 1100 for _, code, _ in errors))
        assert not any(code == 2104 for _, code, _ in errors)
    finally:
        ib.disconnect()


def test_farm_notices_at_connect(gateway: Gateway) -> None:
    ib = IB()
    errors = errors_of(ib)
    ib.connect("127.0.0.1", gateway.port, clientId=1, timeout=4)
    try:
        assert wait_for(ib, lambda: len(errors) >= 3)
        assert [(r, c) for r, c, _ in errors] == [(-1, 2104), (-1, 2106), (-1, 2158)]
    finally:
        ib.disconnect()


def test_message_ids_match_ib_async() -> None:
    from ib_async.decoder import Decoder

    handled = set(Decoder(None, 176).handlers)  # type: ignore[arg-type]
    outgoing = {v for k, v in vars(OUT).items() if not k.startswith("_") and isinstance(v, int)}
    assert outgoing <= handled
    assert IN.PLACE_ORDER == 3 and OUT.OPEN_ORDER == 5 and IN.START_API == 71


# -- the real engine behind the connect answers ------------------------------------------


def test_a_reconnecting_client_sees_the_real_engines_day(
    make_gateway: MakeGateway, connect: Connect
) -> None:
    """Orders placed straight into build_gateway's engine (as the orders handler will),
    then a fresh client's start-up replays positions, executions and completed orders."""
    from ib_async import MarketOrder

    gateway = make_gateway()
    if gateway.engine is None or gateway.instruments is None:
        pytest.skip("ibsim.engine / ibsim.instruments not present")
    owner = connect(gateway, client_id=1)
    assert isinstance(gateway.clock, SimClock)
    gateway.clock.set(ny("09:31"))
    put = gateway.instruments.option(ny("09:31").date(), Decimal(598), "P")
    order = MarketOrder("SELL", 2, account=ACCOUNT, orderRef="sp-real-1")

    def place() -> int:
        assert gateway.engine is not None
        events = gateway.engine.place(1, 10, put, order)
        return gateway.route(events + gateway.engine.step())

    assert gateway.call(place) > 0
    assert wait_for(owner, lambda: [t.order.orderRef for t in owner.trades()] == ["sp-real-1"])
    [trade] = owner.trades()
    assert wait_for(owner, lambda: trade.orderStatus.status == "Filled")
    assert wait_for(owner, lambda: [p.position for p in owner.positions()] == [-2])

    later = connect(gateway, client_id=2)
    [position] = later.positions()
    assert (position.contract.conId, position.position) == (put.conId, -2)
    [fill] = later.fills()
    assert (fill.execution.orderRef, fill.execution.shares, fill.execution.clientId) == (
        "sp-real-1",
        2,
        1,
    )
    assert fill.commissionReport.commission > 0
    [done] = later.reqCompletedOrders(apiOnly=False)
    assert (done.order.orderRef, done.orderStatus.status) == ("sp-real-1", "Filled")
    assert later.openTrades() == []
    summary = {v.tag: v.value for v in later.accountSummary(ACCOUNT)}
    assert float(summary["NetLiquidation"]) > 0
