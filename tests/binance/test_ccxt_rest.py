"""ccxt's binanceusdm (async_support and sync) against a real in-process margincall."""

from __future__ import annotations

import asyncio

import ccxt
import ccxt.async_support as accxt
import pytest

from clients.binance import ccxt_config
from tests.binance.harness import BinanceStack, accounts, binance_stack

SYM = "BTC/USDT:USDT"


def client(b: BinanceStack, acct: dict[str, str] | None = None) -> accxt.binanceusdm:
    if acct is None:
        return accxt.binanceusdm(ccxt_config(b.http_url, enableRateLimit=False))
    return accxt.binanceusdm(
        ccxt_config(b.http_url, acct["apiKey"], acct["secret"], enableRateLimit=False)
    )


async def test_every_method_through_ccxt_unified_api() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        c1, c2 = client(b, a1), client(b, a2)
        try:
            markets = await c1.load_markets()
            m = markets[SYM]
            assert m["swap"] and m["linear"] and m["active"] and m["settle"] == "USDT"
            assert m["precision"]["price"] == 0.1 or m["precision"]["price"] > 0
            assert m["limits"]["cost"]["min"] > 0 and "STOP_MARKET" in m["info"]["orderTypes"]
            assert abs(await c1.fetch_time() - c1.milliseconds()) < 5_000

            # resting liquidity from account 2, taken by account 1
            sell = await c2.create_order(SYM, "limit", "sell", 0.05, 50100, {"timeInForce": "GTC"})
            assert sell["status"] == "open" and sell["price"] == 50100
            book = await c1.fetch_order_book(SYM, 5)
            assert book["asks"][0] == [50100.0, 0.05] and book["nonce"] > 0
            buy = await c1.create_order(SYM, "market", "buy", 0.02)
            assert buy["status"] == "closed" and buy["filled"] == 0.02 and buy["average"] == 50100
            trades = await c1.fetch_trades(SYM)
            assert trades[-1]["price"] == 50100 and trades[-1]["amount"] == 0.02
            assert trades[-1]["side"] == "buy"
            ticker = await c1.fetch_ticker(SYM)
            assert ticker["last"] == 50100 and ticker["baseVolume"] == 0.02
            tickers = await c1.fetch_tickers()
            assert SYM in tickers
            ohlcv = await c1.fetch_ohlcv(SYM, "1m")
            assert ohlcv[-1][1] == 50100 and ohlcv[-1][5] == 0.02
            ohlcv_h = await c1.fetch_ohlcv(SYM, "1h", limit=10)
            assert ohlcv_h[-1][4] == 50100
            fr = await c1.fetch_funding_rate(SYM)
            assert fr["markPrice"] > 0 and fr["fundingTimestamp"] > 0
            assert isinstance(await c1.fetch_funding_rate_history(SYM), list)
            tiers = await c1.fetch_leverage_tiers([SYM])
            assert tiers[SYM][0]["maxLeverage"] >= 1 and tiers[SYM][0]["maintenanceMarginRate"] > 0

            # orders: limit, client id, fetch, edit, cancel, cancel all, history
            o = await c1.create_order(
                SYM, "limit", "buy", 0.01, 49000, {"clientOrderId": "my-order-1"}
            )
            assert o["clientOrderId"] == "my-order-1"
            got = await c1.fetch_order(o["id"], SYM)
            assert got["status"] == "open" and got["amount"] == 0.01
            edited = await c1.edit_order(o["id"], SYM, "limit", "buy", 0.02, 49100)
            assert edited["price"] == 49100 and edited["amount"] == 0.02
            opens = await c1.fetch_open_orders(SYM)
            assert [x["id"] for x in opens] == [o["id"]]
            canceled = await c1.cancel_order(o["id"], SYM)
            assert canceled["status"] == "canceled"
            await c1.create_order(SYM, "limit", "buy", 0.01, 48000)
            await c1.create_order(SYM, "limit", "buy", 0.01, 48100)
            await c1.cancel_all_orders(SYM)
            assert await c1.fetch_open_orders(SYM) == []
            orders = await c1.fetch_orders(SYM)
            assert {x["status"] for x in orders} == {"closed", "canceled"}
            mine = await c1.fetch_my_trades(SYM)
            assert (
                len(mine) == 1 and mine[0]["side"] == "buy" and mine[0]["takerOrMaker"] == "taker"
            )
            theirs = await c2.fetch_my_trades(SYM)
            assert theirs[0]["side"] == "sell" and theirs[0]["takerOrMaker"] == "maker"

            # conditional orders go to the algo API; reduceOnly; time in force
            stop = await c1.create_order(SYM, "market", "sell", 0.02, None, {"stopLossPrice": 45000, "reduceOnly": True})  # fmt: skip
            assert stop["status"] == "open" and stop["triggerPrice"] == 45000
            tp = await c1.create_order(SYM, "TAKE_PROFIT_MARKET", "sell", 0.02, None, {"triggerPrice": 55000, "reduceOnly": True})  # fmt: skip
            assert tp["type"] in ("take_profit_market", "market")
            algo_open = await c1.fetch_open_orders(SYM, params={"trigger": True})
            assert {x["id"] for x in algo_open} == {stop["id"], tp["id"]}
            await c1.cancel_order(stop["id"], SYM, {"trigger": True})
            assert (await c1.fetch_order(tp["id"], SYM, {"trigger": True}))["status"] == "open"
            ioc = await c1.create_order(SYM, "limit", "buy", 0.01, 49500, {"timeInForce": "IOC"})
            assert ioc["status"] == "expired"

            # account: balance, positions, leverage, margin mode, margin
            bal = await c1.fetch_balance()
            assert bal["USDT"]["total"] > 0 and bal["USDT"]["free"] < bal["USDT"]["total"]
            pos = await c1.fetch_positions([SYM])
            assert len(pos) == 1 and pos[0]["contracts"] == 0.02 and pos[0]["side"] == "long"
            assert pos[0]["marginMode"] == "isolated" and pos[0]["liquidationPrice"] > 0
            assert pos[0]["markPrice"] > 0 and pos[0]["collateral"] > 0 and pos[0]["leverage"] >= 1
            lev = await c1.set_leverage(5, SYM)
            assert lev["leverage"] == 5
            assert (await c1.fetch_positions([SYM]))[0]["leverage"] == 5
            mm = await c1.set_margin_mode("isolated", SYM)
            assert mm["code"] == 200
            with pytest.raises(ccxt.BadRequest, match="Cross margin is not available"):
                await c1.set_margin_mode("cross", SYM)
            before = (await c1.fetch_positions([SYM]))[0]["collateral"]
            added = await c1.add_margin(SYM, 100)
            assert added["amount"] == 100 and added["type"] == "add"
            assert (await c1.fetch_positions([SYM]))[0]["collateral"] == pytest.approx(before + 100)
            await c1.reduce_margin(SYM, 50)
            assert (await c1.fetch_positions([SYM]))[0]["collateral"] == pytest.approx(before + 50)
        finally:
            await c1.close()
            await c2.close()


async def test_errors_are_ccxt_exceptions_and_change_nothing() -> None:
    async with binance_stack(clock="stepped") as b:
        (a1,) = await accounts(b, 1, deposit="100")
        c1 = client(b, a1)
        try:
            await c1.load_markets()
            h = b.exchange.state_hash()
            with pytest.raises(ccxt.InsufficientFunds):
                await c1.create_order(SYM, "limit", "buy", 1, 49000)
            with pytest.raises(ccxt.InvalidOrder):
                await c1.create_order(SYM, "limit", "sell", 0.01, 51000, {"reduceOnly": True})
            with pytest.raises(ccxt.OrderNotFound):
                await c1.cancel_order("987654", SYM)
            with pytest.raises(ccxt.OrderNotFound):
                await c1.fetch_order("987654", SYM)
            with pytest.raises(ccxt.BadSymbol):
                await c1.fapiPrivatePostOrder({"symbol": "NOPEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})  # fmt: skip
            with pytest.raises(ccxt.BadRequest, match="-4014"):
                await c1.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": "49000.05", "timeInForce": "GTC"})  # fmt: skip
            with pytest.raises(ccxt.InvalidOrder, match="-4120"):
                await c1.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.010", "stopPrice": "45000"})  # fmt: skip
            assert b.exchange.state_hash() == h
        finally:
            await c1.close()


async def test_another_accounts_orders_look_unknown() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        c1, c2 = client(b, a1), client(b, a2)
        try:
            await c1.load_markets()
            await c2.load_markets()
            o = await c1.create_order(SYM, "limit", "buy", 0.01, 49000)
            with pytest.raises(ccxt.OrderNotFound):
                await c2.fetch_order(o["id"], SYM)
            with pytest.raises(ccxt.OrderNotFound):
                await c2.cancel_order(o["id"], SYM)
            assert await c2.fetch_open_orders(SYM) == []
            assert await c2.fetch_orders(SYM) == []
            assert (await c1.fetch_order(o["id"], SYM))["status"] == "open"
        finally:
            await c1.close()
            await c2.close()


async def test_auth_failures_raise_ccxt_classes() -> None:
    async with binance_stack() as b:
        (a1,) = await accounts(b, 1)
        bad_sig = client(b, {"apiKey": a1["apiKey"], "secret": "0" * 64})
        unknown = client(b, {"apiKey": "ab" * 32, "secret": a1["secret"]})
        stale = client(b, a1)
        stale.nonce = lambda: stale.milliseconds() - 120_000  # type: ignore[method-assign]
        try:
            for c in (bad_sig, unknown, stale):
                await c.load_markets()
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await bad_sig.fetch_balance()
            with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                await unknown.fetch_balance()
            with pytest.raises(ccxt.InvalidNonce, match="-1021"):
                await stale.fetch_balance()
        finally:
            for c in (bad_sig, unknown, stale):
                await c.close()


def test_sync_client_places_and_cancels() -> None:
    async def scenario() -> None:
        async with binance_stack() as b:
            (a1,) = await accounts(b, 1)
            loop = asyncio.get_running_loop()

            def run() -> None:
                ex = ccxt.binanceusdm(ccxt_config(b.http_url, a1["apiKey"], a1["secret"]))
                ex.load_markets()
                o = ex.create_order(SYM, "limit", "buy", 0.01, 49000)
                assert ex.fetch_open_orders(SYM)[0]["id"] == o["id"]
                assert ex.cancel_order(o["id"], SYM)["status"] == "canceled"

            await loop.run_in_executor(None, run)

    asyncio.run(scenario())
