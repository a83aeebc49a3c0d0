"""Durability: the server is killed (SIGKILL) during a round and started again on the
same database; students come back to the same accounts, the round resumes where it was."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from exchange.testing import Probe

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "crash-admin"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, game: Path, db: Path, ws: int, http: int) -> None:
        self.args = [
            sys.executable, "-m", "exchange.cli", "class", "run", str(game),
            "--db", f"sqlite:///{db}", "--port", str(ws), "--http-port", str(http),
            "--admin-token", ADMIN, "--no-bots", "--out", str(db.parent / "out"),
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> None:
        env = {**os.environ, "MARGINCALL_MASTER_KEY": "11" * 32}
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("server exited:\n" + "".join(self.lines))
            self.lines.append(line)
            if line.startswith("WS "):
                return
        raise AssertionError("server did not start:\n" + "".join(self.lines))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
