"""Start-up and account requests: everything ib_async's connect() waits on, and more.

startApi, ids, time, managed accounts, positions, account updates (single and
multi), account summary, PnL, open/completed orders and executions. Answers
come from the engine's query API and the codec's order/execution encoders.
Layouts follow ib_async 2.1's decoder for server version 176 (field counts
noted per message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from ibsim import codec
from ibsim.handlers import SessionAPI, handles
from ibsim.wire import IN, OUT, fmt
from spreadpilot.domain.calendar import NEW_YORK

if TYPE_CHECKING:
    from ibsim.server import Gateway, Session

log = logging.getLogger("ibsim.handlers.connect")

#: Tags sent for reqAccountUpdatesMulti with ledgerAndNLV set (IB: ledger and NLV only).
LEDGER_AND_NLV_TAGS = frozenset({"NetLiquidation", "TotalCashValue", "CashBalance"})


def _s(session: SessionAPI) -> Session:
    """The concrete session (subscription state lives there)."""
    return cast("Session", session)


def _gw(session: SessionAPI) -> Gateway:
    return cast("Gateway", session.gateway)


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


# -- connection -------------------------------------------------------------------


@handles(IN.START_API)
def start_api(session: SessionAPI, fields: list[str]) -> None:
    """startApi `71, 2, clientId, optCapab` -> managedAccounts, nextValidId, farm notices."""
    s = _s(session)
    if s.started:
        log.debug("client %d sent startApi twice; ignored", s.client_id)
        return
    client_id = _int(fields[1] if len(fields) > 1 else "", default=-1)
    gateway = _gw(session)
    if not gateway.admit(s, client_id):
        return
    s.send(OUT.MANAGED_ACCTS, 1, ",".join(gateway.accounts))
    s.send(OUT.NEXT_VALID_ID, 1, gateway.next_order_id(client_id))
    if gateway.ib_connected:
        from ibsim.server import FARM_NOTICES

        for code, message in FARM_NOTICES:
            s.error(-1, code, message)
    else:
        from ibsim.server import MSG_LOST

        s.error(-1, 1100, MSG_LOST)


@handles(IN.REQ_IDS)
def req_ids(session: SessionAPI, fields: list[str]) -> None:
    """reqIds `8, 1, numIds` -> nextValidId `9, 1, id`."""
    session.send(OUT.NEXT_VALID_ID, 1, _gw(session).next_order_id(session.client_id))


@handles(IN.REQ_CURRENT_TIME)
def req_current_time(session: SessionAPI, fields: list[str]) -> None:
    """reqCurrentTime -> currentTime `49, 1, epoch seconds` (the simulated clock)."""
    session.send(OUT.CURRENT_TIME, 1, int(session.gateway.clock.now().timestamp()))


@handles(IN.REQ_MANAGED_ACCTS)
def req_managed_accts(session: SessionAPI, fields: list[str]) -> None:
    """reqManagedAccts -> managedAccounts `15, 1, 'A,B'`."""
    session.send(OUT.MANAGED_ACCTS, 1, ",".join(session.gateway.accounts))


# -- positions --------------------------------------------------------------------


def _contract_fields(c: Any, exchange: str) -> list[object]:
    """conId..tradingClass as position (exchange) and portfolio (primaryExchange) send them."""
    return [
        c.conId,
        c.symbol,
        c.secType,
        c.lastTradeDateOrContractMonth,
        c.strike,
        c.right,
        c.multiplier,
        exchange,
        c.currency,
        c.localSymbol,
        c.tradingClass,
    ]


def _positions(gateway: Gateway, accounts: Iterable[str] | None = None) -> list[Any]:
    wanted = set(accounts) if accounts is not None else None
    return [p for p in gateway.engine.positions() if wanted is None or p.account in wanted]


def _send_position(s: Session, account: str, contract: Any, qty: object, avg: object) -> None:
    """position `61, 3, account, <11 contract fields>, position, avgCost` (16 fields)."""
    s.send(OUT.POSITION_DATA, 3, account, *_contract_fields(contract, contract.exchange), qty, avg)


@handles(IN.REQ_POSITIONS)
def req_positions(session: SessionAPI, fields: list[str]) -> None:
    """reqPositions -> one position row per holding, positionEnd `62, 1`; then streamed."""
    s = _s(session)
    s.positions_subscribed = True
    s.sent_positions.clear()
    for p in _positions(_gw(session)):
        _send_position(s, p.account, p.contract, p.quantity, p.avg_cost)
        s.sent_positions[(p.account, int(p.contract.conId))] = (
            f"{fmt(p.quantity)}|{fmt(p.avg_cost)}",
            p.contract,
        )
    s.send(OUT.POSITION_END, 1)


@handles(IN.CANCEL_POSITIONS)
def cancel_positions(session: SessionAPI, fields: list[str]) -> None:
    """cancelPositions: stop streaming position changes."""
    s = _s(session)
    s.positions_subscribed = False
    s.sent_positions.clear()


def _stream_positions(s: Session, accounts: set[str]) -> None:
    """Send the positions of `accounts` that changed since last sent (0 for closed ones)."""
    current = {(p.account, int(p.contract.conId)): p for p in _positions(_gw(s), accounts)}
    for key, p in current.items():
        state = f"{fmt(p.quantity)}|{fmt(p.avg_cost)}"
        sent = s.sent_positions.get(key)
        if sent is None or sent[0] != state:
            _send_position(s, p.account, p.contract, p.quantity, p.avg_cost)
            s.sent_positions[key] = (state, p.contract)
    for key in [k for k in s.sent_positions if k[0] in accounts and k not in current]:
        _, contract = s.sent_positions.pop(key)
        _send_position(s, key[0], contract, 0, 0)


# -- account values -----------------------------------------------------------------


def _values(gateway: Gateway, account: str) -> dict[str, tuple[str, str]]:
    return dict(gateway.engine.account_values(account))


def _market_price(gateway: Gateway, position: Any) -> Decimal:
    """Mid (else last) from the quote book; the average cost per unit without one."""
    multiplier = Decimal(str(position.contract.multiplier or 1))
    quote = gateway.quotes.quote(int(position.contract.conId), gateway.clock.now())
    if quote is not None:
        if quote.bid and quote.ask and quote.bid > 0 and quote.ask > 0:
            return Decimal(quote.bid + quote.ask) / 2
        if quote.last:
            return Decimal(quote.last)
    return Decimal(str(position.avg_cost)) / multiplier


def _portfolio(gateway: Gateway, account: str) -> list[tuple[Any, ...]]:
    """(contract, position, marketPrice, marketValue, avgCost, unrealized, realized) rows.

    The engine's own portfolio() when it has one (marks and realized P&L are
    its business); otherwise marked here at the quote book's mid.
    """
    engine = gateway.engine
    if hasattr(engine, "portfolio"):
        return [
            (
                i.contract,
                i.position,
                _round(i.market_price, "0.0001"),
                _round(i.market_value, "0.01"),
                i.avg_cost,
                _round(i.unrealized, "0.01"),
                _round(i.realized, "0.01"),
            )
            for i in engine.portfolio(account)
        ]
    rows: list[tuple[Any, ...]] = []
    for p in _positions(gateway, [account]):
        qty = Decimal(str(p.quantity))
        avg = Decimal(str(p.avg_cost))
        price = _market_price(gateway, p)
        worth = qty * price * Decimal(str(p.contract.multiplier or 1))
        rows.append(
            (
                p.contract,
                qty,
                _round(price, "0.0001"),
                _round(worth, "0.01"),
                avg,
                _round(worth - qty * avg, "0.01"),
                Decimal(0),
            )
        )
    return rows


def _round(value: Any, places: str) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places))


def _send_account(s: Session, account: str, with_end: bool) -> None:
    """updateAccountValue `6, 2, tag, value, currency, account` per tag, portfolio
    `7, 8, <11 contract fields>, position, marketPrice, marketValue, averageCost,
    unrealizedPNL, realizedPNL, account`, updateAccountTime `8, 1, HH:MM`, end `54, 1, account`.
    """
    gateway = _gw(s)
    for tag, (value, currency) in _values(gateway, account).items():
        s.send(OUT.ACCT_VALUE, 2, tag, value, currency, account)
    for row in _portfolio(gateway, account):
        contract, qty, price, worth, avg, unrealized, realized = row
        s.send(
            OUT.PORTFOLIO_VALUE,
            8,
            *_contract_fields(contract, contract.primaryExchange),
            qty,
            price,
            worth,
            avg,
            unrealized,
            realized,
            account,
        )
    s.send(OUT.ACCT_UPDATE_TIME, 1, gateway.clock.now().astimezone(NEW_YORK).strftime("%H:%M"))
    if with_end:
        s.send(OUT.ACCT_DOWNLOAD_END, 1, account)


@handles(IN.REQ_ACCOUNT_UPDATES)
def req_account_updates(session: SessionAPI, fields: list[str]) -> None:
    """reqAccountUpdates `6, 2, subscribe, acctCode` -> values, portfolio, time, end."""
    s = _s(session)
    subscribe = fields[1] == "1" if len(fields) > 1 else True
    account = fields[2] if len(fields) > 2 else ""
    if not subscribe:
        s.account_updates = None
        return
    gateway = _gw(session)
    if not account and len(gateway.accounts) == 1:
        account = gateway.accounts[0]
    if account not in gateway.accounts:
        log.warning("client %d: reqAccountUpdates for unknown account %r", s.client_id, account)
        s.send(OUT.ACCT_DOWNLOAD_END, 1, account)
        return
    s.account_updates = account
    _send_account(s, account, with_end=True)


def _multi_accounts(gateway: Gateway, account: str) -> list[str]:
    if account in ("", "All"):
        return list(gateway.accounts)
    return [account] if account in gateway.accounts else []


def _send_multi(s: Session, req_id: int, account: str, ledger_and_nlv: bool) -> None:
    """accountUpdateMulti `73, 1, reqId, account, modelCode, tag, value, currency` per tag."""
    for tag, (value, currency) in _values(_gw(s), account).items():
        if ledger_and_nlv and tag not in LEDGER_AND_NLV_TAGS:
            continue
        s.send(OUT.ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", tag, value, currency)


@handles(IN.REQ_ACCOUNT_UPDATES_MULTI)
def req_account_updates_multi(session: SessionAPI, fields: list[str]) -> None:
    """reqAccountUpdatesMulti `76, 1, reqId, account, modelCode, ledgerAndNLV` -> 73 rows, 74."""
    s = _s(session)
    req_id = _int(fields[1]) if len(fields) > 1 else 0
    account = fields[2] if len(fields) > 2 else ""
    ledger_and_nlv = len(fields) > 4 and fields[4] == "1"
    for acct in _multi_accounts(_gw(session), account):
        _send_multi(s, req_id, acct, ledger_and_nlv)
    s.send(OUT.ACCOUNT_UPDATE_MULTI_END, 1, req_id)
    s.account_multi[req_id] = account


@handles(IN.CANCEL_ACCOUNT_UPDATES_MULTI)
def cancel_account_updates_multi(session: SessionAPI, fields: list[str]) -> None:
    _s(session).account_multi.pop(_int(fields[1]) if len(fields) > 1 else 0, None)


def _send_summary(
    s: Session, req_id: int, tags: frozenset[str] | None, accounts: Iterable[str]
) -> None:
    """accountSummary `63, 1, reqId, account, tag, value, currency` rows, end `64, 1, reqId`."""
    gateway = _gw(s)
    for account in accounts:
        for tag, (value, currency) in _values(gateway, account).items():
            if tags is None or tag in tags:
                s.send(OUT.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency)
    s.send(OUT.ACCOUNT_SUMMARY_END, 1, req_id)


@handles(IN.REQ_ACCOUNT_SUMMARY)
def req_account_summary(session: SessionAPI, fields: list[str]) -> None:
    """reqAccountSummary `62, 1, reqId, group, tags` -> rows for every account, end."""
    s = _s(session)
    req_id = _int(fields[1]) if len(fields) > 1 else 0
    raw_tags = fields[3] if len(fields) > 3 else ""
    tags = frozenset(t for t in raw_tags.split(",") if t and not t.startswith("$")) or None
    s.account_summary[req_id] = tags
    _send_summary(s, req_id, tags, _gw(session).accounts)


@handles(IN.CANCEL_ACCOUNT_SUMMARY)
def cancel_account_summary(session: SessionAPI, fields: list[str]) -> None:
    _s(session).account_summary.pop(_int(fields[1]) if len(fields) > 1 else 0, None)


# -- PnL -----------------------------------------------------------------------------


def _send_pnl(s: Session, req_id: int, account: str, force: bool) -> None:
    """pnl `94, reqId, daily, unrealized, realized` (no version field), when changed."""
    if account not in s.gateway.accounts:
        return
    daily, unrealized, realized = s.gateway.engine.pnl(account)
    values = (fmt(daily), fmt(unrealized), fmt(realized))
    if force or s.sent_pnl.get(req_id) != values:
        s.sent_pnl[req_id] = values
        s.send(OUT.PNL, req_id, *values)


@handles(IN.REQ_PNL)
def req_pnl(session: SessionAPI, fields: list[str]) -> None:
    """reqPnL `92, reqId, account, modelCode` -> pnl now, then about once a second on change."""
    s = _s(session)
    req_id = _int(fields[0]) if fields else 0
    account = fields[1] if len(fields) > 1 else ""
    if account not in s.gateway.accounts:
        log.warning("client %d: reqPnL for unknown account %r", s.client_id, account)
        return
    s.pnl_subscriptions[req_id] = account
    _send_pnl(s, req_id, account, force=True)


@handles(IN.CANCEL_PNL)
def cancel_pnl(session: SessionAPI, fields: list[str]) -> None:
    s = _s(session)
    req_id = _int(fields[0]) if fields else 0
    s.pnl_subscriptions.pop(req_id, None)
    s.sent_pnl.pop(req_id, None)


def refresh_pnl(session: Session) -> None:
    """Send every PnL subscription whose values changed (called by the gateway's pump)."""
    for req_id, account in list(session.pnl_subscriptions.items()):
        _send_pnl(session, req_id, account, force=False)


def refresh_after_fills(session: Session, accounts: set[str]) -> None:
    """Stream what fills changed to this session's subscriptions, as IB does."""
    if session.positions_subscribed:
        _stream_positions(session, accounts)
    subscribed = session.account_updates
    if subscribed is not None and subscribed in accounts:
        _send_account(session, subscribed, with_end=False)
    for req_id, account in list(session.account_multi.items()):
        for acct in _multi_accounts(_gw(session), account):
            if acct in accounts:
                _send_multi(session, req_id, acct, ledger_and_nlv=False)
    for req_id, tags in list(session.account_summary.items()):
        _send_summary(session, req_id, tags, [a for a in session.gateway.accounts if a in accounts])
    refresh_pnl(session)


# -- orders and executions -------------------------------------------------------------


def _send_open_orders(session: SessionAPI, client_id: int | None) -> None:
    """openOrder + orderStatus for each working order, then openOrderEnd `53, 1`."""
    version = session.server_version
    for record in session.gateway.engine.open_orders(client_id):
        session.send(*codec.encode_record_open_order(record, version))
        session.send(*codec.encode_record_status(record, version))
    session.send(OUT.OPEN_ORDER_END, 1)


@handles(IN.REQ_OPEN_ORDERS)
def req_open_orders(session: SessionAPI, fields: list[str]) -> None:
    """reqOpenOrders: this client's working orders."""
    _send_open_orders(session, session.client_id)


@handles(IN.REQ_ALL_OPEN_ORDERS)
def req_all_open_orders(session: SessionAPI, fields: list[str]) -> None:
    """reqAllOpenOrders: every client's working orders."""
    _send_open_orders(session, None)


@handles(IN.REQ_AUTO_OPEN_ORDERS)
def req_auto_open_orders(session: SessionAPI, fields: list[str]) -> None:
    """reqAutoOpenOrders (clientId 0 binds manual TWS orders): no TWS orders here; no answer."""
    log.debug("client %d: reqAutoOpenOrders %s", session.client_id, fields[1:])


@handles(IN.REQ_COMPLETED_ORDERS)
def req_completed_orders(session: SessionAPI, fields: list[str]) -> None:
    """reqCompletedOrders `99, apiOnly` -> completedOrder rows, completedOrdersEnd `102`."""
    for record in session.gateway.engine.completed_orders():
        session.send(*codec.encode_record_completed_order(record, session.server_version))
    session.send(OUT.COMPLETED_ORDERS_END)


def parse_filter_time(text: str) -> datetime | None:
    """ExecutionFilter.time: 'yyyymmdd-hh:mm:ss' (UTC) or 'yyyymmdd hh:mm:ss [zone]' (New York)."""
    text = text.strip()
    if not text:
        return None
    try:
        if "-" in text and " " not in text:
            return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        day, clock, *zone = text.split(" ", 2)
        tz = ZoneInfo(zone[0]) if zone else NEW_YORK
        return datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S").replace(tzinfo=tz)
    except (ValueError, KeyError):
        log.warning("execution filter time %r not understood; ignored", text)
        return None


_SIDES = {"BUY": "BOT", "SELL": "SLD", "BOT": "BOT", "SLD": "SLD"}


def _matches(fill: Any, flt: dict[str, str], since: datetime | None) -> bool:
    ex = fill.execution
    client_id = _int(flt["clientId"])
    if client_id and int(ex.clientId) != client_id:
        return False
    if flt["acctCode"] and ex.acctNumber != flt["acctCode"]:
        return False
    if since is not None and ex.time < since:
        return False
    if flt["symbol"] and fill.contract.symbol != flt["symbol"]:
        return False
    if flt["secType"] and fill.contract.secType != flt["secType"]:
        return False
    if flt["exchange"] and ex.exchange != flt["exchange"]:
        return False
    side = _SIDES.get(flt["side"].upper(), flt["side"]) if flt["side"] else ""
    return not side or ex.side == side


@handles(IN.REQ_EXECUTIONS)
def req_executions(session: SessionAPI, fields: list[str]) -> None:
    """reqExecutions `7, 3, reqId, clientId, acct, time, symbol, secType, exchange, side`
    -> execDetails (11) + commissionReport (59) per matching fill, execDetailsEnd `55, 1, reqId`.

    A filter clientId of 0 (ib_async's default) means every client, so a
    reconnecting client sees the whole day.
    """
    names = ("clientId", "acctCode", "time", "symbol", "secType", "exchange", "side")
    req_id = _int(fields[1]) if len(fields) > 1 else 0
    values = [*fields[2:], *[""] * len(names)][: len(names)]
    flt = dict(zip(names, values, strict=True))
    since = parse_filter_time(flt["time"])
    for fill in session.gateway.engine.fills(flt["acctCode"] or None):
        if _matches(fill, flt, since):
            session.send(
                *codec.encode_exec_details(
                    req_id, fill.contract, fill.execution, session.server_version
                )
            )
            session.send(*codec.encode_commission_report(fill.commission))
    session.send(OUT.EXECUTION_DATA_END, 1, req_id)
