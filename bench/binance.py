"""`python -m bench binance --json`: ccxt through the Binance gateway vs the native API.

One server process (`start_stack`: runtime, WebSocket API, HTTP server with the gateway;
realtime clock, store off, rate and weight limits off). In the same run, alternating in
rounds so a change in the machine's load hits every side alike:

* `rest`: 8 `ccxt.async_support.binanceusdm` clients (one asyncio process, ccxt's own
  throttle off) loop `create_order` (LIMIT, resting) → `cancel_order` over REST;
* `raw`: the same loop over REST by a bare aiohttp client that signs its own requests
  (what the gateway costs without ccxt's client-side work);
* `native`: the same loop by 8 clients of the native WebSocket API (`bench.ws`).

An order is one place plus one cancel; latency is per request, on the client. The
server reports the time spent inside the gateway's handlers (`server_ms_avg`), so
`rest_p50_ms - server_ms_avg` is transport and client. Prints rest_orders_per_s,
rest_p50_ms, rest_p99_ms, raw_orders_per_s, raw_p99_ms, native_orders_per_s,
native_p99_ms, ratio (rest / native) and server_ms_avg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

SYM = "BTC/USDT:USDT"


# ---------------------------------------------------------------- server (child process)


async def serve() -> None:
    from exchange.binance import BinanceConfig, setup_with
    from exchange.stack import ServeOptions, start_stack

    opts = ServeOptions(port=0, http_port=0, admin_token="bench", rate_limit=None, tick_interval=1.0)  # fmt: skip
    opts.http_setup.append(setup_with(BinanceConfig(weight_limit=10**9)))
    stack = await start_stack(opts)
    from exchange.binance import GATEWAY

    gw = stack.http.app[GATEWAY]  # type: ignore[union-attr]
    print(stack.server.port, stack.http.port, flush=True)  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            print(json.dumps(gw.timing()), flush=True)
        elif line.strip() == b"reset":
            gw.reset_timing()
            print("{}", flush=True)


# ---------------------------------------------------------------- clients


async def ccxt_loop(ex: Any, worker: int, t_start: float, t_end: float, lat: list[float]) -> int:
    perf = time.perf_counter
    orders = 0
    i = 0
    while True:
        i += 1
        price = 49000 - worker * 10 - (i % 50) * 0.1
        t0 = perf()
        o = await ex.create_order(SYM, "limit", "buy", 0.01, price)
        t1 = perf()
        await ex.cancel_order(o["id"], SYM)
        t2 = perf()
        if t0 >= t_start:
            if t2 > t_end:
                return orders
            orders += 1
            lat += (t1 - t0, t2 - t1)


async def raw_loop(url: str, key: tuple[str, str], worker: int, t_start: float, t_end: float, lat: list[float]) -> int:  # fmt: skip
    import aiohttp

    from exchange.binance.signing import sign

    perf = time.perf_counter
    orders = 0
    i = 0
    h = {"X-MBX-APIKEY": key[0]}

    def signed(p: dict[str, Any]) -> str:
        q = urlencode({**p, "timestamp": int(time.time() * 1000)})
        return q + "&signature=" + sign(key[1], q)

    async with aiohttp.ClientSession() as s:
        while True:
            i += 1
            price = f"{49000 - worker * 10 - (i % 50) * 0.1:.1f}"
            body = signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": price, "timeInForce": "GTC"})  # fmt: skip
            t0 = perf()
            async with s.post(url + "/fapi/v1/order", data=body, headers={**h, "Content-Type": "application/x-www-form-urlencoded"}) as r:  # fmt: skip
                oid = json.loads(await r.read())["orderId"]
            t1 = perf()
            async with s.delete(url + "/fapi/v1/order?" + signed({"symbol": "BTCUSDT", "orderId": oid}), headers=h) as r:  # fmt: skip
                await r.read()
            t2 = perf()
            if t0 >= t_start:
                if t2 > t_end:
                    return orders
                orders += 1
                lat += (t1 - t0, t2 - t1)


async def measure(kind: str, http: str, ws: str, keys: list[tuple[str, str]], seconds: float, warmup: float) -> tuple[int, list[float]]:  # fmt: skip
    lat: list[float] = []
    now = time.perf_counter()
    t_start, t_end = now + warmup, now + warmup + seconds
    if kind == "native":
        from bench.ws import client_loop

        acks = await asyncio.gather(*(client_loop(ws, k, w, t_start, t_end, lat) for w, k in enumerate(keys)))  # fmt: skip
        return sum(acks) // 2, lat
    if kind == "raw":
        counts = await asyncio.gather(*(raw_loop(http, k, w, t_start, t_end, lat) for w, k in enumerate(keys)))  # fmt: skip
        return sum(counts), lat
    import ccxt.async_support as accxt

    from clients.binance import ccxt_config

    exs = [accxt.binanceusdm(ccxt_config(http, k, s, enableRateLimit=False)) for k, s in keys]
    try:
        for ex in exs:
            await ex.load_markets()
        now = time.perf_counter()  # the window starts once every client has its markets
        t_start, t_end = now + warmup, now + warmup + seconds
        counts = await asyncio.gather(*(ccxt_loop(ex, w, t_start, t_end, lat) for w, ex in enumerate(exs)))  # fmt: skip
    finally:
        for ex in exs:
            await ex.close()
    return sum(counts), lat


def _pct(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1e3, 2) if s else 0.0


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    from bench.ws import setup_accounts

    clients = getattr(args, "clients", 8)
    seconds = getattr(args, "seconds", 6.0)
    rounds = max(1, getattr(args, "rounds", 3))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.binance", "--serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None

    def ask(cmd: str) -> dict[str, Any]:
        proc.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return dict(json.loads(proc.stdout.readline()))  # type: ignore[union-attr]

    orders = {"rest": 0, "raw": 0, "native": 0}
    lats: dict[str, list[float]] = {k: [] for k in orders}
    server_ms: list[float] = []
    try:
        ws_port, http_port = proc.stdout.readline().split()
        ws, http = f"ws://127.0.0.1:{ws_port}", f"http://127.0.0.1:{http_port}"
        keys = asyncio.run(setup_accounts(ws, clients))
        kinds = ["rest", "raw", "native"]
        for r in range(rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                ask("reset")
                n, lat = asyncio.run(measure(kind, http, ws, keys, seconds / rounds, 1.0 if r == 0 else 0.3))  # fmt: skip
                orders[kind] += n
                lats[kind] += lat
                if kind == "rest":
                    t = ask("stats")
                    if t["count"]:
                        server_ms.append(t["total_ms"] / t["count"])
    finally:
        proc.terminate()
        proc.wait(10)
    out: dict[str, Any] = {}
    for kind, name in (("rest", "rest"), ("raw", "raw"), ("native", "native")):
        out[f"{name}_orders_per_s"] = round(orders[kind] / seconds, 1)
        out[f"{name}_p50_ms"] = _pct(lats[kind], 0.5)
        out[f"{name}_p99_ms"] = _pct(lats[kind], 0.99)
    out["ratio"] = round(out["rest_orders_per_s"] / max(out["native_orders_per_s"], 1e-9), 3)
    out["raw_ratio"] = round(out["raw_orders_per_s"] / max(out["native_orders_per_s"], 1e-9), 3)
    out["server_ms_avg"] = round(sum(server_ms) / len(server_ms), 3) if server_ms else None
    out["clients"] = clients
    out["seconds"] = seconds
    out["note"] = "an order = place + cancel; latencies per request; one client process, one server process"  # fmt: skip
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per side")
    p.add_argument("--rounds", type=int, default=3)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(serve())
    else:
        print(json.dumps(run()))
