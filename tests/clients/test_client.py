"""The Python client against a real server: typed methods, streams, reconnect, book resync."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from clients import ApiError, Client, SyncClient
from exchange.auth import AdminAuth, KeyStore
from exchange.config import load_instruments
from exchange.core.engine import Exchange
from exchange.runtime import Runtime
from exchange.server import Server, ServerConfig
from exchange.testing import Schemas, running_stack

S = Schemas()
SYM = "BTCUSDT"


@pytest.fixture(autouse=True)
def _schema_failures() -> Iterator[None]:
    S.failures.clear()
    yield
    assert not S.failures, S.failures[:3]


def traced(c: Client) -> Client:
    c.trace = S.tracer()
    return c


async def make_admin(url: str, token: str) -> Client:
    return await traced(Client(url, admin_token=token)).connect()


async def test_typed_methods_and_streams() -> None:
    async with running_stack() as st:
        adm = await make_admin(st.url, st.admin_token)
        ka = await adm.create_account(deposit=Decimal("100000"))
        kb = await adm.create_account(deposit="100000")
        await adm.set_index(SYM, 50000)
        a = await traced(Client(st.url, api_key=ka["apiKey"], secret=ka["secret"])).connect()
        b = await traced(Client(st.url, api_key=kb["apiKey"], secret=kb["secret"])).connect()
        assert a.account == ka["account"]
        trades, fills = await b.subscribe(f"trades.{SYM}", "account")
        book = await b.book(SYM)
        assert book.seq >= 0 and book.best_bid() is None

        o = await a.place_order(
            SYM, "SELL", Decimal("0.5"), Decimal("50000.0"), client_order_id="x1"
        )
        assert o["status"] == "NEW" and o["price"] == "50000.00"
        r = await b.place_order(SYM, "BUY", "0.2")  # no price: MARKET
        assert r["type"] == "MARKET" and r["status"] == "FILLED"
        t = await trades.get(timeout=5)
        assert t["qty"] == "0.200"
        f = await fills.get(timeout=5)
        while f["type"] != "fill":
            f = await fills.get(timeout=5)
        assert f["orderId"] == r["orderId"]
        await asyncio.wait_for(
            _until(lambda: book.best_ask() == (Decimal("50000.00"), Decimal("0.300"))), 5
        )

        assert (await a.order_status(SYM, client_order_id="x1"))["executedQty"] == "0.200"
        assert (await a.modify_order(SYM, o["orderId"], price="50010"))["price"] == "50010.00"
        assert len(await a.open_orders(SYM)) == 1
        assert (await a.cancel_order(SYM, o["orderId"]))["status"] == "CANCELED"
        assert (await a.cancel_all(SYM))["canceled"] == 0
        pos = await b.position(SYM)
        assert pos is not None and pos["positionAmt"] == "0.200"
        await b.adjust_margin(SYM, "10")
        await b.adjust_margin(SYM, "5", add=False)
        await b.set_leverage(SYM, 10)
        assert (await b.account_status())["account"] == kb["account"]
        assert (await b.exchange_info(SYM))["symbols"][0]["symbol"] == SYM
        assert (await b.depth(SYM, 10))["symbol"] == SYM
        assert (await b.ticker(SYM))["last"] == "50000.00"
        assert (await b.time())["clock"] == "stepped"
        with pytest.raises(ApiError) as e:
            await b.cancel_order(SYM, 424242)
        assert e.value.code == -2011
        with pytest.raises(ApiError) as e:
            await b.halt(SYM)
        assert e.value.code == -2015
        await adm.halt(SYM)
        await adm.resume(SYM)
        await adm.shock_index(SYM, "-0.01")
        assert (await adm.set_funding_rate(SYM, Decimal("0.0003")))["fundingRate"] == "0.00030000"
        with pytest.raises(ApiError) as e:
            await adm.set_funding_rate(SYM, "0.2")  # beyond ±0.1
        assert e.value.code == -1130
        with pytest.raises(ApiError) as e:
            await b.set_funding_rate(SYM, "0.0001")
        assert e.value.code == -2015
        pos = await b.position(SYM)
        assert pos is not None
        assert Decimal(pos["notional"]) == Decimal(pos["positionAmt"]) * Decimal(pos["markPrice"])
        assert Decimal(pos["entryNotional"]) == Decimal("10000")  # 0.2 BTC at 50,000
        await adm.deposit(kb["account"], 1)
        await adm.withdraw(kb["account"], 1)
        await adm.advance_clock(by=10**9)
        assert (await adm.stats())["stateHash"] == st.exchange.state_hash()
        await b.unsubscribe(f"trades.{SYM}")
        for c in (a, b, adm):
            await c.close()


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.005)


async def test_book_resyncs_from_a_depth_snapshot_after_a_gap() -> None:
    async with running_stack() as st:
        adm = await make_admin(st.url, st.admin_token)
        k = await adm.create_account(deposit="1000000")
        await adm.set_index(SYM, 50000)
        trader = await Client(st.url, api_key=k["apiKey"], secret=k["secret"]).connect()
        watcher = await traced(Client(st.url)).connect()
        book = await watcher.book(SYM)
        lost: list[int] = []

        def lose_one(msg: dict[str, Any]) -> bool:
            d = msg["data"]
            if msg["stream"] == f"book.{SYM}" and d["type"] == "delta" and not lost:
                lost.append(d["bookSeq"])
                return True
            return False

        watcher.drop_filter = lose_one
        for i in range(10):
            await trader.place_order(SYM, "BUY", "0.01", 49000 + 10 * i)
            await trader.place_order(SYM, "SELL", "0.01", 51000 - 10 * i)
            await asyncio.sleep(0.05)  # deltas over several of the stream's 100 ms merges
        await asyncio.wait_for(_until(lambda: book.seq == st.exchange.book_seq(SYM)), 5)
        assert len(lost) == 1 and book.gaps == 1 and book.resyncs == 1
        server = await watcher.depth(SYM)
        assert book.levels() == (server["bids"], server["asks"])
        for c in (trader, watcher, adm):
            await c.close()


async def test_reconnect_logs_on_again_and_resubscribes() -> None:
    ex = Exchange(load_instruments())
    keys, admin = KeyStore(), AdminAuth("tok")
    async with Runtime(ex, clock="stepped") as rt:
        s1 = Server(rt, ServerConfig(port=0), keys=keys, admin=admin)
        await s1.start()
        port = s1.port
        adm = await make_admin(s1.url, "tok")
        k = await adm.create_account(deposit="1000000")
        await adm.set_index(SYM, 50000)
        c = await traced(
            Client(s1.url, api_key=k["apiKey"], secret=k["secret"], max_backoff=0.2)
        ).connect()
        [acct] = await c.subscribe("account")
        book = await c.book(SYM)
        await c.place_order(SYM, "BUY", "0.01", 49000)
        reconnected = asyncio.Event()
        c.on_reconnect.append(reconnected.set)

        await s1.stop()  # the server goes away ...
        await asyncio.sleep(0.3)
        assert not c.connected
        s2 = Server(rt, ServerConfig(port=port), keys=keys, admin=admin)
        await s2.start()  # ... and comes back on the same port
        await asyncio.wait_for(reconnected.wait(), 10)
        assert c.reconnects >= 1
        # logged on again (private methods work) and resubscribed (the stream flows)
        o = await c.place_order(SYM, "BUY", "0.01", 49010)
        msg = await acct.get(timeout=5)
        while msg.get("orderId") != o["orderId"]:
            msg = await acct.get(timeout=5)
        await asyncio.wait_for(_until(lambda: book.seq == ex.book_seq(SYM)), 5)
        server = await c.depth(SYM)
        assert book.levels() == (server["bids"], server["asks"])
        assert len(book.bids) == 2
        await c.close()
        await adm.close()
        await s2.stop()


async def test_requests_in_flight_fail_fast_without_reconnect() -> None:
    async with running_stack() as st:
        c = await Client(st.url, reconnect=False).connect()
        await st.server.stop()
        await asyncio.sleep(0.1)
        with pytest.raises((ConnectionError, asyncio.TimeoutError)):
            c.request_timeout = 0.5
            await c.time()
        await c.close()


def test_sync_client() -> None:
    async def scenario(result: dict[str, Any], ready: Any, done: Any) -> None:
        async with running_stack() as st:
            result["url"], result["token"] = st.url, st.admin_token
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.01)

    import threading

    ready, done = threading.Event(), threading.Event()
    info: dict[str, Any] = {}
    t = threading.Thread(target=lambda: asyncio.run(scenario(info, ready, done)))
    t.start()
    try:
        assert ready.wait(10)
        with SyncClient(info["url"], admin_token=info["token"]) as adm:
            k = adm.create_account(deposit="1000")
            adm.set_index(SYM, "50000")
        with SyncClient(info["url"], api_key=k["apiKey"], secret=k["secret"]) as c:
            c.subscribe("account")
            o = c.place_order(SYM, "BUY", "0.01", "49000")
            assert o["status"] == "NEW"
            msgs = list(c.iter_stream("account", timeout=0.3))
            assert any(m.get("orderId") == o["orderId"] for m in msgs)
            assert c.account == k["account"]
    finally:
        done.set()
        t.join(10)
