"""Amend: a pure quantity decrease keeps time priority; a price change or an increase loses it.

Priority is proven by which maker a taker fills first afterwards."""

from __future__ import annotations

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

from .conftest import (
    FUNDS,
    MID,
    SYM,
    accepted,
    amend,
    available,
    cancel,
    fills,
    limit,
    of,
    one,
    place,
    queue,
    rejected,
    run,
)

ASK = MID + 100


def two_makers(ex: Exchange) -> tuple[int, int]:
    """Account 1's ask of 5 at ASK, then account 2's ask of 5 behind it."""
    return limit(ex, 1, "SELL", 5, ASK), limit(ex, 2, "SELL", 5, ASK)


def first_filled(ex: Exchange) -> int:
    """Send a one-lot buy at ASK; return the maker it filled."""
    return one(place(ex, 3, "BUY", 1, ASK), E.OrderFilled).maker_order_id


def test_qty_decrease_keeps_priority(ex: Exchange) -> None:
    x, y = two_makers(ex)
    events = amend(ex, 1, x, qty=3)
    a = one(events, E.OrderAmended)
    assert (a.order_id, a.price, a.qty, a.remaining, a.priority_kept) == (x, ASK, 3, 3, True)
    assert one(events, E.BookUpdated).asks == ((ASK, 8),)
    assert queue(ex)[1] == [(ASK, x, 3), (ASK, y, 5)]
    assert first_filled(ex) == x


def test_qty_decrease_of_a_partially_filled_order_keeps_priority(ex: Exchange) -> None:
    x, y = two_makers(ex)
    assert first_filled(ex) == x  # x: 1 of 5 filled
    a = one(amend(ex, 1, x, qty=3), E.OrderAmended)  # new total 3 → 2 remain
    assert (a.qty, a.remaining, a.priority_kept) == (3, 2, True)
    assert queue(ex)[1] == [(ASK, x, 2), (ASK, y, 5)]
    assert first_filled(ex) == x


def test_price_change_loses_priority_even_when_changed_back(ex: Exchange) -> None:
    x, y = two_makers(ex)
    assert one(amend(ex, 1, x, price=ASK + 10), E.OrderAmended).priority_kept is False
    back = one(amend(ex, 1, x, price=ASK), E.OrderAmended)
    assert (back.price, back.remaining, back.priority_kept) == (ASK, 5, False)
    assert queue(ex)[1] == [(ASK, y, 5), (ASK, x, 5)]
    assert first_filled(ex) == y


def test_qty_increase_loses_priority(ex: Exchange) -> None:
    x, y = two_makers(ex)
    a = one(amend(ex, 1, x, qty=7), E.OrderAmended)
    assert (a.qty, a.remaining, a.priority_kept) == (7, 7, False)
    assert queue(ex)[1] == [(ASK, y, 5), (ASK, x, 7)]
    assert first_filled(ex) == y


def test_amend_to_a_crossing_price_trades_as_taker(ex: Exchange) -> None:
    bid = limit(ex, 2, "BUY", 2, MID)
    ask = limit(ex, 1, "SELL", 5, ASK)
    events = amend(ex, 1, ask, price=MID)
    f = one(events, E.OrderFilled)
    assert (f.taker_order_id, f.maker_order_id, f.price, f.qty) == (ask, bid, MID, 2)
    assert queue(ex) == ([], [(MID, ask, 3)])


def test_amend_by_client_id(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 4, MID, client_id="quote-1")
    events = run(ex, C.AmendOrder(account=1, symbol=SYM, client_id="quote-1", qty=2))
    assert one(events, E.OrderAmended).order_id == oid
    assert queue(ex)[0] == [(MID, oid, 2)]


def test_qty_decrease_releases_reservation(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 10, MID)
    reserved = ex.accounts[1].reserved["USDT"]
    amend(ex, 1, oid, qty=5)
    assert 0 < ex.accounts[1].reserved["USDT"] < reserved
    assert available(ex, 1) + ex.accounts[1].reserved["USDT"] == FUNDS


def test_amended_order_fills_at_its_new_price(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 3, MID - 100)
    amend(ex, 1, oid, price=MID - 50, qty=4)
    events = place(ex, 2, "SELL", 4, MID - 100)
    assert [(f.maker_order_id, f.price, f.qty) for f in fills(events)] == [(oid, MID - 50, 4)]
    view = ex.order_view(1, SYM, order_id=oid)
    assert view is not None and (view.status, view.price, view.qty) == ("FILLED", MID - 50, 4)


def test_cancel_by_id_after_a_price_amend(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 2, MID - 1_000)
    amend(ex, 1, oid, price=MID - 2_000)
    canceled = one(cancel(ex, 1, order_id=oid), E.OrderCanceled)
    assert canceled.remaining == 2
    assert queue(ex) == ([], [])
    assert available(ex, 1) == FUNDS


def test_cancel_all_after_a_price_amend(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 2, MID - 1_000)
    amend(ex, 1, oid, price=MID - 2_000)
    events = run(ex, C.CancelAllOrders(account=1, symbol=SYM))
    assert [(e.order_id, e.remaining) for e in of(events, E.OrderCanceled)] == [(oid, 2)]
    assert queue(ex) == ([], [])
    assert ex.open_orders(1, SYM) == []
    assert available(ex, 1) == FUNDS


def test_open_orders_show_the_amended_price(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 2, MID - 1_000)
    amend(ex, 1, oid, price=MID - 2_000, qty=3)
    (view,) = ex.open_orders(1, SYM)
    assert (view.order_id, view.price, view.qty, view.status) == (oid, MID - 2_000, 3, "NEW")


def test_gtx_amend_that_would_take_is_rejected(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 1, MID)
    oid = limit(ex, 1, "BUY", 1, MID - 100, time_in_force="GTX")
    cmd = C.AmendOrder(account=1, symbol=SYM, order_id=oid, price=MID)
    rejected(ex, cmd, -5022)
    assert queue(ex)[0] == [(MID - 100, oid, 1)]


def test_conditional_orders_cannot_be_amended(ex: Exchange) -> None:
    events = place(ex, 1, "BUY", 1, MID + 1_000, type="STOP_LIMIT", stop_price=MID + 500)
    oid = accepted(events).order_id
    rejected(ex, C.AmendOrder(account=1, symbol=SYM, order_id=oid, qty=2), -2011)
