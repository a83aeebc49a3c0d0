"""The time-weighted averages behind the median mark, against a brute-force per-second
sampler, and the sample and clamp rules (exchange/core/premium.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.numbers import RATE_ONE
from exchange.core.premium import (
    SAMPLE_NS,
    TimeWeightedAverage,
    basis_sample,
    clamp_to_band,
    premium_sample,
)

BAND = 5_000_000  # 5 %


def brute_total(changes: list[tuple[int, int]], now: int, window: int) -> int:
    """Sample every whole second s in (now//1s − window, now//1s]: the value set by the
    last change with ts ≤ s·1s (0 before any), summed."""
    s_now = now // SAMPLE_NS
    total = 0
    for s in range(s_now - window + 1, s_now + 1):
        if s < 0:
            continue
        v = 0
        for ts, value in changes:
            if ts <= s * SAMPLE_NS:
                v = value
        total += v
    return total


@settings(max_examples=300, deadline=None)
@given(
    window=st.integers(1, 12),
    start=st.integers(0, 5 * SAMPLE_NS),
    steps=st.lists(
        st.tuples(
            st.one_of(
                st.integers(0, SAMPLE_NS // 2),
                st.sampled_from([0, SAMPLE_NS, 3 * SAMPLE_NS]),
                st.integers(0, 30 * SAMPLE_NS),
            ),
            st.integers(-1000, 1000),
            st.booleans(),
        ),
        max_size=40,
    ),
)
def test_the_average_equals_a_per_second_sampler(
    window: int, start: int, steps: list[tuple[int, int, bool]]
) -> None:
    avg = TimeWeightedAverage(window, start)
    changes: list[tuple[int, int]] = [(start, 0)]
    now = start
    for dt, value, observe in steps:
        now += dt
        if observe:
            avg.observe(now, value)
            changes.append((now, value))
        avg._check()
        want = brute_total(changes, now, window)
        assert avg.total(now) == want, (now, changes)
        assert avg.average(now) == want // window


def test_one_sample_of_a_quote_far_off_counts_once_in_the_window() -> None:
    avg = TimeWeightedAverage(300, 0)
    avg.observe(SAMPLE_NS // 2, 1_000)  # the quote rests from 0.5 s …
    avg.observe(SAMPLE_NS + SAMPLE_NS // 2, 0)  # … to 1.5 s: only the sample at 1 s sees it
    assert avg.total(2 * SAMPLE_NS) == 1_000
    assert avg.average(2 * SAMPLE_NS) == 3
    assert avg.total(301 * SAMPLE_NS) == 0  # five minutes later it has left the window
    # a change exactly on a second is sampled at that second
    avg.observe(400 * SAMPLE_NS, 7)
    assert avg.total(400 * SAMPLE_NS) == 7
    assert avg.total(1_000 * SAMPLE_NS) == 300 * 7  # seconds without a command count it


def test_samples_contribute_nothing_without_two_sides_and_are_clamped() -> None:
    idx = 200_000
    assert basis_sample(idx, None, 200_100, BAND) == 0
    assert basis_sample(idx, 199_900, None, BAND) == 0
    assert basis_sample(idx, 200_100, 200_100, BAND) == 0  # locked / crossed
    assert basis_sample(0, 199_900, 200_100, BAND) == 0  # no index yet
    assert basis_sample(idx, 200_000, 200_101, BAND) == 50  # (200,000 + 200,101)//2 − idx
    assert basis_sample(idx, 1_999_999, 2_000_000, BAND) == 10_000  # 5 % of the index
    assert basis_sample(idx, 10, 11, BAND) == -10_000
    assert premium_sample(idx, 1_999_999, 2_000_000, BAND) == BAND
    assert premium_sample(idx, 200_200, None, BAND) == 200 * RATE_ONE // idx
    assert premium_sample(idx, None, 100_000, BAND) == -BAND
    assert premium_sample(idx, 199_000, 201_000, BAND) == 0


def test_the_band_edges_round_toward_the_index() -> None:
    # 5 % of 200,001 ticks is 10,000.05: the edges are 190,001 and 210,001
    assert clamp_to_band(10**9, 200_001, BAND) == 210_001
    assert clamp_to_band(1, 200_001, BAND) == 190_001
    assert clamp_to_band(200_500, 200_001, BAND) == 200_500
