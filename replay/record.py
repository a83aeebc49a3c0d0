"""Record a live margincall session into the canonical event log.

    stats = await record("ws://127.0.0.1:8765", ["BTCUSDT"], "session.jsonl.gz", duration=60)

or ``margincall record --url ws://127.0.0.1:8765 --symbol BTCUSDT --out session.jsonl.gz``.
The file is an ordinary event log (``replay.read`` detects it), so ``margincall replay
session.jsonl.gz`` serves the recorded market again.

What is written, one event per stream message, in the order the messages arrived
(``exchange_ts`` = the message's ``ts``, engine time; ``local_ts`` = when the recorder received
it, wall time; ``exchange="margincall"``; decimals exactly as the payload's strings):

* ``mark.<SYMBOL>@raw`` (every change, unsampled) → :class:`~replay.events.Ticker`: ``mark``, ``index``, ``last`` (a price of
  zero — nothing traded yet, no index set — is ``None``, "not known"), ``fundingRate`` as
  ``funding_rate`` (the rate the next funding time would settle at now) and ``nextFundingTs``
  as ``funding_ts``. No :class:`~replay.events.FundingRate` is written: the settled rate is
  not on any public stream (the core recomputes it on replay).
* ``trades.<SYMBOL>`` → :class:`~replay.events.Trade` (``side`` = ``takerSide``, lower case).
* ``liquidations.<SYMBOL>`` → :class:`~replay.events.Liquidation`: ``side`` is the liquidation
  order's side (a ``LONG`` position is liquidated by a ``sell``), ``price`` the bankruptcy
  price (the liquidation order's limit), ``amount`` the quantity liquidated.
* ``book.<SYMBOL>`` (unless ``book=False``) → :class:`~replay.events.BookUpdate`, with
  ``update_id`` = ``bookSeq``: first the snapshot the server sends on subscribing (the whole
  book, taken together with the subscription, so no delta can fall between), then each delta.
  A delta more than one ``bookSeq`` ahead is a gap: a fresh ``depth`` snapshot of the whole book
  is requested and written (``snapshot=True``) when its answer arrives, then the deltas received
  meanwhile that are above its ``bookSeq``; deltas at or below the current ``bookSeq`` are
  dropped. So replaying the file always rebuilds the server's book.

The recording ends on ``duration``, on ``stop`` (the command sets it on Ctrl-C) or when the
server closes the connection; the file is then flushed and closed (a complete gzip member).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from websockets.exceptions import WebSocketException

from clients.client import ApiError, Client, ConnectionLost
from replay._source import PathLike
from replay.eventlog import EventLogWriter
from replay.events import BookLevel, BookUpdate, Event, Liquidation, Side, Ticker, Trade

__all__ = ["EXCHANGE", "RecordError", "RecordStats", "Recorder", "record", "stream_names"]

EXCHANGE = "margincall"
"""The ``exchange`` field of every recorded event."""

log = logging.getLogger("margincall.record")

_SIDES: dict[str, Side] = {"BUY": "buy", "SELL": "sell"}
_LIQ_SIDES: dict[str, Side] = {"LONG": "sell", "SHORT": "buy"}  # the liquidation order's side


class RecordError(Exception):
    """The session could not be recorded: server unreachable, subscription refused."""


@dataclass
class RecordStats:
    """What a recording wrote. ``counts`` is by event ``type_name`` (``ticker``, ``trade``,
    ``book``, ``liquidation``)."""

    counts: Counter[str] = field(default_factory=Counter)
    messages: int = 0  # stream messages received
    snapshots: int = 0  # snapshot BookUpdates written (the first per symbol, then resyncs)
    gaps: int = 0  # bookSeq gaps seen
    resyncs: int = 0  # snapshots written because of a gap
    stale: int = 0  # book deltas dropped: at or below the current bookSeq
    bad: int = 0  # messages that could not be converted (logged, skipped)
    reason: str = ""  # why the recording ended: duration, stopped, server closed
    seconds: float = 0.0  # wall time recorded

    @property
    def events(self) -> int:
        return sum(self.counts.values())


class _BookState:
    __slots__ = ("seq", "buffer")

    def __init__(self) -> None:
        self.seq: int | None = None  # bookSeq of the book as written so far (None: no snapshot)
        self.buffer: list[tuple[int, dict[str, Any]]] | None = None  # not None: resyncing


def stream_names(symbols: Iterable[str], book: bool = True) -> list[str]:
    """The streams recorded for `symbols`: mark first (reference prices before the book)."""
    kinds = ("mark", "book", "trades", "liquidations")
    # every mark change and book delta, not the sampled streams (a recording misses nothing)
    return [
        f"{k}.{s}{'@raw' if k in ('mark', 'book') else ''}"
        for s in symbols
        for k in kinds
        if book or k != "book"
    ]


def _price(text: str) -> Decimal | None:
    d = Decimal(text)
    return d if d else None


def _levels(rows: Sequence[Sequence[str]]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in rows)


class Recorder:
    """Record `symbols` of the server at `url` into the event log `out`; see the module doc.

    `run()` records until `duration` seconds passed, `stop` is set (or `stop()` is called) or
    the server closes, and returns the `RecordStats`. `ready` is set once subscribed;
    `stats` and `book_seq` (symbol → last `bookSeq` written) can be read meanwhile.
    `clock` gives `local_ts` (ns); `drop(msg)` (tests) loses stream messages on arrival.
    """

    def __init__(
        self,
        url: str,
        symbols: Iterable[str],
        out: PathLike | TextIO,
        *,
        book: bool = True,
        clock: Callable[[], int] = time.time_ns,
        flush_interval: float = 1.0,
        open_timeout: float = 10.0,
        drop: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.url = url
        self.symbols = list(dict.fromkeys(symbols))
        if not self.symbols:
            raise ValueError("record at least one symbol")
        self.out = out
        self.book = book
        self.clock = clock
        self.flush_interval = flush_interval
        self.open_timeout = open_timeout
        self.drop = drop
        self.stats = RecordStats()
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
        self._books: dict[str, _BookState] = {}
        self._depth_ids: dict[Any, str] = {}  # request id of a resync `depth` → symbol
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: Client | None = None
        self._writer: EventLogWriter | None = None

    @property
    def book_seq(self) -> dict[str, int | None]:
        return {s: b.seq for s, b in self._books.items()}

    def stop(self) -> None:
        """End the recording (from the same event loop)."""
        self._stop.set()

    # ------------------------------------------------------------------ the session

    async def run(
        self, duration: float | None = None, stop: asyncio.Event | None = None
    ) -> RecordStats:
        """Record until `duration` (seconds; None or 0: no limit), `stop`, or the server
        closing. Raises `RecordError` when the server cannot be reached or refuses the
        subscription (then no file is written)."""
        if stop is not None:
            self._stop = stop
        t0 = time.monotonic()
        client = Client(self.url, reconnect=False, request_timeout=self.open_timeout)
        client.trace = self._on_wire
        self._client = client
        try:
            await asyncio.wait_for(client.connect(), self.open_timeout)
        except (OSError, TimeoutError, WebSocketException) as e:
            await client.close()
            raise RecordError(f"cannot connect to {self.url}: {e or type(e).__name__}") from None
        # a stream never subscribed: it gets nothing, and ends when the connection does
        closed = client.stream("recorder.connection")
        try:
            names = stream_names(self.symbols, self.book)
            await client.request("subscribe", {"streams": names})
        except ApiError as e:
            await client.close()
            raise RecordError(f"{self.url} refused the subscription: {e.msg}") from None
        except (ConnectionLost, TimeoutError) as e:
            await client.close()
            raise RecordError(f"{self.url} closed during the subscription: {e}") from None
        if self.book:
            for s in self.symbols:
                self._books.setdefault(s, _BookState())
        self._writer = EventLogWriter(self.out)
        pump = asyncio.create_task(self._pump(), name="margincall-record-pump")
        self.ready.set()
        try:
            self.stats.reason = await self._wait(duration, closed, pump)
        finally:
            await client.close()  # nothing arrives after this
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._queue.put_nowait(None)
            try:
                if not pump.done():
                    await pump
            finally:
                self._writer.close()
                self.stats.seconds = time.monotonic() - t0
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]
        return self.stats

    async def _wait(self, duration: float | None, closed: Any, pump: asyncio.Task[None]) -> str:
        async def ended() -> None:
            with contextlib.suppress(StopAsyncIteration):
                while True:
                    await closed.get()

        stop = asyncio.create_task(self._stop.wait())
        end = asyncio.create_task(ended())
        try:
            done, _ = await asyncio.wait(
                {stop, end, pump}, timeout=duration or None, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
            end.cancel()
        if stop in done:
            return "stopped"
        if end in done:
            return "server closed"
        if pump in done:
            return "error"
        return "duration"

    # ------------------------------------------------------------------ intake

    def _on_wire(self, direction: str, msg: dict[str, Any]) -> None:
        """The client's trace hook: every frame, in arrival order, before dispatch."""
        if direction == "send":
            if msg.get("method") == "depth":
                self._depth_ids[msg.get("id")] = msg["params"]["symbol"]
            return
        if "stream" in msg:
            if self.drop is not None and self.drop(msg):
                return
        elif msg.get("id") not in self._depth_ids:
            return  # the answer to some other request
        self._queue.put_nowait((self.clock(), msg))

    async def _pump(self) -> None:
        writer = self._writer
        assert writer is not None
        next_flush = time.monotonic() + self.flush_interval
        while True:
            item = await self._queue.get()
            if item is None:
                writer.flush()
                return
            local, msg = item
            try:
                if "stream" in msg:
                    self.stats.messages += 1
                    self._message(local, msg["stream"], msg["data"])
                else:
                    self._depth_answer(local, msg)
            except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as e:
                self.stats.bad += 1
                log.warning("cannot record %s: %r", str(msg)[:200], e)
            now = time.monotonic()
            if now >= next_flush:
                writer.flush()
                next_flush = now + self.flush_interval

    def _write(self, ev: Event) -> None:
        assert self._writer is not None
        self._writer.write(ev)
        self.stats.counts[ev.type_name] += 1

    def _message(self, local: int, stream: str, d: dict[str, Any]) -> None:
        kind, _, sym = stream.partition(".")
        sym = sym.partition("@")[0]
        if kind == "trades":
            self._write(
                Trade(
                    d["ts"],
                    local,
                    sym,
                    Decimal(d["price"]),
                    Decimal(d["qty"]),
                    _SIDES.get(d["takerSide"], "unknown"),
                    str(d["tradeId"]),
                    EXCHANGE,
                )
            )
        elif kind == "mark":
            self._write(
                Ticker(
                    d["ts"],
                    local,
                    sym,
                    _price(d["mark"]),
                    _price(d["index"]),
                    _price(d["last"]),
                    Decimal(d["fundingRate"]),
                    None,
                    d["nextFundingTs"],
                    None,
                    EXCHANGE,
                )
            )
        elif kind == "liquidations":
            self._write(
                Liquidation(
                    d["ts"],
                    local,
                    sym,
                    Decimal(d["bankruptcyPrice"]),
                    Decimal(d["qty"]),
                    _LIQ_SIDES.get(d["side"], "unknown"),
                    str(d["liquidationId"]),
                    EXCHANGE,
                )
            )
        elif kind == "book":
            if d["type"] == "snapshot":
                self._snapshot(local, sym, d)
            else:
                self._delta(local, sym, d)

    # ------------------------------------------------------------------ the book

    def _snapshot(self, local: int, sym: str, d: dict[str, Any], resync: bool = False) -> None:
        b = self._books.setdefault(sym, _BookState())
        seq = d["bookSeq"]
        self._write(
            BookUpdate(
                d["ts"], local, sym, True, _levels(d["bids"]), _levels(d["asks"]), seq, EXCHANGE
            )
        )
        self.stats.snapshots += 1
        self.stats.resyncs += resync
        b.seq = seq
        buffered, b.buffer = b.buffer or [], None
        for t, delta in buffered:  # received while the snapshot was on its way
            self._delta(t, sym, delta)

    def _delta(self, local: int, sym: str, d: dict[str, Any]) -> None:
        b = self._books.setdefault(sym, _BookState())
        if b.buffer is not None:
            b.buffer.append((local, d))
            return
        seq = d["bookSeq"]
        if b.seq is not None and seq <= b.seq:
            self.stats.stale += 1
            return
        if b.seq is None or seq != b.seq + 1:
            self.stats.gaps += b.seq is not None
            b.buffer = [(local, d)]
            self._resync(sym)
            return
        self._write(
            BookUpdate(
                d["ts"], local, sym, False, _levels(d["bids"]), _levels(d["asks"]), seq, EXCHANGE
            )
        )
        b.seq = seq

    def _resync(self, sym: str) -> None:
        client = self._client
        assert client is not None

        async def fetch() -> None:
            try:
                await client.depth(sym)  # the answer is written by `_depth_answer`, in order
            except (ApiError, ConnectionLost, TimeoutError) as e:
                log.warning("book resync for %s failed: %s", sym, e)
                b = self._books[sym]
                b.buffer = None
                b.seq = None  # the next delta asks again

        t = asyncio.create_task(fetch())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _depth_answer(self, local: int, msg: dict[str, Any]) -> None:
        sym = self._depth_ids.pop(msg.get("id"))
        if msg.get("status") != 200:
            return  # `fetch` logs it
        self._snapshot(local, sym, msg["result"], resync=True)


async def record(
    url: str,
    symbols: Iterable[str],
    out: PathLike | TextIO,
    *,
    duration: float | None = None,
    book: bool = True,
    stop: asyncio.Event | None = None,
) -> RecordStats:
    """Record a live session into an event log; see :class:`Recorder`."""
    return await Recorder(url, symbols, out, book=book).run(duration, stop)
