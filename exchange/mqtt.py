"""The MQTT bridge: market data out through a broker (Mosquitto), an index-price feed in.

One more adapter around the core (see docs/mqtt.md for topics, payloads and QoS):

* **out** — a runtime subscription (`policy="drop"`, bounded) feeds a consumer task that
  takes each public event's payload from the runtime's shared `Formatter` (formatted once for
  the WebSocket streams and the bridge alike), so every payload is the same
  JSON, byte for byte, as the `data` of the matching WebSocket stream message. Messages
  go into two bounded outgoing queues (one per QoS; oldest dropped and counted when
  full) that a publisher task drains while connected; paho is handed a QoS 1 message
  only while it holds fewer than `max_inflight` + a small margin, so nothing escapes the
  bound. The engine never waits for the broker.
* **retained state** — the last `mark`, `ticker`, `status` and `depth` of each symbol
  are kept here too (built from the engine's market state at start, so an idle exchange
  has them), published retained with an MQTT v5 message expiry, and republished after
  every reconnect (queued older copies are discarded first, so the broker never goes
  back to a stale value).
* **in** — messages on the index topic (JSON ``{"symbol": "BTCUSDT", "price": "50000.1",
  "ts": 1700000000000000000}``, `ts` optional) are validated here and become
  `SetIndexPrice` commands through the runtime's queue, at most one waiting per symbol
  (newer prices coalesce behind it); bad payloads are counted and logged and never
  reach the core; retained (replayed) prices are ignored.
* **connection** — one loop: connect, subscribe, republish, publish until the broker goes
  away, then reconnect with exponential backoff (capped, with jitter).

`install(opts, url, ...)` wires the bridge into `margincall serve --mqtt URL`; its
counters appear in `admin.stats` under ``result.server.mqtt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from exchange import units
from exchange.core import commands as C
from exchange.core import events as E
from exchange.protocol.formatter import Formatter
from exchange.protocol.wire import encode_plain, loads
from exchange.runtime import Runtime
from exchange.units import UnitError

log = logging.getLogger("margincall.mqtt")

PREFIX = "margincall/v1"
MAX_INDEX_PAYLOAD = 1024  # bytes
INDEX_KEYS = frozenset({"symbol", "price", "ts"})
_HELD_MARGIN = 12  # QoS 1 messages paho may hold beyond its in-flight window

# stream kind → (topic kind, QoS, retained)
_KIND_OF_STREAM = {
    "book": ("book", 0, False),
    "trades": ("trades", 0, False),
    "mark": ("mark", 0, True),
    "liquidations": ("liquidations", 1, False),
    "cascades": ("cascades", 1, False),
    "status": ("status", 1, True),
    "depth": ("depth", 0, True),
}
_PUBLIC_EVENTS = frozenset(
    {
        E.BookUpdated,
        E.OrderFilled,
        E.MarkPriceChanged,
        E.PositionLiquidated,
        E.CascadeEnded,
        E.SymbolHalted,
        E.SymbolResumed,
    }
)
# events after which a symbol's top of book / prices may have changed
_TICKER_EVENTS = frozenset(
    {E.BookUpdated, E.OrderFilled, E.MarkPriceChanged, E.SymbolHalted, E.SymbolResumed}
)


@dataclass
class MqttConfig:
    """Where the broker is and how the bridge behaves (see docs/mqtt.md).

    `validate()` (run on construction, by `from_url` and by `MqttBridge`) raises
    `ValueError` for values the broker or the topic scheme cannot take."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    venue: str = "margincall"
    prefix: str = PREFIX
    index_topic: str | None = None  # None: <prefix>/<venue>/index-feed; "": no index feed
    client_id: str | None = None
    mark_expiry: int = 60  # s, message expiry of the retained mark, ticker and depth
    status_expiry: int = 86_400  # s, of the retained status
    queue_size: int = 10_000  # outgoing messages buffered per QoS (oldest dropped beyond)
    subscription_size: int = 1024  # event batches buffered between engine and bridge
    backoff_min: float = 0.1
    backoff_max: float = 5.0
    max_index_age: float | None = None  # s; feed messages with an older `ts` are stale
    max_index_skew: float = 5.0  # s a feed `ts` may be ahead of our clock (else bad)
    index_queue_size: int = 1000  # index messages received and not yet validated
    keepalive: int = 10
    max_inflight: int = 20  # QoS 1 messages sent and not yet acknowledged
    socket_backlog: int = 2000  # packets paho may hold unsent before the bridge pauses
    depth_levels: int = 20  # per side in the retained `depth`
    depth_interval: float = 1.0  # s; at most one `depth` per symbol per interval
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ValueError` naming the first bad setting."""
        v = self.venue
        if not isinstance(v, str) or not v or any(c in v for c in "/+#\0"):
            raise ValueError(
                f"MQTT venue must be one non-empty topic level (no '/', '+', '#'), not {v!r}"
            )
        for name in ("mark_expiry", "status_expiry"):
            x = getattr(self, name)
            if type(x) is not int or not 0 <= x < 2**32:
                raise ValueError(f"MQTT {name} must be an integer in 0..2**32-1 s, not {x!r}")
        if type(self.keepalive) is not int or not 1 <= self.keepalive <= 65535:
            raise ValueError(f"MQTT keepalive must be 1..65535 s, not {self.keepalive!r}")
        for name in ("queue_size", "subscription_size", "index_queue_size", "max_inflight"):
            x = getattr(self, name)
            if type(x) is not int or x < 1:
                raise ValueError(f"MQTT {name} must be a positive integer, not {x!r}")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise ValueError("MQTT backoff must satisfy 0 < backoff_min <= backoff_max")
        if not self.max_index_skew >= 0:
            raise ValueError("MQTT max_index_skew must be >= 0")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.venue}"

    @property
    def bridge_topic(self) -> str:
        """The bridge's own online/offline topic, one level under the venue (so it never
        matches ``<venue>/+/<kind>``)."""
        return f"{self.base}/bridge"

    @property
    def index_feed_topic(self) -> str:
        if self.index_topic is None:
            return f"{self.base}/index-feed"
        return self.index_topic

    def topic(self, symbol: str, kind: str) -> str:
        return f"{self.base}/{symbol}/{kind}"

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttConfig:
        """``mqtt://[user[:password]@]host[:port]``; keyword arguments override.
        Raises `ValueError` for a bad URL or setting."""
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"MQTT URL must start with mqtt://, not {url!r}")
        try:
            port = u.port or 1883
        except ValueError as e:
            raise ValueError(f"MQTT URL {url!r}: {e}") from None
        cfg = cls(host=u.hostname or "127.0.0.1", port=port)
        if u.username:
            cfg.username = unquote(u.username)
        if u.password:
            cfg.password = unquote(u.password)
        for k, v in kw.items():
            if v is not None:
                setattr(cfg, k, v)
        cfg.validate()
        return cfg


class Outgoing(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    expiry: int  # s; 0: none


class IndexFeedError(ValueError):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


class FastPublisher:
    """A second, publish-only MQTT v5 connection for QoS 0 messages.

    paho spends ~30 µs of Python per message (a `MQTTMessageInfo` with a lock, a
    `Properties` and a `ReasonCode` for the callback, one `send` per packet); ticks are
    most of the traffic and need none of that. This writes PUBLISH packets (QoS 0, with
    the message-expiry property when asked) into one buffer per burst and lets asyncio's
    transport send it with one system call. It sends PINGREQ on time and treats EOF or a
    DISCONNECT from the broker as the end of the session. QoS 1 messages, the will, the
    index subscription and reconnection stay with aiomqtt.
    """

    def __init__(self, cfg: MqttConfig) -> None:
        self.cfg = cfg
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._parts: list[bytes] = []
        self._prop_bytes: dict[int, bytes] = {0: b"\x00"}

    async def connect(self) -> None:
        """Open the socket and complete CONNECT/CONNACK; on any failure the socket is
        closed before the exception propagates."""
        try:
            await self._connect()
        except BaseException:
            self.close()
            raise

    async def _connect(self) -> None:
        cfg = self.cfg
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(cfg.host, cfg.port), 5.0
        )
        flags = 0x02  # clean start
        payload = _str((cfg.client_id or "margincall") + "-fast-" + uuid.uuid4().hex[:8])
        if cfg.username is not None:
            flags |= 0x80
            payload += _str(cfg.username)
            if cfg.password is not None:
                flags |= 0x40
                payload += _str(cfg.password)
        var = _str("MQTT") + bytes([5, flags]) + cfg.keepalive.to_bytes(2, "big") + b"\x00"
        body = var + payload
        self.writer.write(b"\x10" + _varint(len(body)) + body)
        kind, body = await asyncio.wait_for(self._read_packet(), 5.0)
        if kind != 0x20 or len(body) < 2:
            raise aiomqtt.MqttError(f"fast path: expected CONNACK, got {kind:#x}")
        if body[1] != 0:
            raise aiomqtt.MqttError(f"fast path: broker refused the connection ({body[1]:#x})")

    async def _read_packet(self) -> tuple[int, bytes]:
        """(first byte, body) of the next packet; raises `MqttError` at EOF."""
        assert self.reader is not None
        try:
            head = await self.reader.readexactly(1)
            n, shift = 0, 0
            while True:
                b = (await self.reader.readexactly(1))[0]
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80 or shift > 21:
                    break
            return head[0], await self.reader.readexactly(n)
        except (OSError, asyncio.IncompleteReadError) as e:
            raise aiomqtt.MqttError(
                f"fast path: the broker closed the connection ({e!r})"
            ) from None

    def add(self, msg: Outgoing) -> None:
        props = self._prop_bytes.get(msg.expiry)
        if props is None:
            props = b"\x05\x02" + msg.expiry.to_bytes(4, "big")
            self._prop_bytes[msg.expiry] = props
        topic = msg.topic.encode()
        n = 2 + len(topic) + len(props) + len(msg.payload)
        self._parts.append(
            b"".join(
                (
                    b"\x31" if msg.retain else b"\x30",
                    _varint(n),
                    len(topic).to_bytes(2, "big"),
                    topic,
                    props,
                    msg.payload,
                )
            )
        )

    def flush(self) -> None:
        if self._parts and self.writer is not None:
            self.writer.write(b"".join(self._parts))
            self._parts.clear()

    def backlog(self) -> int:
        w = self.writer
        return w.transport.get_write_buffer_size() if w is not None else 0

    async def run(self) -> None:
        """Keepalive and read until the broker goes away (then raise `MqttError`)."""
        assert self.reader is not None and self.writer is not None
        period = max(1.0, self.cfg.keepalive / 2)

        async def ping() -> None:
            while True:
                await asyncio.sleep(period)
                assert self.writer is not None
                self.writer.write(b"\xc0\x00")

        pinger = asyncio.create_task(ping())
        try:
            while True:
                kind, body = await self._read_packet()
                if kind & 0xF0 == 0xE0:  # DISCONNECT (e.g. a packet the broker refused)
                    code = body[0] if body else 0
                    raise aiomqtt.MqttError(f"fast path: the broker disconnected ({code:#x})")
        finally:
            pinger.cancel()

    def close(self) -> None:
        """Send DISCONNECT (best effort) and close the socket; safe to call twice."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.write(b"\xe0\x00")
                self.writer.close()
            self.writer = None

    async def aclose(self, timeout: float = 1.0) -> None:
        """`close()`, then wait (bounded) until the transport has flushed and closed."""
        writer = self.writer
        self.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout)


class MqttBridge:
    """Publishes market data to MQTT and feeds index prices from MQTT into the runtime."""

    def __init__(self, runtime: Runtime, config: MqttConfig | None = None) -> None:
        self.runtime = runtime
        self.config = config or MqttConfig()
        self.config.validate()
        self.formatter = Formatter.shared(runtime)
        self.retained: dict[str, Outgoing] = {}
        self._out: deque[Outgoing] = deque()  # QoS 0: ticks, shed first
        self._out1: deque[Outgoing] = deque()  # QoS 1: liquidations, cascades, status
        self._wake = asyncio.Event()
        self._sub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aiomqtt.Client | None = None
        self._paho: Any = None  # the current session's paho client (its held messages)
        self._fast: FastPublisher | None = None
        self._stopping = False
        self._last_index_ts: dict[str, int] = {}
        self._index_pending: set[str] = set()  # symbols with a SetIndexPrice in the runtime
        self._index_next: dict[str, int] = {}  # latest accepted price behind that one
        self._props_cache: dict[int, Properties] = {}
        self._routes: dict[str, tuple[str, int, bool, int]] = {}
        self._depth_seq: dict[str, int] = {}  # bookSeq of the last `depth` per symbol
        self._seeded_drops = 0  # subscription drops when the retained state was last built
        self._bad_logged = 0
        self.connected = asyncio.Event()
        # counters
        self.published = 0
        self.enqueued = 0
        self.dropped_messages = 0  # all QoS, including:
        self.dropped_qos1 = 0
        self.discarded_stale_retained = 0
        self.connects = 0
        self.connect_failures = 0
        self.republished = 0
        self.refreshed = 0
        self.max_held = 0  # most QoS 1 messages paho held at once
        self.index_received = 0
        self.index_accepted = 0
        self.index_bad = 0
        self.index_stale = 0
        self.index_retained_ignored = 0
        self.index_coalesced = 0
        self.index_overflow = 0
        self.index_not_running = 0
        self.last_error = ""

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe to the runtime, build the retained state from the engine's current
        market state, and start connecting (returns at once; see `connected`)."""
        if self._tasks:
            return
        self._stopping = False
        cfg = self.config
        self._sub = self.runtime.subscribe("mqtt", cfg.subscription_size, policy="drop")
        # same loop turn as the subscription: no event falls between state and stream
        self._seed(self.runtime.exchange.instruments)
        self._seeded_drops = 0
        self._tasks = [
            asyncio.create_task(self._consume(), name="margincall-mqtt-consume"),
            asyncio.create_task(self._connection_loop(), name="margincall-mqtt-connection"),
            asyncio.create_task(self._depth_loop(), name="margincall-mqtt-depth"),
        ]

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Stop consuming; while connected, wait up to `flush_timeout` s until the queues,
        paho's held messages and both sockets' buffers are empty; mark the bridge offline
        and disconnect. What is still unsent then is counted as dropped."""
        if not self._tasks:
            return
        if self._sub is not None:
            self._sub.close()
        consumer, connection, depth = self._tasks
        depth.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(consumer, 1.0)
        deadline = time.monotonic() + flush_timeout
        while (
            self.connected.is_set()
            and (self.backlog() or self._unsent_bytes())
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.01)
        self._stopping = True
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await client.publish(
                    self.config.bridge_topic, self._online(False), qos=1, retain=True
                )
        connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection
        with contextlib.suppress(asyncio.CancelledError):
            await depth
        self._tasks = []

    async def __aenter__(self) -> MqttBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def attach_stats(self, server: Any) -> None:
        """Add this bridge's counters to `admin.stats` (``result.server.mqtt``)."""
        api = server.api
        previous = api.extra_stats

        def stats() -> dict[str, Any]:
            out = dict(previous()) if previous is not None else {}
            out["mqtt"] = self.stats()
            return out

        api.extra_stats = stats

    def stats(self) -> dict[str, Any]:
        sub = self._sub
        return {
            "connected": self.connected.is_set(),
            "broker": f"{self.config.host}:{self.config.port}",
            "connects": self.connects,
            "connectFailures": self.connect_failures,
            "published": self.published,
            "queued": self.backlog(),
            "queueSize": self.config.queue_size,
            "qos1Held": self.held(),
            "qos1HeldLimit": self._held_limit,
            "droppedMessages": self.dropped_messages,
            "droppedQos1Messages": self.dropped_qos1,
            "discardedStaleRetained": self.discarded_stale_retained,
            "droppedBatches": sub.dropped_batches if sub is not None else 0,
            "droppedEvents": sub.dropped_events if sub is not None else 0,
            "republishedRetained": self.republished,
            "indexReceived": self.index_received,
            "indexAccepted": self.index_accepted,
            "indexBadPayloads": self.index_bad,
            "indexStale": self.index_stale,
            "indexRetainedIgnored": self.index_retained_ignored,
            "indexCoalesced": self.index_coalesced,
            "indexOverflow": self.index_overflow,
            "indexNotRunning": self.index_not_running,
            "lastError": self.last_error,
        }

    # ---------------------------------------------------------------- out: events → queue

    async def _consume(self) -> None:
        async for batch in self._sub:
            try:
                self.handle_batch(batch)
            except Exception:  # never let a formatting bug kill the bridge
                log.exception("formatting a batch for MQTT failed")

    def handle_batch(self, batch: list[E.Event]) -> None:
        """Format one batch of core events into outgoing messages (public for tests)."""
        payload = self.formatter.payload
        routes = self._routes
        enqueue = self._enqueue
        touched: dict[str, None] = {}
        for ev in batch:
            t = type(ev)
            if t not in _PUBLIC_EVENTS:
                if t is E.InstrumentAdded:  # a new symbol gets its retained state at once
                    for msg in self._seed([ev.symbol]):  # type: ignore[attr-defined]
                        enqueue(msg)
                continue
            if t in _TICKER_EVENTS:
                touched[ev.symbol] = None  # type: ignore[attr-defined]
            pub = payload(ev)
            if pub is None:
                continue
            stream, data = pub
            if stream == "cascades":
                stream = "cascades." + ev.symbol  # type: ignore[attr-defined]
            route = routes.get(stream) or self._route(stream)
            enqueue(Outgoing(route[0], data, route[1], route[2], route[3]))
        for symbol in touched:
            enqueue(self._ticker(symbol))

    def _route(self, stream: str) -> tuple[str, int, bool, int]:
        """(topic, QoS, retain, expiry) of a stream name such as ``mark.BTCUSDT``."""
        cfg = self.config
        name, _, symbol = stream.partition(".")
        kind, qos, retain = _KIND_OF_STREAM[name]
        expiry = 0
        if retain:
            expiry = cfg.status_expiry if kind == "status" else cfg.mark_expiry
        route = (cfg.topic(symbol, kind), qos, retain, expiry)
        self._routes[stream] = route
        return route

    def _ticker(self, symbol: str, now: int | None = None) -> Outgoing:
        """Top of book and prices, the same JSON as the WebSocket `ticker` answer; `now`
        (the clock's time, see `_seed`) instead of the engine's when given."""
        ex = self.runtime.exchange
        inst = ex.instruments[symbol]
        mv = ex.market_view(symbol)
        ts = ex.now if now is None else now
        funding = mv.next_funding_ts if now is None else self._next_funding(symbol, now)
        out = self.formatter.mark_data(
            symbol, mv.mark, mv.index, mv.last, mv.funding_rate, funding, ts, 0
        )
        del out["seq"]
        out["type"] = "ticker"
        out["status"] = "HALTED" if mv.halted else "TRADING"
        out["bestBid"] = units.ticks_to_str(inst, mv.best_bid) if mv.best_bid else None
        out["bestAsk"] = units.ticks_to_str(inst, mv.best_ask) if mv.best_ask else None
        topic = self.config.topic(symbol, "ticker")
        return Outgoing(topic, encode_plain(out), 0, True, self.config.mark_expiry)

    def _depth(self, symbol: str) -> Outgoing:
        """The top `depth_levels` of each side: the same JSON as the WebSocket `depth`
        answer with that limit (the book snapshot without its ``type``)."""
        ex = self.runtime.exchange
        seq = ex.book_seq(symbol)
        bids, asks = ex.depth(symbol, self.config.depth_levels)
        out = self.formatter.book_snapshot(symbol, seq, bids, asks, ex.now)
        del out["type"]
        self._depth_seq[symbol] = seq
        topic = self.config.topic(symbol, "depth")
        return Outgoing(topic, encode_plain(out), 0, True, self.config.mark_expiry)

    def _seed(self, symbols: Iterable[str]) -> list[Outgoing]:
        """Build `mark` (when there is one), `ticker`, `status` and `depth` of `symbols`
        from the engine's current market state and make them the retained values;
        returns them. The mark's and status's ``seq`` is 0, as in the WebSocket
        snapshot a `mark.<SYMBOL>` subscriber gets first."""
        ex = self.runtime.exchange
        fmt = self.formatter
        out: list[Outgoing] = []
        # the clock's time, not the engine's: in realtime mode an engine that has handled
        # no command yet is still at 0, and its first funding time is then in 1970
        now = self.runtime.now()
        for symbol in list(symbols):
            if symbol not in ex.instruments:
                continue
            mv = ex.market_view(symbol)
            msgs = [self._ticker(symbol, now), self._depth(symbol)]
            if mv.mark:
                data = fmt.mark_data(
                    symbol, mv.mark, mv.index, mv.last, mv.funding_rate,
                    self._next_funding(symbol, now), now, 0,
                )  # fmt: skip
                route = self._route("mark." + symbol)
                msgs.append(Outgoing(route[0], encode_plain(data), *route[1:]))
            status = (E.SymbolHalted if mv.halted else E.SymbolResumed)(0, ex.now, symbol)
            pub = fmt.public(status)
            if pub is not None:
                route = self._route(pub[0])
                msgs.append(Outgoing(route[0], encode_plain(pub[1]), *route[1:]))
            for msg in msgs:
                self.retained[msg.topic] = msg
            out += msgs
        return out

    def _next_funding(self, symbol: str, now: int) -> int:
        """The funding time the engine will settle next, seen from `now`: its schedule
        moved past `now` in whole intervals, as the engine moves it when time arrives."""
        ex = self.runtime.exchange
        nft = ex.market_view(symbol).next_funding_ts
        if nft > now:
            return nft
        iv = ex.instruments[symbol].funding_interval_ns
        return nft + ((now - nft) // iv + 1) * iv

    def held(self) -> int:
        """QoS 1 messages handed to paho and not yet acknowledged by the broker."""
        paho = self._paho
        return len(paho._out_messages) if paho is not None else 0

    @property
    def _held_limit(self) -> int:
        # a few beyond the in-flight window, so paho has the next one ready at each ack
        return self.config.max_inflight + _HELD_MARGIN

    def backlog(self) -> int:
        """Messages formatted and not yet delivered: both queues plus paho's held QoS 1."""
        return len(self._out) + len(self._out1) + self.held()

    def _unsent_bytes(self) -> int:
        """Bytes/packets still buffered for either socket."""
        fast, paho = self._fast, self._paho
        n = fast.backlog() if fast is not None else 0
        return n + (len(getattr(paho, "_out_packet", ())) if paho is not None else 0)

    def _enqueue(self, msg: Outgoing) -> None:
        """Queue for publishing; each QoS has its own bounded queue (`queue_size`), so
        while the broker is away ticks are shed without pushing out liquidations."""
        if msg.retain:
            self.retained[msg.topic] = msg
        out = self._out if msg.qos == 0 else self._out1
        if len(out) >= self.config.queue_size:
            out.popleft()
            self.dropped_messages += 1
            if msg.qos:
                self.dropped_qos1 += 1
        out.append(msg)
        self.enqueued += 1
        self._wake.set()

    async def _depth_loop(self) -> None:
        """Every `depth_interval`, a new retained `depth` for each symbol whose book
        changed since the last one (so at most one per symbol per interval)."""
        ex = self.runtime.exchange
        while True:
            await asyncio.sleep(self.config.depth_interval)
            for symbol in list(ex.instruments):
                if ex.book_seq(symbol) != self._depth_seq.get(symbol):
                    self._enqueue(self._depth(symbol))

    # ---------------------------------------------------------------- connection

    def _online(self, online: bool) -> bytes:
        return encode_plain({"type": "bridge", "online": online, "venue": self.config.venue})

    def _make_client(self) -> aiomqtt.Client:
        cfg = self.config
        bridge = self

        class IndexQueue(asyncio.Queue):  # type: ignore[type-arg]
            """aiomqtt's incoming queue, bounded: overflow is counted, not logged each."""

            def put_nowait(self, item: Any) -> None:
                if self.full():
                    bridge.index_overflow += 1
                    return
                super().put_nowait(item)

        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(cfg.bridge_topic, self._online(False), qos=1, retain=True),
            keepalive=cfg.keepalive,
            timeout=5.0,
            queue_type=IndexQueue,
            max_queued_incoming_messages=cfg.index_queue_size,
            max_inflight_messages=cfg.max_inflight,
        )

    async def _connection_loop(self) -> None:
        """Connect, run a session, and reconnect with exponential backoff (with jitter)
        until stopped. The backoff starts over only after a session that lasted at least
        `backoff_max` s, so a broker that drops us right after CONNACK is not hammered."""
        cfg = self.config
        delay = cfg.backoff_min
        while not self._stopping:
            up_since: float | None = None
            try:
                async with self._make_client() as client:
                    self._client = client
                    self.connects += 1
                    up_since = time.monotonic()
                    log.info("MQTT connected to %s:%s", cfg.host, cfg.port)
                    await self._session(client)
            except (aiomqtt.MqttError, OSError) as e:
                self.connect_failures += 1
                self.last_error = str(e)[:200]
                log.warning("MQTT %s:%s: %s", cfg.host, cfg.port, e)
            except Exception as e:  # a bug here must not end the bridge for good
                self.connect_failures += 1
                self.last_error = repr(e)[:200]
                log.exception("MQTT session failed")
            finally:
                self._client = None
                self.connected.clear()
            if self._stopping:
                return
            if up_since is not None and time.monotonic() - up_since >= cfg.backoff_max:
                delay = cfg.backoff_min
            wait = delay * (0.5 + random.random() / 2)
            log.info("MQTT reconnecting in %.2fs", wait)
            await asyncio.sleep(wait)
            delay = min(cfg.backoff_max, delay * 2)

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: subscribe to the feed, go online, republish the retained state,
        then publish and receive until either connection fails. At the end, QoS 1
        messages paho still held (unacknowledged) are counted as dropped."""
        cfg = self.config
        paho = client._client
        self._paho = paho
        inner = paho.on_publish

        def on_publish(*args: Any) -> None:
            # paho calls this when a QoS 0 packet is written or a QoS 1 PUBACK arrives
            if inner is not None:
                inner(*args)
            self.published += 1
            self._wake.set()  # the held count went down: the publisher may go on

        paho.on_publish = on_publish
        fast = FastPublisher(cfg)
        try:
            topic = cfg.index_feed_topic
            if topic:
                # retain handling 2: a retained (possibly hours-old) price is never sent
                opts = SubscribeOptions(qos=1, retainHandling=2)
                await client.subscribe(topic, options=opts)
            # whatever of the retained topics is still queued is older than `retained`
            before = len(self._out) + len(self._out1)
            self._out = deque(m for m in self._out if not m.retain)
            self._out1 = deque(m for m in self._out1 if not m.retain)
            self.discarded_stale_retained += before - len(self._out) - len(self._out1)
            sub = self._sub
            drops = sub.dropped_batches if sub is not None else 0
            if drops != self._seeded_drops:  # our copies may have missed events: rebuild
                self._seed(self.runtime.exchange.instruments)
                self._seeded_drops = drops
            else:  # symbols we have nothing for yet
                missing = [
                    s
                    for s in self.runtime.exchange.instruments
                    if cfg.topic(s, "ticker") not in self.retained
                ]
                self._seed(missing)
            await client.publish(cfg.bridge_topic, self._online(True), qos=1, retain=True)
            for msg in list(self.retained.values()):
                await self._publish(client, msg)
                self.republished += 1
            self._fast = fast
            try:
                await fast.connect()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                raise aiomqtt.MqttError(f"fast path: {e!r}") from None
            self.connected.set()
            tasks = [
                asyncio.create_task(self._publisher(client, fast)),
                asyncio.create_task(self._refresher()),
                asyncio.create_task(self._receiver(client)),  # also notices a disconnect
                asyncio.create_task(fast.run()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                t.result()  # re-raise what ended the session
        finally:
            self.connected.clear()
            await fast.aclose()  # always, also when connect() itself failed
            lost = len(paho._out_messages)
            if lost:  # not acknowledged: not resent by the next session (at most once)
                self.dropped_messages += lost
                self.dropped_qos1 += lost
                log.warning("MQTT session ended with %d QoS 1 messages unacknowledged", lost)
            self._paho = None
            self._fast = None

    def _props(self, expiry: int) -> Properties | None:
        """Shared, never mutated after creation."""
        if not expiry:
            return None
        props = self._props_cache.get(expiry)
        if props is None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
            self._props_cache[expiry] = props
        return props

    async def _publish(self, client: aiomqtt.Client, msg: Outgoing) -> None:
        """Publish and wait for the broker (retained state at connect time)."""
        await client.publish(
            msg.topic,
            msg.payload,
            qos=msg.qos,
            retain=msg.retain,
            properties=self._props(msg.expiry),
        )

    async def _publisher(self, client: aiomqtt.Client, fast: FastPublisher) -> None:
        """Drain the outgoing queues: QoS 0 through `fast`, QoS 1 through paho.

        `await client.publish()` costs a loop turn per message (~150 µs); paho's own
        `publish` only queues the packet and aiomqtt's socket writer sends it, so QoS 1
        uses that (aiomqtt's `_client` escape hatch). paho would hold any number of QoS 1
        messages beyond its in-flight window, outside our bound and uncounted, so a QoS 1
        message is handed over only while paho holds fewer than `_held_limit`; the rest
        wait in `_out1` (bounded, drops counted). Every `burst` messages the fast path's
        buffer is handed to the socket and the loop gets a turn; while either connection
        holds more than `socket_backlog` unsent packets (×256 bytes) the bridge waits.
        `published` counts QoS 0 messages written here and (through paho's on_publish)
        QoS 1 messages the broker acknowledged.
        """
        paho = client._client
        held = paho._out_messages
        limit = self._held_limit
        burst = 256
        high = self.config.socket_backlog
        ok = MQTT_ERR_SUCCESS
        while True:
            out, out1 = self._out, self._out1
            n = 0
            while True:
                if len(getattr(paho, "_out_packet", ())) >= high or fast.backlog() >= high * 256:
                    fast.flush()
                    await asyncio.sleep(0.002)
                    continue
                if out1 and len(held) < limit:  # the few reliable messages first
                    msg = out1.popleft()
                    info = paho.publish(
                        msg.topic, msg.payload, msg.qos, msg.retain, self._props(msg.expiry)
                    )
                    if len(held) > self.max_held:
                        self.max_held = len(held)
                    if info.rc != ok:  # paho keeps it; counted as dropped at session end
                        raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
                elif out:
                    fast.add(out.popleft())
                    self.published += 1
                else:
                    break
                n += 1
                if n >= burst:
                    n = 0
                    fast.flush()
                    await asyncio.sleep(0)
            fast.flush()
            self._wake.clear()
            # woken by _enqueue, or by an acknowledgement when QoS 1 waits for the window
            await self._wake.wait()

    async def _refresher(self) -> None:
        """Re-offer the retained state every half expiry, so that while the exchange runs
        (even idle) the retained values stay; they expire only when it is gone."""
        expiries = [e for e in (self.config.mark_expiry, self.config.status_expiry) if e]
        if not expiries:
            return
        period = max(1.0, min(expiries) / 2)
        while True:
            await asyncio.sleep(period)
            for msg in list(self.retained.values()):
                self._enqueue(msg)
            self.refreshed += 1

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode() if payload is not None else b""
            self.on_index_payload(bytes(payload), retain=message.retain)

    # ---------------------------------------------------------------- in: index feed

    def on_index_payload(self, payload: bytes, retain: bool = False) -> None:
        """Validate one index-feed message; a good one becomes a `SetIndexPrice` (or
        replaces the one still waiting for the symbol). A retained message (a price of
        unknown age, replayed by the broker) is ignored and counted."""
        self.index_received += 1
        if retain:
            self.index_retained_ignored += 1
            return
        try:
            symbol, ticks, ts = self.parse_index(payload)
        except IndexFeedError as e:
            self.index_bad += 1
            if self._bad_logged < 20 or self.index_bad % 1000 == 0:
                self._bad_logged += 1
                log.warning(
                    "bad index payload (%d so far): %s: %r", self.index_bad, e, payload[:120]
                )
            return
        if ts is not None:
            last = self._last_index_ts.get(symbol)
            age = self.config.max_index_age
            if (last is not None and ts < last) or (
                age is not None and time.time_ns() - ts > age * 1e9
            ):
                self.index_stale += 1
                return
        if not self.runtime.running:  # nothing would apply it: neither accept nor queue
            self.index_not_running += 1
            return
        if ts is not None:
            self._last_index_ts[symbol] = ts
        self.index_accepted += 1
        self._submit_index(symbol, ticks)

    def _submit_index(self, symbol: str, ticks: int) -> None:
        """At most one `SetIndexPrice` per symbol waits in the runtime's queue; a price
        arriving meanwhile waits here, replacing (and counting) any it supersedes."""
        if symbol in self._index_pending:
            if symbol in self._index_next:
                self.index_coalesced += 1
            self._index_next[symbol] = ticks
            return
        fut = self.runtime.submit_future(C.SetIndexPrice(symbol=symbol, price=ticks), owned=True)
        self._index_pending.add(symbol)
        fut.add_done_callback(lambda f: self._index_done(symbol, f))

    def _index_done(self, symbol: str, fut: asyncio.Future[list[E.Event]]) -> None:
        self._index_pending.discard(symbol)
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("index price for %s not applied: %r", symbol, fut.exception())
        ticks = self._index_next.pop(symbol, None)
        if ticks is not None:
            if self.runtime.running:
                self._submit_index(symbol, ticks)
            else:
                self.index_not_running += 1

    def parse_index(self, payload: bytes) -> tuple[str, int, int | None]:
        """(symbol, price in ticks, ts or None), or `IndexFeedError`."""
        if len(payload) > MAX_INDEX_PAYLOAD:
            raise IndexFeedError("payload too large")
        try:
            obj = loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise IndexFeedError(f"not JSON: {e}") from None
        if type(obj) is not dict:
            raise IndexFeedError("not a JSON object")
        unknown = set(obj) - INDEX_KEYS
        if unknown:
            raise IndexFeedError(f"unknown keys {sorted(unknown)}")
        symbol = obj.get("symbol")
        inst = self.runtime.exchange.instruments.get(symbol) if type(symbol) is str else None
        if inst is None:
            raise IndexFeedError(f"unknown symbol {symbol!r}")
        if "price" not in obj:
            raise IndexFeedError("no price")
        price = obj["price"]
        if isinstance(price, units.JsonNumber):
            price = str(price)
        try:
            ticks = units.price_to_ticks_rounded(inst, price)
        except UnitError as e:
            raise IndexFeedError(f"bad price: {e}") from None
        if ticks > inst.max_price:
            raise IndexFeedError("price above the instrument's maximum")
        ts = obj.get("ts")
        if ts is not None and (type(ts) is not int or not 0 < ts < 2**63):
            raise IndexFeedError("ts must be a positive integer (ns since the epoch)")
        # a ts from the future would make every later, correct message look stale
        if ts is not None and ts > time.time_ns() + self.config.max_index_skew * 1e9:
            raise IndexFeedError("ts is in the future (beyond max_index_skew)")
        return symbol, ticks, ts


# -------------------------------------------------------------------- serve --mqtt


def install(
    opts: Any,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    **config: Any,
) -> MqttConfig:
    """Wire a bridge into `margincall serve` (`ServeOptions.extra` hooks): it starts with
    the stack, reports in `admin.stats`, and is stopped by the ``after_stop`` hook."""
    cfg = MqttConfig.from_url(url, username=username, password=password, **config)
    holder: dict[str, MqttBridge] = {}

    async def before_start(runtime: Runtime, server: Any) -> None:
        bridge = MqttBridge(runtime, cfg)
        holder["bridge"] = bridge
        bridge.attach_stats(server)
        await bridge.start()

    async def after_stop() -> None:
        if "bridge" in holder:
            await holder["bridge"].stop()

    opts.extra.setdefault("before_start", []).append(before_start)
    opts.extra.setdefault("after_stop", []).append(after_stop)
    opts.extra["mqtt"] = holder
    return cfg
