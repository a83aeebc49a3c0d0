"""`market.liquidationLadder` over the wire: public, aggregated, schema-valid."""

from __future__ import annotations

from decimal import Decimal

from exchange.core.errors import Code
from exchange.testing import Probe, Schemas, fund_accounts, running_stack

S = Schemas()
SYM = "BTCUSDT"


async def test_the_ladder_shows_the_positions_buckets_and_no_account() -> None:
    async with running_stack() as stack:
        async with Probe(stack.url, S) as admin, Probe(stack.url, S) as anon:
            await admin.call("session.logon", adminToken=stack.admin_token)
            accts = await fund_accounts(admin, 4, deposit="100000")
            traders = []
            for a in accts:
                p = Probe(stack.url, S)
                await p.__aenter__()
                await p.logon(a["apiKey"], a["secret"])
                traders.append(p)
            mm, l1, l2, sh = traders
            await l1.call("leverage.set", symbol=SYM, leverage=10)
            await l2.call("leverage.set", symbol=SYM, leverage=20)
            await sh.call("leverage.set", symbol=SYM, leverage=10)
            await mm.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.3",
                          price="50000", timeInForce="GTC")  # fmt: skip
            await l1.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.1")
            await l2.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.2")
            await mm.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.05",
                          price="50000", timeInForce="GTC")  # fmt: skip
            await sh.call("order.place", symbol=SYM, side="SELL", type="MARKET", quantity="0.05")
            lad = await anon.call("market.liquidationLadder", symbol=SYM, buckets=100)
            assert Decimal(lad["bucketSize"]) == 100  # 1/200 of 50,000 → 100 USDT
            assert lad["longPositions"] == 2 and lad["shortPositions"] == 2  # the maker too
            assert Decimal(lad["longQty"]) == Decimal("0.3")
            placed = [b for b in lad["longs"] if b["positions"]]
            assert sum(Decimal(b["qty"]) for b in placed) == Decimal("0.3")
            assert all(Decimal(b["high"]) <= Decimal(lad["mark"]) + 100 for b in placed)
            # the 10x long is liquidated lower down than the 20x one
            assert len(placed) == 2 and Decimal(placed[0]["qty"]) == Decimal("0.2")
            assert sum(b["positions"] for b in lad["shorts"]) == 2
            text = repr(lad)
            assert "account" not in text
            small = await anon.call("market.liquidationLadder", symbol=SYM, bucketSize="1000")
            assert Decimal(small["bucketSize"]) == 1000 and len(small["longs"]) == 20
            assert await anon.error("market.liquidationLadder", symbol=SYM, bucketSize="200") == (
                Code.INVALID_PARAMETER
            )
            assert await anon.error("market.liquidationLadder", symbol="NOPE") == Code.BAD_SYMBOL
            assert await anon.error("market.liquidationLadder", symbol=SYM, buckets=0) == (
                Code.INVALID_PARAMETER
            )
            for p in traders:
                await p.close()
        assert not S.failures, S.failures
