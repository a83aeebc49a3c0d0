"""Supervision: what an operator (a teacher running a game) imposes beyond the
instruments' own rules.

* Account limits (`SetAccountLimits`): a cap on an account's position notional per
  symbol, on its open orders, on its leverage, and a freeze (no new orders, amendments
  or leverage changes; cancels still work, so a frozen account can always reduce its
  risk). Checked when an order is placed or amended and when leverage is set; a
  violation is an ordinary coded rejection and changes nothing. Lowering a limit never
  touches what is already open.
* Settlement (`SettlePositions`): every open order of a symbol is cancelled and every
  position closed at the mark, as a dated future settles at expiry: the same exact
  trade arithmetic as a fill, no fee. Positions net to zero lots, so the PnL settled
  sums to zero and money is conserved exactly; a position beyond bankruptcy at the mark
  (only possible when a cascade was truncated) loses at most its margin, and the rest is
  waived by the exchange as `_trade_into` does for any uncovered shortfall.
* Insurance-fund deposits (`FundInsurance`): money put into the fund, counted as a
  deposit in the conservation identity.

State: `Exchange.limits`, a dict account → `AccountLimits` (state.py; absent = no limits).
It is part of snapshots, and of `state_hash()` once any account has limits (so an
exchange that never had any hashes exactly as before limits existed).
"""

from __future__ import annotations

from . import commands as C
from . import events as E
from .book import BUY, SELL
from .errors import Code, Rejected
from .room import Room
from .state import FUND, MAX_AMOUNT, AccountLimits, Market, Seat

__all__ = [
    "AccountLimits",
    "check_leverage",
    "check_order",
    "fund_insurance",
    "set_account_limits",
    "settle_positions",
]

MAX_LIMIT = 10**30


def set_account_limits(ex: Room, cmd: C.SetAccountLimits) -> None:

    acct = ex._account(cmd.account)
    for name in ("max_position_notional", "max_open_orders", "max_leverage"):
        v = getattr(cmd, name)
        if type(v) is not int or not 0 <= v <= MAX_LIMIT:
            raise Rejected(Code.INVALID_PARAMETER, f"{name} must be an integer in [0, 1e30].")
    if type(cmd.frozen) is not bool:
        raise Rejected(Code.INVALID_PARAMETER, "frozen must be true or false.")
    lim = AccountLimits(
        cmd.max_position_notional, cmd.max_open_orders, cmd.max_leverage, cmd.frozen
    )
    if lim == AccountLimits():
        ex.limits.pop(acct.id, None)
    else:
        ex.limits[acct.id] = lim
    ex._emit(E.AccountLimitsSet, acct.id, *lim.key())


def check_order(
    ex: Room,
    m: Market,
    account: int,
    seat: Seat | None,
    side: int,
    added: int,
    price: int,
    new_order: bool,
) -> None:
    """Reject an order (or an amendment adding `added` lots at `price`) that breaks the
    account's limits. O(1). `added` counts lots on `side` beyond those already open."""
    lim = ex.limits.get(account)
    if lim is None:
        return

    qty = seat.qty if seat is not None else 0
    pending = seat.pending if seat is not None else (0, 0)
    orders = len(seat.orders) if seat is not None else 0

    if lim.frozen:
        raise Rejected(Code.ACCOUNT_FROZEN)
    if new_order and lim.max_open_orders and orders >= lim.max_open_orders:
        raise Rejected(Code.MAX_OPEN_ORDERS, f"At most {lim.max_open_orders} open orders.")
    cap = lim.max_position_notional
    if cap and added > 0:
        # the worst case: every open order on this side fills, on top of the position
        if side == BUY:
            worst = qty + pending[BUY] + added
        else:
            worst = qty - pending[SELL] - added
        size = worst if worst > 0 else -worst
        if size > abs(qty) and size * max(price, m.mark, 1) * m.inst.lot_value > cap:
            raise Rejected(Code.POSITION_LIMIT)


def check_leverage(ex: Room, account: int, leverage: int) -> None:
    lim = ex.limits.get(account)
    if lim is None:
        return

    if lim.frozen:
        raise Rejected(Code.ACCOUNT_FROZEN)
    if lim.max_leverage and leverage > lim.max_leverage:
        raise Rejected(Code.INVALID_LEVERAGE, f"At most {lim.max_leverage}x for this account.")


def settle_positions(ex: Room, cmd: C.SettlePositions) -> None:

    m = ex._market(cmd.symbol)
    price = m.mark
    if price <= 0:
        raise Rejected(Code.NO_REFERENCE_PRICE)
    symbol = m.inst.symbol
    seats = [
        (aid, a.seats[symbol])
        for aid, a in sorted(ex.accounts.items())
        if symbol in a.seats and (a.seats[symbol].qty or a.seats[symbol].orders)
    ]
    for _, seat in seats:
        if seat.orders:
            ex.cancel_orders_of(m, seat, "SETTLEMENT")
    fund = ex.fund_seat(m)
    closed = 0
    for aid, seat in seats:
        if aid == FUND or not seat.qty:
            continue
        lots = abs(seat.qty)
        side = SELL if seat.qty > 0 else BUY
        ex._trade_into(m, ex.accounts[aid], seat, side, price, lots, 0, 0, False)
        ex._trade_into(m, ex.accounts[FUND], fund, 1 - side, price, lots, 0, 0, False)
        closed += 1
    # every other position is now the fund's; they net to zero, so it is flat
    assert fund.qty == 0, "positions did not net to zero"
    ex._emit(E.PositionsSettled, symbol, price, closed)
    ex._react(m)


def fund_insurance(ex: Room, cmd: C.FundInsurance) -> None:

    asset = ex._asset(cmd.asset)
    amount = ex._int(cmd.amount, "amount", 1, MAX_AMOUNT)
    fund = ex.accounts[FUND]
    fund.available[asset] = fund.available.get(asset, 0) + amount
    ex.deposited[asset] = ex.deposited.get(asset, 0) + amount
    ex._touch_balance(FUND, asset)
    ex._emit(E.InsuranceFunded, asset, amount, fund.available[asset])
