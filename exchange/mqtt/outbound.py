"""Out: core events -> outgoing MQTT messages, the retained state, the bounded queues.

A part of `MqttBridge` (see `exchange.mqtt.bridge`): it owns the two outgoing queues
(`_out` for QoS 0, `_out1` for QoS 1), the retained copies (`retained`), the stream →
topic routes and the `depth` schedule. Payloads come from the runtime's shared
`Formatter`, so they are the WebSocket streams' `data`, byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from exchange import units
from exchange.core import events as E
from exchange.mqtt.config import Outgoing
from exchange.protocol.wire import encode_plain

log = logging.getLogger("margincall.mqtt")

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


class Outbound:
    """`MqttBridge`'s outgoing side: `handle_batch`, the retained state, the queues."""

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
        proc = self._proc
        to_child = self._to_child if proc is not None else {}
        items: list[tuple[int, tuple[object, ...]]] = []
        for ev in batch:
            t = type(ev)
            if t not in _PUBLIC_EVENTS:
                if t is E.InstrumentAdded:  # a new symbol gets its retained state at once
                    symbol = ev.symbol  # type: ignore[attr-defined]
                    if proc is not None:
                        proc.add_instrument(self.runtime.exchange.instruments[symbol])
                    for msg in self._seed([symbol]):
                        enqueue(msg)
                continue
            if t in _TICKER_EVENTS:
                touched[ev.symbol] = None  # type: ignore[attr-defined]
            child = to_child.get(t)
            if child is not None:  # formatted and published by the child process
                items.append((child[0], child[1](ev)))
                continue
            pub = payload(ev)
            if pub is None:
                continue
            stream, data = pub
            if stream == "cascades":
                stream = "cascades." + ev.symbol  # type: ignore[attr-defined]
            route = routes.get(stream) or self._route(stream)
            enqueue(Outgoing(route[0], data, route[1], route[2], route[3]))
        if items:
            proc.send(items)  # type: ignore[union-attr]
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
        proc = self._proc
        return len(self._out) + len(self._out1) + self.held() + (proc.pending if proc else 0)

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
