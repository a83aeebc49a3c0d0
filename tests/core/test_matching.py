"""Matching: price-time priority, partial fills, the price band, fees, fill events."""

from __future__ import annotations

from exchange.core import Exchange
from exchange.core import events as E

from .conftest import (
    BAND_HI,
    FUNDS,
    LOT_VALUE,
    MAKER_FEE,
    MID,
    SYM,
    TAKER_FEE,
    accepted,
    available,
    fills,
    limit,
    make_exchange,
    market,
    one,
    place,
    position,
    queue,
    set_index,
)


def fee(notional: int, rate: int) -> int:
    """The fee charged: notional × rate rounded up (toward +inf), in quanta."""
    return -((-notional * rate) // 10**8)


# ---------------------------------------------------------------- priority


def test_better_price_fills_first_whatever_the_arrival(ex: Exchange) -> None:
    worse = limit(ex, 2, "SELL", 1, MID + 20)
    better = limit(ex, 3, "SELL", 1, MID + 10)
    best = limit(ex, 2, "SELL", 1, MID)
    events = place(ex, 1, "BUY", 3, MID + 20)
    assert [(f.maker_order_id, f.price) for f in fills(events)] == [
        (best, MID),
        (better, MID + 10),
        (worse, MID + 20),
    ]


def test_same_price_fills_in_arrival_order(ex: Exchange) -> None:
    makers = [limit(ex, a, "BUY", 1, MID) for a in (2, 3, 2, 3)]
    events = place(ex, 1, "SELL", 3, MID - 100)
    assert [f.maker_order_id for f in fills(events)] == makers[:3]
    assert all(f.price == MID for f in fills(events))  # the taker gets the maker's price
    assert queue(ex)[0] == [(MID, makers[3], 1)]


def test_a_partially_filled_maker_keeps_the_head_of_its_queue(ex: Exchange) -> None:
    first = limit(ex, 2, "SELL", 5, MID)
    second = limit(ex, 3, "SELL", 5, MID)
    f1 = one(place(ex, 1, "BUY", 2, MID), E.OrderFilled)
    assert (f1.maker_order_id, f1.qty, f1.maker_remaining) == (first, 2, 3)
    assert queue(ex)[1] == [(MID, first, 3), (MID, second, 5)]
    got = fills(place(ex, 1, "BUY", 4, MID))
    assert [(f.maker_order_id, f.qty) for f in got] == [(first, 3), (second, 1)]
    view = ex.order_view(3, SYM, order_id=second)
    assert view is not None and (view.status, view.filled, view.remaining) == (
        "PARTIALLY_FILLED",
        1,
        4,
    )


# ---------------------------------------------------------------- fill events


def test_one_fill_event_per_match_with_both_sides(ex: Exchange) -> None:
    m1 = limit(ex, 2, "SELL", 2, MID)
    m2 = limit(ex, 3, "SELL", 3, MID + 10)
    events = place(ex, 1, "BUY", 4, MID + 10)
    taker = accepted(events).order_id
    f = fills(events)
    assert len(f) == 2
    assert [
        (
            x.taker_order_id,
            x.maker_order_id,
            x.taker_account,
            x.maker_account,
            x.taker_side,
            x.price,
            x.qty,
            x.taker_remaining,
            x.maker_remaining,
            x.liquidation,
        )
        for x in f
    ] == [
        (taker, m1, 1, 2, "BUY", MID, 2, 2, 0, False),
        (taker, m2, 1, 3, "BUY", MID + 10, 2, 0, 1, False),
    ]
    assert f[1].trade_id == f[0].trade_id + 1
    assert ex.last_trade(SYM) == (MID + 10, 2, 0)


def test_fees_on_every_fill_are_exact(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    limit(ex, 3, "SELL", 3, MID + 1)
    events = place(ex, 1, "BUY", 5, MID + 1)
    got = [(f.taker_fee, f.maker_fee) for f in fills(events)]
    n1, n2 = MID * 2 * LOT_VALUE, (MID + 1) * 3 * LOT_VALUE
    assert got == [(5_000_000, 2_000_000), (7_500_015, 3_000_006)]
    assert got == [
        (fee(n1, TAKER_FEE), fee(n1, MAKER_FEE)),
        (fee(n2, TAKER_FEE), fee(n2, MAKER_FEE)),
    ]
    assert ex.fees_collected["USDT"] == sum(t + m for t, m in got)


def test_fees_leave_the_accounts(ex: Exchange) -> None:
    """Open then close at the same price: each side is down exactly its two fees."""
    limit(ex, 2, "SELL", 2, MID)
    place(ex, 1, "BUY", 2, MID)
    limit(ex, 2, "BUY", 2, MID)
    place(ex, 1, "SELL", 2, MID)
    notional = 2 * MID * LOT_VALUE
    assert position(ex, 1) == position(ex, 2) == 0
    assert available(ex, 1) == FUNDS - 2 * fee(notional, TAKER_FEE)
    assert available(ex, 2) == FUNDS - 2 * fee(notional, MAKER_FEE)


def test_fractional_fees_round_up_in_the_exchanges_favour() -> None:
    ex = make_exchange(maker_fee=12_345, taker_fee=33_333)
    limit(ex, 2, "SELL", 1, MID + 1)
    f = one(place(ex, 1, "BUY", 1, MID + 1), E.OrderFilled)
    notional = (MID + 1) * LOT_VALUE  # 5_000_010_000 quanta
    assert (f.maker_fee, f.taker_fee) == (617_252, 1_666_654)  # 617_251.23.., 1_666_653.33..
    assert (f.maker_fee, f.taker_fee) == (fee(notional, 12_345), fee(notional, 33_333))
    ex._check()


def test_a_maker_rebate_is_paid_to_the_maker() -> None:
    ex = make_exchange(maker_fee=-10_000)
    limit(ex, 2, "SELL", 1, MID)
    place(ex, 1, "BUY", 1, MID)
    limit(ex, 2, "BUY", 1, MID)
    f = one(place(ex, 1, "SELL", 1, MID), E.OrderFilled)
    assert f.maker_fee == -500_000
    assert available(ex, 2) == FUNDS + 2 * 500_000
    ex._check()


# ---------------------------------------------------------------- the price band


def test_market_buy_never_sweeps_beyond_the_band(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    limit(ex, 2, "SELL", 1, 514_500)
    limit(ex, 3, "SELL", 3, 514_600)
    limit(ex, 3, "SELL", 2, 520_000)
    set_index(ex, 490_000)  # band edge now 490_000 × 1.05 = 514_500
    events = market(ex, 1, "BUY", 10)
    assert [(f.price, f.qty) for f in fills(events)] == [(MID, 2), (514_500, 1)]
    expired = one(events, E.OrderExpired)
    assert (expired.remaining, expired.reason) == (7, "PRICE_BAND")
    assert [(p, q) for p, _, q in queue(ex)[1]] == [(514_600, 3), (520_000, 2)]
    assert position(ex, 1) == 3


def test_market_sell_never_sweeps_beyond_the_band(ex: Exchange) -> None:
    limit(ex, 2, "BUY", 2, MID)
    limit(ex, 2, "BUY", 1, 484_500)
    limit(ex, 3, "BUY", 3, 484_400)
    set_index(ex, 510_000)  # band edge now ceil(510_000 × 0.95) = 484_500
    events = market(ex, 1, "SELL", 10)
    assert [(f.price, f.qty) for f in fills(events)] == [(MID, 2), (484_500, 1)]
    expired = one(events, E.OrderExpired)
    assert (expired.remaining, expired.reason) == (7, "PRICE_BAND")
    assert [(p, q) for p, _, q in queue(ex)[0]] == [(484_400, 3)]


def test_a_limit_at_the_band_edge_is_accepted(ex: Exchange) -> None:
    up = limit(ex, 2, "SELL", 1, BAND_HI)
    events = market(ex, 1, "BUY", 2)
    assert [(f.maker_order_id, f.price) for f in fills(events)] == [(up, BAND_HI)]
    assert one(events, E.OrderExpired).reason == "NO_LIQUIDITY"


def test_partial_fills_add_up(ex: Exchange) -> None:
    big = limit(ex, 2, "SELL", 10, MID)
    total = 0
    for qty in (3, 1, 4):
        f = one(place(ex, 1, "BUY", qty, MID), E.OrderFilled)
        total += qty
        assert (f.maker_order_id, f.qty, f.maker_remaining) == (big, qty, 10 - total)
    view = ex.order_view(2, SYM, order_id=big)
    assert view is not None and (view.filled, view.remaining) == (8, 2)
    assert position(ex, 1) == 8 and position(ex, 2) == -8
    last = fills(place(ex, 1, "BUY", 5, MID, time_in_force="IOC"))
    assert [(f.qty, f.maker_remaining) for f in last] == [(2, 0)]
    view = ex.order_view(2, SYM, order_id=big)
    assert view is not None and view.status == "FILLED"
    assert queue(ex) == ([], [])
