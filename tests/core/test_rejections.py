"""Every rejection code the core can emit.

Each case builds a state, then sends one command that must be rejected: exactly one
rejection event with the expected code, and `state_hash()` unchanged (see `rejected`).
A last test reads the core's modules (all but errors.py) and fails if it can emit a code no case here covers.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import exchange.core
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code

from .conftest import (
    MID,
    SYM,
    USDT,
    accepted,
    btcusdt,
    limit,
    make_exchange,
    open_position,
    place,
    rejected,
    run,
    set_index,
)

Build = Callable[[Exchange], C.Command]
CASES: list[Any] = []


def case(code: Code, **make: Any) -> Callable[[Build], Build]:
    """Register a rejection case; `make` goes to `make_exchange`."""

    def register(build: Build) -> Build:
        CASES.append(pytest.param(build, code, make, id=f"{int(code)}-{build.__name__}"))
        return build

    return register


def order(**kw: Any) -> C.PlaceOrder:
    """A valid resting bid from account 1, with any field overridden."""
    return C.PlaceOrder(
        **{"account": 1, "symbol": SYM, "side": "BUY", "qty": 1, "price": MID - 100, **kw}
    )


def amend_of(ex: Exchange, **kw: Any) -> C.AmendOrder:
    """An amend of a fresh resting bid of account 1 (qty 4 at MID − 100)."""
    oid = limit(ex, 1, "BUY", 4, MID - 100)
    return C.AmendOrder(account=1, symbol=SYM, order_id=oid, **kw)


# ---------------------------------------------------------------- symbol, account


@case(Code.BAD_SYMBOL)
def place_unknown_symbol(ex: Exchange) -> C.Command:
    return order(symbol="DOGEUSDT")


@case(Code.BAD_SYMBOL)
def cancel_unknown_symbol(ex: Exchange) -> C.Command:
    return C.CancelOrder(account=1, symbol="btcusdt", order_id=1)


@case(Code.BAD_SYMBOL)
def index_unknown_symbol(ex: Exchange) -> C.Command:
    return C.SetIndexPrice(symbol="DOGEUSDT", price=MID)


@case(Code.UNKNOWN_ACCOUNT)
def place_unknown_account(ex: Exchange) -> C.Command:
    return order(account=99)


@case(Code.UNKNOWN_ACCOUNT)
def place_as_the_insurance_fund(ex: Exchange) -> C.Command:
    return order(account=0)


@case(Code.UNKNOWN_ACCOUNT)
def deposit_unknown_account(ex: Exchange) -> C.Command:
    return C.Deposit(account=99, asset="USDT", amount=1)


@case(Code.ACCOUNT_EXISTS)
def create_existing_account(ex: Exchange) -> C.Command:
    return C.CreateAccount(account=1)


# ---------------------------------------------------------------- enums, parameters


@case(Code.INVALID_SIDE)
def bad_side(ex: Exchange) -> C.Command:
    return order(side="LONG")


@case(Code.INVALID_ORDER_TYPE)
def bad_type(ex: Exchange) -> C.Command:
    return order(type="ICEBERG")


@case(Code.INVALID_TIME_IN_FORCE)
def bad_time_in_force(ex: Exchange) -> C.Command:
    return order(time_in_force="GTD")


@case(Code.INVALID_PARAMETER)
def bad_stp_mode(ex: Exchange) -> C.Command:
    return order(stp="EXPIRE_EVERYTHING")


@case(Code.INVALID_PARAMETER)
def bad_working_type(ex: Exchange) -> C.Command:
    return order(type="STOP_MARKET", price=0, stop_price=MID + 100, working_type="LAST_PRICE")


@case(Code.INVALID_PARAMETER)
def reduce_only_not_a_bool(ex: Exchange) -> C.Command:
    return order(reduce_only="true")


@case(Code.INVALID_PARAMETER)
def market_order_with_a_price(ex: Exchange) -> C.Command:
    return order(type="MARKET", price=MID)


@case(Code.INVALID_PARAMETER)
def limit_order_with_a_stop_price(ex: Exchange) -> C.Command:
    return order(stop_price=MID + 100)


@case(Code.INVALID_PARAMETER)
def negative_timestamp(ex: Exchange) -> C.Command:
    return order(ts=-1)


@case(Code.INVALID_PARAMETER)
def unknown_command(ex: Exchange) -> C.Command:
    return C.Command()


@case(Code.INVALID_PARAMETER)
def deposit_nothing(ex: Exchange) -> C.Command:
    return C.Deposit(account=1, asset="USDT", amount=0)


@case(Code.INVALID_PARAMETER)
def deposit_bad_asset(ex: Exchange) -> C.Command:
    return C.Deposit(account=1, asset="US DT", amount=1)


@case(Code.INVALID_PARAMETER)
def create_account_zero(ex: Exchange) -> C.Command:
    return C.CreateAccount(account=0)


@case(Code.INVALID_PARAMETER)
def adjust_margin_by_zero(ex: Exchange) -> C.Command:
    open_position(ex, 1, 2)
    return C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=0)


@case(Code.INVALID_PARAMETER)
def adjust_margin_without_position(ex: Exchange) -> C.Command:
    return C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=USDT)


@case(Code.INVALID_PARAMETER)
def resume_a_running_symbol(ex: Exchange) -> C.Command:
    return C.ResumeSymbol(symbol=SYM)


@case(Code.INVALID_PARAMETER)
def add_an_invalid_instrument(ex: Exchange) -> C.Command:
    return C.AddInstrument(instrument=replace(btcusdt(), symbol="NEWUSDT", min_qty=0))


@case(Code.INVALID_PARAMETER)
def add_something_else(ex: Exchange) -> C.Command:
    return C.AddInstrument(instrument="BTCUSDT")  # type: ignore[arg-type]


@case(Code.INSTRUMENT_EXISTS)
def add_an_existing_instrument(ex: Exchange) -> C.Command:
    return C.AddInstrument(instrument=btcusdt())


@case(Code.CLIENT_ID_INVALID)
def client_id_with_a_space(ex: Exchange) -> C.Command:
    return order(client_id="my order")


@case(Code.CLIENT_ID_INVALID)
def client_id_too_long(ex: Exchange) -> C.Command:
    return order(client_id="x" * 37)


@case(Code.CLIENT_ID_INVALID)
def client_id_empty(ex: Exchange) -> C.Command:
    return order(client_id="")


# ---------------------------------------------------------------- halts


@case(Code.MARKET_HALTED)
def place_on_a_halted_symbol(ex: Exchange) -> C.Command:
    run(ex, C.HaltSymbol(symbol=SYM))
    return order()


@case(Code.MARKET_HALTED)
def amend_on_a_halted_symbol(ex: Exchange) -> C.Command:
    cmd = amend_of(ex, qty=2)
    run(ex, C.HaltSymbol(symbol=SYM))
    return cmd


@case(Code.MARKET_HALTED)
def halt_twice(ex: Exchange) -> C.Command:
    run(ex, C.HaltSymbol(symbol=SYM))
    return C.HaltSymbol(symbol=SYM)


# ---------------------------------------------------------------- account limits


@case(Code.ACCOUNT_FROZEN)
def place_while_frozen(ex: Exchange) -> C.Command:
    run(ex, C.SetAccountLimits(account=1, frozen=True))
    return order()


@case(Code.ACCOUNT_FROZEN)
def amend_while_frozen(ex: Exchange) -> C.Command:
    cmd = amend_of(ex, qty=2)
    run(ex, C.SetAccountLimits(account=1, frozen=True))
    return cmd


@case(Code.ACCOUNT_FROZEN)
def set_leverage_while_frozen(ex: Exchange) -> C.Command:
    run(ex, C.SetAccountLimits(account=1, frozen=True))
    return C.SetLeverage(account=1, symbol=SYM, leverage=2)


@case(Code.POSITION_LIMIT)
def place_past_the_notional_cap(ex: Exchange) -> C.Command:
    run(ex, C.SetAccountLimits(account=1, max_position_notional=1))
    return order()


@case(Code.POSITION_LIMIT)
def amend_past_the_notional_cap(ex: Exchange) -> C.Command:
    cmd = amend_of(ex, qty=40)  # the open bid's 4 lots are within the cap, 40 are not
    cap = 4 * (MID - 100) * ex.instruments[SYM].lot_value
    run(ex, C.SetAccountLimits(account=1, max_position_notional=cap))
    return cmd


# ---------------------------------------------------------------- quantity, price, stop


@case(Code.QTY_LESS_THAN_ZERO)
def qty_zero(ex: Exchange) -> C.Command:
    return order(qty=0)


@case(Code.QTY_LESS_THAN_ZERO)
def qty_negative(ex: Exchange) -> C.Command:
    return order(qty=-3)


@case(Code.QTY_LESS_THAN_ZERO)
def qty_not_an_integer(ex: Exchange) -> C.Command:
    return order(qty="1")


@case(Code.QTY_LESS_THAN_MIN, min_qty=5)
def qty_below_min(ex: Exchange) -> C.Command:
    return order(qty=4)


@case(Code.QTY_GREATER_THAN_MAX)
def limit_qty_above_max(ex: Exchange) -> C.Command:
    return order(qty=1_000_001)


@case(Code.QTY_GREATER_THAN_MAX)
def market_qty_above_market_max(ex: Exchange) -> C.Command:
    return order(type="MARKET", price=0, qty=120_001)


@case(Code.PRICE_LESS_THAN_ZERO)
def limit_without_price(ex: Exchange) -> C.Command:
    return order(price=0)


@case(Code.PRICE_LESS_THAN_ZERO)
def index_price_zero(ex: Exchange) -> C.Command:
    return C.SetIndexPrice(symbol=SYM, price=0)


@case(Code.PRICE_LESS_THAN_MIN, index=None)
def price_below_min_price(ex: Exchange) -> C.Command:
    return order(price=5_567)


@case(Code.PRICE_GREATER_THAN_MAX, index=None)
def price_above_max_price(ex: Exchange) -> C.Command:
    return order(price=45_297_641)


@case(Code.PRICE_GREATER_THAN_MAX)
def stop_above_max_price(ex: Exchange) -> C.Command:
    return order(type="STOP_MARKET", price=0, stop_price=45_297_641)


@case(Code.STOP_PRICE_LESS_THAN_ZERO)
def stop_order_without_stop(ex: Exchange) -> C.Command:
    return order(type="STOP_MARKET", price=0)


@case(Code.NO_REFERENCE_PRICE, index=None)
def market_order_before_any_mark(ex: Exchange) -> C.Command:
    return order(type="MARKET", price=0)


@case(Code.NO_REFERENCE_PRICE)
def contract_price_stop_before_any_trade(ex: Exchange) -> C.Command:
    return order(type="STOP_MARKET", price=0, stop_price=MID + 100, working_type="CONTRACT_PRICE")


@case(Code.ORDER_WOULD_IMMEDIATELY_TRIGGER)
def stop_at_the_mark(ex: Exchange) -> C.Command:
    return order(type="STOP_MARKET", price=0, stop_price=MID)


@case(Code.PRICE_ABOVE_BAND)
def bid_above_the_band(ex: Exchange) -> C.Command:
    return order(price=525_001)


@case(Code.PRICE_BELOW_BAND)
def ask_below_the_band(ex: Exchange) -> C.Command:
    return order(side="SELL", price=474_999)


@case(Code.NOTIONAL_TOO_SMALL, min_notional=100 * USDT)
def notional_too_small(ex: Exchange) -> C.Command:
    return order(qty=1)  # 50 USDT


@case(Code.NOTIONAL_TOO_SMALL, index=None)
def notional_too_small_shipped_filter(ex: Exchange) -> C.Command:
    return order(qty=1, price=9_000)  # 0.9 USDT < 5 USDT


# ---------------------------------------------------------------- account state


@case(Code.USER_IN_LIQUIDATION, engine={"max_cascade_liquidations": 1})
def place_while_in_liquidation(ex: Exchange) -> C.Command:
    return _in_liquidation(ex, order(account=2, price=470_000))


@case(Code.USER_IN_LIQUIDATION, engine={"max_cascade_liquidations": 1})
def set_leverage_while_in_liquidation(ex: Exchange) -> C.Command:
    return _in_liquidation(ex, C.SetLeverage(account=2, symbol=SYM, leverage=10))


@case(Code.USER_IN_LIQUIDATION, engine={"max_cascade_liquidations": 1})
def adjust_margin_while_in_liquidation(ex: Exchange) -> C.Command:
    return _in_liquidation(ex, C.AdjustIsolatedMargin(account=2, symbol=SYM, amount=USDT))


def _in_liquidation(ex: Exchange, cmd: C.Command) -> C.Command:
    """Two longs crossed by one mark move; the cascade bound (1) leaves account 2's
    liquidation queued, so account 2 is in liquidation when `cmd` arrives."""
    limit(ex, 3, "SELL", 20, MID)
    place(ex, 1, "BUY", 10, MID)
    place(ex, 2, "BUY", 10, MID)
    events = set_index(ex, 470_000)
    ended = [e for e in events if isinstance(e, E.CascadeEnded)]
    assert ended and ended[-1].truncated and ended[-1].liquidations == 1
    return cmd


@case(Code.MAX_OPEN_ORDERS, max_open_orders=2)
def third_open_order(ex: Exchange) -> C.Command:
    limit(ex, 1, "BUY", 1, MID - 100)
    accepted(place(ex, 1, "BUY", 1, type="STOP_MARKET", stop_price=MID + 100))
    return order()


@case(Code.REDUCE_ONLY_REJECTED)
def reduce_only_without_position(ex: Exchange) -> C.Command:
    return order(reduce_only=True)


@case(Code.POST_ONLY_WOULD_TAKE)
def post_only_that_takes(ex: Exchange) -> C.Command:
    limit(ex, 2, "SELL", 1, MID)
    return order(price=MID, time_in_force="GTX")


@case(Code.FOK_WOULD_NOT_FILL)
def fok_short_of_liquidity(ex: Exchange) -> C.Command:
    limit(ex, 2, "SELL", 1, MID)
    return order(price=MID, qty=2, time_in_force="FOK")


@case(Code.LEVERAGE_EXCEEDS_BRACKET)
def order_beyond_the_leverage_bracket(ex: Exchange) -> C.Command:
    return order(qty=200_001, price=MID)  # 10,000,050 USDT: bracket max leverage 10 < 20


@case(Code.LEVERAGE_EXCEEDS_BRACKET)
def leverage_beyond_the_bracket_of_open_orders(ex: Exchange) -> C.Command:
    limit(ex, 1, "BUY", 1_001, MID - 100)  # about 50,045 USDT: bracket 2, max 100x
    return C.SetLeverage(account=1, symbol=SYM, leverage=125)


@case(Code.MARGIN_INSUFFICIENT, funds=10 * USDT)
def order_without_margin(ex: Exchange) -> C.Command:
    return order(qty=10)  # 500 USDT at 20x needs 25 USDT


@case(Code.MARGIN_INSUFFICIENT, funds=30 * USDT)
def amend_without_margin(ex: Exchange) -> C.Command:
    return amend_of(ex, qty=100)


@case(Code.MARGIN_INSUFFICIENT, funds=30 * USDT)
def lower_leverage_without_margin(ex: Exchange) -> C.Command:
    open_position(ex, 1, 10, other=2)
    return C.SetLeverage(account=1, symbol=SYM, leverage=1)


@case(Code.MARGIN_INSUFFICIENT, funds=30 * USDT)
def add_margin_beyond_the_balance(ex: Exchange) -> C.Command:
    open_position(ex, 1, 10, other=2)
    return C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=10 * USDT)


@case(Code.MARGIN_CANNOT_BE_REMOVED)
def remove_more_margin_than_free(ex: Exchange) -> C.Command:
    open_position(ex, 1, 10)
    return C.AdjustIsolatedMargin(account=1, symbol=SYM, amount=-USDT)


@case(Code.BALANCE_INSUFFICIENT)
def withdraw_more_than_available(ex: Exchange) -> C.Command:
    limit(ex, 1, "BUY", 10, MID - 100)  # reserved money is not withdrawable
    return C.Withdraw(account=1, asset="USDT", amount=ex.accounts[1].available["USDT"] + 1)


@case(Code.INVALID_LEVERAGE)
def leverage_zero(ex: Exchange) -> C.Command:
    return C.SetLeverage(account=1, symbol=SYM, leverage=0)


@case(Code.INVALID_LEVERAGE)
def leverage_above_max(ex: Exchange) -> C.Command:
    return C.SetLeverage(account=1, symbol=SYM, leverage=126)


# ---------------------------------------------------------------- cancel and amend


@case(Code.UNKNOWN_ORDER)
def cancel_made_up_id(ex: Exchange) -> C.Command:
    return C.CancelOrder(account=1, symbol=SYM, order_id=12345)


@case(Code.UNKNOWN_ORDER)
def cancel_made_up_client_id(ex: Exchange) -> C.Command:
    return C.CancelOrder(account=1, symbol=SYM, client_id="nope")


@case(Code.UNKNOWN_ORDER)
def cancel_another_accounts_order(ex: Exchange) -> C.Command:
    oid = limit(ex, 2, "BUY", 1, MID - 100)
    return C.CancelOrder(account=1, symbol=SYM, order_id=oid)


@case(Code.UNKNOWN_ORDER)
def cancel_with_a_non_integer_id(ex: Exchange) -> C.Command:
    oid = limit(ex, 1, "BUY", 1, MID - 100)
    return C.CancelOrder(account=1, symbol=SYM, order_id=str(oid))  # type: ignore[arg-type]


@case(Code.UNKNOWN_ORDER)
def cancel_a_filled_order(ex: Exchange) -> C.Command:
    oid = limit(ex, 1, "BUY", 1, MID)
    place(ex, 2, "SELL", 1, MID)
    return C.CancelOrder(account=1, symbol=SYM, order_id=oid)


@case(Code.UNKNOWN_ORDER)
def amend_a_canceled_order(ex: Exchange) -> C.Command:
    cmd = amend_of(ex, qty=2)
    run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=cmd.order_id))
    return cmd


@case(Code.MANDATORY_PARAM_MISSING)
def cancel_without_any_id(ex: Exchange) -> C.Command:
    return C.CancelOrder(account=1, symbol=SYM)


@case(Code.MANDATORY_PARAM_MISSING)
def amend_without_changes(ex: Exchange) -> C.Command:
    return amend_of(ex)


@case(Code.QTY_LESS_THAN_ZERO)
def amend_to_qty_zero(ex: Exchange) -> C.Command:
    return amend_of(ex, qty=0)


@case(Code.QTY_LESS_THAN_MIN)
def amend_to_no_more_than_filled(ex: Exchange) -> C.Command:
    cmd = amend_of(ex, qty=2)
    place(ex, 2, "SELL", 2, MID - 100)  # 2 of 4 filled
    return cmd


@case(Code.QTY_LESS_THAN_MIN, min_qty=3)
def amend_below_min_qty(ex: Exchange) -> C.Command:
    return amend_of(ex, qty=2)


@case(Code.QTY_GREATER_THAN_MAX)
def amend_above_max_qty(ex: Exchange) -> C.Command:
    return amend_of(ex, qty=1_000_001)


@case(Code.PRICE_LESS_THAN_ZERO)
def amend_to_price_zero(ex: Exchange) -> C.Command:
    return amend_of(ex, price=0)


@case(Code.PRICE_LESS_THAN_MIN, index=None)
def amend_below_min_price(ex: Exchange) -> C.Command:
    return amend_of(ex, price=5_567)


@case(Code.PRICE_GREATER_THAN_MAX, index=None)
def amend_above_max_price(ex: Exchange) -> C.Command:
    return amend_of(ex, price=45_297_641)


@case(Code.PRICE_ABOVE_BAND)
def amend_above_the_band(ex: Exchange) -> C.Command:
    return amend_of(ex, price=525_001)


@case(Code.PRICE_BELOW_BAND)
def amend_below_the_band(ex: Exchange) -> C.Command:
    return amend_of(ex, price=474_999)


@case(Code.NOTIONAL_TOO_SMALL, min_notional=100 * USDT)
def amend_below_min_notional(ex: Exchange) -> C.Command:
    return amend_of(ex, qty=1)


@case(Code.POST_ONLY_WOULD_TAKE)
def amend_post_only_into_the_book(ex: Exchange) -> C.Command:
    limit(ex, 2, "SELL", 1, MID)
    oid = limit(ex, 1, "BUY", 1, MID - 100, time_in_force="GTX")
    return C.AmendOrder(account=1, symbol=SYM, order_id=oid, price=MID)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize(("build", "code", "make"), CASES)
def test_rejection(build: Build, code: Code, make: dict[str, Any]) -> None:
    ex = make_exchange(**make)
    cmd = build(ex)
    event = rejected(ex, cmd, int(code))
    assert event.msg  # type: ignore[attr-defined]
    if isinstance(cmd, (C.PlaceOrder, C.CancelOrder, C.CancelAllOrders, C.AmendOrder)):
        assert isinstance(event, E.OrderRejected)
        assert (event.account, event.symbol, event.command) == (
            cmd.account,
            cmd.symbol,
            type(cmd).__name__,
        )
    else:
        assert isinstance(event, E.CommandRejected)
    ex._check()


def test_every_code_the_engine_can_emit_has_a_case() -> None:
    core = Path(exchange.core.__file__).parent
    source = "\n".join(p.read_text() for p in sorted(core.glob("*.py")) if p.name != "errors.py")
    emitted = {Code[name] for name in re.findall(r"\bCode\.([A-Z_]+)\b", source)}
    covered = {p.values[1] for p in CASES}
    assert emitted - covered == set()
    assert len(emitted) >= 30  # the scan found the codes (a sanity check on the regex)


def test_a_rejected_command_stamped_later_changes_nothing(ex: Exchange) -> None:
    """In realtime mode every command carries a later `ts`; a rejection must still leave
    the state (engine time included) as it was and yield only the rejection."""
    open_position(ex, 1, 2)
    now = ex.now
    rejected(ex, C.CancelOrder(account=1, symbol=SYM, order_id=999, ts=now + 5), -2011)
    assert ex.now == now


def test_the_clock_settles_funding_before_a_command_even_a_rejected_one(ex: Exchange) -> None:
    """Funding at a funding time is the clock's doing, not the command's: a command
    stamped past a funding time first settles it (as AdvanceClock would), then is
    rejected with one event of its own; the result equals AdvanceClock + the rejection."""
    open_position(ex, 1, 2)
    twin = pickle.loads(pickle.dumps(ex))
    later = ex.markets[SYM].next_funding_ts + 1
    events = run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=999, ts=later))
    assert any(isinstance(e, E.FundingSettled) for e in events)
    assert isinstance(events[-1], E.OrderRejected) and events[-1].code == -2011
    assert [e for e in events if isinstance(e, (E.OrderRejected, E.CommandRejected))] == [
        events[-1]
    ]
    clock = run(twin, C.AdvanceClock(ts=later))
    assert [type(e) for e in clock[:-1]] == [type(e) for e in events[:-1]]
    assert twin.state_hash() == ex.state_hash()
