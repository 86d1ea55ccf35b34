"""Order and contract messages, mirroring ib_async 2.1's own encoder and decoder.

ib_async's `Client.placeOrder` and `Decoder.openOrder` / `completedOrder` /
`execDetails` / `commissionReport` are the specification: a field out of
place shifts every later field, and the client then reads garbage without
an error. So every function here follows ib_async's code line by line,
version gates included (faProfile < 177; duration 158/159, postToAts 160,
autoCancelParent 162, advancedErrorOverride 166, manualOrderTime 169,
peg/minTradeQty 170, pendingPriceRevision 178).

Decoders take the fields after the message id, as text, and return ib_async
dataclasses typed as ib_async's own Decoder would (floats, UNSET_DOUBLE for
empty numbers). Encoders return the fields *including* the message id, all
already rendered as wire text (str), ready for `session.send(*fields)`;
unset numbers go out empty, except where IB sends the max-double sentinel
(OrderState margins and commissions, commission report PnL/yield).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, overload
from zoneinfo import ZoneInfo

from ib_async.contract import ComboLeg, Contract, DeltaNeutralContract, TagValue
from ib_async.objects import CommissionReport, Execution, ExecutionFilter, SoftDollarTier
from ib_async.order import (
    ExecutionCondition,
    MarginCondition,
    Order,
    OrderComboLeg,
    OrderCondition,
    OrderState,
    PercentChangeCondition,
    PriceCondition,
    TimeCondition,
    VolumeCondition,
)
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER

from ibsim import SERVER_VERSION

__all__ = [
    "BAG_CON_ID",
    "MAX_DOUBLE_TEXT",
    "CodecError",
    "OrderRecordLike",
    "combo_legs_descrip",
    "decode_cancel_order",
    "decode_place_order",
    "decode_req_completed_orders",
    "decode_req_executions",
    "encode_commission_report",
    "encode_completed_order",
    "encode_completed_orders_end",
    "encode_exec_details",
    "encode_exec_details_end",
    "encode_open_order",
    "encode_open_order_end",
    "encode_order_status",
    "encode_record_completed_order",
    "encode_record_open_order",
    "encode_record_status",
    "ib_time",
    "text",
    "to_decimal",
]

MAX_DOUBLE_TEXT = "1.7976931348623157E308"
"""How IB (Java) writes Double.MAX_VALUE, its "unset" for many numbers."""

BAG_CON_ID = 28812380
"""The conId IB gives every BAG contract in openOrder/execDetails."""

IB_TIME_ZONE = "America/New_York"
"""Zone name appended to execution times; ib_async's parseIBDatetime loads it with
ZoneInfo. IB itself writes the legacy alias "US/Eastern", which minimal tzdata
installs may lack, so the canonical name is used (as ibsim.wire.ib_datetime)."""

# Message ids (numeric on purpose: this module must not depend on ibsim.wire).
_OPEN_ORDER = 5
_ORDER_STATUS = 3
_EXEC_DETAILS = 11
_COMMISSION_REPORT = 59
_OPEN_ORDER_END = 53
_EXEC_DETAILS_END = 55
_COMPLETED_ORDER = 101
_COMPLETED_ORDERS_END = 102

Num = Decimal | float | int


class CodecError(ValueError):
    """A message that does not match ib_async's field layout.

    `position` is the index in the field list given to the decoder (the
    fields after the message id), `field` the name of the field being read.
    """

    def __init__(self, message: str, position: int, field: str, reason: str) -> None:
        self.message = message
        self.position = position
        self.field = field
        self.reason = reason
        super().__init__(f"{message}: field #{position} ({field}): {reason}")


# ---------------------------------------------------------------- wire text


def text(value: object) -> str:
    """Render one field the way ib_async's Client.send does (unset -> empty).

    Decimals and floats get their shortest exact text ("1", "-0.75"). The
    infinite double is "Infinity" as IB (Java) writes it: ib_async's decoder
    reads it with float(), which rejects the "Infinite" its own client sends.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE:
            return ""
        if value == math.inf:
            return "Infinity"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send non-finite Decimal {value}")
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    if isinstance(value, str):
        return value
    return str(value)


def _max_text(value: object) -> str:
    """Like `text`, but unset numbers are IB's max-double sentinel."""
    if value is None or value == "" or (isinstance(value, float) and value == UNSET_DOUBLE):
        return MAX_DOUBLE_TEXT
    return text(value)


def to_decimal(value: object) -> Decimal | None:
    """A price or quantity from an ib_async dataclass as Decimal; None when unset.

    Floats go through their shortest repr, so -0.75 becomes Decimal("-0.75").
    """
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return None if value == UNSET_INTEGER else Decimal(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE or not math.isfinite(value):
            return None
        return Decimal(repr(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def ib_time(moment: datetime) -> str:
    """An aware time as IB writes execution times: 'YYYYMMDD HH:MM:SS <New York zone>'."""
    if moment.tzinfo is None:
        raise ValueError("execution time must be timezone-aware")
    local = moment.astimezone(ZoneInfo(IB_TIME_ZONE))
    return local.strftime("%Y%m%d %H:%M:%S ") + IB_TIME_ZONE


def combo_legs_descrip(legs: Sequence[ComboLeg]) -> str:
    """IB's comboLegsDescrip for a BAG: 'conId|ratio' per leg, SELL legs negative."""
    return ",".join(
        f"{leg.conId}|{-leg.ratio if leg.action == 'SELL' else leg.ratio}" for leg in legs
    )


# ---------------------------------------------------------------- decoding


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type) -> dict[str, Any]:
    """Scalar defaults of a dataclass: their type drives parsing (as Decoder.parse)."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING
        }
        _DEFAULTS[cls] = found
    return found


def _to_float(raw: str) -> float:
    """float(), plus ib_async's "Infinite" (Client.send's text for math.inf)."""
    if raw == "Infinite":
        return math.inf
    return float(raw)


class _Reader:
    """Sequential reader over a message's fields with positioned errors."""

    def __init__(self, fields: Sequence[str], message: str) -> None:
        self.fields = fields
        self.message = message
        self.pos = 0

    def error(self, name: str, reason: str, position: int | None = None) -> CodecError:
        return CodecError(self.message, self.pos if position is None else position, name, reason)

    def raw(self, name: str) -> str:
        if self.pos >= len(self.fields):
            raise self.error(name, f"message ends after {len(self.fields)} fields")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def _convert(self, name: str, raw: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(name, f"bad value {raw!r} ({exc})", self.pos - 1) from None

    def str_(self, name: str) -> str:
        return self.raw(name)

    def int_(self, name: str, default: int = 0) -> int:
        raw = self.raw(name)
        return default if raw == "" else int(self._convert(name, raw, int))

    def float_(self, name: str, default: float = UNSET_DOUBLE) -> float:
        raw = self.raw(name)
        return default if raw == "" else float(self._convert(name, raw, _to_float))

    def bool_(self, name: str, default: bool = False) -> bool:
        raw = self.raw(name)
        return default if raw == "" else bool(self._convert(name, raw, int))

    def count(self, name: str) -> int:
        n = self.int_(name)
        if n < 0:
            raise self.error(name, f"negative count {n}", self.pos - 1)
        return n

    def into(self, obj: object, attr: str, prefix: str = "") -> None:
        """Read one field into obj.attr, typed by the dataclass default like Decoder.parse."""
        name = prefix + attr
        default = _defaults(type(obj)).get(attr, "")
        if isinstance(default, bool):
            value: Any = self.bool_(name, default)
        elif isinstance(default, int):
            value = self.int_(name, default)
        elif isinstance(default, float):
            value = self.float_(name, default)
        else:
            value = self.str_(name)
        setattr(obj, attr, value)

    def many(self, obj: object, attrs: Sequence[str], prefix: str = "") -> None:
        for attr in attrs:
            self.into(obj, attr, prefix)

    def tag_values(self, name: str) -> list[TagValue]:
        return [
            TagValue(self.str_(f"{name}[{i}].tag"), self.str_(f"{name}[{i}].value"))
            for i in range(self.count(f"{name}.count"))
        ]

    def end(self) -> None:
        if self.pos != len(self.fields):
            extra = len(self.fields) - self.pos
            raise self.error(
                "end of message",
                f"{extra} unexpected trailing field(s): {list(self.fields[self.pos :])[:5]!r}",
            )


_CONTRACT_SENT = (
    "conId",
    "symbol",
    "secType",
    "lastTradeDateOrContractMonth",
    "strike",
    "right",
    "multiplier",
    "exchange",
    "primaryExchange",
    "currency",
    "localSymbol",
    "tradingClass",
)
"""Client.send expands a Contract to these 12 fields."""

_LEG_FIELDS = (
    "conId",
    "ratio",
    "action",
    "exchange",
    "openClose",
    "shortSaleSlot",
    "designatedLocation",
    "exemptCode",
)


_CONDITIONS: dict[int, type[OrderCondition]] = {
    1: PriceCondition,
    3: TimeCondition,
    4: MarginCondition,
    5: ExecutionCondition,
    6: VolumeCondition,
    7: PercentChangeCondition,
}
"""OrderCondition.createClass's table."""


def _read_condition(r: _Reader, index: int) -> OrderCondition:
    """One condition as ib_async sends it: dataclassAsTuple(cond), condType first."""
    name = f"conditions[{index}]"
    cond_type = r.int_(f"{name}.condType")
    cls = _CONDITIONS.get(cond_type)
    if cls is None:
        raise r.error(f"{name}.condType", f"unknown condition type {cond_type}", r.pos - 1)
    cond: OrderCondition = cls()
    for f in dataclasses.fields(cls)[1:]:
        r.into(cond, f.name, f"{name}.")
    return cond


def _misc_options(raw: str) -> list[TagValue]:
    """orderMiscOptions travel as one 'tag=value;tag=value;' field."""
    out = []
    for item in raw.split(";"):
        if item:
            tag, _, value = item.partition("=")
            out.append(TagValue(tag, value))
    return out


def decode_place_order(
    fields: Sequence[str], server_version: int = SERVER_VERSION
) -> tuple[int, Contract, Order]:
    """placeOrder (3): the fields after the message id, as ib_async's Client.placeOrder wrote them.

    Returns (orderId, contract, order); order.orderId is set too. Raises
    CodecError for a short message, a bad number or trailing fields.
    """
    r = _Reader(fields, "placeOrder")
    order_id = r.int_("orderId")
    c = Contract()
    o = Order()
    o.orderId = order_id
    r.many(c, _CONTRACT_SENT, "contract.")
    r.many(c, ("secIdType", "secId"), "contract.")
    r.many(
        o,
        (
            "action",
            "totalQuantity",
            "orderType",
            "lmtPrice",
            "auxPrice",
            "tif",
            "ocaGroup",
            "account",
            "openClose",
            "origin",
            "orderRef",
            "transmit",
            "parentId",
            "blockOrder",
            "sweepToFill",
            "displaySize",
            "triggerMethod",
            "outsideRth",
            "hidden",
        ),
    )

    if c.secType == "BAG":
        c.comboLegs = []
        for i in range(r.count("comboLegs.count")):
            leg = ComboLeg()
            r.many(leg, _LEG_FIELDS, f"comboLegs[{i}].")
            c.comboLegs.append(leg)
        o.orderComboLegs = []
        for i in range(r.count("orderComboLegs.count")):
            price = OrderComboLeg()
            r.into(price, "price", f"orderComboLegs[{i}].")
            o.orderComboLegs.append(price)
        o.smartComboRoutingParams = r.tag_values("smartComboRoutingParams")

    r.str_("sharesAllocation")  # deprecated, always empty
    r.many(
        o,
        (
            "discretionaryAmt",
            "goodAfterTime",
            "goodTillDate",
            "faGroup",
            "faMethod",
            "faPercentage",
        ),
    )
    if server_version < 177:
        r.into(o, "faProfile")
    r.many(
        o,
        (
            "modelCode",
            "shortSaleSlot",
            "designatedLocation",
            "exemptCode",
            "ocaType",
            "rule80A",
            "settlingFirm",
            "allOrNone",
            "minQty",
            "percentOffset",
            "eTradeOnly",
            "firmQuoteOnly",
            "nbboPriceCap",
            "auctionStrategy",
            "startingPrice",
            "stockRefPrice",
            "delta",
            "stockRangeLower",
            "stockRangeUpper",
            "overridePercentageConstraints",
            "volatility",
            "volatilityType",
            "deltaNeutralOrderType",
            "deltaNeutralAuxPrice",
        ),
    )
    if o.deltaNeutralOrderType:
        r.many(
            o,
            (
                "deltaNeutralConId",
                "deltaNeutralSettlingFirm",
                "deltaNeutralClearingAccount",
                "deltaNeutralClearingIntent",
                "deltaNeutralOpenClose",
                "deltaNeutralShortSale",
                "deltaNeutralShortSaleSlot",
                "deltaNeutralDesignatedLocation",
            ),
        )
    r.many(
        o,
        (
            "continuousUpdate",
            "referencePriceType",
            "trailStopPrice",
            "trailingPercent",
            "scaleInitLevelSize",
            "scaleSubsLevelSize",
            "scalePriceIncrement",
        ),
    )
    if 0 < float(o.scalePriceIncrement) < UNSET_DOUBLE:
        r.many(
            o,
            (
                "scalePriceAdjustValue",
                "scalePriceAdjustInterval",
                "scaleProfitOffset",
                "scaleAutoReset",
                "scaleInitPosition",
                "scaleInitFillQty",
                "scaleRandomPercent",
            ),
        )
    r.many(o, ("scaleTable", "activeStartTime", "activeStopTime", "hedgeType"))
    if o.hedgeType:
        r.into(o, "hedgeParam")
    r.many(o, ("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld"))

    if r.bool_("deltaNeutralContract.present"):
        c.deltaNeutralContract = DeltaNeutralContract(
            r.int_("deltaNeutralContract.conId"),
            r.float_("deltaNeutralContract.delta", 0.0),
            r.float_("deltaNeutralContract.price", 0.0),
        )

    r.into(o, "algoStrategy")
    if o.algoStrategy:
        o.algoParams = r.tag_values("algoParams")
    r.many(o, ("algoId", "whatIf"))
    o.orderMiscOptions = _misc_options(r.str_("orderMiscOptions"))
    r.many(o, ("solicited", "randomizeSize", "randomizePrice"))

    if o.orderType in {"PEG BENCH", "PEGBENCH"}:
        r.many(
            o,
            (
                "referenceContractId",
                "isPeggedChangeAmountDecrease",
                "peggedChangeAmount",
                "referenceChangeAmount",
                "referenceExchangeId",
            ),
        )

    n_conditions = r.count("conditions.count")
    if n_conditions:
        o.conditions = [_read_condition(r, i) for i in range(n_conditions)]
        r.many(o, ("conditionsIgnoreRth", "conditionsCancelOrder"))

    r.many(
        o,
        (
            "adjustedOrderType",
            "triggerPrice",
            "lmtPriceOffset",
            "adjustedStopPrice",
            "adjustedStopLimitPrice",
            "adjustedTrailingAmount",
            "adjustableTrailingUnit",
            "extOperator",
        ),
    )
    o.softDollarTier = SoftDollarTier(
        r.str_("softDollarTier.name"), r.str_("softDollarTier.val"), ""
    )
    r.many(
        o,
        (
            "cashQty",
            "mifid2DecisionMaker",
            "mifid2DecisionAlgo",
            "mifid2ExecutionTrader",
            "mifid2ExecutionAlgo",
            "dontUseAutoPriceForHedge",
            "isOmsContainer",
            "discretionaryUpToLimitPrice",
            "usePriceMgmtAlgo",
        ),
    )
    if server_version >= 158:
        r.into(o, "duration")
    if server_version >= 160:
        r.into(o, "postToAts")
    if server_version >= 162:
        r.into(o, "autoCancelParent")
    if server_version >= 166:
        r.into(o, "advancedErrorOverride")
    if server_version >= 169:
        r.into(o, "manualOrderTime")
    if server_version >= 170:
        if c.exchange == "IBKRATS":
            r.into(o, "minTradeQty")
        if o.orderType in {"PEG BEST", "PEGBEST"}:
            r.many(o, ("minCompeteSize", "competeAgainstBestOffset"))
            if o.competeAgainstBestOffset == math.inf:
                r.many(o, ("midOffsetAtWhole", "midOffsetAtHalf"))
        elif o.orderType in {"PEG MID", "PEGMID"}:
            r.many(o, ("midOffsetAtWhole", "midOffsetAtHalf"))
    r.end()
    return order_id, c, o


def decode_cancel_order(
    fields: Sequence[str], server_version: int = SERVER_VERSION
) -> tuple[int, str]:
    """cancelOrder (4): (orderId, manualCancelOrderTime) from `4, 1, orderId[, time]`."""
    r = _Reader(fields, "cancelOrder")
    r.str_("version")
    order_id = r.int_("orderId")
    manual_time = r.str_("manualCancelOrderTime") if server_version >= 169 else ""
    r.end()
    return order_id, manual_time


def decode_req_executions(fields: Sequence[str]) -> tuple[int, ExecutionFilter]:
    """reqExecutions (7): (reqId, filter) from `7, 3, reqId, clientId, acct, time, ...`."""
    r = _Reader(fields, "reqExecutions")
    r.str_("version")
    req_id = r.int_("reqId")
    flt = ExecutionFilter()
    r.many(flt, ("clientId", "acctCode", "time", "symbol", "secType", "exchange", "side"))
    r.end()
    return req_id, flt


def decode_req_completed_orders(fields: Sequence[str]) -> bool:
    """reqCompletedOrders (99): apiOnly; ib_async sends no version field here."""
    r = _Reader(fields, "reqCompletedOrders")
    api_only = r.bool_("apiOnly")
    r.end()
    return api_only


# ---------------------------------------------------------------- encoding


def _contract_fields(c: Contract) -> list[str]:
    """The 11 contract fields openOrder/completedOrder/execDetails carry (no primaryExchange).

    A BAG placed with conId 0 comes back with IB's combo conId, as IB does.
    """
    con_id = c.conId or (BAG_CON_ID if c.secType == "BAG" else 0)
    return [
        text(con_id),
        text(c.symbol),
        text(c.secType),
        text(c.lastTradeDateOrContractMonth),
        text(c.strike),
        text(c.right),
        text(c.multiplier),
        text(c.exchange),
        text(c.currency),
        text(c.localSymbol),
        text(c.tradingClass),
    ]


def _combo_fields(c: Contract, o: Order) -> list[str]:
    """comboLegsDescrip, legs, order leg prices, smart combo routing params."""
    legs = c.comboLegs or []
    descrip = c.comboLegsDescrip or (combo_legs_descrip(legs) if c.secType == "BAG" else "")
    out = [descrip, text(len(legs))]
    for leg in legs:
        out += [text(getattr(leg, name)) for name in _LEG_FIELDS]
    prices = o.orderComboLegs or []
    out.append(text(len(prices)))
    out += [text(p.price) for p in prices]
    params = o.smartComboRoutingParams or []
    out.append(text(len(params)))
    for p in params:
        out += [text(p.tag), text(p.value)]
    return out


def _scale_hedge_fields(o: Order) -> list[str]:
    out = [text(o.scaleInitLevelSize), text(o.scaleSubsLevelSize), text(o.scalePriceIncrement)]
    if 0 < float(o.scalePriceIncrement) < UNSET_DOUBLE:
        out += [
            text(o.scalePriceAdjustValue),
            text(o.scalePriceAdjustInterval),
            text(o.scaleProfitOffset),
            text(o.scaleAutoReset),
            text(o.scaleInitPosition),
            text(o.scaleInitFillQty),
            text(o.scaleRandomPercent),
        ]
    out.append(text(o.hedgeType))
    if o.hedgeType:
        out.append(text(o.hedgeParam))
    return out


def _dnc_algo_fields(c: Contract, o: Order) -> list[str]:
    dnc = c.deltaNeutralContract
    out = ["1", text(dnc.conId), text(dnc.delta), text(dnc.price)] if dnc else ["0"]
    out.append(text(o.algoStrategy))
    if o.algoStrategy:
        params = o.algoParams or []
        out.append(text(len(params)))
        for p in params:
            out += [text(p.tag), text(p.value)]
    return out


def _peg_bench_conditions(o: Order) -> list[str]:
    out: list[str] = []
    if o.orderType in {"PEG BENCH", "PEGBENCH"}:
        out += [
            text(o.referenceContractId),
            text(o.isPeggedChangeAmountDecrease),
            text(o.peggedChangeAmount),
            text(o.referenceChangeAmount),
            text(o.referenceExchangeId),
        ]
    out.append(text(len(o.conditions)))
    if o.conditions:
        for cond in o.conditions:
            out += [text(getattr(cond, f.name)) for f in dataclasses.fields(cond)]
        out += [text(o.conditionsIgnoreRth), text(o.conditionsCancelOrder)]
    return out


def _peg_170(o: Order) -> list[str]:
    return [
        text(o.minTradeQty),
        text(o.minCompeteSize),
        text(o.competeAgainstBestOffset),
        text(o.midOffsetAtWhole),
        text(o.midOffsetAtHalf),
    ]


def _open_order_fields(
    order_id: int,
    client_id: int,
    perm_id: int,
    c: Contract,
    o: Order,
    st: OrderState,
    status: str,
    v: int,
) -> list[object]:
    """Decoder.openOrder's reading order, field for field."""
    out: list[object] = [_OPEN_ORDER, text(order_id), *_contract_fields(c)]
    out += [
        text(o.action),
        text(o.totalQuantity),
        text(o.orderType),
        text(o.lmtPrice),
        text(o.auxPrice),
        text(o.tif),
        text(o.ocaGroup),
        text(o.account),
        text(o.openClose),
        text(o.origin),
        text(o.orderRef),
        text(client_id),
        text(perm_id),
        text(o.outsideRth),
        text(o.hidden),
        text(o.discretionaryAmt),
        text(o.goodAfterTime),
        "",  # sharesAllocation (deprecated)
        text(o.faGroup),
        text(o.faMethod),
        text(o.faPercentage),
    ]
    if v < 177:
        out.append(text(o.faProfile))
    out += [
        text(o.modelCode),
        text(o.goodTillDate),
        text(o.rule80A),
        text(o.percentOffset),
        text(o.settlingFirm),
        text(o.shortSaleSlot),
        text(o.designatedLocation),
        text(o.exemptCode),
        text(o.auctionStrategy),
        text(o.startingPrice),
        text(o.stockRefPrice),
        text(o.delta),
        text(o.stockRangeLower),
        text(o.stockRangeUpper),
        text(o.displaySize),
        text(o.blockOrder),
        text(o.sweepToFill),
        text(o.allOrNone),
        text(o.minQty),
        text(o.ocaType),
        text(o.eTradeOnly),
        text(o.firmQuoteOnly),
        text(o.nbboPriceCap),
        text(o.parentId),
        text(o.triggerMethod),
        text(o.volatility),
        text(o.volatilityType),
        text(o.deltaNeutralOrderType),
        text(o.deltaNeutralAuxPrice),
    ]
    if o.deltaNeutralOrderType:
        out += [
            text(o.deltaNeutralConId),
            text(o.deltaNeutralSettlingFirm),
            text(o.deltaNeutralClearingAccount),
            text(o.deltaNeutralClearingIntent),
            text(o.deltaNeutralOpenClose),
            text(o.deltaNeutralShortSale),
            text(o.deltaNeutralShortSaleSlot),
            text(o.deltaNeutralDesignatedLocation),
        ]
    out += [
        text(o.continuousUpdate),
        text(o.referencePriceType),
        text(o.trailStopPrice),
        text(o.trailingPercent),
        text(o.basisPoints),
        text(o.basisPointsType),
    ]
    out += _combo_fields(c, o)
    out += _scale_hedge_fields(o)
    out += [
        text(o.optOutSmartRouting),
        text(o.clearingAccount),
        text(o.clearingIntent),
        text(o.notHeld),
    ]
    out += _dnc_algo_fields(c, o)
    out += [
        text(o.solicited),
        text(o.whatIf),
        text(status),
        _max_text(st.initMarginBefore),
        _max_text(st.maintMarginBefore),
        _max_text(st.equityWithLoanBefore),
        _max_text(st.initMarginChange),
        _max_text(st.maintMarginChange),
        _max_text(st.equityWithLoanChange),
        _max_text(st.initMarginAfter),
        _max_text(st.maintMarginAfter),
        _max_text(st.equityWithLoanAfter),
        _max_text(st.commission),
        _max_text(st.minCommission),
        _max_text(st.maxCommission),
        text(st.commissionCurrency),
        text(st.warningText),
        text(o.randomizeSize),
        text(o.randomizePrice),
    ]
    out += _peg_bench_conditions(o)
    sdt = o.softDollarTier or SoftDollarTier()
    out += [
        text(o.adjustedOrderType),
        text(o.triggerPrice),
        text(o.trailStopPrice),
        text(o.lmtPriceOffset),
        text(o.adjustedStopPrice),
        text(o.adjustedStopLimitPrice),
        text(o.adjustedTrailingAmount),
        text(o.adjustableTrailingUnit),
        text(sdt.name),
        text(sdt.val),
        text(sdt.displayName),
        text(o.cashQty),
        text(o.dontUseAutoPriceForHedge),
        text(o.isOmsContainer),
        text(o.discretionaryUpToLimitPrice),
        text(o.usePriceMgmtAlgo),
    ]
    if v >= 159:
        out.append(text(o.duration))
    if v >= 160:
        out.append(text(o.postToAts))
    if v >= 162:
        out.append(text(o.autoCancelParent))
    if v >= 170:
        out += _peg_170(o)
    return out


class OrderRecordLike(Protocol):
    """What the record helpers read of an engine OrderRecord (duck-typed)."""

    @property
    def order_id(self) -> int: ...
    @property
    def client_id(self) -> int: ...
    @property
    def perm_id(self) -> int: ...
    @property
    def contract(self) -> Contract: ...
    @property
    def order(self) -> Order: ...
    @property
    def order_state(self) -> OrderState: ...
    @property
    def status(self) -> str: ...
    @property
    def filled(self) -> Num: ...
    @property
    def remaining(self) -> Num: ...
    @property
    def avg_fill_price(self) -> Num: ...
    @property
    def last_fill_price(self) -> Num: ...
    @property
    def why_held(self) -> str: ...


@overload
def encode_open_order(
    record: OrderRecordLike, server_version: int = SERVER_VERSION, /
) -> list[object]: ...
@overload
def encode_open_order(
    order_id: int,
    contract: Contract,
    order: Order,
    order_state: OrderState,
    server_version: int = SERVER_VERSION,
    /,
) -> list[object]: ...
def encode_open_order(*args: Any) -> list[object]:
    """openOrder (5), exactly as Decoder.openOrder reads it.

    Either `(record, server_version)` with an engine OrderRecord, or
    `(order_id, contract, order, order_state, server_version)`; then the
    order's own clientId/permId and the state's status are sent.
    """
    if args and not isinstance(args[0], int):
        return encode_record_open_order(*args)
    order_id, contract, order, state, *rest = args
    v = rest[0] if rest else SERVER_VERSION
    return _open_order_fields(
        order_id, order.clientId, order.permId, contract, order, state, state.status, v
    )


def encode_record_open_order(
    record: OrderRecordLike, server_version: int = SERVER_VERSION
) -> list[object]:
    """openOrder (5) for an engine record: its ids, and record.status as the state's status."""
    return _open_order_fields(
        record.order_id,
        record.client_id,
        record.perm_id,
        record.contract,
        record.order,
        record.order_state,
        record.status or record.order_state.status,
        server_version,
    )


def _completed_order_fields(
    perm_id: int,
    c: Contract,
    o: Order,
    st: OrderState,
    status: str,
    filled: object,
    v: int,
) -> list[object]:
    """Decoder.completedOrder's reading order (no orderId, no clientId: IB sends neither)."""
    out: list[object] = [_COMPLETED_ORDER, *_contract_fields(c)]
    out += [
        text(o.action),
        text(o.totalQuantity),
        text(o.orderType),
        text(o.lmtPrice),
        text(o.auxPrice),
        text(o.tif),
        text(o.ocaGroup),
        text(o.account),
        text(o.openClose),
        text(o.origin),
        text(o.orderRef),
        text(perm_id),
        text(o.outsideRth),
        text(o.hidden),
        text(o.discretionaryAmt),
        text(o.goodAfterTime),
        text(o.faGroup),
        text(o.faMethod),
        text(o.faPercentage),
    ]
    if v < 177:
        out.append(text(o.faProfile))
    out += [
        text(o.modelCode),
        text(o.goodTillDate),
        text(o.rule80A),
        text(o.percentOffset),
        text(o.settlingFirm),
        text(o.shortSaleSlot),
        text(o.designatedLocation),
        text(o.exemptCode),
        text(o.startingPrice),
        text(o.stockRefPrice),
        text(o.delta),
        text(o.stockRangeLower),
        text(o.stockRangeUpper),
        text(o.displaySize),
        text(o.sweepToFill),
        text(o.allOrNone),
        text(o.minQty),
        text(o.ocaType),
        text(o.triggerMethod),
        text(o.volatility),
        text(o.volatilityType),
        text(o.deltaNeutralOrderType),
        text(o.deltaNeutralAuxPrice),
    ]
    if o.deltaNeutralOrderType:
        out += [
            text(o.deltaNeutralConId),
            text(o.deltaNeutralShortSale),
            text(o.deltaNeutralShortSaleSlot),
            text(o.deltaNeutralDesignatedLocation),
        ]
    out += [
        text(o.continuousUpdate),
        text(o.referencePriceType),
        text(o.trailStopPrice),
        text(o.trailingPercent),
    ]
    out += _combo_fields(c, o)
    out += _scale_hedge_fields(o)
    out += [text(o.clearingAccount), text(o.clearingIntent), text(o.notHeld)]
    out += _dnc_algo_fields(c, o)
    out += [text(o.solicited), text(status), text(o.randomizeSize), text(o.randomizePrice)]
    out += _peg_bench_conditions(o)
    out += [
        text(o.trailStopPrice),
        text(o.lmtPriceOffset),
        text(o.cashQty),
        text(o.dontUseAutoPriceForHedge),
        text(o.isOmsContainer),
        text(o.autoCancelDate),
        text(filled),
        text(o.refFuturesConId),
        text(o.autoCancelParent),
        text(o.shareholder),
        text(o.imbalanceOnly),
        text(o.routeMarketableToBbo),
        text(o.parentPermId),
        text(st.completedTime),
        text(st.completedStatus),
    ]
    if v >= 170:
        out += _peg_170(o)
    return out


@overload
def encode_completed_order(
    record: OrderRecordLike, server_version: int = SERVER_VERSION, /
) -> list[object]: ...
@overload
def encode_completed_order(
    contract: Contract,
    order: Order,
    order_state: OrderState,
    server_version: int = SERVER_VERSION,
    /,
) -> list[object]: ...
def encode_completed_order(*args: Any) -> list[object]:
    """completedOrder (101), exactly as Decoder.completedOrder reads it.

    `(contract, order, order_state[, server_version])` sends order.permId,
    order.filledQuantity and the state's status/completedTime/completedStatus;
    `(record[, server_version])` takes permId, status and filled from the record.
    """
    if args and not isinstance(args[0], Contract):
        return encode_record_completed_order(*args)
    contract, order, state, *rest = args
    v = rest[0] if rest else SERVER_VERSION
    return _completed_order_fields(
        order.permId, contract, order, state, state.status, order.filledQuantity, v
    )


def encode_record_completed_order(
    record: OrderRecordLike, server_version: int = SERVER_VERSION
) -> list[object]:
    """completedOrder (101) for an engine record (filledQuantity = record.filled)."""
    return _completed_order_fields(
        record.perm_id,
        record.contract,
        record.order,
        record.order_state,
        record.status or record.order_state.status,
        record.filled,
        server_version,
    )


def encode_order_status(
    order_id: int,
    status: str,
    filled: Num,
    remaining: Num,
    avg_fill_price: Num,
    perm_id: int,
    parent_id: int,
    last_fill_price: Num,
    client_id: int,
    why_held: str = "",
    mkt_cap_price: Num = 0,
    server_version: int = SERVER_VERSION,
) -> list[object]:
    """orderStatus (3): no version field since server 131 (market cap price)."""
    del server_version  # same layout for every version ib_async 2.1 accepts
    return [
        _ORDER_STATUS,
        text(order_id),
        text(status),
        text(filled),
        text(remaining),
        text(avg_fill_price),
        text(perm_id),
        text(parent_id),
        text(last_fill_price),
        text(client_id),
        text(why_held),
        text(mkt_cap_price),
    ]


def encode_record_status(
    record: OrderRecordLike, server_version: int = SERVER_VERSION
) -> list[object]:
    """orderStatus (3) for an engine record; parentId from its order."""
    return encode_order_status(
        record.order_id,
        record.status,
        record.filled,
        record.remaining,
        record.avg_fill_price,
        record.perm_id,
        record.order.parentId,
        record.last_fill_price,
        record.client_id,
        record.why_held,
        0,
        server_version,
    )


def encode_exec_details(
    req_id: int,
    contract: Contract,
    execution: Execution,
    server_version: int = SERVER_VERSION,
) -> list[object]:
    """execDetails (11), as Decoder.execDetails reads it; reqId -1 for live fills.

    execution.time must be aware; it goes out in New York time with IB's
    zone suffix. execution.orderId/clientId/permId bind the fill to a Trade.
    """
    ex = execution
    out: list[object] = [_EXEC_DETAILS, text(req_id), text(ex.orderId), *_contract_fields(contract)]
    out += [
        text(ex.execId),
        ib_time(ex.time),
        text(ex.acctNumber),
        text(ex.exchange),
        text(ex.side),
        text(ex.shares),
        text(ex.price),
        text(ex.permId),
        text(ex.clientId),
        text(ex.liquidation),
        text(ex.cumQty),
        text(ex.avgPrice),
        text(ex.orderRef),
        text(ex.evRule),
        text(ex.evMultiplier),
        text(ex.modelCode),
        text(ex.lastLiquidity),
    ]
    if server_version >= 178:
        out.append(text(ex.pendingPriceRevision))
    return out


def encode_commission_report(report: CommissionReport) -> list[object]:
    """commissionReport (59, version 1): unset realized PnL and yield as the max-double."""
    return [
        _COMMISSION_REPORT,
        "1",
        text(report.execId),
        text(report.commission),
        text(report.currency),
        _max_text(report.realizedPNL),
        _max_text(report.yield_),
        text(report.yieldRedemptionDate),
    ]


def encode_open_order_end() -> list[object]:
    """openOrderEnd (53, version 1)."""
    return [_OPEN_ORDER_END, "1"]


def encode_completed_orders_end() -> list[object]:
    """completedOrdersEnd (102): no version, no fields."""
    return [_COMPLETED_ORDERS_END]


def encode_exec_details_end(req_id: int) -> list[object]:
    """execDetailsEnd (55, version 1, reqId)."""
    return [_EXEC_DETAILS_END, "1", text(req_id)]
