"""Positions through the engine (issue 3, items 1 and 2): entry price, realized PnL,
flips, fees, leverage, isolated margin, pre-trade reservation, reduce-only, -2023.

Fees are zero unless a test says otherwise, so every expected amount is plain
arithmetic; the mark follows the index. `Sim` checks every invariant after each command.
"""

from __future__ import annotations

from typing import Any

from exchange.core import Code
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.margin import bankruptcy_tick, liquidation_tick
from exchange.core.numbers import RATE_ONE
from tests.core.helpers_margin import BTC, FUNDS, LV, SYM, Sim, btc, first, of, px, usdt


def sim(**kw: Any) -> Sim:
    return Sim(accounts={a: FUNDS for a in (1, 2, 3, 4)}, **kw)


def last_position(events: list[E.Event], account: int) -> E.PositionChanged:
    found = [e for e in of(events, E.PositionChanged) if e.account == account]
    assert found, f"no PositionChanged for {account}"
    return found[-1]


# ---------------------------------------------------------------- entry, PnL, flips


def test_entry_price_is_averaged_on_increase() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.trade(buyer=1, seller=2, qty=BTC, price=px(51_000))
    p = s.pos(1)
    assert p.qty == 2 * BTC
    assert p.cost == (px(50_000) + px(51_000)) * BTC * LV == usdt(101_000)
    assert s.entry(1) == px(50_500)
    # each increase takes initial margin at its own price: 50,000/20 + 51,000/20
    assert p.margin == usdt(2_500) + usdt(2_550)
    assert s.avail(1) == FUNDS - usdt(5_050)
    # a third, smaller fill at a lower price: (101,000 + 0.5 × 49,000) / 2.5 = 50,200
    s.trade(buyer=1, seller=2, qty=BTC // 2, price=px(49_000))
    assert s.entry(1) == px(50_200)
    assert s.pos(2).qty == -(5 * BTC // 2)
    assert s.entry(2) == px(50_200)


def test_position_changed_carries_liquidation_and_bankruptcy_prices() -> None:
    s = sim()
    s.leverage(1, 10)
    s.limit(2, "SELL", BTC, px(50_000))
    evs = s.limit(1, "BUY", BTC, px(50_000))
    pc = last_position(evs, 1)
    assert (pc.qty, pc.cost, pc.margin, pc.leverage) == (BTC, usdt(50_000), usdt(5_000), 10)
    # the worked example: 45,180.7 to the tick, bankrupt at 45,000
    assert pc.liquidation_price == 451_807
    assert pc.bankruptcy_price == px(45_000)
    pc2 = last_position(evs, 2)
    assert pc2.liquidation_price == liquidation_tick(s.inst, -BTC, -usdt(50_000), usdt(2_500))
    assert pc2.bankruptcy_price == bankruptcy_tick(s.inst, -BTC, -usdt(50_000), usdt(2_500))


def test_realized_pnl_on_reduce_and_close() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=2 * BTC, price=px(50_000))
    assert s.pos(1).margin == usdt(5_000)
    # sell 0.5 BTC at 52,000: realized 0.5 × 2,000 = 1,000; a quarter of the margin returns
    s.trade(buyer=3, seller=1, qty=BTC // 2, price=px(52_000), taker="SELL")
    p = s.pos(1)
    assert p.realized_pnl == usdt(1_000)
    assert p.qty == 3 * BTC // 2
    assert p.cost == usdt(75_000)
    assert s.entry(1) == px(50_000)
    assert p.margin == usdt(3_750)
    assert s.avail(1) == FUNDS - usdt(5_000) + usdt(1_250) + usdt(1_000)
    # close the rest at 49,000: realized −1,500, cumulative −500; everything released
    evs = s.ok(s.order(1, "SELL", 3 * BTC // 2, px(49_000)))
    assert not of(evs, E.OrderFilled)  # nothing to hit yet: it rests
    evs = s.limit(3, "BUY", 3 * BTC // 2, px(49_000))
    pc = last_position(evs, 1)
    assert (pc.qty, pc.cost, pc.margin) == (0, 0, 0)
    assert pc.realized_pnl == usdt(-500)
    assert s.avail(1) == FUNDS - usdt(500)
    assert s.reserved(1) == 0


def test_flip_long_to_short_in_one_fill() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.limit(3, "BUY", 3 * BTC, px(51_000))
    evs = s.limit(1, "SELL", 3 * BTC, px(51_000))
    fills = of(evs, E.OrderFilled)
    assert [(f.qty, f.price) for f in fills] == [(3 * BTC, px(51_000))]
    p = s.pos(1)
    # realized on the closed BTC: +1,000; the opened 2 BTC short at 51,000 takes 2,550 × 2
    assert p.realized_pnl == usdt(1_000)
    assert p.qty == -2 * BTC
    assert p.cost == -usdt(102_000)
    assert s.entry(1) == px(51_000)
    assert p.margin == usdt(5_100)
    # the long's 2,500 margin came back, plus the profit, minus the new short's margin
    assert s.avail(1) == FUNDS - usdt(2_500) + usdt(2_500) + usdt(1_000) - usdt(5_100)
    assert s.reserved(1) == 0
    pc = last_position(evs, 1)
    assert (pc.qty, pc.margin, pc.realized_pnl) == (-2 * BTC, usdt(5_100), usdt(1_000))


def test_flip_short_to_long_in_one_fill() -> None:
    s = sim()
    s.trade(buyer=2, seller=1, qty=BTC, price=px(50_000))  # 1 short 1 BTC
    s.limit(3, "SELL", BTC + BTC // 2, px(49_000))
    s.limit(1, "BUY", BTC + BTC // 2, px(49_000))
    p = s.pos(1)
    assert p.realized_pnl == usdt(1_000)  # short closed 1,000 lower
    assert p.qty == BTC // 2
    assert p.cost == usdt(24_500)
    assert p.margin == usdt(1_225)
    assert s.avail(1) == FUNDS + usdt(1_000) - usdt(1_225)


def test_fees_taker_maker_and_rebate() -> None:
    s = sim(inst=btc(fees=True))  # maker 0.02 %, taker 0.05 %
    evs = s.limit(2, "SELL", BTC, px(50_000))
    bal = [e for e in of(evs, E.BalanceChanged) if e.account == 2][-1]
    # a resting order reserves the larger of the two fees: 50,000 × 0.05 % = 25
    assert bal.reserved == usdt(2_500) + usdt(25)
    evs = s.limit(1, "BUY", BTC, px(50_000))
    f = first(evs, E.OrderFilled)
    assert (f.taker_fee, f.maker_fee) == (usdt(25), usdt(10))
    assert s.avail(1) == FUNDS - usdt(2_500) - usdt(25)
    assert s.avail(2) == FUNDS - usdt(2_500) - usdt(10)
    assert s.reserved(2) == 0
    assert s.ex.fees_collected["USDT"] == usdt(35)
    assert s.seat(1).fees == usdt(25)
    # realized PnL excludes fees; closing at 51,000 as taker pays 25.5 on 51,000
    s.trade(buyer=3, seller=1, qty=BTC, price=px(51_000), taker="SELL")
    p = s.pos(1)
    assert p.realized_pnl == usdt(1_000)
    assert s.avail(1) == FUNDS - usdt(25) + usdt(1_000) - usdt("25.5")
    assert s.seat(1).fees == usdt("50.5")
    assert s.ex.fees_collected["USDT"] == usdt(35) + usdt("25.5") + usdt("10.2")


def test_maker_rebate_is_paid_out_of_the_taker_fee() -> None:
    s = sim(inst=btc(fees=True, maker_fee=-10_000))  # maker −0.01 %
    s.limit(2, "SELL", BTC, px(50_000))
    f = first(s.limit(1, "BUY", BTC, px(50_000)), E.OrderFilled)
    assert (f.taker_fee, f.maker_fee) == (usdt(25), -usdt(5))
    assert s.avail(2) == FUNDS - usdt(2_500) + usdt(5)
    assert s.ex.fees_collected["USDT"] == usdt(20)


# ---------------------------------------------------------------- leverage


def test_raising_leverage_keeps_the_margin() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    before = (s.pos(1).margin, s.pos(1).liquidation_price, s.avail(1))
    evs = s.leverage(1, 50)
    assert first(evs, E.LeverageChanged).leverage == 50
    assert (s.pos(1).margin, s.pos(1).liquidation_price, s.avail(1)) == before
    assert s.pos(1).leverage == 50
    # the next increase takes margin at the new leverage: 50,000 / 50
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    assert s.pos(1).margin == usdt(2_500) + usdt(1_000)


def test_lowering_leverage_tops_up_from_the_wallet_at_the_mark() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.index(px(51_000))
    evs = s.leverage(1, 10)
    # initial margin at the mark: 51,000 / 10 = 5,100; the position held 2,500
    assert s.pos(1).margin == usdt(5_100)
    assert s.avail(1) == FUNDS - usdt(5_100)
    assert last_position(evs, 1).margin == usdt(5_100)
    assert [e for e in of(evs, E.BalanceChanged) if e.account == 1][-1].available == s.avail(1)
    assert s.pos(1).liquidation_price == liquidation_tick(s.inst, BTC, usdt(50_000), usdt(5_100))


def test_lowering_leverage_without_the_money_is_rejected() -> None:
    s = Sim(accounts={1: usdt(2_600), 2: FUNDS})
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    assert s.avail(1) == usdt(100)
    assert s.reject(C.SetLeverage(account=1, symbol=SYM, leverage=10)) == Code.MARGIN_INSUFFICIENT
    # 20 → 19 needs ceil(50,000 / 19) − 2,500 = 131.57894737 > 100
    assert s.reject(C.SetLeverage(account=1, symbol=SYM, leverage=19)) == Code.MARGIN_INSUFFICIENT
    s.ok(C.Deposit(account=1, asset="USDT", amount=usdt(32)))
    s.leverage(1, 19)
    assert s.pos(1).margin == usdt(50_000) // 19 + 1
    assert s.avail(1) == usdt(132) - (usdt(50_000) // 19 + 1 - usdt(2_500))


def test_leverage_is_capped_by_the_bracket_of_the_notional() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=1_200, price=px(50_000))  # 60,000: bracket 1, max 100×
    code = s.reject(C.SetLeverage(account=1, symbol=SYM, leverage=101))
    assert code == Code.LEVERAGE_EXCEEDS_BRACKET == -2027
    s.leverage(1, 100)
    assert s.pos(1).leverage == 100
    # without a position the first bracket's 125× is allowed
    s.leverage(3, 125)


def test_leverage_outside_the_instrument_range_is_rejected() -> None:
    s = sim()
    for bad in (0, 126, -5):
        code = s.reject(C.SetLeverage(account=1, symbol=SYM, leverage=bad))
        assert code == Code.INVALID_LEVERAGE == -4028


def test_order_that_would_exceed_the_bracket_at_the_current_leverage_is_rejected() -> None:
    s = sim()
    s.leverage(1, 125)
    # 1.2 BTC at 50,000 = 60,000 of notional: bracket 1 allows only 100×
    code = s.reject(s.order(1, "BUY", 1_200, px(50_000)))
    assert code == Code.LEVERAGE_EXCEEDS_BRACKET
    s.limit(1, "BUY", BTC, px(50_000))  # 50,000 is still bracket 0


def test_lowering_leverage_with_an_open_order_keeps_the_order_covered() -> None:
    """An open order reserved margin at the old leverage; after lowering it, the fill
    must still find the position's initial margin at the new leverage (the change is
    refused with -2019 when the wallet cannot cover the difference)."""
    s = Sim(accounts={1: usdt(2_500), 2: FUNDS})
    s.limit(1, "BUY", BTC, px(50_000))  # reserves 2,500 at 20×: the whole wallet
    assert s.avail(1) == 0
    evs = s.do(C.SetLeverage(account=1, symbol=SYM, leverage=2))
    if of(evs, E.CommandRejected):
        assert first(evs, E.CommandRejected).code == Code.MARGIN_INSUFFICIENT
        return
    s.limit(2, "SELL", BTC, px(50_000))
    assert s.pos(1).leverage == 2
    assert s.pos(1).margin >= usdt(25_000), "position opened below its initial margin at 2×"


# ---------------------------------------------------------------- isolated margin


def test_add_isolated_margin_moves_the_liquidation_price() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    liq_before = s.pos(1).liquidation_price
    evs = s.adjust(1, usdt(1_000))
    ch = first(evs, E.IsolatedMarginChanged)
    assert (ch.amount, ch.margin) == (usdt(1_000), usdt(3_500))
    assert s.avail(1) == FUNDS - usdt(3_500)
    liq = s.pos(1).liquidation_price
    assert liq < liq_before
    assert liq == liquidation_tick(s.inst, BTC, usdt(50_000), usdt(3_500))
    assert last_position(evs, 1).liquidation_price == liq


def test_add_more_than_available_is_rejected() -> None:
    s = Sim(accounts={1: usdt(3_000), 2: FUNDS})
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    cmd = C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=usdt(500) + 1)
    assert s.reject(cmd) == Code.MARGIN_INSUFFICIENT
    s.adjust(1, usdt(500))
    assert s.avail(1) == 0


def test_adjust_without_a_position_is_rejected() -> None:
    s = sim()
    code = s.reject(C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=usdt(1)))
    assert code == Code.INVALID_PARAMETER


def test_remove_margin_never_below_initial_margin_at_the_mark() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.adjust(1, usdt(1_000))
    # at the entry price: 3,500 held, 2,500 initial → at most 1,000 removable
    cmd = C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-(usdt(1_000) + 1))
    assert s.reject(cmd) == Code.MARGIN_CANNOT_BE_REMOVED == -4051
    evs = s.adjust(1, -usdt(1_000))
    assert first(evs, E.IsolatedMarginChanged).margin == usdt(2_500)
    assert s.avail(1) == FUNDS - usdt(2_500)


def test_rejections_state_amounts_and_prices_in_the_assets_units() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.adjust(1, usdt(300))

    def msg(cmd: C.Command) -> str:
        evs = s.do(cmd)
        assert len(evs) == 1 and isinstance(evs[0], E.CommandRejected), evs
        return evs[0].msg

    # 2,800 held, 2,500 initial margin at the mark: "300 USDT", not 30000000000
    assert msg(C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-usdt(301))).endswith(
        "At most 300 USDT can be removed."
    )
    assert msg(C.Withdraw(account=1, asset="USDT", amount=0)).endswith(
        "amount must be in [0.00000001 USDT, 10000000000000000000000 USDT]."
    )
    assert msg(C.SetIndexPrice(symbol=SYM, price=10**12)).endswith(
        "price must be in [0.1, 4529764]."
    )
    assert msg(C.SetFundingRate(symbol=SYM, rate=RATE_ONE)).endswith("rate must be in [-0.1, 0.1].")


def test_remove_margin_never_withdraws_unrealized_profit() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.index(px(51_000))  # +1,000 unrealized
    # without added margin nothing is removable: the profit is not margin
    cmd = C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-1)
    assert s.reject(cmd) == Code.MARGIN_CANNOT_BE_REMOVED
    s.adjust(1, usdt(1_000))
    # initial margin at the mark is 51,000 / 20 = 2,550: 3,500 − 2,550 = 950 removable
    cmd = C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-(usdt(950) + 1))
    assert s.reject(cmd) == Code.MARGIN_CANNOT_BE_REMOVED
    s.adjust(1, -usdt(950))
    assert s.pos(1).margin == usdt(2_550)


def test_remove_margin_counts_the_unrealized_loss() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.adjust(1, usdt(1_000))
    s.index(px(49_000))  # −1,000 unrealized; initial margin at the mark 2,450
    # 3,500 − 1,000 − 2,450 = 50
    cmd = C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-(usdt(50) + 1))
    assert s.reject(cmd) == Code.MARGIN_CANNOT_BE_REMOVED
    s.adjust(1, -usdt(50))
    assert s.pos(1).margin == usdt(3_450)


# ---------------------------------------------------------------- pre-trade reservation


def test_resting_order_reserves_initial_margin_and_fee_and_cancel_releases_it() -> None:
    s = sim(inst=btc(fees=True))
    evs = s.limit(1, "BUY", BTC, px(49_000))
    # 49,000 / 20 + 49,000 × 0.05 % (the larger fee): 2,450 + 24.5
    want = usdt(2_450) + usdt("24.5")
    bal = [e for e in of(evs, E.BalanceChanged) if e.account == 1][-1]
    assert (bal.available, bal.reserved) == (FUNDS - want, want)
    oid = first(evs, E.OrderAccepted).order_id
    evs = s.ok(C.CancelOrder(account=1, symbol=SYM, order_id=oid))
    assert first(evs, E.OrderCanceled).reason == "USER"
    assert (s.avail(1), s.reserved(1)) == (FUNDS, 0)
    bal = [e for e in of(evs, E.BalanceChanged) if e.account == 1][-1]
    assert (bal.available, bal.reserved) == (FUNDS, 0)


def test_reservation_includes_the_open_loss_of_a_price_worse_than_the_mark() -> None:
    s = sim()
    s.limit(1, "BUY", BTC, px(51_000))  # 1,000 above the mark of 50,000
    assert s.reserved(1) == usdt(2_550) + usdt(1_000)
    # a price better than the mark carries no open loss
    s.limit(3, "BUY", BTC // 2, px(48_000))
    assert s.reserved(3) == usdt(1_200)
    s2 = sim()
    s2.limit(2, "SELL", BTC, px(49_000))  # 1,000 below the mark
    assert s2.reserved(2) == usdt(2_450) + usdt(1_000)


def test_order_is_rejected_with_2019_when_the_reservation_does_not_fit() -> None:
    s = Sim(accounts={1: usdt(2_450) - 1})
    assert s.reject(s.order(1, "BUY", BTC, px(49_000))) == Code.MARGIN_INSUFFICIENT == -2019
    s.ok(C.Deposit(account=1, asset="USDT", amount=1))
    s.limit(1, "BUY", BTC, px(49_000))
    assert (s.avail(1), s.reserved(1)) == (0, usdt(2_450))


def test_partial_fill_uses_its_share_and_cancel_releases_the_rest() -> None:
    s = sim()
    evs = s.limit(1, "BUY", BTC, px(49_000))
    oid = first(evs, E.OrderAccepted).order_id
    s.limit(2, "SELL", 400, px(49_000))
    assert s.pos(1).margin == usdt(980)  # 0.4 × 49,000 / 20
    assert s.reserved(1) == usdt(2_450) - usdt(980)
    s.ok(C.CancelOrder(account=1, symbol=SYM, order_id=oid))
    assert (s.avail(1), s.reserved(1)) == (FUNDS - usdt(980), 0)


def test_order_closing_a_position_reserves_no_margin() -> None:
    s = sim()
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.limit(1, "SELL", BTC, px(52_000))  # closes the long: nothing to reserve (no fees)
    assert s.reserved(1) == 0
    # a second one would open a short: it reserves for all of it
    s.limit(1, "SELL", BTC, px(52_000))
    assert s.reserved(1) == usdt(2_600)


def test_reduce_only_rejected_with_2022() -> None:
    s = sim()
    assert s.reject(s.order(1, "SELL", BTC, px(50_000), reduce_only=True)) == -2022
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    code = s.reject(s.order(1, "BUY", BTC, px(50_000), reduce_only=True))
    assert code == Code.REDUCE_ONLY_REJECTED
    s.limit(1, "SELL", BTC, px(52_000), reduce_only=True)
    assert s.reserved(1) == 0


def test_orders_of_an_account_being_liquidated_are_refused_with_2023() -> None:
    # a cascade bounded to one liquidation leaves the second position queued
    s = Sim(
        accounts={1: usdt(10_000), 2: usdt(10_000), 3: FUNDS, 4: FUNDS},
        max_cascade_liquidations=1,
    )
    for a in (1, 2):
        s.leverage(a, 10)
        s.trade(buyer=a, seller=3, qty=BTC, price=px(50_000))
    s.index(px(47_000))
    s.limit(4, "BUY", 2 * BTC, px(46_000))
    evs = s.index(px(45_100))
    assert [e.account for e in of(evs, E.PositionLiquidated)] == [1]
    assert first(evs, E.CascadeEnded).truncated
    assert s.qty(2) == BTC
    assert s.reject(s.order(2, "SELL", BTC, px(46_000))) == Code.USER_IN_LIQUIDATION == -2023
    cmd = C.AdjustIsolatedMargin(account=2, symbol=SYM, amount=usdt(1_000))
    assert s.reject(cmd) == Code.USER_IN_LIQUIDATION
    assert s.reject(C.SetLeverage(account=2, symbol=SYM, leverage=5)) == -2023
    assert (s.avail(2), s.pos(2).margin) == (usdt(5_000), usdt(5_000))
    # the next command that moves the market finishes the queued liquidation
    evs = s.limit(3, "BUY", 10, px(45_000))
    assert [e.account for e in of(evs, E.PositionLiquidated)] == [2]
    assert s.qty(2) == 0
    s.limit(2, "BUY", 10, px(45_000))  # and the account may trade again
