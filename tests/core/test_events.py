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


def test_a_class_with_a_frozen_base_is_built_fast_too() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @fast_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(Base):
        b: int

    assert Child.new is not Child  # type: ignore[attr-defined]
    for ev in (Child(1, 2), Child.new(1, 2)):  # type: ignore[attr-defined]
        assert (type(ev), ev.a, ev.b) == (Child, 1, 2)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ev.b = 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            ev.a = 3


def test_the_event_base_is_frozen_and_holds_seq_and_ts_as_before() -> None:
    # as at af04390: a bare Event can be made, and a plain subclass's seq and ts are frozen
    assert E.Event.__slots__ == ("seq", "ts")
    assert E.Event(1, 2) == E.Event(1, 2)

    class Plain(E.Event):
        pass

    ev = Plain(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.seq = 3  # type: ignore[misc]


# pickled by the code before the opened classes (af04390: Event held the `seq` and `ts`
# slots itself), as the store's snapshots and the what-if branches hold them
OLD_PICKLES = [
    (
        b"\x80\x05\x95f\x00\x00\x00\x00\x00\x00\x00\x8c\x14exchange.core.events\x94\x8c\r"
        b"OrderAccepted\x94\x93\x94)\x81\x94]\x94(K\x01K\x02K\x03NK\x04\x8c\x07BTCUSDT\x94"
        b"\x8c\x03BUY\x94\x8c\x05LIMIT\x94\x8c\x03GTC\x94K\x05K\x06K\x00\x89\x8c\x03NEW\x94eb.",
        E.OrderAccepted.new(
            1, 2, 3, None, 4, "BTCUSDT", "BUY", "LIMIT", "GTC", 5, 6, 0, False, "NEW"
        ),
        5,
    ),
    (
        b"\x80\x02cexchange.core.events\nBookUpdated\nq\x00)\x81q\x01]q\x02(K\x07K\x08X\x07"
        b"\x00\x00\x00BTCUSDTq\x03K\tKdK\x02\x86q\x04\x85q\x05)eb.",
        E.BookUpdated.new(7, 8, "BTCUSDT", 9, ((100, 2),), ()),
        2,
    ),
]


@pytest.mark.parametrize(("blob", "ev", "protocol"), OLD_PICKLES)
def test_pickles_of_the_code_before_load_and_are_made_the_same(
    blob: bytes, ev: object, protocol: int
) -> None:
    old = pickle.loads(blob)
    assert type(old) is type(ev)
    assert old == ev
    assert repr(old) == repr(ev)
    assert pickle.dumps(ev, protocol) == blob
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.seq = 3  # type: ignore[attr-defined]


# each name the generated constructors use for themselves, the instance's included
GENERATED_NAMES = ["_type", "_osa", "_new", "_open", "_closed", "self", "make", "_s_a", "_d_a"]


@pytest.mark.parametrize("name", GENERATED_NAMES)
def test_a_field_named_like_the_generated_code_is_built_like_any_other(name: str) -> None:
    ns = {"__annotations__": {"a": "int", name: "int"}, "__module__": __name__}
    cls: type = event(type("Named", (E.Event,), ns))  # (a class body would do the same)

    class Sub(cls):  # type: ignore[valid-type,misc]  # built the slower way
        __slots__ = ()

    for make in (cls, cls.new, Sub):
        ev = make(1, 2, 3, 4)
        assert (ev.a, getattr(ev, name)) == (3, 4)
        assert ev == reference(type(ev), 1, 2, 3, 4)
    assert type(cls.new(1, 2, 3, 4)) is cls


def test_a_field_called_new_is_refused() -> None:
    with pytest.raises(TypeError, match="'new'"):

        @event
        class Newish(E.Event):
            new: int  # would shadow the factory every event class has

    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        a: int
        new: int = 0

    with pytest.raises(TypeError, match="'new'"):
        fast_init(Plain)


@pytest.mark.parametrize(
    "spec",
    [
        dataclasses.field(default=0, kw_only=True),
        dataclasses.field(default=0, init=False),
        dataclasses.field(default_factory=tuple),
    ],
    ids=["kw_only", "init_false", "default_factory"],
)
def test_fields_the_positional_constructor_cannot_mirror_are_refused(spec: object) -> None:
    ns = {"__annotations__": {"x": "object"}, "x": spec, "__module__": __name__}
    with pytest.raises(TypeError, match="not supported"):
        event(type("Odd", (E.Event,), ns))
