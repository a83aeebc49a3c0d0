"""JSON codec for the core's frozen dataclasses (commands, and anything nested in them).

Generic: it walks `dataclasses.fields` and the resolved type hints of each class, so a
new command type or field needs no code here.

The journal writes every command *before* the core validates it (write-ahead), so the
codec must carry exactly what the command holds, ill-typed values included: a command
with `qty=1.5` is journaled as such and rejected again, identically, on replay. So:

- a dataclass becomes a JSON object of its fields (fields whose name starts with `_`
  are derived state, e.g. `Instrument._caps`, and are skipped: `__post_init__`
  rebuilds them); decoding it needs exactly its fields (an unknown or missing required
  field means another version or damage: `CodecError`);
- `int`, `str`, `bool`, `None` and finite `float` values stay themselves whatever the
  annotation says (Python's `json` keeps integers exact at any size and tells `true`
  from `1` from `1.0`); tuples come back as tuples where the annotation says tuple, and
  a *list* where the annotation says tuple is journaled as `{"$list": [...]}` and comes
  back a list (the core rejects a list where it wants a tuple, and so must a replay); a
  dict there whose only key is `$list` or `$dict` is wrapped as `{"$dict": {...}}`;
- a value JSON cannot hold exactly (NaN, infinities, `Decimal`, bytes, other objects)
  is journaled as `{"$repr": "<repr>"}` and comes back as that dict: the core rejects
  it as it rejected the original (it accepts only exact types), and the journal never
  fails because of what a client sent. A `str` subclass comes back as `str`.

Encoding is canonical (sorted keys, no spaces, ASCII only), so one command always gives
the same bytes and the same checksum.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import operator
import types
import typing
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from exchange.core.commands import COMMAND_TYPES, Command

__all__ = [
    "CodecError",
    "checksum",
    "decode_batch",
    "decode_command",
    "encode_batch",
    "encode_command",
    "from_jsonable",
    "to_jsonable",
]

log = logging.getLogger("margincall.store")


class CodecError(ValueError):
    """A payload that does not decode to the expected type."""


# ------------------------------------------------------------------------- encoding

_SCALARS = (int, str, bool, type(None))
_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")
        )
    return names


def to_jsonable(obj: Any) -> Any:
    """A JSON-ready structure for `obj` (dataclasses as objects, tuples as lists)."""
    t = type(obj)
    if t in _SCALARS:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else {"$repr": repr(obj)}
    if t is tuple or t is list:
        return [to_jsonable(v) for v in obj]
    if t is dict and all(type(k) is str for k in obj):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(t):
        return {n: to_jsonable(getattr(obj, n)) for n in _fields(t)}
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):  # an int subclass, e.g. an IntEnum: its value
        return int(obj)
    log.warning("journal: %s value %r stored by its repr", t.__name__, obj)
    return {"$repr": repr(obj)}


_ENCODE = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode
_SORTED: dict[type, tuple[str, ...]] = {}


def _no_default(o: Any) -> Any:
    raise TypeError(f"{type(o).__name__} is not JSON")


# the C encoder without its per-call set-up, for flat objects whose keys come sorted
_c_make = getattr(json.encoder, "c_make_encoder", None)
_FLAT = (
    _c_make(
        None, _no_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    if _c_make is not None
    else None
)


_FLAT_TYPES = frozenset(_SCALARS)
_PLANS: dict[type, tuple[str, tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _values_of(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda c: (one(c),)
    return lambda c: ()


Encoder = Callable[[Any], Any]
_ENCODERS: dict[Any, Encoder] = {}
_FIELD_ENCODERS: dict[type, dict[str, Encoder]] = {}
_MARKERS = ({"$list"}, {"$dict"})


def _encoder_for(tp: Any) -> Encoder:
    """`to_jsonable`, except that a value in a place the annotation `tp` makes a tuple on
    decoding keeps its own type (see the module docstring); mirrors `_build_decoder`."""
    try:
        return _ENCODERS[tp]
    except KeyError:
        pass
    enc = _ENCODERS[tp] = _build_encoder(tp)
    return enc


def _build_encoder(tp: Any) -> Encoder:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        shaped = [_encoder_for(a) for a in args if typing.get_origin(a) is tuple]
        if not shaped:
            return to_jsonable
        return shaped[0]  # the decoder tries a union's tuple arm on any JSON array
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _encoder_for(args[0])

            def items(v: Any) -> list[Any]:
                return [item(x) for x in v]
        else:
            fixed = [_encoder_for(a) for a in args]

            def items(v: Any) -> list[Any]:
                if len(v) != len(fixed):
                    return [to_jsonable(x) for x in v]
                return [e(x) for e, x in zip(fixed, v, strict=True)]

        def a_tuple(v: Any) -> Any:
            t = type(v)
            if t is tuple:
                return items(v)
            if t is list:
                return {"$list": items(v)}
            if t is dict and v.keys() in _MARKERS:
                return {"$dict": to_jsonable(v)}
            return to_jsonable(v)

        return a_tuple
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda v: _encode_dataclass(v) if type(v) is tp else to_jsonable(v)
    return to_jsonable


def _encode_dataclass(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    encoders = _FIELD_ENCODERS.get(cls)
    if encoders is None:
        hints = typing.get_type_hints(cls)
        encoders = _FIELD_ENCODERS[cls] = {n: _encoder_for(hints[n]) for n in _fields(cls)}
    return {n: e(getattr(obj, n)) for n, e in encoders.items()}


def encode_command(cmd: Command) -> tuple[str, str]:
    """(type name, canonical JSON payload) of a command.

    A command of plain scalars (almost every one) goes through orjson in one call; its
    bytes are the canonical encoding's exactly whenever nothing needed escaping and every
    integer fits 64 bits — anything else (big amounts, non-ASCII or control characters,
    nested values) takes the general path. `tests/store/test_codec.py` checks the two
    agree on arbitrary values.
    """
    name, names, get = _PLANS.get(type(cmd)) or _plan(type(cmd))
    values = get(cmd)
    if _FLAT_TYPES.issuperset(map(type, values)):
        try:
            raw = orjson.dumps(dict(zip(names, values, strict=False)))  # same length
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            pass
        else:
            if raw.isascii() and b"\\" not in raw and b"\x7f" not in raw:
                return name, raw.decode()
    return _encode_command_general(cmd)


def _plan(cls: type) -> tuple[str, tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """(name, sorted field names, their getter) of a registered command class."""
    name = cls.__name__
    if COMMAND_TYPES.get(name) is not cls:
        raise CodecError(f"{name} is not a registered command type")
    names = tuple(sorted(_fields(cls)))
    plan = _PLANS[cls] = (name, names, _values_of(names))
    return plan


def encode_batch(commands: Sequence[Command]) -> bytes:
    """A batch of commands as one JSON array, for the journal writer process.

    A batch of plain-scalar commands is one orjson call: `[name, [values in sorted field
    order]]` each (~0.6 µs a command, against ~2 µs for `encode_command`); any other
    batch is `[name, payload]` each, the payload from `encode_command`. Either way
    `decode_batch` gives back exactly `encode_command`'s (name, payload) per command.
    """
    items: list[tuple[str, Any]] = []
    flat = True
    plans = _PLANS
    for cmd in commands:
        name, _, get = plans.get(type(cmd)) or _plan(type(cmd))
        values = get(cmd)
        if not _FLAT_TYPES.issuperset(map(type, values)):
            flat = False
            break
        items.append((name, values))
    if flat:
        try:
            raw = orjson.dumps(items)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            pass
        else:
            # what `encode_command`'s fast path requires of each command, checked once
            if raw.isascii() and b"\\" not in raw and b"\x7f" not in raw:
                return raw
    return orjson.dumps([encode_command(c) for c in commands])


def decode_batch(data: bytes) -> list[tuple[str, str]]:
    """(name, payload) of each command of an `encode_batch` array, as `encode_command`
    gives them. A flat command's values are ASCII strings without escapes, 64-bit
    integers, booleans and nulls, which JSON carries exactly, so its payload is rebuilt
    byte for byte."""
    out: list[tuple[str, str]] = []
    plans = _PLANS
    dumps = orjson.dumps
    for name, body in orjson.loads(data):
        if type(body) is str:
            out.append((name, body))
            continue
        cls = COMMAND_TYPES.get(name)
        if cls is None:
            raise CodecError(f"unknown command type {name!r}")
        names = (plans.get(cls) or _plan(cls))[1]
        out.append((name, dumps(dict(zip(names, body, strict=True))).decode()))
    return out


def _encode_command_general(cmd: Command) -> tuple[str, str]:
    """`encode_command` without the orjson path: the reference encoding."""
    cls = type(cmd)
    name = cls.__name__
    names = _SORTED.get(cls)
    if names is None:
        if COMMAND_TYPES.get(name) is not cls:
            raise CodecError(f"{name} is not a registered command type")
        names = _SORTED[cls] = tuple(sorted(_fields(cls)))
    data = {}
    flat = True
    for n in names:
        v = getattr(cmd, n)
        if type(v) not in _SCALARS:
            flat = False
            data = _encode_dataclass(cmd)
            break
        data[n] = v
    if flat and _FLAT is not None:
        return name, "".join(_FLAT(data, 0))
    return name, _ENCODE(data)


def checksum(idx: int, type_name: str, payload: str) -> int:
    """CRC-32 of a journal row (its index, type and payload): catches torn or damaged rows.

    CRC-32 detects every burst error up to 32 bits and any other damage with probability
    1 − 2⁻³², at about 1 GB/s; the journal needs detection, not authentication.
    """
    return zlib.crc32(f"{idx}\x00{type_name}\x00{payload}".encode())


# ------------------------------------------------------------------------- decoding

Decoder = Callable[[Any, str], Any]
_DECODERS: dict[Any, Decoder] = {}


def _as_is(v: Any, where: str) -> Any:
    return v


def _decoder_for(tp: Any) -> Decoder:
    try:
        return _DECODERS[tp]
    except KeyError:
        pass
    dec = _DECODERS[tp] = _build_decoder(tp)
    return dec


def _unmarked(v: Any, items: Callable[[list[Any]], list[Any]]) -> Any:
    """What a non-array in a tuple's place stood for: a `$list` marker is that list, a
    `$dict` marker that dict; anything else is itself."""
    if type(v) is dict and len(v) == 1:
        if type(v.get("$list")) is list:
            return items(v["$list"])
        if "$dict" in v:
            return v["$dict"]
    return v


def _build_decoder(tp: Any) -> Decoder:
    if tp in (int, str, bool, float, type(None), None, Any):
        return _as_is
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [_decoder_for(a) for a in args]
        shaped = [d for d in inner if d is not _as_is]
        if not shaped:
            return _as_is

        def union(v: Any, where: str) -> Any:
            if type(v) in (list, dict):
                for d in shaped:
                    try:
                        return d(v, where)
                    except CodecError:
                        continue
            return v

        return union
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder_for(args[0])

            def var_tuple(v: Any, where: str) -> Any:
                if type(v) is not list:
                    return _unmarked(v, lambda xs: [item(x, where) for x in xs])
                return tuple(item(x, f"{where}[{i}]") for i, x in enumerate(v))

            return var_tuple
        items = [_decoder_for(a) for a in args]

        def fixed(v: list[Any], where: str) -> list[Any]:
            if len(v) != len(items):
                return v
            return [d(x, f"{where}[{i}]") for i, (d, x) in enumerate(zip(items, v, strict=True))]

        def fixed_tuple(v: Any, where: str) -> Any:
            if type(v) is not list:
                return _unmarked(v, lambda xs: fixed(xs, where))
            return tuple(fixed(v, where))

        return fixed_tuple
    if origin is list:
        item = _decoder_for(args[0]) if args else _as_is

        def a_list(v: Any, where: str) -> Any:
            if type(v) is not list:
                return v
            return [item(x, f"{where}[{i}]") for i, x in enumerate(v)]

        return a_list
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    raise CodecError(f"no decoder for {tp!r}")


def _dataclass_decoder(cls: type) -> Decoder:
    fields = [f for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    required = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    plan: dict[str, Decoder] = {}

    def decode(v: Any, where: str) -> Any:
        if not plan:  # built lazily: a class may refer to itself or a later one
            hints = typing.get_type_hints(cls)
            for f in fields:
                plan[f.name] = _decoder_for(hints[f.name])
        if type(v) is not dict or "$repr" in v:
            raise CodecError(f"{where}: expected an object for {cls.__name__}")
        unknown = v.keys() - plan.keys()
        if unknown:
            raise CodecError(f"{where}: unknown field {sorted(unknown)[0]!r} for {cls.__name__}")
        missing = required - v.keys()
        if missing:
            raise CodecError(f"{where}: missing field {sorted(missing)[0]!r} for {cls.__name__}")
        kwargs = {k: plan[k](x, f"{where}.{k}") for k, x in v.items()}
        try:
            return cls(**kwargs)
        except Exception as e:
            raise CodecError(f"{where}: {cls.__name__}: {e}") from None

    return decode


def from_jsonable(tp: Any, data: Any, where: str = "$") -> Any:
    """The value of type `tp` that `to_jsonable` turned into `data`."""
    return _decoder_for(tp)(data, where)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_command(type_name: str, payload: str) -> Command:
    """The command journaled as (`type_name`, `payload`); `CodecError` if it is not one."""
    cls = COMMAND_TYPES.get(type_name)
    if cls is None:
        raise CodecError(f"unknown command type {type_name!r}")
    try:
        data = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise CodecError(f"{type_name}: payload is not JSON: {e}") from None
    cmd: Command = from_jsonable(cls, data, type_name)
    return cmd
