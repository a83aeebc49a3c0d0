"""The WebSocket server: a thin adapter between sockets and `exchange.protocol`.

Built on `websockets.asyncio.server` with explicit limits (see `ServerConfig`):
compression off (measured ~30 % faster for small JSON frames), 64 KiB max message
(larger → close 1009, by websockets), keepalive ping/pong, an opening-handshake
timeout, a maximum number of connections (more → HTTP 503 before the upgrade), and a
per-connection token-bucket rate limit: a message over the limit is answered -1015
and not processed; a connection that keeps going over it (more than `abuse_strikes`
rejections within `abuse_window` seconds) is closed with 1008.

Each connection's requests take effect, and are answered, in the order they arrive (a
read after a write sees the write). With a durable store (or `pipeline=True`) the
connection reads on while an order placement or cancellation waits for its commit
(`Session.pipeline`), so one client that pipelines has its commands committed in groups
rather than one commit each; at most `max_pipeline` requests are in flight, then the
connection stops reading until the oldest is answered. Stream messages go through the
connection's own bounded outbox, written in batches: at most one socket write per
`flush_interval` per connection carries everything queued (answers never wait for it:
each is written at once, as one frame, when the socket takes it);
a client that stops reading lets its outbox fill, and past `max_outbox` messages it is
closed with 1008 "slow consumer" and counted — the engine and the other clients never
wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from exchange.auth import AdminAuth, KeyStore
from exchange.core.errors import MESSAGES, Code
from exchange.protocol.api import Api
from exchange.protocol.session import Session
from exchange.protocol.wire import error_text, loads
from exchange.runtime import Runtime
from exchange.sessions import SessionTokens

log = logging.getLogger("margincall.server")

ROUTE_SLICE = 64  # events routed between two turns of the event loop
FLUSH_SLICE = 50  # connections written between two turns of the event loop
PRIVATE = '{"stream":"account"'  # how an account stream message begins (see protocol.wire)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    max_size: int = 64 * 1024
    compression: str | None = None
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float | None = 5.0
    max_connections: int = 1000
    rate_limit: float | None = 5000.0  # messages per second per connection; None = off
    rate_burst: float | None = None  # bucket size; default 2 × rate_limit
    abuse_strikes: int = 1000  # -1015 answers within abuse_window before disconnecting
    abuse_window: float = 10.0
    max_outbox: int = 10_000  # stream messages waiting for a slow reader
    flush_interval: float = 0.1  # s between two batched writes of stream messages
    socket_send_buffer: int | None = None  # SO_SNDBUF per connection; None = the OS default
    fanout_queue: int = 100_000  # event batches waiting for the router
    pipeline: bool | None = None  # read on while commands commit; None = if the store is durable
    max_pipeline: int = 1024  # requests in flight per connection when pipelining


class TokenBucket:
    """`rate` tokens a second, at most `burst` stored. O(1) per message."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


def text_frame_header(n: int) -> bytes:
    """RFC 6455 §5.2: the header of a final, unmasked text frame of `n` payload bytes
    (a server never masks; without extensions the payload goes as is)."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n)
    return struct.pack("!BBQ", 0x81, 127, n)


class Connection:
    """One client: its session, outbox and writer task.

    Stream messages are written in batches: `enqueue` only queues, and the server's one
    flush (`Server._flush`, at most once per `flush_interval`, at once when the previous
    flush is older) writes each connection's queued messages as one socket write — one
    syscall for many frames, no task switch per connection per engine turn. A message of
    the private `account` stream is written at the next turn of the loop instead (with
    what is queued before it). A connection
    whose socket buffer is over its high-water mark (a slow reader) is left to its writer
    task, which sends one message at a time and waits for the buffer to drain; its
    outbox then fills, and past `max_outbox` it is closed.
    """

    def __init__(self, server: Server, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.session = Session(server.api, self.enqueue)
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.dead = False
        self.sending = False  # the writer task is sending (the batch path stays out)
        self.batched = isinstance(ws, ServerConnection)  # else: one send per message
        self._dirty = False
        self._urgent = False
        cfg = server.config
        self.bucket = (
            TokenBucket(cfg.rate_limit, cfg.rate_burst or 2 * cfg.rate_limit)
            if cfg.rate_limit
            else None
        )
        self.strikes: deque[float] = deque()
        self.writer: asyncio.Task[None] | None = None

    def enqueue(self, text: str) -> None:
        if self.dead:
            return
        if len(self.outbox) >= self.server.config.max_outbox:
            self.kill(1008, "slow consumer: too many unread messages")
            self.server.slow_consumers_dropped += 1
            return
        self.outbox.append(text)
        if not self.batched:
            self.wake.set()
            return
        if not self._dirty:
            self._dirty = True
            self.server._mark_dirty(self)
        if not self._urgent and (
            text.startswith(PRIVATE) or len(self.outbox) * 2 >= self.server.config.max_outbox
        ):
            # the account's own order and fill updates go out at once, as answers do
            # (with whatever is queued before them, in order); market data waits, unless
            # half the outbox is used: a burst must not close a reader that keeps up
            self._urgent = True
            asyncio.get_running_loop().call_soon(self._flush_urgent)

    def _flush_urgent(self) -> None:
        self._urgent = False
        if self._dirty:
            self.flush()

    def _writable(self) -> bool:
        """The socket takes a write now: the connection is open, no send of the writer
        task is under way, and the socket's buffer is below its high-water mark."""
        ws = self.ws
        transport = ws.transport
        return not (
            self.sending
            or ws.protocol.state is not State.OPEN
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]
        )

    def flush(self) -> None:
        """Write everything queued in one socket write, unless the socket is backed up
        (then the writer task takes over). Synchronous: frames of one connection never
        interleave, as websockets writes a frame in one synchronous step too."""
        self._dirty = False
        outbox = self.outbox
        if self.dead or not outbox:
            return
        if not self._writable():
            self.wake.set()
            return
        protocol = self.ws.protocol
        n = len(outbox)
        if protocol.extensions:  # e.g. compression: frames only websockets can build
            for _ in range(n):
                protocol.send_text(outbox.popleft().encode())
            self.ws.transport.write(b"".join(protocol.data_to_send()))
        else:
            parts = []
            for _ in range(n):
                data = outbox.popleft().encode()
                parts.append(text_frame_header(len(data)))
                parts.append(data)
            self.ws.transport.write(b"".join(parts))
        self.server.stream_messages_sent += n

    async def answer(self, text: str) -> None:
        """Send one answer now, ahead of queued stream messages (as `ws.send` would).

        When the socket takes it at once and no extension is on, the frame is written
        here in one synchronous step, without websockets' per-message send machinery
        (its lock and drain check: ~7 % of an acknowledgement's instructions in the
        server); else through `ws.send`, which waits for the socket to drain."""
        if not self.batched or self.ws.protocol.extensions or not self._writable():
            await self.ws.send(text)
            return
        data = text.encode()
        self.ws.transport.write(text_frame_header(len(data)) + data)

    def kill(self, code: int, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        self.outbox.clear()
        self.session.close()
        task = asyncio.ensure_future(self._close(code, reason))
        self.server._background.add(task)
        task.add_done_callback(self.server._background.discard)

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code, reason), self.server.config.close_timeout)
        except (TimeoutError, Exception):
            transport = self.ws.transport
            if transport is not None:
                transport.abort()

    async def write_loop(self) -> None:
        """One message at a time, waiting for the socket to drain: the path of a
        connection without batching, and of a slow reader."""
        ws, outbox = self.ws, self.outbox
        try:
            while not self.dead:
                if not outbox:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                self.sending = True
                try:
                    while outbox and not self.dead:
                        text = outbox.popleft()
                        await ws.send(text)
                        self.server.stream_messages_sent += 1
                finally:
                    self.sending = False
        except ConnectionClosed:
            pass

    def limited(self) -> bool:
        """True when this message is over the rate limit (and counts the strike)."""
        b = self.bucket
        if b is None or b.take():
            return False
        now = time.monotonic()
        s = self.strikes
        s.append(now)
        window = self.server.config.abuse_window
        while s and s[0] < now - window:
            s.popleft()
        self.server.rate_limited += 1
        if len(s) > self.server.config.abuse_strikes:
            self.server.abusers_disconnected += 1
            self.kill(1008, "rate limit exceeded")
        return True


def _request_id(msg: str | bytes) -> Any:
    """The id of a request we will not process (so the client can match the -1015)."""
    if not isinstance(msg, str):
        return None
    try:
        req = loads(msg)
    except (ValueError, RecursionError):
        return None
    rid = req.get("id") if type(req) is dict else None
    if type(rid) is int or (type(rid) is str and len(rid) <= 64):
        return rid
    return None


class Server:
    """The WebSocket API over a `Runtime`. `await start()`, `url`, `await stop()`."""

    def __init__(
        self,
        runtime: Runtime,
        config: ServerConfig | None = None,
        *,
        keys: KeyStore | None = None,
        admin: AdminAuth | None = None,
        sessions: SessionTokens | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config or ServerConfig()
        self.api = Api(runtime, keys=keys, admin=admin, sessions=sessions, stats=self.stats)
        self.connections: set[Connection] = set()
        self._ws: WsServer | None = None
        self._router_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._dirty: list[Connection] = []
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self.port: int | None = None
        # counters
        self.accepted = 0
        self.refused_connections = 0
        self.slow_consumers_dropped = 0
        self.rate_limited = 0
        self.abusers_disconnected = 0
        self.stream_messages_sent = 0
        self.binary_frames = 0

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}"

    @property
    def admin_token(self) -> str:
        return self.api.admin.token

    async def start(self) -> None:
        cfg = self.config
        router = self.api.router
        sub = self.runtime.subscribe(
            "ws-fanout",
            cfg.fanout_queue,
            policy="drop",
            active=lambda: bool(router.topics or router.accounts),
        )
        self._router_task = asyncio.create_task(self._route(sub), name="margincall-fanout")
        self._sub = sub
        self._ws = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            compression=cfg.compression,
            max_size=cfg.max_size,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            open_timeout=cfg.open_timeout,
            close_timeout=cfg.close_timeout,
            process_request=self._process_request,
        )
        sock = next(iter(self._ws.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
            self._ws = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._router_task is not None:
            self._sub.close()
            self._router_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._router_task
            self._router_task = None
        for t in list(self._background):
            t.cancel()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _route(self, sub: Any) -> None:
        """Route each batch in order; a large one (a cascade) in slices of `ROUTE_SLICE`
        events with a turn of the loop between them, so answers and the engine are not
        held behind a fan-out of many thousand messages."""
        route = self.api.router.route
        n = ROUTE_SLICE
        async for batch in sub:
            for i in range(0, len(batch), n):
                try:
                    route(batch[i : i + n] if len(batch) > n else batch)
                except Exception:
                    log.exception("routing a batch failed")
                if len(batch) > i + n:
                    await asyncio.sleep(0)

    def _mark_dirty(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            at = self._last_flush + self.config.flush_interval
            if at <= loop.time():
                self._flush_handle = loop.call_soon(self._flush)
            else:
                self._flush_handle = loop.call_at(at, self._flush)

    def _flush(self) -> None:
        """Every connection with queued stream messages writes them (see `Connection`),
        `FLUSH_SLICE` connections per turn of the loop, so an answer waits for at most
        one slice of them."""
        loop = asyncio.get_running_loop()
        self._flush_handle = None
        self._last_flush = loop.time()
        dirty, self._dirty = self._dirty, []
        self._flush_slice(dirty, 0)

    def _flush_slice(self, dirty: list[Connection], start: int) -> None:
        end = start + FLUSH_SLICE
        for conn in dirty[start:end]:
            try:
                conn.flush()
            except Exception:  # the connection is closing under us: its own path ends it
                log.debug("batched write failed", exc_info=True)
                conn.wake.set()
        if end < len(dirty):
            asyncio.get_running_loop().call_soon(self._flush_slice, dirty, end)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if len(self.connections) >= self.config.max_connections:
            self.refused_connections += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections.\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        if len(self.connections) >= self.config.max_connections:
            self.refused_connections += 1
            await ws.close(1013, "too many connections")
            return
        if self.config.socket_send_buffer:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.socket_send_buffer)
        conn = Connection(self, ws)
        self.connections.add(conn)
        self.accepted += 1
        conn.writer = asyncio.create_task(conn.write_loop())
        if self._pipelining():
            try:
                await self._serve_pipelined(conn)
            finally:
                await self._closed(conn)
            return
        handle = conn.session.handle_text
        answer = conn.answer
        try:
            async for msg in ws:
                if conn.dead:
                    break
                if conn.limited():
                    if conn.dead:
                        break
                    await ws.send(
                        error_text(
                            _request_id(msg),
                            int(Code.TOO_MANY_REQUESTS),
                            MESSAGES[Code.TOO_MANY_REQUESTS],
                            429,
                        )
                    )
                    continue
                if not isinstance(msg, str):
                    self.binary_frames += 1
                await answer(await handle(msg))
        except ConnectionClosed:
            pass
        finally:
            await self._closed(conn)

    def _pipelining(self) -> bool:
        p = self.config.pipeline
        if p is None:
            clog = self.runtime.command_log
            return bool(clog is not None and clog.durable)
        return p

    async def _serve_pipelined(self, conn: Connection) -> None:
        """Read requests while earlier ones wait for their commit; answer in order."""
        ws, session = conn.ws, conn.session
        answers: deque[asyncio.Future[str]] = deque()
        wake = asyncio.Event()
        cap = self.config.max_pipeline
        loop = asyncio.get_running_loop()

        async def answer_loop() -> None:
            while True:
                if not answers:
                    wake.clear()
                    await wake.wait()
                    continue
                text = await answers[0]
                answers.popleft()
                await conn.answer(text)

        sender = asyncio.create_task(answer_loop())
        try:
            async for msg in ws:
                if conn.dead or sender.done():
                    break
                if conn.limited():
                    if conn.dead:
                        break
                    fut: asyncio.Future[str] = loop.create_future()
                    fut.set_result(
                        error_text(
                            _request_id(msg),
                            int(Code.TOO_MANY_REQUESTS),
                            MESSAGES[Code.TOO_MANY_REQUESTS],
                            429,
                        )
                    )
                    answers.append(fut)
                    wake.set()
                    continue
                if not isinstance(msg, str):
                    self.binary_frames += 1
                task, ready = session.pipeline(msg)
                answers.append(task)
                wake.set()
                await ready
                while len(answers) >= cap and not sender.done():
                    await asyncio.wait((answers[0], sender), return_when=asyncio.FIRST_COMPLETED)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    async def _closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        conn.session.close()
        conn.dead = True
        conn.wake.set()
        if conn.writer is not None:
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await conn.writer

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "accepted": self.accepted,
            "refusedConnections": self.refused_connections,
            "slowConsumersDropped": self.slow_consumers_dropped,
            "rateLimited": self.rate_limited,
            "abusersDisconnected": self.abusers_disconnected,
            "streamMessagesSent": self.stream_messages_sent,
            "binaryFrames": self.binary_frames,
            "fanoutDroppedBatches": self._sub.dropped_batches if self._router_task else 0,
        }
