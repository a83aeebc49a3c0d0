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
open-order limit; the bracket for the leverage; and margin for all the reservations.

Cost: O(k) for k orders withdrawn and placed, plus the price levels' index: levels emptied
or created are removed and inserted in one batch per side (O(k log L) at worst). The
common case of a replay is cheaper still: when the account's quotes are all the book
holds, both sides are rebuilt whole (`Book.replace_side`) and the delta is made from the
old and new prices directly; and while the book has not changed since the account's last
replacement (`Market.quotes`, checked by the book's seq), its old quotes are known
without scanning its orders or touching their levels. Events are the same either way.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from . import commands as C
from .book import BUY, CANCELED, FILLED, NEW, PARTIALLY_FILLED, SELL, Level, Order
from .errors import Code
from .events import BookUpdated, Event, event
from .numbers import RATE_ONE

if TYPE_CHECKING:
    from .room import Room as Exchange

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


def _levels(lo: int, hi: int, inst: Any, levels: Any, buy: bool, rejected: Any) -> Levels:
    """The levels inside the band [lo, hi] around the mark (the others are left out),
    after checking every one. O(levels)."""
    if type(levels) is not tuple:
        raise rejected(Code.INVALID_PARAMETER, "bids and asks must be tuples of (price, qty).")
    lv = inst.lot_value
    min_price, max_price = inst.min_price, inst.max_price
    min_qty, max_qty, min_notional = inst.min_qty, inst.max_qty, inst.min_notional
    prev = None
    out = None  # only built once a level is left out (the common case keeps them all)
    for k, lvl in enumerate(levels):
        if type(lvl) is not tuple or len(lvl) != 2:
            raise rejected(Code.INVALID_PARAMETER, "a level is a (price, qty) pair.")
        price, qty = lvl
        if type(price) is not int or type(qty) is not int or price <= 0 or qty <= 0:
            raise rejected(Code.INVALID_PARAMETER, "level prices and sizes are positive ints.")
        if prev is not None and (price >= prev if buy else price <= prev):
            raise rejected(Code.INVALID_PARAMETER, "bids must descend and asks ascend, strictly.")
        prev = price
        if price < min_price:
            raise rejected(Code.PRICE_LESS_THAN_MIN)
        if price > max_price:
            raise rejected(Code.PRICE_GREATER_THAN_MAX)
        if qty < min_qty:
            raise rejected(Code.QTY_LESS_THAN_MIN)
        if qty > max_qty:
            raise rejected(Code.QTY_GREATER_THAN_MAX)
        if price * qty * lv < min_notional:
            raise rejected(Code.NOTIONAL_TOO_SMALL)
        if lo <= price <= hi:
            if out is not None:
                out.append(lvl)
        elif out is None:
            out = list(levels[:k])
    return levels if out is None else tuple(out)


def _delta(gone: list[int], levels: Levels, descending: bool) -> Levels:
    """A rebuilt side's `BookUpdated` levels, as `Book.flush` gives them: every price
    withdrawn (`gone`, now 0) or quoted (`levels`, at their sizes), best first."""
    if not gone:
        return levels
    totals = dict.fromkeys(gone, 0)
    totals.update(levels)
    return tuple(sorted(totals.items(), reverse=descending))


def replace_book(ex: Exchange, cmd: C.ReplaceBook, rejected: Any) -> None:
    """Apply `cmd` to `ex` (see the module docstring); `rejected` is the engine's
    rejection exception."""
    m = ex._market(cmd.symbol)
    acct = ex._account(cmd.account)
    inst = m.inst
    if m.halted:
        raise rejected(Code.MARKET_HALTED)
    lo, hi = ex._band(m)
    bids = _levels(lo, hi, inst, cmd.bids, True, rejected)
    asks = _levels(lo, hi, inst, cmd.asks, False, rejected)
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise rejected(Code.INVALID_PARAMETER, "the best bid must be below the best ask.")
    symbol = inst.symbol
    seat = acct.seats.get(symbol)
    if seat is not None and seat.liquidating:
        raise rejected(Code.USER_IN_LIQUIDATION)
    book = m.book
    # `Market.quotes`: the orders of the account's last replacement, while the book's seq
    # has not moved since and nothing is pending: then they are all the book holds and
    # all the account has resting here (beside conditional orders), one order a level,
    # each untouched.
    quotes = m.quotes
    same = (
        seat is not None
        and quotes is not None
        and quotes[0] == acct.id
        and quotes[1] == book.seq
        and not book.dirty
    )
    if same:
        assert seat is not None and quotes is not None
        old = quotes[2]
        kept = len(seat.orders) - len(old)
    elif seat is not None:
        old = [o for o in seat.orders.values() if o.status == NEW or o.status == PARTIALLY_FILLED]
        kept = len(seat.orders) - len(old)
    else:
        old, kept = [], 0
    if kept + len(bids) + len(asks) > inst.max_open_orders:
        raise rejected(Code.MAX_OPEN_ORDERS)
    # the reservations, as `_place` computes them for each order placed in turn
    # (`Orders._reservation`, inlined: initial margin on the increase, fee, open loss)
    leverage = seat.leverage if seat is not None else inst.default_leverage
    pos = seat.qty if seat is not None else 0
    apos = abs(pos)
    pending = list(seat.pending) if seat is not None else [0, 0]
    released = 0
    for o in old:
        pending[o.side] -= o.remaining
        released += o.reserved
    lv = inst.lot_value
    caps = inst._caps
    last_cap = len(caps) - 1
    brackets = inst.brackets
    fee_rate = m.fee_rate
    mark = m.mark
    reserves: list[int] = []
    for side, levels in ((BUY, bids), (SELL, asks)):
        opposite = (pos < 0) if side == BUY else (pos > 0)
        p = pending[side]
        for price, qty in levels:
            if opposite:
                closable = apos - p if apos > p else 0
                grow = p - apos if p > apos else 0
            else:
                closable = 0
                grow = apos + p
            increase = qty - closable if qty > closable else 0
            notional = price * lv
            fee = -(-qty * notional * fee_rate // RATE_ONE)
            if increase:
                i = bisect_left(caps, (grow + increase) * notional)
                if brackets[i if i < last_cap else last_cap].max_leverage < leverage:
                    raise rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
                im = -(-increase * notional // leverage)
                if mark > 0:
                    gap = price - mark if side == BUY else mark - price
                    if gap > 0:
                        fee += gap * increase * lv
                reserves.append(im + fee)
            else:
                reserves.append(fee)
            p += qty
        pending[side] = p  # what the account will have open on the side
    quote = inst.quote_asset
    total = sum(reserves)
    if total > acct.available.get(quote, 0) + released:
        raise rejected(Code.MARGIN_INSUFFICIENT)
    # ---- accepted: mutate from here on
    orders = ex.orders
    dirty = book.dirty
    sides = (book.bids, book.asks)
    # `whole`: the account's quotes were all the book held (the common case of a replay),
    # so both sides are rebuilt at once and their delta is the old prices (now 0) and the
    # new levels, known without marking each level dirty and sorting them in `flush`.
    gone: tuple[list[int], list[int]] = ([], [])
    if same:
        assert seat is not None
        whole = True
        seat_orders = seat.orders
        for o in old:
            gone[o.side].append(o.price)
            o.status = CANCELED
            del seat_orders[o.oid]
            del orders[o.oid]  # withdrawn quotes are never looked up again
    elif old:
        assert seat is not None
        whole = not dirty
        seat_orders = seat.orders
        for o in old:
            side, price, rem = o.side, o.price, o.remaining
            lvl = sides[side][price]  # `Book.unrest`, with the emptied levels removed below
            lvl.qty -= rem
            if not lvl.qty:
                gone[side].append(price)
            dirty[(side, price)] = None
            o.status = CANCELED
            del seat_orders[o.oid]
            del orders[o.oid]
        whole = whole and len(gone[0]) == len(sides[0]) and len(gone[1]) == len(sides[1])
        if whole:
            dirty.clear()
        else:
            for levels_, prices in zip(sides, gone, strict=True):
                if len(prices) == len(levels_):
                    levels_.clear()
                else:
                    for price in prices:
                        del levels_[price]
    else:
        whole = not dirty and not sides[0] and not sides[1]
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
    oid = first
    now = ex.now
    aid = acct.id
    seat_orders = seat.orders
    seat.pending[BUY], seat.pending[SELL] = pending  # the old withdrawn, the new added
    bid_levels, ask_levels = sides
    # Bids rest before asks and best bid < best ask, so a level can only trade with
    # another account's order; if none crosses, every order rests as it is made (the
    # levels created inserted in one batch a side).
    crossing = not whole and bool(
        (bids and ask_levels and ask_levels.peekitem(0)[0] <= bids[0][0])
        or (asks and bid_levels and bid_levels.peekitem(-1)[0] >= asks[0][0])
    )
    new: list[Order] = []
    made_orders: list[Order] = []
    k = 0
    if same:
        assert quotes is not None
        # The withdrawn quotes and their levels (each held just its quote) are made over
        # into the new ones, a side's first levels from its old ones: nothing allocated.
        # Nothing else refers to them: the book's levels are dropped, ids are new.
        nb = quotes[3]
        for side, levels in ((BUY, bids), (SELL, asks)):
            pool = old[:nb] if side == BUY else old[nb:]
            npool = len(pool)
            resting = sides[side]
            made: dict[int, Level] = {}
            for j, (price, qty) in enumerate(levels):
                if j < npool:
                    o = pool[j]
                    lvl = resting[o.price]
                    o.oid, o.price, o.qty, o.remaining = oid, price, qty, qty
                    o.status, o.ts = NEW, now
                else:
                    o = Order(oid, aid, symbol, side, "LIMIT", "GTC", price, qty, 0,
                              "MARK_PRICE", False, None, "NONE", now)  # fmt: skip
                    lvl = Level()
                    lvl.orders.append(o)
                o.reserved = reserves[k]
                k += 1
                orders[oid] = o
                seat_orders[oid] = o
                oid += 1
                made_orders.append(o)
                lvl.qty = qty
                made[price] = lvl
            book.replace_side(side, made)
        bids_asks: tuple[Levels, Levels] = ((), ())  # every level placed above
    else:
        bids_asks = (bids, asks)
    for side, levels in ((BUY, bids_asks[0]), (SELL, bids_asks[1])):
        resting = sides[side]
        made = {}
        for price, qty in levels:
            o = Order(oid, aid, symbol, side, "LIMIT", "GTC", price, qty, 0, "MARK_PRICE",
                      False, None, "NONE", now)  # fmt: skip
            o.reserved = reserves[k]
            k += 1
            orders[oid] = o
            seat_orders[oid] = o
            oid += 1
            if whole:
                made_orders.append(o)
                lvl = made[price] = Level()
                lvl.orders.append(o)
                lvl.qty = qty
            elif crossing:
                new.append(o)
            else:
                lvl = resting.get(price)  # `Book.rest`, with the new levels inserted below
                if lvl is None:
                    lvl = made[price] = Level()
                lvl.orders.append(o)
                lvl.qty += qty
                dirty[(side, price)] = None
        if whole:
            if not same:
                book.replace_side(side, made)
        elif made:
            resting.update(made)
    ex.next_order_id = oid
    left_out = len(cmd.bids) + len(cmd.asks) - len(bids) - len(asks)
    ex._emit(BookReplaced, aid, symbol, len(old), first, bids, asks, left_out)
    if whole:
        # what `_react`'s first flush would emit, in its order: balances, then the book
        ex._flush(m)
        bid_delta = _delta(gone[0], bids, True)
        ask_delta = _delta(gone[1], asks, False)
        if bid_delta or ask_delta:
            book.seq += 1
            ex._emit(BookUpdated, symbol, book.seq, bid_delta, ask_delta)
        m.quotes = (aid, book.seq, made_orders, len(bids))
    else:
        m.quotes = None
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
