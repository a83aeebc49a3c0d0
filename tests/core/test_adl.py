"""The ADL rank kept through a cascade equals a fresh full ranking after every change."""

from __future__ import annotations

from functools import cmp_to_key

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.adl import AdlRank, adl_score, rank_once
from exchange.core.state import FUND, Seat

LV = 1_000


def naive(side: dict[int, Seat], mark: int, shorts: bool, exclude: int) -> list[Seat]:
    """Score every eligible seat and sort by the exact fractions, higher first, ties by
    account id (the ranking as the cascade used to compute it each time)."""
    scored = [
        (*adl_score(s, mark, LV), s)
        for a, s in sorted(side.items())
        if a != exclude and a != FUND and s.qty and (s.qty < 0) == shorts
    ]

    def cmp(x: tuple[int, int, Seat], y: tuple[int, int, Seat]) -> int:
        p, q = x[0] * y[1], y[0] * x[1]
        return -1 if p > q else 1 if p < q else 0

    scored.sort(key=cmp_to_key(cmp))
    return [s for _, _, s in scored]


def seat(account: int, qty: int, entry: int, margin: int) -> Seat:
    s = Seat(account, "BTCUSDT", 10)
    s.qty, s.cost, s.margin = qty, qty * entry * LV, margin
    return s


positions = st.tuples(
    st.integers(0, 30),  # account (0 is the insurance fund)
    st.integers(-20, 20),  # qty
    st.integers(90, 110),  # entry tick
    st.integers(0, 3_000_000),  # margin
)


@settings(max_examples=200, deadline=None)
@given(
    start=st.lists(positions, max_size=25),
    changes=st.lists(st.tuples(positions, st.booleans()), max_size=40),
    mark=st.integers(80, 120),
    shorts=st.booleans(),
    exclude=st.integers(0, 30),
)
def test_rank_matches_a_full_ranking_after_each_change(
    start: list[tuple[int, int, int, int]],
    changes: list[tuple[tuple[int, int, int, int], bool]],
    mark: int,
    shorts: bool,
    exclude: int,
) -> None:
    assert FUND == 0
    side: dict[int, Seat] = {}
    for a, q, e, mg in start:
        side[a] = seat(a, q, e, mg)
    rank = AdlRank(side, mark, LV, shorts)
    rank._check(shorts)
    assert rank.ordered(exclude, shorts) == naive(side, mark, shorts, exclude)
    for (a, q, e, mg), leaves in changes:
        s = side.get(a) or seat(a, q, e, mg)
        s.qty, s.cost, s.margin = q, q * e * LV, mg  # the seat changes in place
        if leaves:
            side.pop(a, None)  # it left the side index (flat, or turned)
        else:
            side[a] = s
        rank.dirty[a] = s
        assert rank.ordered(exclude, shorts) == naive(side, mark, shorts, exclude)
        for lots in (1, 7, 50):  # the shortest head of the rank that covers `lots`
            full = naive(side, mark, shorts, exclude)
            head: list[Seat] = []
            for other in full:
                head.append(other)
                if sum(abs(x.qty) for x in head) >= lots:
                    break
            assert rank.ordered(exclude, shorts, lots) == head
        assert rank_once(side, mark, LV, shorts, exclude) == naive(side, mark, shorts, exclude)
        rank._check(shorts)
