"""Self-trade prevention: NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH (the taker's mode)."""

from __future__ import annotations

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

from .conftest import (
    MID,
    SYM,
    accepted,
    fills,
    limit,
    of,
    one,
    place,
    position,
    queue,
    rejected,
)


def ladder(ex: Exchange) -> tuple[int, int, int]:
    """Asks: another account's at MID, account 1's own at MID + 10, another's at MID + 20."""
    return (
        limit(ex, 2, "SELL", 1, MID),
        limit(ex, 1, "SELL", 1, MID + 10),
        limit(ex, 3, "SELL", 1, MID + 20),
    )


def test_none_lets_an_account_trade_with_itself(ex: Exchange) -> None:
    own = limit(ex, 1, "SELL", 2, MID)
    events = place(ex, 1, "BUY", 2, MID, stp="NONE")
    f = one(events, E.OrderFilled)
    assert (f.maker_order_id, f.taker_account, f.maker_account, f.qty) == (own, 1, 1, 2)
    assert f.taker_fee > 0 and f.maker_fee > 0
    assert position(ex, 1) == 0
    assert not of(events, E.OrderExpired)


def test_expire_taker_stops_the_taker_at_its_own_order(ex: Exchange) -> None:
    other, own, beyond = ladder(ex)
    events = place(ex, 1, "BUY", 5, MID + 20, stp="EXPIRE_TAKER")
    taker = accepted(events).order_id
    assert [f.maker_order_id for f in fills(events)] == [other]
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.remaining, expired.reason) == (taker, 4, "STP_TAKER")
    assert queue(ex)[1] == [(MID + 10, own, 1), (MID + 20, beyond, 1)]
    assert queue(ex)[0] == []


def test_expire_maker_removes_own_orders_and_keeps_matching(ex: Exchange) -> None:
    other, own, beyond = ladder(ex)
    events = place(ex, 1, "BUY", 5, MID + 20, stp="EXPIRE_MAKER")
    taker = accepted(events).order_id
    assert [f.maker_order_id for f in fills(events)] == [other, beyond]
    expired = one(events, E.OrderExpired)
    assert (expired.order_id, expired.remaining, expired.reason) == (own, 1, "STP_MAKER")
    assert queue(ex) == ([(MID + 20, taker, 3)], [])


def test_expire_both_expires_the_maker_and_the_taker(ex: Exchange) -> None:
    other, own, beyond = ladder(ex)
    events = place(ex, 1, "BUY", 5, MID + 20, stp="EXPIRE_BOTH")
    taker = accepted(events).order_id
    assert [f.maker_order_id for f in fills(events)] == [other]
    expired = {e.order_id: (e.remaining, e.reason) for e in of(events, E.OrderExpired)}
    assert expired[own] == (1, "STP_MAKER")
    assert expired[taker][0] == 4 and expired[taker][1] in ("STP_TAKER", "STP_BOTH")
    assert len(expired) == 2
    assert queue(ex) == ([], [(MID + 20, beyond, 1)])


def test_expire_maker_within_one_level_skips_only_own_orders(ex: Exchange) -> None:
    a = limit(ex, 2, "BUY", 1, MID)
    own = limit(ex, 1, "BUY", 1, MID)
    b = limit(ex, 3, "BUY", 1, MID)
    events = place(ex, 1, "SELL", 3, MID, time_in_force="IOC", stp="EXPIRE_MAKER")
    assert [f.maker_order_id for f in fills(events)] == [a, b]
    by_id = {e.order_id: e.reason for e in of(events, E.OrderExpired)}
    assert by_id[own] == "STP_MAKER"
    assert queue(ex) == ([], [])


def test_stp_mode_is_the_takers(ex: Exchange) -> None:
    own = limit(ex, 1, "SELL", 1, MID, stp="EXPIRE_BOTH")
    f = one(place(ex, 1, "BUY", 1, MID, stp="NONE"), E.OrderFilled)
    assert f.maker_order_id == own and f.maker_account == f.taker_account == 1


def test_stp_does_not_touch_other_accounts(ex: Exchange) -> None:
    other = limit(ex, 2, "SELL", 3, MID)
    events = place(ex, 1, "BUY", 3, MID, stp="EXPIRE_BOTH")
    assert [(f.maker_order_id, f.qty) for f in fills(events)] == [(other, 3)]
    assert not of(events, E.OrderExpired)


def test_fok_counts_only_what_stp_lets_it_take(ex: Exchange) -> None:
    ladder(ex)
    taker_stops = C.PlaceOrder(
        account=1,
        symbol=SYM,
        side="BUY",
        qty=2,
        price=MID + 20,
        time_in_force="FOK",
        stp="EXPIRE_TAKER",
    )
    rejected(ex, taker_stops, -5021)
    events = place(ex, 1, "BUY", 2, MID + 20, time_in_force="FOK", stp="EXPIRE_MAKER")
    assert sum(f.qty for f in fills(events)) == 2
    assert [e.reason for e in of(events, E.OrderExpired)] == ["STP_MAKER"]
