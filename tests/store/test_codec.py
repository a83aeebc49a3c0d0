"""The journal's JSON codec: every command type round-trips exactly, encoding is
canonical, decoding is strict."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core.instruments import Bracket, Instrument
from exchange.store.codec import (
    CodecError,
    _encode_command_general,
    checksum,
    decode_command,
    encode_command,
    from_jsonable,
    to_jsonable,
)

# any text a client could send, lone surrogates included
TEXT = st.text(alphabet=st.characters(codec=None), max_size=20)
INTS = st.integers() | st.integers(min_value=-(2**70), max_value=2**70)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of a (resolved) annotation, dataclasses included."""
    if tp is int:
        return INTS
    if tp is str:
        return TEXT
    if tp is bool:
        return st.booleans()
    if tp is type(None):
        return st.none()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[strategy_for(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=4).map(tuple)
        return st.tuples(*[strategy_for(a) for a in args])
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kw = {
            f.name: strategy_for(hints[f.name])
            for f in dataclasses.fields(tp)
            if not f.name.startswith("_")
        }
        return st.builds(tp, **kw)
    raise TypeError(tp)


def every_command_class() -> list[type[C.Command]]:
    """Every concrete subclass of `Command` the core defines, found by walking the class
    tree (not by reading the codec's table, which is what the tests check)."""
    out: list[type[C.Command]] = []
    todo = list(C.Command.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        # `dataclass(slots=True)` makes a new class: the one it replaced may still be
        # listed as a subclass, but it is not the one its module names
        named = getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls
        if named and dataclasses.is_dataclass(cls):
            out.append(cls)
    return sorted(set(out), key=lambda c: c.__name__)


def test_every_command_class_is_in_the_codecs_table() -> None:
    """A command the core handles but the journal cannot write would stop a stack with a
    store the first time it is sent (the journal is written before the core runs)."""
    classes = every_command_class()
    assert C.ReplaceBook in classes and C.PlaceOrder in classes
    missing = [c.__name__ for c in classes if C.COMMAND_TYPES.get(c.__name__) is not c]
    assert missing == []
    assert set(C.COMMAND_TYPES.values()) == set(classes)


def test_replace_book_round_trips() -> None:
    cmd = C.ReplaceBook(
        ts=7, account=3, symbol="BTCUSDT", bids=((299_990, 5), (299_980, 7)), asks=((300_010, 5),)
    )
    name, payload = encode_command(cmd)
    assert name == "ReplaceBook"
    back = decode_command(name, payload)
    assert back == cmd and type(back.bids) is tuple and type(back.bids[0]) is tuple


COMMANDS = st.one_of(*[strategy_for(cls) for cls in every_command_class()])


@pytest.mark.parametrize(
    "bids",
    [
        [(299_990, 5)],  # a list where a tuple is wanted
        ((299_990, 5), [299_980, 5]),  # a list inside
        {"$list": [1]},  # dicts that look like the codec's markers
        {"$dict": 2},
        {"$list": 3},
    ],
)
def test_replace_book_keeps_lists_and_dicts_where_tuples_are_wanted(bids: Any) -> None:
    """The core rejects a list where it wants a tuple: the journal must not turn it into
    one, or a recovery would accept what the original run rejected."""
    cmd = C.ReplaceBook(ts=7, account=1, symbol="BTCUSDT", bids=bids)
    back = decode_command(*encode_command(cmd))
    assert back == cmd and type(back.bids) is type(bids)
    if type(bids) is tuple:
        assert [type(x) for x in back.bids] == [type(x) for x in bids]
    assert run_both(cmd, back)


def test_a_journal_without_markers_still_decodes_arrays_as_tuples() -> None:
    payload = '{"account":1,"asks":[],"bids":[[299990,5]],"symbol":"BTCUSDT","ts":7}'
    back = decode_command("ReplaceBook", payload)
    assert back == C.ReplaceBook(ts=7, account=1, symbol="BTCUSDT", bids=((299_990, 5),))
    assert encode_command(back) == ("ReplaceBook", payload)


@settings(max_examples=400, deadline=None)
@given(COMMANDS)
def test_every_command_round_trips_exactly(cmd: C.Command) -> None:
    name, payload = encode_command(cmd)
    assert name == type(cmd).__name__
    back = decode_command(name, payload)
    assert back == cmd
    assert type(back) is type(cmd)
    # canonical: the decoded command encodes to the same bytes
    assert encode_command(back) == (name, payload)
    payload.encode("ascii")  # ASCII only, whatever the strings hold


# ASCII text as clients mostly send it (the orjson path), with quotes and backslashes
PLAIN = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=12)


def _plain(tp: Any) -> st.SearchStrategy[Any]:
    return PLAIN if tp is str else strategy_for(tp)


@settings(max_examples=400, deadline=None)
@given(COMMANDS | st.sampled_from(list(C.COMMAND_TYPES.values())).flatmap(
    lambda cls: st.builds(cls, **{
        f.name: _plain(typing.get_type_hints(cls)[f.name])
        for f in dataclasses.fields(cls) if not f.name.startswith("_")
    })
))  # fmt: skip
def test_the_fast_encoding_is_the_canonical_one(cmd: C.Command) -> None:
    """orjson's path gives the general encoder's bytes exactly, for any command."""
    assert encode_command(cmd) == _encode_command_general(cmd)


@settings(max_examples=100, deadline=None)
@given(strategy_for(Instrument))
def test_instrument_with_brackets_round_trips(inst: Instrument) -> None:
    cmd = C.AddInstrument(ts=5, instrument=inst)
    back = decode_command(*encode_command(cmd))
    assert isinstance(back, C.AddInstrument)
    assert back == cmd
    assert back.instrument.brackets == inst.brackets
    assert all(type(b) is Bracket for b in back.instrument.brackets)
    # derived state is rebuilt, not stored
    assert back.instrument._caps == tuple(b.cap for b in inst.brackets)
    assert "_caps" not in json.loads(encode_command(cmd)[1])["instrument"]  # not as a key


def test_shipped_instruments_round_trip() -> None:
    for inst in load_instruments():
        cmd = C.AddInstrument(ts=1, instrument=inst)
        back = decode_command(*encode_command(cmd))
        assert back == cmd
        assert repr(back) == repr(cmd)  # what state_hash renders


def test_liquidation_policy_round_trips_and_older_journals_mean_binance() -> None:
    btc = next(i for i in load_instruments() if i.symbol == "BTCUSDT")
    inst = dataclasses.replace(btc, liquidation_policy="hyperliquid")
    name, payload = encode_command(C.AddInstrument(ts=1, instrument=inst))
    assert '"liquidation_policy":"hyperliquid"' in payload
    assert decode_command(name, payload).instrument.liquidation_policy == "hyperliquid"
    # a journal written before the field existed
    old = payload.replace(',"liquidation_policy":"hyperliquid"', "")
    assert "liquidation_policy" not in old
    assert decode_command(name, old).instrument == btc


def test_bool_and_int_are_not_confused() -> None:
    for v in (True, 1, 1.0, "1", None):
        cmd = C.PlaceOrder(ts=1, account=1, symbol="X", side="BUY", qty=v)  # type: ignore[arg-type]
        back = decode_command(*encode_command(cmd))
        assert type(back.qty) is type(v) and back.qty == v  # type: ignore[attr-defined]


# anything a client could get into a command field that JSON holds exactly
JSONISH = st.recursive(
    st.none() | st.booleans() | INTS | TEXT | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(every_command_class()), st.data())
def test_ill_typed_commands_round_trip_exactly(cls: type, data: st.DataObject) -> None:
    """The journal is written before the core validates: whatever a command holds comes
    back, so a replay rejects it exactly as the original run did."""
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in ("ts",) or f.name.startswith("_"):
            continue
        if f.name == "instrument":
            kw[f.name] = load_instruments()[0]
        else:
            kw[f.name] = data.draw(JSONISH, label=f.name)
    cmd = cls(ts=data.draw(st.integers(0, 2**63)), **kw)
    back = decode_command(*encode_command(cmd))
    assert back == cmd
    for f in dataclasses.fields(cls):
        assert type(getattr(back, f.name)) is type(getattr(cmd, f.name)), f.name
    assert run_both(cmd, back)


def run_both(a: C.Command, b: C.Command) -> bool:
    """The core answers both commands with the same events."""
    from exchange.core.engine import Exchange

    ex1, ex2 = Exchange(load_instruments()), Exchange(load_instruments())
    for ex in (ex1, ex2):
        ex.handle(C.CreateAccount(ts=1, account=1))
    return ex1.handle(a) == ex2.handle(b) and ex1.state_hash() == ex2.state_hash()


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), Decimal("1.5"), b"\x00", object(), {1: 2}]
)
def test_values_json_cannot_hold_are_kept_by_repr(value: object) -> None:
    cmd = C.PlaceOrder(ts=1, account=1, symbol="BTCUSDT", side="BUY", qty=value)  # type: ignore[arg-type]
    name, payload = encode_command(cmd)
    back = decode_command(name, payload)
    assert back.qty == {"$repr": repr(value)}  # type: ignore[attr-defined]
    assert run_both(cmd, back)  # rejected alike


@pytest.mark.parametrize(
    "payload",
    [
        '{"ts":1,"account":1,"symbol":"X","side":"BUY","qty":NaN}',  # not JSON
        '{"ts":1,"account":1,"symbol":"X","side":"BUY"}',  # missing qty
        '{"ts":1,"account":1,"symbol":"X","side":"BUY","qty":1,"bogus":2}',  # other version
        '{"ts":1,"account":1,"symbol":"X","side":"BUY","qty":1',  # torn
        "[]",
        "",
    ],
)
def test_strict_decoding(payload: str) -> None:
    with pytest.raises(CodecError):
        decode_command("PlaceOrder", payload)


def test_unknown_type_refused() -> None:
    with pytest.raises(CodecError, match="unknown command type"):
        decode_command("DropTables", "{}")
    with pytest.raises(CodecError, match="expected an object"):
        decode_command("AddInstrument", '{"ts":1,"instrument":5}')


def test_defaults_fill_missing_optional_fields() -> None:
    cmd = decode_command("PlaceOrder", '{"ts":1,"account":1,"symbol":"X","side":"BUY","qty":1}')
    assert cmd == C.PlaceOrder(ts=1, account=1, symbol="X", side="BUY", qty=1)


def test_nested_typed_values() -> None:
    tp = tuple[tuple[int, int], ...]
    assert from_jsonable(tp, [[1, 2], [3, 4]]) == ((1, 2), (3, 4))
    assert from_jsonable(tp, [[1, 2, 3]]) == ((1, 2, 3),)
    assert to_jsonable(((1, 2),)) == [[1, 2]]


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(list(C.COMMAND_TYPES)), TEXT)
def test_checksum_covers_index_type_and_payload(idx: int, name: str, payload: str) -> None:
    payload = payload.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    c = checksum(idx, name, payload)
    assert 0 <= c < 2**32
    assert checksum(idx + 1, name, payload) != c or idx + 1 == idx
    assert checksum(idx, name, payload + " ") != c


def test_plain_commands_take_the_orjson_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange.store.codec as codec

    def refuse(cmd: C.Command) -> tuple[str, str]:
        raise AssertionError("general path taken")

    cmd = C.PlaceOrder(ts=7, account=3, symbol="BTCUSDT", side="BUY", qty=5, price=100)
    want = _encode_command_general(cmd)
    monkeypatch.setattr(codec, "_encode_command_general", refuse)
    assert encode_command(cmd) == want
    big = C.Deposit(ts=1, account=3, asset="USDT", amount=10**20)  # beyond 64 bits
    with pytest.raises(AssertionError, match="general path"):
        encode_command(big)
