"""The journal: rows in order with checksums, one transaction per batch, damaged tails
detected and set aside, never applied."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import event, select, text, update

from exchange.store import Store, recover
from exchange.store import journal as J
from exchange.store.codec import checksum
from exchange.store.db import Database
from exchange.store.tables import DroppedJournalRow, JournalRow

from .scenario import build, drive, instruments, run

JT = JournalRow.__table__  # type: ignore[attr-defined]


def read_all(url: str) -> list[object]:
    db = Database(url, immediate=False)
    try:
        return [c for c in J.read_commands(db, 0)]
    finally:
        db.dispose()


async def journal(url: str, cmds: list, mode: str = "durable", batch: int = 16) -> Store:
    st = Store(url, mode=mode, query_tables=False, snapshot_every=0, snapshot_interval=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds, batch)
    await st.close()
    return st


async def test_append_and_read_back_in_order(db_url: str) -> None:
    cmds = build(1)[:200]
    await journal(db_url, cmds)
    got = read_all(db_url)
    assert [i for i, _ in got] == list(range(1, 201))  # type: ignore[misc]
    assert [c for _, c in got] == cmds  # type: ignore[misc]


@pytest.mark.parametrize("mode", ["durable", "fast"])
async def test_group_commit_one_transaction_per_batch(db_url: str, mode: str) -> None:
    cmds = build(2)[:160]
    st = Store(db_url, mode=mode, query_tables=False, snapshot_every=0, snapshot_interval=0)
    ex, _ = st.recover(instruments())
    commits: list[int] = []
    event.listen(st._jdb.engine, "commit", lambda conn: commits.append(1))
    if mode == "durable":
        for i in range(0, 160, 40):
            await st.append(cmds[i : i + 40])
        assert len(commits) == 4  # 4 batches → 4 transactions
    else:
        # fast: batches queued while the writer is busy are committed together
        for i in range(0, 160, 4):
            await st.append(cmds[i : i + 4])
        await st.flush()
        assert 1 <= len(commits) <= 41  # 40 batches, fewer transactions (+1 flush)
    await st.close()
    assert [c for _, c in read_all(db_url)] == cmds  # type: ignore[misc]
    del ex


def corrupt(url: str, idx: int, how: str) -> None:
    db = Database(url)
    with db.begin() as conn:
        if how == "checksum":
            conn.execute(update(JT).where(JT.c.idx == idx).values(crc=JT.c.crc + 1))
        elif how == "payload":  # a flipped byte the checksum must catch
            row = conn.execute(select(JT.c.payload).where(JT.c.idx == idx)).scalar_one()
            conn.execute(update(JT).where(JT.c.idx == idx).values(payload=row.replace("1", "2", 1)))
        elif how == "torn":  # half a row, with a checksum that matches the half
            row = conn.execute(select(JT.c.type, JT.c.payload).where(JT.c.idx == idx)).one()
            half = row[1][: len(row[1]) // 2]
            conn.execute(
                update(JT)
                .where(JT.c.idx == idx)
                .values(payload=half, crc=checksum(idx, row[0], half))
            )
        elif how == "gap":
            conn.execute(JT.delete().where(JT.c.idx == idx))
    db.dispose()


@pytest.mark.parametrize("how", ["checksum", "payload", "torn", "gap"])
async def test_damaged_tail_is_dropped_with_a_log_line(
    db_url: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    cmds = build(3)[:120]
    await journal(db_url, cmds)
    corrupt(db_url, 100, how)
    with caplog.at_level(logging.ERROR, logger="margincall.store"):
        ex, info = recover(db_url, instruments(), query_tables=False)
    assert info.last_idx == 99
    assert info.dropped == (20 if how == "gap" else 21)
    assert info.damage is not None and "100" in info.damage
    assert any("dropped a damaged tail" in r.getMessage() for r in caplog.records)
    # never half-applied: exactly the valid prefix
    assert ex.state_hash() == run(cmds[:99]).state_hash()
    db = Database(db_url)
    with db.connect() as conn:
        kept = conn.execute(select(JT.c.idx).order_by(JT.c.idx)).scalars().all()
        dropped = (
            conn.execute(
                select(DroppedJournalRow.__table__.c.idx)  # type: ignore[attr-defined]
            )
            .scalars()
            .all()
        )
    db.dispose()
    assert kept == list(range(1, 100))
    assert len(dropped) == info.dropped
    # the journal continues after the valid prefix, and recovers again identically
    st = Store(db_url, query_tables=False, snapshot_every=0, snapshot_interval=0)
    ex2, info2 = st.recover(instruments())
    assert info2.dropped == 0 and st.next_index == 100
    await drive(st, ex2, cmds[99:])
    await st.close()
    ex3, info3 = recover(db_url, instruments(), query_tables=False)
    assert info3.last_idx == 120
    assert ex3.state_hash() == run(cmds).state_hash()


async def test_memory_database_works_for_tests() -> None:
    cmds = build(4)[:50]
    st = Store("sqlite://", query_tables=True, snapshot_every=20)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds, batch=7)
    await st.flush()
    with st._jdb.connect() as conn:
        n = conn.execute(text("select count(*) from journal")).scalar_one()
        s = conn.execute(text("select count(*) from snapshots")).scalar_one()
    assert n == 50 and s >= 1
    await st.close(ex)


async def test_indices_are_contiguous_from_one(db_url: str) -> None:
    cmds = build(5)[:64]
    await journal(db_url, cmds, batch=5)
    db = Database(db_url)
    assert J.first_index(db) == 1 and J.last_index(db) == 64
    for idx, name, payload, crc in J.raw_rows(db):
        assert checksum(idx, name, payload) == crc
    db.dispose()


async def test_admin_set_funding_rate_is_journaled_and_replayed(db_url: str) -> None:
    from exchange.protocol import Api, Session
    from exchange.runtime import Runtime
    from exchange.store import replay_journal

    st = Store(db_url, query_tables=False, snapshot_every=0, snapshot_interval=0)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    api = Api(rt)
    s = Session(api)
    logon = {"id": 1, "method": "session.logon", "params": {"adminToken": api.admin.token}}
    assert '"status":200' in (await s.handle_text(json.dumps(logon))).replace(" ", "")
    req = {"id": 2, "method": "admin.setFundingRate", "params": {"symbol": "BTCUSDT", "rate": "0.0007"}}  # fmt: skip
    ans = json.loads(await s.handle_text(json.dumps(req)))
    assert ans["status"] == 200, ans
    await rt.stop()
    await st.close(rt.exchange)
    names = [type(c).__name__ for _, c in read_all(db_url)]  # type: ignore[misc]
    assert names == ["SetFundingRate"]
    again, n = replay_journal(db_url, instruments())
    assert n == 1
    assert again.market_view("BTCUSDT").funding_rate == 70_000
    assert again.state_hash() == rt.exchange.state_hash()


async def test_fast_journal_of_a_runtime_applying_in_place_is_the_applied_order(
    sqlite_url: str,
) -> None:
    """A fast-mode store under a runtime whose commands are applied in place
    (`apply_now`, as WebSocket requests are), queued, or both in one turn of the loop,
    with snapshots due every few dozen commands: the journal holds every command once,
    in the order applied, and recovery (the newest snapshot plus the journal after it)
    is the live state."""
    import asyncio
    import random

    from exchange.runtime import Runtime

    cmds = build(3)[:600]
    st = Store(sqlite_url, mode="fast", query_tables=False, snapshot_every=37,
               snapshot_interval=0, final_snapshot=False)  # fmt: skip
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    rng = random.Random(5)
    inline = 0
    async with rt:
        await asyncio.sleep(0)
        i = block = 0
        while i < len(cmds):
            if i // 50 != block:
                block = i // 50
                # a snapshot runs in a child process; on a loaded machine the next would
                # not be due before the run ends unless the last one has finished
                while st._snap_task is not None and not st._snap_task.done():
                    await asyncio.sleep(0.01)
            how = rng.random()
            if how < 0.6:
                if rt.apply_now(cmds[i]) is not None:
                    inline += 1
                else:
                    await rt.submit(cmds[i])
                i += 1
                if rng.random() < 0.7:
                    await asyncio.sleep(0)
            else:  # a few queued behind one applied in place, in the same turn
                k = rng.randint(1, 5)
                futs = [rt.submit_future(c) for c in cmds[i : i + k]]
                await asyncio.gather(*futs)
                i += k
        live = rt.exchange.state_hash()
    await st.close()
    assert inline > 100 and st.counters["snapshots"] >= 2
    assert [c for _, c in read_all(sqlite_url)] == cmds  # type: ignore[misc]
    got, info = recover(sqlite_url, instruments(), query_tables=False)
    assert info.snapshot_idx and info.last_idx == len(cmds)
    assert info.state_hash == live == run(cmds).state_hash()
