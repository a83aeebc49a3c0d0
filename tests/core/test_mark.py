"""Mark price methods (issue 3, item 3): `index`, `last`, `mid`, `median`, and the
MarkPriceChanged event that every change of mark emits.

`median` is the median of
  p1 = index × (1 + funding rate × time to funding / interval),
  p2 = index + time-weighted moving average of (mid − index): one sample per second of
       engine time, over `basis_window` seconds (see exchange.core.premium),
  p3 = last trade price (the index before any trade);
the scenarios below are built so that each of the three is the median in turn.
Instruments are the shipped BTCUSDT with `dataclasses.replace(inst, mark_method=...)`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.numbers import RATE_ONE
from tests.core.helpers_margin import FUNDS, HOUR, INTERVAL, SYM, Sim, btc, first, of, px

SECOND = 10**9


def sim(method: str, index: int | None = None, **changes: Any) -> Sim:
    inst = replace(btc(**changes), mark_method=method)
    return Sim(inst, index=index, accounts={a: FUNDS for a in (1, 2, 3, 4)})


def marks(events: list[E.Event]) -> list[int]:
    return [e.mark for e in of(events, E.MarkPriceChanged)]


def assert_mark_event_matches_market(s: Sim, events: list[E.Event]) -> None:
    mv = s.ex.market_view(SYM)
    e = of(events, E.MarkPriceChanged)[-1]
    assert (e.symbol, e.mark, e.index, e.last) == (SYM, mv.mark, mv.index, mv.last)
    assert (e.funding_rate, e.next_funding_ts) == (mv.funding_rate, mv.next_funding_ts)


# ---------------------------------------------------------------- index


def test_index_method_follows_the_index() -> None:
    s = sim("index")
    evs = s.index(px(50_000))
    assert s.mark == px(50_000)
    assert marks(evs) == [px(50_000)]
    assert_mark_event_matches_market(s, evs)
    s.trade(buyer=1, seller=2, qty=100, price=px(51_000))  # trades do not move it
    assert s.mark == px(50_000)
    evs = s.index(px(49_000))
    assert marks(evs) == [px(49_000)]
    ev = first(evs, E.MarkPriceChanged)
    assert (ev.index, ev.last) == (px(49_000), px(51_000))
    # the same index again changes nothing and emits no mark event
    assert marks(s.index(px(49_000))) == []


# ---------------------------------------------------------------- last


def test_last_method_follows_trades_and_falls_back_to_the_index() -> None:
    s = sim("last")
    assert marks(s.index(px(50_000))) == [px(50_000)]  # no trade yet: the index
    s.limit(2, "SELL", 100, px(50_100))
    evs = s.limit(1, "BUY", 100, px(50_100))
    assert s.mark == px(50_100)
    assert marks(evs) == [px(50_100)]
    assert_mark_event_matches_market(s, evs)
    assert first(evs, E.MarkPriceChanged).last == px(50_100)
    # an index move does not move a last-price mark once there is a trade
    evs = s.index(px(49_000))
    assert marks(evs) == [] and s.mark == px(50_100)


# ---------------------------------------------------------------- mid


def test_mid_method_is_the_rounded_down_middle_of_the_best_prices() -> None:
    s = sim("mid")
    s.index(px(50_000))
    assert s.mark == px(50_000)  # empty book, no trade: the index
    s.limit(1, "BUY", 100, 499_999)
    assert s.mark == px(50_000)  # one side only: still the fallback
    evs = s.limit(2, "SELL", 100, 500_002)
    assert s.mark == 500_000  # (499,999 + 500,002) // 2
    assert marks(evs) == []  # the same value: no event
    evs = s.limit(2, "SELL", 100, 500_001)
    assert s.mark == 500_000
    assert marks(evs) == []
    evs = s.limit(1, "BUY", 100, 500_001)  # takes the 500,001 ask: mid (499,999+500,002)//2
    assert s.mark == 500_000
    evs = s.limit(2, "SELL", 100, 500_101)
    evs = s.limit(1, "BUY", 100, 500_003)  # bid 500,003 vs ask 500,002: trades, then mid
    assert s.mark == (499_999 + 500_101) // 2
    assert_mark_event_matches_market(s, evs)


def test_mid_falls_back_to_the_last_trade_when_one_side_is_empty() -> None:
    s = sim("mid")
    s.index(px(50_000))
    s.limit(2, "SELL", 100, px(50_200))
    evs = s.limit(1, "BUY", 100, px(50_200))  # book empty again, last 50,200
    assert s.mark == px(50_200)
    assert_mark_event_matches_market(s, evs)


# ---------------------------------------------------------------- median


def p1(index: int, rate: int, to_funding: int) -> int:
    return index + index * rate * to_funding // (RATE_ONE * INTERVAL)


def test_median_picks_the_funding_basis_component() -> None:
    # book 50,010 / 50,030 around an index of 50,000, no trade:
    # premium (50,010 − 50,000) / 50,000 = 0.02 % → rate 0.02 % + clamp(0.01 − 0.02) = 0.01 %
    # at t = 0 the basis window holds one second of basis 20 out of 300: p2 = 50,000.0,
    # p1 = 50,000 × (1 + 0.0001 × 8h/8h) = 50,005, p3 = 50,000 (no trade) → the median 50,000
    s = sim("median")
    s.limit(1, "BUY", 100, px(50_010))
    s.limit(2, "SELL", 100, px(50_030))
    evs = s.index(px(50_000))
    mv = s.ex.market_view(SYM)
    assert mv.funding_rate == 10_000
    assert p1(px(50_000), 10_000, INTERVAL) == px(50_005)
    assert s.mark == px(50_000)
    assert_mark_event_matches_market(s, evs)
    # at 4h the window is full of basis 20 (p2 = 50,020) and the funding term has halved:
    # 50,000 × 0.0001 × 4h/8h = 2.5 → p1 = 50,002.5 is the median
    evs = s.index(px(50_000), ts=4 * HOUR)
    assert s.mark == 500_025
    assert marks(evs) == [500_025]
    assert_mark_event_matches_market(s, evs)


def test_median_picks_the_last_price() -> None:
    # a trade at 50,010 leaves 0.1 BTC bid there; the ask at 50,030; after a full window:
    # p1 = 50,004.9, p2 = 50,000 + 20 = 50,020, p3 = 50,010 → 50,010
    s = sim("median")
    s.limit(1, "BUY", 200, px(50_010))
    s.limit(2, "SELL", 100, px(50_010))
    s.limit(2, "SELL", 100, px(50_030))
    s.index(px(50_000))
    s.index(px(50_000), ts=300 * SECOND)
    assert p1(px(50_000), 10_000, INTERVAL - 300 * SECOND) == 500_049
    assert s.mark == px(50_010)


def test_median_picks_the_time_weighted_moving_average_of_the_basis() -> None:
    # window 4 s. The last trade at 50,040 is high, p1 ≈ 50,005 low, p2 in between.
    # basis 20 (book 50,010 / 50,030) from t = 0: seconds 0 and 1; at t = 2 s the bid moves
    # to 50,000 (basis 15): seconds 2 and 3. At t = 3.5 s the window is seconds 0..3:
    # (20 + 20 + 15 + 15) / 4 = 17.5 → p2 = 50,017.5, the median.
    s = sim("median", basis_window=4)
    s.limit(1, "BUY", 100, px(50_040))
    s.limit(2, "SELL", 100, px(50_040))  # last 50,040, book empty
    b = first(s.limit(3, "BUY", 100, px(50_010)), E.OrderAccepted).order_id
    s.limit(4, "SELL", 100, px(50_030))
    s.index(px(50_000))
    assert s.mark == px(50_005)  # p2 = 50,000 + 20/4 = 50,005 ≤ p1 = 50,005: p1's tie
    s.index(px(50_000), ts=SECOND)
    assert s.mark == px(50_010)  # two of four seconds: 50,000 + 40/4
    s.ok(C.CancelOrder(account=3, symbol=SYM, order_id=b, ts=2 * SECOND))
    s.ok(s.order(3, "BUY", 100, px(50_000), ts=2 * SECOND))  # mid 50,015: basis 15
    evs = s.index(px(50_000), ts=3 * SECOND + SECOND // 2)
    assert s.mark == px("50017.5")
    assert marks(evs) == [px("50017.5")]
    assert_mark_event_matches_market(s, evs)
    # a one-sided book contributes nothing: cancel the ask; four seconds later the window
    # holds only zeros, p2 = the index, and p1 is the median
    ask = s.ex.open_orders(4, SYM)[0].order_id
    s.ok(C.CancelOrder(account=4, symbol=SYM, order_id=ask, ts=4 * SECOND))
    s.index(px(50_000), ts=7 * SECOND + SECOND // 2)
    assert s.mark == p1(px(50_000), 10_000, INTERVAL - 7 * SECOND - SECOND // 2)


def test_seconds_without_a_command_count_the_standing_basis() -> None:
    # the basis 20 stands from t = 0; a single index update 10 minutes later sees a full
    # window of 20s (the book did not change, so every second sampled it), not one sample
    s = sim("median", basis_window=300)
    s.limit(3, "BUY", 100, px(50_050))
    s.limit(4, "SELL", 100, px(50_050))  # last 50,050 (p3 above p2), book empty
    s.limit(1, "BUY", 100, px(50_010))
    s.limit(2, "SELL", 100, px(50_030))
    s.index(px(50_000))
    s.index(px(50_000), ts=600 * SECOND)
    assert s.mark == px(50_020)


def test_median_without_an_index_uses_the_last_price() -> None:
    s = sim("median")
    s.limit(2, "SELL", 100, px(50_000))
    evs = s.limit(1, "BUY", 100, px(50_000))
    assert s.mark == px(50_000)
    assert marks(evs) == [px(50_000)]


# ---------------------------------------------------------------- the event


def test_every_mark_change_emits_one_event_with_the_market_state() -> None:
    """Across a program of index moves, trades, cancels and a funding time, under each
    method: whenever the mark differs after a command, the command emitted a
    MarkPriceChanged whose fields equal the market's; consecutive events differ."""
    for method in ("index", "last", "mid", "median"):
        s = sim(method, index=px(50_000))
        seen: list[int] = [s.mark]
        program = [
            lambda s: s.limit(1, "BUY", 200, px(49_990)),
            lambda s: s.limit(2, "SELL", 200, px(50_020)),
            lambda s: s.index(px(50_100)),
            lambda s: s.limit(3, "SELL", 100, px(49_990)),
            lambda s: s.index(px(49_950), ts=HOUR),
            lambda s: s.limit(4, "BUY", 150, px(50_020)),
            lambda s: s.ok(C.CancelAllOrders(account=1, symbol=SYM)),
            lambda s: s.limit(3, "BUY", 100, px(49_900)),
            lambda s: s.index(px(49_800), ts=2 * HOUR),
            lambda s: s.clock(INTERVAL + HOUR),
            lambda s: s.index(px(49_800), ts=INTERVAL + 2 * HOUR),
        ]
        for step in program:
            before = s.mark
            evs = step(s)
            ms = marks(evs)
            for e in of(evs, E.MarkPriceChanged):
                assert e.mark != seen[-1], (method, "repeated mark event")
                seen.append(e.mark)
            if s.mark != before:
                assert ms, (method, "mark changed without an event")
                assert_mark_event_matches_market(s, evs)
            assert s.mark == seen[-1], method
        assert len(seen) > 2, method
