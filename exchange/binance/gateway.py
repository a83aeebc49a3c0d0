"""The Binance USDⓈ-M gateway: what its REST handlers and streams share.

A thin adapter over the runtime's one command queue, like the native WebSocket API:
every change is a core command submitted through a `protocol.session.Session` (so validation,
authorization and durability are the native API's own — in durable mode an answer
means the command is journaled), and every read is of the core's state between two
commands. The gateway's own runtime subscription feeds the `Ledger` (history the core
does not keep) and the stream hub; `catch_up()` drains it before each read, so a read
after a write sees the write.

`setup(app, stack)` (the HTTP server's plug-in hook) registers the routes of
`exchange.binance.rest` and `exchange.binance.streams` and starts the consumer with the
app. Options come from `stack.opts.extra["binance"]` (a `BinanceConfig`) when present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exchange.binance.ledger import Ledger
from exchange.binance.weight import WeightCounter
from exchange.protocol.api import Api
from exchange.protocol.session import Session

log = logging.getLogger("margincall.binance")


@dataclass
class BinanceConfig:
    weight_limit: int = 2400  # request weight per minute per client address (Binance's)
    max_body: int = 64 * 1024  # bytes of form body at most
    max_query: int = 8 * 1024  # bytes of query string at most
    listen_key_ttl: float = 3600.0  # seconds a listenKey lives without a keep-alive
    max_outbox: int = 10_000  # unread stream messages before a connection is dropped
    max_streams: int = 200  # streams per connection (Binance's limit)


class ListenKeys:
    """listenKey → account, with expiry. One live key per account (POST returns it again
    and extends it, as Binance does)."""

    def __init__(self, ttl: float, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_key: dict[str, tuple[int, float]] = {}
        self._by_account: dict[int, str] = {}

    def create(self, account: int) -> str:
        key = self._by_account.get(account)
        if key is None or key not in self._by_key:
            key = secrets.token_hex(32)
            self._by_account[account] = key
        self._by_key[key] = (account, self._clock() + self.ttl)
        return key

    def account(self, key: str) -> int | None:
        ent = self._by_key.get(key)
        if ent is None:
            return None
        if ent[1] < self._clock():
            self.delete(key)
            return None
        return ent[0]

    def extend(self, account: int) -> str | None:
        key = self._by_account.get(account)
        if key is None or self.account(key) is None:
            return None
        self._by_key[key] = (account, self._clock() + self.ttl)
        return key

    def delete(self, key: str) -> None:
        ent = self._by_key.pop(key, None)
        if ent is not None and self._by_account.get(ent[0]) == key:
            del self._by_account[ent[0]]

    def key_of(self, account: int) -> str | None:
        return self._by_account.get(account)

    def expired(self) -> list[str]:
        now = self._clock()
        return [k for k, (_, until) in self._by_key.items() if until < now]


class Gateway:
    def __init__(self, api: Api, config: BinanceConfig | None = None) -> None:
        from exchange.binance.streams import StreamHub

        self.api = api
        self.runtime = api.runtime
        self.config = config or BinanceConfig()
        self.ledger = Ledger()
        self.weights = WeightCounter(self.config.weight_limit)
        self.listen_keys = ListenKeys(self.config.listen_key_ttl)
        self.streams = StreamHub(self)
        self._sub = self.runtime.subscribe("binance", maxsize=100_000, policy="drop")
        self._task: asyncio.Task[None] | None = None
        self.requests = 0
        self.errors = 0
        self.handler_seconds = 0.0  # time inside the REST dispatcher (parse, sign, handle)
        self.handled = 0

    def timing(self) -> dict[str, float]:
        return {"count": self.handled, "total_ms": self.handler_seconds * 1e3}

    def reset_timing(self) -> None:
        self.handler_seconds = 0.0
        self.handled = 0

    @property
    def exchange(self) -> Any:
        return self.runtime.exchange

    def session(self, account: int | None) -> Session:
        """A native protocol session acting for `account` (no streams: its sink is None)."""
        s = Session(self.api)
        s.account = account
        return s

    def catch_up(self) -> None:
        """Fold every batch the runtime has offered so far (reads see every write)."""
        get = self._sub.get_nowait
        while (batch := get()) is not None:
            self._fold(batch)

    def _fold(self, batch: list[Any]) -> None:
        self.ledger.apply(batch)
        try:
            self.streams.route(batch)
        except Exception:
            log.exception("routing a batch to the Binance streams failed")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="margincall-binance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.streams.close_all()
        self._sub.close()

    async def _run(self) -> None:
        sweep = time.monotonic() + 30
        while True:
            try:
                batch = await asyncio.wait_for(self._sub.get(), 5.0)
            except TimeoutError:
                batch = None
            except StopAsyncIteration:
                return
            if batch is not None:
                self._fold(batch)
                self.catch_up()
            if time.monotonic() > sweep:
                sweep = time.monotonic() + 30
                for key in self.listen_keys.expired():
                    self.streams.listen_key_expired(key)
                    self.listen_keys.delete(key)


GATEWAY = web.AppKey("binance", Gateway)
