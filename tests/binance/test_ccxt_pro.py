"""ccxt.pro's binanceusdm streams against a real in-process margincall."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import ccxt
import ccxt.pro as pro
import pytest

from clients.binance import ccxt_config
from tests.binance.harness import BinanceStack, accounts, binance_stack

SYM = "BTC/USDT:USDT"


def client(b: BinanceStack, acct: dict[str, str]) -> pro.binanceusdm:
    cfg = ccxt_config(b.http_url, acct["apiKey"], acct["secret"], enableRateLimit=False)
    return pro.binanceusdm(cfg)


async def wait_for(coro: Any, timeout: float = 10.0) -> Any:
    return await asyncio.wait_for(coro, timeout)


async def test_two_clients_trade_and_streams_deliver() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        c1, c2 = client(b, a1), client(b, a2)
        try:
            await c1.load_markets()
            await c2.load_markets()
            trades_task = asyncio.create_task(c1.watch_trades(SYM))
            ticker_task = asyncio.create_task(c1.watch_ticker(SYM))
            orders1 = asyncio.create_task(c1.watch_orders(SYM))
            await asyncio.sleep(0.5)  # the subscriptions reach the server
            maker = await c2.create_order(SYM, "limit", "sell", 0.03, 50100)
            orders2 = asyncio.create_task(c2.watch_orders(SYM))
            await asyncio.sleep(0.5)
            await c1.create_order(SYM, "market", "buy", 0.03)
            trades = await wait_for(trades_task)
            assert trades[-1]["price"] == 50100 and trades[-1]["amount"] == 0.03
            assert (await wait_for(ticker_task))["last"] == 50100
            seen1 = await wait_for(orders1)
            while seen1[-1]["status"] != "closed":
                seen1 = await wait_for(c1.watch_orders(SYM))
            assert seen1[-1]["filled"] == 0.03 and seen1[-1]["side"] == "buy"
            seen2 = await wait_for(orders2)
            mine = [o for o in seen2 if o["id"] == maker["id"]]
            assert mine and mine[-1]["filled"] == 0.03 and mine[-1]["status"] == "closed"
            assert (await c1.fetch_my_trades(SYM))[0]["amount"] == 0.03
            assert (await c2.fetch_my_trades(SYM))[0]["amount"] == 0.03

            positions = asyncio.create_task(c1.watch_positions([SYM]))
            balance = asyncio.create_task(c1.watch_balance())
            await asyncio.sleep(0.3)
            await c1.create_order(SYM, "limit", "buy", 0.01, 49900)
            await c2.create_order(SYM, "market", "sell", 0.01)
            pos = await wait_for(positions)
            assert pos[-1]["side"] == "long" and pos[-1]["marginMode"] == "isolated"
            bal = await wait_for(balance)
            assert bal["USDT"]["total"] > 0
        finally:
            await c1.close()
            await c2.close()


async def test_index_crash_liquidates_a_ccxt_position() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        c1, c2 = client(b, a1), client(b, a2)
        try:
            await c1.load_markets()
            await c1.set_leverage(50, SYM)
            await c2.create_order(SYM, "limit", "sell", 0.1, 50000)
            await c1.create_order(SYM, "market", "buy", 0.1)
            for p in (49900, 49800, 49000):
                await c2.create_order(SYM, "limit", "buy", 0.2, p)
            liq_price = (await c1.fetch_positions([SYM]))[0]["liquidationPrice"]
            assert 48000 < liq_price < 50000
            orders = asyncio.create_task(c1.watch_orders(SYM))
            liqs = asyncio.create_task(c2.watch_liquidations(SYM))
            await asyncio.sleep(0.5)
            from exchange.testing import Probe

            async with Probe(b.stack.url) as admin:
                await admin.call("session.logon", adminToken=b.admin_token)
                await admin.call("admin.shockIndex", symbol="BTCUSDT", change="-0.08")
            seen = await wait_for(orders)
            while not any(str(o["clientOrderId"]).startswith("autoclose-") for o in seen):
                seen = await wait_for(c1.watch_orders(SYM))
            assert await c1.fetch_positions([SYM]) == []
            liq = await wait_for(liqs)
            assert liq[-1]["contracts"] == 0.1 and liq[-1]["side"] == "sell"
        finally:
            await c1.close()
            await c2.close()


@pytest.mark.slow
async def test_watch_order_book_stays_in_sync_through_1000_changes_and_a_resync() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        c1, c2 = client(b, a1), client(b, a2)
        rng = random.Random(7)
        reconnects = 0

        async def consume() -> None:  # a strategy's loop: watch, and watch again after errors
            nonlocal reconnects
            while True:
                try:
                    await c1.watch_order_book(SYM)
                except ccxt.NetworkError:
                    reconnects += 1
                    await asyncio.sleep(0.05)

        try:
            await c1.load_markets()
            await c2.load_markets()
            await wait_for(c1.watch_order_book(SYM))
            watcher = asyncio.create_task(consume())
            ids: list[str] = []
            for i in range(1000):
                if ids and (rng.random() < 0.4 or len(ids) >= 150):
                    await c2.cancel_order(ids.pop(rng.randrange(len(ids))), SYM)
                else:
                    side = rng.choice(["buy", "sell"])
                    px = 49000 + rng.randrange(0, 900) if side == "buy" else 50100 + rng.randrange(0, 900)  # fmt: skip
                    amount = 0.001 * rng.randint(1, 5)
                    ids.append((await c2.create_order(SYM, "limit", side, amount, px))["id"])
                if i == 500:
                    await b.gw.streams.close_all()  # the server drops every stream: a resync
                if i % 100 == 99 or i == 502:
                    await _assert_book_matches(c1)
            await _assert_book_matches(c1)
            assert reconnects >= 1
            watcher.cancel()
        finally:
            await c1.close()
            await c2.close()


async def _assert_book_matches(c: pro.binanceusdm) -> None:
    """The locally kept book equals the REST snapshot once it has caught up with it."""
    want = await c.fetch_order_book(SYM, 1000)
    for _ in range(200):
        ob = c.orderbooks.get(SYM)
        if ob is not None and ob["nonce"] is not None and ob["nonce"] >= want["nonce"]:
            break
        await asyncio.sleep(0.025)
    assert ob is not None and ob["nonce"] == want["nonce"]
    assert ob["bids"][:100] == want["bids"][:100] and ob["asks"][:100] == want["asks"][:100]
