"""The liquidation-price ladder equals a naive recomputation from the positions,
through any sequence of monitor changes and through a whole liquidation cascade."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core.engine import FUND
from exchange.core.ladder import DECADES, LadderBucket, LadderView, LiquidationLadder, auto_exponent
from exchange.core.monitor import MarginMonitor

SYM = "BTCUSDT"
USDT = 10**8


def naive(
    positions: dict[int, tuple[int, int]], symbol: str, mark: int, buckets: int, k: int | None
) -> LadderView:
    """The ladder recomputed by scanning every (qty, liq tick) position."""
    k = auto_exponent(mark) if k is None else k
    w = 10**k
    longs, shorts = [], []
    if mark > 0:
        for side, first, step, out in ((1, (mark - 1) // w, -1, longs), (-1, mark // w, 1, shorts)):
            for i in range(buckets):
                b = first + step * i
                if b < 0:
                    break
                inside = [
                    abs(q)
                    for q, t in positions.values()
                    if q * side > 0 and b * w <= t < (b + 1) * w
                ]
                out.append(LadderBucket(b * w, (b + 1) * w, sum(inside), len(inside)))
    lq = [q for q, _ in positions.values() if q > 0]
    sq = [-q for q, _ in positions.values() if q < 0]
    return LadderView(symbol, mark, w, tuple(longs), tuple(shorts), sum(lq), len(lq), sum(sq), len(sq))  # fmt: skip


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("update"),
            st.integers(1, 30),
            st.integers(-50, 50),
            st.integers(-5, 3000),
        ),
        st.tuples(st.just("pop"), st.integers(1, 3000), st.just(0), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 3000), st.integers(1, 12), st.one_of(st.none(), st.integers(0, 4)))
def test_the_ladder_follows_the_monitor(
    steps: list[tuple[str, int, int, int]], mark: int, buckets: int, k: int | None
) -> None:
    mon = MarginMonitor()
    mon.ladder = LiquidationLadder()
    model: dict[int, tuple[int, int]] = {}
    for op, a, qty, tick in steps:
        if op == "update":
            mon.update(a, qty, tick)
            if qty and tick > 0:
                model[a] = (qty, tick)
            else:
                model.pop(a, None)
        else:
            for due in mon.pop_due(a):
                del model[due]
        mon._check()
    assert mon.ladder is not None
    assert mon.ladder.view(SYM, mark, buckets, k) == naive(model, SYM, mark, buckets, k)


def test_auto_exponent_keeps_buckets_between_005_and_05_percent_of_the_mark() -> None:
    for mark in (200, 201, 1999, 2000, 2001, 500_000, 300_000, 12_345_678, 10**12):
        w = 10 ** auto_exponent(mark)
        assert w * 200 <= mark or w == 1
        assert mark < w * 2000 or auto_exponent(mark) == DECADES - 1
    assert auto_exponent(1) == 0 and auto_exponent(0) == 0


def test_bad_view_arguments_are_refused() -> None:
    mon = MarginMonitor()
    lad = LiquidationLadder()
    for buckets, k in ((0, None), (101, None), (5, -1), (5, DECADES)):
        with pytest.raises(ValueError):
            lad.view(SYM, 1000, buckets, k)
    assert len(mon) == 0


def exchange_positions(ex: Exchange) -> dict[int, tuple[int, int]]:
    """What the monitor should hold: open positions with a liquidation tick, not queued."""
    out = {}
    for a, acct in ex.accounts.items():
        seat = acct.seats.get(SYM)
        if a != FUND and seat is not None and seat.qty and seat.liq > 0 and not seat.liquidating:
            out[a] = (seat.qty, seat.liq)
    return out


def test_the_ladder_equals_a_recomputation_through_a_cascade() -> None:
    btc = next(i for i in load_instruments() if i.symbol == SYM)
    early = Exchange([replace(btc, mark_method="median", max_open_orders=1000)])
    late = Exchange([replace(btc, mark_method="median", max_open_orders=1000)])
    early.liquidation_ladder(SYM)  # aggregates from the first command on
    ts = 0
    start = 300_000

    def do(cmd: C.Command) -> None:
        nonlocal ts
        ts += 1_000_000
        for ex in (early, late):
            ex.handle(replace(cmd, ts=ts))
        mark = early.markets[SYM].mark
        assert early.liquidation_ladder(SYM, 30) == naive(
            exchange_positions(early), SYM, mark, 30, None
        )

    def quote(center: int, size: int) -> None:
        do(C.CancelAllOrders(account=1, symbol=SYM))
        for k in range(1, 21):
            step = center * 5 * k // 10_000
            do(C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=size, price=center - step))
            do(C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=size, price=center + step))

    do(C.CreateAccount(account=1))
    do(C.Deposit(account=1, asset="USDT", amount=10**9 * USDT))
    do(C.SetLeverage(account=1, symbol=SYM, leverage=2))
    do(C.SetIndexPrice(symbol=SYM, price=start))
    quote(start, 400)
    for i, a in enumerate(range(100, 220)):
        do(C.CreateAccount(account=a))
        do(C.Deposit(account=a, asset="USDT", amount=1_000 * USDT))
        do(C.SetLeverage(account=a, symbol=SYM, leverage=2 + i * 48 // 119))
        side = "BUY" if i % 3 else "SELL"
        px = start * 1002 // 1000 if side == "BUY" else start * 998 // 1000
        do(C.PlaceOrder(account=a, symbol=SYM, side=side, qty=1 + i % 20, price=px, time_in_force="IOC"))  # fmt: skip
        if i % 40 == 39:
            quote(early.markets[SYM].index, 400)
    view = early.liquidation_ladder(SYM, 30)
    assert view.long_positions > 50 and view.short_positions > 20
    assert any(b.positions for b in view.longs) and any(b.positions for b in view.shorts)
    for k in range(1, 12):
        idx = start - start * 2 * k // 100
        do(C.SetIndexPrice(symbol=SYM, price=idx))
        quote(idx, 30)
    after = early.liquidation_ladder(SYM, 30)
    assert after.long_positions < view.long_positions  # the crash took longs out
    # built late from the monitor, the same answer
    assert late.liquidation_ladder(SYM, 30) == after
    for k in range(DECADES):
        assert late.liquidation_ladder(SYM, 5, k) == early.liquidation_ladder(SYM, 5, k)
    early._check()
    assert early.state_hash() == late.state_hash()  # watching changes nothing


def test_snapshots_leave_the_ladder_out_and_rebuild_it_on_ask() -> None:
    import pickle

    mon = MarginMonitor()
    mon.ladder = LiquidationLadder()
    mon.update(7, 5, 1234)
    copy = pickle.loads(pickle.dumps(mon))
    assert copy.ladder is None and copy.keys == mon.keys
    copy.update(8, -3, 2000)  # a monitor nobody watches pays nothing for the ladder
    copy._check()
