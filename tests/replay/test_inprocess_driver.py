"""The in-process driver's short cuts give what the plain way gives: the bar walk built in
one pass makes the commands of the four index points; the synthetic book's remembered
levels are the levels."""

from __future__ import annotations

import random
from decimal import Decimal as D
from typing import Any

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from replay.convert import NEAREST
from replay.events import Kline
from replay.player import PlayerConfig, SyntheticBook
from replay.translator import Player

SYM = "BTCUSDT"
S = 10**9
T0 = 1_600_000_020


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
