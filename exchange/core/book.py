"""The order book of one symbol: price levels in price-time priority.

Bids and asks are `SortedDict`s of price → `Level`; a level is a FIFO of orders and
the total live quantity. Cancels are O(1) tombstones: the order is marked dead and
its quantity leaves the level total at once; the dead entry is dropped when it
reaches the front of its queue or when the level empties. So a level with total 0
never exists (it is deleted when its total reaches 0) and every query skips the dead.

Complexity: best price O(1) (peekitem on a SortedDict), add O(log L) for a new level
else O(1), cancel O(1) (+ O(log L) if the level empties), match O(k + log L) for k fills.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from sortedcontainers import SortedDict

BUY, SELL = 0, 1
SIDES = ("BUY", "SELL")

# order status; resting orders are the ones with status < FILLED
NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, UNTRIGGERED, REPLACED = range(7)
STATUS_NAMES = (
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "EXPIRED",
    "UNTRIGGERED",
    "REPLACED",
)

ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_MARKET",
    "STOP_LIMIT",
    "TAKE_PROFIT_MARKET",
    "TAKE_PROFIT_LIMIT",
)
CONDITIONAL = {"STOP_MARKET", "STOP_LIMIT", "TAKE_PROFIT_MARKET", "TAKE_PROFIT_LIMIT"}
LIMIT_KINDS = {"LIMIT", "STOP_LIMIT", "TAKE_PROFIT_LIMIT"}
TIFS = ("GTC", "IOC", "FOK", "GTX")
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
CLIENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


class Order:
    """An order, open or closed. Mutable inside the core; never handed out (see views)."""

    __slots__ = (
        "oid",
        "account",
        "symbol",
        "side",
        "type",
        "tif",
        "price",
        "qty",
        "remaining",
        "stop_price",
        "trigger",
        "reduce_only",
        "client_id",
        "stp",
        "reserved",
        "status",
        "ts",
    )

    def __init__(
        self,
        oid: int,
        account: int,
        symbol: str,
        side: int,
        type: str,
        tif: str,
        price: int,
        qty: int,
        stop_price: int,
        trigger: str,
        reduce_only: bool,
        client_id: str | None,
        stp: str,
        ts: int,
    ) -> None:
        self.oid = oid
        self.account = account
        self.symbol = symbol
        self.side = side
        self.type = type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.remaining = qty
        self.stop_price = stop_price
        self.trigger = trigger
        self.reduce_only = reduce_only
        self.client_id = client_id
        self.stp = stp
        self.reserved = 0
        self.status = NEW
        self.ts = ts

    def copy(self) -> Order:
        o = Order.__new__(Order)
        for k in Order.__slots__:
            setattr(o, k, getattr(self, k))
        return o

    def key(self) -> tuple[object, ...]:
        return tuple(getattr(self, k) for k in Order.__slots__)


class Level:
    __slots__ = ("orders", "qty")

    def __init__(self) -> None:
        self.orders: deque[Order] = deque()
        self.qty = 0

    def live(self) -> Iterator[Order]:
        return (o for o in self.orders if o.status < FILLED)


class Book:
    """Both sides of one symbol's book, plus the levels changed since the last flush."""

    __slots__ = ("bids", "asks", "seq", "dirty")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # best = last key
        self.asks: SortedDict = SortedDict()  # best = first key
        self.seq = 0
        self.dirty: dict[tuple[int, int], None] = {}

    def best_bid(self) -> int | None:
        """The highest bid, or None. O(1): the last of `SortedList._maxes` (the largest
        key of each sublist), several times cheaper than `peekitem(-1)`."""
        maxes = self.bids._list._maxes
        return maxes[-1] if maxes else None

    def best_ask(self) -> int | None:
        """The lowest ask, or None. O(1): the first key of the first sublist."""
        lists = self.asks._list._lists
        return lists[0][0] if lists else None

    def top(self, buy: bool) -> int:
        """The best price a taker meets: the lowest ask for a buy, the highest bid for a
        sell. That side must not be empty. O(1)."""
        if buy:
            lowest: int = self.asks._list._lists[0][0]
            return lowest
        highest: int = self.bids._list._maxes[-1]
        return highest

    def rest(self, o: Order) -> None:
        """Append `o` at the back of its price level. O(1), or O(log L) for a new level."""
        side = self.bids if o.side == BUY else self.asks
        lvl = side.get(o.price)
        if lvl is None:
            lvl = side[o.price] = Level()
        lvl.orders.append(o)
        lvl.qty += o.remaining
        self.dirty[(o.side, o.price)] = None

    def unrest(self, o: Order) -> None:
        """Take `o`'s remaining quantity off its level (the caller marks it dead). O(1)."""
        side = self.bids if o.side == BUY else self.asks
        lvl = side[o.price]
        lvl.qty -= o.remaining
        if lvl.qty == 0:
            del side[o.price]
        self.dirty[(o.side, o.price)] = None

    def shrink(self, o: Order, by: int) -> None:
        """Reduce a resting order's level total by `by` lots (fills, qty decreases)."""
        side = self.bids if o.side == BUY else self.asks
        side[o.price].qty -= by
        self.dirty[(o.side, o.price)] = None

    def level_qty(self, side: int, price: int) -> int:
        lvl = (self.bids if side == BUY else self.asks).get(price)
        return lvl.qty if lvl is not None else 0

    def depth(
        self, limit: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """L2: (price, total) per level, bids best first, asks best first. O(limit)."""
        nb = len(self.bids) if limit is None else min(limit, len(self.bids))
        na = len(self.asks) if limit is None else min(limit, len(self.asks))
        bids = [(p, self.bids[p].qty) for p in self.bids.islice(len(self.bids) - nb, reverse=True)]
        asks = [(p, self.asks[p].qty) for p in self.asks.islice(0, na)]
        return bids, asks

    def l3(self) -> tuple[list[Order], list[Order]]:
        """Every resting order in queue order: bids best first, asks best first."""
        bids = [o for p in reversed(self.bids) for o in self.bids[p].live()]
        asks = [o for p in self.asks for o in self.asks[p].live()]
        return bids, asks

    def replace_side(self, side: int, made: dict[int, Level]) -> None:
        """Make `made` (price → level, best first: bids descending, asks ascending) the
        whole of one side, dropping every level it had. Nothing is marked dirty: the
        caller publishes the change. O(k) for k levels made (the sorted index is written
        directly when they fit in one of its sublists, as `SortedList.update` would)."""
        levels = self.bids if side == BUY else self.asks
        dict.clear(levels)
        dict.update(levels, made)
        keys = list(made)
        if side == BUY:
            keys.reverse()
        sl = levels._list
        if len(keys) > sl._load:
            sl.clear()
            sl.update(keys)
            return
        del sl._lists[:]
        del sl._maxes[:]
        if keys:
            sl._lists.append(keys)
            sl._maxes.append(keys[-1])
        sl._len = len(keys)
        del sl._index[:]
        sl._offset = 0

    def flush(self) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] | None:
        """The changed levels with their new totals since the last flush, or None."""
        dirty = self.dirty
        if not dirty:
            return None
        self.seq += 1
        if len(dirty) == 1:  # the common case: one level
            ((side, price),) = dirty
            dirty.clear()
            lvl = (self.bids if side == BUY else self.asks).get(price)
            level = ((price, lvl.qty if lvl is not None else 0),)
            return (level, ()) if side == BUY else ((), level)
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        bid_levels = self.bids
        ask_levels = self.asks
        for side, price in sorted(dirty):
            if side == BUY:
                lvl = bid_levels.get(price)
                bids.append((price, lvl.qty if lvl is not None else 0))
            else:
                lvl = ask_levels.get(price)
                asks.append((price, lvl.qty if lvl is not None else 0))
        dirty.clear()
        bids.reverse()
        return tuple(bids), tuple(asks)

    def _check(self) -> None:
        """Assert every invariant of the book."""
        for side, levels in ((BUY, self.bids), (SELL, self.asks)):
            for price, lvl in levels.items():
                live = list(lvl.live())
                assert live, f"empty level {price} on side {side}"
                assert lvl.qty == sum(o.remaining for o in live), f"level total off at {price}"
                for o in live:
                    assert o.side == side and o.price == price, "order on the wrong level"
                    assert 0 < o.remaining <= o.qty, "remaining out of range"
        bb, ba = self.best_bid(), self.best_ask()
        assert bb is None or ba is None or bb < ba, f"crossed book {bb} >= {ba}"
