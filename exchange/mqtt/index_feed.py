"""In: index-feed messages -> validated `SetIndexPrice` commands, one waiting per symbol.

A part of `MqttBridge` (see `exchange.mqtt.bridge`): it owns the last feed time and the
pending and coalesced prices per symbol. Bad payloads are counted and logged and never
reach the core; retained (replayed) prices are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time

from exchange import units
from exchange.core import commands as C
from exchange.core import events as E
from exchange.protocol.wire import loads
from exchange.units import UnitError

log = logging.getLogger("margincall.mqtt")

MAX_INDEX_PAYLOAD = 1024  # bytes
INDEX_KEYS = frozenset({"symbol", "price", "ts"})


class IndexFeedError(ValueError):
    pass


class IndexFeed:
    """`MqttBridge`'s index feed: `on_index_payload`, `parse_index`, the coalescing."""

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
