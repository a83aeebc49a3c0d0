"""The engine task: batching, futures, write-ahead journaling hooks, subscribers, clocks."""

from __future__ import annotations

import asyncio

import pytest

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.errors import StoreUnavailable
from exchange.runtime import Runtime

USD = 10**8


def new_exchange() -> Exchange:
    return Exchange(load_instruments())


class FakeLog:
    def __init__(self, durable: bool, exchange: Exchange | None = None) -> None:
        self.durable = durable
        self.batches: list[list[C.Command]] = []
        self.fail = False
        self.exchange = exchange
        self.seen_now: list[int] = []
        self.hash_at_append: list[str] = []

    async def append(self, commands: list[C.Command]) -> None:
        if self.exchange is not None:
            self.hash_at_append.append(self.exchange.state_hash())
        await asyncio.sleep(0)
        if self.fail:
            raise StoreUnavailable("disk gone")
        self.batches.append(list(commands))


async def test_submit_returns_the_commands_events_and_batches() -> None:
    async with Runtime(new_exchange(), clock="stepped") as rt:
        futs = [rt.submit_future(C.CreateAccount(account=i)) for i in range(1, 6)]
        results = await asyncio.gather(*futs)
        assert [type(r[0]) for r in results] == [E.AccountCreated] * 5
        assert rt.batches == 1 and rt.max_batch_seen == 5  # one turn took all five
        [rej] = await rt.submit(C.CreateAccount(account=1))
        assert isinstance(rej, E.CommandRejected) and rej.code == -9001


async def test_durable_log_is_written_before_apply_including_rejects() -> None:
    ex = new_exchange()
    log = FakeLog(durable=True, exchange=ex)
    before = ex.state_hash()
    async with Runtime(ex, clock="stepped", command_log=log) as rt:
        await rt.submit(C.CreateAccount(account=1))
        await rt.submit(C.CreateAccount(account=1))  # rejected by the core, still journaled
    assert [type(c) for b in log.batches for c in b] == [C.CreateAccount, C.CreateAccount]
    assert log.hash_at_append[0] == before  # write-ahead: nothing applied yet at append time


async def test_store_unavailable_refuses_the_whole_batch() -> None:
    ex = new_exchange()
    log = FakeLog(durable=True)
    async with Runtime(ex, clock="stepped", command_log=log) as rt:
        await rt.submit(C.CreateAccount(account=1))
        h = ex.state_hash()
        log.fail = True
        futs = [rt.submit_future(C.CreateAccount(account=i)) for i in (2, 3)]
        for f in futs:
            with pytest.raises(StoreUnavailable):
                await f
        assert ex.state_hash() == h and rt.refused == 2
        log.fail = False  # the store comes back: so does the server
        await rt.submit(C.CreateAccount(account=2))
        assert ex.account_view(2) is not None


async def test_fast_log_appends_after_answering_in_order() -> None:
    log = FakeLog(durable=False)
    rt = Runtime(new_exchange(), clock="stepped", command_log=log)
    await rt.start()
    for i in range(1, 20):
        await rt.submit(C.CreateAccount(account=i))
    await rt.stop()  # flushes the appender
    assert [c.account for b in log.batches for c in b] == list(range(1, 20))  # type: ignore[attr-defined]


async def test_subscribers_are_bounded_and_drops_are_counted() -> None:
    async with Runtime(new_exchange(), clock="stepped") as rt:
        slow = rt.subscribe("slow", maxsize=2)
        fast = rt.subscribe("fast", maxsize=1000)
        got: list[E.Event] = []

        async def consume() -> None:
            async for batch in fast:
                got.extend(batch)

        task = asyncio.create_task(consume())
        for i in range(1, 11):
            await rt.submit(C.CreateAccount(account=i))
        await asyncio.sleep(0)
        assert len([e for e in got if isinstance(e, E.AccountCreated)]) == 10
        assert len(slow) == 2 and slow.dropped_batches == 8
        assert rt.stats()["dropped_batches"]["slow"] == 8
        closing = rt.subscribe("closing", maxsize=1, policy="close")
        await rt.submit(C.CreateAccount(account=11))
        await rt.submit(C.CreateAccount(account=12))
        assert closing.closed and rt.stats()["subscriptions_closed"] == {"closing": 1}
        assert [b async for b in closing] and closing.closed  # drains what it had, then ends
        task.cancel()


async def test_snapshot_hook_runs_between_turns_when_due() -> None:
    seen: list[str] = []
    due = iter([False, True, False, False])

    async def hook(ex: Exchange) -> None:
        seen.append(ex.state_hash())

    async with Runtime(new_exchange(), clock="stepped", snapshot_hook=hook,
                       snapshot_due=lambda: next(due, False)) as rt:  # fmt: skip
        for i in range(1, 4):
            await rt.submit(C.CreateAccount(account=i))
        await asyncio.sleep(0)
    assert len(seen) == 1 and rt.snapshots == 1


async def test_runtime_resumes_from_an_existing_exchange() -> None:
    ex = new_exchange()
    ex.handle(C.CreateAccount(account=1, ts=5))
    async with Runtime(ex, clock="stepped") as rt:
        [rej] = await rt.submit(C.CreateAccount(account=1))
        assert rej.code == -9001 and rt.exchange is ex and ex.now == 5


async def test_stepped_clock_stamps_engine_time_and_only_advance_moves_it() -> None:
    ex = new_exchange()
    log = FakeLog(durable=True)
    async with Runtime(ex, clock="stepped", command_log=log, start_ts=1000) as rt:
        await rt.submit(C.CreateAccount(account=1))
        assert ex.now == 1000
        await asyncio.sleep(0.01)
        await rt.submit(C.CreateAccount(account=2))
        assert ex.now == 1000
        await rt.submit(C.AdvanceClock(ts=5000))
        await rt.submit(C.CreateAccount(account=3))
    stamps = [c.ts for b in log.batches for c in b]
    assert stamps == [1000, 1000, 1000, 5000, 5000]


async def test_realtime_clock_stamps_wall_time_never_backwards() -> None:
    wall = iter([100, 50, 300] + [400] * 100)
    ex = new_exchange()
    log = FakeLog(durable=True)
    async with Runtime(ex, clock="realtime", command_log=log, tick_interval=None,
                       wall_clock=lambda: next(wall)) as rt:  # fmt: skip
        for i in range(1, 4):
            await rt.submit(C.CreateAccount(account=i))
    assert [c.ts for b in log.batches for c in b] == [100, 100, 300]


async def test_realtime_ticker_advances_the_clock() -> None:
    ex = new_exchange()
    async with Runtime(ex, clock="realtime", tick_interval=0.01):
        await asyncio.sleep(0.05)
    assert ex.now > 0


async def test_a_core_exception_is_reported_and_the_engine_keeps_going() -> None:
    class Boom(C.Command):
        pass

    ex = new_exchange()
    orig = ex.handle

    def handle(cmd: C.Command) -> list[E.Event]:
        if isinstance(cmd, C.HaltSymbol) and cmd.symbol == "BOOM":
            raise ZeroDivisionError
        return orig(cmd)

    ex.handle = handle  # type: ignore[method-assign]
    async with Runtime(ex, clock="stepped") as rt:
        with pytest.raises(RuntimeError):
            await rt.submit(C.HaltSymbol(symbol="BOOM"))
        [ev] = await rt.submit(C.CreateAccount(account=1))
        assert isinstance(ev, E.AccountCreated)


async def test_submit_needs_a_running_runtime() -> None:
    rt = Runtime(new_exchange())
    with pytest.raises(RuntimeError):
        rt.submit_future(C.CreateAccount(account=1))
    with pytest.raises(ValueError):
        Runtime(new_exchange(), clock="sideways")  # type: ignore[arg-type]


async def test_the_callers_command_is_never_mutated_unless_owned() -> None:
    log = FakeLog(durable=True)
    ex = new_exchange()
    async with Runtime(ex, clock="stepped", command_log=log, start_ts=77) as rt:
        mine = C.CreateAccount(account=1)
        await rt.submit(mine)
        assert mine.ts == 0 and log.batches[-1][-1].ts == 77  # a stamped copy went in
        owned = C.CreateAccount(account=2)
        await rt.submit(owned, owned=True)
        assert owned.ts == 77 and log.batches[-1][-1] is owned  # stamped in place


async def test_handle_now_applies_in_place_only_when_that_is_what_the_queue_would_do() -> None:
    rt = Runtime(new_exchange(), clock="stepped")
    assert not rt.handle_now([C.CreateAccount(account=1)])  # not running
    async with rt:
        sub = rt.subscribe("s")
        await asyncio.sleep(0)  # the engine idles
        assert rt.handle_now([C.CreateAccount(account=1)])
        assert rt.exchange.account_view(1) is not None  # applied, readable at once
        assert len(sub) == 0  # offered at the flush, as one batch
        rt.submit_nowait(C.CreateAccount(account=2))
        assert not rt.handle_now([C.CreateAccount(account=3)])  # someone is queued first
        assert rt.exchange.account_view(3) is None
        while rt.stats()["queued"]:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        # the in-place events went out before the queued command's
        seqs = [e.seq for batch in (sub.get_nowait(), sub.get_nowait()) for e in batch or ()]
        assert seqs == sorted(seqs) and len(seqs) >= 2
        assert rt.stats()["commands"] == 2


async def test_handle_now_declines_with_a_durable_journal_or_a_snapshot_due() -> None:
    async with Runtime(new_exchange(), clock="stepped", command_log=FakeLog(durable=True)) as rt:
        await asyncio.sleep(0)
        assert not rt.handle_now([C.CreateAccount(account=1)])  # the commit comes first
        assert rt.exchange.account_view(1) is None
    due = [True]
    snapshots: list[int] = []

    async def hook(ex: Exchange) -> None:
        snapshots.append(rt.stats()["commands"])
        due[0] = False

    rt = Runtime(new_exchange(), clock="stepped", command_log=FakeLog(durable=False),
                 snapshot_hook=hook, snapshot_due=lambda: due[0])  # fmt: skip
    async with rt:
        await asyncio.sleep(0)
        assert not rt.handle_now([C.CreateAccount(account=1)])  # a turn takes the snapshot
        await rt.submit(C.CreateAccount(account=1))
        assert snapshots == [1]
        await asyncio.sleep(0)
        assert rt.handle_now([C.CreateAccount(account=2)])  # none due: in place


async def test_a_fast_journal_gets_in_place_commands_in_order() -> None:
    """With a fast-mode journal, commands applied in place are journaled too: as one
    batch, before whatever the engine applies next, so the journal's order is the
    order they took effect in."""
    log = FakeLog(durable=False)
    async with Runtime(new_exchange(), clock="stepped", command_log=log) as rt:
        await asyncio.sleep(0)
        evs = rt.apply_now(C.CreateAccount(account=1))
        assert evs is not None and rt.exchange.account_view(1) is not None
        assert rt.handle_now([C.CreateAccount(account=2), C.CreateAccount(account=3)])
        await rt.submit(C.CreateAccount(account=4))  # queued: journaled after them
    journaled = [c.account for batch in log.batches for c in batch]  # type: ignore[attr-defined]
    assert journaled == [1, 2, 3, 4]
    assert [c.account for c in log.batches[0]] == [1, 2, 3]  # type: ignore[attr-defined]


async def test_apply_now_answers_at_once_with_its_events_offered() -> None:
    rt = Runtime(new_exchange(), clock="stepped")
    assert rt.apply_now(C.CreateAccount(account=1)) is None  # not running
    async with rt:
        sub = rt.subscribe("s")
        await asyncio.sleep(0)
        assert rt.handle_now([C.CreateAccount(account=7)])  # a replay's, not yet offered
        mine = C.CreateAccount(account=1)
        evs = rt.apply_now(mine, owned=True)
        assert evs is not None and [type(e).__name__ for e in evs] == ["AccountCreated"]
        assert evs[0].account == 1  # type: ignore[attr-defined]  # its own events only
        assert mine.ts == rt.exchange.now  # stamped in place, as it was owned
        first = sub.get_nowait()  # offered before it returned, after the earlier ones
        assert first is not None and [e.account for e in first] == [7, 1]  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # (one in place per turn of the loop)
        evs2 = rt.apply_now(C.CreateAccount(account=1))  # refused by the core: still events
        assert evs2 is not None and type(evs2[0]).__name__ == "CommandRejected"
        assert sub.get_nowait() == evs2
        rt.submit_nowait(C.CreateAccount(account=2))
        assert rt.apply_now(C.CreateAccount(account=3)) is None  # someone is queued first
        assert rt.exchange.account_view(3) is None


async def test_apply_now_applies_one_command_per_turn_of_the_loop() -> None:
    """A burst applied in one step of the loop (requests read in one go) must not give
    every subscriber one batch per command before it can run (a bounded queue would
    drop events), nor run ahead of the other submitters: one command per turn of the
    loop is applied in place, the others take the queue and are batched by the engine,
    in the order they were submitted."""
    log = FakeLog(durable=False)
    async with Runtime(new_exchange(), clock="stepped", command_log=log) as rt:
        sub = rt.subscribe("s", maxsize=2)
        await asyncio.sleep(0)
        assert rt.apply_now(C.CreateAccount(account=1)) is not None
        assert rt.apply_now(C.CreateAccount(account=2)) is None  # the same turn: queue it
        assert rt.exchange.account_view(2) is None
        futs = [rt.submit_future(C.CreateAccount(account=a)) for a in range(2, 40)]
        await asyncio.gather(*futs)
        assert sub.dropped_batches == 0
        got = [e.account for b in iter(sub.get_nowait, None) for e in b]  # type: ignore[attr-defined]
        assert got == list(range(1, 40))
        await asyncio.sleep(0)
        assert rt.apply_now(C.CreateAccount(account=40)) is not None  # a later turn: in place
    journaled = [c.account for batch in log.batches for c in batch]  # type: ignore[attr-defined]
    assert journaled == list(range(1, 41))
