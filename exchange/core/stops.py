"""Conditional orders: STOP_MARKET, STOP_LIMIT, TAKE_PROFIT_MARKET, TAKE_PROFIT_LIMIT.

Untriggered orders wait in one sorted list of (stop, order id) per (working type,
direction) in `Market.stops`; a price move triggers k orders in O(log S + k), lowest
order id first, and each enters the book as a taker.
"""

from __future__ import annotations

from . import events as E
from .book import (
    BUY,
    EXPIRED,
    LIMIT_KINDS,
    NEW,
    UNTRIGGERED,
)
from .room import Room
from .state import Market


class Stops(Room):
    """Triggering conditional orders when the mark or the last price reaches them."""

    @staticmethod
    def _stop_direction(kind: str, side: int) -> int:
        """+1: triggers when the price rises to the stop; −1: when it falls to it."""
        stop = kind.startswith("STOP")
        return 1 if (stop == (side == BUY)) else -1

    def _fire_stops(self, m: Market) -> bool:
        """Trigger every conditional order whose stop the mark or last price has reached,
        lowest order id first, and execute it. Returns whether any fired."""
        if m.halted:
            return False  # a halted market triggers nothing until it resumes
        fired: list[tuple[int, int, str]] = []
        for (wt, direction), lst in m.stops.items():
            if not lst:
                continue
            ref = m.mark if wt == "MARK_PRICE" else m.last
            if ref <= 0:
                continue
            if direction > 0:
                j = lst.bisect_left((ref + 1, -1))
                hits = list(lst.islice(0, j))
                del lst[:j]
            else:
                i = lst.bisect_left((ref, -1))
                hits = list(lst.islice(i))
                del lst[i:]
            fired.extend((oid, ref, wt) for _, oid in hits)
        if not fired:
            return False
        m.stop_count -= len(fired)
        fired.sort()
        for oid, ref, wt in fired:
            o = self.orders[oid]
            o.status = NEW
            self._emit(E.OrderTriggered, oid, o.account, o.symbol, o.stop_price, ref, wt)
            if o.type in LIMIT_KINDS:
                limit = o.price
            else:
                lo, hi = self._band(m)
                limit = hi if o.side == BUY else lo
            seat = self.accounts[o.account].seats[o.symbol]
            if seat.liquidating:
                self._close_order(m, o, EXPIRED, "LIQUIDATION")
                continue
            if o.type in LIMIT_KINDS and o.tif == "GTX" and self._would_take(m, o.side, limit):
                self._close_order(m, o, EXPIRED, "POST_ONLY")
                continue
            if (
                o.type in LIMIT_KINDS
                and o.tif == "FOK"
                and self._fillable(m, o.side, limit, o.remaining, o.account, o.stp) < o.remaining
            ):
                self._close_order(m, o, EXPIRED, "FOK")
                continue
            self._execute(m, o, limit)
        return True

    def _check_stops(self) -> None:
        """The conditional-order lists hold exactly the untriggered orders."""
        for sym, m in self.markets.items():
            stops = {oid for lst in m.stops.values() for _, oid in lst}
            untriggered = {
                o.oid for o in self.orders.values() if o.symbol == sym and o.status == UNTRIGGERED
            }
            assert stops == untriggered, f"{sym}: conditional orders disagree"
