"""Review findings: each test asserts the correct behaviour and fails on the current core."""

from __future__ import annotations

from dataclasses import replace

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.margin import is_liquidatable
from exchange.core.numbers import ceil_div

from .helpers_margin import INTERVAL, SYM, USDT, Sim, btc_raw, of


def test_close_beyond_bankruptcy_does_not_drive_insurance_fund_negative() -> None:
    # 125x long, wallet emptied; a reduce-only sell inside the band but below the
    # bankruptcy price: the loss beyond margin is charged to the fund (balance 0 -> -6 USDT).
    s = Sim(accounts={2: 10**6 * USDT, 3: 10**6 * USDT})
    s.account(4, 5 * USDT)
    s.leverage(4, 125)
    s.trade(buyer=4, seller=3, qty=10, price=500_000)
    assert s.seat(4).bk == 496_000
    s.ok(C.Withdraw(account=4, asset="USDT", amount=s.avail(4)))
    s.limit(2, "BUY", 10, 490_000)
    s.ex.handle(s.order(4, "SELL", 10, 490_000, time_in_force="IOC", reduce_only=True))
    assert s.fund() >= 0


def test_fill_never_opens_a_position_below_initial_margin() -> None:
    # Short 10; BUY #1 (closing, reserves no IM) and BUY #2 (reserves full IM). #2 closes the
    # short and its IM returns to the wallet, which is withdrawn; #1 then opens a long with
    # zero margin (and is liquidated at once).
    s = Sim(accounts={2: 10**6 * USDT, 3: 10**6 * USDT})
    s.account(4, 100 * USDT)
    s.trade(buyer=3, seller=4, qty=10, price=500_000)
    s.limit(4, "BUY", 10, 499_000)
    s.limit(4, "BUY", 10, 499_500)
    s.limit(2, "SELL", 10, 499_500)
    assert s.qty(4) == 0
    s.ok(C.Withdraw(account=4, asset="USDT", amount=s.avail(4)))
    evs = s.ex.handle(s.order(2, "SELL", 10, 499_000))
    # either order #1 is not allowed to fill unmargined, or the position gets its IM
    assert not of(evs, E.PositionLiquidated)
    if s.qty(4):
        assert s.seat(4).margin >= ceil_div(10 * 499_000 * 10_000, s.seat(4).leverage)


def test_rejected_command_with_future_ts_changes_nothing() -> None:
    s = Sim(accounts={1: 10**6 * USDT})
    before = s.ex.state_hash()
    next_funding = s.market_state.next_funding_ts
    evs = s.ex.handle(C.Withdraw(ts=3 * INTERVAL, account=1, asset="USDT", amount=10**20))
    assert [type(e) for e in evs] == [E.CommandRejected]
    assert s.ex.now == 0
    assert s.market_state.next_funding_ts == next_funding  # now 4 intervals ahead of `now`
    assert s.ex.state_hash() == before


def test_short_of_large_account_id_is_liquidated_at_its_tick() -> None:
    # pop_due bisects shorts with (mark, 1 << 62); account ids go up to 2**63 - 1.
    big = 2**63 - 1
    s = Sim(accounts={1: 10**6 * USDT})
    s.account(big, 10**6 * USDT)
    s.trade(buyer=1, seller=big, qty=100, price=500_000)
    seat = s.seat(big)
    s.ex.handle(C.SetIndexPrice(symbol=SYM, price=seat.liq))
    assert not (seat.qty and is_liquidatable(s.inst, seat.qty, seat.cost, seat.margin, s.mark))
    assert s.qty(big) == 0


def test_add_instrument_with_bad_field_types_is_rejected_not_raised() -> None:
    s = Sim(accounts={1: 10**6 * USDT})
    for bad in ({"lot_value": "1"}, {"symbol": 5}, {"lot_value": 1.5}):
        inst = replace(btc_raw(), **({"symbol": "NEWUSDT"} | bad))
        evs = s.ex.handle(C.AddInstrument(instrument=inst))  # raises TypeError/AttributeError
        assert [type(e) for e in evs] == [E.CommandRejected], bad


def test_amend_increase_respects_leverage_bracket() -> None:
    # A new order of 2000 lots at 125x is rejected -2027; amending a 10-lot order to 2000
    # lots is accepted.
    s = Sim(accounts={1: 10**7 * USDT})
    s.leverage(1, 125)
    s.limit(1, "BUY", 10, 499_000)
    oid = s.ex.next_order_id - 1
    code = s.reject(C.AmendOrder(account=1, symbol=SYM, order_id=oid, qty=2000))
    assert code == -2027


def test_conditional_order_does_not_trade_on_halted_symbol() -> None:
    s = Sim(accounts={1: 10**6 * USDT, 2: 10**6 * USDT})
    s.limit(2, "SELL", 10, 510_000)
    s.ok(s.order(1, "BUY", 10, type="STOP_MARKET", stop_price=505_000))
    s.ok(C.HaltSymbol(symbol=SYM))
    evs = s.ok(C.SetIndexPrice(symbol=SYM, price=506_000))
    assert not of(evs, E.OrderFilled)
