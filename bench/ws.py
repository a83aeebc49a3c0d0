"""`python -m bench ws --json`: the WebSocket API against a bare websockets floor.

8 concurrent clients (one asyncio process) each loop place → ack → cancel → ack through
the real server (`margincall` runtime + server + core, realtime clock, its own process,
rate limit off). In the same run the same client code drives the floor: a bare
`websockets` server (same options: compression off, 64 KiB max) that parses each
message as JSON and answers a fixed ack. Each request/answer pair is one ack; latency
is measured per ack on the client.

Prints acks_per_s, p50_us, p99_us, floor_acks_per_s, floor_p50_us, floor_p99_us and
ratio_vs_floor (acks_per_s / floor_acks_per_s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

FIXED_ACK = '{"id":0,"status":200,"result":{"orderId":1,"status":"NEW"}}'


# ---------------------------------------------------------------- servers (child process)


async def serve_floor(port: int) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for msg in ws:
            json.loads(msg)
            await ws.send(FIXED_ACK)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=64 * 1024) as srv:
        print(next(iter(srv.sockets)).getsockname()[1], flush=True)
        await asyncio.Future()


async def serve_real(port: int) -> None:
    from exchange.auth import AdminAuth
    from exchange.config import load_instruments
    from exchange.core.engine import Exchange
    from exchange.runtime import Runtime
    from exchange.server import Server, ServerConfig

    rt = Runtime(Exchange(load_instruments()), clock="realtime")
    await rt.start()
    srv = Server(rt, ServerConfig(port=port, rate_limit=None), admin=AdminAuth("bench"))
    await srv.start()
    print(srv.port, flush=True)
    await asyncio.Future()


def child_main(kind: str) -> None:
    asyncio.run(serve_floor(0) if kind == "floor" else serve_real(0))


# ---------------------------------------------------------------- clients


async def setup_accounts(url: str, n: int) -> list[tuple[str, str]]:
    async with connect(url, compression=None) as ws:

        async def call(method: str, params: dict[str, Any]) -> Any:
            await ws.send(json.dumps({"id": 1, "method": method, "params": params}))
            msg = json.loads(await ws.recv())
            if msg["status"] != 200:
                raise RuntimeError(msg)
            return msg["result"]

        await call("session.logon", {"adminToken": "bench"})
        keys = []
        for _ in range(n):
            r = await call("admin.createAccount", {"deposit": "100000000", "asset": "USDT"})
            keys.append((r["apiKey"], r["secret"]))
        await call("admin.setIndex", {"symbol": "BTCUSDT", "price": "50000"})
        return keys


async def client_loop(
    url: str,
    key: tuple[str, str] | None,
    worker: int,
    t_start: float,
    t_end: float,
    lat: list[float],
) -> int:
    """Place and cancel in a loop; returns acks counted in [t_start, t_end)."""
    from exchange.auth import sign

    async with connect(url, compression=None) as ws:
        if key is not None:
            params: dict[str, Any] = {"apiKey": key[0], "timestamp": int(time.time() * 1000)}
            params["signature"] = sign(key[1], params)
            await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": params}))
            assert json.loads(await ws.recv())["status"] == 200
        acks = 0
        i = 0
        oid = 0
        perf = time.perf_counter
        while True:
            i += 1
            price = f"{49000 - worker * 10 - (i % 50) * 0.1:.1f}"
            place = {"id": 2 * i, "method": "order.place",
                     "params": {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                "quantity": "0.010", "price": price, "timeInForce": "GTC"}}  # fmt: skip
            t0 = perf()
            await ws.send(json.dumps(place))
            ans = json.loads(await ws.recv())
            t1 = perf()
            oid = ans["result"]["orderId"]
            cancel = {"id": 2 * i + 1, "method": "order.cancel",
                      "params": {"symbol": "BTCUSDT", "orderId": oid}}  # fmt: skip
            await ws.send(json.dumps(cancel))
            json.loads(await ws.recv())
            t2 = perf()
            if t0 >= t_start:
                if t2 > t_end:
                    return acks
                acks += 2
                lat.append(t1 - t0)
                lat.append(t2 - t1)


async def measure(
    url: str, keys: list[tuple[str, str]] | None, clients: int, seconds: float, warmup: float
) -> tuple[int, list[float]]:
    """Run the clients for warmup + seconds; (acks in the measured window, latencies)."""
    lat: list[float] = []
    now = time.perf_counter()
    t_start, t_end = now + warmup, now + warmup + seconds
    counts = await asyncio.gather(
        *(
            client_loop(url, keys[w] if keys else None, w, t_start, t_end, lat)
            for w in range(clients)
        )
    )
    return sum(counts), lat


def start_child(kind: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ws", "--serve", kind],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    return proc, f"ws://127.0.0.1:{line}"


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Both servers start first; then `rounds` alternating measurements of each, so a
    change in the machine's load during the run hits both sides alike."""
    clients = getattr(args, "clients", 8)
    seconds = getattr(args, "seconds", 5.0)
    warmup = getattr(args, "warmup", 1.0)
    rounds = max(1, getattr(args, "rounds", 3))
    procs: dict[str, subprocess.Popen[str]] = {}
    urls: dict[str, str] = {}
    acks = {"floor": 0.0, "real": 0.0}
    lats: dict[str, list[float]] = {"floor": [], "real": []}
    try:
        for kind in ("floor", "real"):
            procs[kind], urls[kind] = start_child(kind)
        keys = asyncio.run(setup_accounts(urls["real"], clients))
        for r in range(rounds):
            for kind in ("floor", "real") if r % 2 == 0 else ("real", "floor"):
                n, lat = asyncio.run(
                    measure(urls[kind], keys if kind == "real" else None, clients, seconds / rounds,
                            warmup if r == 0 else 0.2)
                )  # fmt: skip
                acks[kind] += n
                lats[kind] += lat
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(10)
    out: dict[str, Any] = {}
    for kind, prefix in (("floor", "floor_"), ("real", "")):
        lat = sorted(lats[kind])
        out[prefix + "acks_per_s"] = round(acks[kind] / seconds, 1)
        out[prefix + "p50_us"] = round(lat[len(lat) // 2] * 1e6, 1)
        out[prefix + "p99_us"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6, 1)
    out["ratio_vs_floor"] = round(out["acks_per_s"] / out["floor_acks_per_s"], 3)
    out["p99_ratio_vs_floor"] = round(out["p99_us"] / out["floor_p99_us"], 3)
    out["clients"] = clients
    out["seconds"] = seconds
    out["rounds"] = rounds
    out["rate_limit"] = "off"
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0, help="measured time per side")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3, help="alternating floor/real measurements")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        child_main(sys.argv[2])
    else:
        from bench.__main__ import main

        sys.exit(main(["ws", *sys.argv[1:]]))
