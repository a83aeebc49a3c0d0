"""`python -m bench store --json`: the store's journal and its cost to the engine.

Per backend (SQLite in a temporary directory; PostgreSQL at MARGINCALL_BENCH_PG or
127.0.0.1:5432/test, in a scratch schema dropped afterwards; skipped, with the reason,
when unreachable):

- `durable_acks_per_s`: 8 clients send orders through the real `Runtime` with a durable
  store attached, each keeping `--window` requests in flight (as a WebSocket client that
  pipelines); every acknowledgement waits for its command's commit (group commit: one
  transaction per engine turn);
- `fast_cmds_per_s`: commands journaled per second by fast mode's writer (batches of
  1,024 appended, timed until committed), journal only.

Engine throughput, in the same run and on the same stream (the standard reference
stream of `bench.engine`, driven through the `Runtime` in chunks of 1,024):
`engine_ops_per_s_store_off` (no store), `engine_ops_per_s_store_fast` (a fast-mode
SQLite store attached: journal, snapshots every 50,000 commands, query tables), and
`fast_mode_cost` = 1 − on/off; the same with the query tables off:
`engine_ops_per_s_journal_only`, `fast_mode_cost_journal_only`. The writers' CPU time
is reported too (`journal_thread_cpu_s` and `query_thread_cpu_s`: the thread's, or the
process's when `journal_writer` / `query_writer` is "process"; `journal_pipe_cpu_s`: the
writer process's helper threads in the server's process): on a 2-core machine the cost
depends on whether the writers get a core of their own (see docs/store.md). Also the snapshot pause for the state the stream
left: `snapshot_fork_pause_ms` (what the engine waits for with the default fork method)
and `snapshot_inline_pickle_ms` (what pickling in place would cost instead).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument
from exchange.runtime import Runtime
from exchange.store import Store

SYMBOL = "BTCUSDT"
USDT = 10**8
ACCOUNTS = 1_000
PG_URL = os.environ.get("MARGINCALL_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", type=int, default=100_000, help="engine stream length")
    p.add_argument("--orders", type=int, default=40_000, help="orders sent in durable mode")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--window", type=int, default=32, help="requests in flight per client")
    p.add_argument("--fast-cmds", type=int, default=200_000, help="commands for fast_cmds_per_s")
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    p.add_argument("--ws-orders", type=int, default=16_000, help="orders per WebSocket run")
    p.add_argument("--ws-window", type=int, default=256, help="in flight, pipelined client")
    p.add_argument("--no-ws", action="store_true", help="skip the WebSocket runs")


# ------------------------------------------------------------------ workload


def instrument() -> Instrument:
    btc = next(i for i in load_instruments() if i.symbol == SYMBOL)
    return replace(btc, max_open_orders=100_000)


def setup_commands(mark: int = 100_000) -> list[C.Command]:
    out: list[C.Command] = []
    for a in range(1, ACCOUNTS + 1):
        out.append(C.CreateAccount(account=a))
        out.append(C.Deposit(account=a, asset="USDT", amount=10_000_000 * USDT))
    out.append(C.SetIndexPrice(symbol=SYMBOL, price=mark))
    return out


def stream(n: int) -> list[C.Command]:
    """The reference order stream of `bench.engine` when ../shared has it, else a
    seeded stream of the same mix (60 % limit, 25 % cancel, 15 % market)."""
    try:
        from bench.engine import load_reference, to_commands

        ref = load_reference()
        s, _ = ref.gen_stream(n, 7)
        return to_commands(s, ref)
    except (ImportError, SystemExit):
        pass
    rng = random.Random(7)
    out: list[C.Command] = []
    placed = 0
    mid = 100_000
    for i in range(n):
        if i % 64 == 0:
            mid += rng.choice((-1, 0, 1))
        a = rng.randrange(ACCOUNTS) + 1
        r = rng.random()
        side = rng.choice(("BUY", "SELL"))
        if r < 0.6 or placed == 0:
            off = 1 + int(rng.expovariate(1 / 8.0))
            price = mid - off if side == "BUY" else mid + off
            out.append(
                C.PlaceOrder(
                    account=a, symbol=SYMBOL, side=side, qty=1 + rng.randrange(20), price=price
                )
            )
            placed += 1
        elif r < 0.85:
            oid = rng.randrange(placed) + 1
            out.append(C.CancelOrder(account=oid % ACCOUNTS + 1, symbol=SYMBOL, order_id=oid))
        else:
            out.append(
                C.PlaceOrder(
                    account=a, symbol=SYMBOL, side=side, qty=1 + rng.randrange(5), type="MARKET"
                )
            )
    return out


def order_flow(n: int, seed: int) -> list[C.Command]:
    """Orders a client sends in the durable test: limit orders around the mark, a third
    of them marketable IOC (fills), the rest resting."""
    rng = random.Random(seed)
    out: list[C.Command] = []
    for _ in range(n):
        a = rng.randrange(ACCOUNTS) + 1
        side = rng.choice(("BUY", "SELL"))
        off = rng.randint(-20, 60)
        price = 100_000 - off if side == "BUY" else 100_000 + off
        tif = "IOC" if off < 0 else "GTC"
        out.append(
            C.PlaceOrder(
                account=a,
                symbol=SYMBOL,
                side=side,
                qty=1 + rng.randrange(10),
                price=price,
                time_in_force=tif,
            )
        )
    return out


# ------------------------------------------------------------------ helpers


class Backend:
    """A scratch database: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.schema: str | None = None

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / (name + '.db')}"
        from sqlalchemy import create_engine, text

        self.schema = f"mc_bench_{uuid.uuid4().hex[:10]}"
        eng = create_engine(PG_URL)
        with eng.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        eng.dispose()
        return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.schema is None:
            return
        from sqlalchemy import create_engine, text

        eng = create_engine(PG_URL)
        with eng.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
        eng.dispose()
        self.schema = None


def pg_problem() -> str | None:
    try:
        from sqlalchemy import create_engine, text

        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


async def run_through(rt: Runtime, cmds: list[C.Command], chunk: int = 1024) -> None:
    for i in range(0, len(cmds), chunk):
        part = cmds[i : i + chunk]
        for c in part[:-1]:
            rt.submit_nowait(c)
        await rt.submit(part[-1])


# ------------------------------------------------------------------ through the WebSocket server


def order_texts(n: int, seed: int) -> list[str]:
    """`order_flow` as `order.place` requests (price ticks of 0.1 around 50,000)."""
    out = []
    for i, c in enumerate(order_flow(n, seed)):
        assert isinstance(c, C.PlaceOrder)
        price = 50_000 + (c.price - 100_000) / 10
        out.append(json.dumps({"id": i, "method": "order.place", "params": {
            "symbol": SYMBOL, "side": c.side, "type": "LIMIT", "quantity": f"{c.qty / 1000:.3f}",
            "price": f"{price:.1f}", "timeInForce": c.time_in_force}}))  # fmt: skip
    return out


class WsServer:
    """`python -m exchange.store.serving` in a child process (the real server, a store in
    `mode`, rate limit off); instruments allow enough open orders for the flow."""

    def __init__(self, root: Path, url: str, mode: str) -> None:
        from exchange.config import default_instruments_path

        toml = root / "instruments.toml"
        text = Path(default_instruments_path()).read_text(encoding="utf-8")
        toml.write_text(text.replace("max_open_orders = 200", "max_open_orders = 1000000"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange.store.serving", "--db", url, "--mode", mode,
             "--port", "0", "--admin-token", "bench", "--instruments", str(toml),
             "--snapshot-every", "0", "--snapshot-interval", "0"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split()[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def ws_accounts(url: str, n: int) -> list[tuple[str, str]]:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:

        async def call(method: str, **params: Any) -> Any:
            await ws.send(json.dumps({"id": 1, "method": method, "params": params}))
            msg = json.loads(await ws.recv())
            if msg["status"] != 200:
                raise RuntimeError(msg)
            return msg["result"]

        await call("session.logon", adminToken="bench")
        await call("admin.setIndex", symbol=SYMBOL, price="50000")
        keys = []
        for _ in range(n):
            r = await call("admin.createAccount", deposit="10000000", asset="USDT")
            keys.append((r["apiKey"], r["secret"]))
        return keys


async def ws_client(url: str, key: tuple[str, str], texts: list[str], window: int) -> list[int]:
    """Send `texts` keeping at most `window` unanswered; (acks, errors)."""
    from websockets.asyncio.client import connect

    from exchange.auth import sign

    async with connect(url, compression=None, max_queue=None) as ws:
        params: dict[str, Any] = {"apiKey": key[0], "timestamp": int(time.time() * 1000)}
        params["signature"] = sign(key[1], params)
        await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": params}))
        assert json.loads(await ws.recv())["status"] == 200
        credit = asyncio.Semaphore(window)
        counts = [0, 0]

        async def reader() -> None:
            for _ in texts:
                msg = await ws.recv()
                counts[0 if '"status":200' in msg else 1] += 1
                credit.release()

        r = asyncio.create_task(reader())
        for t in texts:
            await credit.acquire()
            await ws.send(t)
        await r
        return counts


async def ws_acks(root: Path, mode: str, clients: int, window: int, orders: int) -> dict[str, Any]:
    srv = WsServer(root, f"sqlite:///{root / f'ws-{mode}-{clients}.db'}", mode)
    try:
        keys = await ws_accounts(srv.url, clients)
        flows = [order_texts(orders // clients, seed) for seed in range(clients)]
        gc.collect()
        t = time.perf_counter()
        res = await asyncio.gather(
            *(ws_client(srv.url, k, f, window) for k, f in zip(keys, flows, strict=True))
        )
        dt = time.perf_counter() - t
    finally:
        srv.stop()
    acks = sum(r[0] for r in res)
    return {"acks_per_s": round(acks / dt), "errors": sum(r[1] for r in res)}


async def ws_durable(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Valid orders through the real WebSocket server with a durable SQLite store: 8
    clients each keeping `--window` in flight, and one client keeping `--ws-window`;
    the same clients against the same server with a fast-mode store are the baseline
    (nothing waits for a commit there)."""
    out: dict[str, Any] = {}
    for label, clients, window in (
        ("", args.clients, args.window),
        ("_pipelined", 1, args.ws_window),
    ):
        d = await ws_acks(root, "durable", clients, window, args.ws_orders)
        f = await ws_acks(root, "fast", clients, window, args.ws_orders)
        out["ws_durable_acks_per_s" + label] = d["acks_per_s"]
        out["ws_fast_acks_per_s" + label] = f["acks_per_s"]
        out["ws_durable_vs_fast" + label] = round(d["acks_per_s"] / f["acks_per_s"], 3)
        out["ws_errors" + label] = d["errors"] + f["errors"]
    out["ws_clients"] = args.clients
    out["ws_window"] = args.window
    out["ws_window_pipelined"] = args.ws_window
    return out


# ------------------------------------------------------------------ measurements


async def durable_acks(url: str, orders: int, clients: int, window: int) -> dict[str, Any]:
    st = Store(url, mode="durable", snapshot_every=0, snapshot_interval=0, query_tables=False)
    ex, _ = st.recover([instrument()])
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    await run_through(rt, setup_commands())
    flows = [order_flow(orders // clients, seed) for seed in range(clients)]
    acks = 0
    refused = 0

    async def client(flow: list[C.Command]) -> None:
        nonlocal acks, refused
        inflight: set[asyncio.Future[Any]] = set()
        for cmd in flow:
            if len(inflight) >= window:
                done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for f in done:
                    if f.exception() is None:
                        acks += 1
                    else:
                        refused += 1
            inflight.add(rt.submit_future(cmd))
        for f in asyncio.as_completed(inflight):
            try:
                await f
                acks += 1
            except Exception:
                refused += 1

    gc.collect()
    batches0 = rt.batches
    t = time.perf_counter()
    await asyncio.gather(*(client(f) for f in flows))
    dt = time.perf_counter() - t
    batches = rt.batches - batches0
    stats = st.stats()
    await rt.stop()
    await st.close()
    return {
        "durable_acks_per_s": round(acks / dt),
        "durable_refused": refused,
        "durable_mean_batch": round(acks / max(1, batches), 1),
        "durable_commit_us_p50": stats["commit_us_p50"],
        "durable_commit_us_p99": stats["commit_us_p99"],
    }


async def fast_journal(url: str, n: int) -> dict[str, Any]:
    cmds = stream(n)
    st = Store(url, mode="fast", snapshot_every=0, snapshot_interval=0, query_tables=False)
    st.recover([instrument()])
    st.start()
    t = time.perf_counter()
    for i in range(0, n, 1024):
        await st.append(cmds[i : i + 1024])
    await st.flush()
    dt = time.perf_counter() - t
    await st.close()
    return {"fast_cmds_per_s": round(n / dt)}


async def engine_rate(
    url: str | None, ops: int, query_tables: bool = True
) -> tuple[float, Exchange, dict[str, Any]]:
    """Commands per second through the runtime, store off (url None) or fast mode."""
    cmds = stream(ops)
    st: Store | None = None
    if url is not None:
        st = Store(url, mode="fast", query_tables=query_tables)
        ex, _ = st.recover([instrument()])
    else:
        ex = Exchange([instrument()])
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    if st is not None:
        st.attach(rt)
    await rt.start()
    await run_through(rt, setup_commands())
    if st is not None:
        await st.flush()
    gc.collect()
    t = time.perf_counter()
    await run_through(rt, cmds)
    dt = time.perf_counter() - t
    stats: dict[str, Any] = {}
    if st is not None:
        backlog_t = time.perf_counter()
        await st.flush()
        stats = st.stats()
        stats["drain_s_after_engine"] = round(time.perf_counter() - backlog_t, 2)
    await rt.stop()
    if st is not None:
        await st.close()
    return ops / dt, rt.exchange, stats


def snapshot_pause(ex: Exchange) -> dict[str, Any]:
    times = []
    blob = b""
    for _ in range(5):
        t = time.perf_counter()
        blob = pickle.dumps(ex, protocol=pickle.HIGHEST_PROTOCOL)
        times.append(time.perf_counter() - t)
    orders = sum(len(ex.open_orders(a)) for a in ex.accounts)
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # what the store's snapshot does first: the engine's whole pause
        os._exit(0)
    fork_ms = (time.perf_counter() - t) * 1000
    os.waitpid(pid, 0)
    return {
        "snapshot_fork_pause_ms": round(fork_ms, 2),
        "snapshot_inline_pickle_ms": round(min(times) * 1000, 2),
        "snapshot_bytes": len(blob),
        "snapshot_open_orders": orders,
        "snapshot_accounts": len(ex.accounts),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "store"}
    with tempfile.TemporaryDirectory(prefix="mc-bench-store-") as tmp:
        root = Path(tmp)
        kinds = ["sqlite"]
        problem = None if args.no_pg else pg_problem()
        if args.no_pg:
            out["postgresql"] = {"skipped": "--no-pg"}
        elif problem:
            out["postgresql"] = {"skipped": problem}
        else:
            kinds.append("postgresql")
        for kind in kinds:
            b = Backend(kind, root)
            res: dict[str, Any] = {}
            try:
                res.update(
                    await durable_acks(b.url("durable"), args.orders, args.clients, args.window)
                )
            finally:
                b.drop()
            try:
                res.update(await fast_journal(b.url("fast"), args.fast_cmds))
            finally:
                b.drop()
            out[kind] = res
        if not args.no_ws:
            out.update(await ws_durable(root, args))
        off, ex, _ = await engine_rate(None, args.ops)
        on, _, stats = await engine_rate(f"sqlite:///{root / 'engine.db'}", args.ops)
        on_j, _, _ = await engine_rate(f"sqlite:///{root / 'engine_j.db'}", args.ops, False)
        out["engine_ops_per_s_store_off"] = round(off)
        out["engine_ops_per_s_store_fast"] = round(on)
        out["fast_mode_cost"] = round(1 - on / off, 3)
        # the same without the query tables (journal and snapshots only)
        out["engine_ops_per_s_journal_only"] = round(on_j)
        out["fast_mode_cost_journal_only"] = round(1 - on_j / off, 3)
        out["fast_mode_store"] = {
            k: stats.get(k)
            for k in (
                "snapshots",
                "query_events",
                "drain_s_after_engine",
                "snapshot_pause_us_max",
                "fast_skipped",
                "journal_writer",
                "journal_thread_cpu_s",
                "journal_pipe_cpu_s",
                "query_writer",
                "query_thread_cpu_s",
            )
        }
        out.update(snapshot_pause(ex))
    out["clients"] = args.clients
    out["window"] = args.window
    out["ops"] = args.ops
    return out


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        p = argparse.ArgumentParser()
        add_arguments(p)
        args = p.parse_args([])
    return asyncio.run(main(args))
