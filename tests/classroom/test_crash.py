"""Durability: the server is killed (SIGKILL) during a round and started again on the
same database; students come back to the same accounts, the round resumes where it was."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from exchange.classroom.journal import classroom_journal
from exchange.core import commands as C
from exchange.core.engine import FUND
from exchange.store import journal as J
from exchange.store import recover
from exchange.store.db import Database
from exchange.testing import Probe
from tests.classroom.helpers import ADMIN, Server, free_port

GAME = """
name = "Crash test"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "index"
[[rounds]]
duration = "10m"
clock_speed = 10
[rounds.scenario]
volatility = "1"
seed = 5
"""


async def overview(s: aiohttp.ClientSession, base: str) -> dict:  # type: ignore[type-arg]
    async with s.get(f"{base}/class/api/admin/overview", headers={"X-Admin-Token": ADMIN}) as r:
        assert r.status == 200
        return await r.json()  # type: ignore[no-any-return]


async def test_kill_during_a_round_and_come_back(tmp_path: Path) -> None:
    game = tmp_path / "game.toml"
    game.write_text(GAME)
    ws_port, http_port = free_port(), free_port()
    srv = Server(game, tmp_path / "game.db", ws_port, http_port)
    base, ws = f"http://127.0.0.1:{http_port}", f"ws://127.0.0.1:{ws_port}"
    srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            code = (await overview(s, base))["joinCode"]
            joined = []
            for nick in ("Ada", "Bob"):
                async with s.post(
                    f"{base}/class/api/join", json={"code": code, "nickname": nick}
                ) as r:
                    joined.append(await r.json())
            ada, bob = joined
            async with s.post(
                f"{base}/class/api/admin/action",
                json={"action": "start"},
                headers={"X-Admin-Token": ADMIN},
            ) as r:
                assert r.status == 200
            async with Probe(ws) as pa, Probe(ws) as pb:
                await pa.call("session.logon", token=ada["token"])
                await pb.call("session.logon", token=bob["token"])
                mark = (await pa.call("ticker", symbol="BTCUSDT"))["mark"]
                await pb.call(
                    "order.place",
                    symbol="BTCUSDT",
                    side="SELL",
                    type="LIMIT",
                    quantity="0.5",
                    price=mark,
                    timeInForce="GTC",
                )
                await pa.call(
                    "order.place", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.5"
                )
                before = await pa.call("account.status")
            await asyncio.sleep(1.5)
            ov = await overview(s, base)
            assert ov["status"]["state"] == "running"
            left_before = ov["status"]["secondsLeft"]
        srv.kill()
        srv.start()
        async with aiohttp.ClientSession() as s:
            ov = await overview(s, base)
            assert ov["joinCode"] == code and ov["status"]["state"] == "running"
            assert ov["status"]["round"] == 1
            # the round resumes where it was (the clock stood still while the server was down)
            assert left_before - 3 <= ov["status"]["secondsLeft"] <= left_before
            # a page that reloads: the rejoin secret gives the same account back
            async with s.post(f"{base}/class/api/rejoin", json={"rejoin": ada["rejoin"]}) as r:
                again = await r.json()
            assert again["account"] == ada["account"]
            async with Probe(ws) as pa:
                # and the old token, stored hashed, still logs on after the restart
                await pa.call("session.logon", token=ada["token"])
                after = await pa.call("account.status")
            pos_before = [p for p in before["positions"] if p["symbol"] == "BTCUSDT"][0]
            pos_after = [p for p in after["positions"] if p["symbol"] == "BTCUSDT"][0]
            assert pos_after["positionAmt"] == pos_before["positionAmt"] == "0.500"
            assert pos_after["entryPrice"] == pos_before["entryPrice"]
            await asyncio.sleep(1.0)
            assert (await overview(s, base))["status"]["secondsLeft"] < ov["status"]["secondsLeft"]
    finally:
        srv.stop()


BOT_GAME = """
name = "Bots restart"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "index"
[[bots]]
kind = "market_maker"
count = 1
size = "0.05"
seed = 1
[[bots]]
kind = "noise"
count = 2
size = "0.02"
seed = 2
[[rounds]]
duration = "10m"
clock_speed = 10
[rounds.scenario]
volatility = "1"
seed = 5
"""


def _commands(url: str) -> list[Any]:
    """The exchange journal's commands, in order."""
    db = Database(url, immediate=False)
    try:
        out = []
        for item in J.read_commands(db):
            assert not isinstance(item, J.Damage), item
            out.append(item[1])
        return out
    finally:
        db.dispose()


def _bot_records(url: str) -> list[dict[str, Any]]:
    db = Database(url, immediate=False)
    try:
        with db.connect() as conn:
            rows = conn.execute(
                select(classroom_journal.c.payload).order_by(classroom_journal.c.idx)
            ).all()
    finally:
        db.dispose()
    return [r for r in (json.loads(row[0]) for row in rows) if r["kind"].startswith("bot")]


async def _wait_for_orders(url: str, accounts: set[int], after: int) -> list[Any]:
    """Wait until each of `accounts` has placed an order after command `after`."""
    for _ in range(300):
        cmds = _commands(url)
        placed = {c.account for c in cmds[after:] if isinstance(c, C.PlaceOrder)}
        if accounts <= placed:
            return cmds
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bots {sorted(accounts)} did not all trade; placed: {placed}")


async def test_bots_come_back_on_their_accounts(tmp_path: Path) -> None:
    """Kill the server while the bots trade, start it again on the same database: the
    bots trade on the same accounts, no account is created and nothing is deposited
    again, and money is conserved."""
    game = tmp_path / "game.toml"
    game.write_text(BOT_GAME)
    ws_port, http_port = free_port(), free_port()
    url = f"sqlite:///{tmp_path / 'game.db'}"
    srv = Server(game, tmp_path / "game.db", ws_port, http_port, bots=True)
    base = f"http://127.0.0.1:{http_port}"
    srv.start()
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{base}/class/api/admin/action",
                json={"action": "start"},
                headers={"X-Admin-Token": ADMIN},
            ) as r,
        ):
            assert r.status == 200
        for _ in range(300):  # the bots start after the server has printed its address
            records = _bot_records(url)
            if sum(r["kind"] == "bot_funded" for r in records) >= 3:
                break
            await asyncio.sleep(0.2)
        bots = {r["bot"]: r["account"] for r in records if r["kind"] == "bot"}
        assert sorted(bots) == ["0.0", "1.0", "1.1"]
        assert sorted(r["bot"] for r in records if r["kind"] == "bot_funded") == sorted(bots)
        accounts = set(bots.values())
        await _wait_for_orders(url, accounts, 0)
        srv.kill()

        before = _commands(url)
        created = [c.account for c in before if isinstance(c, C.CreateAccount)]
        deposits = [(c.account, c.amount) for c in before if isinstance(c, C.Deposit)]
        assert sorted(created) == sorted(accounts)
        mm = bots["0.0"]
        assert sorted(deposits) == sorted(
            [(mm, 5_000_000 * 10**8)] + [(bots[b], 200_000 * 10**8) for b in ("1.0", "1.1")]
        )
        ex, _ = recover(url)
        traded = {a for a in accounts if ex.accounts[a].seats}
        assert traded, "no bot has a position or an order before the crash"

        srv.start()
        after = await _wait_for_orders(url, accounts, len(before))
        srv.stop()
        new = after[len(before) :]
        assert not [c for c in new if isinstance(c, C.CreateAccount)]
        assert not [c for c in new if isinstance(c, C.Deposit | C.Withdraw)]
        placed = {c.account for c in new if isinstance(c, C.PlaceOrder)}
        assert placed == accounts  # the same accounts, and only they
        assert _bot_records(url) == records  # nothing journaled again
        ex, _ = recover(url)
        held, net = ex.conservation("USDT")
        assert held == net == 5_400_000 * 10**8
        assert set(ex.accounts) - {FUND} == accounts
    finally:
        srv.stop()
