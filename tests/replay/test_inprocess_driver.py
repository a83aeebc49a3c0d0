"""The in-process driver's short cuts give what the plain way gives: a strategy that really
awaits runs as one that does not; stream subscribers still get every event; the step's
rows give the same Decimals as their texts; the bar walk built in one pass makes the
commands of the four index points; the synthetic book's remembered levels are the levels."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from replay.backtest import SessionOptions
from replay.convert import NEAREST
from replay.events import Kline
from replay.inprocess import run_inprocess
from replay.player import PlayerConfig, SyntheticBook
from replay.strategy import Step, Strategy, TickRow
from replay.testdata import ohlcv_bars, write_text
from replay.translator import Player

SYM = "BTCUSDT"
S = 10**9
T0 = 1_600_000_020


class Flip(Strategy):
    """Buys on odd steps, sells on even ones, reading the step's prices; `pause` says how
    it waits before its order: not at all, a bare yield to the loop, or a future the loop
    resolves later. Fails at step 7 (after waiting), to check errors are kept alike."""

    def __init__(self, pause: str = "none") -> None:
        self.pause = pause
        self.seen: list[tuple[int, D | None, D | None]] = []

    async def on_start(self) -> None:
        await self.client.set_leverage(SYM, 10)

    async def _wait(self) -> None:
        if self.pause == "sleep":
            await asyncio.sleep(0)
        elif self.pause == "future":
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut

    async def on_step(self, step: Step) -> None:
        await self._wait()
        self.seen.append((step.step, step.mark(SYM), step.best_ask(SYM)))
        if step.step == 7:
            raise RuntimeError("boom")
        await self.client.place_order(SYM, "BUY" if step.step % 2 else "SELL", "0.010")
        await self._wait()


def _opts(f: Path, **kw: Any) -> SessionOptions:
    opts = SessionOptions(
        data=[str(f)], symbol=SYM, port=0, synthetic=SyntheticBook(), step_ns=60 * S,
        trades=True, progress=False,
    )  # fmt: skip
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def test_a_strategy_that_really_awaits_runs_as_one_that_does_not(tmp_path: Path) -> None:
    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(40, T0))
    runs = {}
    for pause in ("none", "sleep", "future"):
        strat = Flip(pause)
        run = asyncio.run(run_inprocess(_opts(f), strat, keep_events=True))
        runs[pause] = (run, strat.seen)
    plain, seen = runs["none"]
    assert plain.strategy is not None and plain.strategy.steps == 40
    assert plain.strategy.errors == ["step 7: RuntimeError: boom"]
    assert len(plain.recorder.fills) == 39  # each order fills against the synthetic book
    for pause in ("sleep", "future"):
        other, other_seen = runs[pause]
        assert other_seen == seen
        assert other.events == plain.events
        assert other.recorder.fills == plain.recorder.fills
        assert other.recorder.equity == plain.recorder.equity
        assert other.strategy.errors == plain.strategy.errors  # type: ignore[union-attr]
        assert other.state_hash == plain.state_hash


class Listen(Strategy):
    """Subscribes to the raw mark stream at step 3 and drains it at every step."""

    def __init__(self) -> None:
        self.got: list[tuple[int, dict[str, Any]]] = []
        self.closes: list[tuple[int, D | None]] = []

    async def on_step(self, step: Step) -> None:
        if step.step == 3:
            (self.stream,) = await self.client.subscribe(f"mark.{SYM}@raw")
        if step.step >= 3:
            while (m := self.stream.get_nowait()) is not None:
                self.got.append((step.step, m))
            self.closes.append((step.step, step.mark(SYM)))


def test_stream_subscribers_get_each_replayed_event_as_it_happens(tmp_path: Path) -> None:
    """Subscribing in a step turns on the delivery of each command's events from the
    next command on: every mark move after it, in order, each read at the step it
    happened in (the last one is the step's close)."""
    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(20, T0))
    strat = Listen()
    run = asyncio.run(run_inprocess(_opts(f), strat, keep_events=True))
    assert run.events is not None
    subscribed_at = T0 * S + 3 * 60 * S  # the close of step 3
    marks = [e for e in run.events if type(e) is E.MarkPriceChanged and e.ts >= subscribed_at]
    moves = [m for _, m in strat.got if m["seq"]]  # (seq 0: the subscription's snapshot)
    assert len(marks) > 30
    assert [(m["seq"], m["ts"], D(m["mark"])) for m in moves] == [
        (e.seq, e.ts, D(e.mark) / 10) for e in marks
    ]
    # the step reads its close's mark: the last move delivered by then
    for step, mark in strat.closes[1:]:
        last = [m for s, m in strat.got if s == step][-1]
        assert D(last["mark"]) == mark


def test_a_step_row_gives_the_decimals_of_its_texts() -> None:
    inst = next(i for i in load_instruments() if i.symbol == SYM)
    rng = random.Random(5)
    for _ in range(300):
        raw = tuple(rng.choice([0, rng.randint(1, 10**7)]) for _ in range(3))
        book = tuple(rng.choice([None, rng.randint(1, 10**7)]) for _ in range(2))
        row = TickRow(inst, raw + book)  # type: ignore[arg-type]
        plain = dict(row)  # what the lockstep's JSON row holds
        step = Step(1, 0, False, {SYM: row})  # type: ignore[dict-item]
        lock = Step(1, 0, False, {SYM: plain})
        for key, text in plain.items():
            assert row.decimal(key) == (None if text is None else D(text))
            if text is not None:  # the same value and the same exponent as the text's
                assert str(row.decimal(key)) == text
        for get in (Step.mark, Step.index, Step.last, Step.best_bid, Step.best_ask):
            a, b = get(step, SYM), get(lock, SYM)
            assert a == b and str(a) == str(b)
            assert get(step, "NOPE") is None
    assert row.decimal("nope") is None and row.get("nope", 1) == 1


# ---------------------------------------------------------------------- the bar walk


class FourPoints(Player):
    """The bar walk as four `_index` calls (the close alone re-centring the book): what
    `Player._kline` does in one pass."""

    def _kline(self, ev: Kline, s: Any, ts: int) -> Any:
        rank = self._kline_rank.get(ev.kind)
        if rank is None or not self.cfg.index or rank > s.rank:
            self._stats.ignored += 1
            return ()
        o, h, lo, c = (s.units.price(p, NEAREST) for p in (ev.open, ev.high, ev.low, ev.close))
        first, second = (lo, h) if c >= o else (h, lo)
        iv = ev.exchange_ts - ev.open_ts
        t0 = ts - iv
        out: list[C.Command] = []
        self._index(s, rank, o, t0, out, False)
        self._index(s, rank, first, t0 + iv // 3, out, False)
        self._index(s, rank, second, t0 + 2 * iv // 3, out, False)
        self._index(s, rank, c, ts - 1, out)
        return out


def _bars(rng: random.Random, n: int) -> list[Kline]:
    """Bars on a coarse grid (so opens, closes and extremes often coincide), now and then
    a bar of non-positive prices or a long bar crossing funding times; index bars at the
    end (from the first one on, they outrank the trade bars)."""
    out = []
    t = T0 * S
    p = 400_000
    for k in range(n):
        iv = rng.choice([60, 60, 60, 3600, 5 * 3600]) * S
        pts = [p] + [p + rng.choice([-20, -10, 0, 0, 10, 20]) for _ in range(3)]
        if rng.random() < 0.03:
            pts = [rng.choice([0, -10, 10]) for _ in range(4)]
        o, c = pts[0], pts[-1]
        hi, lo = max(pts), min(pts)
        kind = "index" if k > n * 0.9 and rng.random() < 0.5 else "trade"
        px = [D(x) / 10 for x in (o, hi, lo, c)]
        out.append(Kline(t + iv, t + iv, SYM, kind, t, *px, D(1), "x"))  # type: ignore[arg-type]
        t += iv
        p = c if c > 0 else 400_000
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_bar_walk_in_one_pass_makes_the_four_points_commands(seed: int) -> None:
    bars = _bars(random.Random(seed), 600)
    cfg = PlayerConfig(synthetic=SyntheticBook())
    fast = Player(Exchange(load_instruments()), cfg)
    slow = FourPoints(Exchange(load_instruments()), cfg)
    for bar in bars:
        assert list(fast.translate(bar)) == list(slow.translate(bar))
    assert fast.stats.as_dict() == slow.stats.as_dict()
    assert fast.stats.index_updates > 1000 and fast.stats.ignored > 10
    a, b = fast.symbol(SYM), slow.symbol(SYM)
    assert a is not None and b is not None
    assert (a.index, a.quoted, a.rank) == (b.index, b.quoted, b.rank)


# ---------------------------------------------------------------------- synthetic book


def test_remembered_synthetic_levels_are_the_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    import replay.mirror as mirror

    monkeypatch.setattr(mirror, "_QUOTES_MAX", 50)
    cfg = PlayerConfig(synthetic=SyntheticBook(levels=4, spread_ppm=30, step_ppm=10))
    rng = random.Random(2)
    indexes = [rng.randint(1, 400) for _ in range(2000)]  # tiny prices: clamped levels too
    indexes += [rng.randint(390_000, 390_120) for _ in range(2000)]
    p = Player(Exchange(load_instruments()), cfg)
    s = p.symbol(SYM)
    assert s is not None
    for i, index in enumerate(indexes):
        out: list[C.Command] = []
        before = p.stats.levels_placed
        s.mirror.synthetic(index, i, out)
        fresh = Player(Exchange(load_instruments()), cfg).symbol(SYM)
        assert fresh is not None
        want: list[C.Command] = []
        fresh.mirror.synthetic(index, i, want)
        assert out == want
        (cmd,) = out
        assert isinstance(cmd, C.ReplaceBook)
        assert p.stats.levels_placed - before == len(cmd.bids) + len(cmd.asks)
        assert len(s.mirror.quotes) <= 50


@pytest.mark.parametrize("step_ns", [1, 7, 60])
def test_a_step_opened_ends_where_crosses_says_a_new_one_starts(step_ns: int) -> None:
    """`Stepper.open`'s one comparison (what the in-process driver uses) agrees with
    `crosses` (the lockstep's) and `end` at every time, step sizes 1 ns and up."""
    from replay.player import Stepper

    times = [0, 1, 2, 5, 6, 7, 8, 13, 14, 59, 60, 61, 119, 120, 200]
    a, b = Stepper(step_ns), Stepper(step_ns)
    after = -(1 << 63)
    for ts in times:
        new_step = b.crosses(ts)  # (the very first time opens the first step: False)
        if new_step:
            b.bucket = ts // step_ns
        opened = ts >= after
        assert opened == (new_step or ts == times[0])
        if opened:
            after = a.open(ts)
        assert a.bucket == b.bucket and a.end() == b.end() >= ts
