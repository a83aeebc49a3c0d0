"""Durability: the server is killed (SIGKILL) during a round and started again on the
same database; students come back to the same accounts, the round resumes where it was."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

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
