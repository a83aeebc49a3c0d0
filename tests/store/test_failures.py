"""The database slow, full or gone: durable mode refuses quickly with StoreUnavailable,
never lets the core run ahead of its journal, and recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

from exchange.errors import StoreUnavailable
from exchange.runtime import Runtime
from exchange.store import Store, recover
from exchange.store.db import normalize_url

from .scenario import build, drive, instruments, run


@contextlib.contextmanager
def writer_blocked(url: str) -> Iterator[None]:
    """Another client holds the lock the journal needs (a slow or stuck database)."""
    u = make_url(normalize_url(url))
    if u.get_backend_name() == "sqlite":
        conn = sqlite3.connect(u.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        eng = create_engine(normalize_url(url))
        with eng.connect() as conn:
            tx = conn.begin()
            conn.execute(text("LOCK TABLE journal IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                tx.rollback()
        eng.dispose()


async def test_locked_database_refuses_quickly_then_recovers(db_url: str) -> None:
    cmds = build(1)[:300]
    st = Store(db_url, commit_timeout=0.5, query_tables=False, snapshot_every=0)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    for c in cmds[:100]:
        await rt.submit(c)
    before = rt.exchange.state_hash()
    with writer_blocked(db_url):
        t0 = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await rt.submit(cmds[100])
        assert time.perf_counter() - t0 < 1.5
        for c in cmds[100:105]:  # every request refused while it lasts, nothing applied
            with pytest.raises(StoreUnavailable):
                await rt.submit(c)
        assert rt.exchange.state_hash() == before
    # the database is back: service resumes within the refusal pause
    t0 = time.perf_counter()
    while True:
        try:
            await rt.submit(cmds[100])
            break
        except StoreUnavailable:
            assert time.perf_counter() - t0 < 2
            await asyncio.sleep(0.02)
    for c in cmds[101:]:
        await rt.submit(c)
    await rt.stop()
    await st.close(rt.exchange)
    assert rt.exchange.state_hash() == run(cmds).state_hash()
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.last_idx == 300 and info.state_hash == run(cmds).state_hash()


async def test_abandoned_commit_is_taken_back(db_url: str) -> None:
    cmds = build(2)[:60]
    st = Store(db_url, commit_timeout=0.3, query_tables=False, snapshot_every=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:20], batch=10)
    release = threading.Event()

    def stall(kind: str) -> None:  # the commit hangs, then goes through late
        if kind == "durable" and not release.is_set():
            release.wait(5)

    st.fault = stall
    with pytest.raises(StoreUnavailable, match="timed out"):
        await st.append(cmds[20:30])
    t0 = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="not finished"):
        await st.append(cmds[20:30])
    assert time.perf_counter() - t0 < 0.05  # a hung database costs one timeout, not one each
    release.set()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if st._inflight is not None and st._inflight.done():
            break
    st.fault = None
    await asyncio.sleep(0.06)  # the pause after a failure
    # the refused batch was never applied: the next one takes its place in the journal
    await drive(st, ex, cmds[30:], batch=10)
    await st.close()
    assert st.counters["abandoned_removed"] == 1
    got, info = recover(db_url, instruments(), query_tables=False)
    want = run(cmds[:20] + cmds[30:])
    assert info.last_idx == 50 and info.state_hash == want.state_hash() == ex.state_hash()


async def test_failed_commit_leaves_no_row(db_url: str) -> None:
    cmds = build(3)[:40]
    st = Store(db_url, query_tables=False, snapshot_every=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:10], batch=10)
    calls = []

    def flaky(kind: str) -> None:
        calls.append(kind)
        if len(calls) == 1:
            raise OSError("connection reset")

    st.fault = flaky
    with pytest.raises(StoreUnavailable, match="connection reset"):
        await st.append(cmds[10:20])
    with pytest.raises(StoreUnavailable, match="unavailable"):  # at once, for a moment
        await st.append(cmds[10:20])
    await asyncio.sleep(0.06)
    await drive(st, ex, cmds[20:], batch=10)
    await st.close()
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.last_idx == 30
    assert info.state_hash == run(cmds[:10] + cmds[20:]).state_hash() == ex.state_hash()


async def test_sqlite_full_refuses_then_recovers(sqlite_url: str) -> None:
    cmds = build(4)[:400]
    st = Store(sqlite_url, query_tables=False, snapshot_every=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:50])

    def cap(conn: object) -> None:  # the disk is full: no page may be added
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()  # type: ignore[attr-defined]
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")  # type: ignore[attr-defined]

    await st.call(cap)
    refused = 0
    i = 50
    while i < 400:
        try:
            await drive(st, ex, cmds[i : i + 50], batch=50)
        except StoreUnavailable as e:
            assert "full" in str(e)
            refused += 1
            await asyncio.sleep(0.06)
            break
        i += 50
    assert refused == 1
    await st.call(lambda conn: conn.exec_driver_sql("PRAGMA max_page_count = 1073741823"))
    await drive(st, ex, cmds[i:])
    await st.close()
    got, info = recover(sqlite_url, instruments(), query_tables=False)
    assert info.state_hash == ex.state_hash() == run(cmds[:i] + cmds[i:]).state_hash()


async def test_postgresql_connection_killed_recovers(pg_url: str) -> None:
    cmds = build(5)[:200]
    st = Store(pg_url, query_tables=False, snapshot_every=0, commit_timeout=1.0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:100])
    pid = await st.call(lambda conn: conn.exec_driver_sql("select pg_backend_pid()").scalar())
    admin = create_engine(normalize_url(pg_url))
    with admin.begin() as conn:  # the server drops the store's connection
        assert conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar()
    admin.dispose()
    applied = list(cmds[:100])
    refused = 0
    for i in range(100, 200, 10):
        part = cmds[i : i + 10]
        try:
            await drive(st, ex, part, batch=10)
            applied += part
        except StoreUnavailable:
            refused += 1
            await asyncio.sleep(0.06)
    assert refused <= 1  # at most the batch that met the dead connection
    await st.close()
    got, info = recover(pg_url, instruments(), query_tables=False)
    assert info.state_hash == ex.state_hash() == run(applied).state_hash()


async def test_fast_mode_bounded_queue_and_healing_snapshot(db_url: str) -> None:
    cmds = build(1)
    st = Store(
        db_url,
        mode="fast",
        fast_max_pending=100,
        snapshot_every=0,
        snapshot_interval=0,
        query_tables=False,
    )
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    down = threading.Event()
    down.set()

    def gone(kind: str) -> None:
        if down.is_set():
            raise OSError("database gone")

    for c in cmds[:200]:
        await rt.submit(c)
    await st.flush()
    st.fault = gone
    for c in cmds[200:700]:  # never waits for the database
        await rt.submit(c)
    assert st.counters["fast_skipped"] > 0 and st.stats()["gap"]
    assert st.stats()["pending"] <= 100
    down.clear()  # back; the next snapshot covers what was skipped
    for c in cmds[700:]:
        await rt.submit(c)
    await rt.stop()
    await st.close(rt.exchange)
    assert not st.stats()["gap"]
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.state_hash == run(cmds).state_hash()
