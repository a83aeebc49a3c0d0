"""Order types, time in force, reduce-only, client order ids, cancels, the entry point."""

from __future__ import annotations

import dataclasses

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
    market,
    of,
    one,
    open_position,
    place,
    position,
    queue,
    rejected,
    run,
)

# ---------------------------------------------------------------- the entry point


def test_every_event_has_the_next_sequence_number_and_the_engine_time(ex: Exchange) -> None:
    seen: list[E.Event] = []
    seen += run(ex, C.AdvanceClock(ts=1_000))
    seen += place(ex, 1, "SELL", 2, MID, ts=500)  # stamped in the past: runs at 1_000
    assert {e.ts for e in seen} == {1_000}
    later = place(ex, 2, "BUY", 1, MID, ts=2_000)
    assert later and {e.ts for e in later} == {2_000}
    seen += later
    seen += run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=999))  # rejected: one event
    seqs = [e.seq for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[-1] == ex.seq


def test_events_are_frozen_and_slotted(ex: Exchange) -> None:
    event = accepted(place(ex, 1, "BUY", 1, MID))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.qty = 2  # type: ignore[misc]
    assert event.qty == 1
    assert not hasattr(event, "__dict__")


# ---------------------------------------------------------------- LIMIT


def test_limit_gtc_rests_reserves_and_cancel_releases_everything(ex: Exchange) -> None:
    events = place(ex, 1, "BUY", 2, MID - 1_000, client_id="bid-1")
    acc = accepted(events)
    assert (acc.side, acc.type, acc.time_in_force, acc.status) == ("BUY", "LIMIT", "GTC", "NEW")
    assert (acc.price, acc.qty, acc.client_id, acc.account) == (MID - 1_000, 2, "bid-1", 1)
    assert not fills(events)
    assert queue(ex) == ([(MID - 1_000, acc.order_id, 2)], [])
    balance = one(events, E.BalanceChanged)
    assert balance.reserved > 0 and balance.available + balance.reserved == FUNDS
    view = ex.order_view(1, SYM, order_id=acc.order_id)
    assert view is not None and (view.status, view.remaining, view.filled) == ("NEW", 2, 0)

    canceled = one(cancel(ex, 1, order_id=acc.order_id), E.OrderCanceled)
    assert (canceled.remaining, canceled.reason) == (2, "USER")
    assert available(ex, 1) == FUNDS and ex.accounts[1].reserved["USDT"] == 0
    assert queue(ex) == ([], [])


def test_limit_that_crosses_fills_at_maker_prices_then_rests_the_rest(ex: Exchange) -> None:
    a = limit(ex, 2, "SELL", 1, MID)
    b = limit(ex, 2, "SELL", 1, MID + 10)
    events = place(ex, 1, "BUY", 5, MID + 20)
    t = accepted(events).order_id
    assert [(f.maker_order_id, f.price, f.qty) for f in fills(events)] == [
        (a, MID, 1),
        (b, MID + 10, 1),
    ]
    assert queue(ex) == ([(MID + 20, t, 3)], [])
    view = ex.order_view(1, SYM, order_id=t)
    assert view is not None and (view.status, view.filled, view.remaining) == (
        "PARTIALLY_FILLED",
        2,
        3,
    )
    assert position(ex, 1) == 2


# ---------------------------------------------------------------- MARKET


def test_market_order_fills_against_the_book(ex: Exchange) -> None:
    limit(ex, 2, "BUY", 2, MID - 10)
    limit(ex, 3, "BUY", 2, MID - 20)
    events = market(ex, 1, "SELL", 3)
    acc = accepted(events)
    assert (acc.type, acc.price) == ("MARKET", 0)
    assert [(f.price, f.qty, f.maker_account) for f in fills(events)] == [
        (MID - 10, 2, 2),
        (MID - 20, 1, 3),
    ]
    assert not of(events, E.OrderExpired)
    view = ex.order_view(1, SYM, order_id=acc.order_id)
    assert view is not None and view.status == "FILLED"
    assert position(ex, 1) == -3


def test_market_order_without_liquidity_expires(ex: Exchange) -> None:
    events = market(ex, 1, "BUY", 3)
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.remaining, expired.reason) == (
        accepted(events).order_id,
        3,
        "NO_LIQUIDITY",
    )
    assert not fills(events) and position(ex, 1) == 0
    assert available(ex, 1) == FUNDS


# ---------------------------------------------------------------- time in force


def test_ioc_fills_what_it_can_and_expires_the_rest(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    limit(ex, 2, "SELL", 2, MID + 100)  # beyond the IOC's limit
    events = place(ex, 1, "BUY", 5, MID, time_in_force="IOC")
    assert [(f.price, f.qty) for f in fills(events)] == [(MID, 2)]
    expired = one(events, E.OrderExpired)
    assert (expired.remaining, expired.reason) == (3, "IOC")
    assert queue(ex)[0] == []  # nothing of the IOC rests
    assert [p for p, _, _ in queue(ex)[1]] == [MID + 100]


def test_ioc_that_does_not_cross_expires_whole(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID + 100)
    events = place(ex, 1, "BUY", 4, MID, time_in_force="IOC")
    assert not fills(events)
    assert one(events, E.OrderExpired).remaining == 4
    assert queue(ex)[0] == [] and available(ex, 1) == FUNDS


def test_fok_fills_completely_across_levels(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    limit(ex, 3, "SELL", 3, MID + 10)
    events = place(ex, 1, "BUY", 5, MID + 10, time_in_force="FOK")
    assert sum(f.qty for f in fills(events)) == 5
    assert not of(events, E.OrderExpired)
    assert queue(ex) == ([], [])


def test_fok_that_cannot_fill_completely_is_rejected_and_changes_nothing(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    limit(ex, 3, "SELL", 3, MID + 20)  # beyond the FOK's limit
    book = queue(ex)
    cmd = C.PlaceOrder(
        account=1, symbol=SYM, side="BUY", qty=5, price=MID + 10, time_in_force="FOK"
    )
    rejected(ex, cmd, -5021)
    assert queue(ex) == book


def test_fok_never_partially_fills_when_a_reduce_only_maker_is_stale(ex: Exchange) -> None:
    """A reduce-only maker whose position is gone cannot fill; FOK must not count it."""
    open_position(ex, 1, 3)
    limit(ex, 1, "SELL", 3, MID + 1_000, reduce_only=True)
    limit(ex, 3, "BUY", 3, MID - 1_000)
    market(ex, 1, "SELL", 3, reduce_only=True)  # closes the position; the ask is now stale
    assert position(ex, 1) == 0
    limit(ex, 3, "SELL", 2, MID + 1_000)
    events = place(ex, 2, "BUY", 5, MID + 1_000, time_in_force="FOK")
    filled = sum(f.qty for f in fills(events))
    assert filled in (0, 5), f"FOK partially filled: {filled} of 5"


def test_gtx_rests_when_it_would_not_take(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    events = place(ex, 1, "BUY", 2, MID - 10, time_in_force="GTX")
    oid = accepted(events).order_id
    assert not fills(events)
    assert queue(ex)[0] == [(MID - 10, oid, 2)]


def test_gtx_that_would_take_is_rejected_even_at_an_equal_price(ex: Exchange) -> None:
    limit(ex, 2, "SELL", 2, MID)
    for price in (MID, MID + 10):
        cmd = C.PlaceOrder(
            account=1, symbol=SYM, side="BUY", qty=1, price=price, time_in_force="GTX"
        )
        rejected(ex, cmd, -5022)
    assert queue(ex)[1] == [(MID, 1, 2)]


# ---------------------------------------------------------------- reduce-only


def test_reduce_only_that_would_increase_is_rejected(ex: Exchange) -> None:
    flat = C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=1, price=MID, reduce_only=True)
    rejected(ex, flat, -2022)
    open_position(ex, 1, 2)
    same_side = C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=1, price=MID, reduce_only=True)
    rejected(ex, same_side, -2022)
    rejected(ex, dataclasses.replace(same_side, type="MARKET", price=0), -2022)


def test_reduce_only_market_is_clipped_to_the_position(ex: Exchange) -> None:
    open_position(ex, 1, 3)
    bid = limit(ex, 2, "BUY", 10, MID - 100)
    events = market(ex, 1, "SELL", 5, reduce_only=True)
    assert [(f.qty, f.maker_order_id) for f in fills(events)] == [(3, bid)]
    assert position(ex, 1) == 0
    assert queue(ex)[0] == [(MID - 100, bid, 7)]


def test_reduce_only_clip_is_visible_in_the_event_stream(ex: Exchange) -> None:
    """Every lot an OrderAccepted announces ends filled, expired or canceled in events."""
    open_position(ex, 1, 3)
    limit(ex, 2, "BUY", 10, MID - 100)
    events = market(ex, 1, "SELL", 5, reduce_only=True)
    acc = accepted(events)
    closed = sum(e.remaining for e in of(events, E.OrderExpired) if e.order_id == acc.order_id)
    assert sum(f.qty for f in fills(events)) + closed == acc.qty


def test_reduce_only_limit_rests_clipped_to_the_position(ex: Exchange) -> None:
    open_position(ex, 1, 3)
    oid = limit(ex, 1, "SELL", 5, MID + 100, reduce_only=True)
    assert queue(ex)[1] == [(MID + 100, oid, 3)]
    events = place(ex, 2, "BUY", 5, MID + 100)
    assert [(f.maker_order_id, f.qty) for f in fills(events)] == [(oid, 3)]
    assert position(ex, 1) == 0


def test_reduce_only_maker_expires_when_its_position_is_gone(ex: Exchange) -> None:
    open_position(ex, 1, 3)
    stale = limit(ex, 1, "SELL", 3, MID + 1_000, reduce_only=True)
    limit(ex, 3, "BUY", 3, MID - 1_000)
    market(ex, 1, "SELL", 3, reduce_only=True)
    assert position(ex, 1) == 0
    behind = limit(ex, 3, "SELL", 2, MID + 1_000)
    events = place(ex, 2, "BUY", 2, MID + 1_000)
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.reason, expired.remaining) == (stale, "REDUCE_ONLY", 3)
    assert [(f.maker_order_id, f.qty) for f in fills(events)] == [(behind, 2)]
    assert position(ex, 1) == 0 and queue(ex) == ([], [])


def test_reduce_only_maker_fills_only_what_closes_the_position(ex: Exchange) -> None:
    open_position(ex, 1, 3)
    ro = limit(ex, 1, "SELL", 3, MID + 1_000, reduce_only=True)
    limit(ex, 3, "BUY", 2, MID - 1_000)
    market(ex, 1, "SELL", 2, reduce_only=True)  # long 1 left; the resting order says 3
    events = place(ex, 2, "BUY", 3, MID + 1_000, time_in_force="IOC")
    assert [(f.maker_order_id, f.qty) for f in fills(events)] == [(ro, 1)]
    assert position(ex, 1) == 0
    assert any(e.order_id == ro and e.reason == "REDUCE_ONLY" for e in of(events, E.OrderExpired))


# ---------------------------------------------------------------- client order ids


def test_resubmitting_an_accepted_client_id_is_ignored(ex: Exchange) -> None:
    first = limit(ex, 1, "BUY", 2, MID - 10, client_id="abc-1")
    before = ex.state_hash()
    for cmd in (
        C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=2, price=MID - 10, client_id="abc-1"),
        C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=9, type="MARKET", client_id="abc-1"),
    ):
        events = run(ex, cmd)
        assert len(events) == 1
        ignored = events[0]
        assert isinstance(ignored, E.OrderResubmissionIgnored)
        assert (ignored.order_id, ignored.client_id, ignored.account) == (first, "abc-1", 1)
    assert ex.state_hash() == before
    assert [o.order_id for o in ex.open_orders(1, SYM)] == [first]


def test_a_client_id_stays_taken_after_its_order_closed(ex: Exchange) -> None:
    first = limit(ex, 1, "BUY", 2, MID - 10, client_id="once")
    cancel(ex, 1, order_id=first)
    events = place(ex, 1, "BUY", 2, MID - 10, client_id="once")
    assert one(events, E.OrderResubmissionIgnored).order_id == first
    assert ex.open_orders(1, SYM) == []


def test_a_rejected_client_id_can_be_reused(ex: Exchange) -> None:
    bad = C.PlaceOrder(account=1, symbol=SYM, side="BUY", qty=0, price=MID, client_id="retry")
    assert rejected(ex, bad, -4003).client_id == "retry"  # type: ignore[attr-defined]
    acc = accepted(place(ex, 1, "BUY", 1, MID - 10, client_id="retry"))
    assert acc.client_id == "retry"
    view = ex.order_view(1, SYM, client_id="retry")
    assert view is not None and view.order_id == acc.order_id


def test_client_ids_are_per_account(ex: Exchange) -> None:
    a = limit(ex, 1, "BUY", 1, MID - 10, client_id="same")
    b = limit(ex, 2, "BUY", 1, MID - 20, client_id="same")
    assert a != b
    view = ex.order_view(2, SYM, client_id="same")
    assert view is not None and view.order_id == b


# ---------------------------------------------------------------- cancels


def test_cancel_by_client_id(ex: Exchange) -> None:
    oid = limit(ex, 1, "SELL", 2, MID + 10, client_id="my-ask")
    events = cancel(ex, 1, client_id="my-ask")
    canceled = one(events, E.OrderCanceled)
    assert (canceled.order_id, canceled.client_id, canceled.reason) == (oid, "my-ask", "USER")
    assert queue(ex) == ([], [])
    view = ex.order_view(1, SYM, client_id="my-ask")
    assert view is not None and view.status == "CANCELED"
    rejected(ex, C.CancelOrder(account=1, symbol=SYM, client_id="my-ask"), -2011)


def test_cancel_a_partially_filled_order_cancels_its_remainder(ex: Exchange) -> None:
    oid = limit(ex, 1, "SELL", 5, MID)
    place(ex, 2, "BUY", 2, MID)
    canceled = one(cancel(ex, 1, order_id=oid), E.OrderCanceled)
    assert canceled.remaining == 3
    assert position(ex, 1) == -2
    assert ex.accounts[1].reserved["USDT"] == 0


def test_cancel_all_cancels_only_this_accounts_orders(ex: Exchange) -> None:
    mine = [
        limit(ex, 1, "BUY", 1, MID - 10),
        limit(ex, 1, "SELL", 1, MID + 10),
        limit(ex, 1, "BUY", 1, MID + 1_000, type="STOP_LIMIT", stop_price=MID + 500),
    ]
    theirs = limit(ex, 2, "BUY", 1, MID - 10)
    events = run(ex, C.CancelAllOrders(account=1, symbol=SYM))
    canceled = of(events, E.OrderCanceled)
    assert sorted(e.order_id for e in canceled) == mine
    assert {e.reason for e in canceled} == {"CANCEL_ALL"}
    assert ex.open_orders(1, SYM) == []
    assert [o.order_id for o in ex.open_orders(2, SYM)] == [theirs]
    assert queue(ex) == ([(MID - 10, theirs, 1)], [])
    assert available(ex, 1) == FUNDS
