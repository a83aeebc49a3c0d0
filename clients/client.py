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

The typed results and errors are in `clients.results`, `Stream` and `LocalBook` in
`clients.streams`, the admin methods in `clients.admin` (all importable from here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients.admin import AdminMethods
from clients.results import (
    AccountStatus,
    ApiError,
    Canceled,
    ConnectionLost,
    Depth,
    LeverageSet,
    MarginAdjusted,
    NewAccount,
    Num,
    Order,
    Position,
    ServerTime,
    Ticker,
    dec,
)
from clients.streams import LocalBook, Stream
from exchange.auth import sign

# the typed results and the stream holders live in their own modules; importing them
# from here keeps working
__all__ = [
    "AccountStatus",
    "ApiError",
    "Canceled",
    "Client",
    "ConnectionLost",
    "Depth",
    "LeverageSet",
    "LocalBook",
    "MarginAdjusted",
    "NewAccount",
    "Num",
    "Order",
    "Position",
    "ServerTime",
    "Stream",
    "SyncClient",
    "Ticker",
    "dec",
]

log = logging.getLogger("margincall.client")


class Client(AdminMethods):
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
