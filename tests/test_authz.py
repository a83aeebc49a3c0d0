"""Authorization matrix: no logon → nothing private; another account's ids look made up;
a student key gets -2015 on every admin method; nothing leaks on any stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from exchange.protocol import METHODS
from exchange.testing import Probe, Schemas, fund_accounts, running_stack

S = Schemas()
SYM = "BTCUSDT"

# plausible, well-formed params for every method (what a real caller would send)
PARAMS: dict[str, dict[str, Any]] = {
    "session.logon": {"adminToken": "not-the-token"},
    "session.status": {},
    "session.logout": {},
    "session.create": {"ttl": 600, "label": "<img src=x onerror=alert(1)>"},
    "session.revoke": {"token": "mcs_not-a-token"},
    "order.place": {"symbol": SYM, "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "49000"},
    "order.cancel": {"symbol": SYM, "orderId": 1},
    "order.modify": {"symbol": SYM, "orderId": 1, "quantity": "0.02"},
    "order.cancelAll": {"symbol": SYM},
    "order.status": {"symbol": SYM, "orderId": 1},
    "openOrders.status": {},
    "account.status": {},
    "position.margin": {"symbol": SYM, "amount": "1", "type": 1},
    "leverage.set": {"symbol": SYM, "leverage": 5},
    "exchangeInfo": {},
    "depth": {"symbol": SYM},
    "time": {},
    "ticker": {"symbol": SYM},
    "market.liquidationLadder": {"symbol": SYM, "buckets": 10},
    "subscribe": {"streams": [f"trades.{SYM}"]},
    "unsubscribe": {"streams": [f"trades.{SYM}"]},
    "admin.createAccount": {"deposit": "1000000"},
    "admin.deposit": {"account": 1, "asset": "USDT", "amount": "1000000"},
    "admin.withdraw": {"account": 1, "asset": "USDT", "amount": "1"},
    "admin.setIndex": {"symbol": SYM, "price": "1000"},
    "admin.shockIndex": {"symbol": SYM, "change": "-0.5"},
    "admin.setFundingRate": {"symbol": SYM, "rate": "0.0001"},
    "admin.halt": {"symbol": SYM},
    "admin.resume": {"symbol": SYM},
    "admin.addInstrument": {"instrument": {"symbol": "EVILUSDT", "base_asset": "EVIL", "tick_size": "1",
                                           "step_size": "1", "max_qty": "10", "max_leverage": 1,
                                           "brackets": [{"cap": "1000", "max_leverage": 1, "mmr": "0.5"}]}},
    "admin.advanceClock": {"by": 10**12},
    "admin.stats": {},
    "admin.account": {"account": 1},
    "admin.createSession": {"account": 1},
    "admin.revokeSessions": {"account": 1},
}  # fmt: skip

USER_METHODS = sorted(m for m, spec in METHODS.items() if spec.access == "user")
ADMIN_METHODS = sorted(m for m, spec in METHODS.items() if spec.access == "admin")


@pytest.fixture(autouse=True)
def _schema_failures() -> Iterator[None]:
    S.failures.clear()
    yield
    assert not S.failures, S.failures[:3]


def test_every_method_is_in_the_matrix() -> None:
    assert set(PARAMS) == set(METHODS)
    for m in METHODS:  # the matrix's own requests are valid requests
        S.check_request({"id": 1, "method": m, "params": PARAMS[m]})


async def test_authorization_matrix() -> None:
    async with running_stack() as st:
        adm = await Probe(st.url, S).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        ka, kb, kc = await fund_accounts(adm, 3)
        a, b, c, anon = [await Probe(st.url, S).__aenter__() for _ in range(4)]
        await a.logon(ka["apiKey"], ka["secret"])
        await b.logon(kb["apiKey"], kb["secret"])
        await c.logon(kc["apiKey"], kc["secret"])
        await b.call("subscribe", streams=["account", f"trades.{SYM}", f"book.{SYM}",
                                           f"liquidations.{SYM}", "cascades", f"mark.{SYM}"])  # fmt: skip
        # A: a resting order with a client id, and a position against C
        resting = await a.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                               quantity="0.5", price="49500", newClientOrderId="a-secret")  # fmt: skip
        await c.call(
            "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.2", price="49500"
        )
        await asyncio.sleep(0.05)
        b.drain("account")
        h0 = st.exchange.state_hash()

        # 1. before logon: every user method is -2015, and so is the account stream
        for m in USER_METHODS:
            assert await anon.error(m, **PARAMS[m]) == -2015, m
        assert await anon.error("subscribe", streams=["account"]) == -2015
        # public methods work without logon
        for m in ("exchangeInfo", "depth", "time", "ticker", "session.status"):
            await anon.call(m, **PARAMS[m])

        # 2. another account's ids answer exactly like made-up ids
        oid = resting["orderId"]
        for m in ("order.cancel", "order.status", "order.modify"):
            extra = {"quantity": "0.4"} if m == "order.modify" else {}
            for ref in ({"orderId": oid}, {"origClientOrderId": "a-secret"}):
                theirs = await b.raw(m, {"symbol": SYM, **ref, **extra}, check=False)
                made_up_ref = (
                    {"orderId": 987654} if "orderId" in ref else {"origClientOrderId": "nope"}
                )
                made_up = await b.raw(m, {"symbol": SYM, **made_up_ref, **extra}, check=False)
                assert theirs["error"] == made_up["error"] and theirs["status"] == made_up["status"]
                assert theirs["error"]["code"] == -2011
        assert await b.call("openOrders.status") == []
        acct_b = await b.call("account.status")
        assert acct_b["account"] == b.account and acct_b["positions"] == []
        assert (await b.call("order.cancelAll", symbol=SYM))["canceled"] == 0
        assert st.exchange.order_view(a.account, SYM, oid).status == "PARTIALLY_FILLED"  # type: ignore[union-attr]

        # 3. a student key on every admin method: -2015, nothing changes
        for m in ADMIN_METHODS:
            assert await b.error(m, **PARAMS[m]) == -2015, m
            assert await anon.error(m, **PARAMS[m]) == -2015, m
        assert await b.error("session.logon", adminToken="guess") == -2015
        assert await b.error("admin.stats") == -2015  # a failed admin logon grants nothing
        assert st.exchange.state_hash() == h0
        # B's account stream carried only B's own rejections, nothing of A's
        for m in b.drain("account"):
            assert m["type"] == "rejected" and m["code"] == -2011

        # 4. nothing of A's leaks to B: A trades and cancels while B listens to everything
        await a.call("order.modify", symbol=SYM, orderId=oid, quantity="0.4")
        await c.call("order.place", symbol=SYM, side="SELL", type="MARKET", quantity="0.1")
        await a.call("order.cancel", symbol=SYM, origClientOrderId="a-secret")
        await asyncio.sleep(0.1)
        assert b.drain("account") == []
        public = [m for k, q in b.streams.items() if k != "account" for m in q]
        assert public, "B should have seen public market data"
        for m in public:
            text = repr(m)
            assert "a-secret" not in text and "account" not in m and "orderId" not in m
        # the public book shows A's liquidity but not whose it is (its merged delta may
        # still be on its way: wait for it rather than for a fixed time)
        book = await b.next(f"book.{SYM}", where=lambda m: bool(m["bids"]))
        assert "a-secret" not in repr(book) and "account" not in book and "orderId" not in book
        for p in (a, b, c, anon, adm):
            await p.close()


async def test_logon_errors_over_the_wire() -> None:
    import time

    from exchange.auth import sign

    async with running_stack() as st, Probe(st.url, S) as adm, Probe(st.url, S) as p:
        await adm.call("session.logon", adminToken=st.admin_token)
        k = await adm.call("admin.createAccount")
        now = int(time.time() * 1000)

        def signed(**kw: Any) -> dict[str, Any]:
            params = {"apiKey": k["apiKey"], "timestamp": now, **kw}
            params["signature"] = sign(k["secret"], params)
            return params

        assert await p.error("session.logon", **signed(timestamp=now - 60_000)) == -1021
        assert await p.error("session.logon", **{**signed(), "signature": "0" * 64}) == -1022
        assert await p.error("session.logon", **{**signed(), "apiKey": "f" * 64}) == -2015
        assert await p.error("session.logon", apiKey=k["apiKey"]) == -1102
        assert await p.error("account.status") == -2015  # still not logged on
        res = await p.call("session.logon", **signed(recvWindow=10_000))
        assert res["account"] == k["account"]
        await p.call("subscribe", streams=["account"])
        await p.call("session.logout")
        assert await p.error("account.status") == -2015
        assert (await p.call("session.status"))["streams"] == []
