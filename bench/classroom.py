"""A classroom under load: `students` simulated students plus `bots` bots through a
`seconds`-long round with a crash, on the real game server (durable store, stepped
clock driven by the game controller).

The game server runs in this process; the students run in `student_processes` child
processes (each student a WebSocket connection that behaves like the trading screen:
logs on with its session token, subscribes to book, trades, mark and account, parses
every message it receives and keeps the book, the trade tape, the mark and its account
updates; places a limit order near the mark and cancels it, or trades at market with
leverage, a few times a minute, until the trading window ends); the bots (market makers
and noise traders from clients/bots.py, trading hard) in another. The round is paused
while the bots connect and the baseline is taken, so its clock runs with the trading
window.

Measured: order acknowledgement latency as the students see it (`ack_p50_ms`,
`ack_p99_ms`: request sent to answer read, in the student's process), how often the
leaderboard was recomputed while the students traded and the round ran
(`leaderboard_updates_per_s` over `leaderboard_window_s`), and the stream lag: for every
mark update a student receives, its receive time minus the time the engine published
that update (both wall clocks of this machine), `max_stream_lag_ms` and
`stream_lag_p99_ms`. The simulator's own event-loop lag (`student_loop_lag_*`, sampled
every 10 ms in each student process) is part of every latency it measures, and is
reported beside them. Baseline, same run: the acknowledgement latency of one student
alone on the same server before the class connects (`quiet_ack_p50_ms`,
`quiet_ack_p99_ms`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GAME = """
name = "Bench class"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "last"
max_leverage = 50
[limits]
max_open_orders = 20
[liquidation]
insurance_fund = "500000"
[join]
max_students = 5000
[[rounds]]
name = "Crash"
duration = "{seconds}s"
clock_speed = 60
[rounds.scenario]
volatility = "2"
seed = 11
shocks = [{{ at = "{crash}s", size = -8, over = "5s" }}]
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--students", type=int, default=200)
    p.add_argument("--bots", type=int, default=20)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--orders-per-minute", type=float, default=4.0, help="per student")
    p.add_argument("--student-processes", type=int, default=4, help="students spread over")


STUDENTS = r"""
import asyncio, json, random, sys, time
from collections import deque
import aiohttp, orjson

# One trading screen: it parses every message it receives (as the browser's JSON.parse
# does) and keeps what the screen shows: the book (snapshot + deltas), the trade tape,
# the mark, the account's latest updates.
async def student(http, i, url, token, end, opm, acks, lags, counts):
    rng = random.Random(i)
    async with http.ws_connect(url, max_msg_size=2**22, autoping=True) as ws:
        pending, nid = {}, 0
        mark = [None]
        book = {"bids": {}, "asks": {}}
        tape = deque(maxlen=50)
        account = deque(maxlen=50)
        async def call(method, params):
            nonlocal nid
            nid += 1
            fut = asyncio.get_running_loop().create_future()
            pending[nid] = fut
            t = time.time()
            await ws.send_str(json.dumps({"id": nid, "method": method, "params": params}))
            msg = await fut
            return msg, (time.time() - t) * 1000
        async def reader():
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                now = time.time()
                m = orjson.loads(frame.data)
                stream = m.get("stream")
                if stream is not None:
                    d = m["data"]
                    if stream == "mark.BTCUSDT":
                        mark[0] = float(d["mark"])
                        if d.get("seq"):
                            lags.append((d["ts"], now))
                    elif stream == "trades.BTCUSDT":
                        tape.appendleft(d)
                    elif stream == "book.BTCUSDT":
                        if d["type"] == "snapshot":
                            book["bids"].clear(); book["asks"].clear()
                        for side in ("bids", "asks"):
                            levels = book[side]
                            for px, qty in d[side]:
                                if float(qty):
                                    levels[px] = qty
                                else:
                                    levels.pop(px, None)
                    else:
                        account.append(d)
                    continue
                f = pending.pop(m.get("id"), None)
                if f is not None and not f.done():
                    f.set_result(m)
        rd = asyncio.create_task(reader())
        await call("session.logon", {"token": token})
        await call("subscribe", {"streams": ["book.BTCUSDT", "trades.BTCUSDT", "mark.BTCUSDT", "account"]})
        await call("leverage.set", {"symbol": "BTCUSDT", "leverage": rng.choice([5, 10, 20, 30, 40])})
        gap = 60.0 / opm
        await asyncio.sleep(min(rng.uniform(0, gap), max(0.0, end - time.time())))
        while time.time() < end:
            if mark[0]:
                side = rng.choice(["BUY", "SELL"])
                if rng.random() < 0.3:
                    m, ms = await call("order.place", {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.010"})
                else:
                    px = mark[0] * (0.995 if side == "BUY" else 1.005)
                    m, ms = await call("order.place", {"symbol": "BTCUSDT", "side": side, "type": "LIMIT",
                        "quantity": "0.010", "price": f"{px:.1f}", "timeInForce": "GTC"})
                    if m.get("status") == 200:
                        await asyncio.sleep(rng.uniform(1, 5))
                        _, ms2 = await call("order.cancel", {"symbol": "BTCUSDT", "orderId": m["result"]["orderId"]})
                        acks.append(ms2)
                        counts[1] += 1
                acks.append(ms)
                counts[0] += 1
                if m.get("status") != 200:
                    counts[2] += 1
            # the trading window ends at `end` for everyone (no student lingers past it)
            await asyncio.sleep(min(rng.expovariate(1 / gap), max(0.0, end - time.time())))
        rd.cancel()

async def main():
    cfg = json.loads(sys.stdin.read())
    end = cfg["end"]
    acks, lags, counts = [], [], [0, 0, 0]
    loop_lag = []
    async def probe():  # this process's own event-loop lag: it inflates what it measures
        loop = asyncio.get_running_loop()
        while time.time() < end:
            t = loop.time()
            await asyncio.sleep(0.01)
            loop_lag.append((loop.time() - t - 0.01) * 1000)
    probing = asyncio.create_task(probe())
    cpu = time.process_time()
    async with aiohttp.ClientSession() as http:
        async def one(i, tok):
            await asyncio.sleep(i * 0.01)  # connect over a couple of seconds, as a class does
            await student(http, i, cfg["url"], tok, end, cfg["opm"], acks, lags, counts)
        res = await asyncio.gather(*(one(i, t) for i, t in cfg["tokens"]), return_exceptions=True)
    probing.cancel()
    errors = [repr(r) for r in res if isinstance(r, BaseException)]
    print(json.dumps({"acks": acks, "lags": lags, "orders": counts[0], "cancels": counts[1],
                      "rejected": counts[2], "errors": errors[:5], "failed": len(errors),
                      "loop_lag": loop_lag, "cpu_s": time.process_time() - cpu}))

asyncio.run(main())
"""

BOTS = r"""
import asyncio, json, random, sys, time
from decimal import Decimal
from clients import Client
from clients.bots import MarketMaker, NoiseTrader

async def main():
    cfg = json.loads(sys.stdin.read())
    admin = await Client(cfg["url"], admin_token=cfg["admin"]).connect()
    stop = asyncio.Event()
    bots = []
    for i in range(cfg["bots"]):
        mm = i < max(1, cfg["bots"] // 10)
        k = await admin.create_account(deposit="20000000" if mm else "500000")
        c = await Client(cfg["url"], api_key=k["apiKey"], secret=k["secret"]).connect()
        if mm:
            bots.append(MarketMaker(c, "BTCUSDT", levels=10, size=Decimal("0.2"), refresh=0.2, seed=i))
        else:
            bots.append(NoiseTrader(c, "BTCUSDT", size=Decimal("0.05"), max_position=Decimal("1"), mean_interval=0.1, seed=i))
    tasks = [asyncio.create_task(b.run(stop)) for b in bots]
    print("READY", flush=True)
    await asyncio.sleep(cfg["seconds"])
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"orders": sum(b.stats.orders for b in bots), "errors": sum(b.stats.errors for b in bots)}))

asyncio.run(main())
"""


def _child(script: str, env: dict[str, str], cfg: dict[str, Any]) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip
    assert p.stdin is not None
    p.stdin.write(json.dumps(cfg))
    p.stdin.close()
    return p


def _read(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    return p.stdout.read()


async def _trading_window(g: Any, seconds: float) -> tuple[int, float]:
    """Leaderboard updates while the students trade and the round runs: from now until
    `seconds` have passed or the round is over, whichever comes first."""
    loop = asyncio.get_running_loop()
    start, n0 = loop.time(), g.board_updates
    while loop.time() - start < seconds and g.state in ("running", "paused"):
        await asyncio.sleep(0.05)
    return g.board_updates - n0, loop.time() - start


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2)


async def _quiet(url: str, token: str, n: int = 200) -> list[float]:
    from websockets.asyncio.client import connect

    out = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": {"token": token}}))
        await ws.recv()
        for i in range(n):
            t = time.time()
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010",
                      "price": "49000.0", "timeInForce": "GTC"}  # fmt: skip
            await ws.send(json.dumps({"id": i + 1, "method": "order.place", "params": params}))
            await ws.recv()
            out.append((time.time() - t) * 1000)
        await ws.send(
            json.dumps({"id": -1, "method": "order.cancelAll", "params": {"symbol": "BTCUSDT"}})
        )
        await ws.recv()
    return out


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from exchange.classroom import parse_game
    from exchange.classroom.serving import ClassOptions, start_class, stop_class
    from exchange.core import events as E

    seconds = float(args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-class-"))
    game = parse_game(GAME.format(seconds=int(seconds), crash=int(seconds * 0.55)))
    opts = ClassOptions(
        db=f"sqlite:///{tmp / 'bench.db'}", port=0, http_port=None, admin_token="bench",
        rate_limit=None, max_connections=args.students + args.bots + 50,
    )  # fmt: skip
    cs = await start_class(game, opts)
    g = cs.classroom
    published: dict[int, float] = {}  # engine ts of each mark update → wall time it left the engine
    sub = cs.runtime.subscribe("bench-marks", maxsize=1_000_000)

    async def watch() -> None:
        async for batch in sub:
            now = time.time()
            for ev in batch:
                if type(ev) is E.MarkPriceChanged:
                    published.setdefault(ev.ts, now)

    watcher = asyncio.create_task(watch())
    tokens = []
    for i in range(args.students + 1):
        s, _ = await g.join(f"student{i}")
        tokens.append(cs.server.api.sessions.issue(s.account, ttl_s=3600))
    await g.act("start")
    await g.act("pause")  # the round's clock runs only while the students trade
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bots_cfg = {"url": cs.ws_url, "admin": "bench", "bots": args.bots, "seconds": seconds + 10}
    bots = _child(BOTS, env, bots_cfg)
    assert bots.stdout is not None
    await asyncio.get_running_loop().run_in_executor(None, bots.stdout.readline)
    quiet = await _quiet(cs.ws_url, tokens[-1])  # the baseline: one student alone, market halted
    await g.act("resume")
    loop = asyncio.get_running_loop()
    end = time.time() + seconds
    window = loop.create_task(_trading_window(g, seconds))
    procs = max(1, min(args.student_processes, args.students))
    students = []
    for j in range(procs):
        mine = [(i, tokens[i]) for i in range(j, args.students, procs)]
        cfg = {"url": cs.ws_url, "tokens": mine, "end": end, "opm": args.orders_per_minute}
        students.append(_child(STUDENTS, env, cfg))
    outs = await asyncio.gather(*(loop.run_in_executor(None, _read, p) for p in students))
    updates, elapsed = await window
    parts = [json.loads(o) for o in outs]
    res: dict[str, Any] = {"acks": [], "lags": [], "loop_lag": [], "errors": []}
    for part in parts:
        for k in ("acks", "lags", "loop_lag", "errors"):
            res[k] += part[k]
    for k in ("orders", "cancels", "rejected", "failed", "cpu_s"):
        res[k] = sum(part[k] for part in parts)
    bots_out = json.loads((await loop.run_in_executor(None, _read, bots)).strip().splitlines()[-1])
    lags = [(recv - published[ts]) * 1000 for ts, recv in res["lags"] if ts in published]
    liquidations = sum(1 for r in g.liquidations if r["student"])
    state = g.state
    watcher.cancel()
    await stop_class(cs)
    return {
        "students": args.students,
        "bots": args.bots,
        "seconds": seconds,
        "students_failed": res["failed"],
        "orders": res["orders"],
        "cancels": res["cancels"],
        "rejected": res["rejected"],
        "bot_orders": bots_out["orders"],
        "ack_p50_ms": _pct(res["acks"], 0.5),
        "ack_p99_ms": _pct(res["acks"], 0.99),
        "quiet_ack_p50_ms": _pct(quiet, 0.5),
        "quiet_ack_p99_ms": _pct(quiet, 0.99),
        "leaderboard_updates_per_s": round(updates / elapsed, 2),
        "leaderboard_window_s": round(elapsed, 1),
        "max_stream_lag_ms": _pct(lags, 1.0) if lags else None,
        "stream_lag_p99_ms": _pct(lags, 0.99) if lags else None,
        "mark_updates_received": len(lags),
        "student_liquidations": liquidations,
        "student_processes": procs,
        "student_loop_lag_p99_ms": _pct(res["loop_lag"], 0.99),
        "student_loop_lag_max_ms": _pct(res["loop_lag"], 1.0),
        "student_cpu_s": round(res["cpu_s"], 1),
        "cascades": len(g.cascades),
        "final_state": state,
        "errors": res["errors"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_run(args))
