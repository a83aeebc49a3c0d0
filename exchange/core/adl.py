"""Auto-deleveraging rank: the positions on one side of a market ordered for ADL.

An ADL score is profit % × effective leverage (profit % ÷ effective leverage when
losing): profit % = uPnL / |cost| (|cost| 1 when 0), effective leverage = notional /
equity (10¹² when equity ≤ 0), all at the mark. Each score is an exact fraction and
the rank is highest score first, ties by account id.

A cascade ranks the same side again and again while only a few positions change
between two liquidations (the one just deleveraged, the makers that traded). `AdlRank`
keeps one side ranked at one mark in a `SortedList` and re-scores only the seats
marked `dirty` since it was last read: O(d log N) for d changed seats, instead of
scoring and sorting all N each time. It is a cache that lives for one cascade and is
never part of the state.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cmp_to_key
from operator import itemgetter

from sortedcontainers import SortedList

from .state import FUND, Seat


def adl_score(seat: Seat, mark: int, lot_value: int) -> tuple[int, int]:
    """The seat's score as num/den with den > 0 (see the module docstring). O(1)."""
    qty = seat.qty
    upnl = qty * mark * lot_value - seat.cost
    equity = seat.margin + upnl
    notional = (qty if qty > 0 else -qty) * mark * lot_value
    c = abs(seat.cost) or 1
    if equity > 0:
        if upnl > 0:  # (upnl / c) × (notional / equity)
            return upnl * notional, c * equity
        if notional:  # (upnl / c) ÷ (notional / equity)
            return upnl * equity, c * notional
        raise ZeroDivisionError("profit % divided by a zero effective leverage")
    if upnl > 0:  # (upnl / c) × 10¹²
        return upnl * 10**12, c
    return upnl, c * 10**12  # (upnl / c) ÷ 10¹²


def _compare(a: tuple[int, int, Seat], b: tuple[int, int, Seat]) -> int:
    """Order two scores num/den (den > 0), higher first."""
    x = a[0] * b[1]
    y = b[0] * a[1]
    return -1 if x > y else 1 if x < y else 0


_ORDER = cmp_to_key(_compare)


def rank_once(
    side: dict[int, Seat], mark: int, lot_value: int, shorts: bool, exclude: int
) -> list[Seat]:
    """The side's eligible seats (not the fund's, not `exclude`) ranked from scratch:
    O(N log N) comparisons, the cheaper way for a few seats or a single read."""
    eligible = [
        seat
        for acct_id, seat in (sorted(side.items()) if len(side) > 1 else side.items())
        if acct_id != exclude and acct_id != FUND and seat.qty != 0 and (seat.qty < 0) == shorts
    ]
    if len(eligible) < 2:
        return eligible  # one seat (a cascade against one big holder): nothing to score
    # (num, den, seat) in account order
    ranked = [(*adl_score(seat, mark, lot_value), seat) for seat in eligible]
    # highest score first; the sort is stable, so equal scores stay in account order
    ranked.sort(key=_ORDER)
    return [s for _, _, s in ranked]


_SEAT = itemgetter(3)


def _coarse(num: int, den: int) -> int:
    """floor(num / den · 2⁶⁴): an integer monotonic in num/den (den > 0), so where two
    differ their order is the exact one."""
    return (num << 64) // den


class AdlRank:
    """One side's positions (but the insurance fund's) ranked for ADL at `mark`."""

    __slots__ = ("side", "mark", "lot_value", "ranked", "keys", "seats", "dirty")

    def __init__(self, side: dict[int, Seat], mark: int, lot_value: int, shorts: bool) -> None:
        """Rank every seat of `side` (the market's long or short index) at `mark`.
        O(N log N)."""
        self.side = side
        self.mark = mark
        self.lot_value = lot_value
        # (−score to 2⁻⁶⁴ rounded down, −score exact, account, seat): where the first
        # two differ their order is the exact one, so the Fraction (slow to compare) is
        # read only on a tie of the first; accounts are unique, so the seat is never
        # compared
        self.keys: dict[int, tuple[int, Fraction, int, Seat]] = {}
        self.seats: dict[int, Seat] = {}
        self.dirty: dict[int, Seat] = {}  # seats changed since the rank was last read
        items = []
        for acct_id, seat in side.items():
            key = self._key(seat, shorts)
            if key is not None:
                self.keys[acct_id] = key
                self.seats[acct_id] = seat
                items.append(key)
        self.ranked = SortedList(items)

    def _key(self, seat: Seat, shorts: bool) -> tuple[int, Fraction, int, Seat] | None:
        """Rank entry of a seat that belongs in it (see `keys`), else None."""
        qty = seat.qty
        if seat.account == FUND or qty == 0 or (qty < 0) != shorts:
            return None
        num, den = adl_score(seat, self.mark, self.lot_value)
        return _coarse(-num, den), Fraction(-num, den), seat.account, seat

    def ordered(self, exclude: int, shorts: bool, lots: int = 0) -> list[Seat]:
        """The ranked seats, highest score first, ties by account id, without `exclude`;
        with `lots`, only the first ones whose positions together cover that many lots
        (all of them if they do not). `dirty` seats are re-scored first (a seat that
        left the side index drops out). O(d log N + k) for d dirty seats and k seats
        returned: an ADL of a few lots reads the top of the rank, not all of it."""
        if self.dirty:
            keys, seats, ranked, side = self.keys, self.seats, self.ranked, self.side
            for acct_id, seat in self.dirty.items():
                old = keys.pop(acct_id, None)
                if old is not None:
                    ranked.remove(old)
                    del seats[acct_id]
                if side.get(acct_id) is seat:
                    key = self._key(seat, shorts)
                    if key is not None:
                        keys[acct_id] = key
                        seats[acct_id] = seat
                        ranked.add(key)
            self.dirty = {}
        if not lots:
            out: list[Seat] = list(map(_SEAT, self.ranked))
            if exclude in self.keys:
                out.remove(self.seats[exclude])
            return out
        out = []
        covered = 0
        for _, _, acct_id, seat in self.ranked:
            if acct_id == exclude:
                continue
            out.append(seat)
            covered += seat.qty if seat.qty > 0 else -seat.qty
            if covered >= lots:
                break
        return out

    def _check(self, shorts: bool) -> None:
        """The rank holds exactly the side's eligible clean seats at their current keys."""
        assert len(self.ranked) == len(self.keys) == len(self.seats), "rank size mismatch"
        for acct_id, seat in self.side.items():
            if acct_id in self.dirty:
                continue
            want = self._key(seat, shorts)
            assert self.keys.get(acct_id) == want, f"stale ADL rank for {acct_id}"
