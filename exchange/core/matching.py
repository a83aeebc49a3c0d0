"""The book and matching: price-time priority, the price band, self-trade prevention.

`Book` (book.py) holds the price levels; this room matches a taker against them:
O(k + log L) for k fills. Each match is one `OrderFilled` with both sides, both fees
(rounded up) and what each order has left; market orders never trade beyond the band
around the mark, and no fill ever closes a position beyond its bankruptcy price.
"""

from __future__ import annotations

from . import events as E
from .book import (
    BUY,
    EXPIRED,
    FILLED,
    LIMIT_KINDS,
    NEW,
    PARTIALLY_FILLED,
    SELL,
    SIDES,
    Level,
    Order,
)
from .numbers import RATE_ONE
from .room import Room
from .state import FUND, Market, band_edge


class Matching(Room):
    """Matching takers against the book and booking each fill."""

    def _band(self, m: Market) -> tuple[int, int]:
        """(lowest, highest) tick allowed around the mark; (0, huge) without a mark."""
        ref = m.mark
        if ref <= 0:
            return 0, 1 << 62
        if ref != m.band_ref:
            m.band_lo = band_edge(m.inst, SELL, ref)
            m.band_hi = band_edge(m.inst, BUY, ref)
            m.band_ref = ref
        return m.band_lo, m.band_hi

    def _would_take(self, m: Market, side: int, price: int) -> bool:
        if side == BUY:
            ba = m.book.best_ask()
            return ba is not None and ba <= price
        bb = m.book.best_bid()
        return bb is not None and bb >= price

    def _fillable(self, m: Market, side: int, limit: int, want: int, account: int, stp: str) -> int:
        """Lots an order could take at `limit` or better, counting up to `want`."""
        got = 0
        closable: dict[int, int] = {}  # what reduce-only makers can still close, per account
        levels = m.book.asks if side == BUY else m.book.bids
        prices = (
            levels.irange(maximum=limit)
            if side == BUY
            else levels.irange(minimum=limit, reverse=True)
        )
        for p in prices:
            lvl: Level = levels[p]
            for o in lvl.live():
                if stp != "NONE" and o.account == account:
                    if stp != "EXPIRE_MAKER":
                        return got
                    continue
                if o.reduce_only:
                    left = closable.get(o.account)
                    if left is None:
                        pos = self.accounts[o.account].seats[o.symbol].qty
                        left = abs(pos) if pos and (pos > 0) == (o.side == SELL) else 0
                    n = min(left, o.remaining)
                    closable[o.account] = left - n
                    got += n
                else:
                    got += o.remaining
                if got >= want:
                    return got
        return got

    def _execute(self, m: Market, o: Order, limit: int) -> None:
        """Match `o` as a taker up to `limit`, then rest or expire what is left."""
        if o.reduce_only:
            seat = self.accounts[o.account].seats[o.symbol]
            closable = abs(seat.qty) if (seat.qty > 0) == (o.side == SELL) and seat.qty else 0
            if closable < o.remaining:
                if closable == 0:
                    self._close_order(m, o, EXPIRED, "REDUCE_ONLY")
                    return
                self._cut(m, o, o.remaining - closable)
        reason = self._match(m, o, limit, False)
        if o.status >= FILLED:
            return
        if o.remaining == 0:
            return
        if reason is None and o.type in LIMIT_KINDS and o.tif in ("GTC", "GTX"):
            m.book.rest(o)
            return
        if reason is None:
            if o.type in LIMIT_KINDS:
                reason = "IOC"
            else:
                book = m.book.asks if o.side == BUY else m.book.bids
                reason = "PRICE_BAND" if book else "NO_LIQUIDITY"
        self._close_order(m, o, EXPIRED, reason)

    def _match(self, m: Market, t: Order, limit: int, liquidation: bool) -> str | None:
        """Fill taker `t` against the book in price-time order up to `limit`.

        Returns an expiry reason when self-trade prevention stopped the taker, else None.
        O(k + log L) for k fills.
        """
        book = m.book
        buy = t.side == BUY
        levels = book.asks if buy else book.bids
        if not levels or not t.remaining:
            return None
        stp = "NONE" if liquidation else t.stp
        accounts = self.accounts
        lv = m.inst.lot_value
        # the taker's seat: `_beyond_bankruptcy` for the taker, inlined below
        t_seat = accounts[t.account].seats[t.symbol]
        t_fund = t.account == FUND
        fill = self._fill
        top = book.top
        while t.remaining and levels:
            price = top(buy)
            lvl = levels[price]
            if (price > limit) if buy else (price < limit):
                break
            q = lvl.orders
            while t.remaining and q:
                mk = q[0]
                if mk.status >= FILLED:
                    q.popleft()
                    continue
                if mk.account == t.account and stp != "NONE":
                    if stp == "EXPIRE_MAKER" or stp == "EXPIRE_BOTH":
                        q.popleft()
                        book.unrest(mk)
                        self._close_order(m, mk, EXPIRED, "STP_MAKER")
                        if stp == "EXPIRE_BOTH":
                            return "STP_BOTH"
                        if not levels or price not in levels:
                            break
                        continue
                    return "STP_TAKER"
                n = mk.remaining if mk.remaining < t.remaining else t.remaining
                if mk.reduce_only:
                    ms = accounts[mk.account].seats[mk.symbol]
                    closable = abs(ms.qty) if ms.qty and (ms.qty > 0) == (mk.side == SELL) else 0
                    if closable == 0:
                        q.popleft()
                        book.unrest(mk)
                        self._close_order(m, mk, EXPIRED, "REDUCE_ONLY")
                        if price not in levels:
                            break
                        continue
                    if closable < n:
                        n = closable
                if not liquidation:
                    # Would the fill close part of the taker's or the maker's position
                    # beyond its bankruptcy price (`margin.bankruptcy_tick`, inlined)?
                    # Isolated margin bounds a position's loss: such fills never happen
                    # (the order expires instead; a liquidation deals with the position).
                    pq = t_seat.qty
                    if pq and (pq > 0) != buy and not t_fund:
                        if pq > 0:
                            bk = -((t_seat.margin - t_seat.cost) // (pq * lv))
                            if price < (bk if bk > 1 else 1):
                                return "BANKRUPTCY"
                        elif price > (t_seat.margin - t_seat.cost) // (-pq * lv):
                            return "BANKRUPTCY"
                    ms = accounts[mk.account].seats[mk.symbol]
                    pq = ms.qty
                    if pq and (pq > 0) == buy and mk.account != FUND:
                        if pq > 0:
                            bk = -((ms.margin - ms.cost) // (pq * lv))
                            beyond = price < (bk if bk > 1 else 1)
                        else:
                            beyond = price > (ms.margin - ms.cost) // (-pq * lv)
                        if beyond:
                            q.popleft()
                            book.unrest(mk)
                            self._close_order(m, mk, EXPIRED, "BANKRUPTCY")
                            if price not in levels:
                                break
                            continue
                fill(m, t, mk, price, n, liquidation)
                if mk.remaining == 0:
                    q.popleft()
                elif mk.reduce_only and n < t.remaining:
                    # the maker could only close part of its size: the rest would increase
                    q.popleft()
                    book.unrest(mk)
                    self._close_order(m, mk, EXPIRED, "REDUCE_ONLY")
            if lvl.qty == 0 and price in levels:
                del levels[price]
        return None

    def _fill(self, m: Market, t: Order, mk: Order, price: int, n: int, liquidation: bool) -> None:
        """One match of taker `t` with resting maker `mk`: n lots at `price`."""
        inst = m.inst
        quote = inst.quote_asset
        notional = price * n * inst.lot_value
        maker_fee = -((-notional * inst.maker_fee) // RATE_ONE)
        taker_fee = 0 if liquidation else -((-notional * inst.taker_fee) // RATE_ONE)
        t_before = t.remaining
        mk_before = mk.remaining
        t.remaining = t_left = t_before - n
        mk.remaining = mk_left = mk_before - n
        m.book.shrink(mk, n)
        accounts = self.accounts
        settle = self._settle
        settle(m, t, t_before, price, n, taker_fee, liquidation)
        settle(m, mk, mk_before, price, n, maker_fee, False)
        fees = self.fees_collected
        fees[quote] = fees.get(quote, 0) + maker_fee + taker_fee
        now = self.now
        m.last = price
        m.last_qty = n
        m.last_ts = now
        tid = self.next_trade_id
        self.next_trade_id = tid + 1
        self.seq = seq = self.seq + 1
        self._out.append(
            E.OrderFilled.new(
                seq,
                now,
                inst.symbol,
                tid,
                price,
                n,
                SIDES[t.side],
                t.oid,
                mk.oid,
                t.account,
                mk.account,
                taker_fee,
                maker_fee,
                t_left,
                mk_left,
                liquidation,
            )
        )
        if mk_left == 0:
            mk.status = FILLED
            del accounts[mk.account].seats[mk.symbol].orders[mk.oid]
            if mk.reserved:
                self._release(m, mk, mk.reserved)
        else:
            mk.status = PARTIALLY_FILLED
        if t_left == 0:
            t.status = FILLED
            del accounts[t.account].seats[t.symbol].orders[t.oid]
            if t.reserved:
                self._release(m, t, t.reserved)
        else:
            t.status = PARTIALLY_FILLED

    def _check_books(self) -> None:
        """Each book is sound (`Book._check`) and rests exactly the open limit orders."""
        for sym, m in self.markets.items():
            m.book._check()
            resting = {o.oid for side in m.book.l3() for o in side}
            open_book = {
                o.oid
                for o in self.orders.values()
                if o.symbol == sym and o.status in (NEW, PARTIALLY_FILLED)
            }
            assert resting == open_book, f"{sym}: id index and book disagree"
            q = m.quotes
            if q is not None and q[1] == m.book.seq and not m.book.dirty:
                # the cache `synthetic.replace_book` trusts: the book holds these alone
                assert resting == {o.oid for o in q[2]}, f"{sym}: quotes cache is stale"
                assert all(o.remaining == o.qty and o.account == q[0] for o in q[2])
