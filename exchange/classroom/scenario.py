"""A round's scenario as a pure function of time into the round.

`IndexPath.price_at(t)` gives the index (a `Decimal`, in the quote asset) at `t`
engine nanoseconds into the round. Engine time runs `clock_speed` times faster than
the wall clock while the round runs and stands still while it is paused, so the same
`t` always gives the same price, whatever happened to the server in between: that is
what lets a round resume where it was after a crash.

* generated: a seeded geometric random walk on a grid of `step` wall seconds: each
  step multiplies the price by exp((μ − σ²/2)·dt + σ·√dt·z), z from
  `random.Random(seed).gauss`, μ = `drift` % and σ = `volatility` % per simulated
  hour. Precomputed once per round (≤ 288,000 points), so `price_at` is O(log n).
* file: a recorded file the replay readers read (klines' close, trades' price, a
  ticker's index or else mark); data time = the file's first timestamp + `file_offset`
  + t, so with `clock_speed = 60` a one-minute bar passes every wall second. With
  `start_price` the whole file is rescaled so it starts there.

On top of either, every shock multiplies the price by 1 + size·ramp, where ramp goes
linearly from 0 at `at` to 1 at `at + over` (a jump when `over` is 0). Shocks fired by
the instructor during the round are added the same way (`add_shock`), with their
start time, so they are replayed identically after a restart.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .gamefile import Round, Scenario

NS = 1_000_000_000
HOUR_NS = 3600 * NS


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LiveShock:
    at_ns: int  # engine ns into the round
    size: Decimal  # percent
    over_ns: int


def _recorded(path: Path, fmt: str | None, symbol: str) -> Iterator[tuple[int, float]]:
    import replay
    from replay.events import Kline, Ticker, Trade

    for ev in replay.read(path, fmt, symbol=symbol):
        if isinstance(ev, Kline):
            yield ev.exchange_ts, float(ev.close)
        elif isinstance(ev, Trade):
            yield ev.exchange_ts, float(ev.price)
        elif isinstance(ev, Ticker):
            p = ev.index_price if ev.index_price is not None else ev.mark_price
            if p is not None:
                yield ev.exchange_ts, float(p)


class IndexPath:
    """The index of one round; see the module docstring. Immutable but for `add_shock`."""

    def __init__(self, rnd: Round, start_price: Decimal, max_points: int = 300_000) -> None:
        sc: Scenario = rnd.scenario
        self.duration_ns = int(rnd.duration * rnd.clock_speed * NS)
        self.times: list[int] = []
        self.prices: list[float] = []
        if sc.source == "file":
            assert sc.file is not None
            t0: int | None = None
            scale = 1.0
            start = int(sc.file_offset * NS)
            for ts, p in _recorded(sc.file, sc.file_format, sc.symbol):
                if t0 is None:
                    t0 = ts + start
                    if sc.start_price is not None:
                        scale = float(sc.start_price) / p
                if ts < t0 and self.times:
                    self.prices[0] = p * scale
                    continue
                rel = max(0, ts - t0)
                if rel > self.duration_ns:
                    break
                if self.times and rel <= self.times[-1]:
                    self.prices[-1] = p * scale
                    continue
                self.times.append(rel)
                self.prices.append(p * scale)
                if len(self.times) >= max_points:
                    break
            if not self.times:
                raise ScenarioError(f"{sc.file}: no prices for {sc.symbol} in the round's span")
            self.times[0] = 0
        else:
            p0 = float(sc.start_price if sc.start_price is not None else start_price)
            step_ns = max(1, int(sc.step * rnd.clock_speed * NS))
            n = min(max_points, self.duration_ns // step_ns + 1)
            dt = step_ns / HOUR_NS
            mu = float(sc.drift) / 100
            sigma = float(sc.volatility) / 100
            drift = (mu - sigma * sigma / 2) * dt
            scale = sigma * math.sqrt(dt)
            rng = random.Random(sc.seed)
            logp = math.log(p0)
            for i in range(n):
                self.times.append(i * step_ns)
                self.prices.append(math.exp(logp))
                logp += drift + scale * rng.gauss(0.0, 1.0)
        self.shocks: list[LiveShock] = [
            LiveShock(int(s.at * rnd.clock_speed * NS), s.size, int(s.over * rnd.clock_speed * NS))
            for s in sc.shocks
        ]

    def add_shock(self, shock: LiveShock) -> None:
        self.shocks.append(shock)

    def base_at(self, t_ns: int) -> float:
        i = bisect_right(self.times, t_ns) - 1
        return self.prices[max(0, i)]

    def factor_at(self, t_ns: int) -> float:
        f = 1.0
        for s in self.shocks:
            if t_ns < s.at_ns:
                continue
            ramp = 1.0 if s.over_ns <= 0 else min(1.0, (t_ns - s.at_ns) / s.over_ns)
            f *= 1.0 + float(s.size) / 100 * ramp
        return f

    def price_at(self, t_ns: int) -> Decimal:
        """The index at `t_ns` into the round, to 8 decimals (rounded by the caller to
        the instrument's tick)."""
        return Decimal(repr(round(self.base_at(t_ns) * self.factor_at(t_ns), 8)))


def to_ticks(price: Decimal, tick_size: str) -> int:
    """A price in ticks, half-even, at least one tick."""
    return max(1, int((price / Decimal(tick_size)).to_integral_value()))
