"""Fairness: one connection's flood of frames must not stall the others.

The server runs in its own process; a raw client in another process sends order frames
as fast as it can without waiting for answers (pipelined, as much as the server lets
it), while this test measures a quiet client's request latency before and during the
flood. Each session has at most `Session.MAX_IN_ENGINE` commands in the engine queue,
so the quiet client's p99 must stay within 2× of its quiet value (plus 1 ms of
scheduler noise on a loaded machine). The flood runs at 4,000 frames a second, under the
per-connection limit of 5,000, as in the report that prompted this test.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients import Client

ROOT = Path(__file__).resolve().parents[1]
FLOOD = """
import asyncio, json, sys, time
from websockets.asyncio.client import connect
from exchange.auth import sign

async def main(url, key, secret, seconds):
    async with connect(url, max_queue=None) as ws:
        p = {"apiKey": key, "timestamp": int(time.time() * 1000)}
        p["signature"] = sign(secret, p)
        await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": p}))
        await ws.recv()
        async def drain():
            async for _ in ws:
                pass
        reader = asyncio.create_task(drain())
        order = json.dumps({"id": 1, "method": "order.place", "params": {"symbol": "BTCUSDT",
            "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": "48000", "timeInForce": "GTC"}})
        cancel = json.dumps({"id": 2, "method": "order.cancelAll", "params": {"symbol": "BTCUSDT"}})
        end, i = time.monotonic() + seconds, 0
        print("FLOODING", flush=True)
        while time.monotonic() < end:
            for _ in range(40):  # 40 frames every 10 ms: 4,000/s, under the 5,000/s limit
                i += 1
                await ws.send(cancel if i % 100 == 0 else order)
            await asyncio.sleep(0.01)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def latencies(c: Client, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await c.request(
            "order.place",
            {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.001",
             "price": "52000", "timeInForce": "GTC"},
        )  # fmt: skip
        out.append((time.perf_counter() - t) * 1000)
        if i % 50 == 49:
            await c.request("order.cancelAll", {"symbol": "BTCUSDT"})
    return sorted(out)


def p99(xs: list[float]) -> float:
    return xs[int(len(xs) * 0.99)]


@pytest.mark.slow
async def test_a_flood_from_one_connection_leaves_the_others_latency(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    # the default per-connection limit (5,000 messages/s): the flood stays under it
    server = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port), "--store", "off",
         "--admin-token", "T", "--log-level", "WARNING"],
        cwd=ROOT,
    )  # fmt: skip
    flood = tmp_path / "flood.py"
    flood.write_text(FLOOD)
    flooder = None
    try:
        admin = None
        for _ in range(200):
            try:
                admin = await Client(url, admin_token="T").connect()
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert admin is not None, "the server did not start"
        await admin.request("admin.setIndex", {"symbol": "BTCUSDT", "price": "50000"})
        quiet_key = await admin.create_account(deposit="100000000")
        flood_key = await admin.create_account(deposit="100000000")
        quiet = await Client(url, api_key=quiet_key["apiKey"], secret=quiet_key["secret"]).connect()
        await latencies(quiet, 50)  # warm up
        before = await latencies(quiet, 400)
        flooder = subprocess.Popen(
            [sys.executable, str(flood), url, flood_key["apiKey"], flood_key["secret"], "60"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert flooder.stdout is not None and flooder.stdout.readline().strip() == "FLOODING"
        await asyncio.sleep(1.0)
        # three tries: on a shared 2-core machine one measurement can catch the OS scheduler
        # preempting this process; a real unfairness fails all three
        for attempt in range(3):
            stats0 = await admin.request("admin.stats", {})
            during = await latencies(quiet, 400)
            stats1 = await admin.request("admin.stats", {})
            flood_commands = stats1["runtime"]["commands"] - stats0["runtime"]["commands"] - 408
            assert flood_commands > 1000, "the flood did not reach the engine"
            if p99(during) <= 2 * p99(before) + 1.0 or attempt == 2:
                break
        assert p99(during) <= 2 * p99(before) + 1.0, (p99(before), p99(during))
        await quiet.close()
        await admin.close()
    finally:
        if flooder is not None:
            flooder.kill()
            flooder.wait()
        server.terminate()
        server.wait(20)
