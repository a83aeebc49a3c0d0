"""Fast mode's journal writer process: every command journaled in order, snapshots and
admin writes in order with the journal, flush and close waiting for the commits, and a
writer process that dies detected, reported and recovered from."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from exchange.errors import StoreUnavailable
from exchange.runtime import Runtime
from exchange.store import Store, recover
from exchange.store import journal as J
from exchange.store.codec import checksum, decode_batch, encode_batch, encode_command
from exchange.store.db import Database

from .scenario import build, instruments, run


def journal_rows(url: str) -> list[tuple[int, str, str, int]]:
    db = Database(url, immediate=False)
    try:
        return list(J.raw_rows(db, 0))
    finally:
        db.dispose()


async def started(url: str, **config: Any) -> tuple[Store, Runtime]:
    st = Store(url, mode="fast", **config)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    return st, rt


async def submit_all(rt: Runtime, cmds: list[Any], chunk: int = 37) -> None:
    for i in range(0, len(cmds), chunk):
        part = cmds[i : i + chunk]
        for c in part[:-1]:
            rt.submit_nowait(c)
        await rt.submit(part[-1])


def test_a_batch_decodes_to_the_canonical_payloads() -> None:
    cmds = build(3)
    for i in range(0, len(cmds), 50):
        part = cmds[i : i + 50]
        assert decode_batch(encode_batch(part)) == [encode_command(c) for c in part]


async def test_every_command_is_journaled_in_order_and_recovers(db_url: str) -> None:
    cmds = build(2)
    st, rt = await started(db_url, snapshot_every=0, snapshot_interval=0)
    assert st.stats()["journal_writer"] == "process"
    await submit_all(rt, cmds)
    await rt.stop()
    assert st.stats()["journal_writer"] == "process"
    await st.close(rt.exchange)
    rows = journal_rows(db_url)
    assert [r[0] for r in rows] == list(range(1, len(cmds) + 1))
    assert all(c.ts for c in cmds)  # so the runtime journals them as they are
    for (idx, name, payload, crc), cmd in zip(rows, cmds, strict=True):
        assert (name, payload) == encode_command(cmd)
        assert crc == checksum(idx, name, payload)
    straight = run(cmds)
    assert rt.exchange.state_hash() == straight.state_hash()
    _, info = recover(db_url, instruments())
    assert info.last_idx == len(cmds)
    assert info.state_hash == straight.state_hash()


async def test_snapshots_stay_behind_the_journal_they_cover(sqlite_url: str) -> None:
    """Watched from another connection while the engine runs: the newest snapshot never
    covers an index the journal has not committed; each snapshot is the state after
    exactly the commands up to its index."""
    cmds = build(4)
    st, rt = await started(sqlite_url, snapshot_every=100, snapshot_interval=0, keep_snapshots=50)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def watch() -> None:
        db = Database(sqlite_url, immediate=False)
        try:
            while not stop.is_set():
                with db.connect() as conn:
                    snap, top = conn.execute(
                        text(
                            "select (select coalesce(max(journal_idx), 0) from snapshots),"
                            " (select coalesce(max(idx), 0) from journal)"
                        )
                    ).one()
                seen.append((int(snap), int(top)))
                time.sleep(0.001)
        finally:
            db.dispose()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        await submit_all(rt, cmds, chunk=20)
        await rt.stop()
        await st.close(rt.exchange)
    finally:
        stop.set()
        watcher.join()
    assert seen and all(snap <= top for snap, top in seen)
    assert st.counters["snapshots"] >= 2  # (one at a time: fewer when the machine is busy)
    db = Database(sqlite_url, immediate=False)
    try:
        with db.connect() as conn:
            snaps = conn.execute(text("select journal_idx, state_hash from snapshots")).all()
    finally:
        db.dispose()
    assert len(snaps) >= 2
    for idx, state_hash in snaps:
        assert run(cmds[:idx]).state_hash() == state_hash


def _count_journal(conn: Any) -> int:
    return int(conn.execute(text("select count(*) from journal")).scalar_one())


async def test_batches_pile_up_in_the_sender_and_a_flush_cuts_the_wait_short(
    db_url: str,
) -> None:
    """Journal batches wait in the sender up to `linger` and go down the pipe in one write;
    a request behind them (here a flush) is not kept waiting for the linger."""
    cmds = build(1)
    st, rt = await started(
        db_url, snapshot_every=0, snapshot_interval=0, query_tables=False, linger=30.0
    )
    jp = st._jproc
    assert jp is not None and jp.linger == 30.0
    before = jp.writes
    for i in range(0, 400, 10):  # 40 small batches, as 40 turns of a busy loop make
        await st.append(cmds[i : i + 10])
    await asyncio.sleep(0.2)
    assert jp.writes == before  # all still waiting: nothing written yet
    await asyncio.wait_for(st.flush(), timeout=10)  # far less than the linger
    assert jp.writes == before + 1  # the 40 batches and the flush: one write
    assert st.stats()["pending"] == 0
    await rt.stop()
    await st.close(rt.exchange)


async def test_flush_and_close_wait_for_the_commits(db_url: str) -> None:
    cmds = build(1)
    st, rt = await started(db_url, snapshot_every=0, snapshot_interval=0, query_tables=False)
    base = st.next_index
    # batches handed straight to the store, as the runtime's appender does
    for i in range(0, 600, 50):
        await st.append(cmds[i : i + 50])
    await st.flush()
    assert st.stats()["pending"] == 0
    other = Database(db_url, immediate=False)
    try:
        with other.connect() as conn:
            assert _count_journal(conn) == base - 1 + 600
        # an admin write is ordered with the journal and runs in the writer process
        assert await st.call(_count_journal) == base - 1 + 600
        assert st.thread_cpu_s["journal"] == 0.0  # no writer thread in this process
        for i in range(600, 900, 50):
            await st.append(cmds[i : i + 50])
        # a function that cannot be pickled runs here, after what was sent before it
        assert await st.call(lambda conn: _count_journal(conn)) == base - 1 + 900
        await st.append(cmds[900:1000])
        await rt.stop()
        await st.close()
        with other.connect() as conn:
            assert _count_journal(conn) == base - 1 + 1000
    finally:
        other.dispose()


def _sleep_then_count(seconds: float, conn: Any) -> int:
    time.sleep(seconds)
    return _count_journal(conn)


async def test_a_killed_writer_process_is_reported_and_the_journal_heals(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cmds = build(5)
    st, rt = await started(sqlite_url, snapshot_every=0, snapshot_interval=0)
    await submit_all(rt, cmds[:300])
    await st.flush()
    jp = st._jproc
    assert jp is not None
    # the writer is busy, a flush waits behind it; then the process is killed
    busy = asyncio.ensure_future(st.call(functools.partial(_sleep_then_count, 5.0)))
    await submit_all(rt, cmds[300:400])
    waiting = asyncio.ensure_future(st.flush())
    await asyncio.sleep(0.3)
    os.kill(jp.pid, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="margincall.store"):
        with pytest.raises(StoreUnavailable, match="died"):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(StoreUnavailable, match="died"):
            await busy
        assert any(
            "journal writer process" in r.getMessage() and "killed by signal 9" in r.getMessage()
            for r in caplog.records
        )
        # the engine goes on; the store journals on a thread from the healing snapshot
        await submit_all(rt, cmds[400:])
    stats = st.stats()
    assert stats["journal_writer"] == "thread"
    assert stats["journal_process_deaths"] == 1
    assert stats["fast_skipped"] > 0
    assert any("continues on a thread" in r.getMessage() for r in caplog.records)
    await rt.stop()
    await st.close(rt.exchange)
    assert not st.stats()["gap"]  # the final snapshot covers what the process lost
    _, info = recover(sqlite_url, instruments())
    assert info.state_hash == run(cmds).state_hash() == rt.exchange.state_hash()


async def test_setting_a_fault_hook_hands_the_journal_to_the_thread(sqlite_url: str) -> None:
    cmds = build(1)
    st, rt = await started(sqlite_url, snapshot_every=0, snapshot_interval=0, query_tables=False)
    await submit_all(rt, cmds[:200])
    kinds: list[str] = []
    st.fault = kinds.append  # the process commits what it has, then the thread goes on
    assert st.stats()["journal_writer"] == "thread"
    await submit_all(rt, cmds[200:])
    await rt.stop()
    await st.close()
    assert "fast" in kinds
    assert [r[0] for r in journal_rows(sqlite_url)] == list(range(1, len(cmds) + 1))


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="journal_writer"):
        Store("sqlite://", mode="fast", journal_writer="fork")
    st = Store("sqlite://", mode="fast", journal_writer="process")
    st.recover(instruments())
    with pytest.raises(ValueError, match="database file"):
        st.attach(Runtime(st._exchange, clock="stepped", tick_interval=None))  # type: ignore[arg-type]
    st.close_sync()


async def test_durable_mode_keeps_the_thread(sqlite_url: str) -> None:
    st = Store(sqlite_url, mode="durable", query_tables=False)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    assert st.stats()["journal_writer"] == "thread"
    await rt.start()
    await submit_all(rt, build(1)[:100])
    await rt.stop()
    await st.close()
