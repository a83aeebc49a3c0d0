"""The protocol layer without sockets: envelope, parameters, codes, formatting, store refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.errors import StoreUnavailable
from exchange.protocol import Api, Formatter, ProtocolError, Session, loads
from exchange.runtime import Runtime
from exchange.testing import Schemas

S = Schemas()
SYM = "BTCUSDT"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    rt = Runtime(Exchange(load_instruments()), clock="stepped")
    await rt.start()
    a = Api(rt)
    yield a
    await rt.stop()


async def ask(s: Session, msg: Any, method: str | None = None) -> dict[str, Any]:
    text = msg if isinstance(msg, (str, bytes)) else json.dumps(msg)
    ans = json.loads(await s.handle_text(text))
    S.check_response(method, ans)
    return ans


async def admin(api: Api) -> Session:
    s = Session(api)
    r = await ask(
        s, {"id": 1, "method": "session.logon", "params": {"adminToken": api.admin.token}}
    )
    assert r["status"] == 200
    return s


@pytest.mark.parametrize(
    ("text", "code", "rid"),
    [
        ("{nope", -1100, None),
        ("[1, 2]", -1100, None),
        ('"hello"', -1100, None),
        ('{"id": 3}', -1102, 3),
        ('{"id": 3, "method": 7}', -1130, 3),
        ('{"id": 3, "method": "nope"}', -1130, 3),
        ('{"id": 3, "method": "time", "params": []}', -1130, 3),
        ('{"id": 3, "method": "time", "oops": 1}', -1104, 3),
        ('{"id": [3], "method": "time"}', -1130, None),
        ('{"id": 1.5, "method": "time"}', -1130, None),
        ('{"id": NaN, "method": "time"}', -1100, None),
        ('{"id": 3, "method": "time", "params": {"x": Infinity}}', -1100, None),
        ('{"id": 3, "method": "time", "params": {"x": 1}}', -1104, 3),
        ("[" * 100_000, -1100, None),
    ],
)
async def test_envelope_errors(api: Api, text: str, code: int, rid: Any) -> None:
    ans = await ask(Session(api), text)
    assert ans["error"]["code"] == code and ans["id"] == rid


async def test_binary_frames_are_refused(api: Api) -> None:
    ans = await ask(Session(api), b'{"id": 1, "method": "time"}')
    assert ans["error"]["code"] == -1100


async def test_string_ids_are_echoed(api: Api) -> None:
    ans = await ask(Session(api), {"id": "req-1", "method": "time"}, "time")
    assert ans["id"] == "req-1" and ans["status"] == 200


async def test_parameter_errors_and_json_numbers(api: Api) -> None:
    adm = await admin(api)
    acct = (await ask(adm, {"id": 2, "method": "admin.createAccount",
                            "params": {"deposit": "100000"}}, "admin.createAccount"))["result"]  # fmt: skip
    await ask(
        adm, {"id": 3, "method": "admin.setIndex", "params": {"symbol": SYM, "price": "50000"}}
    )
    s = Session(api)
    s.account = acct["account"]  # (logon itself is tested over the wire)
    base = {"symbol": SYM, "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "49000"}
    cases = [
        ({**base, "extra": 1}, -1104),
        ({k: v for k, v in base.items() if k != "quantity"}, -1102),
        ({**base, "quantity": ""}, -1102),
        ({**base, "symbol": "NOPE"}, -1121),
        ({**base, "symbol": 5}, -1130),
        ({**base, "quantity": [1]}, -1130),
        ({**base, "price": "49000.05"}, -4014),
        ({**base, "price": "49000.123"}, -1111),
        ({**base, "quantity": "0.0105"}, -1111),
        ({**base, "price": "-1"}, -4001),
        ({**base, "quantity": "0"}, -4003),
        ({**base, "reduceOnly": "maybe"}, -1130),
        ({**base, "newClientOrderId": "has space"}, -4015),
        ({**base, "side": "HOLD"}, -1117),
        ({**base, "type": "ICEBERG"}, -1116),
        ({**base, "timeInForce": "GTD"}, -1115),
    ]
    for params, code in cases:
        ans = await ask(s, {"id": 9, "method": "order.place", "params": params})
        assert ans["error"]["code"] == code, (params, ans)
    # JSON numbers are read from their exact text, never through float
    text = '{"id": 10, "method": "order.place", "params": {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": 0.010, "price": 49000.1, "reduceOnly": "false"}}'
    ans = await ask(s, text, "order.place")
    assert ans["result"]["price"] == "49000.10" and ans["result"]["origQty"] == "0.010"
    assert (await ask(s, {"id": 11, "method": "order.place",
                          "params": {**base, "quantity": 10**50}}))["error"]["code"] == -1100  # fmt: skip


async def test_status_codes() -> None:
    assert ProtocolError(-2015).status == 401
    assert ProtocolError(-1015).status == 429
    assert ProtocolError(-9004).status == 503
    assert ProtocolError(-4014).status == 400
    assert ProtocolError(-4014).msg == "Price not increased by tick size."


def test_strict_json() -> None:
    for bad in ("NaN", "[Infinity]", '{"a": -Infinity}'):
        with pytest.raises(ValueError):
            loads(bad)
    assert loads("[1.10]")[0] == "1.10"  # exact text kept


async def test_store_unavailable_refuses_with_9004_and_changes_nothing() -> None:
    class Down:
        durable = True

        async def append(self, commands: list[C.Command]) -> None:
            raise StoreUnavailable("db gone")

    ex = Exchange(load_instruments())
    rt = Runtime(ex, clock="stepped", command_log=Down())
    await rt.start()
    try:
        adm = await admin(Api(rt))
        h = ex.state_hash()
        ans = await ask(adm, {"id": 2, "method": "admin.createAccount"})
        assert ans["status"] == 503 and ans["error"]["code"] == -9004
        assert ex.state_hash() == h and ex.account_view(1) is None
    finally:
        await rt.stop()


def test_public_messages_never_carry_an_account() -> None:
    insts = {i.symbol: i for i in load_instruments()}
    f = Formatter(insts)
    fill = E.OrderFilled(5, 9, SYM, 1, 500000, 10, "BUY", 2, 1, 7, 8, 100, -50, 0, 5, False)
    liq = E.PositionLiquidated(6, 9, 1, 1, 0, None, 7, SYM, "LONG", 10, 490000, 491000, 490000,
                               ((490000, 10),), 10, 0, 0, 100)  # fmt: skip
    events: list[E.Event] = [
        fill, liq,
        E.BookUpdated(1, 9, SYM, 3, ((500000, 10),), ()),
        E.MarkPriceChanged(2, 9, SYM, 500000, 500000, 500000, 100, 10),
        E.CascadeEnded(3, 9, 1, SYM, 1, 10, 1, (490000,), 0, 100, 0, False),
        E.SymbolHalted(4, 9, SYM),
    ]  # fmt: skip
    for ev in events:
        pub = f.public(ev)
        assert pub is not None and pub[0] == f.stream_of(ev)
        S.check_stream({"stream": pub[0], "data": pub[1]})
        assert "account" not in pub[1] and "orderId" not in pub[1]
    taker, maker = f.private(fill)
    assert taker[0] == 7 and taker[1]["orderId"] == 2 and not taker[1]["maker"]
    assert maker[0] == 8 and maker[1]["orderId"] == 1 and maker[1]["side"] == "SELL"
    assert maker[1]["fee"] == "-0.00000050"
    for _acct, data in taker, maker:
        S.check_stream({"stream": "account", "data": data})
    assert f.private(liq)[0][0] == 7


def test_payload_is_the_public_data_encoded_once() -> None:
    from exchange.protocol import dumps, stream_message

    f = Formatter({i.symbol: i for i in load_instruments()})
    book = E.BookUpdated(1, 9, SYM, 3, ((500000, 10),), ())
    mark = E.MarkPriceChanged(2, 9, SYM, 500000, 500000, 500000, 100, 10)
    for ev in (book, mark):
        pub = f.public(ev)
        assert pub is not None
        first = f.payload(ev)
        assert first == (pub[0], dumps(pub[1]).encode())
        assert f.payload(ev) is first  # the second consumer gets the same bytes object
        assert stream_message(pub[0], first[1]) == dumps({"stream": pub[0], "data": pub[1]})
    assert f.payload(E.SymbolHalted(4, 9, SYM)) is not None
    assert f.payload(E.OrderCanceled.__new__(E.OrderCanceled)) is None  # private only


async def test_one_formatter_per_runtime() -> None:
    from exchange.mqtt import MqttBridge

    rt = Runtime(Exchange(load_instruments()), clock="stepped")
    api = Api(rt)
    assert MqttBridge(rt).formatter is api.formatter is Formatter.shared(rt)
    other = Runtime(Exchange(load_instruments()), clock="stepped")
    assert Formatter.shared(other) is not api.formatter


@pytest.mark.parametrize(
    "text",
    [
        '{"id":1,"method":"order.place","params":{"symbol":"BTCUSDT","quantity":"1"}}',
        '{"id":1.5}', '{"a":[1,{"b":2.0}]}', '{"a":1e400}', '{"a":NaN}', '{"a":Infinity}',
        '{"a":123456789012345678901234567890}', '{"a":-9223372036854775809}',
        '{"a":' + "1" * 41 + "}", '{"a":"\\ud800"}', '{"a":1,"a":2}', ' [1, "é", null] ',
        "\ufeff{}", "{", '{"a":}', "[" * 2000 + "]" * 2000, '"x"', "-0", "",
    ],
)  # fmt: skip
def test_loads_answers_as_the_strict_decoder_does(text: str) -> None:
    from exchange.protocol import _decoder

    def outcome(fn: Any) -> Any:
        try:
            return "ok", fn(text)
        except (ValueError, RecursionError) as e:
            return "error", type(e)

    got, want = outcome(loads), outcome(_decoder.decode)
    assert got == want and type(got[1]) is type(want[1])
    if got[0] == "ok":
        assert json.dumps(got[1], default=str) == json.dumps(want[1], default=str)
