"""End to end over real sockets on 127.0.0.1: every message checked against docs/asyncapi.yaml."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from exchange.server import ServerConfig
from exchange.testing import Probe, Schemas, fund_accounts, running_stack

S = Schemas()
SYM = "BTCUSDT"


@pytest.fixture(autouse=True)
def _schema_failures() -> Iterator[None]:
    S.failures.clear()
    yield
    assert not S.failures, S.failures[:3]


async def admin_probe(url: str, token: str) -> Probe:
    p = await Probe(url, S).__aenter__()
    await p.call("session.logon", adminToken=token)
    return p


async def test_two_accounts_trade_and_every_stream_arrives() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        a_key, b_key = await fund_accounts(adm, 2, index=None)
        async with Probe(st.url, S) as a, Probe(st.url, S) as b, Probe(st.url, S) as w:
            await a.logon(a_key["apiKey"], a_key["secret"])
            await b.logon(b_key["apiKey"], b_key["secret"])
            await a.call("subscribe", streams=["account"])
            await b.call("subscribe", streams=["account"])
            res = await w.call("subscribe", streams=[f"book.{SYM}", f"trades.{SYM}", f"mark.{SYM}",
                                                     f"liquidations.{SYM}", f"status.{SYM}", "cascades"])  # fmt: skip
            assert len(res["streams"]) == 6
            snap = await w.next(f"book.{SYM}")
            assert snap["type"] == "snapshot" and snap["bids"] == [] and snap["asks"] == []

            await adm.call("admin.setIndex", symbol=SYM, price="50000")
            mark = await w.next(f"mark.{SYM}")
            assert mark["mark"] == "50000.00" and mark["index"] == "50000.00"

            sell = await a.call("order.place", symbol=SYM, side="SELL", type="LIMIT",
                                quantity="1", price="50000", timeInForce="GTC",
                                newClientOrderId="a-1")  # fmt: skip
            assert sell["status"] == "NEW" and sell["clientOrderId"] == "a-1"
            buy = await b.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                               quantity="0.4", price="50010")  # fmt: skip
            assert buy["status"] == "FILLED" and buy["executedQty"] == "0.400"
            assert buy["avgPrice"] == "50000.00000000" and buy["fills"] == [["50000.00", "0.400"]]

            trade = await w.next(f"trades.{SYM}")
            assert trade["price"] == "50000.00" and trade["qty"] == "0.400"
            assert trade["takerSide"] == "BUY" and "account" not in json.dumps(trade)
            delta = await w.next(f"book.{SYM}", where=lambda d: d["bookSeq"] == snap["bookSeq"] + 2)
            assert delta["asks"] == [["50000.00", "0.600"]]

            a_fill = await a.next("account", where=lambda m: m["type"] == "fill")
            b_fill = await b.next("account", where=lambda m: m["type"] == "fill")
            assert (
                a_fill["maker"]
                and a_fill["orderId"] == sell["orderId"]
                and a_fill["side"] == "SELL"
            )
            assert not b_fill["maker"] and b_fill["orderId"] == buy["orderId"]
            a_pos = await a.next("account", where=lambda m: m["type"] == "position")
            assert a_pos["positionAmt"] == "-0.400"
            # a stream never carries the other account's ids
            for m in list(b.streams.get("account", [])):
                assert m.get("orderId") in (None, buy["orderId"])

            # order management round trip
            st_a = await a.call("order.status", symbol=SYM, origClientOrderId="a-1")
            assert st_a["status"] == "PARTIALLY_FILLED" and st_a["remainingQty"] == "0.600"
            mod = await a.call("order.modify", symbol=SYM, orderId=sell["orderId"], quantity="0.8")
            assert mod["origQty"] == "0.800" and mod["remainingQty"] == "0.400"
            amended = await a.next("account", where=lambda m: m.get("event") == "AMENDED")
            assert amended["priorityKept"] is True
            assert [o["orderId"] for o in await a.call("openOrders.status")] == [sell["orderId"]]
            canceled = await a.call("order.cancel", symbol=SYM, orderId=sell["orderId"])
            assert canceled["status"] == "CANCELED"
            await a.next("account", where=lambda m: m.get("event") == "CANCELED")
            await a.call(
                "order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.01", price="49000"
            )
            await a.call(
                "order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.01", price="48900"
            )
            assert (await a.call("order.cancelAll", symbol=SYM))["canceled"] == 2
            assert await a.call("openOrders.status", symbol=SYM) == []

            # account, margin, leverage
            acct = await b.call("account.status")
            [pos] = acct["positions"]
            assert pos["positionAmt"] == "0.400" and pos["entryPrice"] == "50000.00000000"
            assert pos["liquidationPrice"] != "0.00" and pos["bankruptcyPrice"] != "0.00"
            added = await b.call("position.margin", symbol=SYM, amount="100", type=1)
            removed = await b.call("position.margin", symbol=SYM, amount="50", type=2)
            assert float(removed["isolatedMargin"]) == float(added["isolatedMargin"]) - 50
            await b.next("account", where=lambda m: m["type"] == "margin")
            assert (await a.call("leverage.set", symbol=SYM, leverage=10))["leverage"] == 10
            await a.next("account", where=lambda m: m["type"] == "leverage")

            # public reads
            info = await w.call("exchangeInfo")
            assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}
            depth = await w.call("depth", symbol=SYM, limit=5)
            assert depth["bids"] == [] and depth["asks"] == []
            t = await w.call("time")
            assert t["clock"] == "stepped" and abs(t["serverTime"] - time.time() * 1000) < 5000
            tick = await w.call("ticker", symbol=SYM)
            assert tick["last"] == "50000.00"

            # halt / resume reach status.<SYM>; orders are refused while halted
            await adm.call("admin.halt", symbol=SYM)
            assert (await w.next(f"status.{SYM}"))["status"] == "HALTED"
            assert await a.error("order.place", symbol=SYM, side="BUY", type="LIMIT",
                                 quantity="0.01", price="49000") == -9005  # fmt: skip
            await adm.call("admin.resume", symbol=SYM)
            assert (await w.next(f"status.{SYM}"))["status"] == "TRADING"

            # deposits and withdrawals reach the owner's account stream
            await adm.call("admin.withdraw", account=b.account, asset="USDT", amount="10")
            w_msg = await b.next("account", where=lambda m: m["type"] == "withdrawal")
            assert w_msg["amount"] == "10.00000000"
            res = await w.call("unsubscribe", streams=[f"trades.{SYM}"])
            assert f"trades.{SYM}" not in res["streams"]
        await adm.close()


async def test_index_crash_liquidates_on_public_and_owner_streams() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        keys = await fund_accounts(adm, 4)
        mm, lo1, lo2, short = [await Probe(st.url, S).__aenter__() for _ in range(4)]
        for p, k in zip((mm, lo1, lo2, short), keys, strict=True):
            await p.logon(k["apiKey"], k["secret"])
        watch = await Probe(st.url, S).__aenter__()
        await watch.call("subscribe", streams=[f"liquidations.{SYM}", "cascades"])
        for p in (lo1, lo2, short):
            await p.call("subscribe", streams=["account"])
        # two leveraged longs buy from a maker; a short holds the other side
        await mm.call(
            "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="2", price="50000"
        )
        for p, lev in ((lo1, 50), (lo2, 25)):
            await p.call("leverage.set", symbol=SYM, leverage=lev)
            await p.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="1")
        await short.call("leverage.set", symbol=SYM, leverage=2)
        await short.call(
            "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="2", price="50000"
        )
        await mm.call(
            "order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="2", price="50000"
        )
        # the crash: -8 % through the admin API
        await adm.call("admin.shockIndex", symbol=SYM, change="-0.08")
        liqs = [await watch.next(f"liquidations.{SYM}") for _ in range(2)]
        assert {liq["side"] for liq in liqs} == {"LONG"}
        assert all(liq["generation"] >= 0 and liq["cascadeId"] >= 1 for liq in liqs)
        cascade = await watch.next("cascades")
        assert cascade["liquidations"] >= 2
        for p in (lo1, lo2):
            own = await p.next("account", where=lambda m: m["type"] == "liquidation")
            assert own["liquidationId"] in {liq["liquidationId"] for liq in liqs}
            assert (await p.call("account.status"))["positions"] == []
        # the short is not liquidated, and never sees the longs' liquidations
        await asyncio.sleep(0.05)
        assert not [m for m in short.drain("account") if m["type"] == "liquidation"]
        for p in (mm, lo1, lo2, short, watch, adm):
            await p.close()


async def run_backtest(seed: int) -> tuple[list[tuple[Any, ...]], str]:
    """A strategy over WebSocket on a stepped clock, with random think times."""
    rng = random.Random(seed)
    prices = [50000 + 40 * k for k in (0, 3, 1, -4, -9, -2, 5, 8, 2, -6, -15, -30, -60, -45, -10)]
    fills: list[tuple[Any, ...]] = []
    async with running_stack(clock="stepped", start_ts=1_700_000_000 * 10**9) as st:
        adm = await admin_probe(st.url, st.admin_token)
        mk_key, strat_key = await fund_accounts(adm, 2, index=str(prices[0]))
        async with Probe(st.url, S) as maker, Probe(st.url, S) as strat:
            await maker.logon(mk_key["apiKey"], mk_key["secret"])
            await strat.logon(strat_key["apiKey"], strat_key["secret"])
            await strat.call("subscribe", streams=["account", f"mark.{SYM}"])
            await strat.call("leverage.set", symbol=SYM, leverage=20)
            last = None
            for step, px in enumerate(prices):
                await adm.call("admin.advanceClock", by=60 * 10**9)
                await adm.call("admin.setIndex", symbol=SYM, price=str(px))
                await maker.call("order.cancelAll", symbol=SYM)
                for i in range(1, 4):
                    await maker.call("order.place", symbol=SYM, side="SELL", type="LIMIT",
                                     quantity="0.5", price=str(px + 5 * i))  # fmt: skip
                    await maker.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                                     quantity="0.5", price=str(px - 5 * i))  # fmt: skip
                strat.drain(f"mark.{SYM}")
                mark = await strat.call("ticker", symbol=SYM)
                await asyncio.sleep(rng.random() * 0.003)  # the strategy "thinks"
                m = float(mark["mark"])
                if last is not None and m != last and step % 2 == 0:
                    side = "BUY" if m > last else "SELL"
                    await strat.call(
                        "order.place", symbol=SYM, side=side, type="MARKET", quantity="0.3"
                    )
                last = m
            await asyncio.sleep(0.05)
            for msg in strat.drain("account"):
                if msg["type"] == "fill":
                    fills.append(
                        (
                            msg["tradeId"],
                            msg["side"],
                            msg["price"],
                            msg["qty"],
                            msg["fee"],
                            msg["ts"],
                        )
                    )
        h = st.exchange.state_hash()
        await adm.close()
    return fills, h


async def test_stepped_backtest_twice_gives_identical_fills() -> None:
    fills1, h1 = await run_backtest(seed=1)
    fills2, h2 = await run_backtest(seed=2)
    assert fills1 and fills1 == fills2
    assert h1 == h2
    assert all(f[5] >= 1_700_000_000 * 10**9 for f in fills1)  # engine time, not wall time


def small_rcvbuf_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


async def test_slow_consumer_is_dropped_and_others_keep_their_latency() -> None:
    cfg = ServerConfig(max_outbox=200, close_timeout=1.0, socket_send_buffer=4096)
    async with running_stack(config=cfg) as st:
        adm = await admin_probe(st.url, st.admin_token)
        [k] = await fund_accounts(adm, 1)
        # the slow client subscribes, then never reads again
        slow = await connect(st.url, sock=small_rcvbuf_socket(st.server.port), max_queue=1,
                             compression=None)  # fmt: skip
        await slow.send(json.dumps({"id": 1, "method": "subscribe",
                                    "params": {"streams": [f"mark.{SYM}@raw", f"book.{SYM}@raw"]}}))  # fmt: skip
        fast = await Probe(st.url, S).__aenter__()
        await fast.logon(k["apiKey"], k["secret"])
        lat: list[float] = []
        for i in range(1500):
            await adm.call("admin.setIndex", symbol=SYM, price=str(50000 + (i % 7)))
            if i % 5 == 0:
                t0 = time.perf_counter()
                o = await fast.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                                    quantity="0.01", price=str(49000 + i % 50))  # fmt: skip
                await fast.call("order.cancel", symbol=SYM, orderId=o["orderId"])
                lat.append(time.perf_counter() - t0)
            if st.server.slow_consumers_dropped:
                break
        assert st.server.slow_consumers_dropped == 1
        stats = await adm.call("admin.stats")
        assert stats["server"]["slowConsumersDropped"] == 1
        lat.sort()
        assert lat and lat[int(len(lat) * 0.99) - 1] < 0.2, lat[
            -5:
        ]  # not blocked behind the slow one
        # the dropped client sees a close, with the reason, once it reads again
        with pytest.raises(ConnectionClosed) as e:
            while True:
                await asyncio.wait_for(slow.recv(), 5)
        assert e.value.rcvd is None or e.value.rcvd.code == 1008
        # the others still work
        assert (await fast.call("time"))["clock"] == "stepped"
        await fast.close()
        await adm.close()


async def test_a_burst_does_not_close_a_reader_that_keeps_up() -> None:
    """Stream messages wait for the batch interval, but never long enough to fill the
    outbox of a client that reads: half full, the outbox is written at once."""
    cfg = ServerConfig(max_outbox=200, flush_interval=30.0)  # no timed flush in this test
    async with running_stack(config=cfg) as st:
        adm = await admin_probe(st.url, st.admin_token)
        async with connect(st.url, compression=None) as reader:
            await reader.send(json.dumps({"id": 1, "method": "subscribe",
                                          "params": {"streams": [f"mark.{SYM}@raw"]}}))  # fmt: skip
            got: list[Any] = []

            async def read() -> None:
                async for msg in reader:
                    got.append(json.loads(msg))

            task = asyncio.create_task(read())
            for i in range(600):  # 600 mark updates, three outboxes' worth
                await adm.call("admin.setIndex", symbol=SYM, price=str(50000 + i))
            for _ in range(100):
                marks = [m for m in got if m.get("stream") == f"mark.{SYM}@raw"]
                if len(marks) >= 300:
                    break
                await asyncio.sleep(0.02)
            assert st.server.slow_consumers_dropped == 0
            assert len(marks) >= 300 and not task.done()
            task.cancel()
        await adm.close()


async def test_rate_limit_answers_1015_then_disconnects_abuse() -> None:
    cfg = ServerConfig(rate_limit=50.0, rate_burst=10.0, abuse_strikes=30)
    async with running_stack(config=cfg) as st:
        async with connect(st.url, compression=None) as ws:
            codes = []
            with pytest.raises(ConnectionClosed) as e:
                for i in range(200):
                    await ws.send(json.dumps({"id": i, "method": "time"}))
                    msg = json.loads(await ws.recv())
                    if msg["status"] != 200:
                        S.check("ErrorResponse", msg)
                        assert msg["id"] == i and msg["status"] == 429
                        codes.append(msg["error"]["code"])
            assert set(codes) == {-1015} and len(codes) >= 30
            assert e.value.rcvd is not None and e.value.rcvd.code == 1008
        assert st.server.abusers_disconnected == 1
        # a polite client is unaffected
        async with Probe(st.url, S) as p:
            assert (await p.call("time"))["clock"] == "stepped"


async def test_oversize_message_closes_1009_and_binary_frames_are_refused() -> None:
    async with running_stack() as st, connect(st.url, compression=None) as ws:
        await ws.send(b"\x00\x01binary")
        msg = json.loads(await ws.recv())
        S.check("ErrorResponse", msg)
        assert msg["error"]["code"] == -1100
        await ws.send(json.dumps({"id": 1, "method": "time"}))
        assert json.loads(await ws.recv())["status"] == 200  # still alive
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as e:
            await ws.recv()
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009


async def test_a_text_frame_of_invalid_utf8_closes_1007() -> None:
    async with running_stack() as st, Probe(st.url, S) as other:
        async with connect(st.url, compression=None) as ws:
            await ws.send(b'{"id": 1, "method": "time", "x": "\xff\xfe"}', text=True)
            with pytest.raises(ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd is not None and e.value.rcvd.code == 1007
        assert "serverTime" in await other.call("time")  # other connections are unaffected


async def test_max_connections_refuses_with_503() -> None:
    async with (
        running_stack(config=ServerConfig(max_connections=2)) as st,
        connect(st.url) as c1,
        connect(st.url) as c2,
    ):
        with pytest.raises(InvalidStatus) as e:
            async with connect(st.url):
                pass
        assert e.value.response.status_code == 503
        assert st.server.refused_connections == 1
        await c1.send(json.dumps({"id": 1, "method": "time"}))
        await c2.send(json.dumps({"id": 1, "method": "time"}))
        assert json.loads(await c1.recv())["status"] == 200


async def test_admin_api_and_stats() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        acct = await adm.call("admin.createAccount", deposit="1000")
        assert acct["account"] == 1
        again = await adm.call("admin.createAccount")
        assert again["account"] == 2 and again["apiKey"] != acct["apiKey"]
        dep = await adm.call("admin.deposit", account=2, asset="USDT", amount="5.5")
        assert dep["balances"][0]["available"] == "5.50000000"
        assert await adm.error("admin.withdraw", account=2, asset="USDT", amount="6") == -2024
        assert await adm.error("admin.deposit", account=99, asset="USDT", amount="1") == -9002
        await adm.call("admin.setIndex", symbol=SYM, price="50000.04")  # rounded to the tick
        m = await adm.call("admin.shockIndex", symbol=SYM, change="-0.1")
        assert m["index"] == "45000.00"
        inst = {
            "symbol": "SOLUSDT", "base_asset": "SOL", "tick_size": "0.01", "step_size": "0.1",
            "max_qty": "100000", "max_leverage": 50, "min_notional": "5",
            "brackets": [{"cap": "100000", "max_leverage": 50, "mmr": "0.01"},
                         {"cap": "1000000", "max_leverage": 20, "mmr": "0.025"}],
        }  # fmt: skip
        added = await adm.call("admin.addInstrument", instrument=inst)
        assert added["symbol"] == "SOLUSDT" and added["tickSize"] == "0.01"
        assert added["liquidationPolicy"] == "binance"
        dydx = {**inst, "symbol": "AVAXUSDT", "base_asset": "AVAX", "liquidation_policy": "dydx"}
        added = await adm.call("admin.addInstrument", instrument=dydx)
        assert added["liquidationPolicy"] == "dydx"
        assert st.exchange.instruments["AVAXUSDT"].liquidation_policy == "dydx"
        bad = {**dydx, "symbol": "ADAUSDT", "base_asset": "ADA", "liquidation_policy": "ftx"}
        assert await adm.error("admin.addInstrument", instrument=bad) == -1130
        assert await adm.error("admin.addInstrument", instrument=inst) == -9003
        assert await adm.error("admin.addInstrument", instrument={"symbol": "X"}) == -1130
        info = await adm.call("exchangeInfo", symbol="SOLUSDT")
        assert info["symbols"][0]["brackets"][1]["cum"] == "1500.00000000"
        t0 = st.exchange.now
        assert (await adm.call("admin.advanceClock", by=10**9))["engineTime"] == t0 + 10**9
        assert await adm.error("admin.advanceClock", to=0) == -1130
        assert await adm.error("admin.advanceClock") == -1102
        stats = await adm.call("admin.stats")
        assert stats["stateHash"] == st.exchange.state_hash()
        assert stats["runtime"]["commands"] >= 8
        await adm.close()


async def test_realtime_clock_mode_uses_wall_time() -> None:
    async with running_stack(clock="realtime", tick_interval=None) as st:
        adm = await admin_probe(st.url, st.admin_token)
        await adm.call("admin.createAccount")
        t = await adm.call("time")
        assert t["clock"] == "realtime"
        assert abs(t["engineTime"] / 1e6 - t["serverTime"]) < 5000
        await adm.close()


async def test_margin_call_on_the_account_stream() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        k_mm, k_lo = await fund_accounts(adm, 2)
        async with Probe(st.url, S) as mm, Probe(st.url, S) as lo:
            await mm.logon(k_mm["apiKey"], k_mm["secret"])
            await lo.logon(k_lo["apiKey"], k_lo["secret"])
            await lo.call("subscribe", streams=["account"])
            await mm.call(
                "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="1", price="50000"
            )
            await lo.call("leverage.set", symbol=SYM, leverage=50)
            await lo.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="1")
            # liquidation at ~49,196.7; 80 % of the way there is ~49,250
            await adm.call("admin.setIndex", symbol=SYM, price="49230")
            call = await lo.next("account", where=lambda m: m["type"] == "marginCall")
            assert 0.8 <= float(call["marginRatio"]) < 1 and call["positionAmt"] == "1.000"
            assert (await lo.call("account.status"))["positions"]  # warned, not liquidated
            await adm.call("admin.setIndex", symbol=SYM, price="49235")
            await asyncio.sleep(0.05)  # no second call while still above the re-arm level
            assert not [m for m in lo.drain("account") if m["type"] == "marginCall"]
            assert (await adm.call("admin.stats"))["protocol"]["marginCalls"] == 1
        await adm.close()


async def test_mark_stream_is_sampled_raw_gets_every_change_and_bad_intervals_are_refused() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        async with Probe(st.url, S) as w:
            await adm.call("admin.setIndex", symbol=SYM, price="50000")
            names = [f"mark.{SYM}", f"mark.{SYM}@raw", f"mark.{SYM}@1s"]
            assert (await w.call("subscribe", streams=names))["streams"] == sorted(names)
            for name in names:  # the current values first, `seq` 0
                assert (await w.next(name))["seq"] == 0
            prices = [str(50001 + i) for i in range(20)]
            for px in prices:
                await adm.call("admin.setIndex", symbol=SYM, price=px)
            raw = [await w.next(f"mark.{SYM}@raw") for _ in prices]
            assert [m["index"] for m in raw] == [f"{px}.00" for px in prices]
            await asyncio.sleep(1.3)  # past both intervals
            sampled = w.drain(f"mark.{SYM}")
            per_second = w.drain(f"mark.{SYM}@1s")
            # fewer messages than changes, and the newest value is the one that arrives last
            assert 1 <= len(sampled) < len(prices) and 1 <= len(per_second) < len(prices)
            assert sampled[-1] == raw[-1] and per_second[-1] == raw[-1]
            seqs = [m["seq"] for m in sampled]
            assert seqs == sorted(set(seqs))
        async with connect(st.url) as ws:  # not through the probe: these break the schema
            for i, bad in enumerate((f"mark.{SYM}@5s", f"trades.{SYM}@raw", f"mark.{SYM}@")):
                await ws.send(json.dumps({"id": i, "method": "subscribe", "params": {"streams": [bad]}}))  # fmt: skip
                r = json.loads(await ws.recv())
                assert r["status"] == 400 and r["error"]["code"] in (-1130, -1121), r
        await adm.close()


async def test_book_stream_merges_deltas_gap_free_and_raw_gets_each_one() -> None:
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        (key,) = await fund_accounts(adm, 1)
        async with Probe(st.url, S) as mm, Probe(st.url, S) as w:
            await mm.logon(key["apiKey"], key["secret"])
            await w.call("subscribe", streams=[f"book.{SYM}", f"book.{SYM}@raw"])
            snaps = [await w.next(f"book.{SYM}"), await w.next(f"book.{SYM}@raw")]
            assert [m["type"] for m in snaps] == ["snapshot", "snapshot"]
            ids = []
            for i in range(15):
                o = await mm.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                                  quantity="1", price=str(49000 + 10 * (i % 5)))  # fmt: skip
                ids.append(o["orderId"])
            for oid in ids[::3]:
                await mm.call("order.cancel", symbol=SYM, orderId=oid)
            final = st.exchange.book_seq(SYM)
            raw = [await w.next(f"book.{SYM}@raw") for _ in range(final - snaps[1]["bookSeq"])]
            assert [m["bookSeq"] for m in raw] == list(range(snaps[1]["bookSeq"] + 1, final + 1))
            merged: list[dict[str, Any]] = []
            while not merged or merged[-1]["bookSeq"] < final:
                merged.append(await w.next(f"book.{SYM}"))
            assert len(merged) < len(raw)
            prev = snaps[0]["bookSeq"]
            bids = dict(snaps[0]["bids"])
            for m in merged:  # gap-free: each first is the previous last + 1
                assert m.get("firstBookSeq", m["bookSeq"]) == prev + 1, (prev, m)
                prev = m["bookSeq"]
                for p, q in m["bids"]:
                    if float(q):
                        bids[p] = q
                    else:
                        bids.pop(p, None)
            depth = await w.call("depth", symbol=SYM)
            assert sorted(bids.items()) == sorted(map(tuple, depth["bids"]))
        await adm.close()


class SlowDurableLog:
    """A durable command log whose every commit takes 20 ms (and records its size)."""

    durable = True

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def append(self, commands: list[Any]) -> None:
        await asyncio.sleep(0.02)
        self.batches.append(len(commands))


async def _logged_on(url: str, key: dict[str, Any]) -> Any:
    from exchange.auth import sign

    ws = await connect(url, compression=None)
    params: dict[str, Any] = {"apiKey": key["apiKey"], "timestamp": int(time.time() * 1000)}
    params["signature"] = sign(key["secret"], params)
    await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": params}))
    assert json.loads(await ws.recv())["status"] == 200
    return ws


async def test_one_pipelining_connection_shares_commits_and_keeps_its_order() -> None:
    log = SlowDurableLog()
    async with running_stack(command_log=log) as st:
        adm = await admin_probe(st.url, st.admin_token)
        (key,) = await fund_accounts(adm, 1)
        ws = await _logged_on(st.url, key)
        batches_before = len(log.batches)
        reqs: list[dict[str, Any]] = []
        for i in range(120):
            reqs.append({"id": len(reqs), "method": "order.place", "params": {
                "symbol": SYM, "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                "price": str(49000 + i), "newClientOrderId": f"c{i}"}})  # fmt: skip
            if i % 40 == 39:  # reads and by-client-id writes see every earlier request
                reqs.append({"id": len(reqs), "method": "order.status",
                             "params": {"symbol": SYM, "origClientOrderId": f"c{i}"}})  # fmt: skip
                reqs.append({"id": len(reqs), "method": "order.cancel",
                             "params": {"symbol": SYM, "origClientOrderId": f"c{i - 1}"}})  # fmt: skip
                reqs.append({"id": len(reqs), "method": "openOrders.status",
                             "params": {"symbol": SYM}})  # fmt: skip
        for r in reqs:
            S.check_request(r)
            await ws.send(json.dumps(r))
        answers = [json.loads(await ws.recv()) for _ in reqs]
        await ws.close()
        assert [a["id"] for a in answers] == [r["id"] for r in reqs]
        for r, a in zip(reqs, answers, strict=True):
            S.observe(r["method"], a)
            assert a["status"] == 200, a
        placed = [a["result"] for r, a in zip(reqs, answers, strict=True)
                  if r["method"] == "order.place"]  # fmt: skip
        assert [p["clientOrderId"] for p in placed] == [f"c{i}" for i in range(120)]
        assert all(p["status"] == "NEW" for p in placed)
        lists = [a["result"] for r, a in zip(reqs, answers, strict=True)
                 if r["method"] == "openOrders.status"]  # fmt: skip
        assert [len(x) for x in lists] == [39, 78, 117]
        # 123 commands (6 reads), far fewer commits: they were grouped
        assert sum(log.batches[batches_before:]) == 123
        assert len(log.batches) - batches_before < 40
        await adm.close()


async def test_pipelining_off_answers_one_request_at_a_time() -> None:
    log = SlowDurableLog()
    async with running_stack(command_log=log, config=ServerConfig(pipeline=False)) as st:
        adm = await admin_probe(st.url, st.admin_token)
        (key,) = await fund_accounts(adm, 1)
        ws = await _logged_on(st.url, key)
        before = len(log.batches)
        for i in range(10):
            await ws.send(json.dumps({"id": i, "method": "order.place", "params": {
                "symbol": SYM, "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                "price": str(49000 + i)}}))  # fmt: skip
        answers = [json.loads(await ws.recv()) for _ in range(10)]
        assert [a["id"] for a in answers] == list(range(10))
        assert log.batches[before:] == [1] * 10
        await ws.close()
        await adm.close()


def test_text_frame_header_matches_the_websockets_serializer() -> None:
    from websockets.frames import Frame, Opcode

    from exchange.server import text_frame_header

    for n in (0, 1, 125, 126, 127, 65535, 65536, 200_000):
        data = b"x" * n
        assert text_frame_header(n) + data == Frame(Opcode.TEXT, data).serialize(
            mask=False, extensions=[]
        )


async def test_batched_stream_writes_arrive_whole_and_in_order() -> None:
    """Hundreds of raw mark changes leave in a few batched writes; the client reads
    every one, in order, each a frame of its own, and answers come in between."""
    async with running_stack() as st:
        adm = await admin_probe(st.url, st.admin_token)
        await adm.call("admin.setIndex", symbol=SYM, price="49000")
        async with Probe(st.url, S) as w:
            await w.call("subscribe", streams=[f"mark.{SYM}@raw"])
            first = await w.next(f"mark.{SYM}@raw")  # the current values, seq 0
            prices = [50000 + (i % 2) * 10 + i for i in range(300)]
            for px in prices:
                await adm.call("admin.setIndex", symbol=SYM, price=str(px))
            assert (await w.call("time"))["clock"] == "stepped"  # an answer in the middle
            got = [await w.next(f"mark.{SYM}@raw") for _ in prices]
        assert first["seq"] == 0
        assert [Decimal(m["index"]) for m in got] == [Decimal(p) for p in prices]
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert st.server.stream_messages_sent >= len(prices) + 1
        await adm.close()


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_answers_come_whole_and_in_order_with_and_without_compression(
    compression: str | None,
) -> None:
    """An answer is written as its own frame when the socket takes it (no extension),
    else through websockets (compression): either way each request gets its answer,
    in order, and the stream messages queued meanwhile arrive too."""
    async with running_stack(config=ServerConfig(compression=compression)) as st:
        adm = await admin_probe(st.url, st.admin_token)
        await adm.call("admin.setIndex", symbol=SYM, price="49000")
        async with connect(st.url, compression=compression) as ws:
            await ws.send(json.dumps({"id": 0, "method": "subscribe",
                                      "params": {"streams": [f"mark.{SYM}@raw"]}}))  # fmt: skip
            answers: list[dict[str, Any]] = []
            marks: list[dict[str, Any]] = []
            for i in range(1, 41):
                await adm.call("admin.setIndex", symbol=SYM, price=str(50000 + i))
                await ws.send(json.dumps({"id": i, "method": "time"}))
            while len(answers) < 41 or len(marks) < 41:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                (answers if "id" in msg else marks).append(msg)
        assert [a["id"] for a in answers] == list(range(41))
        assert all(a["status"] == 200 for a in answers)
        assert [Decimal(m["data"]["index"]) for m in marks[1:]] == [
            Decimal(50000 + i) for i in range(1, 41)
        ]
        await adm.close()


async def test_a_burst_of_requests_read_at_once_loses_no_subscriber_batch() -> None:
    """A client that sends many requests without waiting (read by the server in one go):
    every request is answered, in order, and a subscriber with a small bounded queue
    (as the MQTT bridge's, 1,024 batches) that keeps up loses nothing — the server does
    not apply the whole burst, one batch per command, before the subscribers run."""
    async with running_stack(config=ServerConfig(rate_limit=None)) as st:
        adm = await admin_probe(st.url, st.admin_token)
        [key] = await fund_accounts(adm, 1, index=None)
        sub = st.runtime.subscribe("probe", maxsize=64, policy="drop")
        got: list[Any] = []

        async def consume() -> None:
            async for batch in sub:
                got.extend(batch)

        consumer = asyncio.create_task(consume())
        async with Probe(st.url, S) as a:
            await a.logon(key["apiKey"], key["secret"])
            assert a.ws is not None
            n = 1500
            for i in range(n):
                await a.ws.send(json.dumps({"id": f"b{i}", "method": "leverage.set",
                                            "params": {"symbol": SYM, "leverage": 1 + i % 20}}))  # fmt: skip
            answers = a.streams.setdefault("_unmatched", deque())
            for _ in range(400):
                if len(answers) >= n:
                    break
                await asyncio.sleep(0.025)
            assert [m["id"] for m in answers] == [f"b{i}" for i in range(n)]
            assert all(m["status"] == 200 for m in answers)
        assert sub.dropped_batches == 0
        changes = [e for e in got if type(e).__name__ == "LeverageChanged"]
        assert [e.leverage for e in changes][-n:] == [1 + i % 20 for i in range(n)]
        consumer.cancel()
        await adm.close()


async def test_a_burst_read_at_once_does_not_run_ahead_of_another_connection() -> None:
    """Without a store (nothing to commit), one connection's burst of requests must not
    all take effect before a request another connection sent meanwhile: the burst's
    commands are interleaved with the others' (as the engine's queue does), not
    applied one after the other in the burst's own task."""
    async with running_stack(config=ServerConfig(rate_limit=None)) as st:
        adm = await admin_probe(st.url, st.admin_token)
        flood_key, quiet_key = await fund_accounts(adm, 2, index=None)
        sub = st.runtime.subscribe("probe", maxsize=100_000)
        async with Probe(st.url, S) as f, Probe(st.url, S) as q:
            await f.logon(flood_key["apiKey"], flood_key["secret"])
            await q.logon(quiet_key["apiKey"], quiet_key["secret"])
            assert f.ws is not None and q.ws is not None
            n = 1000
            while sub.get_nowait() is not None:
                pass
            for i in range(n):
                await f.ws.send(json.dumps({"id": f"f{i}", "method": "leverage.set",
                                            "params": {"symbol": SYM, "leverage": 1 + i % 20}}))  # fmt: skip
            quiet = await q.call("leverage.set", symbol=SYM, leverage=7)
            assert quiet["leverage"] == 7
            answers = f.streams.setdefault("_unmatched", deque())
            for _ in range(400):
                if len(answers) >= n:
                    break
                await asyncio.sleep(0.025)
            assert len(answers) == n
        order = [
            e.account  # type: ignore[attr-defined]
            for b in iter(sub.get_nowait, None)
            for e in b
            if type(e).__name__ == "LeverageChanged"
        ]
        # the quiet request took effect after a few of the flood's commands, not after most
        assert order.index(q.account) < n // 4, order.index(q.account)
        await adm.close()
