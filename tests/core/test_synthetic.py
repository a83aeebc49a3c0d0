"""ReplaceBook: one account's quotes replaced in one command, with one BookReplaced event and one
book delta; the quotes fill, reserve and release like orders; bad levels change nothing."""

from __future__ import annotations

import pytest

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code
from exchange.core.synthetic import BookReplaced

from .conftest import (
    MID,
    SYM,
    available,
    fills,
    limit,
    make_exchange,
    market,
    of,
    queue,
    rejected,
    run,
)

Q = 1  # replay-like quoting account


def replace(ex: Exchange, bids: tuple = (), asks: tuple = (), account: int = Q) -> list[E.Event]:
    return run(ex, C.ReplaceBook(account=account, symbol=SYM, bids=bids, asks=asks))


def test_one_command_one_event_one_delta() -> None:
    ex = make_exchange()
    evs = replace(ex, ((MID - 10, 5), (MID - 20, 5)), ((MID + 10, 5), (MID + 20, 5)))
    (rep,) = of(evs, BookReplaced)
    assert (rep.canceled, rep.bids, rep.asks, rep.outside_band) == (
        0, ((MID - 10, 5), (MID - 20, 5)), ((MID + 10, 5), (MID + 20, 5)), 0,
    )  # fmt: skip
    (delta,) = of(evs, E.BookUpdated)
    assert delta.bids == ((MID - 10, 5), (MID - 20, 5))
    assert not of(evs, E.OrderAccepted) and not of(evs, E.OrderCanceled)
    ids = [rep.first_order_id + k for k in range(4)]
    assert queue(ex) == (
        [(MID - 10, ids[0], 5), (MID - 20, ids[1], 5)],
        [(MID + 10, ids[2], 5), (MID + 20, ids[3], 5)],
    )
    # replaced: the old quotes go, one delta names every level whose total changed
    evs = replace(ex, ((MID - 5, 7),), ((MID + 10, 3),))
    (rep,) = of(evs, BookReplaced)
    assert rep.canceled == 4
    (delta,) = of(evs, E.BookUpdated)
    assert dict(delta.bids) == {MID - 5: 7, MID - 10: 0, MID - 20: 0}
    assert dict(delta.asks) == {MID + 10: 3, MID + 20: 0}
    assert ex.depth(SYM) == ([(MID - 5, 7)], [(MID + 10, 3)])
    # and emptied
    replace(ex)
    assert ex.depth(SYM) == ([], [])
    assert ex.accounts[Q].reserved.get("USDT", 0) == 0


def test_quotes_fill_like_orders_and_reserve_margin() -> None:
    ex = make_exchange()
    before = available(ex, Q)
    replace(ex, ((MID - 10, 5),), ((MID + 10, 5),))
    assert available(ex, Q) < before  # both quotes reserve
    evs = market(ex, 2, "BUY", 3)
    (f,) = fills(evs)
    assert (f.price, f.qty, f.maker_account, f.taker_account) == (MID + 10, 3, Q, 2)
    assert ex.accounts[Q].seats[SYM].qty == -3
    replace(ex, ((MID - 10, 5),), ((MID + 10, 5),))  # the partly filled quote is withdrawn too
    assert ex.depth(SYM) == ([(MID - 10, 5)], [(MID + 10, 5)])


def test_a_level_crossing_another_accounts_order_trades_with_it() -> None:
    ex = make_exchange()
    limit(ex, 2, "SELL", 2, MID - 30)  # a user's ask below where the new bid goes
    evs = replace(ex, ((MID - 10, 5),), ((MID + 10, 5),))
    (f,) = fills(evs)
    assert (f.price, f.qty, f.taker_account, f.maker_account) == (MID - 30, 2, Q, 2)
    assert ex.depth(SYM) == ([(MID - 10, 3)], [(MID + 10, 5)])


def test_levels_beyond_the_band_are_left_out() -> None:
    ex = make_exchange()
    evs = replace(ex, ((MID - 10, 5), (MID * 90 // 100, 5)), ((MID * 110 // 100, 5),))
    (rep,) = of(evs, BookReplaced)
    assert rep.outside_band == 2 and rep.bids == ((MID - 10, 5),) and rep.asks == ()


@pytest.mark.parametrize(
    ("bids", "asks", "code"),
    [
        (((MID - 10, 5), (MID - 5, 5)), (), Code.INVALID_PARAMETER),  # bids not descending
        ((), ((MID + 10, 5), (MID + 10, 5)), Code.INVALID_PARAMETER),  # asks not ascending
        (((MID + 10, 5),), ((MID + 10, 5),), Code.INVALID_PARAMETER),  # crossed
        (((MID, 0),), (), Code.INVALID_PARAMETER),  # empty level
        (((MID, 10**9),), (), Code.QTY_GREATER_THAN_MAX),
        (((1, 1),), (), Code.PRICE_LESS_THAN_MIN),
        ([(MID, 1)], (), Code.INVALID_PARAMETER),  # not a tuple
        (((MID, "1"),), (), Code.INVALID_PARAMETER),
    ],
)
def test_bad_levels_change_nothing(bids: tuple, asks: tuple, code: int) -> None:
    ex = make_exchange()
    replace(ex, ((MID - 10, 5),), ((MID + 10, 5),))
    rejected(ex, C.ReplaceBook(account=Q, symbol=SYM, bids=bids, asks=asks), code)


def test_unaffordable_quotes_change_nothing() -> None:
    ex = make_exchange(funds=100 * 10**8)
    rejected(
        ex,
        C.ReplaceBook(account=Q, symbol=SYM, bids=((MID - 10, 500),), asks=()),
        Code.MARGIN_INSUFFICIENT,
    )


def test_unknown_account_and_symbol() -> None:
    ex = make_exchange()
    rejected(ex, C.ReplaceBook(account=99, symbol=SYM), Code.UNKNOWN_ACCOUNT)
    rejected(ex, C.ReplaceBook(account=Q, symbol="NOPE"), Code.BAD_SYMBOL)


def test_conditional_orders_are_left_alone() -> None:
    ex = make_exchange()
    run(ex, C.PlaceOrder(account=Q, symbol=SYM, side="SELL", type="STOP_MARKET", qty=1,
                         stop_price=MID - 1000))  # fmt: skip
    replace(ex, ((MID - 10, 5),), ())
    replace(ex)
    assert [o.type for o in ex.open_orders(Q, SYM)] == ["STOP_MARKET"]
