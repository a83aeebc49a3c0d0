"""Bad input never crashes the server and never changes state.

10,000+ generated bad messages (seeded, so a failure replays) over real sockets, from a
logged-on student, an anonymous connection and an admin; each gets exactly one error
answer that matches the ErrorResponse schema; afterwards the state hash is unchanged
and the server still trades.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from exchange.server import ServerConfig
from exchange.testing import Probe, Schemas, fund_accounts, running_stack

S = Schemas()
SYM = "BTCUSDT"
N_MESSAGES = 10_500

VALID: dict[str, dict[str, Any]] = {
    "order.place": {"symbol": SYM, "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                    "price": "49000", "timeInForce": "GTC"},
    "order.cancel": {"symbol": SYM, "orderId": 1},
    "order.modify": {"symbol": SYM, "orderId": 1, "quantity": "0.02", "price": "49000"},
    "order.status": {"symbol": SYM, "orderId": 1},
    "order.cancelAll": {"symbol": SYM},
    "position.margin": {"symbol": SYM, "amount": "1", "type": 1},
    "leverage.set": {"symbol": SYM, "leverage": 5},
    "depth": {"symbol": SYM, "limit": 5},
    "ticker": {"symbol": SYM},
    "subscribe": {"streams": [f"trades.{SYM}"]},
    "admin.deposit": {"account": 1, "asset": "USDT", "amount": "100"},
    "admin.setIndex": {"symbol": SYM, "price": "40000"},
    "admin.halt": {"symbol": SYM},
    "admin.advanceClock": {"by": 1000},
}  # fmt: skip
DECIMAL_FIELDS = {"quantity", "price", "amount"}
ADMIN = [m for m in VALID if m.startswith("admin.")]
USER = [m for m in VALID if m not in ADMIN and m not in ("depth", "ticker", "subscribe")]

BAD_DECIMALS = ["NaN", "Infinity", "-Infinity", "1e5", "1E-3", "-1", "0", "-0.00", "", " 1", "1 ",
                "0x10", "1_000", "١٢", "1.2.3", ".5", "5.", "+5", "1" * 60, "49000.123456789",
                "49000.05", "0.0001", "49000.1234", "--1", "nan", "inf", "\u0000", "4e9999"]  # fmt: skip
BAD_VALUES: list[Any] = [None, True, False, [], {}, [1, 2], {"a": 1}, 1e-9, -1, 10**40, -(10**40),
                         "x" * 300, "\ud800", "<script>", "DROP TABLE", 2**64]  # fmt: skip
RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 500, "-0", "1.5e-400"]


def bad_messages(rng: random.Random) -> list[str | bytes]:
    """A mix of every kind of bad input; each one must be refused."""

    def req(method: str, params: Any, rid: Any = None) -> str:
        return json.dumps({"id": rng.randint(1, 10**6) if rid is None else rid,
                           "method": method, "params": params})  # fmt: skip

    def mutate_decimal() -> str:
        m = rng.choice([m for m in VALID if DECIMAL_FIELDS & set(VALID[m])])
        p = dict(VALID[m])
        field = rng.choice(sorted(DECIMAL_FIELDS & set(p)))
        p[field] = rng.choice(BAD_DECIMALS)
        return req(m, p)

    def wrong_type() -> str:
        m = rng.choice(list(VALID))
        p = dict(VALID[m])
        field = rng.choice(sorted(p))
        v = rng.choice(BAD_VALUES)
        if field == "streams" and isinstance(v, list) and not v:
            v = [1]
        if v is None and m == "order.modify" and field in ("quantity", "price"):
            v = "bad"  # null = absent, and the other field alone would be valid
        if v is None and field in ("limit", "timeInForce"):
            v = "bad"  # null optional = absent = valid
        if m == "order.place" and field == "timeInForce" and v is True:
            v = 7
        p[field] = v
        return req(m, p)

    def raw_number() -> str:
        m = rng.choice([m for m in VALID if DECIMAL_FIELDS & set(VALID[m])])
        p = dict(VALID[m])
        field = rng.choice(sorted(DECIMAL_FIELDS & set(p)))
        p[field] = "@@"
        return req(m, p).replace('"@@"', rng.choice(RAW_NUMBERS))

    def missing() -> str:
        m = rng.choice([m for m in VALID if m not in ("depth",)])
        p = dict(VALID[m])
        required = {"order.modify": ["symbol", "orderId"], "admin.advanceClock": ["by"]}.get(
            m, sorted(p)
        )
        drop = rng.choice(
            [f for f in required if not (m == "order.place" and f in ("price", "timeInForce"))]
        )
        p.pop(drop)
        return req(m, p)

    def extra() -> str:
        m = rng.choice(list(VALID))
        p = dict(VALID[m])
        p[rng.choice(["foo", "recvWindow", "signature", "account", "timestamp", "x" * 80, ""])] = 1
        return req(m, p)

    def unknown_method() -> str:
        return req(rng.choice(["", "order", "order.place ", "ORDER.PLACE", "admin", "admin.*",
                               "__init__", "handle", "x" * 1000, "order.cancelall"]), {})  # fmt: skip

    def bad_envelope() -> str:
        return rng.choice([
            json.dumps({"id": [1], "method": "time"}),
            json.dumps({"id": {"a": 1}, "method": "time"}),
            json.dumps({"id": 1.5, "method": "time"}),
            json.dumps({"id": "x" * 65, "method": "time"}),
            json.dumps({"id": 1}),
            json.dumps({"id": 1, "method": 5}),
            json.dumps({"id": 1, "method": None}),
            json.dumps({"id": 1, "method": "time", "params": []}),
            json.dumps({"id": 1, "method": "time", "params": "x"}),
            json.dumps({"id": 1, "method": "time", "extra": 1}),
            json.dumps({"id": 10**30, "method": "time"}),
            json.dumps([{"id": 1, "method": "time"}]),
            json.dumps("time"), "null", "1", "true", "[]", '""',
        ])  # fmt: skip

    def malformed() -> str | bytes:
        valid = req(rng.choice(list(VALID)), VALID[rng.choice(list(VALID))])
        return rng.choice([
            valid[: rng.randint(0, len(valid) - 1)],
            valid.replace(":", "=", 1),
            valid + "}",
            "{" * rng.randint(1, 5000),
            "[" * 10000 + "]" * 10000,
            "".join(chr(rng.randint(0, 0xFFFF)) for _ in range(rng.randint(1, 200))
                    ).encode("utf-16", "surrogatepass").decode("latin-1"),
            "\x00\x01\x02",
            '{"id": 1, "method": "time", "params": {"a": NaN}}',
            '{"id": Infinity, "method": "time"}',
            "{'id': 1}",
            bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 64))),
            valid.encode(),  # a binary frame carrying valid JSON is still refused
        ])  # fmt: skip

    def semantic() -> str:
        # well-formed but refused by the core or the edge without changing state
        return rng.choice([
            req("order.place", {**VALID["order.place"], "symbol": "NOPEUSDT"}),
            req("order.place", {**VALID["order.place"], "side": "HOLD"}),
            req("order.place", {**VALID["order.place"], "type": "ICEBERG"}),
            req("order.place", {**VALID["order.place"], "timeInForce": "GTD"}),
            req("order.place", {**VALID["order.place"], "price": "999999"}),  # above the band
            req("order.place", {**VALID["order.place"], "price": "1"}),  # below min price
            req("order.place", {**VALID["order.place"], "quantity": "100000"}),  # over max qty
            req("order.place", {**VALID["order.place"], "quantity": "900", "price": "49000"}),  # margin
            req("order.place", {**VALID["order.place"], "newClientOrderId": "bad id!"}),
            req("order.place", {**VALID["order.place"], "reduceOnly": "true"}),  # no position
            req("order.place", {**VALID["order.place"], "type": "MARKET", "price": "49000"}),
            req("order.place", {"symbol": SYM, "side": "BUY", "type": "STOP_MARKET", "quantity": "0.01",
                                "stopPrice": "1000"}),  # would trigger at once
            req("order.cancel", {"symbol": SYM, "orderId": rng.randint(1, 10**9)}),
            req("order.status", {"symbol": SYM, "origClientOrderId": "nobody"}),
            req("order.modify", {"symbol": SYM, "orderId": rng.randint(1, 10**9), "price": "49000"}),
            req("leverage.set", {"symbol": SYM, "leverage": rng.choice([0, 126, 1000, -5])}),
            req("position.margin", {"symbol": SYM, "amount": "1", "type": rng.choice([1, 2, 3])}),
            req("subscribe", {"streams": ["book.NOPE"]}),
            req("subscribe", {"streams": ["account.other"]}),
            req("subscribe", {"streams": ["x" * 70]}),
            req("subscribe", {"streams": [f"trades.{SYM}"] * 101}),
            req("depth", {"symbol": SYM, "limit": rng.choice([0, 5001, -1])}),
            req("session.logon", {"apiKey": "k", "timestamp": 1, "signature": "s"}),
            req("session.logon", {"adminToken": "wrong"}),
        ])  # fmt: skip

    def admin_from_student() -> str:
        m = rng.choice(ADMIN)
        return req(m, VALID[m])

    kinds: list[Callable[[], str | bytes]] = [mutate_decimal, wrong_type, raw_number, missing,
                                              extra, unknown_method, bad_envelope, malformed,
                                              semantic, admin_from_student]  # fmt: skip
    return [rng.choice(kinds)() for _ in range(N_MESSAGES)]


async def blast(
    url: str, messages: list[str | bytes], logon: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Send messages pipelined on one connection; return every answer."""
    async with connect(url, compression=None, max_size=2**24) as ws:
        if logon is not None:
            await ws.send(json.dumps({"id": "logon", "method": "session.logon", "params": logon}))
            assert json.loads(await ws.recv())["status"] == 200
        answers: list[dict[str, Any]] = []

        async def reader() -> None:
            while len(answers) < len(messages):
                answers.append(json.loads(await ws.recv()))

        task = asyncio.create_task(reader())
        for m in messages:
            await ws.send(m)
        await asyncio.wait_for(task, 60)
        return answers


async def test_ten_thousand_bad_messages_change_nothing() -> None:
    import time

    from exchange.auth import sign

    cfg = ServerConfig(rate_limit=None)
    async with (
        running_stack(config=cfg) as st,
        Probe(st.url, S) as adm,
        Probe(st.url, S) as other,
    ):
        await adm.call("session.logon", adminToken=st.admin_token)
        k_student, k_other = await fund_accounts(adm, 2)
        await other.logon(k_other["apiKey"], k_other["secret"])
        # someone else's resting order, so "cancel order 1" refers to a real id
        await other.call("order.place", symbol=SYM, side="BUY", type="LIMIT",
                          quantity="0.01", price="49000")  # fmt: skip
        before = st.exchange.state_hash()
        rng = random.Random(20240601)
        messages = bad_messages(rng)
        assert len(messages) >= 10_000
        logon = {"apiKey": k_student["apiKey"], "timestamp": int(time.time() * 1000)}
        logon["signature"] = sign(k_student["secret"], logon)
        half = len(messages) // 2
        student, anon = await asyncio.gather(
            blast(st.url, messages[:half], logon), blast(st.url, messages[half:], None)
        )
        answers = student + anon
        assert len(answers) == len(messages)
        ok = [a for a in answers if a.get("status") == 200]
        assert not ok, ok[:3]
        codes: dict[int, int] = {}
        for a in answers:
            S.check("ErrorResponse", a)
            codes[a["error"]["code"]] = codes.get(a["error"]["code"], 0) + 1
        assert codes.get(-1000, 0) == 0, "an internal error leaked"  # no bug paths hit
        assert len(codes) >= 15, codes  # the generator covers many distinct errors
        assert st.exchange.state_hash() == before

        # oversize frames close the connection with 1009 and change nothing
        for _ in range(3):
            async with connect(st.url, compression=None) as ws:
                await ws.send('{"id":1,"method":"time","params":{"x":"' + "a" * 70_000 + '"}}')
                try:
                    await ws.recv()
                    raise AssertionError("oversize message was answered")
                except ConnectionClosed as e:
                    assert e.rcvd is not None and e.rcvd.code == 1009
        assert st.exchange.state_hash() == before
        # and the server still answers and trades
        assert (await adm.call("time"))["clock"] == "stepped"
        placed = await other.call("order.place", symbol=SYM, side="SELL", type="LIMIT",
                                  quantity="0.01", price="49000")  # fmt: skip
        assert placed["status"] == "FILLED"
        stats = await adm.call("admin.stats")
        assert stats["protocol"]["errors"] >= len(messages)
    assert not S.failures, S.failures[:3]
