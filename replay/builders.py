"""Fast constructors of the core commands the replay makes at every bar or tick.

A frozen dataclass's generated `__init__` writes each field through `object.__setattr__`
(its frozen guard); `positional(cls, names)` writes them through the slots' member
descriptors instead, as `exchange.core.events.fast_init` does for events: the very same
frozen instance (type, fields, equality, hash, repr), made about three times faster. The
replay makes one to five commands a bar, so this is on the backtest's hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from exchange.core import commands as C

__all__ = ["advance_clock", "positional", "replace_book", "set_index_price"]


def positional(cls: type[Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """A function taking `names` positionally (every other field gets its default) that
    returns `cls(**dict(zip(names, args)))`, without the generated `__init__`."""
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = []
    all_fields = fields(cls)
    missing = set(names) - {f.name for f in all_fields}
    if missing:
        raise TypeError(f"{cls.__name__} has no field {sorted(missing)[0]!r}")
    for f in all_fields:
        n = f.name
        ns[f"_s_{n}"] = next(k.__dict__[n] for k in cls.__mro__ if n in k.__dict__).__set__
        if n in names:
            body.append(f"    _s_{n}(o, {n})\n")
            continue
        if f.default is not MISSING:
            ns[f"_d_{n}"] = f.default
        elif f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{n} has a default factory: not supported")
        else:
            raise TypeError(f"{cls.__name__}.{n} has no default: pass it")
        body.append(f"    _s_{n}(o, _d_{n})\n")
    src = f"def make({', '.join(names)}):\n    o = _new(_cls)\n{''.join(body)}    return o\n"
    exec(src, ns)
    make: Callable[..., Any] = ns["make"]
    make.__qualname__ = f"{cls.__name__}_positional"
    return make


set_index_price: Callable[[int, str, int], C.SetIndexPrice] = positional(
    C.SetIndexPrice, ("ts", "symbol", "price")
)
replace_book: Callable[
    [int, int, str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]], C.ReplaceBook
] = positional(C.ReplaceBook, ("ts", "account", "symbol", "bids", "asks"))
advance_clock: Callable[[int], C.AdvanceClock] = positional(C.AdvanceClock, ("ts",))
