"""Events are frozen slotted dataclasses built by `fast_init`'s constructor: the same
instances as the dataclass-generated constructor makes, and frozen once built."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from exchange.core import events as E
from exchange.core.events import event, fast_init


def reference(cls: type, *args: object) -> object:
    """An instance built the way dataclasses builds it: object.__setattr__ per field."""
    obj = object.__new__(cls)
    for f, v in zip(dataclasses.fields(cls), args, strict=True):
        object.__setattr__(obj, f.name, v)
    return obj


EXAMPLES: list[tuple[type, tuple[object, ...]]] = [
    (E.PositionChanged, (1, 2, 3, "BTCUSDT", 4, 5, 6, 7, 8, 9, 10)),
    (E.OrderAccepted, (1, 2, 3, None, 4, "BTCUSDT", "BUY", "LIMIT", "GTC", 5, 6, 0, False, "NEW")),
    (E.BalanceChanged, (1, 2, 3, "USDT", 4, 5)),
]


@pytest.mark.parametrize(("cls", "args"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_the_fast_constructor_builds_the_dataclass_instance(cls: type, args: tuple) -> None:
    ev = cls(*args)
    assert type(ev) is cls
    assert ev == reference(cls, *args)
    assert hash(ev) == hash(reference(cls, *args))
    assert dataclasses.astuple(ev) == args
    assert pickle.loads(pickle.dumps(ev)) == ev
    kwargs = {f.name: v for f, v in zip(dataclasses.fields(cls), args, strict=True)}
    assert cls(**kwargs) == ev
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.seq = 99  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ev.seq  # type: ignore[misc]
    assert ev.seq == 1


def test_a_field_called_type_and_defaults_are_kept() -> None:
    @event
    class Typed(E.Event):
        type: str
        extra: int = 7

    ev = Typed(1, 2, "LIMIT")
    assert (ev.type, ev.extra) == ("LIMIT", 7)
    assert dataclasses.replace(ev, extra=8) == Typed(1, 2, "LIMIT", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.extra = 1  # type: ignore[misc]


def test_a_subclass_without_its_own_constructor_is_built_the_slow_way() -> None:
    class Sub(E.BalanceChanged):
        __slots__ = ()

    ev = Sub(1, 2, 3, "USDT", 4, 5)
    assert type(ev) is Sub  # not switched to the parent's class by the fast path
    assert (ev.account, ev.available, ev.reserved) == (3, 4, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.account = 9  # type: ignore[misc]


def test_a_class_with_a_frozen_base_falls_back_to_the_descriptors() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @fast_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(Base):
        b: int

    ev = Child(1, 2)
    assert (type(ev), ev.a, ev.b) == (Child, 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.b = 3  # type: ignore[misc]
