"""The crash test: the real server (runtime + WebSocket server + durable SQLite store)
runs as a subprocess; clients send 10,000 orders and record every answer; the harness
SIGKILLs the server at random moments at least 20 times and restarts it each time.

Afterwards: every acknowledged order is present with its fills; nothing appears that
was never sent; money is conserved; `PRAGMA integrity_check` is ok; the live server's
state hash equals the recovered one and a fresh replay of the whole journal.

The same with a fast-mode store (its journal written by the writer process): there an
acknowledged order may be lost, but the journal is always a consistent prefix, and no
writer process outlives a killed server.

MARGINCALL_CRASH_ORDERS and MARGINCALL_CRASH_KILLS scale it (defaults 10,000 and 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from exchange.store import recover, replay_journal
from exchange.store.db import Database
from exchange.testing import Probe

ORDERS = int(os.environ.get("MARGINCALL_CRASH_ORDERS", "10000"))
KILLS = int(os.environ.get("MARGINCALL_CRASH_KILLS", "20"))
CLIENTS = 4
WINDOW = 16  # requests in flight per client
TOKEN = "crash-test-admin"
SYMBOL = "BTCUSDT"
STEP = Decimal("0.001")


@dataclass
class Harness:
    db: str
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None
    url: str = ""
    life: int = 0  # server generation
    up: asyncio.Event = field(default_factory=asyncio.Event)
    kills: int = 0
    sent_this_life: int = 0
    mode: str = "durable"
    orders: int = ORDERS
    kills_wanted: int = KILLS
    quota: int = 0

    _logf: Any = None

    def __post_init__(self) -> None:
        self.quota = self.orders // self.kills_wanted + 1

    def logfile(self) -> Any:
        if self._logf is None:
            self._logf = self.log.open("ab")
        return self._logf

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exchange.store.serving",
            "--db",
            self.db,
            "--port",
            "0",
            "--admin-token",
            TOKEN,
            "--snapshot-every",
            "400",
            "--snapshot-interval",
            "1",
            "--tick-interval",
            "0.5",
            "--mode",
            self.mode,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.logfile(),
            env=self.env,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line.startswith(b"READY "):
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"server {self.life + 1} did not start:\n{tail}")
        self.url = line.split()[1].decode()
        self.life += 1
        self.sent_this_life = 0
        self.up.set()

    async def kill(self) -> None:
        assert self.proc is not None
        self.up.clear()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1
        if self.mode == "fast":  # no writer process may go on writing after the server
            deadline = time.monotonic() + 5
            while survivors(self.db) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not survivors(self.db), "a writer process outlived the killed server"

    async def stop(self) -> None:
        assert self.proc is not None
        self.up.clear()
        self.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0


def survivors(db: str) -> list[int]:
    """Processes (the server's forked writers) whose command line names `db`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if db.encode() in f.read():
                found.append(int(pid))
    return found


@dataclass
class Book:
    """What the clients sent and what they were told."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id → params
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id → result
    refused: dict[str, int] = field(default_factory=dict)  # client id → error code
    unknown: set[str] = field(default_factory=set)  # no answer (the server died)


async def connect(h: Harness, key: str | None = None, secret: str | None = None) -> Probe:
    while True:
        await h.up.wait()
        p = Probe(h.url, open_timeout=5)
        try:
            await p.__aenter__()
            if key is None:
                await p.call("session.logon", adminToken=TOKEN)
            else:
                await p.logon(key, secret or "")
            return p
        except Exception:
            await p.close()
            await asyncio.sleep(0.05)


async def client(h: Harness, n: int, creds: dict[str, Any], book: Book, count: list[int]) -> None:
    """Sends orders with up to WINDOW requests in flight (as a pipelining WebSocket
    client), reconnecting and logging on again after each crash."""
    rng = random.Random(n)
    p: Probe | None = None
    life = 0
    i = 0
    inflight: set[asyncio.Task[None]] = set()

    async def place(probe: Probe, cid: str, params: dict[str, Any]) -> None:
        try:
            msg = await probe.raw("order.place", params, timeout=10)
        except Exception:
            book.unknown.add(cid)
            return
        if msg["status"] == 200:
            book.acked[cid] = msg["result"]
            return
        code = int(msg["error"]["code"])
        book.refused[cid] = code
        if code == -2025:  # too many open orders: make room
            with contextlib.suppress(Exception):
                await probe.raw("order.cancelAll", {"symbol": SYMBOL}, timeout=10)

    while count[0] < h.orders:
        if p is None or life != h.life or p.closed.is_set():
            if inflight:
                await asyncio.wait(inflight)
            if p is not None:
                await p.close()
            p = await connect(h, creds["apiKey"], creds["secret"])
            life = h.life
            continue  # other clients sent while this one reconnected: recount
        if h.sent_this_life >= h.quota and h.kills < h.kills_wanted:
            await asyncio.sleep(0.01)  # spread the orders over the server's lives
            continue
        if len(inflight) >= WINDOW:
            _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            continue
        count[0] += 1
        h.sent_this_life += 1
        i += 1
        cid = f"c{n}o{i}"
        side = rng.choice(("BUY", "SELL"))
        ioc = rng.random() < 0.4
        off = Decimal(rng.randint(1, 40)) / 10
        price = Decimal(50000) + (off if (side == "BUY") == ioc else -off)
        params = {
            "symbol": SYMBOL,
            "side": side,
            "type": "LIMIT",
            "timeInForce": "IOC" if ioc else "GTC",
            "quantity": str(STEP * rng.randint(1, 5)),
            "price": str(price),
            "newClientOrderId": cid,
        }
        book.sent[cid] = params
        inflight.add(asyncio.create_task(place(p, cid, params)))
    if inflight:
        await asyncio.wait(inflight)
    if p is not None:
        await p.close()


async def killer(h: Harness, count: list[int]) -> None:
    rng = random.Random(99)
    while count[0] < h.orders or h.kills < h.kills_wanted:
        await asyncio.sleep(rng.uniform(0.05, 1.0))  # a random moment of this life
        await h.kill()
        await h.start()


async def test_crash_and_recover(tmp_path: Path) -> None:
    await crash_and_recover(tmp_path, "durable", ORDERS, KILLS)


async def test_fast_mode_crash_keeps_a_consistent_prefix(tmp_path: Path) -> None:
    await crash_and_recover(tmp_path, "fast", max(1000, ORDERS // 4), max(4, KILLS // 3))


async def crash_and_recover(tmp_path: Path, mode: str, orders: int, kills: int) -> None:
    t0 = time.monotonic()
    db_file = tmp_path / "crash.db"
    env = {**os.environ, "MARGINCALL_MASTER_KEY": secrets.token_hex(32)}
    h = Harness(
        f"sqlite:///{db_file}", env, tmp_path / "server.log", mode=mode, orders=orders,
        kills_wanted=kills,
    )  # fmt: skip
    await h.start()
    admin = await connect(h)
    accounts = [
        await admin.call("admin.createAccount", deposit="1000000", asset="USDT")
        for _ in range(CLIENTS)
    ]
    await admin.call("admin.setIndex", symbol=SYMBOL, price="50000")
    await admin.close()
    await asyncio.sleep(0.3)  # the keys' hashes are written right after the journal

    book = Book()
    count = [0]
    try:
        await asyncio.gather(
            killer(h, count), *(client(h, n, accounts[n], book, count) for n in range(CLIENTS))
        )
        # the last life: ask the live server for its state hash, then stop it cleanly
        admin = await connect(h)
        live = await admin.call("admin.stats")
        await admin.close()
        await h.stop()
    finally:
        if h.proc is not None and h.proc.returncode is None:
            h.proc.kill()
            await h.proc.wait()
        if h._logf is not None:
            h._logf.close()

    assert h.kills >= kills
    assert len(book.sent) == orders
    assert len(book.acked) > orders // 2, (len(book.acked), len(book.refused), len(book.unknown))

    # the database file is sound
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # recovery (snapshot + journal) = the live server = a fresh replay of the journal
    ex, info = recover(h.db)
    full, n = replay_journal(h.db)
    assert info.dropped == 0
    assert ex.state_hash() == live["stateHash"] == full.state_hash()
    ex._check()  # every invariant of the core, money conservation included
    held, net = ex.conservation("USDT")
    assert held == net

    ids = {a["account"] for a in accounts}
    by_cid = {
        o.client_id: o for o in ex.orders.values() if o.account in ids and o.client_id is not None
    }
    # nothing appears that was never sent, and what appears is what was sent
    placed = [o for o in ex.orders.values() if o.account in ids]
    assert all(o.client_id in book.sent for o in placed)
    for cid, o in by_cid.items():
        sent = book.sent[cid]
        assert o.qty * STEP <= Decimal(sent["quantity"])  # never more than sent
        assert ("BUY" if o.side == 0 else "SELL") == sent["side"]
    # every acknowledged order is there, with at least the fills it was told about
    db = Database(h.db, immediate=False)
    try:
        with db.connect() as conn:
            filled = dict(
                conn.execute(
                    text(
                        "select order_id, sum(qty) from ("
                        " select taker_order_id as order_id, qty from fills"
                        " union all select maker_order_id, qty from fills) f group by order_id"
                    )
                ).all()
            )
            last_seq = conn.execute(text("select last_seq from projection_state")).scalar_one()
    finally:
        db.dispose()
    assert last_seq == ex.seq  # the query tables caught up across every crash
    if mode == "fast":  # an acknowledged order may be lost: what was queued at a crash
        print(
            f"crash test (fast): {orders} orders, {h.kills} kills, {len(book.acked)} "
            f"acknowledged, {sum(c in by_cid for c in book.acked)} of them kept, "
            f"{len(placed)} in the book's history, {time.monotonic() - t0:.1f} s"
        )
        return
    for cid, res in book.acked.items():
        o = by_cid.get(cid)
        assert o is not None, f"acknowledged order {cid} lost"
        assert o.oid == res["orderId"]
        view = ex.order_view(o.account, SYMBOL, o.oid)
        assert view is not None
        assert view.filled * STEP >= Decimal(res["executedQty"])
        assert filled.get(o.oid, 0) == view.filled  # fills recorded in the query tables
    refused_codes = set(book.refused.values())
    assert refused_codes <= {-9004, -2025, -2019, -1015}, refused_codes
    print(
        f"crash test: {orders} orders, {h.kills} kills, {len(book.acked)} acknowledged, "
        f"{len(book.refused)} refused, {len(book.unknown)} unanswered, "
        f"{len(placed)} in the book's history, {time.monotonic() - t0:.1f} s"
    )
