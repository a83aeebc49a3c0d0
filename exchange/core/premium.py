"""The time-weighted book inputs of the `median` mark, and the band that clamps it.

Binance's USDⓈ-M mark is `median(price 1, price 2, last)` with
`price 1 = index × (1 + funding rate × time to funding / interval)` and
`price 2 = index + moving average of (mid − index)` over 5 minutes of per-second data
points. `MarkBasis` keeps both book-driven inputs as `TimeWeightedAverage`s, exactly, in
integers, with time as data:

* the book is sampled at every whole second of engine time (instants `s · 10⁹` ns); the
  sample at `s` sees the book and index after every command with `ts ≤ s · 10⁹`;
* a basis sample is `mid − index` clamped to `±band × index`, a premium sample the
  premium index clamped to `±band`; a one-sided or crossed book (or no index yet)
  contributes nothing: its basis sample is 0;
* a second in which nothing happened counts the value then standing (the last one
  seen): the book did not change, so a per-second sampler would have seen exactly that;
* an average at time `t` is the sum of the samples of the `window` whole seconds up to
  `t` divided by `window`, rounded down; seconds before the market existed count 0.

Only changes are recorded (`observe`), so a quiet market costs nothing per second.
"""

from __future__ import annotations

from .numbers import RATE_ONE, ceil_div

SAMPLE_NS = 10**9  # one data point per second


def basis_sample(index: int, best_bid: int | None, best_ask: int | None, band: int) -> int:
    """One data point: (best bid + best ask) // 2 − index, clamped to ±band·index, or 0
    for a one-sided or crossed book or without an index. O(1)."""
    if index <= 0 or best_bid is None or best_ask is None or best_bid >= best_ask:
        return 0
    b = (best_bid + best_ask) // 2 - index
    cap = index * band // RATE_ONE
    return cap if b > cap else -cap if b < -cap else b


def premium_sample(index: int, best_bid: int | None, best_ask: int | None, band: int) -> int:
    """The premium index of one funding sample, as a rate:
    (max(0, best bid − index) − max(0, index − best ask)) / index, each term rounded toward
    zero, the result clamped to ±band (a quote far off the index moves it at most that).
    An absent side contributes nothing. O(1)."""
    prem = 0
    if best_bid is not None and best_bid > index:
        prem += (best_bid - index) * RATE_ONE // index
    if best_ask is not None and best_ask < index:
        prem -= (index - best_ask) * RATE_ONE // index
    return band if prem > band else -band if prem < -band else prem


def clamp_to_band(price: int, index: int, band: int) -> int:
    """`price` held inside [index·(1 − band), index·(1 + band)], both edges rounded toward
    the index so the result never lies outside the band. O(1)."""
    lo = ceil_div(index * (RATE_ONE - band), RATE_ONE)
    hi = index * (RATE_ONE + band) // RATE_ONE
    return lo if price < lo else hi if price > hi else price


class TimeWeightedAverage:
    """Time-weighted moving average of a per-second step signal over a fixed window.

    State: the cumulative sum of samples through the last closed second, kept for the
    last `window + 1` closed seconds in a ring (so any window sum is one subtraction),
    and the open run: the second from which the current basis stands, and that basis.
    `observe` is O(1) when the basis or the second is unchanged, O(min(seconds since the
    last change, window)) otherwise; `average` is O(1).
    """

    __slots__ = ("window", "ring", "closed", "cum", "open_from", "open_basis")

    def __init__(self, window: int, now: int) -> None:
        self.window = window
        self.ring = [0] * (window + 1)  # cum through second x at ring[x % (window + 1)]
        self.open_from = -(-now // SAMPLE_NS)  # first second sampled with the open basis
        self.closed = self.open_from - 1  # last second whose sample is fixed
        self.cum = 0  # cumulative sum of samples through `closed`
        self.open_basis = 0

    def observe(self, now: int, value: int) -> None:
        """From engine time `now` on (until the next call), the signal is `value`."""
        basis = value
        if basis == self.open_basis:
            return
        start = -(-now // SAMPLE_NS)
        n = start - self.open_from
        if n > 0:  # close the seconds that saw the old basis
            b = self.open_basis
            size = self.window + 1
            ring = self.ring
            closed = self.closed
            cum = self.cum
            for x in range(max(closed + 1, start - size), start):
                ring[x % size] = cum + (x - closed) * b
            self.cum = cum + n * b
            self.closed = start - 1
            self.open_from = start
        self.open_basis = basis

    def _cum_at(self, x: int) -> int:
        return self.ring[x % (self.window + 1)]

    def total(self, now: int) -> int:
        """Sum of the samples of the `window` seconds up to `now`. O(1)."""
        w = self.window
        s = now // SAMPLE_NS
        k = s - self.open_from + 1  # seconds sampled with the open basis
        if k >= w:
            return w * self.open_basis
        if k <= 0:  # s == closed: the open basis is not sampled yet
            return self.cum - self._cum_at(self.closed - w)
        return self.cum - self._cum_at(s - w) + k * self.open_basis

    def average(self, now: int) -> int:
        """The moving average at `now`, rounded down. O(1)."""
        return self.total(now) // self.window

    def state(self) -> tuple[int, ...]:
        """A canonical rendering of what determines every future average."""
        w = self.window
        return (
            self.closed,
            self.cum,
            self.open_from,
            self.open_basis,
            *(self._cum_at(x) for x in range(self.closed - w, self.closed + 1)),
        )

    def _check(self) -> None:
        """Assert the internal invariants."""
        assert self.window > 0 and len(self.ring) == self.window + 1
        assert self.closed == self.open_from - 1, "closed and open runs must abut"
        assert self._cum_at(self.closed) == self.cum, "ring and cumulative sum disagree"


def funding_estimate(premium: int, interest: int, clamp: int) -> int:
    """The funding rate a premium gives: P + clamp(interest − P, ±clamp). O(1)."""
    return premium + max(-clamp, min(clamp, interest - premium))


class MarkBasis:
    """The two book-driven inputs of a `median` mark, each time-weighted over `window`
    seconds: the basis (mid − index, in ticks) and the premium index (a rate).
    `observe` costs what `TimeWeightedAverage.observe` costs, twice; the reads are O(1)."""

    __slots__ = ("basis", "premium")

    def __init__(self, window: int, now: int) -> None:
        self.basis = TimeWeightedAverage(window, now)
        self.premium = TimeWeightedAverage(window, now)

    def observe(
        self, now: int, index: int, best_bid: int | None, best_ask: int | None, band: int
    ) -> None:
        """The book and index stand at these values from `now` on (call after every change
        of either, before time moves on)."""
        self.basis.observe(now, basis_sample(index, best_bid, best_ask, band))
        prem = premium_sample(index, best_bid, best_ask, band) if index > 0 else 0
        self.premium.observe(now, prem)

    def key(self, now: int) -> tuple[int, int]:
        """What the mark reads at `now`: equal keys give equal marks (with equal prices)."""
        return self.basis.total(now), self.premium.total(now)

    def state(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.basis.state(), self.premium.state()

    def _check(self) -> None:
        self.basis._check()
        self.premium._check()
