"""Mark and index prices, premium sampling and the funding rate.

The index comes in by command (`SetIndexPrice`); each index update samples the premium
index (the best bid above or best ask below the index, as a rate, clamped to the
instrument's `mark_band`) for the funding rate. The mark is computed per instrument by
its method:

* `index`: the index;
* `last`: the last trade price (the index until there is one);
* `mid`: the book's mid price (else last, else index);
* `median`: the median of index × (1 + funding rate × time to funding / interval),
  index + the time-weighted average of the mid − index basis over `basis_window`
  per-second samples, and last, clamped to ±`mark_band` of the index. Its funding term
  reads the premium time-weighted the same way (an imposed rate as it is); both inputs
  live in `Market.basis` (`premium.MarkBasis`).

Interface (what the rest of the exchange uses): `_set_index(cmd)` and
`_set_funding_rate(cmd)` handle their commands; `_observe_basis(m)` tells a median
market's time-weighted inputs what the book and index now stand at (after every change
of either); `_update_mark(m) -> bool` recomputes
the mark and emits `MarkPriceChanged` when it moved; it is cheap when nothing it
depends on changed (`Market.mark_key`). State (on `Market`): `index`, `mark`,
`mark_key`, `premium_sum`, `premium_n`, `basis`, `funding_rate`, `funding_override`.
"""

from __future__ import annotations

from . import commands as C
from . import events as E
from .errors import Code
from .numbers import RATE_ONE, rate_text, ticks_text
from .premium import clamp_to_band, funding_estimate, premium_sample
from .room import Room
from .state import Market


class MarkPrices(Room):
    """The index, the mark and the premium samples the funding rate comes from."""

    def _set_index(self, cmd: C.SetIndexPrice) -> None:
        m = self._market(cmd.symbol)
        price = cmd.price
        if type(price) is not int or not 1 <= price <= m.inst.max_price:
            tick = m.inst.tick_size
            self._int(
                price, "price", 1, m.inst.max_price, Code.PRICE_LESS_THAN_ZERO,
                unit=lambda t: ticks_text(t, tick),
            )  # fmt: skip
        m.index = price
        self._sample_premium(m)
        self.seq = seq = self.seq + 1  # `_emit`, inline: a replay sends millions of these
        self._out.append(E.IndexPriceChanged.new(seq, self.now, m.inst.symbol, price))
        self._react(m)

    def _set_funding_rate(self, cmd: C.SetFundingRate) -> None:
        m = self._market(cmd.symbol)
        rate = self._int(cmd.rate, "rate", -RATE_ONE // 10, RATE_ONE // 10, unit=rate_text)
        m.funding_override = m.funding_rate = rate
        self._emit(E.FundingRateSet, m.inst.symbol, rate, m.next_funding_ts)
        self._react(m)

    def _sample_premium(self, m: Market) -> None:
        """Sample the premium index (clamped to the mark band) at an index update and
        re-estimate the funding rate from the interval's samples."""
        inst = m.inst
        prem = premium_sample(m.index, m.book.best_bid(), m.book.best_ask(), inst.mark_band)
        m.premium_sum += prem
        m.premium_n += 1
        avg = m.premium_sum // m.premium_n
        if m.funding_override is not None:
            m.funding_rate = m.funding_override
        else:
            m.funding_rate = avg + max(
                -inst.funding_clamp, min(inst.funding_clamp, inst.interest_rate - avg)
            )

    def _observe_basis(self, m: Market) -> None:
        """Tell the median's time-weighted inputs what the book and index now stand at
        (call after every change of either, before time moves on). Only a median mark
        reads them, so other marks skip the work."""
        if m.inst.mark_method != "median":
            return
        book = m.book
        m.basis.observe(self.now, m.index, book.best_bid(), book.best_ask(), m.inst.mark_band)

    def _compute_mark(self, m: Market) -> int:
        method = m.inst.mark_method
        idx = m.index
        if method == "index":
            return idx
        if method == "last":
            return m.last or idx
        bb, ba = m.book.best_bid(), m.book.best_ask()
        if method == "mid":
            if bb is not None and ba is not None:
                return (bb + ba) // 2
            return m.last or idx
        if idx <= 0:
            return m.last
        inst = m.inst
        iv = inst.funding_interval_ns
        to_funding = max(0, m.next_funding_ts - self.now)
        # the funding term reads the premium time-weighted like the basis (an imposed
        # rate as it is): one quote far off the index at one sample cannot move it
        rate = m.funding_override
        if rate is None:
            rate = funding_estimate(
                m.basis.premium.average(self.now), inst.interest_rate, inst.funding_clamp
            )
        p1 = idx + idx * rate * to_funding // (RATE_ONE * iv)
        p2 = idx + m.basis.basis.average(self.now)
        p3 = m.last or idx
        return clamp_to_band(sorted((p1, p2, p3))[1], idx, inst.mark_band)

    def _update_mark(self, m: Market) -> bool:
        method = m.inst.mark_method
        if method == "index":  # the mark is the index: nothing else to read or compare
            return self._mark_at(m, m.index)
        if method == "median":
            # A median mark reads the book's best prices, the index, last, the time, the
            # funding rate and the two time-weighted averages. When the first five are
            # those of the last call and both averages still stand at the samples taken
            # then, observing would change nothing and the averages' totals at this same
            # time are unchanged: the mark cannot have moved. That is most commands.
            book = m.book
            bb = book.best_bid()
            ba = book.best_ask()
            basis = m.basis
            now = self.now
            key = m.mark_key
            if (
                len(key) == 10  # a snapshot from before these four were kept has six
                and key[0] == m.index
                and key[1] == m.last
                and key[2] == now
                and key[5] == m.funding_rate
                and key[6] == bb
                and key[7] == ba
                and key[8] == basis.basis.open_basis
                and key[9] == basis.premium.open_basis
            ):
                return False
            basis.observe(now, m.index, bb, ba, m.inst.mark_band)
            # the first six are the inputs the mark is computed from; the last four only
            # let the next call see that nothing moved
            key = (
                m.index,
                m.last,
                now,
                *basis.key(now),
                m.funding_rate,
                bb,
                ba,
                basis.basis.open_basis,
                basis.premium.open_basis,
            )
            if key[:6] == m.mark_key[:6]:
                m.mark_key = key
                return False
            m.mark_key = key
        elif method != "mid":
            # only these inputs can move a last mark
            key = (m.index, m.last, 0, 0, 0)
            if key == m.mark_key:
                return False
            m.mark_key = key
        return self._mark_at(m, self._compute_mark(m))

    def _mark_at(self, m: Market, mark: int) -> bool:
        """Make `mark` the mark and emit `MarkPriceChanged`, if it is positive and new."""
        if mark <= 0 or mark == m.mark:
            return False
        m.mark = mark
        self._emit(
            E.MarkPriceChanged,
            m.inst.symbol,
            mark,
            m.index,
            m.last,
            m.funding_rate,
            m.next_funding_ts,
        )
        return True

    def _check_mark(self) -> None:
        """Each market's time-weighted mark inputs are sound (`MarkBasis._check`)."""
        for m in self.markets.values():
            m.basis._check()
