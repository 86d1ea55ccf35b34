"""TWS socket protocol at the byte level: framing, handshake, field text, message ids.

Everything here is pure (no sockets, no state) so the server, the codec and the
tests share one definition of what goes on the wire. The reference is ib_async
2.1's `client.py` (what a client sends) and `decoder.py` (what it reads back).
"""

from __future__ import annotations

import asyncio
import math
import struct
import sys
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Final

from ibsim import SERVER_VERSION as SERVER_VERSION
from spreadpilot.domain.calendar import NEW_YORK

#: The first bytes a client sends, before the framed version range.
API_PREFIX: Final = b"API\0"
#: IB's max-double, sent for "no value" in double fields (e.g. whatIf commission).
UNSET_DOUBLE: Final = sys.float_info.max
UNSET_DOUBLE_TEXT: Final = "1.7976931348623157E308"
#: IB's max-int, an unset integer: sent as an empty field.
UNSET_INTEGER: Final = 2**31 - 1
#: Messages larger than this are a broken or hostile peer, not a TWS client.
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024

_LENGTH = struct.Struct(">I")


class _Unset:
    """Marker for a field IB leaves empty; `fmt(UNSET) == ""`."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class IN:
    """Ids of messages a client sends (the server's incoming side); ibapi's names."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DETAILS = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_NEWS_BULLETINS = 12
    CANCEL_NEWS_BULLETINS = 13
    SET_SERVER_LOGLEVEL = 14
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_FA = 18
    REPLACE_FA = 19
    REQ_HISTORICAL_DATA = 20
    EXERCISE_OPTIONS = 21
    REQ_SCANNER_SUBSCRIPTION = 22
    CANCEL_SCANNER_SUBSCRIPTION = 23
    REQ_SCANNER_PARAMETERS = 24
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_FUNDAMENTAL_DATA = 52
    CANCEL_FUNDAMENTAL_DATA = 53
    REQ_CALC_IMPLIED_VOLAT = 54
    REQ_CALC_OPTION_PRICE = 55
    CANCEL_CALC_IMPLIED_VOLAT = 56
    CANCEL_CALC_OPTION_PRICE = 57
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    VERIFY_REQUEST = 65
    VERIFY_MESSAGE = 66
    QUERY_DISPLAY_GROUPS = 67
    SUBSCRIBE_TO_GROUP_EVENTS = 68
    UPDATE_DISPLAY_GROUP = 69
    UNSUBSCRIBE_FROM_GROUP_EVENTS = 70
    START_API = 71
    VERIFY_AND_AUTH_REQUEST = 72
    VERIFY_AND_AUTH_MESSAGE = 73
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_SOFT_DOLLAR_TIERS = 79
    REQ_FAMILY_CODES = 80
    REQ_MATCHING_SYMBOLS = 81
    REQ_MKT_DEPTH_EXCHANGES = 82
    REQ_SMART_COMPONENTS = 83
    REQ_NEWS_ARTICLE = 84
    REQ_NEWS_PROVIDERS = 85
    REQ_HISTORICAL_NEWS = 86
    REQ_HEAD_TIMESTAMP = 87
    REQ_HISTOGRAM_DATA = 88
    CANCEL_HISTOGRAM_DATA = 89
    CANCEL_HEAD_TIMESTAMP = 90
    REQ_MARKET_RULE = 91
    REQ_PNL = 92
    CANCEL_PNL = 93
    REQ_PNL_SINGLE = 94
    CANCEL_PNL_SINGLE = 95
    REQ_HISTORICAL_TICKS = 96
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_COMPLETED_ORDERS = 99
    REQ_WSH_META_DATA = 100
    CANCEL_WSH_META_DATA = 101
    REQ_WSH_EVENT_DATA = 102
    CANCEL_WSH_EVENT_DATA = 103
    REQ_USER_INFO = 104
    # aliases (ibapi spelling)
    REQ_ACCT_DATA = 6
    REQ_CONTRACT_DATA = 9


class OUT:
    """Ids of messages the server sends (ib_async Decoder.handlers keys); ibapi's names."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MARKET_DEPTH = 12
    MARKET_DEPTH_L2 = 13
    NEWS_BULLETINS = 14
    MANAGED_ACCTS = 15
    RECEIVE_FA = 16
    HISTORICAL_DATA = 17
    BOND_CONTRACT_DATA = 18
    SCANNER_PARAMETERS = 19
    SCANNER_DATA = 20
    TICK_OPTION_COMPUTATION = 21
    TICK_GENERIC = 45
    TICK_STRING = 46
    TICK_EFP = 47
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    FUNDAMENTAL_DATA = 51
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    DELTA_NEUTRAL_VALIDATION = 56
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    VERIFY_MESSAGE_API = 65
    VERIFY_COMPLETED = 66
    DISPLAY_GROUP_LIST = 67
    DISPLAY_GROUP_UPDATED = 68
    VERIFY_AND_AUTH_MESSAGE_API = 69
    VERIFY_AND_AUTH_COMPLETED = 70
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    SOFT_DOLLAR_TIERS = 77
    FAMILY_CODES = 78
    SYMBOL_SAMPLES = 79
    MKT_DEPTH_EXCHANGES = 80
    TICK_REQ_PARAMS = 81
    SMART_COMPONENTS = 82
    NEWS_ARTICLE = 83
    TICK_NEWS = 84
    NEWS_PROVIDERS = 85
    HISTORICAL_NEWS = 86
    HISTORICAL_NEWS_END = 87
    HEAD_TIMESTAMP = 88
    HISTOGRAM_DATA = 89
    HISTORICAL_DATA_UPDATE = 90
    REROUTE_MKT_DATA_REQ = 91
    REROUTE_MKT_DEPTH_REQ = 92
    MARKET_RULE = 93
    PNL = 94
    PNL_SINGLE = 95
    HISTORICAL_TICKS = 96
    HISTORICAL_TICKS_BID_ASK = 97
    HISTORICAL_TICKS_LAST = 98
    TICK_BY_TICK = 99
    ORDER_BOUND = 100
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102
    REPLACE_FA_END = 103
    WSH_META_DATA = 104
    WSH_EVENT_DATA = 105
    HISTORICAL_SCHEDULE = 106
    USER_INFO = 107
    # aliases (ib_async / wrapper spelling)
    ERROR = 4
    EXEC_DETAILS = 11
    POSITION = 61
    CONTRACT_DETAILS = 10
    CONTRACT_DETAILS_END = 52
    EXEC_DETAILS_END = 55


def _names(ids: type) -> dict[int, str]:
    """Message id -> its first (canonical) name, for readable logs."""
    out: dict[int, str] = {}
    for name, value in vars(ids).items():
        if not name.startswith("_") and isinstance(value, int):
            out.setdefault(value, name)
    return out


IN_NAMES: Final = _names(IN)
OUT_NAMES: Final = _names(OUT)


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return "Infinite" if value > 0 else "-Infinite"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _float_text(value: float) -> str:
    if value == UNSET_DOUBLE:
        return UNSET_DOUBLE_TEXT
    if math.isinf(value):
        return "Infinite" if value > 0 else "-Infinite"
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def fmt(value: object) -> str:
    """One field's text as IB writes it.

    None/UNSET and the unset max-int are empty; bools are 1/0; numbers use
    their shortest exact text ("1.5", "3", not "3.0": ib_async parses some
    numeric fields with int()); the unset max-double keeps IB's sentinel.
    Dates are YYYYMMDD; enums send their value.
    """
    if value is None or value is UNSET:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, Enum):
        return fmt(value.value)
    if isinstance(value, datetime):
        return ib_datetime(value)
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return str(value)


def ib_datetime(moment: datetime) -> str:
    """An aware moment as IB writes execution times: 'YYYYMMDD HH:MM:SS America/New_York'.

    ib_async's parseIBDatetime reads the trailing zone name with ZoneInfo.
    """
    if moment.tzinfo is None:
        raise ValueError("ib_datetime needs an aware datetime")
    return moment.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S") + " America/New_York"


def connection_time(moment: datetime) -> str:
    """The handshake's connection time, as the gateway writes it: 'YYYYMMDD HH:MM:SS EST'."""
    local = moment.astimezone(NEW_YORK)
    return local.strftime("%Y%m%d %H:%M:%S ") + (local.tzname() or "EST")


def encode_fields(fields: Iterable[object]) -> bytes:
    """The payload of one message: every field's text, each ended by NUL."""
    return "".join(fmt(f) + "\0" for f in fields).encode()


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its 4-byte big-endian length."""
    return _LENGTH.pack(len(payload)) + payload


def encode_message(*fields: object) -> bytes:
    """One framed message, ready for the socket."""
    return frame(encode_fields(fields))


def decode_fields(payload: bytes) -> list[str]:
    """Split a payload into its text fields (the trailing NUL ends the last one)."""
    fields = payload.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame off the front of `buffer` (mutated); partial data stays."""
    out: list[bytes] = []
    pos = 0
    size = len(buffer)
    while size - pos >= 4:
        (length,) = _LENGTH.unpack_from(buffer, pos)
        if length > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message of {length} bytes exceeds the {MAX_MESSAGE_BYTES} limit")
        end = pos + 4 + length
        if end > size:
            break
        out.append(bytes(buffer[pos + 4 : end]))
        pos = end
    if pos:
        del buffer[:pos]
    return out


class ProtocolError(Exception):
    """The peer does not speak the TWS protocol (bad prefix, version range, size)."""


def parse_version_range(text: str) -> tuple[int, int, str]:
    """'v157..178 +PACEAPI' -> (157, 178, '+PACEAPI'); a single 'v176' is (176, 176, '')."""
    head, _, options = text.strip().partition(" ")
    if not head.startswith("v"):
        raise ProtocolError(f"bad version range {text!r}")
    low, sep, high = head[1:].partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise ProtocolError(f"bad version range {text!r}") from None
    return lo, hi, options.strip()


def negotiate(min_version: int, max_version: int) -> int | None:
    """The version both sides speak: 176 when the client's range holds it, else None."""
    if min_version <= SERVER_VERSION <= max_version:
        return SERVER_VERSION
    return None


def handshake_reply(version: int, now: datetime) -> bytes:
    """The server's answer to the handshake: `<version>\\0<connection time>\\0`, framed."""
    return encode_message(version, connection_time(now))


def handshake_request(min_version: int = 157, max_version: int = 178, options: str = "") -> bytes:
    """What a client sends first (for tests and benches that speak raw protocol)."""
    text = f"v{min_version}..{max_version}" + (f" {options}" if options else "")
    return API_PREFIX + frame(text.encode())


async def read_message(reader: asyncio.StreamReader) -> list[str] | None:
    """Read one framed message from a stream; None at end of stream."""
    try:
        head = await reader.readexactly(4)
        (length,) = _LENGTH.unpack(head)
        if length > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message of {length} bytes exceeds the {MAX_MESSAGE_BYTES} limit")
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    return decode_fields(payload)


def describe(fields: list[str], names: dict[int, str]) -> str:
    """A readable one-line form of a message: 'reqPositions(61) [1]'-style."""
    if not fields:
        return "<empty>"
    try:
        name = names.get(int(fields[0]), "UNKNOWN")
    except ValueError:
        name = "UNKNOWN"
    return f"{name}({fields[0]}) " + "|".join(fields[1:])
