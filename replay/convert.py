"""Decimal → the core's integers, at the replay edge.

Recorded prices and amounts are exact `Decimal`s; the core counts ticks and lots. Every
conversion rounds explicitly, and the direction is chosen so that a replay is never more
favourable than the recording (see docs/replay.md, "Rounding"):

* reference prices (index, mark): to the **nearest** tick, ties to even;
* book levels: bids **down**, asks **up** to the tick (a mirrored level never offers a
  better price than the recorded one, and a recorded book that is not crossed stays so);
* recorded trades replayed as taker flow: buys **down**, sells **up** (taker flow never trades
  through the recorded price);
* amounts: **down** to the lot (never more liquidity or flow than recorded; an amount under
  one lot becomes 0 and is skipped).

Each `Units` caches its conversions per input `Decimal`: recorded files repeat the same price
texts endlessly, and a dict hit is ten times cheaper than a decimal division.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

from exchange.core.instruments import Instrument

__all__ = ["Units", "RoundingMode", "NEAREST", "DOWN", "UP"]

RoundingMode = str
NEAREST: RoundingMode = ROUND_HALF_EVEN
DOWN: RoundingMode = ROUND_FLOOR
UP: RoundingMode = ROUND_CEILING

_CTX = Context(prec=60)  # exact for any price or amount a file can hold
_CACHE_MAX = 1 << 16


class Units:
    """Conversions for one instrument: `price(d, mode)` → ticks, `lots(d)` → lots (down)."""

    __slots__ = ("inst", "tick", "step", "_p", "_l")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.tick = Decimal(inst.tick_size)
        self.step = Decimal(inst.step_size)
        self._p: dict[str, dict[Decimal, int]] = {NEAREST: {}, DOWN: {}, UP: {}}
        self._l: dict[Decimal, int] = {}

    def down(self, value: Decimal) -> int:
        """`value` in ticks, rounded down (cached)."""
        t = self._p[DOWN].get(value)
        return self.price(value, DOWN) if t is None else t

    def up(self, value: Decimal) -> int:
        """`value` in ticks, rounded up (cached)."""
        t = self._p[UP].get(value)
        return self.price(value, UP) if t is None else t

    def price(self, value: Decimal, mode: RoundingMode = NEAREST) -> int:
        """`value` in ticks, rounded by `mode` (NEAREST, DOWN or UP)."""
        cache = self._p[mode]
        t = cache.get(value)
        if t is None:
            t = int(_CTX.divide(value, self.tick).to_integral_value(rounding=mode))
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[value] = t
        return t

    def lots(self, value: Decimal) -> int:
        """`value` in lots, rounded down (never more than recorded)."""
        n = self._l.get(value)
        if n is None:
            n = int(_CTX.divide(value, self.step).to_integral_value(rounding=ROUND_FLOOR))
            if len(self._l) >= _CACHE_MAX:
                self._l.clear()
            self._l[value] = n
        return n
