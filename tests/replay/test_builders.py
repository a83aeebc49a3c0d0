"""The replay's fast command constructors make the very commands the dataclasses make."""

from __future__ import annotations

import dataclasses

import pytest

from exchange.core import commands as C
from replay.builders import advance_clock, positional, replace_book, set_index_price


def test_the_same_frozen_commands_as_the_dataclass_constructors() -> None:
    pairs = [
        (
            set_index_price(5, "BTCUSDT", 470_000),
            C.SetIndexPrice(ts=5, symbol="BTCUSDT", price=470_000),
        ),
        (
            replace_book(7, 2, "BTCUSDT", ((10, 3), (9, 3)), ((11, 3),)),
            C.ReplaceBook(
                ts=7, account=2, symbol="BTCUSDT", bids=((10, 3), (9, 3)), asks=((11, 3),)
            ),
        ),
        (advance_clock(9), C.AdvanceClock(ts=9)),
    ]
    for fast, slow in pairs:
        assert type(fast) is type(slow)
        assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.ts = 1  # type: ignore[misc]


def test_fields_left_out_get_their_defaults_and_bad_names_fail() -> None:
    make = positional(C.PlaceOrder, ("ts", "account", "symbol", "side", "qty"))
    assert make(1, 2, "BTCUSDT", "BUY", 5) == C.PlaceOrder(
        ts=1, account=2, symbol="BTCUSDT", side="BUY", qty=5
    )
    with pytest.raises(TypeError, match="no field 'nope'"):
        positional(C.AdvanceClock, ("ts", "nope"))
    with pytest.raises(TypeError, match="no default"):
        positional(C.SetIndexPrice, ("ts",))
