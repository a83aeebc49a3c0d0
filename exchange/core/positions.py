"""Positions and isolated margin: one net position per account and symbol.

`_trade_into` is the one place where a trade changes a position and its money (every
fill, fund takeover and ADL transfer goes through it): the reducing part releases its
share of cost and margin and realizes PnL, the increasing part takes initial margin
(rounded up), and a shortfall comes from the wallet, then the position's margin.
Leverage and isolated-margin changes are validated against brackets and margins.
"""

from __future__ import annotations

from . import commands as C
from . import events as E
from . import supervision as S
from .book import (
    BUY,
    SELL,
    Order,
)
from .errors import Code, Rejected
from .numbers import ceil_div, money_text
from .room import Room
from .state import FUND, MAX_AMOUNT, Account, Market, Seat


class Positions(Room):
    """Fills into positions; leverage and isolated-margin changes."""

    def _seat(self, acct: Account, m: Market) -> Seat:
        seat = acct.seats.get(m.inst.symbol)
        if seat is None:
            seat = acct.seats[m.inst.symbol] = Seat(acct.id, m.inst.symbol, m.inst.default_leverage)
        return seat

    def _touch(self, seat: Seat) -> None:
        self._touched[seat] = None

    def _settle(
        self, m: Market, o: Order, before: int, price: int, n: int, fee: int, liquidation: bool
    ) -> None:
        """Book one fill of `n` of the order's `before` remaining lots at `price` into its
        account and position; the reservation's pro-rata share (all of it on the last
        fill) goes into the trade."""
        acct = self.accounts[o.account]
        seat = acct.seats[o.symbol]
        seat.pending[o.side] -= n
        funds = 0
        r = o.reserved
        if r:
            funds = r if n == before else r * n // before
            o.reserved = r - funds
            acct.reserved[m.inst.quote_asset] -= funds
        self._trade_into(m, acct, seat, o.side, price, n, fee, funds, liquidation)

    def _trade_into(
        self,
        m: Market,
        acct: Account,
        seat: Seat,
        side: int,
        price: int,
        n: int,
        fee: int,
        funds: int,
        hold: bool,
    ) -> int:
        """Change `seat`'s position by a trade of n lots; settle money. Returns realized PnL.

        `funds` is money already set aside for this trade (a reservation share). The
        reducing part releases its share of margin plus realized PnL; the increasing part
        takes initial margin. Net leftovers go to the wallet; a shortfall comes from the
        wallet, then the position's margin, then the insurance fund, so no balance is
        ever negative. With `hold` (a position under liquidation) the reducing part's
        money stays in the position margin, to be settled by the liquidation policy.
        """
        inst = m.inst
        quote = inst.quote_asset
        lv = inst.lot_value
        qty = seat.qty
        buy = side == BUY
        realized = 0
        reduce = 0
        if qty and (qty > 0) != buy:
            aq = qty if qty > 0 else -qty
            reduce = n if n < aq else aq
            realized, freed = _reduce(seat, reduce, price, lv, hold)
            qty = seat.qty
            if not hold:
                funds += freed
                if seat.orders:
                    self._review[(seat.account, seat.symbol, side)] = seat
        increase = n - reduce
        if increase:
            value = price * increase * lv
            if buy:
                seat.cost += value
                qty = seat.qty = qty + increase
            else:
                seat.cost -= value
                qty = seat.qty = qty - increase
            im = 0 if acct.id == FUND else -((-value) // seat.leverage)
            seat.margin += im
            funds -= im
        seat.fees += fee
        funds -= fee
        self._cover(acct, seat, quote, funds, hold)
        if qty == 0 and not hold:
            if seat.margin:
                available = acct.available
                available[quote] = available.get(quote, 0) + seat.margin
                seat.margin = 0
            seat.cost = 0
        self._balances_touched[(acct.id, quote)] = None
        self._touched[seat] = None
        return realized

    def _cover(self, acct: Account, seat: Seat, quote: str, funds: int, hold: bool) -> None:
        """Settle a trade's net money `funds`: what is left over goes to the wallet; a
        shortfall comes from the wallet, then (unless `hold`) the position's margin, and
        what is still missing is waived by the exchange. O(1)."""
        available = acct.available
        if funds >= 0:
            if funds:
                available[quote] = available.get(quote, 0) + funds
            return
        short = -funds
        have = available.get(quote, 0)
        take = have if have < short else short
        available[quote] = have - take
        short -= take
        if short and not hold:
            take = seat.margin if seat.margin < short else short
            seat.margin -= take
            short -= take
        if short:
            # fills beyond bankruptcy never happen, so only a fee (or a reservation's
            # rounding) can be left uncovered here: the exchange waives it
            self.fees_collected[quote] = self.fees_collected.get(quote, 0) - short

    def transfer_position(self, m: Market, seat: Seat, to: Seat, lots: int, price: int) -> int:
        """Move `lots` of seat's position to `to` at `price` (fund takeover, ADL).
        `seat` keeps its proceeds in margin (it is being liquidated); `to` settles
        normally. Returns `to`'s realized PnL."""
        qty = seat.qty
        side = SELL if qty > 0 else BUY
        aq = qty if qty > 0 else -qty
        inst = m.inst
        if 0 < lots <= aq:
            # `_trade_into(..., hold=True)` for a part of the position without fee or
            # funds, short-cut: the most frequent trade of a large ADL cascade
            _reduce(seat, lots, price, inst.lot_value, True)
            self._balances_touched[(seat.account, inst.quote_asset)] = None
            self._touched[seat] = None
        else:
            self._trade_into(m, self.accounts[seat.account], seat, side, price, lots, 0, 0, True)
        tq = to.qty
        if (tq < -lots) if qty > 0 else (tq > lots):
            # `to` only reduces, by less than its whole position (an ADL counterparty):
            # `_trade_into` without fee, funds or an increasing part, short-cut
            realized, freed = _reduce(to, lots, price, inst.lot_value, False)
            if to.orders:
                self._review[(to.account, to.symbol, 1 - side)] = to
            quote = inst.quote_asset
            self._cover(self.accounts[to.account], to, quote, freed, False)
            self._balances_touched[(to.account, quote)] = None
            self._touched[to] = None
            return realized
        return self._trade_into(
            m, self.accounts[to.account], to, 1 - side, price, lots, 0, 0, False
        )

    def _set_leverage(self, cmd: C.SetLeverage) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        inst = m.inst
        lev = self._int(cmd.leverage, "leverage", 1, inst.max_leverage, Code.INVALID_LEVERAGE)
        seat = acct.seats.get(inst.symbol)
        if seat is not None and seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        if self.limits:
            S.check_leverage(self, acct.id, lev)
        top_up = 0
        if seat is not None:
            price = m.mark or (
                abs(seat.cost) // (abs(seat.qty) * inst.lot_value) if seat.qty else 0
            )
            exposure = (abs(seat.qty) + max(seat.pending)) * price * inst.lot_value
            if inst.bracket_for(exposure).max_leverage < lev:
                raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
            if seat.qty:
                need = ceil_div(abs(seat.qty) * price * inst.lot_value, lev)
                top_up = max(0, need - seat.margin)
            # open orders reserved at the old leverage: lowering it needs more for them too
            extra = {
                o.oid: more
                for o in seat.orders.values()
                if (more := self._order_reservation(m, seat, o, lev) - o.reserved) > 0
            }
            if top_up + sum(extra.values()) > acct.available.get(inst.quote_asset, 0):
                raise Rejected(
                    Code.MARGIN_INSUFFICIENT,
                    "Lowering leverage needs more margin for the position and its orders.",
                )
        # ---- accepted
        if seat is None:
            seat = self._seat(acct, m)
        else:
            quote = inst.quote_asset
            for oid, more in extra.items():
                seat.orders[oid].reserved += more
                acct.available[quote] -= more
                acct.reserved[quote] = acct.reserved.get(quote, 0) + more
                self._touch_balance(acct.id, quote)
        seat.leverage = lev
        if top_up:
            acct.available[inst.quote_asset] -= top_up
            seat.margin += top_up
            self._touch_balance(acct.id, inst.quote_asset)
            self._touch(seat)
        self._emit(E.LeverageChanged, acct.id, inst.symbol, lev)
        self._react(m)

    def _adjust_margin(self, cmd: C.AdjustIsolatedMargin) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        inst = m.inst
        amount = cmd.amount
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT:
            raise Rejected(Code.INVALID_PARAMETER, "amount must be a non-zero integer.")
        seat = acct.seats.get(inst.symbol)
        if seat is None or seat.qty == 0:
            raise Rejected(Code.INVALID_PARAMETER, "No open position to adjust.")
        if seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        quote = inst.quote_asset
        if amount > 0:
            if amount > acct.available.get(quote, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        else:
            price = m.mark or abs(seat.cost) // (abs(seat.qty) * inst.lot_value)
            upnl = seat.qty * price * inst.lot_value - seat.cost
            im = ceil_div(abs(seat.qty) * price * inst.lot_value, seat.leverage)
            removable = seat.margin + min(0, upnl) - im
            if -amount > removable:
                raise Rejected(
                    Code.MARGIN_CANNOT_BE_REMOVED,
                    f"At most {money_text(max(0, removable), quote)} can be removed.",
                )
        acct.available[quote] -= amount
        seat.margin += amount
        self._touch_balance(acct.id, quote)
        self._touch(seat)
        self._emit(E.IsolatedMarginChanged, acct.id, inst.symbol, amount, seat.margin)
        self._react(m)

    def _check_positions(self) -> None:
        """Positions net to zero lots per symbol; no negative margin; no cost without a
        position (but the fund's and a liquidating one's)."""
        for sym in self.markets:
            net = 0
            for a in self.accounts.values():
                s = a.seats.get(sym)
                if s is None:
                    continue
                net += s.qty
                assert s.margin >= 0, f"negative margin {a.id}"
                assert (s.qty == 0) == (s.cost == 0) or a.id == FUND or s.liquidating, (
                    f"cost without position {a.id}"
                )
            assert net == 0, f"{sym}: positions do not net to zero ({net})"


def _reduce(seat: Seat, n: int, price: int, lv: int, hold: bool) -> tuple[int, int]:
    """Take n lots (0 < n ≤ |qty|) off `seat`'s position at `price`: release its cost and,
    unless `hold`, its margin pro rata (all of both for the whole position) and realize
    the PnL; with `hold` (a position under liquidation) the PnL stays in the position's
    margin. Returns (realized PnL, money freed: the released margin plus the PnL, 0 with
    `hold`). Only the seat's qty, cost, margin and realized change. O(1)."""
    qty = seat.qty
    aq = qty if qty > 0 else -qty
    partial = n < aq
    released_cost = seat.cost * n // aq if partial else seat.cost
    exit_value = price * n * lv
    realized = (exit_value if qty > 0 else -exit_value) - released_cost
    seat.cost -= released_cost
    seat.qty = qty - n if qty > 0 else qty + n
    seat.realized += realized
    if hold:
        seat.margin += realized
        return realized, 0
    released_margin = seat.margin * n // aq if partial else seat.margin
    seat.margin -= released_margin
    return realized, released_margin + realized
