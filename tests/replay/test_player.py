"""The replay player: index walks, rounding, the book mirror rule, taker flow, funding times,
direct and runtime drivers agreeing, the real samples."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal as D
from pathlib import Path

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.runtime import Runtime
from replay import BookLevel, BookUpdate, Kline, Ticker, Trade, read, read_merged
from replay.convert import DOWN, NEAREST, UP, Units
from replay.player import (
    REPLAY_ACCOUNT,
    Pacing,
    PlayerConfig,
    SyntheticBook,
    play,
    play_async,
)
from replay.testdata import ohlcv_bars, write_tardis_session, write_text
from tests.replay.helpers import REAL_DATA

SYM = "BTCUSDT"
USDT = 10**8
T0 = 1_600_000_000 * 10**9  # 2020-09-13 12:26:40 UTC
S = 10**9


def exchange(**changes: object) -> Exchange:
    insts = [
        dataclasses.replace(i, max_open_orders=2000, **changes)  # type: ignore[arg-type]
        for i in load_instruments()
    ]
    return Exchange(insts)


class Sink:
    def __init__(self) -> None:
        self.events: list[E.Event] = []

    def __call__(self, batch: list[E.Event]) -> None:
        self.events.extend(batch)

    def of(self, cls: type) -> list:
        return [e for e in self.events if type(e) is cls]


def user(ex: Exchange, account: int = 1, usdt: int = 1_000_000) -> int:
    ex.handle(C.CreateAccount(account=account))
    ex.handle(C.Deposit(account=account, asset="USDT", amount=usdt * USDT))
    return account


def book(ts: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], snap: bool = False):
    return BookUpdate(
        ts,
        ts,
        SYM,
        snap,
        tuple(BookLevel(D(p), D(a)) for p, a in bids),
        tuple(BookLevel(D(p), D(a)) for p, a in asks),
        None,
        "binance-futures",
    )


def ticker(ts: int, index: str) -> Ticker:
    return Ticker(ts, ts, SYM, D(index), D(index), None, None, None, None, None, "x")


def trade(ts: int, price: str, amount: str, side: str) -> Trade:
    return Trade(ts, ts, SYM, D(price), D(amount), side, "1", "x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- rounding


def test_units_round_in_the_documented_direction() -> None:
    u = Units(load_instruments()[0])  # BTCUSDT: tick 0.10, step 0.001
    assert u.price(D("11657.07"), DOWN) == 116570
    assert u.price(D("11657.07"), UP) == 116571
    assert u.price(D("11657.05"), NEAREST) == 116570  # ties to even
    assert u.price(D("11657.15"), NEAREST) == 116572
    assert u.down(D("11657.07")) == 116570 and u.up(D("11657.07")) == 116571
    assert u.price(D("50000"), NEAREST) == 500000
    assert u.lots(D("1.2349")) == 1234  # amounts always down
    assert u.lots(D("0.0009")) == 0


# ---------------------------------------------------------------------- index


def test_ohlcv_bars_walk_open_low_high_close_or_open_high_low_close(tmp_path: Path) -> None:
    f = tmp_path / "btc_1m.csv"
    f.write_text(
        "timestamp,open,high,low,close,volume\n"
        f"{T0 // S},40000,40100,39900,40050,1\n"  # up bar: open → low → high → close
        f"{T0 // S + 60},40050,40200,39800,39850,1\n"  # down bar: open → high → low → close
    )
    ex = exchange(mark_method="index")
    sink = Sink()
    play(ex, read(f, symbol=SYM), sink=sink)
    got = [(e.ts - T0, e.index) for e in sink.of(E.IndexPriceChanged)]
    m = 60 * S
    assert got == [
        (0, 400000),
        (m // 3, 399000),
        (2 * m // 3, 401000),
        (m - 1, 400500),
        # the second bar opens where the first closed: an unchanged index is not re-sent
        (m + m // 3, 402000),
        (m + 2 * m // 3, 398000),
        (2 * m - 1, 398500),
    ]
    assert [e.mark for e in sink.of(E.MarkPriceChanged)] == [i for _, i in got]


def test_best_ranked_index_source_wins() -> None:
    ex = exchange(mark_method="index")
    bar = Kline(T0 + 60 * S, T0 + 60 * S, SYM, "trade", T0, D(1), D(2), D(1), D(2), D(0), "x")
    sink = Sink()
    evs = [
        trade(T0, "40000", "1", "buy"),
        ticker(T0 + S, "41000"),
        bar,
        trade(T0 + 70 * S, "1", "1", "buy"),
    ]
    p = play(ex, evs, sink=sink)
    # the trade priced the index until a ticker came; then the bar and trades were ignored
    assert [e.index for e in sink.of(E.IndexPriceChanged)] == [400000, 410000]
    assert p.stats.ignored == 1


def test_reference_mark_uses_the_recorded_mark() -> None:
    ex = exchange(mark_method="index")
    t = Ticker(T0, T0, SYM, D("40010"), D("40000"), None, None, None, None, None, "x")
    play(ex, [t], PlayerConfig(reference="mark"))
    assert ex.market_view(SYM).mark == 400100


def test_funding_boundaries_are_replayed_at_their_time() -> None:
    ex = exchange()
    h8 = 8 * 3600 * S
    start = (T0 // h8 + 1) * h8 - 10 * S
    sink = Sink()
    p = play(ex, [ticker(start, "40000")], sink=sink)
    a, b = user(ex, 1), user(ex, 2)  # funding settles only where positions are open
    ex.handle(C.PlaceOrder(ts=start, account=a, symbol=SYM, side="BUY", qty=10, price=400000))
    ex.handle(C.PlaceOrder(ts=start, account=b, symbol=SYM, side="SELL", qty=10, type="MARKET"))
    cmds = p.translate(ticker(start + 20 * S, "40001"))
    assert [type(c).__name__ for c in cmds] == ["AdvanceClock", "SetIndexPrice"]
    for cmd in cmds:
        sink(ex.handle(cmd))
    settled = sink.of(E.FundingSettled)
    assert len(settled) == 1 and settled[0].funding_ts == start + 10 * S
    assert settled[0].ts == start + 10 * S  # the clock was advanced to the boundary itself


# ---------------------------------------------------------------------- the book mirror


def mirrored(ex: Exchange) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return ex.depth(SYM)


def test_book_levels_are_mirrored_rounded_outward_and_aggregated() -> None:
    ex = exchange()
    evs = [
        ticker(T0, "40000"),
        book(
            T0,
            [("40000.05", "1"), ("40000.01", "0.5"), ("39999.9", "0.0005")],
            [("40000.15", "2"), ("40000.2", "3")],
            snap=True,
        ),
    ]
    play(ex, evs)
    bids, asks = mirrored(ex)
    assert bids == [(400000, 1500)]  # 40000.05 and .01 → 40000.0; 0.0005 is under a lot
    assert asks == [(400002, 5000)]  # 40000.15 → 40000.2 (up), added to 40000.2
    assert all(o.account == REPLAY_ACCOUNT for side in ex.l3(SYM) for o in side)


def test_fills_consume_a_level_until_the_recording_updates_it() -> None:
    ex = exchange()
    me = user(ex)
    evs = [
        ticker(T0, "40000"),
        book(T0, [("39999.9", "2")], [("40000.1", "2"), ("40000.2", "1")], True),
    ]
    p = play(ex, evs, setup=True)
    ex.handle(C.PlaceOrder(ts=T0, account=me, symbol=SYM, side="BUY", qty=1500, type="MARKET"))
    assert mirrored(ex)[1][0] == (400001, 500)
    # an update of another level does not refill it
    for cmd in p.translate(book(T0 + S, [], [("40000.2", "1.5")])):
        ex.handle(cmd)
    assert mirrored(ex)[1] == [(400001, 500), (400002, 1500)]
    # the recording updates the level: it is set to the recorded amount again
    for cmd in p.translate(book(T0 + 2 * S, [], [("40000.1", "2")])):
        ex.handle(cmd)
    assert mirrored(ex)[1][0] == (400001, 2000)
    ex._check()


def test_decrease_keeps_queue_place_increase_loses_it() -> None:
    ex = exchange()
    me = user(ex)
    p = play(ex, [ticker(T0, "40000"), book(T0, [], [("40000.1", "2")], True)])
    ex.handle(C.PlaceOrder(ts=T0, account=me, symbol=SYM, side="SELL", qty=100, price=400001))
    for cmd in p.translate(book(T0 + S, [], [("40000.1", "1")])):
        ex.handle(cmd)
    assert [o.account for o in ex.l3(SYM)[1]] == [REPLAY_ACCOUNT, me]
    for cmd in p.translate(book(T0 + 2 * S, [], [("40000.1", "3")])):
        ex.handle(cmd)
    assert [o.account for o in ex.l3(SYM)[1]] == [me, REPLAY_ACCOUNT]
    assert mirrored(ex)[1] == [(400001, 3100)]


def test_snapshot_replaces_the_book_and_stale_crossing_levels_are_cancelled() -> None:
    ex = exchange()
    sink = Sink()
    p = play(
        ex, [ticker(T0, "40000"), book(T0, [("39999", "1")], [("40001", "1")], True)], sink=sink
    )
    # an update bids where a stale ask still rests: the stale ask goes first, no self-trade
    for cmd in p.translate(book(T0 + S, [("40002", "1")], [])):
        sink(ex.handle(cmd))
    assert not sink.of(E.OrderFilled)
    assert mirrored(ex) == ([(400020, 1000), (399990, 1000)], [])
    assert p.stats.levels_uncrossed == 1
    for cmd in p.translate(book(T0 + 2 * S, [("39990", "2")], [("40010", "1")], True)):
        sink(ex.handle(cmd))
    assert mirrored(ex) == ([(399900, 2000)], [(400100, 1000)])
    ex._check()


def test_levels_outside_the_band_or_too_small_are_not_mirrored() -> None:
    ex = exchange()
    sink = Sink()
    evs = [
        ticker(T0, "40000"),
        book(T0, [("30000", "1"), ("39999", "0.0001")], [("40001", "1"), ("50000", "1")], True),
    ]
    p = play(ex, evs, sink=sink)
    assert mirrored(ex) == ([], [(400010, 1000)])
    assert p.stats.levels_out_of_band == 2
    assert not sink.of(E.OrderRejected)


def test_quotes_mirror_a_one_level_book() -> None:
    from replay import Quote

    ex = exchange()
    q = Quote(T0, T0, SYM, D("39999"), D("1"), D("40001"), D("2"), "x")
    play(ex, [ticker(T0, "40000"), q])
    assert mirrored(ex) == ([(399990, 1000)], [(400010, 2000)])


def test_synthetic_book_quotes_around_the_index() -> None:
    ex = exchange(mark_method="index")
    play(
        ex,
        [ticker(T0, "40000"), ticker(T0 + S, "40100")],
        PlayerConfig(synthetic=SyntheticBook(2, 200, 500, D("1"))),
    )
    bids, asks = mirrored(ex)
    assert bids == [(400959, 1000), (400759, 1000)]  # 401000 × (1 − 0.0001), × (1 − 0.0006)
    assert asks == [(401041, 1000), (401241, 1000)]
    assert len(ex.open_orders(REPLAY_ACCOUNT, SYM)) == 4


# ---------------------------------------------------------------------- taker flow


def test_recorded_trades_as_taker_flow_fill_resting_users() -> None:
    ex = exchange()
    me = user(ex)
    p = play(ex, [ticker(T0, "40000")], PlayerConfig(trades=True))
    ex.handle(C.PlaceOrder(ts=T0, account=me, symbol=SYM, side="BUY", qty=500, price=399990))
    sink = Sink()
    for ev in (
        trade(T0 + S, "39999.5", "1", "sell"),  # sells at 39999.5 → limit 40000.0 (up): no
        trade(T0 + 2 * S, "39999", "0.2", "sell"),  # takes 0.2 of the user's bid
        trade(T0 + 3 * S, "39998", "1", "sell"),  # takes the rest (0.3)
        trade(T0 + 4 * S, "39998", "1", "buy"),  # no ask: nothing to take
    ):
        for cmd in p.translate(ev):
            sink(ex.handle(cmd))
    fills = sink.of(E.OrderFilled)
    assert [(f.price, f.qty, f.maker_account) for f in fills] == [
        (399990, 200, me),
        (399990, 300, me),
    ]
    assert p.stats.taker_orders == 2 and p.stats.taker_skipped == 2
    ex._check()


# ---------------------------------------------------------------------- drivers


def _session_hash(
    paths: list[Path], *, runtime: bool, step_ns: int | None = None
) -> tuple[str, dict]:
    ex = exchange()
    cfg = PlayerConfig(trades=True)
    if not runtime:
        p = play(ex, read_merged(paths), cfg, step_ns=step_ns)
        return ex.state_hash(), p.stats.as_dict()

    async def main() -> dict:
        rt = Runtime(ex, clock="stepped")
        async with rt:
            p = await play_async(
                rt, read_merged(paths), cfg, pacing=Pacing(None), step_ns=step_ns or 1
            )
        return p.stats.as_dict()

    stats = asyncio.run(main())
    return ex.state_hash(), stats


def test_direct_and_runtime_drivers_replay_the_same_history(tmp_path: Path) -> None:
    paths = write_tardis_session(tmp_path, seconds=8)
    h_direct, s_direct = _session_hash(paths, runtime=False, step_ns=S)
    h_runtime, s_runtime = _session_hash(paths, runtime=True, step_ns=S)
    assert s_direct["levels_placed"] > 20 and s_direct["taker_orders"] > 10
    assert s_direct == s_runtime
    assert h_direct == h_runtime


def test_real_time_pacing_follows_replay_time(tmp_path: Path) -> None:
    import time

    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(3, T0 // S))
    ex = exchange(mark_method="index")

    async def main() -> float:
        async with Runtime(ex, clock="stepped") as rt:
            t = time.monotonic()
            await play_async(rt, read(f, symbol=SYM), pacing=Pacing(speed=600.0))
            return time.monotonic() - t

    took = asyncio.run(main())
    # 3 bars = 180 s of replay time, minus the first walk point's offset, at 600×: ~0.3 s
    assert 0.25 <= took < 1.5
    # tick steps: the last one closes at the last bar's last nanosecond (its close)
    assert ex.now == T0 + 180 * S - 1


@pytest.mark.skipif(not REAL_DATA.exists(), reason="../shared/data/real is absent")
def test_real_book_snapshots_and_l2_are_mirrored_without_rejections() -> None:
    for name, sym in (
        ("binance-futures_book_snapshot_25_BTCUSDT.csv", None),
        ("deribit_incremental_book_L2_BTC-PERPETUAL.csv", SYM),
        ("btcusdt-depth-snap.csv", None),
    ):
        path = REAL_DATA / name
        if not path.exists():
            continue
        ex = exchange()
        sink = Sink()
        evs = list(read(path))
        first = evs[0]
        levels = first.bids + first.asks  # type: ignore[attr-defined]
        mid = sorted(lv.price for lv in levels)[len(levels) // 2]
        seed = Ticker(
            first.exchange_ts,
            first.local_ts,
            first.symbol,
            mid,
            mid,
            None,
            None,
            None,
            None,
            None,
            "x",
        )
        p = play(ex, [seed, *evs], PlayerConfig(default_symbol=sym), sink=sink)
        assert not sink.of(E.OrderRejected), name
        assert not sink.of(E.OrderFilled), name  # a recorded book never trades with itself
        bids, asks = ex.depth(SYM)
        assert bids or asks, name
        assert not (bids and asks) or bids[0][0] < asks[0][0], name
        assert p.stats.levels_placed > 0
        ex._check()


def test_recorded_funding_rates_are_imposed_at_their_funding_time() -> None:
    """A Binance fundingRate record sets the rate the core settles at that funding time."""
    from decimal import Decimal as D

    from exchange.config import load_instruments
    from exchange.core import Exchange
    from exchange.core import events as CE
    from replay.events import FundingRate as FR
    from replay.events import Kline as K
    from replay.player import PlayerConfig, play

    iv = 8 * 3600 * 10**9
    t0 = 10 * iv
    bars = [
        K(t0 + k * 60 * 10**9, t0 + k * 60 * 10**9, "BTCUSDT", "index", t0 + (k - 1) * 60 * 10**9,
          D("30000"), D("30000"), D("30000"), D("30000"), D("1"), "x")
        for k in range(1, 3)
    ]  # fmt: skip
    events = [*bars, FR(t0 + iv, t0 + iv, "BTCUSDT", D("0.00037"), 8, "binance-futures")]
    events.append(K(t0 + iv + 60 * 10**9, t0 + iv + 60 * 10**9, "BTCUSDT", "index", t0 + iv,
                    D("30100"), D("30100"), D("30100"), D("30100"), D("1"), "x"))  # fmt: skip
    from exchange.core import commands as CC

    ex = Exchange(load_instruments())
    for a in (1, 2):  # a position on each side, so that funding is paid
        ex.handle(CC.CreateAccount(ts=t0, account=a))
        ex.handle(CC.Deposit(ts=t0, account=a, asset="USDT", amount=10**12))
    ex.handle(CC.SetIndexPrice(ts=t0, symbol="BTCUSDT", price=300_000))
    ex.handle(CC.PlaceOrder(ts=t0, account=1, symbol="BTCUSDT", side="SELL", qty=10, price=300_000))
    ex.handle(CC.PlaceOrder(ts=t0, account=2, symbol="BTCUSDT", side="BUY", qty=10, type="MARKET"))
    seen: list = []  # type: ignore[type-arg]
    play(ex, events, PlayerConfig(), sink=seen.extend)
    settled = [e for e in seen if isinstance(e, CE.FundingSettled) and e.symbol == "BTCUSDT"]
    imposed = [e for e in seen if isinstance(e, CE.FundingRateSet)]
    assert [e.rate for e in imposed] == [37_000]
    assert any(e.funding_ts == t0 + iv and e.rate == 37_000 for e in settled), settled


class _QueuedOnly(Runtime):
    """A runtime that never applies in place: every command goes through the queue."""

    def handle_now(self, cmds: object) -> bool:  # type: ignore[override]
        return False


def _through_runtime(paths: list[Path], cls: type[Runtime], rival: bool = False) -> tuple:
    ex = exchange()
    cfg = PlayerConfig(trades=True)
    seen: list[E.Event] = []
    samples: list[tuple[int, int]] = []

    async def main() -> dict:
        rt = cls(ex, clock="stepped")
        async with rt:
            sub = rt.subscribe("all", maxsize=10**6, policy="close")

            async def consume() -> None:
                async for batch in sub:
                    seen.extend(batch)

            task = asyncio.create_task(consume())
            other = None
            if rival:  # another submitter meanwhile: a user's account and deposits

                async def user() -> None:
                    await rt.submit(C.CreateAccount(account=900))
                    for _ in range(50):
                        await rt.submit(C.Deposit(account=900, asset="USDT", amount=1))
                        await asyncio.sleep(0)

                other = asyncio.create_task(user())
            p = await play_async(
                rt,
                read_merged(paths),
                cfg,
                step_ns=S,
                on_step=lambda step, ts: samples.append((ex.seq, len(seen))),
                yield_every=97,
            )
            if other is not None:
                await other
        await task
        return p.stats.as_dict()

    stats = asyncio.run(main())
    return ex.state_hash(), stats, seen, samples


def test_in_place_and_queued_runtime_paths_replay_the_same_events(tmp_path: Path) -> None:
    """Applying each event's commands in place (nobody else submits) gives the events,
    state and statistics of submitting every command through the queue; each step's
    sample comes after its events reached the subscribers."""
    paths = write_tardis_session(tmp_path, seconds=8)
    h_now, s_now, ev_now, samples = _through_runtime(paths, Runtime)
    h_q, s_q, ev_q, _ = _through_runtime(paths, _QueuedOnly)
    assert s_now["taker_orders"] > 10 and len(ev_now) > 100
    assert (h_now, s_now) == (h_q, s_q)
    assert ev_now == ev_q
    assert [e.seq for e in ev_now] == list(range(1, len(ev_now) + 1))
    assert len(samples) >= 8 and all(seq == consumed for seq, consumed in samples)
    direct, _ = _session_hash(paths, runtime=False, step_ns=S)
    assert h_now == direct


def test_another_submitter_keeps_its_place_in_the_event_order(tmp_path: Path) -> None:
    """With a user submitting while the replay runs, every subscriber still sees every
    event once, in the core's order."""
    paths = write_tardis_session(tmp_path, seconds=8)
    _, stats, seen, _ = _through_runtime(paths, Runtime, rival=True)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert sum(1 for e in seen if isinstance(e, E.FundsDeposited) and e.account == 900) == 50
    assert stats["taker_orders"] > 10
