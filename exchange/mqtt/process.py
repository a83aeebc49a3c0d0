"""`PublisherProcess`: the `book` and `trades` topics formatted and published by a child
process, so the engine's process pays only for handing their events over.

The bridge's `handle_batch` turns each `BookUpdated` / `OrderFilled` into the tuple of
its fields (one `attrgetter` call) and sends one pickled list per engine batch through a
socket pair. The child (`python -m exchange.mqtt.process`) rebuilds the events, formats
them with its own `Formatter` (the same code, so the same bytes as the WebSocket streams)
and writes QoS 0 PUBLISH packets through its own `FastPublisher` connection. Everything
retained or QoS 1 (mark, ticker, depth, status, liquidations, cascades) stays with the
bridge in the parent, which owns the retained state and reconnection.

Bounded: while more than `max_pending` events are sent and not yet acknowledged by the
child, a batch is dropped and counted (`dropped`), never waited for. The child counts
what it could not publish while its broker connection was down. The child exits on EOF
of its socket, so it cannot outlive the parent; `close()` waits for it and kills it
after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import operator
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

from exchange.core import events as E
from exchange.core.instruments import Instrument
from exchange.mqtt.config import MqttConfig, Outgoing

# events the child publishes: (code, class, QoS 0 topic kind)
_KINDS: tuple[tuple[type, str], ...] = ((E.BookUpdated, "book"), (E.OrderFilled, "trades"))
_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls, _ in _KINDS}
_HEAD = struct.Struct("!I")
_ENTRY = "import sys; from exchange.mqtt.process import child_main; child_main(int(sys.argv[1]))"


def getters() -> dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]]]:
    """Event class → (code, function giving the tuple of its fields in field order)."""
    return {cls: (i, operator.attrgetter(*_FIELDS[cls])) for i, (cls, _) in enumerate(_KINDS)}


def _frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(body)) + body


class _Acks(asyncio.Protocol):
    def __init__(self, owner: PublisherProcess) -> None:
        self.owner = owner
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = _HEAD.unpack_from(self.buf)
            if len(self.buf) < 4 + n:
                return
            msg = pickle.loads(bytes(self.buf[4 : 4 + n]))
            del self.buf[: 4 + n]
            self.owner._on_ack(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.alive = False
        self.owner.pending = 0


class PublisherProcess:
    """The parent's handle on the child publisher."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.proc: subprocess.Popen[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.sent = 0  # events handed to the child
        self.pending = 0  # sent and not yet processed by the child
        self.dropped = 0  # events of batches dropped here (child too far behind)
        self.published = 0  # as reported by the child
        self.child_dropped = 0  # events the child could not publish (broker away)
        self.connected = False  # the child's broker connection, as last reported
        self.ready: asyncio.Future[None] | None = None

    @classmethod
    async def start(
        cls, cfg: MqttConfig, instruments: Mapping[str, Instrument], max_pending: int
    ) -> PublisherProcess:
        self = cls(max_pending)
        self.ready = asyncio.get_running_loop().create_future()
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        theirs.close()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(lambda: _Acks(self), mine)
        self.transport = transport  # type: ignore[assignment]
        self.alive = True
        cfg_fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
        transport.write(_frame(("start", cfg_fields, dict(instruments))))  # type: ignore[attr-defined]
        # the child's first session before the first batch, bounded: without a broker
        # the bridge still starts (the child then counts what it cannot publish)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ready), 5.0)
        return self

    def add_instrument(self, inst: Instrument) -> None:
        if self.transport is not None and self.alive:
            self.transport.write(_frame(("instrument", inst)))

    def send(self, items: list[tuple[int, tuple[Any, ...]]]) -> None:
        """Hand one batch over (never blocks); dropped and counted when the child is
        `max_pending` events behind or gone."""
        n = len(items)
        if not self.alive or self.transport is None or self.pending + n > self.max_pending:
            self.dropped += n
            return
        self.transport.write(_frame(("batch", items)))
        self.sent += n
        self.pending += n

    def _on_ack(self, msg: tuple[Any, ...]) -> None:
        _, done, published, dropped, connected = msg
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
        self.pending = self.sent - done
        self.published, self.child_dropped, self.connected = published, dropped, connected

    async def close(self, timeout: float = 3.0) -> None:
        """EOF to the child (it publishes what it holds, disconnects and exits); wait for
        it, kill it after `timeout` s."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        proc = self.proc
        if proc is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, proc.wait), timeout)
        except TimeoutError:
            proc.kill()
            await loop.run_in_executor(None, proc.wait)
        self.alive = False


# ------------------------------------------------------------------ the child


class _Child:  # pragma: no cover - runs in the child process (tested through the bridge)
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.fast: Any = None
        self.done = self.published = self.dropped = 0
        self.classes = [cls for cls, _ in _KINDS]

    async def main(self) -> None:
        from exchange.mqtt.fast import FastPublisher
        from exchange.protocol.formatter import Formatter

        sock = socket.socket(fileno=self.fd)
        reader, writer = await asyncio.open_connection(sock=sock)
        kind, cfg_fields, instruments = await self._read(reader)
        assert kind == "start"
        cfg = MqttConfig(**cfg_fields)
        fmt = Formatter(instruments)
        routes: dict[str, tuple[str, int, bool, int]] = {}
        conn = asyncio.create_task(self._connection(cfg, FastPublisher))
        for _ in range(500):  # the first session before the first batch (bounded: 5 s)
            if self.fast is not None:
                break
            await asyncio.sleep(0.01)
        writer.write(_frame(("ack", 0, 0, 0, self.fast is not None)))
        try:
            while True:
                try:
                    msg = await self._read(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if msg[0] == "instrument":
                    instruments[msg[1].symbol] = msg[1]
                    continue
                items = msg[1]
                fast = self.fast
                classes = self.classes
                for code, fields in items:
                    if fast is None:
                        self.dropped += 1
                        continue
                    pub = fmt.payload(classes[code](*fields))
                    if pub is None:
                        continue
                    stream, data = pub
                    route = routes.get(stream)
                    if route is None:
                        name, _, symbol = stream.partition(".")
                        route = routes[stream] = (cfg.topic(symbol, name), 0, False, 0)
                    fast.add(Outgoing(route[0], data, 0, False, 0))
                    self.published += 1
                if fast is not None:
                    fast.flush()
                    while fast.backlog() > (1 << 20):  # let the socket drain
                        await asyncio.sleep(0.002)
                self.done += len(items)
                writer.write(
                    _frame(("ack", self.done, self.published, self.dropped, fast is not None))
                )
        finally:
            conn.cancel()
            with contextlib.suppress(BaseException):
                await conn
            if self.fast is not None:
                await self.fast.aclose()

    async def _connection(self, cfg: MqttConfig, fast_cls: Any) -> None:
        delay = cfg.backoff_min
        while True:
            fast = fast_cls(cfg)
            try:
                await fast.connect()
                delay = cfg.backoff_min
                self.fast = fast
                await fast.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass
            finally:
                if self.fast is fast and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    self.fast = None
                    fast.close()
            await asyncio.sleep(delay)
            delay = min(cfg.backoff_max, delay * 2)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Any:
        (n,) = _HEAD.unpack(await reader.readexactly(4))
        return pickle.loads(await reader.readexactly(n))


def child_main(fd: int) -> None:  # pragma: no cover - the child's entry point
    """Run the child publisher on socket `fd` until its parent closes it."""
    asyncio.run(_Child(fd).main())
