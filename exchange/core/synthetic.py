"""Synthetic liquidity: one account's quotes on a symbol, replaced as a whole in one command.

`ReplaceBook(account, symbol, bids, asks)` withdraws every resting limit order of the
account on the symbol and rests one GTC limit order per given level, as one command with
one `BookReplaced` event and one `BookUpdated` delta (the levels whose totals changed) —
where cancelling and placing the orders one by one costs two commands and three events a
level. It is how a replay quotes liquidity around the index for data without a recorded
book (`replay.player.SyntheticBook`): replaced at each index move.

The new orders are ordinary orders of the account in every other respect: they reserve
margin like any limit order (the account must afford them all), fill in price-time
priority, and their fills are ordinary `OrderFilled` events. A level that crosses another
account's resting order trades with it first, as a placed limit order would (the quoted
market moved through that price). Conditional orders of the account are left alone.

Levels beyond the price band around the mark are left out (counted in the event): the
quotes follow the index, and with a mark method other than `index` the mark may lag it.

Validation before any change (one rejection, nothing changed): the symbol, the account,
not halted, not in liquidation; levels as (tick, lots) integer pairs, bids strictly
descending, asks strictly ascending, best bid below best ask; every price within the
instrument's limits; every size within the quantity limits and the minimum notional; the
open-order limit; the bracket for the leverage; and margin for all the reservations. Cost: O(k log L) for k orders withdrawn and placed.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from . import commands as C
from .book import BUY, CANCELED, FILLED, NEW, PARTIALLY_FILLED, SELL, Order
from .errors import Code
from .events import Event, event

if TYPE_CHECKING:
    from .room import Room as Exchange
    from .state import Market

__all__ = ["BookReplaced", "replace_book"]

Levels = tuple[tuple[int, int], ...]


@event
class BookReplaced(Event):
    """An account's quotes on a symbol were replaced: `canceled` resting orders withdrawn,
    one order per level placed (`bids`, `asks`), with consecutive ids from
    `first_order_id` (bids, best first, then asks, best first); `outside_band` levels of
    the command were left out (beyond the price band around the mark)."""

    account: int
    symbol: str
    canceled: int
    first_order_id: int
    bids: Levels
    asks: Levels
    outside_band: int


def _levels(ex: Exchange, m: Market, levels: Any, side: int, rejected: Any) -> Levels:
    """The levels inside the band around the mark (the others are left out), after
    checking every one."""
    inst = m.inst
    if type(levels) is not tuple:
        raise rejected(Code.INVALID_PARAMETER, "bids and asks must be tuples of (price, qty).")
    lo, hi = ex._band(m)
    lv = inst.lot_value
    prev = None
    out = []
    for lvl in levels:
        if type(lvl) is not tuple or len(lvl) != 2:
            raise rejected(Code.INVALID_PARAMETER, "a level is a (price, qty) pair.")
        price, qty = lvl
        if type(price) is not int or type(qty) is not int or price <= 0 or qty <= 0:
            raise rejected(Code.INVALID_PARAMETER, "level prices and sizes are positive ints.")
        if prev is not None and (price >= prev if side == BUY else price <= prev):
            raise rejected(Code.INVALID_PARAMETER, "bids must descend and asks ascend, strictly.")
        prev = price
        if price < inst.min_price:
            raise rejected(Code.PRICE_LESS_THAN_MIN)
        if price > inst.max_price:
            raise rejected(Code.PRICE_GREATER_THAN_MAX)
        if qty < inst.min_qty:
            raise rejected(Code.QTY_LESS_THAN_MIN)
        if qty > inst.max_qty:
            raise rejected(Code.QTY_GREATER_THAN_MAX)
        if price * qty * lv < inst.min_notional:
            raise rejected(Code.NOTIONAL_TOO_SMALL)
        if lo <= price <= hi:
            out.append(lvl)
    return tuple(out) if len(out) != len(levels) else levels


def replace_book(ex: Exchange, cmd: C.ReplaceBook, rejected: Any) -> None:
    """Apply `cmd` to `ex` (see the module docstring); `rejected` is the engine's
    rejection exception."""
    m = ex._market(cmd.symbol)
    acct = ex._account(cmd.account)
    inst = m.inst
    if m.halted:
        raise rejected(Code.MARKET_HALTED)
    bids = _levels(ex, m, cmd.bids, BUY, rejected)
    asks = _levels(ex, m, cmd.asks, SELL, rejected)
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise rejected(Code.INVALID_PARAMETER, "the best bid must be below the best ask.")
    symbol = inst.symbol
    seat = acct.seats.get(symbol)
    if seat is not None and seat.liquidating:
        raise rejected(Code.USER_IN_LIQUIDATION)
    old = (
        [o for o in seat.orders.values() if o.status == NEW or o.status == PARTIALLY_FILLED]
        if seat is not None
        else []
    )
    kept = (len(seat.orders) if seat is not None else 0) - len(old)
    if kept + len(bids) + len(asks) > inst.max_open_orders:
        raise rejected(Code.MAX_OPEN_ORDERS)
    # the reservations, as `_place` computes them for each order placed in turn
    leverage = seat.leverage if seat is not None else inst.default_leverage
    pos = seat.qty if seat is not None else 0
    apos = abs(pos)
    pending = list(seat.pending) if seat is not None else [0, 0]
    for o in old:
        pending[o.side] -= o.remaining
    lv = inst.lot_value
    caps = inst._caps
    reserves: list[int] = []
    for side, levels in ((BUY, bids), (SELL, asks)):
        opposite = (pos < 0) if side == BUY else (pos > 0)
        for price, qty in levels:
            p = pending[side]
            if opposite:
                closable = apos - p if apos > p else 0
                grow = p - apos if p > apos else 0
            else:
                closable = 0
                grow = apos + p
            increase = qty - closable if qty > closable else 0
            if increase:
                i = bisect_left(caps, (grow + increase) * price * lv)
                if inst.brackets[min(i, len(caps) - 1)].max_leverage < leverage:
                    raise rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
            reserves.append(ex._reservation(m, side, price, qty, increase, leverage))
            pending[side] = p + qty
    quote = inst.quote_asset
    released = sum(o.reserved for o in old)
    total = sum(reserves)
    if total > acct.available.get(quote, 0) + released:
        raise rejected(Code.MARGIN_INSUFFICIENT)
    # ---- accepted: mutate from here on
    book = m.book
    orders = ex.orders
    if old:
        assert seat is not None
        for o in old:
            book.unrest(o)
            o.status = CANCELED
            del seat.orders[o.oid]
            seat.pending[o.side] -= o.remaining
            del orders[o.oid]  # withdrawn quotes are never looked up again
    if seat is None:
        seat = ex._seat(acct, m)
    m.seats[acct.id] = seat
    available = acct.available
    reserved = acct.reserved
    available[quote] = available.get(quote, 0) + released - total
    reserved[quote] = reserved.get(quote, 0) - released + total
    if released or total:
        ex._touch_balance(acct.id, quote)
    first = ex.next_order_id
    now = ex.now
    new: list[Order] = []
    k = 0
    for side, levels in ((BUY, bids), (SELL, asks)):
        for price, qty in levels:
            oid = ex.next_order_id
            ex.next_order_id = oid + 1
            o = Order(oid, acct.id, symbol, side, "LIMIT", "GTC", price, qty, 0, "MARK_PRICE",
                      False, None, "NONE", now)  # fmt: skip
            o.reserved = reserves[k]
            k += 1
            orders[oid] = o
            seat.orders[oid] = o
            seat.pending[side] += qty
            new.append(o)
    left_out = len(cmd.bids) + len(cmd.asks) - len(bids) - len(asks)
    ex._emit(BookReplaced, acct.id, symbol, len(old), first, bids, asks, left_out)
    for o in new:
        if o.status >= FILLED:  # an earlier level's trade cannot fill it, but be safe
            continue
        if o.side == BUY:
            best = book.best_ask()
            crosses = best is not None and best <= o.price
        else:
            best = book.best_bid()
            crosses = best is not None and best >= o.price
        if crosses:
            ex._execute(m, o, o.price)
        else:
            book.rest(o)
    ex._react(m)
