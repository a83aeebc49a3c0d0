"""Liquidations and cascades: the loop that works through the positions due.

A mark move that crosses positions starts a cascade: each position due is handed to the
liquidation policy (liquidation.py), in order; the policy's fills move the mark, which
may make more positions due — the next generation. Every liquidation carries the
cascade id, its generation, its parent and the mark that triggered it; the cascade ends
with one `CascadeEnded`. Bounds (`max_cascade_liquidations`, `max_cascade_generations`)
truncate it; what is left stays queued and goes first at the next command.

`Cascades` also holds most of `liquidation.LiquidationVenue`, the primitives a policy
may use (`cancel_orders_of`, `liquidation_order`, `fund_seat`, `fund_equity`,
`close_liquidated`, `adl_candidates`, `emit`; `transfer_position` is the positions
room's, `insurance_fund` the accounts room's).
"""

from __future__ import annotations

import gc
from collections import deque
from typing import Any

from . import events as E
from .adl import AdlRank, rank_once
from .book import (
    BUY,
    EXPIRED,
    FILLED,
    SELL,
    Order,
)
from .liquidation import LiquidationPolicy, make_policy
from .margin import is_liquidatable
from .room import Room
from .state import FUND, Cascade, Market, Seat

# up to this many positions on a side, ranking them afresh is cheaper than keeping a rank
SMALL_SIDE = 16

# positions due together: (seats, generation, parent liquidation id, trigger mark)
Batch = tuple[list[Seat], int, int | None, int]


class Cascades(Room):
    """The cascade loop and the primitives liquidation policies work with."""

    def _cascade(self, m: Market) -> bool:
        """Liquidate every position the mark has crossed, and every one that the
        resulting mark moves cross in turn. Returns whether anything was liquidated."""
        # A cascade allocates many objects that all live on (its events, the liquidation
        # orders) and no garbage cycles: the cyclic collector would only traverse the
        # whole heap again and again as they accumulate. It is paused meanwhile (and
        # left as it was found), from taking the due positions out on; nothing it does
        # is observable in the state or events.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            # batches of positions due: (seats, generation, parent, trigger mark)
            queue: deque[Batch] = deque()
            mark = m.mark
            if m.queued:
                accounts = self.accounts
                symbol = m.inst.symbol
                queue.append(([accounts[a].seats[symbol] for a in m.queued], 0, None, mark))
                m.queued = []
            due = self._due(m)
            if due:
                queue.append((due, 0, None, mark))
            if not queue:
                return False
            quote = m.inst.quote_asset
            fund = self.accounts[FUND]
            cas = Cascade(self.next_cascade_id, m.inst.symbol, fund.available.get(quote, 0))
            self.next_cascade_id += 1
            # the ADL ranks of this cascade (adl.py), kept up to date between liquidations
            owner = self._adl_ranks is None
            if owner:
                self._adl_ranks = {}
            try:
                truncated = self._liquidate_queue(m, queue, cas)
            finally:
                if owner:
                    self._adl_ranks = None
        finally:
            if paused:
                # What the cascade allocated lives on, so the collector's first pass after
                # it would traverse every one of those objects to find nothing: moving
                # them all into the oldest generation first (freeze, then unfreeze: O(1),
                # lists spliced) spares that pass. Not when something else has frozen
                # objects (unfreezing would thaw them too).
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()
        if cas.count == 0 and not truncated:
            self.next_cascade_id -= 1  # nothing was liquidated after all: no cascade
            return False
        self._emit(
            E.CascadeEnded,
            cas.cid,
            cas.symbol,
            cas.count,
            cas.volume,
            cas.depth,
            tuple(cas.path),
            cas.fund_before,
            fund.available.get(quote, 0),
            cas.adl,
            truncated,
        )
        return cas.count > 0 and not truncated

    def _liquidate_queue(self, m: Market, queue: deque[Batch], cas: Cascade) -> bool:
        """The cascade loop: liquidate the queued positions in order, queueing the ones
        each resulting mark move crosses. Returns whether a bound truncated it."""
        inst = m.inst
        liquidate = self.policy_of(m).liquidate
        max_count = self.max_cascade_liquidations
        max_gen = self.max_cascade_generations
        flush = self._flush
        update_mark = self._update_mark
        due = self._due
        monitor = m.monitor
        path = cas.path
        book = m.book
        # the next trade id and the book's sequence at the last mark update
        seen_trade = seen_book = -1
        while queue:
            seats, gen, parent, trigger = queue.popleft()
            first = True  # (the batch's generation and trigger go into the tally once)
            for i, seat in enumerate(seats):
                if cas.count >= max_count or gen >= max_gen:
                    m.queued = [s.account for s in seats[i:]]
                    for rest, *_ in queue:
                        m.queued.extend([s.account for s in rest])
                    return True
                qty = seat.qty
                if qty == 0 or not is_liquidatable(inst, qty, seat.cost, seat.margin, m.mark):
                    seat.liquidating = False
                    self._touched[seat] = None
                    continue
                lid = self.next_liquidation_id
                self.next_liquidation_id = lid + 1
                liquidate(self, m, seat, cas, lid, gen, parent, trigger)
                seat.liquidating = False
                cas.count += 1
                left = seat.qty
                if left:  # a partial liquidation: the rest goes back into the monitor
                    self._touched[seat] = None
                    cas.volume += (qty if qty > 0 else -qty) - (left if left > 0 else -left)
                else:
                    cas.volume += qty if qty > 0 else -qty
                if first:
                    first = False
                    if gen + 1 > cas.depth:
                        cas.depth = gen + 1
                    if not path or path[-1] != trigger:
                        path.append(trigger)
                flush(m)
                # the mark's inputs (index, last, the book, the time) move only with a
                # trade or a book change: without one the mark is as it was
                if self.next_trade_id != seen_trade or book.seq != seen_book:
                    seen_trade = self.next_trade_id
                    seen_book = book.seq
                    if update_mark(m):
                        self._fire_stops(m)
                        flush(m)  # (what the stops did is seen at the next update)
                # nothing is due at the mark the monitor last found calm (`pop_due` would
                # say so): most liquidations neither move the mark nor add a position it
                # crosses
                if monitor.calm != m.mark:
                    more = due(m)
                    if more:
                        queue.append((more, gen + 1, lid, m.mark))
        return False

    def cancel_orders_of(self, m: Market, seat: Seat, reason: str) -> None:
        """Cancel every open order of the seat's account on its symbol."""
        if seat.orders:
            for o in self._open_orders_of(seat.account, seat.symbol):
                self._cancel_order(m, o, reason)

    def policy_of(self, m: Market) -> LiquidationPolicy:
        """The policy that liquidates on `m`: the exchange's `policy` when one is set,
        else the market's instrument's `liquidation_policy` (one instance per name)."""
        policy = self.policy
        if policy is None:
            name = m.inst.liquidation_policy
            policy = self._policies.get(name)
            if policy is None:
                policy = self._policies[name] = make_policy(name, adl=self.adl)
        return policy

    def liquidation_order(
        self, m: Market, seat: Seat, price: int, lots: int = 0
    ) -> list[tuple[int, int]]:
        """Send an IOC order for `lots` of the position (0: all of it) at `price` into the
        book as a taker, without fee; its proceeds stay in the position margin. Returns
        its fills."""
        sq = seat.qty
        side = SELL if sq > 0 else BUY
        qty = lots or (sq if sq > 0 else -sq)
        oid = self.next_order_id
        self.next_order_id = oid + 1
        o = Order(
            oid,
            seat.account,
            seat.symbol,
            side,
            "LIQUIDATION",
            "IOC",
            price,
            qty,
            0,
            "MARK_PRICE",
            True,
            None,
            "NONE",
            self.now,
        )
        self.orders[oid] = o
        book = m.book
        if side == SELL:
            best = book.best_bid()
            crosses = best is not None and best >= price
        else:
            best = book.best_ask()
            crosses = best is not None and best <= price
        if not crosses:
            # nothing can match (most of a big cascade's positions): the order expires
            # as it came, and the seat's open orders and pending lots are as they were
            o.status = EXPIRED
            return []
        seat.orders[oid] = o
        seat.pending[side] += qty
        out = self._out
        start = len(out)
        self._match(m, o, price, True)
        fills = [
            (e.price, e.qty)
            for e in out[start:]
            if type(e) is E.OrderFilled and e.taker_order_id == oid
        ]
        if o.remaining and o.status < FILLED:
            del seat.orders[oid]
            seat.pending[side] -= o.remaining
            o.status = EXPIRED
        return fills

    def rest_liquidation_order(self, m: Market, seat: Seat, price: int, lots: int) -> None:
        """Place a reduce-only GTC liquidation order of `lots` closing the seat's
        position at `price` (the fund's, under BitMEX's rules): what crosses the book
        fills at once as any taker, the rest rests as a maker until filled, or until the
        position it reduces is gone (then it expires, as reduce-only orders do)."""
        side = SELL if seat.qty > 0 else BUY
        o = Order(
            self.next_order_id,
            seat.account,
            seat.symbol,
            side,
            "LIQUIDATION",
            "GTC",
            price,
            lots,
            0,
            "MARK_PRICE",
            True,
            None,
            "NONE",
            self.now,
        )
        self.next_order_id += 1
        self.orders[o.oid] = o
        seat.orders[o.oid] = o
        seat.pending[side] += lots
        m.seats[seat.account] = seat
        self._emit(
            E.OrderAccepted,
            o.oid,
            None,
            seat.account,
            seat.symbol,
            "BUY" if side == BUY else "SELL",
            "LIQUIDATION",
            "GTC",
            price,
            lots,
            0,
            True,
            "NEW",
        )
        if m.book.asks if side == BUY else m.book.bids:
            # (it follows an IOC at the same price, so this is rare) the fund's own trade:
            # it settles as any, taker fee included
            self._match(m, o, price, False)
        if o.remaining and o.status < FILLED:
            m.book.rest(o)

    def fund_seat(self, m: Market) -> Seat:
        return self._seat(self.accounts[FUND], m)

    def fund_equity(self, m: Market) -> int:
        """Insurance fund balance plus the unrealized PnL of its positions at their marks."""
        fund = self.accounts[FUND]
        inst = m.inst
        quote = inst.quote_asset
        eq = fund.available.get(quote, 0)
        for sym, seat in fund.seats.items():
            if seat.qty:
                mk = m if sym == inst.symbol else self.markets[sym]
                if mk.inst.quote_asset == quote:
                    eq += seat.qty * mk.mark * mk.inst.lot_value - seat.cost
        return eq

    def close_liquidated(self, m: Market, seat: Seat, keep: int = 0) -> int:
        """Move what is left of a closed liquidated position's margin to the fund, but
        `keep` of it (0 ≤ keep ≤ margin), which goes back to the owner's wallet.
        Returns the amount the fund gained."""
        assert seat.qty == 0 and 0 <= keep <= seat.margin
        quote = m.inst.quote_asset
        available = self.accounts[FUND].available
        amount = seat.margin - keep
        available[quote] = available.get(quote, 0) + amount
        balances = self._balances_touched
        if keep:
            owner = self.accounts[seat.account].available
            owner[quote] = owner.get(quote, 0) + keep
            balances[(seat.account, quote)] = None
        seat.margin = 0
        seat.cost = 0
        balances[(FUND, quote)] = None
        self._touched[seat] = None
        return amount

    def adl_candidates(
        self, m: Market, long_liquidated: bool, exclude: int, lots: int = 0
    ) -> list[Seat]:
        """Opposite positions ranked for auto-deleveraging (`adl.py`): by profit % ×
        effective leverage (profit % ÷ effective leverage when losing), highest first;
        ties by account id; the insurance fund's own positions last. With `lots`, the
        list may end once its positions cover that many lots (a deleveraging of `lots`
        never reads further). During a cascade the rank is kept between liquidations
        and only the positions changed since are re-scored: O(d log N + k) for the k
        seats returned; a side of at most `SMALL_SIDE` positions, or a call outside a
        cascade, is ranked afresh: O(N log N)."""
        shorts = long_liquidated
        opposite = m.sides[1 if shorts else 0]
        if len(opposite) == 1:  # one holder (the fund's own seat is added below)
            ((acct_id, seat),) = opposite.items()
            qty = seat.qty
            eligible = acct_id != exclude and acct_id != FUND and qty and (qty < 0) == shorts
            if eligible:
                return [seat]  # (that one seat is not the fund's)
            out = []
        elif (ranks := self._adl_ranks) is None or len(opposite) <= SMALL_SIDE:
            out = rank_once(opposite, m.mark, m.inst.lot_value, shorts, exclude)
        else:
            symbol = m.inst.symbol
            rank_or_none = ranks.get((symbol, shorts))
            if rank_or_none is None or rank_or_none.mark != m.mark:
                rank = ranks[(symbol, shorts)] = AdlRank(opposite, m.mark, m.inst.lot_value, shorts)
            else:
                rank = rank_or_none
                # changed but not yet re-indexed (`_refresh` marks the others dirty)
                dirty = rank.dirty
                for seat in self._touched:
                    if seat.symbol == symbol:
                        dirty[seat.account] = seat
            out = rank.ordered(exclude, shorts, lots)
            if lots and sum(abs(s.qty) for s in out) >= lots:
                return out  # covered: the fund's seat (last) is never reached
        fund = opposite.get(FUND)
        if fund is not None and exclude != FUND and fund.qty and (fund.qty < 0) == shorts:
            out.append(fund)
        return out

    def emit(self, cls: Any, *args: Any) -> None:
        """Emit an event (for liquidation policies)."""
        self.seq = seq = self.seq + 1
        self._out.append(cls.new(seq, self.now, *args))
