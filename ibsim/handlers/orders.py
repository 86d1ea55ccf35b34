"""Order entry: placeOrder (3), cancelOrder (4), reqGlobalCancel (58).

Decoding mirrors ib_async's encoder (ibsim.codec); the engine decides; the
gateway routes the resulting events to the owning client. The server steps the
engine right after these requests, so acks never wait for the next pump tick.
"""

from __future__ import annotations

from ibsim import codec
from ibsim.handlers import SessionAPI, handles
from ibsim.wire import IN

#: IB's "Error validating request" for a message it cannot parse.
CODE_INVALID_REQUEST = 321


@handles(IN.PLACE_ORDER)
def place_order(session: SessionAPI, fields: list[str]) -> None:
    try:
        order_id, contract, order = codec.decode_place_order(fields, session.server_version)
    except codec.CodecError as exc:
        req_id = int(fields[0]) if fields and fields[0].lstrip("-").isdigit() else -1
        session.error(req_id, CODE_INVALID_REQUEST, f"Error validating request: {exc}")
        return
    engine = session.gateway.engine
    session.gateway.route(engine.place(session.client_id, order_id, contract, order))


@handles(IN.CANCEL_ORDER)
def cancel_order(session: SessionAPI, fields: list[str]) -> None:
    try:
        order_id, _manual_time = codec.decode_cancel_order(fields, session.server_version)
    except codec.CodecError as exc:
        session.error(-1, CODE_INVALID_REQUEST, f"Error validating request: {exc}")
        return
    session.gateway.route(session.gateway.engine.cancel(session.client_id, order_id))


@handles(IN.REQ_GLOBAL_CANCEL)
def global_cancel(session: SessionAPI, fields: list[str]) -> None:
    session.gateway.route(session.gateway.engine.global_cancel())
