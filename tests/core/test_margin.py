"""Pure formula tests for `exchange.core.margin` and the bracket arithmetic (issue 3).

Binance USDⓈ-M is the reference: maintenance margin MM = notional × MMR − cum, with
cum_n = floor_n × (MMR_n − MMR_{n−1}) + cum_{n−1}, and the isolated liquidation price

    LP = (WB + cum − s·Q·EP) / (Q·MMR − s·Q)      (s = +1 long, −1 short)

recomputed with the other bracket when the notional at LP falls into it. Every expected
value below was worked out by hand from that formula (the working is in the comments),
never by calling the code under test.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.instruments import derive_brackets
from exchange.core.margin import (
    NO_LIQUIDATION_LONG,
    bankruptcy_tick,
    initial_margin,
    is_liquidatable,
    liquidation_price_exact,
    liquidation_tick,
)
from tests.core.helpers_margin import BTC, LV, USDT, btc_raw, px, usdt

INST = btc_raw()


def position(side: int, lots: int, entry_ticks: int, margin: int) -> tuple[int, int, int]:
    """(qty, cost, margin) in the core's units for a position opened at one price."""
    return side * lots, side * lots * entry_ticks * LV, margin


def lp_usdt(qty: int, cost: int, margin: int) -> Fraction:
    num, den = liquidation_price_exact(INST, qty, cost, margin)
    return Fraction(num, den) / 10  # ticks → USDT (tick 0.10)


def to_cent(x: Fraction) -> Fraction:
    return Fraction(round(x * 100), 100)


def brute_edge(qty: int, cost: int, margin: int, lo: int, hi: int) -> int:
    """The liquidation edge found by trying every tick in [lo, hi] with the predicate:
    the highest liquidating tick of a long, the lowest of a short. Also checks that
    the liquidating ticks form one half-line inside the window."""
    hits = [p for p in range(lo, hi + 1) if is_liquidatable(INST, qty, cost, margin, p)]
    assert hits, "window holds no liquidating tick"
    if qty > 0:
        assert hits == list(range(lo, hits[-1] + 1)), "long: liquidating ticks not a half-line"
        assert hits[-1] < hi, "window too small"
        return hits[-1]
    assert hits == list(range(hits[0], hi + 1)), "short: liquidating ticks not a half-line"
    assert hits[0] > lo, "window too small"
    return hits[0]


# ---------------------------------------------------------------- brackets


def test_btc_bracket_maintenance_amounts_are_binance_published_values() -> None:
    # cum_1 = 50,000 × (0.5 % − 0.4 %) + 0 = 50; cum_2 = 250,000 × (1 % − 0.5 %) + 50 = 1,300
    cums = [b.cum for b in INST.brackets]
    assert cums[0] == 0
    assert cums[1] == 50 * USDT
    assert cums[2] == 1_300 * USDT
    # and the rest of Binance's BTCUSDT table (maintenance amounts as published)
    published = [0, 50, 1_300, 16_300, 266_300, 1_266_300, 2_516_300, 5_016_300]
    published += [25_016_300, 100_016_300]
    assert cums == [c * USDT for c in published]


def test_derive_brackets_floors_cum_to_the_quantum() -> None:
    # floor 1 quantum-odd: 333 × (0.5 % − 0.4 %) = 0.333 quanta → cum 0 (rounded down)
    tiers = [(0, 333, 10, 400_000), (333, 10**6, 5, 500_000), (10**6, 10**7, 2, 2_000_000)]
    b = derive_brackets(tiers)
    assert [x.cum for x in b] == [0, 0, 15_000]  # 10**6 × 1.5 % = 15,000
    assert [(x.floor, x.cap, x.max_leverage, x.mmr) for x in b] == tiers


def test_maintenance_margin_per_bracket_and_continuous_at_the_boundary() -> None:
    mm = INST.maintenance_margin
    assert mm(usdt(10_000)) == usdt(40)  # 0.4 %
    assert mm(usdt(50_000)) == usdt(200)  # cap of bracket 0 is inclusive
    assert mm(usdt(50_000) + 1) == usdt(200) + 1  # 0.5 % − 50, rounded up
    assert mm(usdt(100_000)) == usdt(450)  # 100,000 × 0.5 % − 50
    assert mm(usdt(300_000)) == usdt(1_700)  # 300,000 × 1 % − 1,300
    assert mm(usdt(250_000)) == usdt(1_200)  # 250,000 × 0.5 % − 50, bracket 1's cap
    assert INST.bracket_index(usdt(50_000)) == 0
    assert INST.bracket_index(usdt(50_000) + 1) == 1


def test_initial_margin_rounds_up() -> None:
    assert initial_margin(10, 3) == 4
    assert initial_margin(12, 3) == 4
    assert initial_margin(usdt(50_000), 20) == usdt(2_500)


# ---------------------------------------------------------------- the worked example


def test_worked_example_long_1_btc_at_50000_wb_5000() -> None:
    # LP = (5,000 + 0 − 50,000) / (1 × 0.004 − 1) = 45,000 / 0.996 = 45,180.7228915…
    qty, cost, margin = position(+1, BTC, px(50_000), usdt(5_000))
    lp = lp_usdt(qty, cost, margin)
    assert lp == Fraction(45_000_000, 996)
    assert to_cent(lp) == Fraction("45180.72")
    # to the tick: the highest tick at which the long is liquidated is 45,180.7
    assert liquidation_tick(INST, qty, cost, margin) == 451_807 == px("45180.7")
    assert is_liquidatable(INST, qty, cost, margin, 451_807)
    assert not is_liquidatable(INST, qty, cost, margin, 451_808)
    assert brute_edge(qty, cost, margin, 440_000, 460_000) == 451_807


def test_worked_example_bankruptcy_prices_long_and_short() -> None:
    # long: equity 5,000 + (P − 50,000) = 0 at P = 45,000; short: at P = 55,000
    assert bankruptcy_tick(INST, *position(+1, BTC, px(50_000), usdt(5_000))) == px(45_000)
    assert bankruptcy_tick(INST, *position(-1, BTC, px(50_000), usdt(5_000))) == px(55_000)


def test_bankruptcy_rounds_towards_a_non_negative_equity() -> None:
    # long 0.003 BTC at 50,000 with 1.01 USDT: cost 150 → P = 148.99 / 0.003 = 49,663.333…
    qty, cost, margin = position(+1, 3, px(50_000), usdt("1.01"))
    assert bankruptcy_tick(INST, qty, cost, margin) == 496_634  # rounded up for a long
    # short 0.003 BTC at 50,000 with 1.01 USDT: P = 151.01 / 0.003 = 50,336.666… → down
    qty, cost, margin = position(-1, 3, px(50_000), usdt("1.01"))
    assert bankruptcy_tick(INST, qty, cost, margin) == 503_366
    # a long with margin ≥ its cost cannot go bankrupt above zero: the floor is tick 1
    qty, cost, margin = position(+1, BTC, px(50_000), usdt(50_000))
    assert bankruptcy_tick(INST, qty, cost, margin) == 1
    assert liquidation_tick(INST, qty, cost, margin) == NO_LIQUIDATION_LONG
    assert not is_liquidatable(INST, qty, cost, margin, 1)


def test_flat_position_has_no_prices() -> None:
    assert liquidation_tick(INST, 0, 0, 0) == 0
    assert bankruptcy_tick(INST, 0, 0, 0) == 0
    assert liquidation_price_exact(INST, 0, 0, 0) == (0, 1)
    assert not is_liquidatable(INST, 0, 0, 0, 1)


# ---------------------------------------------------------------- shorts


def test_short_worked_example_within_the_first_bracket() -> None:
    # short 0.5 BTC at 40,000 with WB 2,000, MMR 0.4 %, cum 0:
    # LP = (2,000 + 0 + 0.5 × 40,000) / (0.5 × 0.004 + 0.5) = 22,000 / 0.502 = 43,824.7011…
    # notional at LP = 21,912 ≤ 50,000: bracket 0 holds
    qty, cost, margin = position(-1, 500, px(40_000), usdt(2_000))
    lp = lp_usdt(qty, cost, margin)
    assert lp == Fraction(22_000_000, 502)
    assert to_cent(lp) == Fraction("43824.70")
    # a short is liquidated when the mark is at or above the edge: 438,247.01… → 438,248
    assert liquidation_tick(INST, qty, cost, margin) == 438_248
    assert is_liquidatable(INST, qty, cost, margin, 438_248)
    assert not is_liquidatable(INST, qty, cost, margin, 438_247)
    assert brute_edge(qty, cost, margin, 430_000, 445_000) == 438_248


def test_short_worked_example_that_changes_bracket() -> None:
    # short 1 BTC at 50,000 with WB 5,000. Bracket 0 (0.4 %, cum 0) gives
    # (5,000 + 50,000) / 1.004 = 54,780.88, whose notional 54,780 lies in bracket 1
    # (0.5 %, cum 50): LP = (5,000 + 50 + 50,000) / 1.005 = 54,776.1194… → 54,776.12
    qty, cost, margin = position(-1, BTC, px(50_000), usdt(5_000))
    lp = lp_usdt(qty, cost, margin)
    assert lp == Fraction(55_050_000, 1_005)
    assert to_cent(lp) == Fraction("54776.12")
    tick = liquidation_tick(INST, qty, cost, margin)
    assert tick == 547_762  # not 547,809, the bracket-0 answer
    assert INST.bracket_index(tick * BTC * LV) == 1
    assert brute_edge(qty, cost, margin, 540_000, 555_000) == 547_762


# ---------------------------------------------------------------- bracket changes


def test_long_whose_liquidation_notional_falls_one_bracket_lower() -> None:
    # long 6 BTC at 50,000 (notional 300,000: bracket 2, 1 %, cum 1,300) with WB 60,000.
    # Bracket 2: (60,000 + 1,300 − 300,000) / (0.06 − 6) = 40,185.19 → notional 241,111,
    # bracket 1 (0.5 %, cum 50): (60,000 + 50 − 300,000) / (0.03 − 6) = 40,192.6298…
    qty, cost, margin = position(+1, 6 * BTC, px(50_000), usdt(60_000))
    lp = lp_usdt(qty, cost, margin)
    assert lp == Fraction(239_950_000, 5_970)
    assert to_cent(lp) == Fraction("40192.63")
    tick = liquidation_tick(INST, qty, cost, margin)
    assert tick == 401_926
    assert INST.bracket_index(tick * 6 * BTC * LV) == 1
    assert brute_edge(qty, cost, margin, 395_000, 410_000) == 401_926


def test_long_crossing_from_bracket_1_to_bracket_0() -> None:
    # long 1.1 BTC at 50,000 (55,000: bracket 1) with WB 11,000:
    # bracket 1: (11,000 + 50 − 55,000) / (1.1 × 0.005 − 1.1) = 40,155.32 → notional 44,171
    # bracket 0: (11,000 − 55,000) / (1.1 × 0.004 − 1.1) = 44,000 / 1.0956 = 40,160.6426…
    qty, cost, margin = position(+1, 1_100, px(50_000), usdt(11_000))
    assert lp_usdt(qty, cost, margin) == Fraction(440_000_000, 10_956)
    assert liquidation_tick(INST, qty, cost, margin) == 401_606
    assert brute_edge(qty, cost, margin, 395_000, 410_000) == 401_606


def test_large_positions_across_many_brackets_agree_with_brute_force() -> None:
    # (side, BTC, entry USDT, leverage): notionals from 0.3 M to 45 M USDT
    cases = [
        (+1, 6, 50_000, 20),
        (+1, 25, 40_000, 10),
        (-1, 30, 40_000, 10),
        (+1, 300, 60_000, 4),
        (-1, 500, 30_000, 5),
        (-1, 900, 50_000, 1),
    ]
    for side, n_btc, entry, lev in cases:
        lots = n_btc * BTC
        qty, cost, _ = position(side, lots, px(entry), 0)
        margin = initial_margin(abs(cost), lev)
        tick = liquidation_tick(INST, qty, cost, margin)
        lo, hi = max(1, tick - 3_000), tick + 3_000
        assert brute_edge(qty, cost, margin, lo, hi) == tick, (side, n_btc, entry, lev)
        # the exact price lies within the tick that is its edge
        lp = Fraction(*liquidation_price_exact(INST, qty, cost, margin))
        if side > 0:
            assert tick <= lp < tick + 1
        else:
            assert tick - 1 < lp <= tick


def _binary_edge(qty: int, cost: int, margin: int) -> int:
    """The edge by bisection over [0, 2**40] with nothing but the predicate."""
    liq = lambda p: p > 0 and is_liquidatable(INST, qty, cost, margin, p)  # noqa: E731
    lo, hi = 0, 2**40
    if qty > 0:  # largest p with liq(p) (0 when none)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if liq(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo
    lo = 1  # smallest p with liq(p)
    while lo < hi:
        mid = (lo + hi) // 2
        if liq(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from([1, -1]),
    lots=st.integers(1, 1_000_000),
    entry=st.integers(5_568, 2_000_000),
    lev=st.integers(1, 125),
    extra=st.integers(0, 10**13),
)
def test_liquidation_tick_is_the_edge_of_the_predicate(
    side: int, lots: int, entry: int, lev: int, extra: int
) -> None:
    qty, cost, _ = position(side, lots, entry, 0)
    margin = initial_margin(abs(cost), lev) + extra % (abs(cost) + 1)
    tick = liquidation_tick(INST, qty, cost, margin)
    assert tick == _binary_edge(qty, cost, margin)
    if side > 0:
        assert tick == 0 or is_liquidatable(INST, qty, cost, margin, tick)
        assert not is_liquidatable(INST, qty, cost, margin, tick + 1)
    else:
        assert is_liquidatable(INST, qty, cost, margin, tick)
        assert tick == 1 or not is_liquidatable(INST, qty, cost, margin, tick - 1)


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from([1, -1]),
    lots=st.integers(1, 1_000_000),
    entry=st.integers(5_568, 2_000_000),
    margin=st.integers(0, 10**15),
)
def test_bankruptcy_tick_is_the_last_tick_with_non_negative_equity(
    side: int, lots: int, entry: int, margin: int
) -> None:
    qty, cost, _ = position(side, lots, entry, 0)
    bk = bankruptcy_tick(INST, qty, cost, margin)
    equity = lambda p: margin + qty * p * LV - cost  # noqa: E731
    if side > 0:
        assert bk >= 1
        assert equity(bk) >= 0
        assert bk == 1 or equity(bk - 1) < 0
    else:
        assert bk < 0 or equity(bk) >= 0
        assert equity(bk + 1) < 0
