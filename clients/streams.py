"""What the client keeps from streams: `Stream` (one stream's messages, a bounded queue,
the oldest dropped and counted) and `LocalBook` (an order book kept from a snapshot and
its deltas). No I/O: `clients.client` feeds them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any


class Stream:
    """Messages of one stream, in order. Iterate with `async for`."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def _put(self, data: dict[str, Any]) -> None:
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(data)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _close(self) -> None:
        self.closed = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> dict[str, Any] | None:
        return self._queue.popleft() if self._queue else None

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.get()

    def __len__(self) -> int:
        return len(self._queue)


class LocalBook:
    """An order book kept from `book.<SYMBOL>`: snapshot, then deltas in `bookSeq` order."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.seq = -1  # -1: no snapshot yet
        self.resyncs = 0
        self.gaps = 0
        self.synced = asyncio.Event()
        self.updated = asyncio.Event()

    def apply_snapshot(self, seq: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids = {Decimal(p): Decimal(q) for p, q in bids}
        self.asks = {Decimal(p): Decimal(q) for p, q in asks}
        self.seq = seq
        self.synced.set()
        self.updated.set()

    def apply_delta(self, data: dict[str, Any]) -> None:
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for p, q in levels:
                price, qty = Decimal(p), Decimal(q)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.seq = data["bookSeq"]
        self.updated.set()

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        if not self.bids:
            return None
        p = max(self.bids)
        return p, self.bids[p]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        if not self.asks:
            return None
        p = min(self.asks)
        return p, self.asks[p]

    def levels(self, n: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        """(bids desc, asks asc) as [[price, qty], ...] strings, like the `depth` answer."""
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return [[str(p), str(q)] for p, q in b], [[str(p), str(q)] for p, q in a]
