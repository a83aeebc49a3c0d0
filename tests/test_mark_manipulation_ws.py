"""The mark-manipulation scenarios of tests/core/test_mark_manipulation.py over the
WebSocket API (real sockets, stepped clock, every message checked against the AsyncAPI
schemas): a victim short 1 BTC at 20×, an attacker resting quotes at 10× the index for one
sample, or wash-trading the last price up. Under `median` nobody is liquidated and the mark
stays inside its band; under `mid` (quotes) and `last` (wash trades) the victim is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from exchange.config import load_instruments
from exchange.core.instruments import Instrument
from exchange.core.numbers import RATE_ONE
from exchange.testing import ApiCallError, Probe, Schemas, fund_accounts, running_stack

S = Schemas()
SYM = "BTCUSDT"
SECOND = 10**9
INDEX = Decimal(20_000)


@pytest.fixture(autouse=True)
def _schema_failures() -> Iterator[None]:
    S.failures.clear()
    yield
    assert not S.failures, S.failures[:3]


def thin(method: str) -> list[Instrument]:
    btc = next(i for i in load_instruments() if i.symbol == SYM)
    # band_up 9.9: orders may rest up to 10.9× the mark
    return [replace(btc, mark_method=method, band_up=990 * RATE_ONE // 100)]


async def setup(url: str, token: str) -> tuple[Probe, Probe, Probe, Probe, Probe]:
    """admin, victim (short 1 BTC at 20×), long (2×), attacker, and a watcher of the
    liquidation and mark streams."""
    adm = await Probe(url, S).__aenter__()
    await adm.call("session.logon", adminToken=token)
    keys = await fund_accounts(adm, 3, deposit="1000000", index=str(INDEX))
    victim, long, attacker = [await Probe(url, S).__aenter__() for _ in range(3)]
    for p, k in zip((victim, long, attacker), keys, strict=True):
        await p.logon(k["apiKey"], k["secret"])
    watcher = await Probe(url, S).__aenter__()
    await watcher.call("subscribe", streams=[f"liquidations.{SYM}", f"mark.{SYM}"])
    await victim.call("leverage.set", symbol=SYM, leverage=20)
    await long.call("leverage.set", symbol=SYM, leverage=2)
    order = {"symbol": SYM, "type": "LIMIT", "quantity": "1", "price": str(INDEX)}
    await victim.call("order.place", side="SELL", **order)
    await long.call("order.place", side="BUY", **order)
    return adm, victim, long, attacker, watcher


async def position(p: Probe) -> dict[str, Any]:
    status = await p.call("account.status")
    return next((x for x in status["positions"] if x["symbol"] == SYM), {"positionAmt": "0"})


def marks_within_band(watcher: Probe) -> list[Decimal]:
    out = []
    for m in watcher.drain(f"mark.{SYM}"):
        mark, index = Decimal(m["mark"]), Decimal(m["index"])
        assert abs(mark - index) <= index * Decimal("0.05"), m
        out.append(mark)
    return out


async def close(*probes: Probe) -> None:
    for p in probes:
        await p.close()


@pytest.mark.parametrize("method", ["median", "mid"])
async def test_quotes_at_ten_times_the_index_for_one_sample(method: str) -> None:
    async with running_stack(thin(method)) as st:
        adm, victim, long, attacker, watcher = await setup(st.url, st.admin_token)
        await adm.call("admin.advanceClock", by=SECOND // 2)
        quote = {"symbol": SYM, "type": "LIMIT", "quantity": "0.001"}
        await attacker.call("order.place", side="SELL", price=str(10 * INDEX), **quote)
        await attacker.call("order.place", side="BUY", price=str(10 * INDEX - Decimal("0.1")), **quote)  # fmt: skip
        await adm.call("admin.advanceClock", by=SECOND // 2)
        await adm.call("admin.setIndex", symbol=SYM, price=str(INDEX))  # samples the quotes
        await adm.call("admin.advanceClock", by=SECOND // 2)
        await attacker.call("order.cancelAll", symbol=SYM)
        for _ in range(5):
            await adm.call("admin.advanceClock", by=SECOND)
            await adm.call("admin.setIndex", symbol=SYM, price=str(INDEX))
        pos = await position(victim)
        if method == "median":
            assert Decimal(pos["positionAmt"]) == -1
            with pytest.raises(TimeoutError):
                await watcher.next(f"liquidations.{SYM}", timeout=0.3)
            marks = marks_within_band(watcher)
            # one sample of 300, clamped to 5 %: a sliver above the index
            assert marks and max(marks) - INDEX <= INDEX * Decimal("0.0003")
        else:
            liq = await watcher.next(f"liquidations.{SYM}")
            assert liq["generation"] == 0 and Decimal(pos["positionAmt"]) == 0
        await close(adm, victim, long, attacker, watcher)


@pytest.mark.parametrize("method", ["median", "last"])
async def test_wash_trades_pumping_the_last_price(method: str) -> None:
    async with running_stack(thin(method)) as st:
        adm, victim, long, attacker, watcher = await setup(st.url, st.admin_token)
        reached = INDEX
        refused = []
        for factor in (5, 10, 20):
            await adm.call("admin.advanceClock", by=SECOND)
            price = str(factor * INDEX)
            order = {"symbol": SYM, "type": "LIMIT", "quantity": "0.001", "price": price}
            try:
                await attacker.call("order.place", side="SELL", **order)
            except ApiCallError as e:
                refused.append(e.msg["error"]["code"])
                continue
            await attacker.call("order.place", side="BUY", **order)  # a wash trade
            reached = factor * INDEX
            await adm.call("admin.setIndex", symbol=SYM, price=str(INDEX))
        ticker = await adm.call("ticker", symbol=SYM)
        assert Decimal(ticker["last"]) == reached
        pos = await position(victim)
        if method == "median":
            # the 20× ask lies outside the price band around the unmoved mark
            assert (reached, refused) == (10 * INDEX, [-4016])
            assert Decimal(pos["positionAmt"]) == -1
            with pytest.raises(TimeoutError):
                await watcher.next(f"liquidations.{SYM}", timeout=0.3)
            marks_within_band(watcher)
        else:
            assert (reached, refused) == (20 * INDEX, [])
            await watcher.next(f"liquidations.{SYM}")
            assert Decimal(pos["positionAmt"]) == 0
        await close(adm, victim, long, attacker, watcher)
