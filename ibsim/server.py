"""The gateway's sockets: sessions, clientIds, pacing, the engine pump and faults.

One asyncio server; one `Session` (an asyncio.Protocol) per TCP connection.
Incoming frames are parsed in `data_received`, paced, and dispatched in
arrival order to `ibsim.handlers.HANDLERS`; outgoing messages are framed at
once and flushed in one write per loop iteration. A background pump brings
the engine up to the clock (`engine.step()`) every few milliseconds and after
every order request, and routes the resulting events to the client that owns
each order. Everything runs on the gateway's event loop; the public fault and
inspection methods are safe to call from another thread (tests, the embedded
platform) and hop onto the loop themselves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from ibsim import SERVER_VERSION, codec
from ibsim.engine import Engine
from ibsim.handlers import HANDLERS, GatewayAPI, connect
from ibsim.handlers import market as _market_handlers  # noqa: F401  (registers handlers)
from ibsim.handlers import orders as _order_handlers  # noqa: F401  (registers handlers)
from ibsim.instruments import Instruments
from ibsim.market import MarketModel, QuoteBook
from ibsim.wire import (
    API_PREFIX,
    IN,
    IN_NAMES,
    OUT,
    OUT_NAMES,
    ProtocolError,
    decode_fields,
    describe,
    encode_fields,
    fmt,
    frame,
    handshake_reply,
    negotiate,
    parse_version_range,
    split_frames,
)
from spreadpilot.domain.calendar import MarketCalendar
from spreadpilot.ports.clock import Clock

log = logging.getLogger("ibsim.server")
wire_log = logging.getLogger("ibsim.wire")

T = TypeVar("T")

#: IB's limit of simultaneous API clients per gateway.
MAX_CLIENTS: Final = 32
#: IB's pacing limit: messages per second per connection.
MAX_MSGS_PER_SEC: Final = 50
#: Slack for network and scheduler jitter: a violation is more than the
#: maximum within (1 s - grace). A client pacing itself at exactly 50/s is
#: never flagged; one sustaining ~53/s or bursting 51 at once is.
PACING_GRACE_SECONDS: Final = 0.05
#: How long a closed session waits for the client to close its side too.
CLOSE_LINGER_SECONDS: Final = 2.0
#: How often the pump steps the engine, in wall seconds.
PUMP_INTERVAL_SECONDS: Final = 0.02
#: How often streamed PnL is refreshed, in wall seconds (IB: about once a second).
PNL_INTERVAL_SECONDS: Final = 1.0

FaultAction = Literal[
    "lose_connectivity", "restore", "restore_data_lost", "restart", "shut_down", "come_back"
]
FAULT_ACTIONS: Final[tuple[str, ...]] = (
    "lose_connectivity",
    "restore",
    "restore_data_lost",
    "restart",
    "shut_down",
    "come_back",
)

#: Informational "errors" IB sends at every connect (reqId -1).
FARM_NOTICES: Final[tuple[tuple[int, str], ...]] = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
MSG_LOST: Final = "Connectivity between IB and Trader Workstation has been lost."
MSG_RESTORED_DATA_LOST: Final = (
    "Connectivity between IB and Trader Workstation has been restored - data lost."
)
MSG_RESTORED: Final = (
    "Connectivity between IB and Trader Workstation has been restored - data maintained."
)
MSG_CLIENT_ID_IN_USE: Final = (
    "Unable to connect as the client id is already in use. Retry with a unique client id."
)
#: IB documents no code for "too many clients"; 502 ("couldn't connect") is the closest.
CODE_TOO_MANY_CLIENTS: Final = 502
#: Requests after which the engine is stepped at once (order acks must not wait a tick).
ORDER_REQUESTS: Final = frozenset({IN.PLACE_ORDER, IN.CANCEL_ORDER, IN.REQ_GLOBAL_CANCEL})


_HANDSHAKE, _VERSION, _OPEN = range(3)


class Session(asyncio.Protocol):
    """One client connection: handshake, clientId, paced dispatch, framed output."""

    gateway: GatewayAPI  # the SessionAPI view; `_gateway` is the concrete Gateway

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._gateway = gateway
        self.client_id = -1
        self.server_version = SERVER_VERSION
        self.closed = False
        self.started = False  # startApi accepted: the clientId is registered
        self.peer = ""
        self.connected_at: datetime | None = None
        # subscriptions kept by handlers.connect (streamed again after fills)
        self.positions_subscribed = False
        self.account_updates: str | None = None
        self.account_multi: dict[int, str] = {}
        self.account_summary: dict[int, frozenset[str] | None] = {}
        self.pnl_subscriptions: dict[int, str] = {}
        self.sent_positions: dict[tuple[str, int], tuple[str, Any]] = {}
        self.sent_pnl: dict[int, tuple[str, str, str]] = {}
        #: free-form per-session state for the other handler families
        self.state: dict[str, Any] = {}
        self._transport: asyncio.Transport | None = None
        self._loop = gateway.loop
        self._stage = _HANDSHAKE
        self._inbuf = bytearray()
        self._inbox: deque[list[str]] = deque()
        self._busy = False
        self._out: list[bytes] = []
        self._flush_pending = False
        self._arrivals: deque[float] = deque()
        self._close_callbacks: list[Callable[[], None]] = []

    # -- SessionAPI -----------------------------------------------------------

    def send(self, *fields: object) -> None:
        """Frame one message and queue it; the queue is written once per loop turn."""
        if self.closed:
            return
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("%s -> %s", self._tag(), describe([fmt(f) for f in fields], OUT_NAMES))
        self._out.append(frame(encode_fields(fields)))
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def error(self, req_id: int, code: int, message: str, advanced: str = "") -> None:
        """IB's error message (4, version 2); the advanced-reject JSON exists since 166."""
        if self.server_version >= 166:
            self.send(OUT.ERR_MSG, 2, req_id, code, message, advanced)
        else:
            self.send(OUT.ERR_MSG, 2, req_id, code, message)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the connection ends (streams drop their subscriptions)."""
        if self.closed:
            callback()
        else:
            self._close_callbacks.append(callback)

    def close(self) -> None:
        """Send what is queued, then close (IB's behaviour after 326, 100, ...).

        A half-close: our side ends with FIN after the last message and input
        is discarded until the client closes too (or `CLOSE_LINGER_SECONDS`).
        Closing with unread input would send a reset, and the client would
        lose the final error message.
        """
        if self.closed or self._transport is None:
            return
        transport = self._transport
        self._flush()
        self._mark_closed()
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(CLOSE_LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def eof_received(self) -> bool | None:
        """The client closed its side: close ours (returning None closes the transport)."""
        return None

    def abort(self) -> None:
        """Drop the connection at once, losing queued output (a crash or restart)."""
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()
        self._mark_closed()

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._gateway.connections.add(self)
        log.debug("connection from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("%s connection closed (%s)", self._tag(), exc or "normal")
        self._mark_closed()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._inbuf += data
        try:
            if self._stage == _HANDSHAKE:
                if len(self._inbuf) < len(API_PREFIX):
                    return
                if bytes(self._inbuf[: len(API_PREFIX)]) != API_PREFIX:
                    raise ProtocolError("the client did not start with API\\0")
                del self._inbuf[: len(API_PREFIX)]
                self._stage = _VERSION
            frames = split_frames(self._inbuf)
        except ProtocolError as exc:
            log.warning("%s: %s; closing", self.peer, exc)
            self.abort()
            return
        if not frames:
            return
        now = self._loop.time()
        if self._stage == _VERSION:
            if not self._handshake(frames[0].decode(errors="replace")):
                return
            frames = frames[1:]
        for payload in frames:
            if self._gateway.pacing and self._over_pace(now):
                return
            self._inbox.append(decode_fields(payload))
        self._drain()

    # -- internals ------------------------------------------------------------

    def _tag(self) -> str:
        return f"client {self.client_id}" if self.started else f"conn {self.peer}"

    def _handshake(self, text: str) -> bool:
        try:
            low, high, options = parse_version_range(text)
        except ProtocolError as exc:
            log.warning("%s: %s; closing", self.peer, exc)
            self.abort()
            return False
        version = negotiate(low, high)
        if version is None:
            log.warning(
                "%s asks for versions %d..%d; this gateway speaks only %d; closing",
                self.peer,
                low,
                high,
                SERVER_VERSION,
            )
            self.abort()
            return False
        self.server_version = version
        self._stage = _OPEN
        now = self._gateway.clock.now()
        self.connected_at = now
        wire_log.debug("%s handshake %r -> version %d", self.peer, text, version)
        if options:
            log.debug("%s connect options %r ignored", self.peer, options)
        self._out.append(handshake_reply(version, now))
        self._flush()
        return True

    def _over_pace(self, now: float) -> bool:
        """IB's pacing: more than the limit within one second -> error 100 and disconnect."""
        window = 1.0 - self._gateway.pacing_grace
        arrivals = self._arrivals
        arrivals.append(now)
        while arrivals and arrivals[0] <= now - window:
            arrivals.popleft()
        limit = self._gateway.max_msgs_per_sec
        if len(arrivals) <= limit:
            return False
        log.warning(
            "%s sent %d messages within a second (max %d): pacing violation, disconnecting",
            self._tag(),
            len(arrivals),
            limit,
        )
        self._gateway.pacing_violations += 1
        self._drain()  # what came before the violating message is still answered
        self.error(
            -1,
            100,
            "Max rate of messages per second has been exceeded:"
            f"max={limit} rec={len(arrivals)} (1)",
        )
        self.close()
        return True

    def _drain(self) -> None:
        """Handle queued messages in order; an async handler holds the queue until done."""
        while self._inbox and not self._busy and not self.closed:
            fields = self._inbox.popleft()
            pending = self._dispatch(fields)
            if pending is not None:
                self._busy = True
                self._loop.create_task(self._finish(pending))
                return

    async def _finish(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception:
            log.exception("%s: handler failed", self._tag())
        finally:
            self._busy = False
        self._gateway.kick()  # an async handler may have changed orders meanwhile
        self._drain()

    def _dispatch(self, fields: list[str]) -> Awaitable[None] | None:
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("%s <- %s", self._tag(), describe(fields, IN_NAMES))
        try:
            msg_id = int(fields[0])
        except (IndexError, ValueError):
            log.warning("%s: message without a numeric id: %r", self._tag(), fields[:3])
            return None
        if self._gateway.hung:  # a hung gateway: socket open, requests unanswered
            return None
        if not self.started and msg_id != IN.START_API:
            log.debug("%s: %s before startApi ignored", self._tag(), IN_NAMES.get(msg_id, msg_id))
            return None
        handler = HANDLERS.get(msg_id)
        if handler is None:
            log.debug(
                "%s: no handler for %s(%d); ignored",
                self._tag(),
                IN_NAMES.get(msg_id, "UNKNOWN"),
                msg_id,
            )
            return None
        try:
            result = handler(self, fields[1:])
        except Exception:
            log.exception("%s: handler for %d failed on %r", self._tag(), msg_id, fields)
            return None
        if msg_id in ORDER_REQUESTS:
            self._gateway.kick()
        if result is not None and inspect.isawaitable(result):
            return result
        return None

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._out:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _mark_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._inbox.clear()
        self._gateway._forget(self)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("%s: on_close callback failed", self._tag())


@dataclass
class ScheduledFault:
    """A fault the pump fires once the clock reaches `at`."""

    at: datetime
    action: str
    done: bool = False


class Gateway:
    """A local IB Gateway: accounts, market, instruments and engine behind one port."""

    def __init__(
        self,
        clock: Clock,
        accounts: list[str],
        market: MarketModel,
        instruments: Instruments,
        engine: Engine,
        *,
        quotes: QuoteBook,
        pacing: bool = True,
        max_msgs_per_sec: int = MAX_MSGS_PER_SEC,
        host: str = "127.0.0.1",
        port: int = 0,
        calendar: MarketCalendar | None = None,
        max_clients: int = MAX_CLIENTS,
        pacing_grace: float = PACING_GRACE_SECONDS,
        pump_interval: float = PUMP_INTERVAL_SECONDS,
    ) -> None:
        if not accounts:
            raise ValueError("a gateway needs at least one account")
        self.clock = clock
        self.accounts = list(accounts)
        self.market = market
        self.instruments = instruments
        self.engine = engine
        self.quotes = quotes
        self.calendar = calendar
        self.pacing = pacing
        self.max_msgs_per_sec = max_msgs_per_sec
        self.pacing_grace = pacing_grace
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.pump_interval = pump_interval
        #: False between lose_connectivity() and restore_connectivity(): no fills.
        self.ib_connected = True
        #: True between hang() and a restart (or unhang()): sockets stay open, nothing answers.
        self.hung = False
        self.sessions: dict[int, Session] = {}
        self.connections: set[Session] = set()
        self.faults: list[ScheduledFault] = []
        self.pacing_violations = 0
        self.restarts = 0
        self._order_ids: dict[int, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._server: asyncio.Server | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._kick_pending = False
        self._last_pnl = 0.0
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()

    # -- lifecycle ------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the gateway is not started")
        return self._loop

    @property
    def advisor(self) -> bool:
        """Several accounts behind one login: every order must name its account."""
        return len(self.accounts) > 1

    async def start(self) -> None:
        """Listen (port 0 picks a free one, then `self.port` holds it) and start the pump."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopped = asyncio.Event()
        await self._listen()
        self._pump_task = self._loop.create_task(self._pump_forever())
        log.info(
            "ibsim gateway on %s:%d, server version %d, accounts %s, pacing %s",
            self.host,
            self.port,
            SERVER_VERSION,
            ",".join(self.accounts),
            f"{self.max_msgs_per_sec}/s" if self.pacing else "off",
        )

    async def stop(self) -> None:
        """Stop listening, drop every client, stop the pump."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        self._listening.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        sessions = list(self.connections)
        for session in sessions:
            session.close()
        await asyncio.sleep(0)  # let the last messages go out
        for session in sessions:
            session.abort()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start and run until stop() (the standalone command)."""
        await self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    def start_in_thread(self) -> Gateway:
        """Run the gateway on its own event loop in a daemon thread; returns when listening."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            assert self._stopped is not None
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"ibsim-{self.port}", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def stop_thread(self) -> None:
        """Stop a gateway started with start_in_thread() and join its thread."""
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)
        self._thread = None

    async def _listen(self) -> None:
        loop = self.loop
        self._server = await loop.create_server(
            lambda: Session(self), self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        self._listening.set()

    def wait_listening(self, timeout: float = 30.0) -> bool:
        """Block (another thread) until the gateway accepts connections, e.g. after a restart."""
        return self._listening.wait(timeout)

    # -- clients --------------------------------------------------------------

    def admit(self, session: Session, client_id: int) -> bool:
        """IB's clientId rules at startApi: unique among live clients, at most 32."""
        current = self.sessions.get(client_id)
        if current is not None and not current.closed:
            log.warning("clientId %d already in use; refusing %s", client_id, session.peer)
            session.error(-1, 326, MSG_CLIENT_ID_IN_USE)
            session.close()
            return False
        live = sum(1 for s in self.sessions.values() if not s.closed)
        if live >= self.max_clients:
            log.warning("%d clients connected; refusing clientId %d", live, client_id)
            session.error(
                -1,
                CODE_TOO_MANY_CLIENTS,
                f"Couldn't connect to TWS: the maximum of {self.max_clients} API clients "
                "is connected.",
            )
            session.close()
            return False
        session.client_id = client_id
        session.started = True
        self.sessions[client_id] = session
        log.info("client %d connected from %s", client_id, session.peer)
        return True

    def _forget(self, session: Session) -> None:
        self.connections.discard(session)
        if session.started and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            log.info("client %d disconnected", session.client_id)

    def session(self, client_id: int) -> Session | None:
        """The live session of a clientId, if connected."""
        session = self.sessions.get(client_id)
        return session if session is not None and not session.closed else None

    def client_ids(self) -> list[int]:
        """ClientIds connected now (thread-safe)."""
        return self._on_loop(lambda: sorted(self.sessions))

    def note_order_id(self, client_id: int, order_id: int) -> None:
        """Remember an order id a client used, so nextValidId/reqIds stay above it."""
        if order_id > self._order_ids.get(client_id, 0):
            self._order_ids[client_id] = order_id

    def next_order_id(self, client_id: int) -> int:
        """The next valid order id: above every id this client (or, per the engine, anyone)
        has used today, as ib_async itself keeps its ids above any it has seen."""
        highest = self._order_ids.get(client_id, 0)
        engine = self.engine
        if hasattr(engine, "next_valid_id"):
            return max(highest + 1, int(engine.next_valid_id()))
        records = list(engine.open_orders(client_id))
        records += [r for r in engine.completed_orders() if r.client_id == client_id]
        for record in records:
            highest = max(highest, int(record.order_id))
        return highest + 1

    # -- faults ---------------------------------------------------------------

    def lose_connectivity(self) -> None:
        """IB's servers unreachable: 1100 to every client; no fills until restored."""
        self._on_loop(self._lose)

    def restore_connectivity(self, data_lost: bool = False) -> None:
        """Connectivity back: 1101 (data lost: resubscribe) or 1102 (data maintained)."""
        self._on_loop(lambda: self._restore(data_lost))

    def hang(self) -> None:
        """A hung gateway: connected sockets stay open but no request is answered
        (a frozen IB Gateway JVM). A restart() cures it."""
        self.hung = True

    def unhang(self) -> None:
        self.hung = False

    def restart(self, downtime: float = 0.0) -> None:
        """A gateway restart: every socket dropped with its queued output, then accept again.

        Sockets are dropped at once; listening resumes after `downtime` wall
        seconds. From another thread this returns once the gateway listens
        again; on the loop it returns at once.
        """
        if self._in_loop():
            self._drop_all()
            self.loop.create_task(self._relisten(downtime))
        else:
            asyncio.run_coroutine_threadsafe(self._restart(downtime), self.loop).result(
                timeout=30 + downtime
            )

    def shut_down(self) -> None:
        """The gateway process is down (a crash, a stuck 2FA login): every socket
        dropped and connections refused until `come_back()`. IB's side (orders,
        fills, expiry) goes on, as it does at IB meanwhile."""
        self._on_loop(self._drop_all)

    def come_back(self) -> None:
        """Listen again after `shut_down()` (same port)."""
        if self._in_loop():
            self.loop.create_task(self._relisten(0.0))
        else:
            asyncio.run_coroutine_threadsafe(self._relisten(0.0), self.loop).result(timeout=30)

    def schedule_fault(self, at: datetime, action: str) -> None:
        """Fire `action` (lose_connectivity | restore | restore_data_lost | restart |
        shut_down | come_back) at `at`."""
        if action not in FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {action!r}; use one of {FAULT_ACTIONS}")
        if at.tzinfo is None:
            raise ValueError("fault times must be timezone-aware")

        def add() -> None:
            self.faults.append(ScheduledFault(at, action))
            self.faults.sort(key=lambda f: f.at)

        self._on_loop(add)

    def disconnect_at(
        self, at: datetime, restore_at: datetime | None = None, data_lost: bool = False
    ) -> None:
        """Lose connectivity at `at`; restore at `restore_at` (1101 if data_lost, else 1102)."""
        self.schedule_fault(at, "lose_connectivity")
        if restore_at is not None:
            self.schedule_fault(restore_at, "restore_data_lost" if data_lost else "restore")

    def _lose(self) -> None:
        self.ib_connected = False
        log.info("fault: connectivity to IB lost")
        for session in self._live():
            session.error(-1, 1100, MSG_LOST)

    def _restore(self, data_lost: bool) -> None:
        self.ib_connected = True
        log.info("fault: connectivity restored (%s)", "data lost" if data_lost else "maintained")
        code, message = (1101, MSG_RESTORED_DATA_LOST) if data_lost else (1102, MSG_RESTORED)
        for session in self._live():
            session.error(-1, code, message)
        self.kick()

    def _drop_all(self) -> None:
        log.info("fault: gateway restart")
        self.restarts += 1
        self.hung = False
        self._listening.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self.connections):
            session.abort()
        self.sessions.clear()

    async def _relisten(self, downtime: float) -> None:
        if downtime > 0:
            await asyncio.sleep(downtime)
        await self._listen()
        log.info("gateway listening again on %s:%d", self.host, self.port)

    async def _restart(self, downtime: float) -> None:
        self._drop_all()
        await self._relisten(downtime)

    def _fire(self, fault: ScheduledFault) -> None:
        fault.done = True
        if fault.action == "lose_connectivity":
            self._lose()
        elif fault.action == "restore":
            self._restore(data_lost=False)
        elif fault.action == "restore_data_lost":
            self._restore(data_lost=True)
        elif fault.action == "restart":
            self.restart()
        elif fault.action == "shut_down":
            self._drop_all()
        elif fault.action == "come_back":
            self.loop.create_task(self._relisten(0.0))

    # -- engine pump ------------------------------------------------------------

    def kick(self) -> None:
        """Step the engine on the next loop turn (after an order request)."""
        if self._kick_pending or self._loop is None:
            return
        self._kick_pending = True
        self._loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        self._kick_pending = False
        self._pump_once()

    def pump(self) -> int:
        """Step now and route the events (thread-safe); the number of events routed."""
        return self._on_loop(self._pump_once)

    async def _pump_forever(self) -> None:
        while True:
            await asyncio.sleep(self.pump_interval)
            try:
                self._pump_once()
            except Exception:
                log.exception("engine pump failed")

    def _pump_once(self) -> int:
        now = self.clock.now()
        for fault in self.faults:
            if not fault.done and fault.at <= now:
                self._fire(fault)
        if self.faults and all(f.done for f in self.faults):
            self.faults.clear()
        routed = 0
        if self.ib_connected:
            events = self.engine.step()
            if events:
                routed = self.route(events)
        wall = self.loop.time()
        if wall - self._last_pnl >= PNL_INTERVAL_SECONDS:
            self._last_pnl = wall
            self._stream_pnl()
        return routed

    def route(self, events: Iterable[Any]) -> int:
        """Send engine events to the clients that own them; stream account changes.

        OpenOrder/WhatIf -> openOrder, Status -> orderStatus, Fill -> execDetails
        (reqId -1) and commissionReport, Error -> error. A client that is not
        connected misses them (IB does the same; it reconciles on reconnect).
        """
        changed_accounts: set[str] = set()
        routed = 0
        for event in events:
            kind = type(event).__name__
            if kind == "ErrorEvent":
                session = self.session(int(event.client_id))
                if session is not None:
                    session.error(
                        int(event.req_id),
                        int(event.code),
                        str(event.message),
                        str(getattr(event, "advanced", "") or ""),
                    )
                    routed += 1
                continue
            record = getattr(event, "record", None)
            if record is None:
                log.warning("unroutable engine event %r", event)
                continue
            if kind == "FillEvent":
                changed_accounts.add(str(event.fill.execution.acctNumber))
            session = self.session(int(record.client_id))
            if session is None:
                continue
            version = session.server_version
            if kind in ("OpenOrderEvent", "WhatIfEvent"):
                session.send(*codec.encode_record_open_order(record, version))
            elif kind == "StatusEvent":
                session.send(*codec.encode_record_status(record, version))
            elif kind == "FillEvent":
                fill = event.fill
                session.send(*codec.encode_exec_details(-1, fill.contract, fill.execution, version))
                session.send(*codec.encode_commission_report(fill.commission))
            else:
                log.warning("unknown engine event %s", kind)
                continue
            routed += 1
        if changed_accounts:
            self._stream_accounts(changed_accounts)
        return routed

    def _stream_accounts(self, accounts: set[str]) -> None:
        for session in self._live():
            connect.refresh_after_fills(session, accounts)

    def _stream_pnl(self) -> None:
        for session in self._live():
            if session.pnl_subscriptions:
                connect.refresh_pnl(session)

    # -- threading helpers ------------------------------------------------------

    def _live(self) -> list[Session]:
        return [s for s in self.sessions.values() if not s.closed]

    def _in_loop(self) -> bool:
        return self._loop_thread == threading.get_ident()

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the gateway's loop and return its result (from any thread)."""
        loop = self._loop
        if loop is None or self._in_loop() or not loop.is_running():
            return fn()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout=30)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the gateway's loop (e.g. to inspect the engine from a test)."""
        return self._on_loop(lambda: fn(*args))
