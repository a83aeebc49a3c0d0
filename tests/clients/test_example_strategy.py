"""The README's strategy runs against a real server and trades."""

from __future__ import annotations

import asyncio

import pytest

from clients import Client, example_strategy
from exchange.testing import running_stack

SYM = "BTCUSDT"


async def test_readme_strategy_buys_a_dip(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_stack(clock="realtime", tick_interval=None) as st:
        adm = await Client(st.url, admin_token=st.admin_token).connect()
        await adm.set_index(SYM, "50000")
        mm_key = await adm.create_account(deposit="1000000")
        me = await adm.create_account(deposit="100000")
        mm = await Client(st.url, api_key=mm_key["apiKey"], secret=mm_key["secret"]).connect()
        for i in range(1, 6):  # liquidity on both sides
            await mm.place_order(SYM, "SELL", "0.05", 50000 + 10 * i)
            await mm.place_order(SYM, "BUY", "0.05", 48000 - 10 * i)
        monkeypatch.setenv("MC_KEY", me["apiKey"])
        monkeypatch.setenv("MC_SECRET", me["secret"])
        task = asyncio.create_task(example_strategy.main(st.url))
        await asyncio.sleep(0.1)
        for i in range(25):  # a flat tape, then a dip
            await adm.set_index(SYM, "50000.1" if i % 2 else "50000")
        await adm.set_index(SYM, "49700")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if st.exchange.open_orders(me["account"], SYM):
                break
        task.cancel()
        [tp] = st.exchange.open_orders(me["account"], SYM)
        assert tp.side == "SELL" and tp.reduce_only
        view = st.exchange.account_view(me["account"])
        assert view is not None and view.positions[0].qty == 10
        await mm.close()
        await adm.close()
