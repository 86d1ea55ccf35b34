"""The Broker port over ib_async 2.1: one IB Gateway connection, one fixed clientId.

Domain prices are positive credits (Decimal, USD per share). This module is the
only place where a credit becomes IB's price: a credit vertical is a BUY of the
BAG (long leg BUY, short leg SELL, ratio 1) at ``lmtPrice = -credit``, rounded
half-up to $0.01 (`ib_price`). Everything coming back is turned into positive
credits again (limit, average fill).

Decisions (see also the port, `spreadpilot.ports.broker`):

- **Dry-run** is enforced here and cannot be bypassed: `place` runs the whatIf
  and returns ``OrderSnapshot(state=REJECTED, reason=DRY_RUN_REASON)`` with
  order id 0 (nothing was routed); `modify` and `cancel` return that record and
  send nothing (an unknown orderRef is a BrokerError). Below the adapter, the
  ib_async client of a dry-run broker refuses every routed order, cancel,
  global cancel and exercise (only whatIf orders pass), so even code holding
  `IBBroker.ib` cannot route. Dry-run cannot be switched off on an instance.
- **Timeouts**: every request and every wait for IB's answer is bounded by
  `timeout` (seconds, per call). A request that is not answered in time, or a
  connection lost meanwhile, is a BrokerError with ``code=None`` ("no answer":
  the caller must not assume anything was or was not done); in `reconcile` it
  is a ReconcileUnknown, never an empty result.
- **Error mapping**: IB's refusals carry IB's code. A new order refused before
  IB acknowledged it (201 margin/account, 110 price increment, 436 no account,
  103 duplicate id, 200 unknown leg, ...) or ending Inactive is a snapshot in
  state REJECTED with ``reason="<code>: <IB's text>"``; 201 is a rejection even
  when it comes after the acknowledgement. A refused modify (110, 105, 321)
  leaves the order working at its old price: BrokerError(code) and the
  snapshot's `reason` names it. Unknown strike at qualify: BrokerError(200).
  Orders this adapter refuses to send (no or unmanaged account) are REJECTED
  snapshots whose reason starts with "not sent:".
- **Acknowledgements**: `place` returns once IB answered (PreSubmitted,
  Submitted, Filled, Cancelled or a rejection), `modify` once IB echoed the new
  limit (or refused it, or the order ended), `cancel` once IB reported the
  order Cancelled (or Filled, if the fill won the race). No fire-and-forget.
- **State** comes from IB's own order statuses. ib_async rewrites a trade's
  status locally on some errors and warnings ("ValidationError" after a refused
  modify, "Cancelled" after a 10148); those are ignored here.
- **Fills**: filled is cumulative over modifications (the largest of IB's
  orderStatus, the order's filledQuantity, the BAG executions and the legs'
  executions); leg fills carry the commission of IB's commissionReport (None
  until it arrived).
- **Reconcile**: open orders of all clients, completed orders, then today's
  executions, in that order (an order that fills between two reads still shows
  in one of them), matched by orderRef; executions are tied to their order by
  permId. IB answers open/completed orders without a request id, so a late
  answer to an earlier, timed-out request could pass for a fresh one (stale:
  "not there"); every read therefore starts with a barrier request
  (reqCurrentTime) and asks for the orders only once it is answered.
  Concurrent reconciles share one read of IB (coalesced), so 500 followers
  reconciling at once cost a handful of messages. Found orders are
  adopted: `snapshot`, `modify` and `cancel` work on them afterwards (orders of
  another clientId can be seen but not modified or cancelled).
- A second `place` for an orderRef this session already knows (placed,
  reconciled, or seen at connect) is refused with BrokerError(code=None)
  before anything is sent: the caller reconciles and finds the first order.
- `clock` (optional) dates the quotes (`SpreadQuote.at`); the gateway agent
  passes its clock so quote caches compare like with like. Default: wall UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar, cast

from ib_async import (
    IB,
    ComboLeg,
    Contract,
    Fill,
    LimitOrder,
    MarketOrder,
    Option,
    Order,
    OrderState,
    Stock,
    Ticker,
    Trade,
)

from spreadpilot.domain.money import cents
from spreadpilot.domain.spread import VerticalSpread
from spreadpilot.ports.broker import (
    BrokerError,
    ExecutionFill,
    LegFill,
    Legs,
    MarginCheck,
    MarketQuotes,
    OrderSnapshot,
    Position,
    Quote,
    ReconcileUnknown,
    Reconciliation,
    SpreadQuote,
)
from spreadpilot.ports.broker import OrderState as SnapshotState
from spreadpilot.ports.clock import Clock

__all__ = ["DRY_RUN_REASON", "IBBroker", "ib_price", "margin_check_from"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYMBOL = "QQQ"
EXCHANGE = "SMART"
CURRENCY = "USD"

#: The reason of the synthetic snapshot a dry-run `place` returns (no digits, so no
#: caller mistakes part of it for an IB code).
DRY_RUN_REASON = "dry-run: whatIf only"

#: How often a wait re-checks its condition even without an event from ib_async.
_RECHECK_SECONDS = 0.1
#: Messages ib_async's throttle may send at once (see IBBroker.__init__): 10 covers
#: one follower's whole sequence (reconcile, qualify, quote, whatIf, order) at once.
_PACING_BURST = 10
#: After an Inactive status, how long to wait for the error that says why.
_REJECTION_GRACE_SECONDS = 1.0
#: Anything this large is IB's "unset" max-double (1.7976931348623157E308).
_SENTINEL_FLOOR = Decimal("1e300")
_AVG_PLACES = Decimal("0.0001")
_MAX_REQUEST_ERRORS = 1000

# IB's order statuses (ib_async's OrderStatus names).
_PENDING = frozenset({"PendingSubmit", "ApiPending", ""})
_DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
_ACKNOWLEDGED = _DONE | {"PreSubmitted", "Submitted", "PendingCancel"}
#: Statuses ib_async makes up locally: never IB's word on the order.
_LOCAL_ONLY = frozenset({"ValidationError", ""})
_STATE = {
    "PendingSubmit": SnapshotState.PENDING,
    "ApiPending": SnapshotState.PENDING,
    "PreSubmitted": SnapshotState.RESTING,
    "Submitted": SnapshotState.WORKING,
    "PendingCancel": SnapshotState.WORKING,
    "Filled": SnapshotState.FILLED,
    "Cancelled": SnapshotState.CANCELLED,
    "ApiCancelled": SnapshotState.CANCELLED,
    "Inactive": SnapshotState.REJECTED,
}
_FINAL = frozenset({SnapshotState.FILLED, SnapshotState.CANCELLED, SnapshotState.REJECTED})

#: Error codes about an order that never mean it was refused: cancel confirmations
#: and cancel failures (202, 10147, 10148, 161), order warnings (399, 404), notices.
_NOT_REFUSALS = frozenset({161, 202, 399, 404, 10147, 10148, 10167, 10197})
_REJECTED_ALWAYS = frozenset({201})
_CANCEL_UNKNOWN = 10147
_CANCEL_DONE = 10148


def _is_notice(code: int) -> bool:
    return code in _NOT_REFUSALS or 2100 <= code < 2200 or 1100 <= code <= 1102


# ----------------------------------------------------------------------------- conversions


def ib_price(credit: Decimal) -> float:
    """IB's BAG limit for a positive credit: -credit, rounded half-up to $0.01."""
    return -float(cents(credit))


def _credit_of(lmt_price: object) -> Decimal | None:
    """A positive credit from IB's signed BAG limit (None when unset)."""
    price = _figure(lmt_price)
    return None if price is None else cents(-price)


def _figure(value: object) -> Decimal | None:
    """A number IB sent, or None when absent, unparseable or IB's max-double sentinel."""
    number: Decimal
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = Decimal(repr(value))
    elif isinstance(value, (int, Decimal)):
        number = Decimal(value)
    else:
        return None
    if not number.is_finite() or abs(number) >= _SENTINEL_FLOOR:
        return None
    return number


def _quote_side(price: float | None, size: float | None) -> Decimal | None:
    """One side of a leg's quote: None for NaN, IB's -1 'no price', or a zero size."""
    if price is None or size is None or not math.isfinite(price) or not math.isfinite(size):
        return None
    if price < 0 or size <= 0:
        return None
    return Decimal(repr(price))


def _avg(value: Decimal) -> Decimal:
    return value.quantize(_AVG_PLACES, rounding=ROUND_HALF_UP)


def margin_check_from(state: OrderState, available_funds: Decimal | None) -> MarginCheck:
    """A whatIf reply as a MarginCheck. Any of the margin changes or the commission
    missing, empty or IB's 1.7976931348623157E308 sentinel -> complete=False (the
    caller asks again or gives up; it never guesses)."""
    init = _figure(state.initMarginChange)
    maint = _figure(state.maintMarginChange)
    commission = _figure(state.commission)
    complete = init is not None and maint is not None and commission is not None
    return MarginCheck(
        complete=complete,
        init_margin_change=init,
        maint_margin_change=maint,
        commission=commission,
        available_funds=available_funds,
    )


def _ib_status(trade: Trade) -> str:
    """IB's latest status of the order, ignoring the statuses ib_async makes up."""
    for entry in reversed(trade.log):
        if entry.errorCode == 0 and entry.status not in _LOCAL_ONLY:
            return str(entry.status)
    status = str(trade.orderStatus.status)
    # An order whose only news since it was listed is a warning is still live.
    return "Submitted" if status in _LOCAL_ONLY else status


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class _OrderError:
    seq: int
    code: int
    text: str
    acknowledged: bool  # had IB acknowledged the order when the error came?

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.text}"


@dataclass
class _Tracked:
    """One of our orders: the live ib_async Trade and IB's errors about it."""

    ref: str
    trade: Trade
    account: str
    errors: list[_OrderError] = field(default_factory=list)


@dataclass(frozen=True)
class _IbView:
    """One read of IB's order state (reconcile)."""

    open: list[Trade]
    completed: list[Trade]
    executions: list[Fill]


# ----------------------------------------------------------------------------- the adapter


class IBBroker:
    """The Broker port on one IB Gateway connection (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        *,
        accounts: list[str] | None = None,
        dry_run: bool = False,
        timeout: float = 10.0,
        ib: IB | None = None,
        clock: Clock | None = None,
        pacing_per_second: int | None = 45,
    ) -> None:
        """`accounts`: the accounts this connection may trade (None: any account the
        login manages); with exactly one, orders naming no account use it.
        `timeout`: seconds for each request or acknowledgement. `ib`: an ib_async IB
        to use (its client gets the dry-run guard too). `clock`: dates quotes.
        `pacing_per_second`: messages per second this connection sends at most (IB
        disconnects above 50); ib_async's client queues the excess. None: no
        throttle, only for a simulator on a simulated clock, where a trading day
        passes in seconds and a wall-clock message rate means nothing."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if pacing_per_second is not None and not 1 <= pacing_per_second <= 50:
            raise ValueError(f"pacing_per_second must be 1..50, got {pacing_per_second}")
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.accounts = list(accounts) if accounts is not None else None
        self.timeout = float(timeout)
        self._clock = clock
        self._ib = ib if ib is not None else IB()
        # Small bursts at the same rate: 45 at once every second leaves no room for
        # jitter (IB counts arrivals within any second: a burst arriving 50 ms late runs
        # into the next one, 90 "within a second", error 100); at most 10 within any
        # 10/45 s tolerates ~150 ms.
        if pacing_per_second is None:
            self._ib.client.MaxRequests = 0  # ib_async: 0 disables its throttle
        else:
            burst = min(_PACING_BURST, pacing_per_second)
            self._ib.client.MaxRequests = burst
            interval: Any = burst / pacing_per_second  # seconds; ib_async annotates int
            self._ib.client.RequestsInterval = interval
        self._pacing = pacing_per_second or 1000
        self._dry_run = False
        self._connects = 0
        self._orders: dict[str, _Tracked] = {}
        self._ref_by_order_id: dict[int, str] = {}
        self._frozen: dict[str, OrderSnapshot] = {}  # dry-run records, executions-only finds
        self._con_ids: dict[tuple[str, Decimal, str], int] = {}
        self._contracts: dict[int, Contract] = {}
        self._stock: Contract | None = None  # QQQ, qualified once (risk quotes, flatten)
        self._request_errors: dict[int, tuple[int, str]] = {}
        self._last_global_error: tuple[int, str] | None = None
        self._error_seq = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._queued_read: asyncio.Task[_IbView] | None = None
        self._running_read: asyncio.Task[_IbView] | None = None
        self._locks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}
        ib_ = self._ib
        ib_.errorEvent += self._on_error
        ib_.orderStatusEvent += self._on_event
        ib_.openOrderEvent += self._on_event
        ib_.execDetailsEvent += self._on_event
        ib_.commissionReportEvent += self._on_event
        ib_.disconnectedEvent += self._on_event
        ib_.connectedEvent += self._on_event
        self.dry_run = dry_run

    # ------------------------------------------------------------------ properties

    @property
    def dry_run(self) -> bool:
        """True: whatIf only, nothing routed (enforced here and in the ib_async client)."""
        return self._dry_run

    @dry_run.setter
    def dry_run(self, value: bool) -> None:
        if self._dry_run and not value:
            raise ValueError("dry-run cannot be switched off on a broker: make a new IBBroker")
        if value and not self._dry_run:
            self._guard_client()
        self._dry_run = bool(value)

    @property
    def ib(self) -> IB:
        """The ib_async IB (connection events for the agent); a dry-run one cannot route."""
        return self._ib

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} clientId {self.client_id}"

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Connect (ib_async also loads positions, orders, executions, account values).
        Orders this instance already knew are re-bound to the new session's trades."""
        if self.is_connected():
            return
        self._connects += 1  # a new session from here: what the old one showed may be stale
        self._last_global_error = None
        try:
            await self._ib.connectAsync(
                self.host, self.port, clientId=self.client_id, timeout=self.timeout
            )
        except Exception as exc:
            last = self._last_global_error
            code = last[0] if last else None
            detail = f" ({last[0]}: {last[1]})" if last else ""
            raise BrokerError(
                f"cannot connect to the IB Gateway at {self.where}: {exc!r}{detail}", code=code
            ) from exc
        managed = self._ib.managedAccounts()
        if self.accounts is not None:
            foreign = [a for a in self.accounts if a not in managed]
            if foreign:
                log.warning(
                    "%s: configured accounts %s are not managed by this login (%s); "
                    "their orders will not be sent",
                    self.where,
                    ",".join(foreign),
                    ",".join(managed),
                )
        self._rebind()
        log.info("connected to %s, accounts %s", self.where, ",".join(managed))

    async def disconnect(self) -> None:
        self._ib.disconnect()
        self._notify()

    def is_connected(self) -> bool:
        return bool(self._ib.isConnected())

    async def ping(self) -> datetime:
        """One cheap round trip (reqCurrentTime): IB's time, or BrokerError when the
        gateway does not answer (a hung gateway keeps its socket open)."""
        answer: datetime = await self._request(self._ib.reqCurrentTimeAsync, "reqCurrentTime")
        return answer

    @property
    def connection_epoch(self) -> int:
        """Connection attempts so far: a ladder seeing it change knows the connection
        dropped (and maybe came back) under it, so it reconciles before going on."""
        return self._connects

    # ------------------------------------------------------------------ contracts and quotes

    async def qualify(self, spread: VerticalSpread, expiry: str) -> Legs:
        """QQQ 0DTE option legs on SMART in USD; conIds cached per (expiry, strike, right)."""
        if len(expiry) != 8 or not expiry.isdigit():
            raise ValueError(f"expiry must be YYYYMMDD, got {expiry!r}")
        right = spread.right
        strikes = [spread.short_strike, spread.long_strike]
        missing = [s for s in strikes if (expiry, s, right) not in self._con_ids]
        if missing:
            # Followers qualifying at once wait for the first one's answer: one request
            # per signal, not one per follower (500 followers would send 1000 at 45/s).
            async with self._shared_lock("qualify"):
                missing = [s for s in strikes if (expiry, s, right) not in self._con_ids]
                if missing:
                    await self._qualify_strikes(spread, expiry, missing)
        return Legs(
            spread=spread,
            expiry=expiry,
            short_con_id=self._con_ids[expiry, spread.short_strike, right],
            long_con_id=self._con_ids[expiry, spread.long_strike, right],
        )

    async def _qualify_strikes(
        self, spread: VerticalSpread, expiry: str, missing: list[Decimal]
    ) -> None:
        right = spread.right
        contracts = [
            Option(SYMBOL, expiry, float(s), right, EXCHANGE, currency=CURRENCY) for s in missing
        ]
        results = await self._request(
            lambda: self._ib.qualifyContractsAsync(*contracts, returnAll=True),
            f"qualify {spread.describe()} {expiry}",
        )
        for strike, contract, result in zip(missing, contracts, results, strict=True):
            name = f"{SYMBOL} {expiry} {strike:f}{right}"
            if isinstance(result, list):
                raise BrokerError(f"{name} is ambiguous at IB ({len(result)} contracts)")
            if result is None or not contract.conId:
                raise BrokerError(
                    f"200: No security definition has been found for {name} "
                    f"(strike {strike:f} is not listed for {expiry})",
                    code=200,
                )
            self._con_ids[expiry, strike, right] = contract.conId
            self._contracts[contract.conId] = contract

    async def quote(self, legs: Legs) -> SpreadQuote:
        """Both legs in one snapshot request; a side without a price is None."""
        short, long_ = await self._leg_contracts(legs)
        tickers: list[Ticker] = await self._request(
            lambda: self._ib.reqTickersAsync(short, long_),
            f"quote {legs.spread.describe()}",
        )
        by_con_id = {t.contract.conId: t for t in tickers if t.contract is not None}
        ts, tl = by_con_id.get(legs.short_con_id), by_con_id.get(legs.long_con_id)
        return SpreadQuote(
            at=self._now(),
            short_bid=_quote_side(ts.bid, ts.bidSize) if ts else None,
            short_ask=_quote_side(ts.ask, ts.askSize) if ts else None,
            long_bid=_quote_side(tl.bid, tl.bidSize) if tl else None,
            long_ask=_quote_side(tl.ask, tl.askSize) if tl else None,
        )

    # ------------------------------------------------------------------ margin

    async def what_if(
        self, legs: Legs, account: str, quantity: int, credit: Decimal
    ) -> MarginCheck:
        """IB's whatIf of the BAG at -credit, plus the account's AvailableFunds.

        An incomplete reply (unset figures, commission sentinel) is complete=False;
        no complete reply within `timeout`, or IB's refusal, is a BrokerError."""
        _check_order(quantity, credit)
        resolved, refusal = self._resolve_account(account)
        if refusal is not None:
            raise BrokerError(refusal)
        order = self._limit_order(resolved, quantity, credit, order_ref="")
        order.whatIf = True
        bag = self._bag(legs)
        what = f"whatIf {legs.spread.describe()} x{quantity} at credit {cents(credit)}"
        if not self.is_connected():
            raise BrokerError(f"{what}: not connected to {self.where}")
        client = self._ib.client
        start_req = cast(Callable[..., "asyncio.Future[Any]"], self._ib.wrapper.startReq)
        send = cast(Callable[..., None], client.placeOrder)
        req_id = int(client.getReqId())
        # ib_async's whatIfOrderAsync, with the request id kept to find IB's error.
        future = start_req(req_id, bag)
        limit = self._paced_timeout()
        send(req_id, bag, order)
        try:
            result = await asyncio.wait_for(future, limit)
        except TimeoutError as exc:
            raise BrokerError(f"{what}: no complete whatIf reply within {limit:g} s") from exc
        except ConnectionError as exc:
            raise BrokerError(f"{what}: connection lost ({exc})") from exc
        if not isinstance(result, OrderState):
            code, text = self._request_errors.pop(req_id, (None, "no reason given"))
            raise BrokerError(f"{what} refused: {code}: {text}", code=code)
        funds = await self._available_funds(resolved)
        return margin_check_from(result, funds)

    async def _available_funds(self, account: str) -> Decimal | None:
        def pick(values: Iterable[Any]) -> Decimal | None:
            for v in values:
                if (
                    v.account == account
                    and v.tag == "AvailableFunds"
                    and v.currency in (CURRENCY, "BASE")
                    and not v.modelCode
                ):
                    return _figure(v.value)
            return None

        funds = pick(self._ib.accountValues(account))
        if funds is not None:
            return funds
        try:
            # ib_async loads the summary once (a subscription) on the first call; callers
            # at the same time wait for it rather than each subscribing again.
            async with self._shared_lock("account summary"):
                summary = await self._request(
                    lambda: self._ib.accountSummaryAsync(account), f"account summary of {account}"
                )
        except BrokerError as exc:
            log.warning("%s: AvailableFunds of %s unknown: %s", self.where, account, exc)
            return None
        return pick(summary)

    # ------------------------------------------------------------------ orders

    async def place(
        self, legs: Legs, account: str, quantity: int, credit: Decimal, order_ref: str
    ) -> OrderSnapshot:
        """BUY the BAG at -credit (DAY, orderRef, account); returns once IB acknowledged
        it or refused it (REJECTED, reason "<code>: <text>"). Dry-run: whatIf only."""
        _check_order(quantity, credit)
        if not order_ref:
            raise ValueError("an order needs its orderRef (the business key)")
        limit = cents(credit)
        resolved, refusal = self._resolve_account(account)
        if self._dry_run:
            check = await self.what_if(legs, account, quantity, limit)
            log.info(
                "DRY-RUN %s: not routed; whatIf init margin %s, commission %s",
                order_ref,
                check.init_margin_change,
                check.commission,
            )
            snap = self._not_sent(order_ref, resolved, quantity, limit, DRY_RUN_REASON)
            self._frozen[order_ref] = snap
            return snap
        if refusal is not None:
            return self._not_sent(order_ref, resolved, quantity, limit, f"not sent: {refusal}")
        known = self._known(order_ref)
        if known is not None:
            raise BrokerError(
                f"{order_ref} is already at IB ({known}): not placed a second time; "
                "reconcile and modify it instead"
            )
        if not self.is_connected():
            raise BrokerError(f"place {order_ref}: not connected to {self.where}; nothing sent")
        order = self._limit_order(resolved, quantity, limit, order_ref)
        trade = self._ib.placeOrder(self._bag(legs), order)
        tracked = _Tracked(order_ref, trade, resolved)
        self._orders[order_ref] = tracked
        self._ref_by_order_id[int(trade.order.orderId)] = order_ref
        log.info(
            "placed %s: BUY %d %s at %.2f (credit %s) for %s, orderId %s",
            order_ref,
            quantity,
            legs.spread.describe(),
            order.lmtPrice,
            limit,
            resolved,
            trade.order.orderId,
        )
        return await self._acknowledged(tracked, "place")

    async def _acknowledged(self, tracked: _Tracked, what: str) -> OrderSnapshot:
        """Wait for IB to acknowledge a new order or to refuse it (and say why)."""
        trade, order_ref = tracked.trade, tracked.ref
        try:
            await self._wait_until(
                lambda: self._rejection(tracked) is not None or _ib_status(trade) in _ACKNOWLEDGED,
                f"{what} {order_ref}",
            )
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}; the order may be at IB: reconcile before anything else"
            ) from exc
        if _ib_status(trade) == "Inactive" and self._rejection(tracked) is None:
            # IB sends the status first, then the error that says why.
            with contextlib.suppress(BrokerError):
                await self._wait_until(
                    lambda: self._rejection(tracked) is not None,
                    f"reason for {order_ref}",
                    timeout=min(self.timeout, _REJECTION_GRACE_SECONDS),
                )
        return self._snapshot(tracked)

    async def modify(self, order_ref: str, credit: Decimal) -> OrderSnapshot:
        """Re-place the same order (same orderId) at the new credit; returns once IB
        echoed the new limit. A refusal (e.g. 110) keeps the old price: BrokerError(code)."""
        if credit <= 0:
            raise ValueError(f"credit must be positive, got {credit}")
        if self._dry_run:
            return self._dry_record(order_ref)
        tracked = self._tracked(order_ref)
        snap = self._snapshot(tracked)
        if snap.state in _FINAL:
            return snap
        trade = tracked.trade
        self._check_ours(trade, "modify")
        if _ib_status(trade) == "PendingCancel" or trade.isDone():
            raise BrokerError(
                f"modify {order_ref}: a cancel is pending ({trade.orderStatus.status}); "
                "not modified"
            )
        limit = cents(credit)
        price = ib_price(limit)
        if trade.order.lmtPrice == price:
            return snap
        if not self.is_connected():
            raise BrokerError(f"modify {order_ref}: not connected to {self.where}; nothing sent")
        if not trade.contract.comboLegs:
            raise BrokerError(f"modify {order_ref}: IB's record of the order has no combo legs")
        old = snap.credit
        changed = copy.copy(trade.order)
        changed.lmtPrice = price
        changed.transmit = True
        mark = self._error_seq
        self._ib.placeOrder(trade.contract, changed)
        log.info("modify %s: credit %s -> %s", order_ref, old, limit)

        def refusal() -> _OrderError | None:
            return next(
                (e for e in tracked.errors if e.seq > mark and not _is_notice(e.code)), None
            )

        await self._wait_until(
            lambda: (
                trade.order.lmtPrice == price or refusal() is not None or _ib_status(trade) in _DONE
            ),
            f"modify {order_ref} to credit {limit}",
        )
        refused = refusal()
        snap = self._snapshot(tracked)
        if refused is not None and snap.state not in _FINAL and trade.order.lmtPrice != price:
            raise BrokerError(
                f"modify {order_ref} to credit {limit} refused by IB ({refused.reason}); "
                f"the order keeps working at credit {snap.credit}",
                code=refused.code,
            )
        return snap

    async def cancel(self, order_ref: str) -> OrderSnapshot:
        """Cancel and wait for IB's Cancelled (or Filled if the fill won the race)."""
        if self._dry_run:
            return self._dry_record(order_ref)
        tracked = self._tracked(order_ref)
        snap = self._snapshot(tracked)
        if snap.state in _FINAL:
            return snap
        trade = tracked.trade
        self._check_ours(trade, "cancel")
        if not self.is_connected():
            raise BrokerError(f"cancel {order_ref}: not connected to {self.where}; nothing sent")
        mark = self._error_seq
        self._ib.cancelOrder(trade.order)
        log.info("cancel %s (orderId %s)", order_ref, trade.order.orderId)

        def unknown() -> _OrderError | None:
            return next(
                (e for e in tracked.errors if e.seq > mark and e.code == _CANCEL_UNKNOWN), None
            )

        try:
            await self._wait_until(
                lambda: _ib_status(trade) in _DONE or unknown() is not None,
                f"cancel {order_ref}",
            )
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}: the cancel is not confirmed, the order may be working"
            ) from exc
        missing = unknown()
        if missing is not None and _ib_status(trade) not in _DONE:
            raise BrokerError(
                f"cancel {order_ref}: IB does not know the order ({missing.reason})",
                code=missing.code,
            )
        return self._snapshot(tracked)

    def snapshot(self, order_ref: str) -> OrderSnapshot | None:
        tracked = self._orders.get(order_ref)
        if tracked is not None:
            return self._snapshot(tracked)
        return self._frozen.get(order_ref)

    # ------------------------------------------------------------------ risk (issue 5)

    def managed_accounts(self) -> list[str]:
        """The accounts this login manages (empty while not connected / not logged in)."""
        if not self.is_connected():
            return []
        return [str(a) for a in self._ib.managedAccounts()]

    async def positions(self) -> list[Position]:
        """Every non-zero position of the login, read fresh (reqPositions), not the
        stream ib_async keeps: an overnight assignment arrives with no event."""
        async with self._shared_lock("positions"):
            rows: list[Any] = await self._request(self._ib.reqPositionsAsync, "positions")
        out: list[Position] = []
        for row in rows:
            c = row.contract
            qty = _figure(row.position)
            if qty is None or qty == 0:
                continue
            option = str(c.secType) in ("OPT", "FOP")
            out.append(
                Position(
                    account=str(row.account),
                    con_id=int(c.conId),
                    sec_type=str(c.secType),
                    symbol=str(c.symbol),
                    quantity=int(qty),
                    avg_cost=_figure(row.avgCost),
                    expiry=str(c.lastTradeDateOrContractMonth or "")[:8] if option else "",
                    strike=_strike(c.strike) if option else None,
                    right=_right(str(c.right)) if option else "",
                )
            )
        return out

    async def market_quotes(self, con_ids: Sequence[int]) -> MarketQuotes:
        """QQQ and the options `con_ids` in one snapshot request (reqTickers)."""
        stock = await self._underlying()
        contracts = await self._contracts_of(list(dict.fromkeys(con_ids)))
        tickers: list[Ticker] = await self._request(
            lambda: self._ib.reqTickersAsync(stock, *contracts), f"quotes of {len(contracts)} legs"
        )
        by_con_id = {t.contract.conId: t for t in tickers if t.contract is not None}

        def quote(t: Ticker | None) -> Quote | None:
            if t is None:
                return None
            last = _figure(t.last)
            return Quote(
                bid=_quote_side(t.bid, t.bidSize),
                ask=_quote_side(t.ask, t.askSize),
                last=last if last is not None and last > 0 else None,
            )

        options = {c: q for c in con_ids if (q := quote(by_con_id.get(c))) is not None}
        return MarketQuotes(
            at=self._now(), underlying=quote(by_con_id.get(stock.conId)), options=options
        )

    async def available_funds(self, account: str) -> Decimal | None:
        """The account's AvailableFunds (None when IB did not say)."""
        return await self._available_funds(account)

    async def executions(self) -> list[ExecutionFill]:
        """Today's executions of every account and client of the login (reqExecutions
        with an empty filter), legs only: a BAG-level execution repeats its legs."""
        async with self._shared_lock("executions"):
            fills: list[Fill] = await self._request(self._ib.reqExecutionsAsync, "executions")
        # a commission report updates the Fill ib_async saw first for that execId, not
        # the copy a later reqExecutions answer carries
        known = self._ib.wrapper.fills
        return [
            _execution_fill(known.get(str(f.execution.execId), f))
            for f in _unique(fills)
            if f.contract.secType != "BAG"
        ]

    async def close_spread(
        self,
        legs: Legs,
        account: str,
        quantity: int,
        order_ref: str,
        max_debit: Decimal | None = None,
    ) -> OrderSnapshot:
        """SELL the BAG (long leg sold, short leg bought back, 1:1, one order): MKT, or
        LMT at -max_debit (IB's sign: a SELL of the credit BAG at -d pays at most d).
        Dry-run: nothing routed (a REJECTED record with DRY_RUN_REASON)."""
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity}")
        resolved, refusal = self._resolve_account(account)
        order: Order
        if max_debit is None:
            order = MarketOrder("SELL", quantity, tif="DAY")
            how = "market"
        else:
            limit = cents(max_debit)
            if limit <= 0:
                raise ValueError(f"max_debit must be at least $0.01, got {max_debit}")
            order = LimitOrder("SELL", quantity, -float(limit), tif="DAY")
            how = f"limit, debit at most {limit}"
        what = f"close {legs.spread.describe()} x{quantity} ({how})"
        return await self._send_new(self._bag(legs), order, order_ref, resolved, refusal, what)

    async def close_stock(self, account: str, position: int, order_ref: str) -> OrderSnapshot:
        """A QQQ market order that brings `position` shares to zero (SELL a long, BUY a short)."""
        if position == 0:
            raise ValueError("nothing to flatten: position is 0")
        resolved, refusal = self._resolve_account(account)
        stock = await self._underlying()
        order = MarketOrder("SELL" if position > 0 else "BUY", abs(position), tif="DAY")
        what = f"flatten {position} {SYMBOL} shares"
        return await self._send_new(stock, order, order_ref, resolved, refusal, what)

    async def _send_new(
        self,
        contract: Contract,
        order: Order,
        order_ref: str,
        account: str,
        refusal: str | None,
        what: str,
    ) -> OrderSnapshot:
        """Route one new non-ladder order (closes, flattens) like `place`: dry-run and
        refusals never route, a known orderRef is never sent twice, and it returns once
        IB acknowledged or refused it."""
        if not order_ref:
            raise ValueError("an order needs its orderRef (the business key)")
        quantity = int(order.totalQuantity)
        if self._dry_run:
            log.info("DRY-RUN %s: %s not routed", order_ref, what)
            snap = replace(
                self._not_sent(order_ref, account, quantity, Decimal(1), DRY_RUN_REASON),
                credit=None,
            )
            self._frozen[order_ref] = snap
            return snap
        if refusal is not None:
            return replace(
                self._not_sent(order_ref, account, quantity, Decimal(1), f"not sent: {refusal}"),
                credit=None,
            )
        known = self._known(order_ref)
        if known is not None:
            raise BrokerError(f"{order_ref} is already at IB ({known}): not sent a second time")
        if not self.is_connected():
            raise BrokerError(f"{what} {order_ref}: not connected to {self.where}; nothing sent")
        order.orderRef = order_ref
        order.account = account
        order.transmit = True
        trade = self._ib.placeOrder(contract, order)
        tracked = _Tracked(order_ref, trade, account)
        self._orders[order_ref] = tracked
        self._ref_by_order_id[int(trade.order.orderId)] = order_ref
        log.info("placed %s: %s for %s, orderId %s", order_ref, what, account, trade.order.orderId)
        return await self._acknowledged(tracked, what)

    async def _underlying(self) -> Contract:
        """QQQ stock on SMART, qualified once per broker."""
        if self._stock is None:
            async with self._shared_lock("qualify"):
                if self._stock is None:
                    stock = Stock(SYMBOL, EXCHANGE, CURRENCY)
                    results = await self._request(
                        lambda: self._ib.qualifyContractsAsync(stock), f"qualify {SYMBOL} stock"
                    )
                    if not results or not isinstance(results[0], Contract) or not stock.conId:
                        raise BrokerError(f"200: no security definition for {SYMBOL}", code=200)
                    self._stock = stock
                    self._contracts[stock.conId] = stock
        return self._stock

    async def _contracts_of(self, con_ids: list[int]) -> list[Contract]:
        """Contracts by conId (qualified once, cached)."""
        missing = [c for c in con_ids if c not in self._contracts]
        if missing:
            contracts = [Contract(conId=c, exchange=EXCHANGE) for c in missing]
            results = await self._request(
                lambda: self._ib.qualifyContractsAsync(*contracts), "qualify legs by conId"
            )
            for con_id, result in zip(missing, results, strict=True):
                if not isinstance(result, Contract):
                    raise BrokerError(f"200: no contract with conId {con_id}", code=200)
                self._contracts[con_id] = result
        return [self._contracts[c] for c in con_ids]

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, order_refs: list[str]) -> Reconciliation:
        """IB's open orders (all clients), completed orders and executions, by orderRef.
        Any of them unanswered in time, or no connection: ReconcileUnknown."""
        view = await self._shared_read()
        found: dict[str, OrderSnapshot] = {}
        for ref in dict.fromkeys(order_refs):
            snap = self._adopt(ref, view)
            if snap is not None:
                found[ref] = snap
        return Reconciliation(found=found)

    async def _shared_read(self) -> _IbView:
        """Join the next read of IB: callers arriving while one runs share the one after
        it (a read that began before the call might predate what the caller looks for)."""
        loop = asyncio.get_running_loop()
        queued = self._queued_read
        if queued is None or queued.get_loop() is not loop:
            running = self._running_read
            previous = running if running is not None and running.get_loop() is loop else None
            queued = loop.create_task(self._read_after(previous))
            self._queued_read = queued
        return await asyncio.shield(queued)

    async def _read_after(self, previous: asyncio.Task[_IbView] | None) -> _IbView:
        if previous is not None:
            await asyncio.wait([previous])
        me = asyncio.current_task()
        assert me is not None
        self._queued_read = None
        self._running_read = me
        try:
            return await self._read_ib()
        finally:
            if self._running_read is me:
                self._running_read = None

    async def _read_ib(self) -> _IbView:
        try:
            # Open and completed orders are answered without a request id: a late answer
            # to an earlier request that timed out (ours, or ib_async's at connect) would
            # be taken for the answer to this one. IB answers in order, so once this
            # barrier is answered, every earlier answer has arrived and gone.
            await self._request(self._ib.reqCurrentTimeAsync, "reconcile: barrier")
            open_trades: list[Trade] = await self._request(
                self._ib.reqAllOpenOrdersAsync, "reconcile: open orders"
            )
            completed: list[Trade] = await self._request(
                lambda: self._ib.reqCompletedOrdersAsync(False), "reconcile: completed orders"
            )
            executions: list[Fill] = await self._request(
                self._ib.reqExecutionsAsync, "reconcile: executions"
            )
        except BrokerError as exc:
            raise ReconcileUnknown(f"{exc}: IB's orders are unknown", code=exc.code) from exc
        return _IbView(list(open_trades), list(completed), list(executions))

    def _adopt(self, ref: str, view: _IbView) -> OrderSnapshot | None:
        live = [t for t in view.open if t.order.orderRef == ref]
        done = [t for t in view.completed if t.order.orderRef == ref]
        tracked = self._orders.get(ref)
        if len(live) + len({t.order.permId for t in done if t.order.permId}) > 1:
            log.warning("%s: several IB orders carry orderRef %s", self.where, ref)
        trade = live[-1] if live else max(done, key=lambda t: t.order.permId, default=None)
        if trade is None:
            if tracked is not None and self._snapshot(tracked).state is SnapshotState.REJECTED:
                return self._snapshot(tracked)  # refused before IB kept any record
            fills = _unique(
                f for f in [*view.executions, *self._ib.fills()] if f.execution.orderRef == ref
            )
            if fills:
                snap = self._from_executions(ref, fills)
                self._frozen[ref] = snap
                return snap
            return None
        perm = trade.order.permId
        same = tracked is not None and perm and tracked.trade.order.permId == perm
        if tracked is None or not same:
            tracked = _Tracked(ref, trade, str(trade.order.account))
            self._orders[ref] = tracked
        elif live:
            tracked.trade = trade  # the Trade ib_async keeps updating
        if live and trade.order.clientId == self.client_id:
            self._ref_by_order_id[int(trade.order.orderId)] = ref
        return self._snapshot(tracked)

    def _from_executions(self, ref: str, fills: list[Fill]) -> OrderSnapshot:
        legs = tuple(_leg_fill(f) for f in fills if f.contract.secType != "BAG")
        bag = sum(int(f.execution.shares) for f in fills if f.contract.secType == "BAG")
        per_leg: dict[int, int] = {}
        for leg in legs:
            per_leg[leg.con_id] = per_leg.get(leg.con_id, 0) + leg.quantity
        filled = max(bag, min(per_leg.values(), default=0))
        first = fills[0].execution
        return OrderSnapshot(
            order_ref=ref,
            account=str(first.acctNumber),
            order_id=int(first.orderId),
            perm_id=int(first.permId),
            state=SnapshotState.FILLED,
            quantity=filled,
            filled=filled,
            credit=None,
            avg_fill_credit=_legs_credit(legs),
            fills=legs,
            reason="found only in today's executions (not in open or completed orders)",
        )

    # ------------------------------------------------------------------ snapshots

    def _snapshot(self, tracked: _Tracked) -> OrderSnapshot:
        trade = tracked.trade
        status = _ib_status(trade)
        fills = self._fills_of(trade, tracked.ref)
        legs = tuple(_leg_fill(f) for f in fills if f.contract.secType != "BAG")
        filled = self._filled(trade, fills, legs)
        rejection = self._rejection(tracked)
        reason = ""
        if rejection is not None and status != "Filled":
            state = SnapshotState.REJECTED if filled == 0 else SnapshotState.CANCELLED
            reason = rejection.reason
        else:
            state = _STATE.get(status, SnapshotState.PENDING)
            if status == "Inactive":
                why = str(trade.orderStatus.whyHeld or "")
                reason = f"Inactive: {why or 'IB gave no reason'}"
            else:
                refused = [e for e in tracked.errors if not _is_notice(e.code)]
                reason = refused[-1].reason if refused else ""
        order = trade.order
        return OrderSnapshot(
            order_ref=tracked.ref,
            account=str(order.account or tracked.account),
            order_id=int(order.orderId or 0),
            perm_id=int(order.permId or trade.orderStatus.permId or 0),
            state=state,
            quantity=int(_figure(order.totalQuantity) or 0),
            filled=filled,
            credit=_credit_of(order.lmtPrice),
            avg_fill_credit=self._avg_fill_credit(trade, legs, fills, filled),
            fills=legs,
            reason=reason,
        )

    def _fills_of(self, trade: Trade, ref: str) -> list[Fill]:
        """Executions of this order (by permId, else orderRef), newest commission data."""
        perm = trade.order.permId
        known = self._ib.wrapper.fills

        def mine(f: Fill) -> bool:
            ex = f.execution
            return bool(ex.permId == perm) if perm else bool(ex.orderRef == ref)

        picked = _unique(f for f in [*trade.fills, *self._ib.fills()] if mine(f))
        return [known.get(f.execution.execId, f) for f in picked]

    @staticmethod
    def _filled(trade: Trade, fills: list[Fill], legs: tuple[LegFill, ...]) -> int:
        counts = [_figure(trade.orderStatus.filled), _figure(trade.order.filledQuantity)]
        best = max((int(c) for c in counts if c is not None), default=0)
        bag = sum(int(f.execution.shares) for f in fills if f.contract.secType == "BAG")
        combo = trade.contract.comboLegs or []
        if combo:
            per_leg = [
                sum(leg.quantity for leg in legs if leg.con_id == c.conId) // max(1, int(c.ratio))
                for c in combo
            ]
            best = max(best, min(per_leg))
        return max(best, bag)

    @staticmethod
    def _avg_fill_credit(
        trade: Trade, legs: tuple[LegFill, ...], fills: list[Fill], filled: int
    ) -> Decimal | None:
        if filled <= 0:
            return None
        status = trade.orderStatus
        average = _figure(status.avgFillPrice)
        if average is not None and average != 0 and (_figure(status.filled) or 0) > 0:
            return _avg(-average)
        from_legs = _legs_credit(legs)
        if from_legs is not None:
            return from_legs
        bag = [f for f in fills if f.contract.secType == "BAG" and f.execution.shares]
        if bag:
            shares = sum((Decimal(repr(f.execution.shares)) for f in bag), Decimal(0))
            value = sum(
                (Decimal(repr(f.execution.price)) * Decimal(repr(f.execution.shares)) for f in bag),
                Decimal(0),
            )
            return _avg(-value / shares)
        return None

    def _rejection(self, tracked: _Tracked) -> _OrderError | None:
        """IB refused the order itself: 201 at any time, or any other error before IB
        acknowledged it."""
        for error in tracked.errors:
            if error.code in _REJECTED_ALWAYS or (
                not error.acknowledged and not _is_notice(error.code)
            ):
                return error
        return None

    def _tracked(self, order_ref: str) -> _Tracked:
        tracked = self._orders.get(order_ref)
        if tracked is None:
            raise BrokerError(
                f"{order_ref}: no such order in this session (place it, or reconcile first)"
            )
        return tracked

    def _dry_record(self, order_ref: str) -> OrderSnapshot:
        snap = self._frozen.get(order_ref)
        if snap is None:
            raise BrokerError(f"dry-run: no order {order_ref} (nothing is ever routed)")
        return snap

    def _known(self, order_ref: str) -> str | None:
        """How this session already knows the orderRef at IB, if it does."""
        tracked = self._orders.get(order_ref)
        if tracked is not None:
            return f"orderId {tracked.trade.order.orderId}, {_ib_status(tracked.trade)}"
        if order_ref in self._frozen and self._frozen[order_ref].reason != DRY_RUN_REASON:
            return "in today's executions"
        for trade in self._ib.trades():
            if trade.order.orderRef == order_ref:
                return f"permId {trade.order.permId}, {trade.orderStatus.status}"
        if any(f.execution.orderRef == order_ref for f in self._ib.fills()):
            return "in today's executions"
        return None

    def _not_sent(
        self, order_ref: str, account: str, quantity: int, credit: Decimal, reason: str
    ) -> OrderSnapshot:
        return OrderSnapshot(
            order_ref=order_ref,
            account=account,
            order_id=0,
            perm_id=0,
            state=SnapshotState.REJECTED,
            quantity=quantity,
            filled=0,
            credit=credit,
            avg_fill_credit=None,
            reason=reason,
        )

    # ------------------------------------------------------------------ helpers

    def _resolve_account(self, account: str) -> tuple[str, str | None]:
        """(account to use, why the order may not be sent or None)."""
        managed = self._ib.managedAccounts()
        allowed = self.accounts if self.accounts is not None else managed
        if not account:
            if len(allowed) == 1:
                return allowed[0], None
            return "", (
                "the order names no account and this connection serves several "
                f"({', '.join(allowed) or 'none known'}): every order must name its account"
            )
        if self.accounts is not None and account not in self.accounts:
            return account, f"account {account} is not configured for {self.where}"
        if managed and account not in managed:
            return account, (
                f"account {account} is not managed by this IB login ({', '.join(managed)})"
            )
        return account, None

    @staticmethod
    def _bag(legs: Legs) -> Contract:
        """The credit vertical as IB's BAG: BUY the long leg, SELL the short leg, 1:1."""
        return Contract(
            secType="BAG",
            symbol=SYMBOL,
            exchange=EXCHANGE,
            currency=CURRENCY,
            comboLegs=[
                ComboLeg(conId=legs.long_con_id, ratio=1, action="BUY", exchange=EXCHANGE),
                ComboLeg(conId=legs.short_con_id, ratio=1, action="SELL", exchange=EXCHANGE),
            ],
        )

    @staticmethod
    def _limit_order(account: str, quantity: int, credit: Decimal, order_ref: str) -> LimitOrder:
        """The one place a positive credit becomes IB's negative BAG price."""
        return LimitOrder(
            "BUY",
            quantity,
            ib_price(credit),
            tif="DAY",
            orderRef=order_ref,
            account=account,
            transmit=True,
        )

    async def _leg_contracts(self, legs: Legs) -> tuple[Contract, Contract]:
        missing = [c for c in (legs.short_con_id, legs.long_con_id) if c not in self._contracts]
        if missing:
            contracts = [Contract(conId=c, exchange=EXCHANGE) for c in missing]
            results = await self._request(
                lambda: self._ib.qualifyContractsAsync(*contracts), "qualify legs by conId"
            )
            for con_id, result in zip(missing, results, strict=True):
                if not isinstance(result, Contract):
                    raise BrokerError(f"200: no contract with conId {con_id}", code=200)
                self._contracts[con_id] = result
        return self._contracts[legs.short_con_id], self._contracts[legs.long_con_id]

    def _check_ours(self, trade: Trade, action: str) -> None:
        owner = int(trade.order.clientId)
        if owner != self.client_id:
            raise BrokerError(
                f"{action} {trade.order.orderRef}: the order belongs to clientId {owner}, "
                f"this connection is clientId {self.client_id} (IB binds orders to their client)"
            )

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    async def _request(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        """One bounded request: BrokerError(code=None) when not answered in time."""
        if not self.is_connected():
            raise BrokerError(f"{what}: not connected to {self.where}")
        limit = self._paced_timeout()
        try:
            return await asyncio.wait_for(make(), limit)
        except TimeoutError as exc:
            raise BrokerError(f"{what}: no answer from IB within {limit:g} s") from exc
        except ConnectionError as exc:
            raise BrokerError(f"{what}: connection lost ({exc})") from exc

    async def _wait_until(
        self, done: Callable[[], bool], what: str, timeout: float | None = None
    ) -> None:
        """Wait for `done()` (re-checked on every ib_async event and every 0.1 s)."""
        loop = asyncio.get_running_loop()
        limit = self._paced_timeout() if timeout is None else timeout
        deadline = loop.time() + limit
        while not done():
            if not self.is_connected():
                raise BrokerError(f"{what}: the connection to {self.where} was lost")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerError(f"{what}: no answer from IB within {limit:g} s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, min(remaining, _RECHECK_SECONDS))
            finally:
                self._waiters.discard(waiter)

    def _paced_timeout(self) -> float:
        """`timeout` plus the time the messages queued by ib_async's pacing throttle need
        to go out: IB cannot answer a request still waiting in our own queue (500
        followers' whatIfs and orders queue for 20 s at 45/s, longer than `timeout`)."""
        queued = len(getattr(self._ib.client, "_msgQ", ()))
        return self.timeout + queued / self._pacing

    def _shared_lock(self, name: str) -> asyncio.Lock:
        """This event loop's lock `name`: concurrent callers of a one-time read take turns,
        and the later ones find the first one's answer cached (no request of their own)."""
        loop = asyncio.get_running_loop()
        held = self._locks.get(name)
        if held is None or held[0] is not loop:
            held = self._locks[name] = (loop, asyncio.Lock())
        return held[1]

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)

    def _rebind(self) -> None:
        """After a (re)connect: point known orders at the new session's Trades."""
        self._ref_by_order_id.clear()
        trades = self._ib.trades()
        for ref, tracked in list(self._orders.items()):
            if _ib_status(tracked.trade) in _DONE or self._rejection(tracked) is not None:
                continue  # done: what we hold stays true
            perm = tracked.trade.order.permId
            match = next(
                (
                    t
                    for t in trades
                    if (perm and t.order.permId == perm) or (not perm and t.order.orderRef == ref)
                ),
                None,
            )
            if match is None:
                log.warning("%s: %s not found after reconnect: reconcile it", self.where, ref)
                del self._orders[ref]
                continue
            tracked.trade = match
            if int(match.order.clientId) == self.client_id:
                self._ref_by_order_id[int(match.order.orderId)] = ref

    def _guard_client(self) -> None:
        """Dry-run below the adapter: the ib_async client refuses to route anything."""
        client = self._ib.client
        place = cast(Callable[..., None], client.placeOrder)

        def guarded_place(order_id: int, contract: Contract, order: Any) -> None:
            if not getattr(order, "whatIf", False):
                raise BrokerError(
                    f"dry-run: refusing to route order {order_id} ({order.orderRef or 'no ref'})"
                )
            place(order_id, contract, order)

        def refuse(*_: Any, **__: Any) -> None:
            raise BrokerError("dry-run: refusing to cancel or exercise (nothing is routed)")

        client.placeOrder = guarded_place  # type: ignore[method-assign]
        client.cancelOrder = refuse  # type: ignore[method-assign]
        client.reqGlobalCancel = refuse  # type: ignore[method-assign]
        client.exerciseOptions = refuse  # type: ignore[method-assign]

    # ------------------------------------------------------------------ ib_async events

    def _on_error(self, req_id: int, code: int, text: str, *_: Any) -> None:
        ref = self._ref_by_order_id.get(req_id) if req_id > 0 else None
        tracked = self._orders.get(ref) if ref is not None else None
        if tracked is not None:
            self._error_seq += 1
            acknowledged = _ib_status(tracked.trade) not in _PENDING
            tracked.errors.append(_OrderError(self._error_seq, code, text, acknowledged))
            level = logging.INFO if _is_notice(code) else logging.WARNING
            log.log(level, "%s: IB %d on %s: %s", self.where, code, ref, text)
        elif req_id > 0:
            self._request_errors[req_id] = (code, text)
            while len(self._request_errors) > _MAX_REQUEST_ERRORS:
                del self._request_errors[next(iter(self._request_errors))]
        else:
            self._last_global_error = (code, text)
        self._notify()

    def _on_event(self, *_: Any) -> None:
        self._notify()


# ----------------------------------------------------------------------------- module helpers


def _check_order(quantity: int, credit: Decimal) -> None:
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    if credit <= 0 or cents(credit) <= 0:
        raise ValueError(f"credit must be at least $0.01, got {credit}")


def _strike(value: object) -> Decimal | None:
    """A strike as IB sends it (float) -> Decimal without a spurious '.0' (600, 598.5)."""
    number = _figure(value)
    if number is None:
        return None
    whole = number == number.to_integral_value()
    return number.quantize(Decimal(1)) if whole else number.normalize()


def _right(value: str) -> str:
    text = value.strip().upper()
    return {"CALL": "C", "PUT": "P"}.get(text, text)


def _unique(fills: Iterable[Fill]) -> list[Fill]:
    seen: dict[str, Fill] = {}
    for f in fills:
        seen.setdefault(str(f.execution.execId), f)
    return sorted(seen.values(), key=lambda f: str(f.execution.execId))


def _leg_fill(f: Fill) -> LegFill:
    ex, report = f.execution, f.commissionReport
    commission = _figure(report.commission) if report.execId else None
    moment = ex.time if isinstance(ex.time, datetime) else f.time
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return LegFill(
        exec_id=str(ex.execId),
        con_id=int(f.contract.conId),
        side=str(ex.side),
        quantity=int(ex.shares),
        price=Decimal(repr(float(ex.price))),
        commission=commission,
        time=moment,
    )


def _execution_fill(f: Fill) -> ExecutionFill:
    leg, c = _leg_fill(f), f.contract
    option = str(c.secType) in ("OPT", "FOP")
    size = _figure(c.multiplier)
    return ExecutionFill(
        exec_id=leg.exec_id,
        account=str(f.execution.acctNumber),
        at=leg.time,
        con_id=leg.con_id,
        sec_type=str(c.secType),
        symbol=str(c.symbol),
        expiry=str(c.lastTradeDateOrContractMonth or "")[:8] if option else "",
        strike=_strike(c.strike) if option else None,
        right=_right(str(c.right)) if option else "",
        multiplier=int(size) if size else (100 if option else 1),
        side=leg.side,
        quantity=leg.quantity,
        price=leg.price,
        commission=leg.commission,
        order_ref=str(f.execution.orderRef or ""),
    )


def _legs_credit(legs: tuple[LegFill, ...]) -> Decimal | None:
    """Average credit from the legs: average SLD price - average BOT price (ratio 1)."""
    totals: dict[tuple[int, str], tuple[Decimal, int]] = {}
    for leg in legs:
        value, qty = totals.get((leg.con_id, leg.side), (Decimal(0), 0))
        totals[leg.con_id, leg.side] = (value + leg.price * leg.quantity, qty + leg.quantity)
    if not totals or {side for _, side in totals} != {"BOT", "SLD"}:
        return None
    credit = Decimal(0)
    for (_, side), (value, qty) in totals.items():
        average = value / qty
        credit += average if side == "SLD" else -average
    return _avg(credit)
