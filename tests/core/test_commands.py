"""Commands are frozen, slotted, keyword-only dataclasses whose constructor is
`events.fast_init`'s: the same instances, signatures and errors as the generated one."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from exchange.core import commands as C

ALL = [
    c
    for c in vars(C).values()
    if isinstance(c, type) and issubclass(c, C.Command) and c is not C.Command
]


def twin(cls: type) -> type:
    """The same class as dataclasses alone would make it (the generated constructor)."""
    ns = {"__annotations__": dict(cls.__annotations__), "__module__": cls.__module__}
    for f in dataclasses.fields(cls):
        if f.name in cls.__annotations__ and f.default is not dataclasses.MISSING:
            ns[f.name] = f.default
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(
        type(cls.__name__, (C.Command,), ns)
    )


def test_every_command_is_declared_with_the_fast_constructor() -> None:
    assert len(ALL) >= 19
    for cls in ALL:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__", cls
        assert "__fi_self" in inspect.signature(cls.__init__).parameters, cls
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        assert all(p.kind is p.KEYWORD_ONLY for p in params), cls
        assert [p.name for p in params] == [f.name for f in dataclasses.fields(cls)]


def test_a_command_is_the_instance_the_generated_constructor_makes() -> None:
    kw = dict(account=3, symbol="BTCUSDT", side="BUY", qty=10, price=490000, client_id="c1")
    cmd = C.PlaceOrder(**kw)  # type: ignore[arg-type]
    plain = twin(C.PlaceOrder)(**kw)
    assert dataclasses.astuple(cmd) == dataclasses.astuple(plain)
    assert repr(cmd) == repr(plain)
    assert cmd == C.PlaceOrder(**kw) and hash(cmd) == hash(C.PlaceOrder(**kw))  # type: ignore[arg-type]
    assert (cmd.ts, cmd.type, cmd.time_in_force, cmd.stp) == (0, "LIMIT", "GTC", "NONE")
    assert pickle.loads(pickle.dumps(cmd)) == cmd
    stamped = dataclasses.replace(cmd, ts=77)
    assert stamped.ts == 77 and stamped.account == 3 and cmd.ts == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.qty = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del cmd.qty  # type: ignore[misc]


def test_a_command_refuses_what_the_generated_constructor_refuses() -> None:
    with pytest.raises(TypeError):
        C.CancelOrder(1, "BTCUSDT")  # type: ignore[misc]  # keyword-only
    with pytest.raises(TypeError):
        C.CancelOrder(symbol="BTCUSDT")  # type: ignore[call-arg]  # account is required
    with pytest.raises(TypeError):
        C.CancelOrder(account=1, symbol="BTCUSDT", nonsense=2)  # type: ignore[call-arg]
