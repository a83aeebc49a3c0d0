"""The margin monitor (issue 3, item 5): positions ordered by liquidation tick, longs
and shorts apart; a mark update pops exactly the crossed ones, most endangered first.
`due_scan` is the O(N) reference that `pop_due` must agree with."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.monitor import MarginMonitor
from tests.core.helpers_margin import BTC, FUNDS, Sim, px, usdt


def test_update_places_moves_and_removes() -> None:
    m = MarginMonitor()
    m.update(1, 5, 100)
    m.update(2, -3, 200)
    assert len(m) == 2
    assert list(m.longs) == [(100, 1)] and list(m.shorts) == [(200, 2)]
    m.update(1, 5, 120)  # a new tick moves it
    assert list(m.longs) == [(120, 1)]
    m.update(1, -5, 300)  # a flip moves it to the other side
    assert list(m.longs) == [] and list(m.shorts) == [(200, 2), (300, 1)]
    m.update(2, 0, 200)  # flat: gone
    assert list(m.shorts) == [(300, 1)] and 2 not in m.keys
    m.update(3, 4, 0)  # a long that cannot be liquidated is not held
    assert 3 not in m.keys and len(m) == 1
    m.remove(1)
    assert len(m) == 0 and not m.longs and not m.shorts
    m.remove(42)  # removing an absent account is harmless
    m._check()


def test_pop_due_order_and_ties() -> None:
    m = MarginMonitor()
    for account, qty, tick in [
        (5, 1, 100),
        (3, 1, 100),
        (4, 1, 90),
        (9, 1, 80),  # long, not due at a mark of 85
        (7, -1, 80),
        (6, -1, 85),
        (2, -1, 85),
        (8, -1, 86),  # short, not due at 85
    ]:
        m.update(account, qty, tick)
    assert m.due_scan(85) == [3, 5, 4, 7, 2, 6]
    assert m.pop_due(85) == [3, 5, 4, 7, 2, 6]
    assert sorted(m.keys) == [8, 9]
    assert m.pop_due(85) == []
    m._check()


def test_pop_due_at_the_edge_tick() -> None:
    m = MarginMonitor()
    m.update(1, 1, 451_807)  # a long is due when mark ≤ its tick
    m.update(2, -1, 547_762)  # a short when mark ≥ its tick
    assert m.pop_due(451_808) == []
    assert m.pop_due(451_807) == [1]
    assert m.pop_due(547_761) == []
    assert m.pop_due(547_762) == [2]


def test_check_detects_a_corrupted_index() -> None:
    m = MarginMonitor()
    m.update(1, 1, 100)
    m.long_heap.remove((-100, 1))
    with pytest.raises(AssertionError):
        m._check()
    m = MarginMonitor()
    m.update(1, -1, 100)
    m.keys[1] = (-1, 50, 1)  # held at a tick its side has no entry for
    with pytest.raises(AssertionError):
        m._check()
    m = MarginMonitor()
    for a in range(1, 5):
        m.update(a, -1, 100 - a)
    m.short_heap.reverse()  # no longer a heap
    with pytest.raises(AssertionError):
        m._check()


def test_stale_entries_never_resurface_and_are_compacted() -> None:
    m = MarginMonitor()
    # one account moved back and forth: its older entries go stale, one stays live
    for tick in (100, 120, 100, 90, 100):
        m.update(1, 1, tick)
    m.update(2, -1, 300)
    m.update(2, 1, 95)  # a flip: its short entry goes stale
    m._check()
    assert m.longs == [(95, 2), (100, 1)] and m.shorts == []
    assert m.quiet(101) and not m.quiet(100)
    assert m.pop_due(90) == [1, 2]
    assert m.pop_due(90) == [] and len(m) == 0 and m.quiet(1)
    # many moves of few positions: the heaps stay within a bound of the live ones
    for i in range(5_000):
        m.update(i % 3 + 1, 1 if i % 2 else -1, 1_000 + i)
    assert len(m.long_heap) + len(m.short_heap) <= 2 * (2 * len(m) + 64)
    m._check()
    assert m.due_scan(1) == [2, 3]  # the last moves: 2 and 3 long, 1 short
    assert m.pop_due(1) == [2, 3] and list(m.keys) == [1]


ops = st.lists(
    st.tuples(
        st.integers(1, 40),  # account
        st.integers(-3, 3),  # qty sign (0 = flat)
        st.integers(-5, 200),  # tick (≤ 0: not held)
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, marks=st.lists(st.integers(1, 200), min_size=1, max_size=8))
def test_pop_due_agrees_with_a_full_scan(ops: list[tuple[int, int, int]], marks: list[int]) -> None:
    m = MarginMonitor()
    model: dict[int, tuple[int, int]] = {}  # account -> (side, tick)
    for account, qty, tick in ops:
        m.update(account, qty, tick)
        if qty == 0 or tick <= 0:
            model.pop(account, None)
        else:
            model[account] = (1 if qty > 0 else -1, tick)
        m._check()
    for mark in marks:
        scan = m.due_scan(mark)
        # the reference, from the model alone
        longs = sorted((-t, a) for a, (sd, t) in model.items() if sd > 0 and t >= mark)
        shorts = sorted((t, a) for a, (sd, t) in model.items() if sd < 0 and t <= mark)
        assert scan == [a for _, a in longs] + [a for _, a in shorts]
        assert m.pop_due(mark) == scan
        for a in scan:
            del model[a]
        assert m.due_scan(mark) == []
        assert {a: (k[0], k[1]) for a, k in m.keys.items()} == model
        m._check()


def test_engine_keeps_every_position_in_the_monitor_at_its_liquidation_tick() -> None:
    s = Sim(accounts={a: FUNDS for a in range(1, 6)})
    for a, lev in ((1, 10), (2, 25), (3, 50), (4, 5)):
        s.leverage(a, lev)
    s.trade(buyer=1, seller=4, qty=BTC, price=px(50_000))
    s.trade(buyer=2, seller=4, qty=BTC // 2, price=px(50_500))
    s.trade(buyer=5, seller=3, qty=BTC // 4, price=px(49_800))
    s.adjust(1, usdt(700))
    mon = s.market_state.monitor
    assert len(mon) == 5
    for a in range(1, 6):
        side, tick, _ = mon.keys[a]
        assert side == (1 if s.qty(a) > 0 else -1)
        assert tick == s.pos(a).liquidation_price
    assert [a for _, a in mon.longs] == sorted(
        (a for a in range(1, 6) if s.qty(a) > 0), key=lambda a: (s.pos(a).liquidation_price, a)
    )
    # closing a position takes it out
    s.trade(buyer=4, seller=2, qty=BTC // 2, price=px(50_000))
    assert 2 not in mon.keys


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    mark=st.one_of(st.sampled_from((1, 400)), st.integers(1, 400)),  # 1, 400: all of a side
)
def test_a_crash_taking_out_more_than_bulk_agrees_with_a_full_scan(seed: int, mark: int) -> None:
    # past BULK due positions on a side `pop_due` takes the rest in one pass over the
    # heap: with stale entries and duplicates of re-indexed positions in it
    import random

    from exchange.core.monitor import BULK

    rng = random.Random(seed)
    m = MarginMonitor()
    for _ in range(10 * BULK):
        m.update(rng.randint(1, 4 * BULK), rng.choice((-2, -1, 1, 2)), rng.randint(0, 400))
    for _ in range(BULK):  # back and forth: duplicates of the same live entry
        a = rng.randint(1, 4 * BULK)
        if a in m.keys:
            side, tick, _ = m.keys[a]
            m.update(a, side, tick + 1)
            m.update(a, side, tick)
    m._check()
    scan = m.due_scan(mark)
    if mark in (1, 400):
        assert len(scan) > BULK  # the one-pass path is taken
    assert m.pop_due(mark) == scan
    assert m.due_scan(mark) == [] and m.pop_due(mark) == []
    assert not set(scan) & set(m.keys)
    m._check()
