"""The liquidation-price ladder: open interest by liquidation price, in buckets.

A `LiquidationLadder` mirrors one symbol's `MarginMonitor` (every position the monitor
holds, at the side and tick it holds it, with its size) and keeps, per side, the lots
and the number of positions in buckets of 10^k ticks for every k in 0..DECADES-1.
A position change costs O(DECADES) whatever the number of positions; a view of n
buckets per side costs O(n). Public and aggregated: no account id leaves it.

The monitor feeds it (`MarginMonitor.ladder`, None until someone asks, so an
exchange nobody watches pays nothing); `ladder_from` builds one for a monitor that
already holds positions, O(N) once. It is derived state: not in `state_hash`, not in
snapshots (rebuilt on the first ask after a recovery).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DECADES = 10  # bucket widths 1, 10, ..., 10^9 ticks
MAX_BUCKETS = 100


@dataclass(frozen=True, slots=True)
class LadderBucket:
    """Positions whose liquidation tick is in [low, high): their lots and count."""

    low: int
    high: int
    qty: int
    positions: int


@dataclass(frozen=True, slots=True)
class LadderView:
    """Longs below the mark (nearest first), shorts above it (nearest first), and the
    totals of each side, inside the window and beyond it."""

    symbol: str
    mark: int
    bucket_ticks: int
    longs: tuple[LadderBucket, ...]
    shorts: tuple[LadderBucket, ...]
    long_qty: int
    long_positions: int
    short_qty: int
    short_positions: int


class LiquidationLadder:
    __slots__ = ("held", "levels", "totals")

    def __init__(self) -> None:
        self.held: dict[int, tuple[int, int, int]] = {}  # account -> (side 0/1, tick, lots)
        # levels[side][k]: bucket index (tick // 10^k) -> [lots, positions]
        self.levels: tuple[list[dict[int, list[int]]], list[dict[int, list[int]]]] = (
            [{} for _ in range(DECADES)],
            [{} for _ in range(DECADES)],
        )
        self.totals = ([0, 0], [0, 0])  # per side: [lots, positions]

    def set(self, account: int, qty: int, tick: int) -> None:
        """The account's position is `qty` lots (signed) liquidated at `tick`; 0 or a
        tick ≤ 0 removes it (as the monitor does). O(DECADES)."""
        old = self.held.pop(account, None)
        if old is not None:
            self._add(old[0], old[1], -old[2], -1)
        if qty and tick > 0:
            side, lots = (0, qty) if qty > 0 else (1, -qty)
            self.held[account] = (side, tick, lots)
            self._add(side, tick, lots, 1)

    def _add(self, side: int, tick: int, lots: int, n: int) -> None:
        b = tick
        for level in self.levels[side]:
            cell = level.get(b)
            if cell is None:
                level[b] = [lots, n]
            else:
                cell[0] += lots
                cell[1] += n
                if not cell[1]:
                    del level[b]
            b //= 10
        tot = self.totals[side]
        tot[0] += lots
        tot[1] += n

    def view(self, symbol: str, mark: int, buckets: int, exponent: int | None = None) -> LadderView:
        """`buckets` buckets per side of 10^`exponent` ticks (None: `auto_exponent`),
        the longs' counting down from the bucket below the mark, the shorts' up from
        the mark's bucket. O(buckets)."""
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be in 1..{MAX_BUCKETS}")
        k = auto_exponent(mark) if exponent is None else exponent
        if not 0 <= k < DECADES:
            raise ValueError(f"exponent must be in 0..{DECADES - 1}")
        w = 10**k
        longs: list[LadderBucket] = []
        shorts: list[LadderBucket] = []
        if mark > 0:
            for side, first, step, out in ((0, (mark - 1) // w, -1, longs), (1, mark // w, 1, shorts)):  # fmt: skip
                level = self.levels[side][k]
                for i in range(buckets):
                    b = first + step * i
                    if b < 0:
                        break
                    cell = level.get(b)
                    lots, n = (cell[0], cell[1]) if cell is not None else (0, 0)
                    out.append(LadderBucket(b * w, (b + 1) * w, lots, n))
        (lq, ln), (sq, sn) = self.totals
        return LadderView(symbol, mark, w, tuple(longs), tuple(shorts), lq, ln, sq, sn)

    def _check(self) -> None:
        for side in (0, 1):
            want: list[dict[int, list[int]]] = [{} for _ in range(DECADES)]
            lots = n = 0
            for s, tick, q in self.held.values():
                if s != side:
                    continue
                assert q > 0 and tick > 0
                lots, n = lots + q, n + 1
                b = tick
                for level in want:
                    cell = level.setdefault(b, [0, 0])
                    cell[0] += q
                    cell[1] += 1
                    b //= 10
            assert self.levels[side] == want, "ladder buckets differ from its positions"
            assert self.totals[side] == [lots, n], "ladder totals differ from its positions"


def auto_exponent(mark: int) -> int:
    """The default bucket width: the largest power of ten of ticks not above 1/200 of
    the mark (so a bucket is 0.05 %..0.5 % of the mark, 20 buckets span 1 %..10 %)."""
    k, w = 0, 10
    while k + 1 < DECADES and w * 200 <= mark:
        k, w = k + 1, w * 10
    return k


def ladder_from(keys: dict[int, tuple[int, int, int]], qty_of: Callable[[int], int]) -> LiquidationLadder:  # fmt: skip
    """A ladder for a monitor's `keys` (account -> (side, tick, account)); `qty_of`
    gives an account's signed position. O(N · DECADES)."""
    lad = LiquidationLadder()
    for account, (_, tick, _) in keys.items():
        lad.set(account, qty_of(account), tick)
    return lad
