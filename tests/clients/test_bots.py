"""The example bots trade against a real server and never raise on API errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from clients import Client
from clients.bots import MarketMaker, MomentumTrader, NoiseTrader
from exchange.testing import Schemas, running_stack

S = Schemas()
SYM = "BTCUSDT"


async def test_bots_make_a_market_and_trade() -> None:
    async with running_stack(clock="realtime", tick_interval=None) as st:
        adm = await Client(st.url, admin_token=st.admin_token).connect()
        await adm.set_index(SYM, "50000")

        async def account(deposit: str) -> Client:
            k = await adm.create_account(deposit=deposit)
            c = Client(st.url, api_key=k["apiKey"], secret=k["secret"])
            c.trace = S.tracer()
            return await c.connect()

        mm = MarketMaker(await account("5000000"), SYM, refresh=0.05, seed=1)
        noise = [
            NoiseTrader(await account("100000"), SYM, mean_interval=0.02, seed=i) for i in range(2)
        ]
        mom = MomentumTrader(await account("20000"), SYM, leverage=20, interval=0.02, lookback=3,
                             threshold=Decimal("0"), seed=3)  # fmt: skip
        stop = asyncio.Event()
        tasks = [asyncio.create_task(b.run(stop)) for b in (mm, *noise, mom)]
        for i in range(20):  # the index wanders so the momentum trader sees a trend
            await adm.set_index(SYM, str(50000 + 10 * i))
            await asyncio.sleep(0.03)
        stop.set()
        await asyncio.gather(*tasks)
        assert mm.stats.orders >= 16
        assert sum(n.stats.orders for n in noise) >= 5
        assert st.exchange.last_trade(SYM) is not None
        assert mom.stats.orders >= 1
        for b in (mm, *noise, mom):
            await b.client.close()
        await adm.close()
    assert not S.failures, S.failures[:3]


async def test_bot_counts_errors_instead_of_raising() -> None:
    async with running_stack() as st:
        adm = await Client(st.url, admin_token=st.admin_token).connect()
        k = await adm.create_account(deposit="1")  # far too little to trade
        await adm.set_index(SYM, "50000")
        c = await Client(st.url, api_key=k["apiKey"], secret=k["secret"]).connect()
        bot = NoiseTrader(c, SYM, mean_interval=0.01, seed=1)
        stop = asyncio.Event()
        task = asyncio.create_task(bot.run(stop))
        await asyncio.sleep(0.2)
        stop.set()
        await task
        assert bot.stats.errors >= 1 and bot.stats.orders == 0
        assert -2019 in bot.stats.by_code
        await c.close()
        await adm.close()


async def test_the_market_follows_an_index_shock_beyond_the_price_band() -> None:
    """With the mark taken from the last trade, a −12 % index shock (beyond the 5 % band
    around the mark) still moves the market: the market maker quotes inside the band, trades
    move the mark, and the book walks down band by band instead of emptying."""
    import dataclasses

    from exchange.config import load_instruments

    insts = [
        dataclasses.replace(i, mark_method="last") if i.symbol == SYM else i
        for i in load_instruments()
    ]
    async with running_stack(insts, clock="realtime", tick_interval=None) as st:
        adm = await Client(st.url, admin_token=st.admin_token).connect()
        await adm.set_index(SYM, "50000")

        async def account(deposit: str) -> Client:
            k = await adm.create_account(deposit=deposit)
            return await Client(st.url, api_key=k["apiKey"], secret=k["secret"]).connect()

        mm = MarketMaker(await account("50000000"), SYM, refresh=0.02, seed=1)
        noise = [
            NoiseTrader(await account("1000000"), SYM, mean_interval=0.01,
                        max_position=Decimal("5"), seed=i)
            for i in range(2)
        ]  # fmt: skip
        stop = asyncio.Event()
        tasks = [asyncio.create_task(b.run(stop)) for b in (mm, *noise)]
        ex = st.exchange
        for _ in range(200):  # until trades set a mark near the index
            await asyncio.sleep(0.02)
            last = ex.last_trade(SYM)
            if last is not None:
                break
        before = ex.market_view(SYM).mark
        await adm.set_index(SYM, "44000")  # −12 %
        for _ in range(500):
            await asyncio.sleep(0.02)
            if ex.market_view(SYM).mark < before * 90 // 100:
                break
        stop.set()
        await asyncio.gather(*tasks)
        after = ex.market_view(SYM).mark
        assert after < before * 90 // 100, (before, after)  # beyond one band's width
        for b in (mm, *noise):
            await b.client.close()
        await adm.close()
