"""Mark and index prices, premium sampling and the funding rate.

The index comes in by command (`SetIndexPrice`); each index update samples the premium
index (the best bid above or best ask below the index, as a rate) and the mid − index
basis. The mark is computed per instrument by its method:

* `index`: the index;
* `last`: the last trade price (the index until there is one);
* `mid`: the book's mid price (else last, else index);
* `median`: the median of index × (1 + funding rate × time to funding / interval),
  index + the moving average of the basis over `basis_window` samples, and last.

Interface (what the rest of the exchange uses): `_set_index(cmd)` and
`_set_funding_rate(cmd)` handle their commands; `_update_mark(m) -> bool` recomputes
the mark and emits `MarkPriceChanged` when it moved; it is cheap when nothing it
depends on changed (`Market.mark_key`). State (on `Market`): `index`, `mark`,
`mark_key`, `premium_sum`, `premium_n`, `basis`, `basis_sum`, `funding_rate`,
`funding_override`.
"""

from __future__ import annotations

from . import commands as C
from . import events as E
from .errors import Code
from .numbers import RATE_ONE
from .room import Room
from .state import Market


class MarkPrices(Room):
    """The index, the mark and the premium samples the funding rate comes from."""

    def _set_index(self, cmd: C.SetIndexPrice) -> None:
        m = self._market(cmd.symbol)
        price = self._int(cmd.price, "price", 1, m.inst.max_price, Code.PRICE_LESS_THAN_ZERO)
        m.index = price
        self._sample_premium(m)
        self._emit(E.IndexPriceChanged, m.inst.symbol, price)
        self._react(m)

    def _set_funding_rate(self, cmd: C.SetFundingRate) -> None:
        m = self._market(cmd.symbol)
        rate = self._int(cmd.rate, "rate", -RATE_ONE // 10, RATE_ONE // 10)
        m.funding_override = m.funding_rate = rate
        self._emit(E.FundingRateSet, m.inst.symbol, rate, m.next_funding_ts)
        self._react(m)

    def _sample_premium(self, m: Market) -> None:
        """Sample the premium index and the mid − index basis at an index update."""
        idx = m.index
        bb, ba = m.book.best_bid(), m.book.best_ask()
        prem = 0
        if bb is not None and bb > idx:
            prem += (bb - idx) * RATE_ONE // idx
        if ba is not None and ba < idx:
            prem -= (idx - ba) * RATE_ONE // idx
        m.premium_sum += prem
        m.premium_n += 1
        inst = m.inst
        avg = m.premium_sum // m.premium_n
        if m.funding_override is not None:
            m.funding_rate = m.funding_override
        else:
            m.funding_rate = avg + max(
                -inst.funding_clamp, min(inst.funding_clamp, inst.interest_rate - avg)
            )
        if bb is not None and ba is not None:
            b = (bb + ba) // 2 - idx
            m.basis.append(b)
            m.basis_sum += b
            if len(m.basis) > inst.basis_window:
                m.basis_sum -= m.basis.popleft()

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
        iv = m.inst.funding_interval_ns
        to_funding = max(0, m.next_funding_ts - self.now)
        p1 = idx + idx * m.funding_rate * to_funding // (RATE_ONE * iv)
        p2 = idx + (m.basis_sum // len(m.basis) if m.basis else 0)
        p3 = m.last or idx
        return sorted((p1, p2, p3))[1]

    def _update_mark(self, m: Market) -> bool:
        method = m.inst.mark_method
        if method != "mid":
            # only these inputs can move an index, last or median mark
            key = (
                (m.index, m.last, self.now, m.basis_sum, m.funding_rate)
                if method == "median"
                else (m.index, m.last, 0, 0, 0)
            )
            if key == m.mark_key:
                return False
            m.mark_key = key
        mark = self._compute_mark(m)
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
