"""Supervision: account limits, freezing, settlement at the mark, insurance-fund deposits."""

from __future__ import annotations

import pickle

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import FUND
from exchange.core.errors import Code
from tests.core.conftest import (
    FUNDS as FUNDS_,
)
from tests.core.conftest import (
    LOT_VALUE,
    MID,
    SYM,
    USDT,
    accepted,
    amend,
    limit,
    make_exchange,
    of,
    one,
    open_position,
    place,
    rejected,
    run,
    set_index,
)


def limits(ex, account: int, **kw) -> list[E.Event]:  # type: ignore[no-untyped-def]
    return run(ex, C.SetAccountLimits(account=account, **kw))


def test_frozen_account_cannot_place_amend_or_lever_but_can_cancel() -> None:
    ex = make_exchange()
    oid = limit(ex, 1, "BUY", 10, MID - 100)
    ev = one(limits(ex, 1, frozen=True), E.AccountLimitsSet)
    assert ev.frozen and ev.account == 1
    rejected(
        ex,
        C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=1, price=MID - 10),
        Code.ACCOUNT_FROZEN,
    )
    rejected(
        ex, C.AmendOrder(account=1, symbol=SYM, order_id=oid, price=MID - 20), Code.ACCOUNT_FROZEN
    )
    rejected(ex, C.SetLeverage(account=1, symbol=SYM, leverage=5), Code.ACCOUNT_FROZEN)
    assert of(run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=oid)), E.OrderCanceled)
    # others trade as before; lifting the freeze (all defaults) removes the entry
    accepted(place(ex, 2, "BUY", 1, MID - 10))
    limits(ex, 1)
    assert ex.limits == {}
    accepted(place(ex, 1, "BUY", 1, MID - 10))


def test_open_order_cap_counts_this_symbols_orders() -> None:
    ex = make_exchange()
    limits(ex, 1, max_open_orders=2)
    limit(ex, 1, "BUY", 1, MID - 10)
    limit(ex, 1, "BUY", 1, MID - 20)
    rejected(
        ex,
        C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=1, price=MID - 30),
        Code.MAX_OPEN_ORDERS,
    )


def test_position_notional_cap_includes_open_orders_and_allows_reducing() -> None:
    ex = make_exchange()
    # 1,000 USDT cap: one lot at 50,000 is 50 USDT, so 20 lots fit and 21 do not
    limits(ex, 1, max_position_notional=1_000 * USDT)
    assert 20 * MID * LOT_VALUE == 1_000 * USDT
    limit(ex, 1, "BUY", 15, MID)
    rejected(
        ex, C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=6, price=MID), Code.POSITION_LIMIT
    )
    limit(ex, 1, "BUY", 5, MID)  # exactly at the cap
    # selling is on the other side: a short of 19 lots at 50,010 fits, 20 do not
    limit(ex, 1, "SELL", 19, MID + 100)
    rejected(
        ex,
        C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=1, price=MID + 100),
        Code.POSITION_LIMIT,
    )


def test_amend_increase_is_checked_against_the_cap() -> None:
    ex = make_exchange()
    limits(ex, 1, max_position_notional=1_000 * USDT)
    oid = limit(ex, 1, "BUY", 10, MID)
    rejected(ex, C.AmendOrder(account=1, symbol=SYM, order_id=oid, qty=21), Code.POSITION_LIMIT)
    assert of(amend(ex, 1, oid, qty=20), E.OrderAmended)


def test_leverage_cap() -> None:
    ex = make_exchange()
    limits(ex, 1, max_leverage=10)
    rejected(ex, C.SetLeverage(account=1, symbol=SYM, leverage=11), Code.INVALID_LEVERAGE)
    assert of(run(ex, C.SetLeverage(account=1, symbol=SYM, leverage=10)), E.LeverageChanged)


def test_bad_limits_and_unknown_account_are_rejected() -> None:
    ex = make_exchange()
    rejected(ex, C.SetAccountLimits(account=99, frozen=True), Code.UNKNOWN_ACCOUNT)
    rejected(ex, C.SetAccountLimits(account=1, max_open_orders=-1), Code.INVALID_PARAMETER)
    rejected(ex, C.SetAccountLimits(account=1, frozen=1), Code.INVALID_PARAMETER)  # type: ignore[arg-type]


def test_limits_are_in_the_state_hash_and_survive_pickling() -> None:
    a, b = make_exchange(), make_exchange()
    assert a.state_hash() == b.state_hash()
    limits(a, 2, max_leverage=3)
    assert a.state_hash() != b.state_hash()
    c = pickle.loads(pickle.dumps(a))
    assert c.state_hash() == a.state_hash()
    rejected(c, C.SetLeverage(account=2, symbol=SYM, leverage=4), Code.INVALID_LEVERAGE)


def test_settle_closes_every_position_at_the_mark_conserving_money() -> None:
    ex = make_exchange(accounts=(1, 2, 3, 4))
    open_position(ex, 1, 10, other=3)  # 1 long 10 @ MID, 3 short 10
    open_position(ex, 2, -4, other=4)  # 2 short 4, 4 long 4
    resting = limit(ex, 4, "BUY", 3, MID - 500)
    set_index(ex, MID + 1_000)  # +100 USDT per BTC
    equity = {a: _equity(ex, a) for a in (1, 2, 3, 4)}
    events = run(ex, C.SettlePositions(symbol=SYM))
    settled = one(events, E.PositionsSettled)
    assert (settled.price, settled.positions) == (MID + 1_000, 4)
    assert resting in {e.order_id for e in of(events, E.OrderCanceled)}
    for a in (1, 2, 3, 4):
        view = ex.account_view(a)
        assert view is not None and all(p.qty == 0 for p in view.positions)
        assert ex.open_orders(a) == []
        # what was equity at the mark is now all wallet: no fee, nothing lost
        assert ex.accounts[a].available["USDT"] == equity[a]
        assert ex.accounts[a].reserved.get("USDT", 0) == 0
    held, owed = ex.conservation()
    assert held == owed
    assert ex.accounts[FUND].seats[SYM].qty == 0
    # the long gained 1,000 ticks on 10 lots relative to its entry
    assert equity[1] - FUNDS_ == 10 * 1_000 * LOT_VALUE - _taker_fee(10)


def _equity(ex, a: int) -> int:  # type: ignore[no-untyped-def]
    view = ex.account_view(a)
    bal = next(b for b in view.balances if b.asset == "USDT")
    return bal.available + bal.reserved + sum(p.margin + p.unrealized_pnl for p in view.positions)


def _taker_fee(lots: int) -> int:
    return lots * MID * LOT_VALUE * 50_000 // 100_000_000


def test_settle_needs_a_mark() -> None:
    ex = make_exchange(index=None)
    rejected(ex, C.SettlePositions(symbol=SYM), Code.NO_REFERENCE_PRICE)
    rejected(ex, C.SettlePositions(symbol="NOPE"), Code.BAD_SYMBOL)


def test_fund_insurance_is_a_deposit_into_the_fund() -> None:
    ex = make_exchange()
    before = ex.insurance_fund("USDT")
    ev = one(run(ex, C.FundInsurance(asset="USDT", amount=500 * USDT)), E.InsuranceFunded)
    assert ev.balance == before + 500 * USDT == ex.insurance_fund("USDT")
    held, owed = ex.conservation()
    assert held == owed
    rejected(ex, C.FundInsurance(asset="USDT", amount=0), Code.INVALID_PARAMETER)


def test_without_adl_the_fund_takes_over_what_the_book_does_not_fill() -> None:
    from exchange.core.liquidation import BinanceLiquidation

    def crash(adl: bool) -> list[E.Event]:
        ex = make_exchange(engine={"policy": BinanceLiquidation(adl=adl)})
        run(ex, C.SetLeverage(account=1, symbol=SYM, leverage=50))
        open_position(ex, 1, 100, other=2)  # 1 long 100 lots at 50x, 2 short
        return set_index(ex, MID * 90 // 100)  # -10 %: far past bankruptcy, no bids

    with_adl, without = crash(True), crash(False)
    assert of(with_adl, E.PositionAutoDeleveraged)
    assert not of(without, E.PositionAutoDeleveraged)
    liq = one(without, E.PositionLiquidated)
    assert liq.adl_qty == 0 and liq.fund_takeover_qty == 100
