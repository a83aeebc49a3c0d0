"""Isolated-margin arithmetic (Binance USDⓈ-M formulas), exact in integers.

A position is (qty, cost, margin): qty signed lots (+ long), cost the signed sum of
the fill notionals still open (money quanta, + long), margin its isolated margin.
At a mark of p ticks its notional is |qty|·p·lot_value, its unrealized PnL
qty·p·lot_value − cost, and it is liquidated when

    margin + uPnL ≤ MM(notional) = ceil(notional × MMR / RATE_ONE) − cum.

margin + uPnL − MM is monotone in p (increasing for a long, decreasing for a short),
so the set of liquidating marks is a half-line and one integer tick marks its edge:
`liquidation_tick`. That is what lets the monitor keep positions sorted and touch only
the ones it liquidates.
"""

from __future__ import annotations

from bisect import bisect_left

from .instruments import Instrument
from .numbers import RATE_ONE, ceil_div

NO_LIQUIDATION_LONG = 0  # a long whose liquidation edge is at or below 0 can't be liquidated


def _long_edge(a: int, qf: int, mmr: int) -> int:
    """Largest tick p with p·qf − a ≤ ceil(p·qf·mmr / R), where a = cost − margin − cum."""
    return ((a + 1) * RATE_ONE - 1) // (qf * (RATE_ONE - mmr))


def _short_edge(b: int, qf: int, mmr: int) -> int:
    """Smallest tick p with b − p·qf ≤ ceil(p·qf·mmr / R), where b = margin + |cost| + cum."""
    return ((b - 1) * RATE_ONE) // (qf * (RATE_ONE + mmr)) + 1


def liquidation_tick(inst: Instrument, qty: int, cost: int, margin: int) -> int:
    """The mark (ticks) at which the position is liquidated: long when mark ≤ it,
    short when mark ≥ it. 0 for a flat position. O(B) worst case, O(1) typically.

    Each bracket has its own closed form; start with the bracket of the entry notional
    and move to the bracket of the notional at the candidate until they agree. If two
    brackets point at each other (rounding at the boundary) the edge is the boundary.
    """
    if qty == 0:
        return 0
    qf = (qty if qty > 0 else -qty) * inst.lot_value
    brackets = inst.brackets
    caps = inst._caps
    last = len(caps) - 1
    i = bisect_left(caps, cost if cost >= 0 else -cost)  # inst.bracket_index, inlined
    if i > last:
        i = last
    seen: set[int] | None = None
    while True:
        b = brackets[i]
        if qty > 0:
            # _long_edge(cost - margin - b.cum, qf, b.mmr)
            p = ((cost - margin - b.cum + 1) * RATE_ONE - 1) // (qf * (RATE_ONE - b.mmr))
            if p <= 0:
                return NO_LIQUIDATION_LONG
        else:
            # _short_edge(margin - cost + b.cum, qf, b.mmr)
            p = ((margin - cost + b.cum - 1) * RATE_ONE) // (qf * (RATE_ONE + b.mmr)) + 1
        j = bisect_left(caps, p * qf)
        if j > last:
            j = last
        if j == i:
            return p
        if seen is None:
            seen = {i}
        else:
            seen.add(i)
        if j in seen:
            lo = min(i, j)
            edge = brackets[lo].cap // qf  # last tick whose notional is in the lower bracket
            return edge if qty > 0 else edge + 1
        i = j


def bankruptcy_tick(inst: Instrument, qty: int, cost: int, margin: int) -> int:
    """The worst tick at which the position can be closed without its equity going
    negative: a long sells at ≥ this (rounded up), a short buys at ≤ this (rounded down).
    """
    if qty == 0:
        return 0
    qf = abs(qty) * inst.lot_value
    if qty > 0:
        return max(1, ceil_div(cost - margin, qf))
    return (margin - cost) // qf


def liquidation_price_exact(inst: Instrument, qty: int, cost: int, margin: int) -> tuple[int, int]:
    """The unrounded liquidation price in ticks as a fraction (num, den), by the
    textbook formula LP = (WB + cum − s·Q·EP) / (Q·MMR − s·Q) with the bracket of the
    rounded edge. For display and for checking published worked examples.
    """
    if qty == 0:
        return (0, 1)
    tick = liquidation_tick(inst, qty, cost, margin)
    qf = abs(qty) * inst.lot_value
    b = inst.bracket_for(max(tick, 1) * qf)
    s = 1 if qty > 0 else -1
    # prices in ticks: Q·EP = |cost| / lot_value, so multiply through by RATE_ONE.
    num = (margin + b.cum - s * abs(cost)) * RATE_ONE
    den = qf * (b.mmr - s * RATE_ONE)
    if den < 0:
        num, den = -num, -den
    return (num, den)


def is_liquidatable(inst: Instrument, qty: int, cost: int, margin: int, mark: int) -> bool:
    """The exact predicate the monitor's ordering stands for: equity ≤ MM at `mark`."""
    if qty == 0:
        return False
    lv = inst.lot_value
    value = qty * mark * lv
    notional = value if qty > 0 else -value
    # inst.maintenance_margin(notional), inlined
    caps = inst._caps
    i = bisect_left(caps, notional)
    b = inst.brackets[i if i < len(caps) else len(caps) - 1]
    return margin + value - cost <= -((-notional * b.mmr) // RATE_ONE) - b.cum


def initial_margin(notional: int, leverage: int) -> int:
    """notional / leverage, rounded up."""
    return ceil_div(notional, leverage)
