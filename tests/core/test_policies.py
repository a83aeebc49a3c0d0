"""Liquidation policies other than Binance's (BitMEX, Hyperliquid, dYdX v4), how one is
chosen per instrument, and each one's worked example with every amount derived by hand
in the comments (docs/liquidation.md walks through the same numbers).

The liquidated long is the liquidation tests' worked example unless a test says
otherwise: 1 BTC bought at 50,000 at 10× (5,000 of isolated margin), liquidated at a
mark ≤ 45,180.7, bankrupt at 45,000; MMR 0.4 % below 50,000 of notional, 0.5 % (cum
50) up to 250,000. Fees are zero. `Sim` checks every invariant (money conserved to the
quantum, no negative balance, nobody left below maintenance) after each command.
"""

from __future__ import annotations

from typing import Any

import pytest

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.instruments import LIQUIDATION_POLICIES
from exchange.core.liquidation import (
    POLICIES,
    BitmexLiquidation,
    DydxLiquidation,
    HyperliquidLiquidation,
    make_policy,
)
from tests.core.helpers_margin import BTC, FUND, FUNDS, SYM, Sim, btc, first, of, px, usdt

L, M, B, S = 1, 2, 3, 4  # liquidated long, its counterparty, a bidder, another trader
BK = px(45_000)
SEC = 10**9


def long_1btc(policy: str, **kw: Any) -> Sim:
    s = Sim(
        btc(liquidation_policy=policy),
        accounts={L: usdt(10_000), M: FUNDS, B: FUNDS, S: FUNDS},
        **kw,
    )
    s.leverage(L, 10)
    s.leverage(B, 2)
    s.trade(buyer=L, seller=M, qty=BTC, price=px(50_000))
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (451_807, BK)
    s.index(px(47_000))
    return s


# ---------------------------------------------------------------- choosing a policy


def test_the_registry_names_every_policy_the_instruments_accept() -> None:
    assert tuple(POLICIES) == LIQUIDATION_POLICIES == ("binance", "bitmex", "hyperliquid", "dydx")
    for name in POLICIES:
        for adl in (True, False):
            p = make_policy(name, adl=adl)
            assert p.adl is adl and type(p) is POLICIES[name]
    with pytest.raises(ValueError, match="must be one of binance, bitmex, hyperliquid, dydx"):
        make_policy("ftx")


def test_an_unknown_instrument_policy_is_refused_naming_the_field() -> None:
    assert btc(liquidation_policy="ftx").check() == [
        "liquidation_policy: must be one of binance, bitmex, hyperliquid, dydx"
    ]
    assert btc(liquidation_policy=3).check() == ["liquidation_policy: must be a string"]
    ex = Exchange()
    before = ex.state_hash()
    (ev,) = ex.handle(C.AddInstrument(instrument=btc(liquidation_policy="ftx")))
    assert isinstance(ev, E.CommandRejected) and "liquidation_policy: must be one of" in ev.msg
    assert ex.state_hash() == before


def test_each_market_uses_its_instruments_policy_unless_the_exchange_imposes_one() -> None:
    eth = btc(symbol="ETHUSDT", base_asset="ETH", liquidation_policy="dydx")
    ex = Exchange([btc(liquidation_policy="bitmex"), eth], adl=False)
    assert ex.policy is None
    got = ex.policy_of(ex.markets[SYM])
    assert type(got) is BitmexLiquidation and got.adl is False
    assert ex.policy_of(ex.markets[SYM]) is got  # one instance per name
    assert type(ex.policy_of(ex.markets["ETHUSDT"])) is DydxLiquidation
    imposed = HyperliquidLiquidation()
    ex.policy = imposed  # what a what-if fork does
    assert ex.policy_of(ex.markets[SYM]) is imposed is ex.policy_of(ex.markets["ETHUSDT"])


def test_the_policy_is_part_of_the_state_hash_but_the_default_adds_nothing() -> None:
    a, b, c = (
        Exchange([btc()]),
        Exchange([btc(liquidation_policy="binance")]),
        Exchange([btc(liquidation_policy="bitmex")]),
    )
    assert a.state_hash() == b.state_hash() != c.state_hash()
    assert "liquidation_policy" not in repr(btc())


# ---------------------------------------------------------------- BitMEX


def test_bitmex_rests_what_the_book_does_not_take_as_the_funds_order_at_bankruptcy() -> None:
    s = long_1btc("bitmex")
    s.limit(B, "BUY", 600, px(46_000))
    evs = s.index(px(45_100))  # 45,100 ≤ 45,180.7: due; the mark is still above 45,000
    pl = first(evs, E.PositionLiquidated)
    # the IOC at 45,000 takes 0.6 BTC at 46,000: 5,000 − 0.6 × 4,000 − 0.4 × 5,000 = 600
    # of margin left over goes to the fund; the other 0.4 BTC is taken over at 45,000
    assert pl.fills == ((px(46_000), 600),)
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (600, 400, 0)
    assert pl.insurance_delta == usdt(600) == s.fund()
    assert s.qty(L) == 0 and s.qty(FUND) == 400
    # ... and rests as the fund's reduce-only limit sell of 0.4 BTC at 45,000
    acc = [e for e in of(evs, E.OrderAccepted) if e.account == FUND]
    assert len(acc) == 1
    a = acc[0]
    assert (a.side, a.type, a.time_in_force, a.price, a.qty, a.reduce_only) == (
        "SELL", "LIQUIDATION", "GTC", BK, 400, True,
    )  # fmt: skip
    assert s.market_state.book.best_ask() == BK
    # the mark falls further: the order stays where it is, the fund carries the loss
    s.index(px(44_000))
    assert s.market_state.book.best_ask() == BK and s.qty(FUND) == 400
    # a buyer takes it at the fund's entry: the fund is flat and has realized nothing
    fills = of(s.limit(S, "BUY", 400, BK), E.OrderFilled)
    assert [(f.maker_account, f.price, f.qty) for f in fills] == [(FUND, BK, 400)]
    assert s.qty(FUND) == 0 and s.fund() == usdt(600)
    assert s.seat(FUND).orders == {}


def test_bitmex_deleverages_what_the_fund_cannot_bear() -> None:
    s = long_1btc("bitmex")
    # the mark gaps to 44,000 with no bids: the fund (empty) cannot bear 1,000 per BTC
    evs = s.index(px(44_000))
    pl = first(evs, E.PositionLiquidated)
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (0, 0, BTC)
    adl = first(evs, E.PositionAutoDeleveraged)
    # M, short 1 BTC from 50,000, is closed at 45,000: it realizes 5,000
    assert (adl.account, adl.qty, adl.price, adl.realized_pnl) == (M, BTC, BK, usdt(5_000))
    assert s.qty(M) == 0 and s.qty(FUND) == 0
    assert s.seat(FUND).orders == {}  # nothing taken over, nothing to rest


def test_bitmex_without_adl_the_fund_takes_all_and_offers_it() -> None:
    s = long_1btc("bitmex", adl=False)
    evs = s.index(px(44_000))
    pl = first(evs, E.PositionLiquidated)
    assert (pl.fund_takeover_qty, pl.adl_qty) == (BTC, 0)
    assert s.qty(FUND) == BTC and s.market_state.book.best_ask() == BK


# ---------------------------------------------------------------- Hyperliquid


def long_3btc() -> Sim:
    """L long 3 BTC at 50,000 at 10× (15,000): notional 150,000, above the 100,000 of a
    large position. MM at p: 3p × 0.5 % − 50, so liquidated at
    15,000 + 3(p − 50,000) ≤ 0.015p − 50 ⇔ p ≤ 134,950 / 2.985 = 45,209.38; bankrupt at
    (150,000 − 15,000) / 3 = 45,000."""
    s = Sim(
        btc(liquidation_policy="hyperliquid"),
        accounts={L: usdt(20_000), M: FUNDS, B: FUNDS, S: FUNDS},
    )
    s.leverage(L, 10)
    s.leverage(B, 2)
    s.trade(buyer=L, seller=M, qty=3 * BTC, price=px(50_000))
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (452_093, BK)
    s.index(px(47_000))
    return s


def test_hyperliquid_slices_a_large_position_then_takes_the_rest_whole_in_its_cooldown() -> None:
    s = long_3btc()
    s.limit(B, "BUY", 600, px(45_200))
    # at 45,200: equity 15,000 − 3 × 4,800 = 600 ≤ MM 135,600 × 0.5 % − 50 = 628 and
    # ≥ 2/3 × 628: a book liquidation of 20 % (0.6 BTC) of the position
    evs = s.index(px(45_200), ts=10 * SEC)
    (pl,) = of(evs, E.PositionLiquidated)
    assert (pl.qty, pl.fills, pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (
        600, ((px(45_200), 600),), 600, 0, 0,
    )  # fmt: skip
    assert pl.insurance_delta == 0 and s.fund() == 0
    # the slice realized 0.6 × 45,200 − 30,000 = −2,880: margin 12,120 for 2.4 BTC; at
    # 45,200 equity 600 > MM 108,480 × 0.5 % − 50 = 492.4: healthy again, re-indexed at
    # 12,120 + 2.4p − 120,000 ≤ 0.012p − 50 ⇔ p ≤ 107,830 / 2.388 = 45,154.94;
    # bankrupt at 107,880 / 2.4 = 44,950
    assert s.qty(L) == 2_400 and s.seat(L).margin == usdt(12_120)
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (451_549, px(44_950))
    assert not s.seat(L).liquidating
    assert s.seat(L).partial_until == 40 * SEC
    assert first(evs, E.CascadeEnded).volume == 600
    # 10 s later, inside the cooldown, the mark crosses again: the whole rest goes
    s.limit(B, "BUY", 2_400, px(45_000))
    evs = s.index(px(45_100), ts=20 * SEC)
    (pl,) = of(evs, E.PositionLiquidated)
    assert (pl.qty, pl.fills, pl.fund_takeover_qty) == (2_400, ((BK, 2_400),), 0)
    # 2.4 × 45,000 − 120,000 = −12,000: 120 of collateral left, which stays with L
    assert pl.insurance_delta == 0 and s.fund() == 0
    assert s.qty(L) == 0 and s.avail(L) == usdt(5_000 + 120)


def test_hyperliquid_slices_again_once_the_cooldown_has_passed() -> None:
    s = long_3btc()
    s.limit(B, "BUY", 600, px(45_200))
    s.index(px(45_200), ts=10 * SEC)
    s.limit(B, "BUY", 480, px(45_150))
    # 30 s after the slice: 2.4 BTC × 45,150 = 108,360 is still large: 20 % = 0.48 BTC
    evs = s.index(px(45_150), ts=40 * SEC)
    (pl,) = of(evs, E.PositionLiquidated)
    assert (pl.qty, pl.filled_qty) == (480, 480)
    assert s.qty(L) == 1_920 and s.seat(L).partial_until == 70 * SEC


def test_hyperliquid_backstop_takes_over_below_two_thirds_of_maintenance() -> None:
    s = long_3btc()
    s.limit(B, "BUY", 3 * BTC, px(45_100))  # the book could take it, but it is not asked
    # a gap to 45,100: equity 15,000 − 3 × 4,900 = 300 < 2/3 × (135,300 × 0.5 % − 50)
    # = 417.67: the vault takes the position over at the mark, with the 300 left
    evs = s.index(px(45_100))
    (pl,) = of(evs, E.PositionLiquidated)
    assert (pl.qty, pl.fills, pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (
        3 * BTC, (), 0, 3 * BTC, 0,
    )  # fmt: skip
    assert pl.insurance_delta == usdt(300) == s.fund()
    assert s.qty(FUND) == 3 * BTC and s.seat(FUND).cost == 3 * BTC * px(45_100) * 10_000
    assert s.qty(L) == 0 and s.avail(L) == usdt(5_000)


def test_hyperliquid_small_positions_go_whole_and_keep_their_collateral() -> None:
    s = long_1btc("hyperliquid")
    s.limit(B, "BUY", BTC, px(45_100))
    # 1 BTC × 45,150 is not large; equity 150 ≥ 2/3 × 180.6: the whole at once
    evs = s.index(px(45_150))
    (pl,) = of(evs, E.PositionLiquidated)
    assert (pl.qty, pl.fills) == (BTC, ((px(45_100), BTC),))
    # 45,100 − 50,000 = −4,900: 100 of collateral stays with L, the fund gets nothing
    assert s.fund() == 0 and s.avail(L) == usdt(5_100)
    assert s.seat(L).partial_until == 0


# ---------------------------------------------------------------- dYdX v4


def test_dydx_fillable_price_bounds_the_ioc_and_the_fund_takes_the_rest() -> None:
    s = long_1btc("dydx")
    s.limit(B, "BUY", 500, px(45_120))
    s.limit(B, "BUY", 500, px("45100"))
    # at 45,150: TNC 5,000 − 4,850 = 150, TMMR 180.6, ABR·TMMR = 30.6; the spread
    # 1.5 × 30.6 = 45.9 per BTC: fillable price 45,150 − 45.9 = 45,104.1 (above 45,000)
    m = s.market_state
    s.ex.markets[SYM].mark = px(45_150)  # only to read the formula at that mark
    assert DydxLiquidation().fillable_price(m, s.seat(L)) == px("45104.1")
    s.ex.markets[SYM].mark = px(47_000)
    evs = s.index(px(45_150))
    (pl,) = of(evs, E.PositionLiquidated)
    # the IOC at 45,104.1 takes the bid at 45,120 but not the one at 45,100
    assert pl.fills == ((px(45_120), 500),)
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (500, 500, 0)
    # margin 5,000 − 0.5 × 4,880 − 0.5 × 5,000 (taken over at 45,000) = 60, under the
    # fee cap 1.5 % × 22,560 = 338.4: all 60 to the fund
    assert pl.insurance_delta == usdt(60) == s.fund()
    assert s.qty(FUND) == 500 and s.avail(L) == usdt(5_000)


def test_dydx_liquidation_fee_is_capped_and_the_rest_returns_to_the_user() -> None:
    s = long_1btc("dydx")
    s.limit(B, "BUY", BTC, px(46_000))  # a bid well above the mark
    evs = s.index(px(45_150))
    (pl,) = of(evs, E.PositionLiquidated)
    assert pl.fills == ((px(46_000), BTC),)
    # 46,000 − 50,000 = −4,000: 1,000 of margin left; the fee is at most 1.5 % × 46,000
    # = 690 (the fund's), the other 310 goes back to L
    assert pl.insurance_delta == usdt(690) == s.fund()
    assert s.avail(L) == usdt(5_000 + 310)


def test_dydx_deleverages_at_bankruptcy_what_neither_book_nor_fund_takes() -> None:
    s = long_1btc("dydx")
    evs = s.index(px(44_000))  # past bankruptcy, no bids, an empty fund
    pl = first(evs, E.PositionLiquidated)
    assert (pl.filled_qty, pl.fund_takeover_qty, pl.adl_qty) == (0, 0, BTC)
    adl = first(evs, E.PositionAutoDeleveraged)
    assert (adl.account, adl.price, adl.realized_pnl) == (M, BK, usdt(5_000))


# ---------------------------------------------------------------- all of them


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_runs_the_crash_cascade_conserving_money(name: str) -> None:
    """Ten longs at rising leverage over a thin book, marked at the last price: a
    cascade under each policy, every invariant checked after each command (`Sim`:
    money conserved to the quantum, nobody left due at the end)."""
    s = Sim(btc(liquidation_policy=name, mark_method="last"), accounts={M: FUNDS, B: FUNDS})
    s.leverage(B, 2)
    longs = list(range(10, 20))
    for i, a in enumerate(longs):
        s.account(a, usdt(60_000))
        s.leverage(a, 20 + 5 * i)
        s.trade(buyer=a, seller=M, qty=BTC, price=px(50_000))
    for k in range(10):
        s.limit(B, "BUY", BTC, px(49_300 - 100 * k))
    s.account(S, FUNDS)
    s.leverage(S, 2)
    evs = s.market(S, "SELL", BTC)
    pls = of(evs, E.PositionLiquidated)
    assert pls, "the crash liquidated nobody"
    ce = of(evs, E.CascadeEnded)
    if name == "dydx":
        # its fillable price stays near the mark: the thin book below is not dumped
        # into, the fund takes the positions over and the cascade stops at once
        assert ce and sum(pl.fund_takeover_qty for pl in pls) > 0
    else:  # an order at bankruptcy walks the book down: generation after generation
        assert ce and max(c.generations for c in ce) >= 2
    for pl in pls:
        assert pl.generation == 0 or pl.parent_id is not None
    held, net = s.ex.conservation()
    assert held == net


# ---------------------------------------------------------------- the short side


def short_1btc(policy: str) -> Sim:
    """L short 1 BTC at 50,000 with 5,000 (10×): liquidated at ≥ 54,776.2, bankrupt at
    55,000."""
    s = Sim(
        btc(liquidation_policy=policy),
        accounts={L: usdt(10_000), M: FUNDS, B: FUNDS, S: FUNDS},
    )
    s.leverage(L, 10)
    s.leverage(S, 2)
    s.trade(buyer=M, seller=L, qty=BTC, price=px(50_000))
    assert (s.pos(L).liquidation_price, s.pos(L).bankruptcy_price) == (547_762, px(55_000))
    s.index(px(53_000))
    return s


def test_bitmex_short_rests_the_funds_buy_at_bankruptcy() -> None:
    s = short_1btc("bitmex")
    s.limit(S, "SELL", 600, px(54_000))
    evs = s.index(px(54_900))
    pl = first(evs, E.PositionLiquidated)
    # the IOC buys 0.6 at 54,000: 5,000 − 0.6 × 4,000 − 0.4 × 5,000 = 600 to the fund
    assert (pl.side, pl.fills, pl.fund_takeover_qty) == ("SHORT", ((px(54_000), 600),), 400)
    assert s.fund() == usdt(600) and s.qty(FUND) == -400
    assert s.market_state.book.best_bid() == px(55_000)
    fills = of(s.limit(B, "SELL", 400, px(55_000)), E.OrderFilled)
    assert [(f.maker_account, f.qty) for f in fills] == [(FUND, 400)]
    assert s.qty(FUND) == 0 and s.fund() == usdt(600)


def test_dydx_short_fillable_price_is_above_the_mark() -> None:
    s = short_1btc("dydx")
    s.limit(S, "SELL", 500, px(54_900))
    s.limit(S, "SELL", 500, px(54_970))
    # at 54,850 (notional above 50,000: MMR 0.5 %, cum 50): TNC 5,000 − 4,850 = 150,
    # TMMR 274.25 − 50 = 224.25, ABR·TMMR 74.25; 1.5 × 74.25 = 111.375, 111.3 to the
    # tick (toward the mark): fillable 54,961.3, below bankruptcy (55,000)
    m = s.market_state
    m.mark = px(54_850)  # only to read the formula at that mark
    assert DydxLiquidation().fillable_price(m, s.seat(L)) == px("54961.3")
    m.mark = px(53_000)
    evs = s.index(px(54_850))
    (pl,) = of(evs, E.PositionLiquidated)
    assert pl.fills == ((px(54_900), 500),)
    assert (pl.fund_takeover_qty, pl.adl_qty) == (500, 0)
    # margin 5,000 − 0.5 × 4,900 − 0.5 × 5,000 = 50, under the cap 1.5 % × 27,450
    assert pl.insurance_delta == usdt(50) == s.fund()
    assert s.qty(FUND) == -500 and s.avail(L) == usdt(5_000)
