"""ReplaceBook: one account's quotes replaced in one command, with one BookReplaced event and one
book delta; the quotes fill, reserve and release like orders; bad levels change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code
from exchange.core.synthetic import BookReplaced

from .conftest import (
    MID,
    SYM,
    available,
    cancel,
    fills,
    limit,
    make_exchange,
    market,
    of,
    place,
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


# ---- the fast paths: a side rebuilt whole, and the cached quotes of the last replacement


def test_replace_side_builds_the_sorted_index_sortedcontainers_would() -> None:
    from sortedcontainers import SortedDict

    from exchange.core.book import BUY, SELL, Book, Level

    for n in (0, 1, 3, 1000, 2500):  # 2,500 levels exceed one sublist of the index
        book = Book()
        book.bids.update({p: Level() for p in range(10, 20)})  # replaced, not merged
        made = {MID - k: Level() for k in range(n)}  # bids: best (highest) first
        book.replace_side(BUY, made)
        book.bids._list._check()
        assert list(book.bids) == list(SortedDict(made))
        assert book.best_bid() == (MID if n else None)
        made = {MID + k: Level() for k in range(n)}  # asks: best (lowest) first
        book.replace_side(SELL, made)
        book.asks._list._check()
        assert list(book.asks) == list(SortedDict(made))
        assert book.best_ask() == (MID if n else None)
        assert not book.dirty  # the caller publishes the change


def _levels_from(draw: Any, side: int) -> tuple:
    n = draw(st.integers(0, 4))
    gaps = draw(st.lists(st.integers(1, 30), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    price, out = MID, []
    for gap, size in zip(gaps, sizes, strict=True):
        price = price - gap if side == 0 else price + gap
        out.append((price, size))
    return tuple(out)


@st.composite
def _actions(draw: Any) -> list[tuple]:
    out = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(
            st.sampled_from(["quote", "quote", "quote", "other", "limit", "take", "cancel"])
        )
        if kind in ("quote", "other"):
            out.append((kind, _levels_from(draw, 0), _levels_from(draw, 1)))
        elif kind == "limit":
            side = draw(st.sampled_from(["BUY", "SELL"]))
            off = draw(st.integers(-40, 40))
            out.append((kind, side, draw(st.integers(1, 5)), MID + off))
        elif kind == "take":
            out.append((kind, draw(st.sampled_from(["BUY", "SELL"])), draw(st.integers(1, 8))))
        else:
            out.append((kind,))
    return out


@settings(max_examples=150, deadline=None)
@given(_actions())
def test_replacements_keep_the_book_its_deltas_and_the_accounts_true(actions: list) -> None:
    """Quotes replaced again and again, with other accounts' orders, trades and cancels in
    between: after every command every invariant holds (`_check`, which also asserts what
    the cached quotes claim), and the book that the deltas describe is the book."""
    ex = make_exchange()
    shadow: tuple[dict[int, int], dict[int, int]] = ({}, {})
    mine: list[int] = []

    def apply(evs: list[E.Event]) -> None:
        for e in evs:
            if isinstance(e, E.BookUpdated):
                for side, levels in ((0, e.bids), (1, e.asks)):
                    for price, qty in levels:
                        if qty:
                            shadow[side][price] = qty
                        else:
                            shadow[side].pop(price, None)
        bids, asks = ex.depth(SYM)
        assert dict(bids) == shadow[0] and dict(asks) == shadow[1]
        assert [p for p, _ in bids] == sorted(shadow[0], reverse=True)

    for act in actions:
        if act[0] in ("quote", "other"):
            evs = replace(ex, act[1], act[2], account=Q if act[0] == "quote" else 3)
        elif act[0] == "limit":
            evs = place(ex, 2, act[1], act[2], act[3], time_in_force="GTC")
            mine.extend(e.order_id for e in of(evs, E.OrderAccepted))
        elif act[0] == "take":
            evs = market(ex, 2, act[1], act[2])
        else:
            if not mine:
                continue
            evs = cancel(ex, 2, order_id=mine.pop(0))
        apply(evs)
    m = ex.markets[SYM]
    for book_side in (m.book.bids, m.book.asks):
        book_side._list._check()  # the sorted index `replace_side` writes is sound


def test_a_snapshot_from_before_the_quotes_cache_loads() -> None:
    import pickle

    ex = make_exchange()
    replace(ex, ((MID - 10, 5),), ((MID + 10, 5),))
    m = ex.markets[SYM]
    assert m.quotes is not None
    _, slots = m.__getstate__()  # type: ignore[misc]
    del slots["quotes"]  # what an older snapshot holds
    old = type(m).__new__(type(m))
    old.__setstate__((None, slots))
    assert old.quotes is None and old.book.seq == m.book.seq
    back = pickle.loads(pickle.dumps(ex))
    assert back.state_hash() == ex.state_hash()
    evs = replace(back, ((MID - 11, 5),), ((MID + 11, 5),))  # the cache survives a round trip
    assert ex.depth(SYM) == ([(MID - 10, 5)], [(MID + 10, 5)])
    assert back.depth(SYM) == ([(MID - 11, 5)], [(MID + 11, 5)])
    assert of(evs, BookReplaced)[0].canceled == 2
