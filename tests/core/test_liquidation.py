"""Liquidations (issue 3, items 6 and 7): the default Binance-like policy, the insurance
fund, auto-deleveraging and cascades.

The liquidated long of most scenarios is the worked example: 1 BTC bought at 50,000 at
10× (5,000 of isolated margin), liquidated at a mark ≤ 45,180.7, bankrupt at 45,000.
Fees are zero (liquidation orders pay none anyway) so every amount is plain arithmetic.
`Sim` checks every invariant after each command, including that no account (the
insurance fund included) holds a negative balance.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.margin import bankruptcy_tick, is_liquidatable, liquidation_tick
from tests.core.helpers_margin import BTC, FUND, FUNDS, LV, SYM, Sim, btc, first, of, px, usdt

L, M, B, S = 1, 2, 3, 4  # liquidated long, its counterparty, a bidder, another trader
LIQ = 451_807  # the worked example's liquidation tick
BK = px(45_000)  # and its bankruptcy price


def worked_example(**kw: Any) -> Sim:
    """L long 1 BTC at 50,000 with 5,000 margin (10×) against M; mark 47,000; B (2×)
    will provide the bids."""
    s = Sim(accounts={L: usdt(10_000), M: FUNDS, B: FUNDS, S: FUNDS}, **kw)
    s.leverage(L, 10)
    s.leverage(B, 2)  # the bidder stays safe whatever it buys
    s.trade(buyer=L, seller=M, qty=BTC, price=px(50_000))
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (LIQ, BK)
    s.index(px(47_000))
    return s


def kinds(events: list[E.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------- the default policy


def test_crossing_the_liquidation_price_liquidates_in_the_same_command() -> None:
    s = worked_example()
    s.limit(B, "BUY", BTC, px(46_000))
    assert not of(s.index(LIQ + 1), E.PositionLiquidated)  # one tick above: safe
    evs = s.index(LIQ)
    pl = first(evs, E.PositionLiquidated)
    assert (pl.account, pl.side, pl.qty, pl.trigger_mark) == (L, "LONG", BTC, LIQ)
    assert (pl.liquidation_price, pl.bankruptcy_price) == (LIQ, BK)
    assert s.qty(L) == 0


def test_open_orders_are_cancelled_then_an_ioc_at_bankruptcy_takes_from_the_book() -> None:
    s = worked_example()
    # L's own bid is the best bid: were it not cancelled first, L would trade with itself
    bid = first(s.limit(L, "BUY", 100, px(48_000)), E.OrderAccepted).order_id
    tp = s.ok(
        s.order(L, "SELL", BTC, type="TAKE_PROFIT_MARKET", stop_price=px(55_000), reduce_only=True)
    )
    tp_id = first(tp, E.OrderAccepted).order_id
    s.limit(B, "BUY", 600, px(46_000))
    evs = s.index(px(45_100))
    names = kinds(evs)
    cancels = of(evs, E.OrderCanceled)
    assert {(c.order_id, c.reason) for c in cancels} == {
        (bid, "LIQUIDATION"),
        (tp_id, "LIQUIDATION"),
    }
    fill = first(evs, E.OrderFilled)
    assert names.index("OrderCanceled") < names.index("OrderFilled")
    assert names.index("OrderFilled") < names.index("PositionLiquidated")
    assert names.index("PositionLiquidated") < names.index("CascadeEnded")
    # the IOC at 45,000 takes the bid at 46,000 as a taker, without fee
    assert (fill.taker_account, fill.maker_account, fill.taker_side) == (L, B, "SELL")
    assert (fill.price, fill.qty, fill.liquidation, fill.taker_fee) == (px(46_000), 600, True, 0)
    assert s.ex.open_orders(L, SYM) == []
    assert s.reserved(L) == 0
    # what did not fill (0.4 BTC) is taken over by the insurance fund at 45,000
    pl = first(evs, E.PositionLiquidated)
    assert pl.fills == ((px(46_000), 600),)
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (600, 400, 0)
    fund_pos = [e for e in of(evs, E.PositionChanged) if e.account == FUND][-1]
    assert (fund_pos.qty, fund_pos.cost) == (400, 400 * BK * LV)
    assert s.qty(FUND) == 400
    # the 0.6 BTC filled 1,000 above bankruptcy: 600 USDT of margin is left for the fund
    assert s.fund() == usdt(600)
    # insurance_delta is the fund's cash; its new position's profit shows in its position
    assert pl.insurance_delta == usdt(600)
    assert (s.qty(L), s.qty(B), s.qty(M)) == (0, 600, -BTC)
    # L keeps its wallet (the order's reservation came back), loses the margin
    assert s.avail(L) == usdt(5_000)


def test_fills_better_than_bankruptcy_feed_the_fund_exactly_the_leftover_margin() -> None:
    s = worked_example()
    s.limit(B, "BUY", BTC // 2, px(46_100))
    s.limit(B, "BUY", BTC // 2, px(45_500))
    before = s.fund()
    evs = s.index(px(45_100))
    pl = first(evs, E.PositionLiquidated)
    assert pl.fills == ((px(46_100), 500), (px(45_500), 500))
    # margin 5,000 − loss (0.5 × 3,900 + 0.5 × 4,500) = 800
    assert s.fund() - before == usdt(800) == pl.insurance_delta
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (BTC, 0, 0)
    ce = first(evs, E.CascadeEnded)
    assert (ce.insurance_before, ce.insurance_after) == (before, before + usdt(800))
    assert s.qty(FUND) == 0
    assert s.avail(L) == usdt(5_000)


def test_fill_exactly_at_bankruptcy_leaves_nothing_for_the_fund() -> None:
    s = worked_example()
    s.limit(B, "BUY", BTC, BK)
    evs = s.index(px(45_100))
    pl = first(evs, E.PositionLiquidated)
    assert pl.fills == ((BK, BTC),)
    assert pl.insurance_delta == 0 and s.fund() == 0


def test_short_liquidation_buys_back_at_its_bankruptcy_price() -> None:
    # short 1 BTC at 50,000 with 5,000: bankrupt at 55,000, liquidated at ≥ 54,776.2
    s = Sim(accounts={L: usdt(10_000), M: FUNDS, B: FUNDS})
    s.leverage(L, 10)
    s.trade(buyer=M, seller=L, qty=BTC, price=px(50_000))
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (547_762, px(55_000))
    s.index(px(53_000))
    s.limit(B, "SELL", BTC, px(54_000))
    assert not of(s.index(547_761), E.PositionLiquidated)
    evs = s.index(547_762)
    pl = first(evs, E.PositionLiquidated)
    assert (pl.side, pl.fills, pl.bankruptcy_price) == ("SHORT", ((px(54_000), BTC),), px(55_000))
    fill = first(evs, E.OrderFilled)
    assert (fill.taker_side, fill.liquidation) == ("BUY", True)
    assert s.fund() == usdt(1_000) == pl.insurance_delta
    assert s.qty(L) == 0


# ---------------------------------------------------------------- ADL


def adl_market() -> tuple[Sim, dict[str, int]]:
    """Three shorts with different entries and leverages, a safe long and the long L
    (1 BTC: 0.7 at 50,000 and 0.3 at 49,000, 10×; bankrupt at 44,730)."""
    M1, M2, M3, SAFE = 11, 12, 13, 14
    s = Sim(accounts={L: usdt(10_000), M1: FUNDS, M2: FUNDS, M3: FUNDS, SAFE: FUNDS})
    for a, lev in ((L, 10), (M1, 5), (M2, 20), (M3, 10), (SAFE, 2)):
        s.leverage(a, lev)
    s.trade(buyer=SAFE, seller=M1, qty=500, price=px(51_000))
    s.trade(buyer=L, seller=M2, qty=700, price=px(50_000))
    s.limit(M3, "SELL", 800, px(49_000))
    s.limit(L, "BUY", 300, px(49_000))
    s.limit(SAFE, "BUY", 500, px(49_000))
    assert s.pos(L).bankruptcy_price == 447_300
    return s, {"M1": M1, "M2": M2, "M3": M3, "SAFE": SAFE}


def adl_rank(s: Sim, accounts: list[int], mark: int) -> list[int]:
    """Profit % × effective leverage (notional / equity) at `mark`, highest first."""
    scores = []
    for a in accounts:
        st = s.seat(a)
        upnl = st.qty * mark * LV - st.cost
        notional = abs(st.qty) * mark * LV
        score = Fraction(upnl, abs(st.cost)) * Fraction(notional, st.margin + upnl)
        scores.append((-score, a))
    return [a for _, a in sorted(scores)]


def test_loss_the_fund_cannot_cover_is_auto_deleveraged_by_rank() -> None:
    s, ids = adl_market()
    m1, m2, m3 = ids["M1"], ids["M2"], ids["M3"]
    shock = px(44_000)  # a gap below L's bankruptcy price with an empty book
    rank = adl_rank(s, [m1, m2, m3], shock)
    assert rank == [m2, m3, m1]  # scores 0.62, 0.45, 0.35
    evs = s.index(shock)
    adl = of(evs, E.PositionAutoDeleveraged)
    assert [(e.account, e.qty, e.price) for e in adl] == [(m2, 700, 447_300), (m3, 300, 447_300)]
    # closed at L's bankruptcy price: realized (entry − 44,730) × qty
    assert adl[0].realized_pnl == 700 * (px(50_000) - 447_300) * LV
    assert adl[1].realized_pnl == 300 * (px(49_000) - 447_300) * LV
    pl = first(evs, E.PositionLiquidated)
    assert all(e.liquidation_id == pl.liquidation_id for e in adl)
    assert all(e.cascade_id == pl.cascade_id for e in adl)
    assert (pl.fills, pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == ((), 0, 0, BTC)
    assert pl.insurance_delta == 0 and s.fund() == 0
    assert first(evs, E.CascadeEnded).adl_count == 2
    assert (s.qty(L), s.qty(m2), s.qty(m3), s.qty(m1)) == (0, 0, -500, -500)
    # M2 got its margin and profit back in its wallet
    assert s.avail(m2) == FUNDS + adl[0].realized_pnl


def test_fund_takes_over_what_its_equity_bears_and_adl_does_the_rest() -> None:
    s, ids = adl_market()
    m1, m2, m3 = ids["M1"], ids["M2"], ids["M3"]
    # first a profitable liquidation fills the fund with 100 USDT: L0, the worked example
    L0, B0 = 20, 21
    s.account(L0, usdt(10_000))
    s.account(B0)
    s.leverage(L0, 10)
    s.trade(buyer=L0, seller=m1, qty=BTC, price=px(50_000))
    s.index(px(47_000))
    s.limit(B0, "BUY", BTC, px(45_100))
    evs = s.index(px(45_150))
    assert [e.account for e in of(evs, E.PositionLiquidated)] == [L0]
    assert s.fund() == usdt(100)
    # then a gap to 44,000: the fund loses 7,300 ticks × lot value per lot it takes over
    per_lot = (447_300 - px(44_000)) * LV
    takeover = usdt(100) // per_lot
    assert takeover == 136
    rank = adl_rank(s, [m1, m2, m3], px(44_000))
    evs = s.index(px(44_000))
    pl = [e for e in of(evs, E.PositionLiquidated) if e.account == L][0]
    assert (pl.fund_takeover_qty, pl.adl_qty) == (136, BTC - 136)
    assert s.qty(FUND) == 136
    adl = of(evs, E.PositionAutoDeleveraged)
    left = BTC - 136
    want = []
    for a in rank:
        n = min(left, -s.seat(a).qty + sum(e.qty for e in adl if e.account == a))
        if n:
            want.append((a, n))
        left -= n
    assert [(e.account, e.qty) for e in adl] == want == [(m2, 700), (m3, 164)]
    assert pl.insurance_delta == 0  # the fund's cash is untouched ...
    assert s.fund() == usdt(100)  # ... its equity (cash + its new position) bore the loss


# ---------------------------------------------------------------- cascades


def cascade_market() -> Sim:
    """Mark = last trade. L1 long at 50× (liq 49,196.7, bankrupt 49,000), L2 at 45×
    (liq 49,085.2, bankrupt 48,888.9), M short 2 BTC; B bids 0.1 at 49,150 and 2 BTC
    at 49,050."""
    s = Sim(btc(mark_method="last"), accounts={a: FUNDS for a in (1, 2, 3, 4, 5)})
    s.leverage(1, 50)
    s.leverage(2, 45)
    s.leverage(3, 2)
    s.leverage(4, 5)
    s.trade(buyer=1, seller=3, qty=BTC, price=px(50_000))
    s.trade(buyer=2, seller=3, qty=BTC, price=px(50_000))
    assert (s.pos(1).liquidation_price, s.pos(1).bankruptcy_price) == (491_967, 490_000)
    assert (s.pos(2).liquidation_price, s.pos(2).bankruptcy_price) == (490_852, 488_889)
    s.limit(4, "BUY", 100, px(49_150))
    s.limit(4, "BUY", 2 * BTC, px(49_050))
    return s


def test_cascade_generation_1_is_caused_by_generation_0_fills() -> None:
    s = cascade_market()
    evs = s.market(5, "SELL", 100)  # the outside move: last 49,150 ≤ L1's 49,196.7
    pls = of(evs, E.PositionLiquidated)
    assert [p.account for p in pls] == [1, 2]
    g0, g1 = pls
    assert (g0.generation, g0.parent_id, g0.trigger_mark) == (0, None, px(49_150))
    assert g0.fills == ((px(49_050), BTC),)
    # L1's fills at 49,050 moved the mark below L2's 49,085.2
    assert (g1.generation, g1.parent_id, g1.trigger_mark) == (1, g0.liquidation_id, px(49_050))
    assert g1.fills == ((px(49_050), BTC),)
    assert g0.cascade_id == g1.cascade_id
    assert g1.liquidation_id != g0.liquidation_id
    ce = first(evs, E.CascadeEnded)
    assert ce.cascade_id == g0.cascade_id
    left1 = usdt(1_000) - 950 * usdt(1)  # margin 1,000 − loss 950
    left2 = (usdt(50_000) // 45 + 1) - usdt(950)  # margin ceil(50,000 / 45) − loss 950
    assert (g0.insurance_delta, g1.insurance_delta) == (left1, left2)
    assert (ce.liquidations, ce.volume, ce.generations) == (2, 2 * BTC, 2)
    assert ce.price_path == (px(49_150), px(49_050))
    assert (ce.insurance_before, ce.insurance_after) == (0, left1 + left2)
    assert (ce.adl_count, ce.truncated) == (0, False)
    assert s.fund() == left1 + left2
    # every mark on the way was announced before the liquidation it caused
    names = kinds(evs)
    mpc = [i for i, n in enumerate(names) if n == "MarkPriceChanged"]
    liq = [i for i, n in enumerate(names) if n == "PositionLiquidated"]
    assert len(mpc) == 2 and mpc[0] < liq[0] < mpc[1] < liq[1] < names.index("CascadeEnded")
    assert (s.qty(1), s.qty(2), s.qty(4), s.qty(5)) == (0, 0, 2_100, -100)


def test_truncated_cascade_is_finished_by_the_next_command() -> None:
    s = worked_example(max_cascade_liquidations=1)
    s.account(5, usdt(10_000))
    s.leverage(5, 10)
    s.trade(buyer=5, seller=M, qty=BTC, price=px(47_000))  # liq lower than L's
    s.index(px(47_000))
    s.limit(B, "BUY", 2 * BTC, px(46_000))
    bk5 = bankruptcy_tick(s.inst, BTC, usdt(47_000), usdt(4_700))
    assert s.pos(5).bankruptcy_price == bk5
    evs = s.index(px(42_000))  # both are due; only one is allowed per cascade
    pls = of(evs, E.PositionLiquidated)
    assert [p.account for p in pls] == [L]
    ce = first(evs, E.CascadeEnded)
    assert (ce.liquidations, ce.truncated) == (1, True)
    assert s.qty(5) == BTC and s.seat(5).liquidating
    assert s.reject(s.order(5, "SELL", BTC, px(42_000))) == -2023
    evs = s.index(px(42_000))  # the same index: no mark move, yet the queue is worked
    pls2 = of(evs, E.PositionLiquidated)
    assert [p.account for p in pls2] == [5]
    assert pls2[0].generation == 0 and pls2[0].parent_id is None
    ce2 = first(evs, E.CascadeEnded)
    assert (ce2.liquidations, ce2.truncated) == (1, False)
    assert ce2.cascade_id == ce.cascade_id + 1
    assert s.qty(5) == 0 and not s.seat(5).liquidating


def test_queued_position_that_recovers_before_its_turn_is_not_liquidated() -> None:
    s = worked_example(max_cascade_liquidations=1)
    s.account(5, usdt(10_000))
    s.leverage(5, 10)
    s.trade(buyer=5, seller=M, qty=BTC, price=px(49_000))
    liq5 = liquidation_tick(s.inst, BTC, usdt(49_000), usdt(4_900))
    assert s.pos(5).liquidation_price == liq5 < LIQ
    s.limit(B, "BUY", 2 * BTC, px(46_000))
    evs = s.index(px(44_000))  # both due; L goes first (the higher liquidation price)
    assert [p.account for p in of(evs, E.PositionLiquidated)] == [L]
    assert s.seat(5).liquidating
    evs = s.index(px(46_000))  # back above 5's liquidation price before its turn
    assert not of(evs, E.PositionLiquidated)
    assert s.qty(5) == BTC and not s.seat(5).liquidating
    assert s.market_state.monitor.keys[5][1] == liq5
    s.limit(5, "SELL", 100, px(46_500))  # it may trade again


def test_liquidation_never_leaves_a_negative_balance_or_an_undermargined_position() -> None:
    """Twelve longs at leverages 5×..60×, bids every 100 USDT below 49,800, and a market
    sell that takes the book to 49,300: each liquidation's fills reach the next long's
    liquidation price, a chain of five generations."""
    s = Sim(btc(mark_method="last"), accounts={a: FUNDS for a in range(100, 104)})
    longs = list(range(1, 13))
    for i, a in enumerate(longs):
        s.account(a, usdt(20_000))
        s.leverage(a, 5 + 5 * i)
        s.trade(buyer=a, seller=100 + i % 3, qty=200, price=px(50_000))
    for k in range(24):  # 49,800 down to 47,500, the band's edge
        s.limit(103, "BUY", 150, px(49_800) - k * px(100))
    evs = s.market(100, "SELL", 900)  # down to 49,300: the 60× long is due
    pls = of(evs, E.PositionLiquidated)
    assert pls, "the fall liquidated nobody"
    assert [p.generation for p in pls] == [0, 1, 2, 3, 4]
    assert [p.account for p in pls] == [12, 11, 10, 9, 8]  # 60×, 55×, … 40×
    assert [p.parent_id for p in pls] == [None] + [p.liquidation_id for p in pls[:-1]]
    assert [p.trigger_mark for p in pls] == [px(49_300)] + [p.fills[-1][0] for p in pls[:-1]]
    ids = {p.liquidation_id for p in pls}
    for p in pls:
        assert (p.parent_id is None) == (p.generation == 0)
        assert p.parent_id is None or p.parent_id in ids
    for a in longs:
        st = s.seat(a)
        if st.qty:
            assert not is_liquidatable(s.inst, st.qty, st.cost, st.margin, s.mark)
        assert s.avail(a) >= 0
    ce = first(evs, E.CascadeEnded)
    assert ce.liquidations == len(pls)
    assert ce.generations == max(p.generation for p in pls) + 1
    assert ce.volume == sum(p.qty for p in pls)


def test_determinism_same_log_same_events_and_hash() -> None:
    def run() -> tuple[list[E.Event], str]:
        s = cascade_market()
        s.market(5, "SELL", 100)
        s.do(C.AdvanceClock(ts=9 * 3600 * 10**9))
        return s.events, s.ex.state_hash()

    a, b = run(), run()
    assert a == b


def test_auto_deleveraged_account_keeps_no_unreserved_order_that_would_open_a_position() -> None:
    """M2's resting BUY closed its short, so it reserved nothing. Once ADL has closed the
    short, that order would open a long: it must be cancelled (Binance cancels the open
    orders of a deleveraged position) or reserve its initial margin; otherwise M2 can
    withdraw everything and be filled into a position without any margin."""
    s, ids = adl_market()
    m2 = ids["M2"]
    s.index(px(46_000))
    s.limit(m2, "BUY", 700, px(43_700))  # below L's bankruptcy price: the IOC skips it
    assert s.reserved(m2) == 0
    evs = s.index(px(44_000))
    assert (m2, 700) in [(e.account, e.qty) for e in of(evs, E.PositionAutoDeleveraged)]
    assert s.qty(m2) == 0
    if s.ex.open_orders(m2, SYM):
        assert s.reserved(m2) >= 700 * px(43_700) * LV // 20, "order now opens a long unreserved"
    s.ok(C.Withdraw(account=m2, asset="USDT", amount=s.avail(m2)))
    s.account(30)
    evs = s.market(30, "SELL", 700)
    for f in of(evs, E.OrderFilled):
        assert m2 not in (f.maker_account, f.taker_account), "filled without margin"


def test_truncated_cascade_is_finished_by_an_advance_of_the_clock() -> None:
    """In a stepped-clock backtest the next command is often just AdvanceClock."""
    s = worked_example(max_cascade_liquidations=1)
    s.account(5, usdt(10_000))
    s.leverage(5, 10)
    s.trade(buyer=5, seller=M, qty=BTC, price=px(47_000))
    s.limit(B, "BUY", 2 * BTC, px(46_000))
    evs = s.index(px(42_000))
    assert first(evs, E.CascadeEnded).truncated
    assert s.seat(5).liquidating
    evs = s.clock(10**9)
    assert [p.account for p in of(evs, E.PositionLiquidated)] == [5]
    assert s.qty(5) == 0


def test_liquidation_cancels_an_order_that_was_amended() -> None:
    """An amend that loses priority replaces the order object; the liquidation's
    cancel-first step must cancel the live order (book, reservation and pending intact)."""
    s = worked_example()
    oid = first(s.limit(L, "SELL", 100, px(49_000)), E.OrderAccepted).order_id
    s.ok(C.AmendOrder(account=L, symbol=SYM, order_id=oid, qty=200))  # an increase
    assert [(o.order_id, o.remaining, o.status) for o in s.ex.open_orders(L, SYM)] == [
        (oid, 200, "NEW")
    ]
    s.limit(B, "BUY", BTC, px(46_000))
    evs = s.index(px(45_100))
    cancel = first(evs, E.OrderCanceled)
    assert (cancel.order_id, cancel.remaining, cancel.reason) == (oid, 200, "LIQUIDATION")
    assert s.ex.depth(SYM)[1] == []  # no ask left in the book
    assert s.qty(L) == 0 and s.reserved(L) == 0


def test_amending_an_order_of_an_account_being_liquidated_is_refused_with_2023() -> None:
    s = worked_example(max_cascade_liquidations=1)
    s.account(5, usdt(10_000))
    s.leverage(5, 10)
    s.trade(buyer=5, seller=M, qty=BTC, price=px(47_000))
    oid = first(s.limit(5, "SELL", 100, px(49_000)), E.OrderAccepted).order_id
    s.limit(B, "BUY", 2 * BTC, px(46_000))
    assert first(s.index(px(42_000)), E.CascadeEnded).truncated
    assert s.seat(5).liquidating
    before = s.ex.state_hash()
    evs = s.ex.handle(C.AmendOrder(account=5, symbol=SYM, order_id=oid, price=px(41_000)))
    assert [(type(e).__name__, getattr(e, "code", None)) for e in evs] == [("OrderRejected", -2023)]
    assert s.ex.state_hash() == before
    s.check()
