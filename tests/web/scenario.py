"""Market activity for the browser tests, through the protocol like any client."""

from __future__ import annotations

from typing import Any

from exchange.testing import Probe, Schemas, fund_accounts

S = Schemas()
SYM = "BTCUSDT"


async def traders(web: Any, n: int, deposit: str = "1000000") -> list[Probe]:
    accts = await fund_accounts(web.admin, n, deposit=deposit)
    out = []
    for a in accts:
        p = Probe(web.ws_url, S)
        await p.__aenter__()
        await p.logon(a["apiKey"], a["secret"])
        out.append(p)
    return out


async def token_for(web: Any, account: int, label: str = "") -> str:
    res = await web.admin.call("admin.createSession", account=account, label=label)
    return str(res["token"])


async def two_trade(web: Any) -> list[Probe]:
    """A maker quotes both sides; a taker trades twice."""
    mk, tk = await traders(web, 2)
    for k in range(1, 6):
        await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.5",
                      price=str(50000 - 10 * k), timeInForce="GTC")  # fmt: skip
        await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.5",
                      price=str(50000 + 10 * k), timeInForce="GTC")  # fmt: skip
    await tk.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.2")
    await tk.call("order.place", symbol=SYM, side="SELL", type="MARKET", quantity="0.1")
    return [mk, tk]


async def crash_setup(web: Any, longs: int = 12) -> tuple[Probe, list[Probe]]:
    """A maker with a ladder of bids and many leveraged longs: an index crash then
    liquidates them generation after generation (the mark follows the last trade)."""
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    [mk] = await traders(web, 1, deposit="100000000")
    await mk.call("leverage.set", symbol=SYM, leverage=5)
    await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="5",
                  price="50000", timeInForce="GTC")  # fmt: skip
    ls = await traders(web, longs, deposit="20000")
    for i, p in enumerate(ls):
        await p.call("leverage.set", symbol=SYM, leverage=20 + 5 * (i % 6))
        await p.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.2")
    # thin bids below: each liquidation's fills push the last price (so the mark) down
    for k in range(60):
        await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.05",
                      price=str(48200 - 20 * k), timeInForce="GTC")  # fmt: skip
    return mk, ls
