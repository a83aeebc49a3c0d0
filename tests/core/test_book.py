"""Book queries (L2 depth, L3 queue order, best bid/ask), BookUpdated deltas, Book._check."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

from .conftest import (
    MID,
    SYM,
    amend,
    cancel,
    limit,
    make_exchange,
    market,
    of,
    place,
    queue,
    run,
    set_index,
)


def ladder(ex: Exchange) -> None:
    """Five bid and five ask levels, two orders on every other level."""
    for i in range(5):
        limit(ex, 2, "BUY", 1 + i, MID - 10 * (i + 1))
        limit(ex, 3, "SELL", 1 + i, MID + 10 * (i + 1))
        if i % 2 == 0:
            limit(ex, 1, "BUY", 10, MID - 10 * (i + 1))
            limit(ex, 1, "SELL", 10, MID + 10 * (i + 1))


def test_empty_book(ex: Exchange) -> None:
    assert ex.depth(SYM) == ([], [])
    assert ex.l3(SYM) == ([], [])
    assert ex.best_bid_ask(SYM) == (None, None)


def test_depth_to_n_levels(ex: Exchange) -> None:
    ladder(ex)
    bids = [(MID - 10, 11), (MID - 20, 2), (MID - 30, 13), (MID - 40, 4), (MID - 50, 15)]
    asks = [(MID + 10, 11), (MID + 20, 2), (MID + 30, 13), (MID + 40, 4), (MID + 50, 15)]
    assert ex.depth(SYM) == (bids, asks)
    assert ex.depth(SYM, 3) == (bids[:3], asks[:3])
    assert ex.depth(SYM, 1) == (bids[:1], asks[:1])
    assert ex.depth(SYM, 0) == ([], [])
    assert ex.depth(SYM, 50) == (bids, asks)


def test_depth_reflects_partial_fills_and_cancels(ex: Exchange) -> None:
    ladder(ex)
    place(ex, 2, "BUY", 12, MID + 20)  # takes all of MID+10 (11) and one lot of MID+20
    mine = [o for o in ex.open_orders(1, SYM) if o.price == MID - 30]
    cancel(ex, 1, order_id=mine[0].order_id)
    bids, asks = ex.depth(SYM, 2)
    assert asks == [(MID + 20, 1), (MID + 30, 13)]
    assert ex.depth(SYM)[0][2] == (MID - 30, 3)
    assert bids[0] == (MID - 10, 11)


def test_l3_lists_every_resting_order_in_queue_order(ex: Exchange) -> None:
    a = limit(ex, 2, "BUY", 1, MID - 20)
    b = limit(ex, 3, "BUY", 2, MID - 10)
    c = limit(ex, 1, "BUY", 3, MID - 20)
    d = limit(ex, 1, "BUY", 4, MID - 10)
    x = limit(ex, 2, "SELL", 5, MID + 10)
    y = limit(ex, 3, "SELL", 6, MID + 10)
    bids, asks = ex.l3(SYM)
    assert [(o.order_id, o.account, o.price, o.remaining) for o in bids] == [
        (b, 3, MID - 10, 2),
        (d, 1, MID - 10, 4),
        (a, 2, MID - 20, 1),
        (c, 1, MID - 20, 3),
    ]
    assert [o.order_id for o in asks] == [x, y]
    assert all(o.status == "NEW" and o.side == "BUY" for o in bids)
    place(ex, 1, "BUY", 2, MID + 10)  # partially fills x: it keeps the head
    assert queue(ex)[1] == [(MID + 10, x, 3), (MID + 10, y, 6)]
    assert ex.l3(SYM)[1][0].status == "PARTIALLY_FILLED"


def test_best_bid_and_ask_follow_the_book(ex: Exchange) -> None:
    bid = limit(ex, 2, "BUY", 1, MID - 10)
    limit(ex, 2, "BUY", 1, MID - 30)
    assert ex.best_bid_ask(SYM) == (MID - 10, None)
    limit(ex, 3, "SELL", 2, MID + 10)
    assert ex.best_bid_ask(SYM) == (MID - 10, MID + 10)
    cancel(ex, 2, order_id=bid)
    assert ex.best_bid_ask(SYM) == (MID - 30, MID + 10)
    market(ex, 1, "BUY", 2)
    assert ex.best_bid_ask(SYM) == (MID - 30, None)
    view = ex.market_view(SYM)
    assert (view.best_bid, view.best_ask) == (MID - 30, None)


class Mirror:
    """A client-side copy of the book kept only from a snapshot and BookUpdated events."""

    def __init__(self, ex: Exchange) -> None:
        bids, asks = ex.depth(SYM)
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.seq = ex.book_seq(SYM)

    def apply(self, events: list[E.Event]) -> int:
        updates = [e for e in of(events, E.BookUpdated) if e.symbol == SYM]
        for u in updates:
            assert u.book_seq == self.seq + 1, "book_seq must grow by one per update"
            self.seq = u.book_seq
            assert [p for p, _ in u.bids] == sorted((p for p, _ in u.bids), reverse=True)
            assert [p for p, _ in u.asks] == sorted(p for p, _ in u.asks)
            assert u.bids or u.asks, "an update without levels"
            for levels, changes in ((self.bids, u.bids), (self.asks, u.asks)):
                for price, qty in changes:
                    assert qty >= 0
                    if qty:
                        levels[price] = qty
                    else:
                        assert price in levels, "removed a level the client never saw"
                        del levels[price]
        return len(updates)

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def test_book_deltas_applied_to_a_snapshot_reproduce_depth(ex: Exchange) -> None:
    ladder(ex)
    mirror = Mirror(ex)  # the snapshot is taken mid-history, as a client would

    def ask_id(account: int, best: bool = True) -> int:
        """The order id of the account's best (else worst) resting ask."""
        asks = [o for o in ex.l3(SYM)[1] if o.account == account]
        return asks[0 if best else -1].order_id

    steps: list[Callable[[], C.Command]] = [
        lambda: C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=3, price=MID + 15),
        lambda: C.PlaceOrder(account=2, symbol=SYM, side="BUY", qty=7, price=MID - 5),
        lambda: C.PlaceOrder(account=2, symbol=SYM, side="BUY", qty=16, price=MID + 20),
        lambda: C.PlaceOrder(account=3, symbol=SYM, side="SELL", qty=30, type="MARKET"),
        lambda: C.CancelOrder(account=1, symbol=SYM, order_id=ask_id(1)),
        lambda: C.AmendOrder(account=3, symbol=SYM, order_id=ask_id(3), qty=1),
        lambda: C.AmendOrder(account=3, symbol=SYM, order_id=ask_id(3, best=False), price=MID),
        lambda: C.PlaceOrder(
            account=2, symbol=SYM, side="SELL", qty=2, price=MID - 60, time_in_force="IOC"
        ),
        lambda: C.CancelAllOrders(account=1, symbol=SYM),
        lambda: C.PlaceOrder(
            account=1,
            symbol=SYM,
            side="BUY",
            qty=5,
            type="STOP_LIMIT",
            price=MID + 40,
            stop_price=MID + 100,
        ),
        lambda: C.SetIndexPrice(symbol=SYM, price=MID + 100),  # triggers the stop: it trades
        lambda: C.Deposit(account=1, asset="USDT", amount=1),  # no book change
    ]
    updates = 0
    for step in steps:
        events = run(ex, step())
        assert not of(events, E.OrderRejected), events
        updates += mirror.apply(events)
        assert mirror.depth() == ex.depth(SYM)
        assert mirror.seq == ex.book_seq(SYM)
    assert updates >= 10


def test_commands_that_do_not_touch_the_book_emit_no_update(ex: Exchange) -> None:
    limit(ex, 2, "BUY", 1, MID - 10)
    seq = ex.book_seq(SYM)
    for cmd in (
        C.Deposit(account=1, asset="USDT", amount=5),
        C.CancelOrder(account=1, symbol=SYM, order_id=999),  # rejected
        C.PlaceOrder(
            account=1, symbol=SYM, side="BUY", qty=1, type="STOP_MARKET", stop_price=MID + 500
        ),
        C.SetLeverage(account=1, symbol=SYM, leverage=10),
    ):
        assert of(run(ex, cmd), E.BookUpdated) == []
    set_index(ex, MID + 10)
    assert ex.book_seq(SYM) == seq


def test_every_book_change_in_one_command_is_in_its_updates(ex: Exchange) -> None:
    ladder(ex)
    mirror = Mirror(ex)
    events = place(ex, 1, "BUY", 30, MID + 30)  # sweeps three levels, rests the rest
    assert mirror.apply(events) >= 1
    assert mirror.depth() == ex.depth(SYM)
    assert ex.best_bid_ask(SYM) == (MID + 30, MID + 40)


def test_amend_decrease_is_one_level_update(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 5, MID - 10)
    limit(ex, 2, "BUY", 5, MID - 10)
    (update,) = of(amend(ex, 1, oid, qty=2), E.BookUpdated)
    assert (update.bids, update.asks) == (((MID - 10, 7),), ())


@pytest.mark.parametrize("tamper", ["level_total", "crossed", "empty_level"])
def test_book_check_catches_corruption(tamper: str) -> None:
    """`_check()` is only worth calling if it fails on a broken book."""
    ex = make_exchange()
    limit(ex, 2, "BUY", 2, MID - 10)
    limit(ex, 3, "SELL", 2, MID + 10)
    book = ex.markets[SYM].book
    book._check()
    if tamper == "level_total":
        book.bids[MID - 10].qty += 1
    elif tamper == "crossed":
        level = book.asks.pop(MID + 10)
        for o in level.orders:
            o.price = MID - 20
        book.asks[MID - 20] = level
    else:
        level = book.bids[MID - 10]
        for o in level.orders:
            o.status = 3  # CANCELED, but left on its level
    with pytest.raises(AssertionError):
        book._check()
    with pytest.raises(AssertionError):
        ex._check()


def test_best_prices_read_from_the_sorted_keys_agree_with_peekitem() -> None:
    # best_bid/best_ask/top read sortedcontainers' sublists directly; across thousands
    # of levels (several sublists) and their removal they must equal peekitem's answer
    import random

    from exchange.core.book import BUY, SELL, Book, Order

    rng = random.Random(3)
    book = Book()
    live: list[Order] = []
    for i in range(6_000):
        if live and rng.random() < 0.45:
            o = live.pop(rng.randrange(len(live)))
            book.unrest(o)
            o.status = 3  # CANCELED
        else:
            side = BUY if rng.random() < 0.5 else SELL
            price = rng.randint(1, 4_000) if side == BUY else rng.randint(4_001, 8_000)
            o = Order(i + 1, 1, "X", side, "LIMIT", "GTC", price, 1, 0, "MARK_PRICE", False,
                      None, "NONE", 0)  # fmt: skip
            book.rest(o)
            live.append(o)
        want_bid = book.bids.peekitem(-1)[0] if book.bids else None
        want_ask = book.asks.peekitem(0)[0] if book.asks else None
        assert book.best_bid() == want_bid and book.best_ask() == want_ask
        if want_bid is not None:
            assert book.top(False) == want_bid
        if want_ask is not None:
            assert book.top(True) == want_ask
    while live:  # down to empty sides
        book.unrest(live.pop())
    assert book.best_bid() is None and book.best_ask() is None
