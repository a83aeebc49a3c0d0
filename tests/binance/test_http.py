"""The gateway at the HTTP level: Binance's conventions, limits, and bad requests."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from websockets.asyncio.client import connect

from exchange.binance import BinanceConfig
from exchange.binance.signing import sign
from tests.binance.harness import BinanceStack, accounts, binance_stack


def signed(acct: dict[str, str], params: dict[str, Any]) -> tuple[str, dict[str, str]]:
    q = urlencode({**params, "timestamp": int(time.time() * 1000)})
    return q + "&signature=" + sign(acct["secret"], q), {"X-MBX-APIKEY": acct["apiKey"]}


async def call(s: aiohttp.ClientSession, b: BinanceStack, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:  # fmt: skip
    async with s.request(method, b.http_url + path, **kw) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text), r.headers
        except ValueError:
            return r.status, {"text": text}, r.headers


async def test_signed_post_in_body_or_query_and_weight_header() -> None:
    async with binance_stack(clock="stepped") as b, aiohttp.ClientSession() as s:
        (a,) = await accounts(b, 1)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010",
                 "price": "49000.0", "timeInForce": "GTC"}  # fmt: skip
        body, h = signed(a, order)
        st, res, headers = await call(s, b, "POST", "/fapi/v1/order", data=body,
                                      headers={**h, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert st == 200 and res["status"] == "NEW" and res["price"] == "49000.00"
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        q, h = signed(a, {**order, "price": "48000.0"})
        st, res, _ = await call(s, b, "POST", "/fapi/v1/order?" + q, headers=h)
        assert st == 200 and res["price"] == "48000.00"
        # the signature covers the raw text: re-ordering the parameters breaks it
        q, h = signed(a, {"symbol": "BTCUSDT"})
        parts = q.split("&")
        st, res, _ = await call(s, b, "GET", "/fapi/v1/openOrders?" + "&".join([parts[1], parts[0], parts[2]]), headers=h)  # fmt: skip
        assert (st, res["code"]) == (400, -1022)


async def test_malformed_and_oversized_requests_get_4xx_and_change_nothing() -> None:
    async with binance_stack(clock="stepped") as b, aiohttp.ClientSession() as s:
        (a,) = await accounts(b, 1)
        before = b.exchange.state_hash()
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": "49000.0", "timeInForce": "GTC"}  # fmt: skip
        cases: list[tuple[str, str, dict[str, Any], int, int | None]] = []
        q, h = signed(a, order)
        cases.append(("POST", "/fapi/v1/order?" + q + "&quantity=1", {"headers": h}, 400, -1101))
        q, h = signed(a, {**order, "bogus": "1"})
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": h}, 400, -1104))
        q, h = signed(a, {**order, "quantity": "1e3"})
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": h}, 400, -1100))
        q, h = signed(a, {**order, "quantity": "0.0101"})
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": h}, 400, -1111))
        q, h = signed(a, {**order, "side": "UP"})
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": h}, 400, -1117))
        q, h = signed(a, {k: v for k, v in order.items() if k != "quantity"})
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": h}, 400, -1102))
        q, h = signed(a, order)
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": {}}, 401, -2014))
        cases.append(("POST", "/fapi/v1/order?" + q, {"headers": {"X-MBX-APIKEY": "x" * 300}}, 401, -2014))  # fmt: skip
        cases.append(("POST", "/fapi/v1/order?%ZZ=1", {"headers": h}, 400, -1100))
        cases.append(("POST", "/fapi/v1/order", {"headers": {**h, "Content-Type": "application/json"}, "data": '{"a":1}'}, 400, -1130))  # fmt: skip
        cases.append(("POST", "/fapi/v1/order", {"headers": h, "data": b"\xff\xfe=1"}, 400, -1100))
        cases.append(
            ("POST", "/fapi/v1/order", {"headers": h, "data": "a=" + "x" * 70_000}, 413, None)
        )
        cases.append(("GET", "/fapi/v1/depth?symbol=BTCUSDT&limit=abc", {}, 400, -1130))
        cases.append(("GET", "/fapi/v1/depth?symbol=NOPE", {}, 400, -1121))
        cases.append(("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=7m", {}, 400, -1120))
        cases.append(("GET", "/fapi/v1/nothing", {}, 404, -9404))
        cases.append(("PATCH", "/fapi/v1/order", {}, 405, -9405))
        cases.append(("GET", "/fapi/v1/time?" + "a=1&" * 3000, {}, 400, None))
        for method, path, kw, status, code in cases:
            st, res, _ = await call(s, b, method, path, **kw)
            assert st == status, (path[:80], st, res)
            if code is not None:
                assert res["code"] == code, (path[:80], res)
        assert b.exchange.state_hash() == before
        assert b.exchange.open_orders(1) == []


async def test_weight_limit_answers_429_with_retry_after() -> None:
    async with binance_stack(BinanceConfig(weight_limit=10)) as b, aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(12):
            st, res, headers = await call(s, b, "GET", "/fapi/v1/time")
            statuses.append(st)
        assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
        assert res["code"] == -1003 and 1 <= int(headers["Retry-After"]) <= 60
        assert headers["X-MBX-USED-WEIGHT-1M"] == "10"


async def test_listen_key_lifecycle_and_unknown_keys() -> None:
    async with binance_stack() as b, aiohttp.ClientSession() as s:
        (a,) = await accounts(b, 1)
        h = {"X-MBX-APIKEY": a["apiKey"]}
        st, res, _ = await call(s, b, "POST", "/fapi/v1/listenKey", headers=h)
        key = res["listenKey"]
        assert st == 200 and len(key) == 64
        assert (await call(s, b, "POST", "/fapi/v1/listenKey", headers=h))[1]["listenKey"] == key
        assert (await call(s, b, "PUT", "/fapi/v1/listenKey", headers=h))[0] == 200
        st, res, _ = await call(s, b, "POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "ab" * 32})  # fmt: skip
        assert (st, res["code"]) == (401, -2015)
        ws_url = b.http_url.replace("http", "ws", 1)
        async with connect(f"{ws_url}/private/ws?listenKey={key}") as ws:
            await ws.send('{"method": "LIST_SUBSCRIPTIONS", "id": 1}')
            assert await ws.recv() == '{"result":[],"id":1}'
        assert (await call(s, b, "DELETE", "/fapi/v1/listenKey", headers=h))[0] == 200
        assert (await call(s, b, "PUT", "/fapi/v1/listenKey", headers=h))[1]["code"] == -1125
        with pytest.raises(Exception, match="400"):
            async with connect(f"{ws_url}/private/ws?listenKey={key}"):
                pass


async def test_market_streams_raw_and_combined() -> None:
    async with binance_stack() as b:
        a1, a2 = await accounts(b, 2)
        ws_url = b.http_url.replace("http", "ws", 1)
        async with (
            connect(f"{ws_url}/ws/btcusdt@aggTrade") as raw,
            connect(f"{ws_url}/stream?streams=btcusdt@depth@100ms/btcusdt@markPrice@1s/!forceOrder@arr") as comb,
            aiohttp.ClientSession() as s,
        ):  # fmt: skip
            await comb.send(
                '{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "nope@trade"], "id": 5}'
            )
            err = await comb.recv()
            assert '"error"' in err and '"id":5' in err
            await comb.send('{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 6}')
            for body in ({"side": "SELL", "type": "LIMIT", "price": "50000.0", "timeInForce": "GTC"}, {"side": "BUY", "type": "MARKET"}):  # fmt: skip
                acct = a1 if body["side"] == "SELL" else a2
                q, h = signed(acct, {"symbol": "BTCUSDT", "quantity": "0.010", **body})
                assert (await call(s, b, "POST", "/fapi/v1/order?" + q, headers=h))[0] == 200
            trade = json.loads(await raw.recv())
            assert trade["e"] == "aggTrade" and trade["p"] == "50000.00" and trade["m"] is False
            kinds = set()
            while not {"depthUpdate", "kline"} <= kinds:
                m = json.loads(await comb.recv())
                if "stream" in m:
                    kinds.add(m["data"]["e"])
                    if m["data"]["e"] == "depthUpdate":
                        assert m["data"]["pu"] == m["data"]["U"] - 1


async def _session_run() -> tuple[list[Any], str]:
    async with binance_stack(clock="stepped", start_ts=1_700_000_000 * 10**9) as b, aiohttp.ClientSession() as s:  # fmt: skip
        a1, a2 = await accounts(b, 2)
        out = []
        steps = [
            (
                a1,
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "BTCUSDT",
                    "side": "SELL",
                    "type": "LIMIT",
                    "quantity": "0.050",
                    "price": "50100.0",
                    "timeInForce": "GTC",
                    "newClientOrderId": "s1",
                },
            ),  # fmt: skip
            (
                a2,
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "MARKET",
                    "quantity": "0.020",
                    "newClientOrderId": "b1",
                },
            ),  # fmt: skip
            (a2, "GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}),
            (a2, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}),
            (a1, "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "s1"}),
            (a1, "GET", "/fapi/v3/account", {}),
        ]
        for acct, method, path, params in steps:
            q, h = signed(acct, params)
            st, res, _ = await call(s, b, method, path + "?" + q, headers=h)
            assert st == 200, res
            out.append(res)
        return out, b.exchange.state_hash()


async def test_stepped_clock_gives_identical_answers_and_state() -> None:
    first, h1 = await _session_run()
    second, h2 = await _session_run()
    assert first == second and h1 == h2
    assert first[1]["status"] == "FILLED" and first[1]["avgPrice"] == "50100.00"
    assert first[0]["time"] == 1_700_000_000_000
