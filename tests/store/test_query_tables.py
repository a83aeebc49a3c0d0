"""The query tables agree with the core's state after a scenario with a cascade, on both
backends: through the real runtime, after a crash that left them behind, and after one
that left them ahead of the journal."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text

from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument
from exchange.runtime import Runtime
from exchange.store import Store, recover
from exchange.store.codec import from_jsonable
from exchange.store.db import Database

from .scenario import build, drive, event_counts, instruments, run


def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]


def events_of(cmds: list) -> list[E.Event]:
    ex = run([])
    out: list[E.Event] = []
    for c in cmds:
        out += ex.handle(c)
    return out


def assert_tables_agree(url: str, ex: Exchange, cmds: list) -> None:
    evs = events_of(cmds)
    kinds = Counter(type(e).__name__ for e in evs)
    db = Database(url, immediate=False)
    try:
        assert rows(db, "select last_seq from projection_state")[0]["last_seq"] == ex.seq
        # accounts
        accts = {r["account"] for r in rows(db, "select account from accounts")}
        assert accts == set(ex.accounts) - {0}
        # orders: every order's status, fill and remaining as the core reports them
        orders = rows(db, "select * from orders")
        assert len(orders) == kinds["OrderAccepted"]
        for o in orders:
            v = ex.order_view(o["account"], o["symbol"], o["order_id"])
            assert v is not None
            assert (o["status"], o["filled"], o["remaining"], o["price"], o["qty"]) == (
                v.status,
                v.filled,
                v.remaining,
                v.price,
                v.qty,
            ), o
        open_rows = {
            o["order_id"]
            for o in orders
            if o["status"] in ("NEW", "PARTIALLY_FILLED", "UNTRIGGERED")
        }
        open_core = {v.order_id for a in ex.accounts for v in ex.open_orders(a)}
        assert open_rows == open_core
        # positions and balances: the latest row of each equals the core's view
        latest_pos = {
            (r["account"], r["symbol"]): r for r in rows(db, "select * from positions order by seq")
        }
        latest_bal = {
            (r["account"], r["asset"]): r for r in rows(db, "select * from balances order by seq")
        }
        for a in ex.accounts:
            view = ex.account_view(a)
            assert view is not None
            held = {p.symbol: p for p in view.positions}
            for (acct, sym), r in latest_pos.items():
                if acct != a:
                    continue
                p = held.pop(sym, None)
                if p is None:
                    assert r["qty"] == 0, r
                    continue
                assert (r["qty"], r["cost"], r["margin"], r["leverage"], r["realized_pnl"]) == (
                    p.qty,
                    p.cost,
                    p.margin,
                    p.leverage,
                    p.realized_pnl,
                )
                assert (r["liquidation_price"], r["bankruptcy_price"]) == (
                    p.liquidation_price,
                    p.bankruptcy_price,
                )
            assert not held, f"positions of {a} missing from the table: {held}"
            for b in view.balances:
                r = latest_bal.get((a, b.asset))
                if r is None:
                    assert b.available == 0 and b.reserved == 0
                else:
                    assert (r["available"], r["reserved"]) == (b.available, b.reserved)
        # insurance fund ledger ends at the fund's balance, deltas add up
        ledger = rows(db, "select * from insurance_fund order by seq")
        assert ledger and ledger[-1]["balance"] == ex.insurance_fund("USDT")
        assert sum(r["delta"] for r in ledger) == ex.insurance_fund("USDT")
        # liquidations with their cascade fields, cascade summaries
        liq = rows(db, "select * from liquidations order by seq")
        want = [e for e in evs if isinstance(e, E.PositionLiquidated)]
        assert len(liq) == len(want) > 0
        for r, e in zip(liq, want, strict=True):
            assert (r["liquidation_id"], r["cascade_id"], r["generation"], r["parent_id"]) == (
                e.liquidation_id,
                e.cascade_id,
                e.generation,
                e.parent_id,
            )
            assert json.loads(r["fills"]) == [list(f) for f in e.fills]
            assert r["insurance_delta"] == e.insurance_delta
        cas = rows(db, "select * from cascades order by seq")
        assert len(cas) == kinds["CascadeEnded"]
        for c in cas:
            n = sum(1 for r in liq if r["cascade_id"] == c["cascade_id"])
            assert n == c["liquidations"]
        assert len(rows(db, "select * from auto_deleverages")) == kinds["PositionAutoDeleveraged"]
        # fills, funding, transfers, rejections, marks
        fills = rows(db, "select * from fills")
        assert len(fills) == kinds["OrderFilled"]
        assert sum(f["taker_fee"] + f["maker_fee"] for f in fills) == ex.fees_collected.get(
            "USDT", 0
        )
        assert len(rows(db, "select * from funding_payments")) == kinds["FundingPaid"] > 0
        assert len(rows(db, "select * from funding_settlements")) == kinds["FundingSettled"]
        tr = rows(db, "select * from transfers")
        assert sum(r["amount"] for r in tr if r["kind"] == "DEPOSIT") == ex.deposited["USDT"]
        assert sum(r["amount"] for r in tr if r["kind"] == "WITHDRAWAL") == ex.withdrawn.get(
            "USDT", 0
        )
        assert (
            len(rows(db, "select * from rejections"))
            == kinds["OrderRejected"] + kinds["CommandRejected"]
        )
        assert len(rows(db, "select * from mark_prices")) == kinds["MarkPriceChanged"]
        ups = rows(db, "select count(*) as n from order_updates")[0]["n"]
        assert ups > len(orders)
        # instruments, the added one with its full spec
        inst = {r["symbol"]: r for r in rows(db, "select * from instruments")}
        assert set(inst) == set(ex.instruments)
        for sym, r in inst.items():
            assert from_jsonable(Instrument, json.loads(r["spec"])) == ex.instruments[sym]
    finally:
        db.dispose()


@pytest.mark.parametrize("mode", ["durable", "fast"])
async def test_tables_agree_with_the_core_through_the_runtime(db_url: str, mode: str) -> None:
    cmds = build(2)
    st = Store(db_url, mode=mode, snapshot_every=250)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    for i in range(0, len(cmds), 25):
        futs = [rt.submit_future(c) for c in cmds[i : i + 25]]
        for f in futs:
            await f
    await rt.stop()
    await st.close(rt.exchange)
    assert rt.exchange.state_hash() == run(cmds).state_hash()
    assert st.counters["snapshots"] >= 2
    assert_tables_agree(db_url, rt.exchange, cmds)
    # and recovery finds everything in place
    got, info = recover(db_url, instruments())
    assert info.projected_events == 0 and info.state_hash == rt.exchange.state_hash()


@pytest.mark.parametrize("keep", [3, 20])
async def test_tables_left_behind_are_caught_up_by_recovery(db_url: str, keep: int) -> None:
    cmds = build(4)
    st = Store(db_url, snapshot_every=120, keep_snapshots=keep)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:500])
    await st.flush()

    def query_down(kind: str) -> None:
        if kind == "query":
            raise OSError("query tables unwritable")

    st.fault = query_down  # the journal goes on, the tables fall behind; then a crash
    await drive(st, ex, cmds[500:])
    st.close_sync()
    got, info = recover(db_url, instruments())
    assert info.projected_events > 0
    # started early enough to regenerate the missing events: from a snapshot before the
    # tables' watermark when one is kept, else from the start of the journal
    assert info.snapshot_idx is None or info.snapshot_idx <= 500
    if keep == 20:
        assert info.snapshot_idx is not None
    assert info.state_hash == run(cmds).state_hash()
    assert_tables_agree(db_url, got, cmds)


async def test_tables_ahead_of_the_journal_are_rolled_back(db_url: str) -> None:
    cmds = build(1)
    st = Store(db_url, mode="fast", snapshot_every=0, snapshot_interval=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds[:600])
    await st.flush()

    def journal_down(kind: str) -> None:
        if kind == "fast":
            raise OSError("journal unwritable")

    st.fault = journal_down  # fast mode: the tables get events the journal never saw
    await drive(st, ex, cmds[600:])
    await st._flush_queries()
    st.close_sync()
    got, info = recover(db_url, instruments())
    assert info.last_idx == 600
    assert info.projection_rolled_back >= 0
    assert info.state_hash == run(cmds[:600]).state_hash()
    assert_tables_agree(db_url, got, cmds[:600])
    # the history continues from there, tables included
    st2 = Store(db_url, mode="fast", snapshot_every=0, snapshot_interval=0)
    ex2, _ = st2.recover(instruments())
    st2.start()
    await drive(st2, ex2, cmds[600:])
    await st2.close(ex2)
    assert_tables_agree(db_url, ex2, cmds)


async def test_values_that_do_not_fit_never_stop_the_writer(db_url: str) -> None:
    """A huge deposit (the core allows 10^30 quanta) and garbage in rejected commands
    are stored as NULL or as text; the tables stay in step with the events."""
    from exchange.core import commands as C

    cmds = [
        C.CreateAccount(ts=1, account=7),
        C.Deposit(ts=2, account=7, asset="USDT", amount=10**25),
        C.PlaceOrder(ts=3, account="x\x00" * 300, symbol=["BTC"], side="BUY", qty=1.5),  # type: ignore[arg-type]
        C.CancelOrder(ts=4, account=7, symbol="BTCUSDT", order_id=10**40, client_id="\x00" * 99),
        C.Deposit(ts=5, account=7, asset="USDT", amount=5),
    ]
    st = Store(db_url, snapshot_every=0)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds, batch=2)
    await st.close(ex)
    assert st.counters["query_skipped"] == 0
    db = Database(db_url, immediate=False)
    try:
        assert rows(db, "select last_seq from projection_state")[0]["last_seq"] == ex.seq
        tr = rows(db, "select amount from transfers order by seq")
        assert [r["amount"] for r in tr] == [None, 5]  # beyond 64 bits: NULL
        rej = rows(db, "select * from rejections order by seq")
        assert len(rej) == 2
        assert rej[0]["account"] is None and "\x00" not in (rej[0]["client_id"] or "")
        assert rej[1]["order_id"] is None
    finally:
        db.dispose()
    got, info = recover(db_url, instruments())
    assert info.state_hash == ex.state_hash()


async def test_tables_can_be_built_afterwards(sqlite_url: str) -> None:
    """A backtest run with the query tables off; the next start builds them all."""
    cmds = build(5)
    st = Store(sqlite_url, mode="fast", query_tables=False, snapshot_every=300)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    await rt.start()
    for i in range(0, len(cmds), 50):
        part = cmds[i : i + 50]
        for c in part[:-1]:
            rt.submit_nowait(c)
        await rt.submit(part[-1])
    await rt.stop()
    await st.close(rt.exchange)
    got, info = recover(sqlite_url, instruments())
    assert info.projected_events == got.seq
    assert_tables_agree(sqlite_url, got, cmds)


async def test_fast_mode_writes_the_tables_from_a_process_fed_by_the_journal(
    sqlite_url: str,
) -> None:
    cmds = build(2)
    st = Store(sqlite_url, mode="fast", snapshot_every=0, snapshot_interval=0)
    ex, _ = st.recover(instruments())
    rt = Runtime(ex, clock="stepped", tick_interval=None)
    st.attach(rt)
    assert st.stats()["query_writer"] == "process"
    await rt.start()
    for i in range(0, len(cmds), 25):
        for f in [rt.submit_future(c) for c in cmds[i : i + 25]]:
            await f
    await rt.stop()
    await st.flush()
    assert st.counters["query_events"] == sum(event_counts(cmds).values())
    await st.close(rt.exchange)
    assert_tables_agree(sqlite_url, rt.exchange, cmds)
