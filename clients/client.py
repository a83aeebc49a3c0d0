"""An asyncio client for the margincall WebSocket API.

    async with Client("ws://127.0.0.1:8765", api_key=KEY, secret=SECRET) as c:
        await c.place_order("BTCUSDT", "BUY", "0.010", "50000.0")
        async for msg in c.stream("trades.BTCUSDT"):
            print(msg["price"], msg["qty"])

* typed methods, one per API method, decimals accepted as `Decimal`, `str` or `int`
  and sent as strings; errors raise `ApiError(code, msg)`;
* `subscribe(...)` / `stream(name)`: an async iterator of the `data` of each stream
  message, with its own bounded queue (the oldest message is dropped past `stream_queue`,
  and counted in `Stream.dropped`);
* `book(symbol)`: a `LocalBook` kept from the snapshot and the deltas; a gap in
  `bookSeq` triggers a resync from a `depth` snapshot, deltas arriving meanwhile are
  buffered and replayed on top of it;
* reconnect: when the connection drops (not closed by us), reconnect with capped
  exponential backoff, log on again and resubscribe every stream; book streams get a
  fresh snapshot. Requests in flight fail with `ConnectionLost`.

`SyncClient` wraps the same client for notebooks and scripts without asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypedDict

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from exchange.auth import sign

log = logging.getLogger("margincall.client")

Num = Decimal | str | int


class ApiError(Exception):
    """An error answer from the server."""

    def __init__(self, code: int, msg: str, status: int = 400, method: str = "") -> None:
        super().__init__(f"{code}: {msg}" + (f" ({method})" if method else ""))
        self.code = code
        self.msg = msg
        self.status = status
        self.method = method


class ConnectionLost(ConnectionError):
    """The connection dropped while a request was in flight."""


class Order(TypedDict, total=False):
    orderId: int
    clientOrderId: str | None
    symbol: str
    side: str
    type: str
    timeInForce: str
    price: str
    origQty: str
    executedQty: str
    remainingQty: str
    avgPrice: str
    stopPrice: str
    reduceOnly: bool
    status: str
    fills: list[list[str]]
    ts: int


class Position(TypedDict, total=False):
    symbol: str
    positionAmt: str
    entryPrice: str
    markPrice: str
    liquidationPrice: str
    bankruptcyPrice: str
    isolatedMargin: str
    leverage: int
    notional: str  # signed size × mark price
    entryNotional: str  # signed size × entry price (the open cost)
    unrealizedProfit: str
    maintMargin: str
    marginRatio: str
    realizedPnl: str


class AccountStatus(TypedDict):
    account: int
    balances: list[dict[str, str]]
    positions: list[Position]


class NewAccount(TypedDict):
    account: int
    apiKey: str
    secret: str


class Depth(TypedDict):
    symbol: str
    bookSeq: int
    bids: list[list[str]]  # [price, qty], best first
    asks: list[list[str]]
    ts: int


class Ticker(TypedDict):
    type: str
    symbol: str
    mark: str
    index: str
    last: str
    fundingRate: str
    nextFundingTs: int
    ts: int
    status: str  # TRADING | HALTED
    bestBid: str | None
    bestAsk: str | None


class Canceled(TypedDict):
    symbol: str
    canceled: int


class LeverageSet(TypedDict):
    symbol: str
    leverage: int


class MarginAdjusted(TypedDict):
    symbol: str
    amount: str
    type: int  # 1 added, 2 removed
    isolatedMargin: str | None


class ServerTime(TypedDict):
    serverTime: int  # wall clock, ms
    engineTime: int  # engine time, ns
    clock: str  # realtime | stepped


def dec(v: Num) -> str:
    """A decimal parameter as the wire wants it: a plain decimal string."""
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, bool):
        raise TypeError("a decimal, not a bool")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"use Decimal, str or int for decimals, not {type(v).__name__}")


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


class Client:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        admin_token: str | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        stream_queue: int = 100_000,
        request_timeout: float = 30.0,
        max_size: int | None = 16 * 2**20,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.secret = secret
        self.admin_token = admin_token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.stream_queue = stream_queue
        self.request_timeout = request_timeout
        self.max_size = max_size
        self.account: int | None = None
        self.reconnects = 0
        self.on_reconnect: list[Callable[[], Any]] = []
        self.drop_filter: Callable[[dict[str, Any]], bool] | None = None  # tests: lose messages
        self.trace: Callable[[str, dict[str, Any]], None] | None = None  # ("send"|"recv", msg)
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[str, Stream] = {}
        self._subscribed: set[str] = set()
        self._books: dict[str, LocalBook] = {}
        self._book_buffers: dict[str, list[dict[str, Any]] | None] = {}
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()  # socket open
        self._ready = asyncio.Event()  # socket open, logged on, resubscribed
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ connection

    async def connect(self) -> Client:
        self._closing = False
        await self._open()
        self._reader = asyncio.create_task(self._read_loop(), name="margincall-client-reader")
        await self._after_open()
        return self

    async def _open(self) -> None:
        self._ws = await connect(
            self.url, compression=None, max_size=self.max_size, open_timeout=10
        )
        self._connected.set()

    async def _after_open(self) -> None:
        if self.admin_token:
            await self._call("session.logon", {"adminToken": self.admin_token})
        if self.api_key and self.secret:
            res = await self._call("session.logon", self._logon_params())
            self.account = res["account"]
        if self._subscribed:
            for sym, book in self._books.items():
                if f"book.{sym}" in self._subscribed:
                    book.seq = -1
                    book.synced.clear()
            await self._call("subscribe", {"streams": sorted(self._subscribed)})
        self._ready.set()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for t in list(self._tasks):
            t.cancel()
        for s in self._streams.values():
            s._close()
        self._fail_pending(ConnectionLost("client closed"))

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _read_loop(self) -> None:
        backoff = 0.05
        while True:
            ws = self._ws
            assert ws is not None
            try:
                async for raw in ws:
                    self._dispatch(raw)
            except ConnectionClosed:
                pass
            self._connected.clear()
            self._ready.clear()
            self._fail_pending(ConnectionLost("connection lost"))
            if self._closing or not self.reconnect:
                for s in self._streams.values():
                    s._close()
                return
            while not self._closing:
                await asyncio.sleep(backoff)
                try:
                    await self._open()
                except (OSError, TimeoutError, ConnectionClosed, Exception) as e:  # noqa: BLE001
                    log.info("reconnect failed: %s", e)
                    backoff = min(self.max_backoff, backoff * 2)
                    continue
                backoff = 0.05
                self.reconnects += 1
                self._spawn(self._resume())
                break

    async def _resume(self) -> None:
        try:
            await self._after_open()
        except (ApiError, ConnectionLost) as e:
            log.warning("resume after reconnect failed: %s", e)
            return
        for cb in self.on_reconnect:
            cb()

    def _dispatch(self, raw: str | bytes) -> None:
        msg = json.loads(raw)
        if self.trace is not None:
            self.trace("recv", msg)
        if "stream" in msg:
            if self.drop_filter is not None and self.drop_filter(msg):
                return
            name = msg["stream"]
            data = msg["data"]
            if name.startswith("book."):
                self._on_book(name[5:], data)
            s = self._streams.get(name)
            if s is not None:
                s._put(data)
            return
        fut = self._pending.pop(msg.get("id"), None) if isinstance(msg.get("id"), int) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    # ------------------------------------------------------------ book upkeep

    def _on_book(self, symbol: str, data: dict[str, Any]) -> None:
        book = self._books.get(symbol)
        if book is None:
            return
        buf = self._book_buffers.get(symbol)
        if data["type"] == "snapshot":
            book.apply_snapshot(data["bookSeq"], data["bids"], data["asks"])
            self._book_buffers[symbol] = None
            return
        if buf is not None:  # resync in progress
            buf.append(data)
            return
        if book.seq < 0:
            return  # waiting for the snapshot
        seq = data["bookSeq"]
        if seq <= book.seq:
            return
        # a merged delta covers firstBookSeq..bookSeq with new totals: applying it over a
        # book that already holds part of that range is still right
        if data.get("firstBookSeq", seq) <= book.seq + 1:
            book.apply_delta(data)
            return
        book.gaps += 1
        self._book_buffers[symbol] = [data]
        self._spawn(self._resync(symbol))

    async def _resync(self, symbol: str) -> None:
        book = self._books[symbol]
        try:
            snap = await self.depth(symbol)
        except (ApiError, ConnectionLost) as e:
            log.warning("book resync for %s failed: %s", symbol, e)
            self._book_buffers[symbol] = None
            book.seq = -1
            return
        book.resyncs += 1
        buffered = self._book_buffers.get(symbol) or []
        self._book_buffers[symbol] = None
        book.apply_snapshot(snap["bookSeq"], snap["bids"], snap["asks"])
        for d in buffered:
            self._on_book(symbol, d)

    # ------------------------------------------------------------ requests

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request and return its `result`; raise `ApiError` on an error answer.

        While reconnecting, waits (up to `request_timeout`) until the session is back.
        """
        if not self._ready.is_set():
            await asyncio.wait_for(self._ready.wait(), self.request_timeout)
        return await self._call(method, params)

    async def _call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if not self._connected.is_set():
            await asyncio.wait_for(self._connected.wait(), self.request_timeout)
        ws = self._ws
        assert ws is not None
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        body: dict[str, Any] = {"id": rid, "method": method}
        if params:
            body["params"] = params
        if self.trace is not None:
            self.trace("send", body)
        try:
            await ws.send(json.dumps(body, separators=(",", ":")))
        except ConnectionClosed as e:
            self._pending.pop(rid, None)
            raise ConnectionLost(str(e)) from None
        try:
            msg = await asyncio.wait_for(fut, self.request_timeout)
        finally:
            self._pending.pop(rid, None)
        if msg.get("status") != 200:
            err = msg.get("error") or {}
            raise ApiError(err.get("code", -1000), err.get("msg", ""), msg.get("status", 0), method)
        return msg.get("result")

    async def logon(self, api_key: str | None = None, secret: str | None = None) -> Any:
        self.api_key = api_key or self.api_key
        self.secret = secret or self.secret
        if not self.api_key or not self.secret:
            raise ValueError("logon needs api_key and secret")
        res = await self.request("session.logon", self._logon_params())
        self.account = res["account"]
        return res

    def _logon_params(self) -> dict[str, Any]:
        assert self.api_key and self.secret
        params: dict[str, Any] = {"apiKey": self.api_key, "timestamp": int(time.time() * 1000)}
        params["signature"] = sign(self.secret, params)
        return params

    async def admin_logon(self, token: str | None = None) -> Any:
        self.admin_token = token or self.admin_token
        return await self.request("session.logon", {"adminToken": self.admin_token})

    # -- orders

    async def place_order(
        self,
        symbol: str,
        side: str,
        quantity: Num,
        price: Num | None = None,
        *,
        type: str | None = None,
        time_in_force: str | None = None,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        stop_price: Num | None = None,
        working_type: str | None = None,
        stp: str | None = None,
    ) -> Order:
        """Place an order; LIMIT when a price is given, else MARKET (unless `type` says)."""
        p: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "type": type or ("LIMIT" if price is not None else "MARKET"),
            "quantity": dec(quantity),
        }
        if price is not None:
            p["price"] = dec(price)
        if time_in_force:
            p["timeInForce"] = time_in_force
        if reduce_only:
            p["reduceOnly"] = True
        if client_order_id:
            p["newClientOrderId"] = client_order_id
        if stop_price is not None:
            p["stopPrice"] = dec(stop_price)
        if working_type:
            p["workingType"] = working_type
        if stp:
            p["selfTradePreventionMode"] = stp
        result: Order = await self.request("order.place", p)
        return result

    @staticmethod
    def _ref(symbol: str, order_id: int | None, client_order_id: str | None) -> dict[str, Any]:
        p: dict[str, Any] = {"symbol": symbol}
        if order_id is not None:
            p["orderId"] = order_id
        if client_order_id is not None:
            p["origClientOrderId"] = client_order_id
        return p

    async def cancel_order(
        self, symbol: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        result: Order = await self.request(
            "order.cancel", self._ref(symbol, order_id, client_order_id)
        )
        return result

    async def modify_order(
        self,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        *,
        quantity: Num | None = None,
        price: Num | None = None,
    ) -> Order:
        p = self._ref(symbol, order_id, client_order_id)
        if quantity is not None:
            p["quantity"] = dec(quantity)
        if price is not None:
            p["price"] = dec(price)
        result: Order = await self.request("order.modify", p)
        return result

    async def cancel_all(self, symbol: str) -> Canceled:
        result: Canceled = await self.request("order.cancelAll", {"symbol": symbol})
        return result

    async def order_status(
        self, symbol: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        result: Order = await self.request(
            "order.status", self._ref(symbol, order_id, client_order_id)
        )
        return result

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        result: list[Order] = await self.request(
            "openOrders.status", {"symbol": symbol} if symbol else None
        )
        return result

    # -- account

    async def account_status(self) -> AccountStatus:
        result: AccountStatus = await self.request("account.status")
        return result

    async def position(self, symbol: str) -> Position | None:
        acct = await self.account_status()
        return next((p for p in acct["positions"] if p["symbol"] == symbol), None)

    async def adjust_margin(self, symbol: str, amount: Num, *, add: bool = True) -> MarginAdjusted:
        result: MarginAdjusted = await self.request(
            "position.margin", {"symbol": symbol, "amount": dec(amount), "type": 1 if add else 2}
        )
        return result

    async def set_leverage(self, symbol: str, leverage: int) -> LeverageSet:
        result: LeverageSet = await self.request(
            "leverage.set", {"symbol": symbol, "leverage": leverage}
        )
        return result

    # -- market data

    async def exchange_info(self, symbol: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "exchangeInfo", {"symbol": symbol} if symbol else None
        )
        return result

    async def depth(self, symbol: str, limit: int | None = None) -> Depth:
        p: dict[str, Any] = {"symbol": symbol}
        if limit is not None:
            p["limit"] = limit
        result: Depth = await self.request("depth", p)
        return result

    async def ticker(self, symbol: str) -> Ticker:
        result: Ticker = await self.request("ticker", {"symbol": symbol})
        return result

    async def time(self) -> ServerTime:
        result: ServerTime = await self.request("time")
        return result

    # -- streams

    def stream(self, name: str) -> Stream:
        """The `Stream` object for `name` (subscribe separately, or use `subscribe`)."""
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = Stream(name, self.stream_queue)
        return s

    async def subscribe(self, *names: str) -> list[Stream]:
        streams = [self.stream(n) for n in names]
        for n in names:
            if n.startswith("book.") and n[5:] not in self._books:
                self._books[n[5:]] = LocalBook(n[5:])
        await self.request("subscribe", {"streams": list(names)})
        self._subscribed.update(names)
        return streams

    async def unsubscribe(self, *names: str) -> None:
        await self.request("unsubscribe", {"streams": list(names)})
        self._subscribed.difference_update(names)
        for n in names:
            if n.startswith("book."):
                self._books.pop(n[5:], None)

    async def book(self, symbol: str, timeout: float = 10.0) -> LocalBook:
        """Subscribe to `book.<symbol>` and return the local book once it has a snapshot."""
        name = f"book.{symbol}"
        if name not in self._subscribed:
            await self.subscribe(name)
        book = self._books[symbol]
        await asyncio.wait_for(book.synced.wait(), timeout)
        return book

    # -- admin

    async def create_account(self, deposit: Num | None = None, asset: str = "USDT") -> NewAccount:
        p: dict[str, Any] = {}
        if deposit is not None:
            p["deposit"] = dec(deposit)
            p["asset"] = asset
        result: NewAccount = await self.request("admin.createAccount", p)
        return result

    async def deposit(self, account: int, amount: Num, asset: str = "USDT") -> AccountStatus:
        result: AccountStatus = await self.request(
            "admin.deposit", {"account": account, "asset": asset, "amount": dec(amount)}
        )
        return result

    async def withdraw(self, account: int, amount: Num, asset: str = "USDT") -> AccountStatus:
        result: AccountStatus = await self.request(
            "admin.withdraw", {"account": account, "asset": asset, "amount": dec(amount)}
        )
        return result

    async def set_index(self, symbol: str, price: Num) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "admin.setIndex", {"symbol": symbol, "price": dec(price)}
        )
        return result

    async def shock_index(self, symbol: str, change: Num) -> dict[str, Any]:
        """Move the index by a relative change: `"-0.10"` is a 10 % crash."""
        result: dict[str, Any] = await self.request(
            "admin.shockIndex", {"symbol": symbol, "change": dec(change)}
        )
        return result

    async def set_funding_rate(self, symbol: str, rate: Num) -> dict[str, Any]:
        """Impose the funding rate of the next funding time: `"0.0003"` is 0.03 %."""
        result: dict[str, Any] = await self.request(
            "admin.setFundingRate", {"symbol": symbol, "rate": dec(rate)}
        )
        return result

    async def halt(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.halt", {"symbol": symbol})
        return result

    async def resume(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.resume", {"symbol": symbol})
        return result

    async def add_instrument(self, instrument: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "admin.addInstrument", {"instrument": instrument}
        )
        return result

    async def advance_clock(
        self, *, to: int | None = None, by: int | None = None
    ) -> dict[str, Any]:
        p = {"to": to} if to is not None else {"by": by}
        result: dict[str, Any] = await self.request("admin.advanceClock", p)
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.stats")
        return result


class SyncClient:
    """The async `Client` run on a private event loop thread, for notebooks and scripts.

        c = SyncClient(url, api_key=KEY, secret=SECRET)
        c.place_order("BTCUSDT", "BUY", "0.01", "50000")
        for msg in c.iter_stream("trades.BTCUSDT", timeout=5): ...
        c.close()

    Every coroutine method of `Client` is available as a blocking method.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = self._run(self._make(url, kwargs))

    async def _make(self, url: str, kwargs: dict[str, Any]) -> Client:
        return await Client(url, **kwargs).connect()

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if asyncio.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._run(attr(*args, **kwargs))

            return call
        return attr

    def iter_stream(self, name: str, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Messages of a subscribed stream; stops after `timeout` seconds without one."""
        s = self._client.stream(name)
        while True:
            try:
                yield self._run(s.get(timeout))
            except (TimeoutError, StopAsyncIteration):
                return

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
