"""Market activity for the browser tests, through the protocol like any client."""

from __future__ import annotations

from typing import Any

from exchange.testing import Probe, Schemas, fund_accounts

S = Schemas()
SYM = "BTCUSDT"


async def traders(web: Any, n: int, deposit: str = "1000000") -> list[Probe]:
    accts = await fund_accounts(web.admin, n, deposit=deposit, index=None)
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
    await web.admin.call("admin.setIndex", symbol=SYM, price="50000")
    mk, tk = await traders(web, 2)
    for k in range(1, 6):
        await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.5",
                      price=str(50000 - 10 * k), timeInForce="GTC")  # fmt: skip
        await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.5",
                      price=str(50000 + 10 * k), timeInForce="GTC")  # fmt: skip
    await tk.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.2")
    await tk.call("order.place", symbol=SYM, side="SELL", type="MARKET", quantity="0.1")
    return [mk, tk]


async def crash_setup(web: Any, longs: int = 14) -> tuple[Probe, list[Probe]]:
    """Leveraged longs (20x..50x) over a thin ladder of bids, with the mark (Binance's
    median) held above the index by a positive basis: an index crash then liquidates
    the most leveraged, their fills drag the last price and so the mark down, which
    liquidates the next ones — a cascade of several generations."""
    admin = web.admin
    await admin.call("admin.setIndex", symbol=SYM, price="50000")
    [mk] = await traders(web, 1, deposit="100000000")
    await mk.call("leverage.set", symbol=SYM, leverage=5)
    await mk.call("order.place", symbol=SYM, side="SELL", type="LIMIT",
                  quantity=f"{longs * 0.2 + 1:.3f}", price="50000", timeInForce="GTC")  # fmt: skip
    for k in range(70):
        await mk.call("order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.02",
                      price=str(49000 - 10 * k), timeInForce="GTC")  # fmt: skip
    for j in range(30):  # the mid stands ~500 above the index: a positive basis
        await admin.call("admin.setIndex", symbol=SYM, price="49000.1" if j % 2 else "49000")
    ls = await traders(web, longs, deposit="20000")
    for i, p in enumerate(ls):
        await p.call("leverage.set", symbol=SYM, leverage=(20, 25, 30, 35, 40, 45, 50)[i % 7])
        await p.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.2")
    await admin.call("admin.setIndex", symbol=SYM, price="49000")
    return mk, ls


async def crash(web: Any) -> Any:
    return await web.admin.call("admin.shockIndex", symbol=SYM, change="-0.01")
