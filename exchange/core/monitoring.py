"""The margin monitor's side of the exchange: re-pricing and re-indexing positions.

After a command changed positions, `_refresh` recomputes each touched position's exact
liquidation and bankruptcy ticks, re-indexes it in the market's `MarginMonitor`
(monitor.py: sorted by liquidation tick, so finding the due costs O(log N + k)) and the
long/short side indexes, and announces it (`PositionChanged`). `_due` takes the
positions the mark has crossed out of the monitor and flags them as liquidating.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import events as E
from .margin import liquidation_tick
from .monitor import BULK
from .room import Room
from .state import FUND, Market, Seat


class Monitoring(Room):
    """Re-indexing changed positions; taking out the ones the mark has crossed."""

    def _refresh(self, seats: Iterable[Seat]) -> None:
        """Re-price and re-index each of `seats` (changed positions, each once, in the
        order they changed) and announce it with one `PositionChanged`. O(log N) each."""
        markets = self.markets
        ranks = self._adl_ranks
        append = self._out.append
        now = self.now
        seq = self.seq
        position_changed = E.PositionChanged.new
        m: Market | None = None
        msym = None  # m's symbol
        for seat in seats:
            symbol = seat.symbol
            if m is None or symbol != msym:
                m = markets[symbol]
                msym = symbol
            qty = seat.qty
            account = seat.account
            longs, shorts = m.sides
            if qty:
                inst = m.inst
                cost = seat.cost
                margin = seat.margin
                liq = seat.liq = liquidation_tick(inst, qty, cost, margin)
                # margin.bankruptcy_tick, inlined
                # (a seat already indexed on its side is in `m.seats` and not on the
                # other side: the three indexes change together, here only)
                if qty > 0:
                    bk = -((margin - cost) // (qty * inst.lot_value))
                    if bk < 1:
                        bk = 1
                    if longs.get(account) is not seat:
                        m.seats[account] = seat
                        longs[account] = seat
                        if account in shorts:
                            del shorts[account]
                else:
                    bk = (margin - cost) // (-qty * inst.lot_value)
                    if shorts.get(account) is not seat:
                        m.seats[account] = seat
                        shorts[account] = seat
                        if account in longs:
                            del longs[account]
                seat.bk = bk
                if account != FUND and not seat.liquidating:
                    mon = m.monitor
                    key = mon.keys.get(account)
                    if key is None:
                        if liq > 0:
                            mon.update(account, qty, liq)
                    elif mon.ladder is not None or key[1] != liq or (key[0] > 0) != (qty > 0):
                        # (else update() would find the key as it would make it, and no
                        # ladder to count the lots in: an ADL counterparty, mostly)
                        mon.update(account, qty, liq)
            else:
                liq = bk = seat.liq = seat.bk = 0
                if account != FUND and not seat.liquidating:
                    mon = m.monitor
                    if account in mon.keys:
                        mon.update(account, 0, 0)
                if seat.orders:
                    m.seats[account] = seat
                else:
                    m.seats.pop(account, None)
                longs.pop(account, None)
                shorts.pop(account, None)
            if ranks:  # a cascade ranks positions for ADL: this one needs re-scoring
                for (sym, _), rank in ranks.items():
                    if sym == symbol:
                        rank.dirty[account] = seat
            seq += 1
            append(
                position_changed(
                    seq,
                    now,
                    account,
                    symbol,
                    qty,
                    seat.cost,
                    seat.margin,
                    seat.leverage,
                    liq,
                    bk,
                    seat.realized,
                )
            )
        self.seq = seq

    def _due(self, m: Market) -> list[Seat]:
        """Take the positions the mark has crossed out of the monitor, in the order
        they are to be liquidated, flagged as liquidating. O(k log N) for k due."""
        if m.mark <= 0:
            return []
        due = m.monitor.pop_due(m.mark)
        if not due:
            return []
        accounts = self.accounts
        symbol = m.inst.symbol
        if len(due) <= BULK:
            out = []
            for a in due:
                seat = accounts[a].seats[symbol]
                seat.liquidating = True
                out.append(seat)
            return out
        # Many due (a crash): their seats are looked up in account order, which is
        # mostly the order their records were created and lie in memory, so the walk
        # reads memory in order instead of at random (twice as fast for 100,000).
        seats: dict[int, Seat] = {}
        for a in sorted(due):
            seat = seats[a] = accounts[a].seats[symbol]
            seat.liquidating = True
        return [seats[a] for a in due]

    def _check_monitor(self) -> None:
        """Each monitor is sound (`MarginMonitor._check`) and holds every open position
        at its current liquidation tick; the side indexes hold the live seats."""
        for sym, m in self.markets.items():
            m.monitor._check()
            for a in self.accounts.values():
                s = a.seats.get(sym)
                if s is None:
                    continue
                if a.id != FUND and s.qty and not s.liquidating and m.mark > 0:
                    want = liquidation_tick(m.inst, s.qty, s.cost, s.margin)
                    assert s.liq == want, f"stale liquidation price for {a.id}"
                    key = m.monitor.keys.get(a.id)
                    if s.liq > 0:
                        assert key is not None and key[1] == s.liq, f"monitor misses {a.id}"
            for side, book in enumerate(m.sides):
                for acct_id, s in book.items():
                    assert s is self.accounts[acct_id].seats[sym], "side index holds a stale seat"
                    assert (s.qty > 0) if side == 0 else (s.qty < 0), "side index off"
