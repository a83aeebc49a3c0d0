"""Conditional orders: STOP_MARKET, STOP_LIMIT, TAKE_PROFIT_MARKET, TAKE_PROFIT_LIMIT,
triggered by the mark price (MARK_PRICE) or the last trade (CONTRACT_PRICE).

A STOP buy and a TAKE_PROFIT sell trigger when the price rises to the stop; a STOP sell
and a TAKE_PROFIT buy when it falls to it."""

from __future__ import annotations

import pytest

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

from .conftest import (
    FUNDS,
    MID,
    SYM,
    accepted,
    available,
    cancel,
    fills,
    limit,
    of,
    one,
    open_position,
    place,
    position,
    queue,
    rejected,
    set_index,
)

KINDS = ("STOP_MARKET", "STOP_LIMIT", "TAKE_PROFIT_MARKET", "TAKE_PROFIT_LIMIT")
SIDES = ("BUY", "SELL")
WORKING = ("MARK_PRICE", "CONTRACT_PRICE")


def rises(kind: str, side: str) -> bool:
    """Whether the order triggers on a rising price."""
    return kind.startswith("STOP") == (side == "BUY")


def trade_at(ex: Exchange, price: int, up: bool) -> list[E.Event]:
    """Make the last price `price` with a one-lot trade: account 3 rests, account 2 takes
    (`up`: 3 sells and 2 buys). Returns the taker's events, where triggers happen."""
    maker, taker = ("SELL", "BUY") if up else ("BUY", "SELL")
    limit(ex, 3, maker, 1, price)
    events = place(ex, 2, taker, 1, price, time_in_force="IOC")
    first = fills(events)[0]  # later fills may be of orders this trade triggered
    assert (first.taker_account, first.maker_account, first.price, first.qty) == (2, 3, price, 1)
    return events


def triggered(events: list[E.Event]) -> list[int]:
    return [e.order_id for e in of(events, E.OrderTriggered)]


@pytest.mark.parametrize("working", WORKING)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("kind", KINDS)
def test_trigger(ex: Exchange, kind: str, side: str, working: str) -> None:
    up = rises(kind, side)
    if working == "CONTRACT_PRICE":
        trade_at(ex, MID, up)
    stop = MID + 1_000 if up else MID - 1_000
    # liquidity the order fills against once triggered, on the far side of the stop
    fill_price = stop + 1_000 if side == "BUY" else stop - 1_000
    maker = limit(ex, 3, "SELL" if side == "BUY" else "BUY", 2, fill_price)
    price = fill_price if kind.endswith("LIMIT") else 0
    events = place(ex, 1, side, 2, price, type=kind, stop_price=stop, working_type=working)
    acc = accepted(events)
    assert (acc.status, acc.type, acc.stop_price) == ("UNTRIGGERED", kind, stop)
    assert acc.order_id not in {oid for side_ in queue(ex) for _, oid, _ in side_}
    view = ex.order_view(1, SYM, order_id=acc.order_id)
    assert view is not None and (view.status, view.working_type) == ("UNTRIGGERED", working)

    def move(to: int) -> list[E.Event]:
        if working == "MARK_PRICE":
            return set_index(ex, to)
        return trade_at(ex, to, up)

    def move_other(to: int) -> list[E.Event]:
        if working == "MARK_PRICE":
            return trade_at(ex, to, up)
        return set_index(ex, to)

    assert triggered(move_other(stop)) == [], "the other reference must not trigger it"
    assert triggered(move((MID + stop) // 2)) == [], "not reached yet"
    events = move(stop)
    t = one(events, E.OrderTriggered)
    assert (t.order_id, t.stop_price, t.trigger_price, t.working_type) == (
        acc.order_id,
        stop,
        stop,
        working,
    )
    mine = [f for f in fills(events) if f.taker_order_id == acc.order_id]
    assert [(f.maker_order_id, f.price, f.qty) for f in mine] == [(maker, fill_price, 2)]
    assert position(ex, 1) == (2 if side == "BUY" else -2)
    view = ex.order_view(1, SYM, order_id=acc.order_id)
    assert view is not None and view.status == "FILLED"


@pytest.mark.parametrize("working", WORKING)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_that_would_trigger_immediately_is_rejected(
    ex: Exchange, kind: str, side: str, working: str
) -> None:
    up = rises(kind, side)
    if working == "CONTRACT_PRICE":
        trade_at(ex, MID, up)
    price = MID if kind.endswith("LIMIT") else 0
    for stop in (MID, MID - 10 if up else MID + 10):  # at the reference, and past it
        cmd = C.PlaceOrder(
            account=1,
            symbol=SYM,
            side=side,
            qty=1,
            type=kind,
            price=price,
            stop_price=stop,
            working_type=working,
        )
        rejected(ex, cmd, -2021)


def test_canceled_stop_never_triggers_and_releases_its_reservation(ex: Exchange) -> None:
    oid = accepted(place(ex, 1, "BUY", 2, type="STOP_MARKET", stop_price=MID + 1_000)).order_id
    assert available(ex, 1) < FUNDS
    canceled = one(cancel(ex, 1, order_id=oid), E.OrderCanceled)
    assert (canceled.order_id, canceled.remaining, canceled.reason) == (oid, 2, "USER")
    assert available(ex, 1) == FUNDS
    assert triggered(set_index(ex, MID + 2_000)) == []


def test_triggered_stop_limit_that_does_not_cross_rests(ex: Exchange) -> None:
    limit(ex, 3, "SELL", 1, MID + 3_000)
    oid = accepted(
        place(ex, 1, "BUY", 2, MID + 2_000, type="STOP_LIMIT", stop_price=MID + 1_000)
    ).order_id
    events = set_index(ex, MID + 1_000)
    assert triggered(events) == [oid]
    assert not fills(events)
    assert queue(ex)[0] == [(MID + 2_000, oid, 2)]
    view = ex.order_view(1, SYM, order_id=oid)
    assert view is not None and view.status == "NEW"


def test_triggered_market_order_without_liquidity_expires(ex: Exchange) -> None:
    oid = accepted(place(ex, 1, "SELL", 2, type="STOP_MARKET", stop_price=MID - 1_000)).order_id
    events = set_index(ex, MID - 1_000)
    assert triggered(events) == [oid]
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.remaining, expired.reason) == (oid, 2, "NO_LIQUIDITY")
    assert available(ex, 1) == FUNDS


def test_stops_fire_in_order_id_order(ex: Exchange) -> None:
    far = accepted(place(ex, 1, "BUY", 1, type="STOP_MARKET", stop_price=MID + 2_000))
    near = accepted(place(ex, 2, "BUY", 1, type="STOP_MARKET", stop_price=MID + 1_000))
    events = set_index(ex, MID + 3_000)
    assert triggered(events) == [far.order_id, near.order_id]


def test_a_triggered_fill_can_trigger_the_next_contract_price_stop(ex: Exchange) -> None:
    trade_at(ex, MID, up=True)
    first = accepted(
        place(
            ex,
            1,
            "BUY",
            1,
            type="STOP_MARKET",
            stop_price=MID + 1_000,
            working_type="CONTRACT_PRICE",
        )
    ).order_id
    second = accepted(
        place(
            ex,
            2,
            "BUY",
            1,
            type="STOP_MARKET",
            stop_price=MID + 2_000,
            working_type="CONTRACT_PRICE",
        )
    ).order_id
    for p in (MID + 1_000, MID + 2_000, MID + 3_000):
        limit(ex, 3, "SELL", 1, p)
    events = place(ex, 2, "BUY", 1, MID + 1_000, time_in_force="IOC")
    assert triggered(events) == [first, second]
    assert [(f.taker_order_id, f.price) for f in fills(events)] == [
        (accepted(events).order_id, MID + 1_000),
        (first, MID + 2_000),
        (second, MID + 3_000),
    ]


def test_reduce_only_stop_expires_when_the_position_is_gone(ex: Exchange) -> None:
    open_position(ex, 1, 2)
    stop_loss = accepted(
        place(ex, 1, "SELL", 2, type="STOP_MARKET", stop_price=MID - 1_000, reduce_only=True)
    ).order_id
    limit(ex, 3, "BUY", 2, MID - 100)
    place(ex, 1, "SELL", 2, type="MARKET", reduce_only=True)
    assert position(ex, 1) == 0
    limit(ex, 2, "BUY", 2, MID - 2_000)
    events = set_index(ex, MID - 1_000)
    assert triggered(events) == [stop_loss]
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.reason) == (stop_loss, "REDUCE_ONLY")
    assert not fills(events) and position(ex, 1) == 0


def test_triggered_fok_stop_limit_fills_completely_or_not_at_all(ex: Exchange) -> None:
    limit(ex, 3, "SELL", 2, MID + 2_000)  # 2 of the 5 lots it wants
    events = place(
        ex,
        1,
        "BUY",
        5,
        MID + 2_000,
        type="STOP_LIMIT",
        stop_price=MID + 1_000,
        time_in_force="FOK",
    )
    if of(events, E.OrderRejected):
        return  # refusing FOK on conditional orders up front is fine too
    events = set_index(ex, MID + 1_000)
    filled = sum(f.qty for f in fills(events))
    assert filled in (0, 5), f"a FOK order partially filled: {filled} of 5"


def test_triggered_gtx_stop_limit_never_takes(ex: Exchange) -> None:
    limit(ex, 3, "SELL", 2, MID + 2_000)
    events = place(
        ex,
        1,
        "BUY",
        5,
        MID + 2_000,
        type="STOP_LIMIT",
        stop_price=MID + 1_000,
        time_in_force="GTX",
    )
    if of(events, E.OrderRejected):
        return  # refusing GTX on conditional orders up front is fine too
    events = set_index(ex, MID + 1_000)
    assert fills(events) == [], "a post-only order took liquidity"
