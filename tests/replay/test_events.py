"""Canonical event types: immutable, slotted, exact."""

from __future__ import annotations

import dataclasses
import inspect
from decimal import Decimal as D

import pytest

from replay import EVENT_TYPES, BookLevel, BookUpdate, Kline, Trade


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()))
def test_frozen_slotted_dataclasses(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in cls.__dict__
    names = [f.name for f in dataclasses.fields(cls)]
    assert names[:3] == ["exchange_ts", "local_ts", "symbol"]
    assert names[-1] == "exchange"
    # the fast __init__ keeps the dataclass signature, defaults included
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == names
    for p, f in zip(params, dataclasses.fields(cls), strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected
    assert EVENT_TYPES[cls.type_name] is cls  # type: ignore[attr-defined]


def test_immutable_hashable_exact() -> None:
    t = Trade(1, 2, "X", D("1.10"), D("2"), "buy")
    assert not hasattr(t, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.price = D(3)  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        t.other = 1  # type: ignore[attr-defined]
    assert t == Trade(1, 2, "X", D("1.10"), D("2"), "buy", "", "")
    assert hash(t) == hash(Trade(1, 2, "X", D("1.1"), D("2"), "buy"))
    assert str(t.price) == "1.10"
    assert t.trade_id == "" and t.exchange == ""
    assert dataclasses.replace(t, price=D(5)).price == D(5)
    with pytest.raises(TypeError):
        Trade(1, 2, "X")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Trade(1, 2, "X", D(1), D(1), "buy", nope=1)  # type: ignore[call-arg]


def test_book_and_kline_helpers() -> None:
    b = BookUpdate(1, 1, "X", True, (BookLevel(D("1"), D("0")),), ())
    assert b.bids[0].amount == 0 and b.update_id is None and hash(b)
    k = Kline(120, 120, "X", "mark", 60, D(1), D(1), D(1), D(1), D(0))
    assert k.interval_ns == 60
