"""Read-only queries: orders, open orders, last trade, market and account views; and
another account's order looking exactly like an order that does not exist (-2011)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

from .conftest import (
    FUNDS,
    MID,
    SYM,
    accepted,
    limit,
    open_position,
    place,
    rejected,
    run,
    set_index,
)


def test_order_view_by_id_and_client_id(ex: Exchange) -> None:
    oid = limit(ex, 1, "SELL", 4, MID + 10, client_id="q-1")
    place(ex, 2, "BUY", 1, MID + 10)
    by_id = ex.order_view(1, SYM, order_id=oid)
    by_cid = ex.order_view(1, SYM, client_id="q-1")
    assert by_id == by_cid
    assert by_id is not None
    assert (
        by_id.order_id,
        by_id.client_id,
        by_id.side,
        by_id.type,
        by_id.time_in_force,
        by_id.price,
        by_id.qty,
        by_id.filled,
        by_id.remaining,
        by_id.status,
    ) == (oid, "q-1", "SELL", "LIMIT", "GTC", MID + 10, 4, 1, 3, "PARTIALLY_FILLED")


def test_order_view_hides_other_accounts_and_unknown_ids(ex: Exchange) -> None:
    oid = limit(ex, 2, "BUY", 1, MID - 10, client_id="theirs")
    assert ex.order_view(2, SYM, order_id=oid) is not None
    assert ex.order_view(1, SYM, order_id=oid) is None
    assert ex.order_view(1, SYM, client_id="theirs") is None
    assert ex.order_view(1, SYM, order_id=999) is None
    assert ex.order_view(99, SYM, order_id=oid) is None
    assert ex.order_view(2, "ETHUSDT", order_id=oid) is None


def test_closed_orders_stay_queryable(ex: Exchange) -> None:
    filled = limit(ex, 1, "BUY", 1, MID)
    place(ex, 2, "SELL", 1, MID)
    canceled = limit(ex, 1, "BUY", 1, MID - 10)
    run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=canceled))
    expired = accepted(place(ex, 1, "BUY", 1, MID - 10, time_in_force="IOC")).order_id
    statuses = {
        oid: (v.status, v.remaining)
        for oid in (filled, canceled, expired)
        if (v := ex.order_view(1, SYM, order_id=oid)) is not None
    }
    assert statuses == {filled: ("FILLED", 0), canceled: ("CANCELED", 0), expired: ("EXPIRED", 0)}


def test_open_orders_lists_resting_and_untriggered_orders_in_id_order(ex: Exchange) -> None:
    a = limit(ex, 1, "SELL", 1, MID + 10)
    b = accepted(place(ex, 1, "BUY", 1, type="STOP_MARKET", stop_price=MID + 500)).order_id
    c = limit(ex, 1, "BUY", 1, MID - 10)
    gone = limit(ex, 1, "BUY", 1, MID - 20)
    run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=gone))
    limit(ex, 2, "BUY", 1, MID - 10)
    views = ex.open_orders(1, SYM)
    assert [(v.order_id, v.status) for v in views] == [(a, "NEW"), (b, "UNTRIGGERED"), (c, "NEW")]
    assert [v.order_id for v in ex.open_orders(1)] == [a, b, c]
    assert ex.open_orders(99) == []


def test_last_trade(ex: Exchange) -> None:
    assert ex.last_trade(SYM) is None
    limit(ex, 2, "SELL", 1, MID)
    limit(ex, 2, "SELL", 3, MID + 10)
    place(ex, 1, "BUY", 3, MID + 10, ts=7_000)
    assert ex.last_trade(SYM) == (MID + 10, 2, 7_000)
    view = ex.market_view(SYM)
    assert (view.last, view.mark, view.index, view.halted) == (MID + 10, MID, MID, False)


def test_market_view_follows_index_and_halt(ex: Exchange) -> None:
    set_index(ex, MID + 100)
    run(ex, C.HaltSymbol(symbol=SYM))
    view = ex.market_view(SYM)
    assert (view.symbol, view.index, view.mark, view.halted) == (SYM, MID + 100, MID + 100, True)
    run(ex, C.ResumeSymbol(symbol=SYM))
    assert ex.market_view(SYM).halted is False


def test_cancel_is_allowed_while_halted(ex: Exchange) -> None:
    oid = limit(ex, 1, "BUY", 1, MID - 10)
    run(ex, C.HaltSymbol(symbol=SYM))
    events = run(ex, C.CancelOrder(account=1, symbol=SYM, order_id=oid))
    assert [type(e) for e in events if type(e) in (E.OrderCanceled, E.OrderRejected)] == [
        E.OrderCanceled
    ]


def test_account_view(ex: Exchange) -> None:
    open_position(ex, 1, 2)
    view = ex.account_view(1)
    assert view is not None
    (usdt,) = view.balances
    (pos,) = view.positions
    assert usdt.asset == "USDT" and usdt.reserved == 0 and usdt.available < FUNDS
    assert (pos.symbol, pos.qty, pos.entry_price) == (SYM, 2, (2 * MID * 10_000, 2 * 10_000))
    assert ex.account_view(99) is None


# ---------------------------------------------------------------- -2011 for foreign ids


def _same_answer(foreign: E.Event, made_up: E.Event) -> None:
    """Both rejections are identical except for the sequence number and the id asked for."""
    assert isinstance(foreign, E.OrderRejected) and isinstance(made_up, E.OrderRejected)
    assert replace(foreign, seq=0, order_id=None, client_id=None) == replace(
        made_up, seq=0, order_id=None, client_id=None
    )


@pytest.mark.parametrize("command", ["cancel", "amend"])
def test_another_accounts_order_id_answers_like_a_made_up_id(ex: Exchange, command: str) -> None:
    theirs = limit(ex, 2, "BUY", 2, MID - 10, client_id="their-id")
    made_up = theirs + 1_000

    def cmd(**ident: object) -> C.Command:
        if command == "cancel":
            return C.CancelOrder(account=1, symbol=SYM, **ident)  # type: ignore[arg-type]
        return C.AmendOrder(account=1, symbol=SYM, qty=1, **ident)  # type: ignore[arg-type]

    _same_answer(
        rejected(ex, cmd(order_id=theirs), -2011), rejected(ex, cmd(order_id=made_up), -2011)
    )
    _same_answer(
        rejected(ex, cmd(client_id="their-id"), -2011),
        rejected(ex, cmd(client_id="no-such-id"), -2011),
    )
    view = ex.order_view(2, SYM, order_id=theirs)
    assert view is not None and (view.status, view.remaining) == ("NEW", 2)
