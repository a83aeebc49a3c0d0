"""Orders: placing, cancelling and amending, validated in full.

Placing validates every field in Binance's order of precedence, then reserves what
the order can cost (reservations.py: initial margin on the part that can increase the
position, the fee on all of it, and the open loss of a price worse than the mark, each
rounded up) and hands it to matching (or to the conditional-order lists). Cancel is
O(1) in the book. A seat holds its open orders in id order.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from . import commands as C
from . import events as E
from . import supervision as S
from .book import (
    BUY,
    CANCELED,
    CLIENT_ID_CHARS,
    CONDITIONAL,
    FILLED,
    LIMIT_KINDS,
    NEW,
    ORDER_TYPES,
    PARTIALLY_FILLED,
    REPLACED,
    SELL,
    SIDES,
    STP_MODES,
    TIFS,
    UNTRIGGERED,
    WORKING_TYPES,
    Order,
)
from .errors import Code, Rejected
from .numbers import RATE_ONE
from .room import Room
from .state import Account, Market, band_edge


class Orders(Room):
    """Order placement, cancel, amend, and the money orders reserve."""

    def _place(self, cmd: C.PlaceOrder) -> None:
        # the checks below are in the order that decides which rejection wins
        symbol = cmd.symbol
        m = self._market(symbol)
        acct = self._account(cmd.account)
        account_id = acct.id
        inst = m.inst
        side_name = cmd.side
        if side_name not in SIDES:
            raise Rejected(Code.INVALID_SIDE)
        kind = cmd.type
        if kind not in ORDER_TYPES:
            raise Rejected(Code.INVALID_ORDER_TYPE)
        tif = cmd.time_in_force
        if tif not in TIFS:
            raise Rejected(Code.INVALID_TIME_IN_FORCE)
        stp = cmd.stp
        if stp not in STP_MODES:
            raise Rejected(
                Code.INVALID_PARAMETER,
                "stp must be one of NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH.",
            )
        working_type = cmd.working_type
        if working_type not in WORKING_TYPES:
            raise Rejected(
                Code.INVALID_PARAMETER, "workingType must be MARK_PRICE or CONTRACT_PRICE."
            )
        reduce_only = cmd.reduce_only
        if type(reduce_only) is not bool:
            raise Rejected(Code.INVALID_PARAMETER, "reduceOnly must be a boolean.")
        cid = cmd.client_id
        if cid is not None:
            if (
                type(cid) is not str
                or not 1 <= len(cid) <= 36
                or not CLIENT_ID_CHARS.issuperset(cid)
            ):
                raise Rejected(Code.CLIENT_ID_INVALID)
            original = acct.client_ids.get(cid)
            if original is not None:
                self._emit(E.OrderResubmissionIgnored, acct.id, symbol, cid, original)
                return
        if m.halted:
            raise Rejected(Code.MARKET_HALTED)
        is_limit = kind in LIMIT_KINDS
        qty = cmd.qty
        if type(qty) is not int or qty <= 0:
            raise Rejected(Code.QTY_LESS_THAN_ZERO)
        if qty < inst.min_qty:
            raise Rejected(Code.QTY_LESS_THAN_MIN)
        if qty > (inst.max_qty if is_limit else inst.market_max_qty):
            raise Rejected(Code.QTY_GREATER_THAN_MAX)
        price = cmd.price
        if is_limit:
            if type(price) is not int or price <= 0:
                raise Rejected(Code.PRICE_LESS_THAN_ZERO)
            if price < inst.min_price:
                raise Rejected(Code.PRICE_LESS_THAN_MIN)
            if price > inst.max_price:
                raise Rejected(Code.PRICE_GREATER_THAN_MAX)
        elif type(price) is not int or price != 0:
            raise Rejected(Code.INVALID_PARAMETER, "price must not be sent with a market order.")
        side = BUY if side_name == "BUY" else SELL
        stop = cmd.stop_price
        conditional = kind in CONDITIONAL
        if conditional:
            if type(stop) is not int or stop <= 0:
                raise Rejected(Code.STOP_PRICE_LESS_THAN_ZERO)
            if stop > inst.max_price:
                raise Rejected(Code.PRICE_GREATER_THAN_MAX, "(stopPrice)")
            ref = m.mark if working_type == "MARK_PRICE" else m.last
            if ref <= 0:
                raise Rejected(Code.NO_REFERENCE_PRICE)
            direction = self._stop_direction(kind, side)
            if (direction > 0 and ref >= stop) or (direction < 0 and ref <= stop):
                raise Rejected(Code.ORDER_WOULD_IMMEDIATELY_TRIGGER)
        elif type(stop) is not int or stop != 0:
            raise Rejected(Code.INVALID_PARAMETER, "stopPrice is only for conditional orders.")
        mark = m.mark
        if mark > 0 and mark != m.band_ref:
            self._band(m)  # refresh the cached band around the mark
        if is_limit:
            if mark > 0:
                if price > m.band_hi:
                    raise Rejected(Code.PRICE_ABOVE_BAND)
                if price < m.band_lo:
                    raise Rejected(Code.PRICE_BELOW_BAND)
            worst = price
            notional_price = price
        elif kind == "MARKET":
            if mark <= 0:
                raise Rejected(Code.NO_REFERENCE_PRICE)
            # the worst price a market order can reach: the band edge
            worst = m.band_hi if side == BUY else m.band_lo
            notional_price = mark
        else:
            # a conditional market order: the band edge around its stop (the mark being
            # unknown until it triggers)
            worst = band_edge(inst, side, stop)
            notional_price = stop
        lv = inst.lot_value
        if not reduce_only and notional_price * qty * lv < inst.min_notional:
            raise Rejected(Code.NOTIONAL_TOO_SMALL)
        seat = acct.seats.get(inst.symbol)
        if seat is not None and seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        open_orders = len(seat.orders) if seat is not None else 0
        if open_orders >= inst.max_open_orders:
            raise Rejected(Code.MAX_OPEN_ORDERS)
        if self.limits:
            S.check_order(self, m, account_id, seat, side, 0 if reduce_only else qty, worst, True)
        pos = seat.qty if seat is not None else 0
        if reduce_only:
            if pos == 0 or (pos > 0) == (side == BUY):
                raise Rejected(Code.REDUCE_ONLY_REJECTED)
            if not conditional:
                qty = min(qty, abs(pos))  # a reduce-only order is never bigger than the position
        if kind == "LIMIT":
            if tif == "GTX" and self._would_take(m, side, price):
                raise Rejected(Code.POST_ONLY_WOULD_TAKE)
            if tif == "FOK" and self._fillable(m, side, price, qty, acct.id, stp) < qty:
                raise Rejected(Code.FOK_WOULD_NOT_FILL)
        quote = inst.quote_asset
        reserve = 0
        if not reduce_only:
            if seat is not None:
                leverage = seat.leverage
                pending = seat.pending[side]
            else:
                leverage = inst.default_leverage
                pending = 0
            apos = pos if pos >= 0 else -pos
            if (pos < 0) if side == BUY else (pos > 0):  # the order can close the position
                closable = apos - pending if apos > pending else 0
                grow = pending - apos if pending > apos else 0
            else:
                closable = 0
                grow = apos + pending
            increase = qty - closable if qty > closable else 0
            # the reservation (see `_reservation`): initial margin on the increasing
            # part + fee on all + the open loss of a price worse than the mark
            reserve = -((-qty * worst * lv * m.fee_rate) // RATE_ONE)
            if increase:
                value = increase * worst * lv
                caps = inst._caps  # inst.bracket_for(notional), inlined
                i = bisect_left(caps, grow * worst * lv + value)
                if i >= len(caps):
                    i = len(caps) - 1
                if inst.brackets[i].max_leverage < leverage:
                    raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
                reserve += -((-value) // leverage)
                if mark > 0:
                    gap = worst - mark if side == BUY else mark - worst
                    if gap > 0:
                        reserve += gap * increase * lv
            if reserve > acct.available.get(quote, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        # ---- accepted: mutate from here on
        oid = self.next_order_id
        self.next_order_id = oid + 1
        now = self.now
        o = Order(
            oid,
            account_id,
            inst.symbol,
            side,
            kind,
            tif,
            price,
            qty,
            stop,
            working_type,
            reduce_only,
            cid,
            stp,
            now,
        )
        self.orders[oid] = o
        if cid is not None:
            acct.client_ids[cid] = oid
        if seat is None:
            seat = self._seat(acct, m)
        m.seats[account_id] = seat
        seat.orders[oid] = o
        seat.pending[side] += qty
        if reserve:
            o.reserved = reserve
            acct.available[quote] -= reserve
            reserved = acct.reserved
            reserved[quote] = reserved.get(quote, 0) + reserve
            self._balances_touched[(account_id, quote)] = None
        if conditional:
            o.status = UNTRIGGERED
            m.stops[(working_type, self._stop_direction(kind, side))].add((stop, oid))
            m.stop_count += 1
        self.seq = seq = self.seq + 1
        self._out.append(
            E.OrderAccepted.new(
                seq,
                now,
                oid,
                cid,
                account_id,
                inst.symbol,
                side_name,
                kind,
                tif,
                price,
                qty,
                stop,
                reduce_only,
                "UNTRIGGERED" if conditional else "NEW",
            )
        )
        if conditional:
            self._flush(m)
            return
        if kind == "LIMIT" and not reduce_only and (tif == "GTC" or tif == "GTX"):
            # a limit order that does not cross rests at once (what `_execute` would do)
            book = m.book
            if side == BUY:
                best = book.best_ask()
                crosses = best is not None and best <= price
            else:
                best = book.best_bid()
                crosses = best is not None and best >= price
            if not crosses:
                book.rest(o)
                self._react(m)
                return
        self._execute(m, o, worst)
        self._react(m)

    def _find(self, acct: Account, m: Market, order_id: Any, client_id: Any) -> Order:
        """The account's order by id or client id; -2011 for anything else (including
        another account's order, which must look exactly like an unknown one)."""
        o = None
        if order_id is not None:
            if type(order_id) is not int:
                raise Rejected(Code.UNKNOWN_ORDER)
            o = self.orders.get(order_id)
        elif client_id is not None:
            if type(client_id) is not str:
                raise Rejected(Code.UNKNOWN_ORDER)
            oid = acct.client_ids.get(client_id)
            o = self.orders.get(oid) if oid is not None else None
        else:
            raise Rejected(
                Code.MANDATORY_PARAM_MISSING, "orderId or origClientOrderId is required."
            )
        if o is None or o.account != acct.id or o.symbol != m.inst.symbol:
            raise Rejected(Code.UNKNOWN_ORDER)
        return o

    def _cancel(self, cmd: C.CancelOrder) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        o = self._find(acct, m, cmd.order_id, cmd.client_id)
        if o.status not in (NEW, PARTIALLY_FILLED, UNTRIGGERED):
            raise Rejected(Code.UNKNOWN_ORDER, "The order is no longer open.")
        self._cancel_order(m, o, "USER")
        self._observe_basis(m)
        self._flush(m)

    def _cancel_order(self, m: Market, o: Order, reason: str) -> None:
        if o.status == UNTRIGGERED:
            m.stops[(o.trigger, self._stop_direction(o.type, o.side))].remove((o.stop_price, o.oid))
            m.stop_count -= 1
        else:
            m.book.unrest(o)
        self._close_order(m, o, CANCELED, reason)

    def _open_orders_of(self, account: int, symbol: str) -> list[Order]:
        seat = self.accounts[account].seats.get(symbol)
        # a seat holds its orders in id order: each is added with a new, larger id (an
        # amend replaces its entry in place)
        return list(seat.orders.values()) if seat is not None else []

    def _cancel_all(self, cmd: C.CancelAllOrders) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        for o in self._open_orders_of(acct.id, m.inst.symbol):
            self._cancel_order(m, o, "CANCEL_ALL")
        self._observe_basis(m)
        self._flush(m)

    def _amend(self, cmd: C.AmendOrder) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        o = self._find(acct, m, cmd.order_id, cmd.client_id)
        inst = m.inst
        if acct.seats[inst.symbol].liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        if o.status not in (NEW, PARTIALLY_FILLED) or o.type != "LIMIT":
            raise Rejected(Code.UNKNOWN_ORDER, "Only open LIMIT orders can be amended.")
        if m.halted:
            raise Rejected(Code.MARKET_HALTED)
        if cmd.qty is None and cmd.price is None:
            raise Rejected(Code.MANDATORY_PARAM_MISSING, "quantity or price is required.")
        new_qty = o.qty if cmd.qty is None else cmd.qty
        new_price = o.price if cmd.price is None else cmd.price
        if type(new_qty) is not int or new_qty <= 0:
            raise Rejected(Code.QTY_LESS_THAN_ZERO)
        filled = o.qty - o.remaining
        if new_qty <= filled:
            raise Rejected(
                Code.QTY_LESS_THAN_MIN, "The new quantity must exceed what is already filled."
            )
        if new_qty < inst.min_qty:
            raise Rejected(Code.QTY_LESS_THAN_MIN)
        if new_qty > inst.max_qty:
            raise Rejected(Code.QTY_GREATER_THAN_MAX)
        if type(new_price) is not int or new_price <= 0:
            raise Rejected(Code.PRICE_LESS_THAN_ZERO)
        if new_price < inst.min_price:
            raise Rejected(Code.PRICE_LESS_THAN_MIN)
        if new_price > inst.max_price:
            raise Rejected(Code.PRICE_GREATER_THAN_MAX)
        lo, hi = self._band(m)
        if new_price != o.price and m.mark > 0:
            if new_price > hi:
                raise Rejected(Code.PRICE_ABOVE_BAND)
            if new_price < lo:
                raise Rejected(Code.PRICE_BELOW_BAND)
        new_remaining = new_qty - filled
        if self.limits:
            added = 0 if o.reduce_only else max(0, new_qty - o.qty)
            S.check_order(
                self, m, acct.id, acct.seats[inst.symbol], o.side, added, new_price, False
            )
        if not o.reduce_only and new_price * new_qty * inst.lot_value < inst.min_notional:
            raise Rejected(Code.NOTIONAL_TOO_SMALL)
        crosses = new_price != o.price and self._would_take(m, o.side, new_price)
        if crosses and o.tif == "GTX":
            raise Rejected(Code.POST_ONLY_WOULD_TAKE)
        seat = acct.seats[inst.symbol]
        reserve = 0
        if not o.reduce_only:
            pending_others = seat.pending[o.side] - o.remaining
            pos = seat.qty
            opposite = (pos < 0) if o.side == BUY else (pos > 0)
            closable = max(0, abs(pos) - pending_others) if opposite else 0
            increase = max(0, new_remaining - closable)
            if increase:
                grow = increase + (
                    max(0, pending_others - abs(pos)) if opposite else abs(pos) + pending_others
                )
                if inst.bracket_for(grow * new_price * inst.lot_value).max_leverage < seat.leverage:
                    raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
            reserve = self._reservation(
                m, o.side, new_price, new_remaining, increase, seat.leverage
            )
            if new_price == o.price and new_remaining <= o.remaining:
                reserve = min(reserve, o.reserved)  # a pure decrease never needs more
            if reserve - o.reserved > acct.available.get(inst.quote_asset, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        # ---- accepted
        keep = new_price == o.price and new_remaining <= o.remaining
        quote = inst.quote_asset
        delta = reserve - o.reserved
        if delta:
            o.reserved = reserve
            acct.available[quote] -= delta
            acct.reserved[quote] = acct.reserved.get(quote, 0) + delta
            self._touch_balance(acct.id, quote)
        seat.pending[o.side] += new_remaining - o.remaining
        if keep:
            m.book.shrink(o, o.remaining - new_remaining)
            o.remaining = new_remaining
            o.qty = new_qty
            self._emit(
                E.OrderAmended, o.oid, acct.id, inst.symbol, o.price, o.qty, o.remaining, True
            )
            self._flush(m)
            return
        m.book.unrest(o)
        fresh = o.copy()
        o.status = REPLACED
        fresh.price = new_price
        fresh.qty = new_qty
        fresh.remaining = new_remaining
        fresh.ts = self.now
        self.orders[o.oid] = fresh
        seat.orders[o.oid] = fresh
        self._emit(
            E.OrderAmended,
            fresh.oid,
            acct.id,
            inst.symbol,
            new_price,
            new_qty,
            new_remaining,
            False,
        )
        self._execute(m, fresh, new_price)
        self._react(m)

    def _cut(self, m: Market, o: Order, lots: int) -> None:
        """Shrink a not-resting order's remaining quantity by `lots`, releasing its share."""
        seat = self.accounts[o.account].seats[o.symbol]
        seat.pending[o.side] -= lots
        if o.reserved:
            rel = o.reserved * lots // o.remaining
            self._release(m, o, rel)
        o.remaining -= lots
        o.qty -= lots
        self._emit(E.OrderAmended, o.oid, o.account, o.symbol, o.price, o.qty, o.remaining, True)

    def _close_order(self, m: Market, o: Order, status: int, reason: str) -> None:
        """Finish an open order that is not (or no longer) resting: release everything."""
        acct = self.accounts[o.account]
        seat = acct.seats[o.symbol]
        oid = o.oid
        del seat.orders[oid]
        remaining = o.remaining
        seat.pending[o.side] -= remaining
        amount = o.reserved
        if amount:  # self._release(m, o, amount)
            quote = m.inst.quote_asset
            o.reserved = 0
            acct.reserved[quote] -= amount
            acct.available[quote] += amount
            self._balances_touched[(acct.id, quote)] = None
        o.status = status
        cls = E.OrderCanceled if status == CANCELED else E.OrderExpired
        self.seq = seq = self.seq + 1
        self._out.append(
            cls.new(seq, self.now, oid, o.client_id, o.account, o.symbol, remaining, reason)
        )

    def _check_orders(self) -> None:
        """Every open order is held by its seat (the same object), seats' pending lots
        and accounts' reserved totals equal their open orders', closed orders hold
        nothing back."""
        for sym in self.markets:
            for a in self.accounts.values():
                s = a.seats.get(sym)
                if s is None:
                    continue
                opens = [
                    o
                    for o in self.orders.values()
                    if o.account == a.id
                    and o.symbol == sym
                    and o.status in (NEW, PARTIALLY_FILLED, UNTRIGGERED)
                ]
                assert sorted(s.orders) == sorted(o.oid for o in opens), (
                    f"open orders off for {a.id}"
                )
                assert list(s.orders) == sorted(s.orders), f"seat {a.id} holds its orders unsorted"
                m = self.markets[sym]
                for o in opens:
                    # what `_review_reservations` relies on: an order holds at least its fee
                    if not o.reduce_only and o.type != "LIQUIDATION":
                        worst = (
                            o.price
                            if o.type in LIMIT_KINDS
                            else band_edge(m.inst, o.side, o.stop_price or m.mark)
                        )
                        fee = -((-o.remaining * worst * m.inst.lot_value * m.fee_rate) // RATE_ONE)
                        assert o.reserved >= fee, f"order {o.oid} holds less than its fee"
                for oid, o in s.orders.items():
                    assert self.orders[oid] is o, f"seat {a.id} holds a stale copy of order {oid}"
                for side in (BUY, SELL):
                    assert s.pending[side] == sum(o.remaining for o in opens if o.side == side), (
                        f"pending off for {a.id}"
                    )
        for o in self.orders.values():
            assert 0 <= o.remaining <= o.qty, f"order {o.oid} quantity out of range"
            assert o.reserved >= 0
            if o.status >= FILLED and o.status != UNTRIGGERED:
                assert o.reserved == 0, f"closed order {o.oid} still reserves"
        for a in self.accounts.values():
            for asset, r in a.reserved.items():
                held = sum(
                    o.reserved
                    for o in self.orders.values()
                    if o.account == a.id and self.instruments[o.symbol].quote_asset == asset
                )
                assert r == held, f"reservation total off for {a.id}"
