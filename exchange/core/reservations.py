"""Reservations: the money an open order holds back, and its review.

An order reserves what it can cost: initial margin on the part that can increase the
position, the fee on all of it, and the open loss of a price worse than the mark, each
rounded up (`_reservation`; `_order_reservation` for an open order at a leverage). The
reservation goes into the order's fills pro rata, rounded down (the last fill takes the
rest), so an open order always holds at least its fee; it is released when the order
closes (`_release`). `_review_reservations` tops up, or cancels (reason MARGIN), the
orders sized as closing a position that has since shrunk. Owns `Order.reserved` and
`Account.reserved`, with the orders room (orders.py), which places and closes orders.
"""

from __future__ import annotations

from .book import BUY, LIMIT_KINDS, Order
from .numbers import RATE_ONE, ceil_div
from .room import Room
from .state import Market, Seat, band_edge


class Reservations(Room):
    """What open orders hold back: computing, reviewing and releasing it."""

    def _order_reservation(self, m: Market, seat: Seat, o: Order, leverage: int) -> int:
        """What open order `o` would reserve now at `leverage` (0 for reduce-only)."""
        if o.reduce_only:
            return 0
        inst = m.inst
        if o.type in LIMIT_KINDS:
            worst = o.price
        else:
            worst = band_edge(inst, o.side, o.stop_price or m.mark)
        pos = seat.qty
        opposite = (pos < 0) if o.side == BUY else (pos > 0)
        others = seat.pending[o.side] - o.remaining
        closable = max(0, abs(pos) - others) if opposite else 0
        increase = max(0, o.remaining - closable)
        return self._reservation(m, o.side, worst, o.remaining, increase, leverage)

    def _reservation(
        self, m: Market, side: int, price: int, qty: int, increase: int, leverage: int
    ) -> int:
        """Initial margin on the increasing part + taker fee on all + the open loss of a
        price worse than the mark, each rounded up. O(1)."""
        inst = m.inst
        lv = inst.lot_value
        im = ceil_div(increase * price * lv, leverage) if increase else 0
        fee = ceil_div(qty * price * lv * max(inst.taker_fee, inst.maker_fee, 0), RATE_ONE)
        loss = 0
        if increase and m.mark > 0:
            gap = price - m.mark if side == BUY else m.mark - price
            if gap > 0:
                loss = gap * increase * lv
        return im + fee + loss

    def _review_reservations(self) -> None:
        """Orders sized as closing a position that has since shrunk may now open one: top
        their reservation up from the wallet, or cancel them (reason MARGIN)."""
        review = self._review
        self._review = {}
        for (_, sym, side), seat in review.items():
            m = self.markets[sym]
            inst = m.inst
            acct = self.accounts[seat.account]
            quote = inst.quote_asset
            lv = inst.lot_value
            leverage = seat.leverage
            orders = seat.orders
            # a cancel below changes neither the position nor the mark
            pos = seat.qty
            closing = (pos < 0) if side == BUY else (pos > 0)
            apos = pos if pos > 0 else -pos
            mark = m.mark
            fee_rate = m.fee_rate
            buy = side == BUY
            if closing and apos >= seat.pending[side]:
                # the position still covers every order on this side: none of them can
                # increase it, and each holds at least its fee already (a reservation is
                # consumed pro rata, rounded down): nothing to top up
                continue
            # oldest first (a seat's orders are held in id order; a cancel below removes
            # only the order at hand)
            for oid in list(orders):
                o = orders[oid]
                if o.side != side or o.reduce_only:
                    continue
                # what the order would reserve now: `_order_reservation`, inlined
                if o.type in LIMIT_KINDS:
                    worst = o.price
                else:
                    worst = band_edge(inst, side, o.stop_price or mark)
                remaining = o.remaining
                if closing:
                    others = seat.pending[side] - remaining
                    closable = apos - others if apos > others else 0
                    increase = remaining - closable if remaining > closable else 0
                else:
                    increase = remaining
                value = worst * lv
                need = -((-remaining * value * fee_rate) // RATE_ONE)
                if increase:
                    need -= (-increase * value) // leverage
                    if mark > 0:
                        gap = worst - mark if buy else mark - worst
                        if gap > 0:
                            need += gap * increase * lv
                more = need - o.reserved
                if more <= 0:
                    continue
                if more <= acct.available.get(quote, 0):
                    o.reserved += more
                    acct.available[quote] -= more
                    acct.reserved[quote] = acct.reserved.get(quote, 0) + more
                    self._touch_balance(acct.id, quote)
                else:
                    self._cancel_order(m, o, "MARGIN")

    def _release(self, m: Market, o: Order, amount: int) -> None:
        if amount:
            acct = self.accounts[o.account]
            quote = m.inst.quote_asset
            o.reserved -= amount
            acct.reserved[quote] -= amount
            acct.available[quote] += amount
            self._balances_touched[(acct.id, quote)] = None
