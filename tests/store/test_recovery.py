"""Recovery = newest valid snapshot + journal after it, and it equals a replay of the
whole journal from the start: over several seeds, cascades included, on both backends."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update

from exchange.core import events as E
from exchange.store import Store, recover, replay_journal
from exchange.store.db import Database
from exchange.store.tables import SnapshotRow

from .scenario import build, build_synthetic, drive, instruments, run

ST = SnapshotRow.__table__  # type: ignore[attr-defined]
SEEDS = [1, 2, 4, 5]


def liquidation_generations(cmds: list) -> list[int]:
    ex = run([])
    gens = []
    for c in cmds:
        gens += [e.generation for e in ex.handle(c) if isinstance(e, E.PositionLiquidated)]
    return gens


def test_the_scenarios_contain_cascades() -> None:
    gens = [g for s in SEEDS for g in liquidation_generations(build(s))]
    assert len(gens) > 100
    assert max(gens) >= 1  # a liquidation caused by another's fills


@pytest.mark.parametrize("seed", SEEDS)
async def test_snapshot_plus_journal_equals_full_replay(db_url: str, seed: int) -> None:
    cmds = build(seed)
    st = Store(db_url, snapshot_every=97, query_tables=False)
    ex, info = st.recover(instruments())
    assert info.last_idx == 0
    await drive(st, ex, cmds, batch=13)
    await st.flush()
    st.close_sync()  # a crash: no final snapshot
    want = run(cmds)
    assert ex.state_hash() == want.state_hash()

    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.snapshot_idx is not None and 0 < info.snapshot_idx <= len(cmds)
    assert info.replayed == len(cmds) - info.snapshot_idx
    assert info.last_idx == len(cmds)
    assert info.state_hash == want.state_hash()
    full, n = replay_journal(db_url, instruments())
    assert n == len(cmds) and full.state_hash() == want.state_hash()
    # the recovered exchange goes on exactly like the original: same events, same seq
    more = build(seed + 100)[-40:]
    assert [got.handle(c) for c in more] == [want.handle(c) for c in more]


@pytest.mark.parametrize("seed", [1, 5])
async def test_restart_at_random_points(db_url: str, seed: int) -> None:
    cmds = build(seed)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(cmds)), 4)) + [len(cmds)]
    done = 0
    for cut in cuts:
        st = Store(db_url, snapshot_every=rng.randint(20, 150), query_tables=False)
        ex, info = st.recover(instruments())
        assert info.last_idx == done
        assert info.state_hash == run(cmds[:done]).state_hash()
        await drive(st, ex, cmds[done:cut], batch=rng.randint(1, 40))
        await st.flush()
        st.close_sync()
        done = cut
    ex, info = recover(db_url, instruments(), query_tables=False)
    assert info.state_hash == run(cmds).state_hash()


async def test_damaged_snapshot_falls_back_to_an_older_one(db_url: str) -> None:
    cmds = build(2)
    st = Store(db_url, snapshot_every=150, keep_snapshots=3, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds)
    await st.close(ex)  # final snapshot at the end
    db = Database(db_url)
    with db.begin() as conn:
        snaps = conn.execute(select(ST.c.id, ST.c.journal_idx).order_by(ST.c.journal_idx)).all()
        assert len(snaps) == 3 and snaps[-1][1] == len(cmds)
        newest, middle = snaps[-1][0], snaps[-2][0]
        data = conn.execute(select(ST.c.data).where(ST.c.id == newest)).scalar_one()
        flipped = bytes(data[:100]) + bytes([data[100] ^ 1]) + bytes(data[101:])
        conn.execute(update(ST).where(ST.c.id == newest).values(data=flipped))
        # a snapshot that loads to another state (e.g. written by other code): rejected too
        conn.execute(update(ST).where(ST.c.id == middle).values(state_hash="0" * 64))
    db.dispose()
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.snapshots_rejected == 2
    assert info.snapshot_idx == snaps[0][1]
    assert info.state_hash == run(cmds).state_hash()


async def test_clean_close_verifies_against_its_final_snapshot(db_url: str) -> None:
    cmds = build(4)[:300]
    st = Store(db_url, snapshot_every=0, snapshot_interval=0, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds)
    await st.close(ex)
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.snapshot_idx == 300 and info.replayed == 0
    assert info.verified_against_snapshot
    assert got.state_hash() == ex.state_hash()


async def test_genesis_instruments_are_the_journals(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cmds = build(1)[:50]
    st = Store(db_url, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds)
    await st.close()
    # started later with a different instrument list: the journal's own start wins
    got, info = recover(db_url, instruments()[:1], query_tables=False)
    assert info.state_hash == run(cmds).state_hash()
    assert any("differ" in r.getMessage() for r in caplog.records)


async def test_fast_mode_recovers_a_consistent_prefix(db_url: str) -> None:
    cmds = build(5)
    st = Store(db_url, mode="fast", snapshot_every=0, snapshot_interval=0, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:400], batch=10)
    await st.flush()

    # the database stops answering: the rest is queued, then the process dies
    def down(kind: str) -> None:
        raise OSError("database gone")

    st.fault = down
    await drive(st, ex, cmds[400:], batch=10)
    st.close_sync()
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.last_idx == 400
    assert info.state_hash == run(cmds[:400]).state_hash()


async def test_snapshot_from_other_code_falls_back_to_the_journal(sqlite_url: str) -> None:
    """A snapshot pickled by another version of the core (here: an attribute missing)
    is skipped, and the journal alone rebuilds the state."""
    import hashlib
    import pickle

    cmds = build(1)[:400]
    st = Store(sqlite_url, snapshot_every=0, snapshot_interval=0, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds)
    await st.close(ex)
    db = Database(sqlite_url)
    with db.begin() as conn:
        data = conn.execute(select(ST.c.data)).scalar_one()
        old = pickle.loads(data)
        delattr(old.markets["BTCUSDT"], "mark")  # what older code did not have
        blob = pickle.dumps(old)
        conn.execute(update(ST).values(data=blob, sha256=hashlib.sha256(blob).hexdigest()))
    db.dispose()
    got, info = recover(sqlite_url, instruments(), query_tables=False)
    assert info.snapshots_rejected == 1 and info.snapshot_idx is None
    assert info.state_hash == run(cmds).state_hash()


@pytest.mark.parametrize("policy", ["bitmex", "hyperliquid", "dydx"])
async def test_recovery_under_another_liquidation_policy(db_url: str, policy: str) -> None:
    """The instruments name another policy: its liquidations (resting fund orders, slices)
    are rebuilt from snapshot + journal to the same state as a straight run."""
    from dataclasses import replace

    insts = [replace(i, liquidation_policy=policy) for i in instruments()]
    cmds = build(1)
    st = Store(db_url, snapshot_every=97, query_tables=False)
    ex, _ = st.recover(insts)
    await drive(st, ex, cmds, batch=13)
    await st.flush()
    st.close_sync()
    want = run(cmds, insts)
    assert ex.state_hash() == want.state_hash() != run(cmds).state_hash()
    got, info = recover(db_url, insts, query_tables=False)
    assert info.snapshot_idx is not None and info.state_hash == want.state_hash()
    assert {m.inst.liquidation_policy for m in got.markets.values()} >= {policy}


def test_the_synthetic_scenario_fills_against_replaced_books() -> None:
    from exchange.core.synthetic import BookReplaced

    cmds = build_synthetic(3)
    ex = run([])
    events = [e for c in cmds for e in ex.handle(c)]
    replaced = [e for e in events if isinstance(e, BookReplaced)]
    assert len(replaced) >= 50 and sum(e.canceled for e in replaced) > 0
    quoted = [e for e in events if isinstance(e, E.OrderFilled) and e.maker_account == 7]
    assert len(quoted) > 50
    assert any(isinstance(e, E.CommandRejected) for e in events)  # the ill-formed one


@pytest.mark.parametrize("query_tables", [False, True])
async def test_replace_book_sessions_recover_to_the_same_state(
    db_url: str, query_tables: bool
) -> None:
    """A replay-like session (synthetic quotes replaced as a whole, fills against them)
    is journaled and recovered from snapshot + journal, and from the journal alone, to
    the state hash of a straight run."""
    cmds = build_synthetic(3)
    st = Store(db_url, snapshot_every=101, query_tables=query_tables)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds, batch=7)
    await st.flush()
    st.close_sync()  # a crash
    want = run(cmds)
    assert ex.state_hash() == want.state_hash()
    got, info = recover(db_url, instruments(), query_tables=False)
    assert info.last_idx == len(cmds) and info.snapshot_idx
    assert got.state_hash() == want.state_hash()
    full, n = replay_journal(db_url, instruments())
    assert n == len(cmds) and full.state_hash() == want.state_hash()


async def test_a_hole_closed_by_the_newest_snapshot_is_bridged_with_query_tables_on(
    db_url: str,
) -> None:
    """Fast mode skipped commands (the database was gone) and the final snapshot closed
    the hole, with nothing journaled after it: the query tables stopped at the hole,
    yet recovery must start from that snapshot, not replay the journal to the hole."""
    from exchange.runtime import Runtime

    cmds = build(1)
    st = Store(
        db_url,
        mode="fast",
        fast_max_pending=50,
        snapshot_every=0,
        snapshot_interval=0,
    )
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    for c in cmds[:300]:
        await rt.submit(c)
    await st.flush()

    def gone(kind: str) -> None:
        if kind == "fast":
            raise OSError("database gone")

    st.fault = gone
    for c in cmds[300:]:
        await rt.submit(c)
    assert st.stats()["gap"]
    st.fault = None
    await rt.stop()
    await st.close(rt.exchange)
    got, info = recover(db_url, instruments())
    assert info.snapshot_idx == len(cmds)
    assert info.state_hash == run(cmds).state_hash() == got.state_hash()
