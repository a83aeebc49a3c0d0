"""Shared helpers: a small game, a fast fake wall clock, a controller on a runtime."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from exchange.classroom import parse_game
from exchange.classroom.controller import Classroom
from exchange.classroom.gamefile import Game
from exchange.classroom.journal import MemoryJournal
from exchange.core.engine import Exchange
from exchange.runtime import Runtime

GAME = """
name = "Test game"
starting_balance = "10000"
rank_by = "return"
[[instruments]]
symbol = "BTCUSDT"
initial_index = "50000"
mark_method = "index"
max_leverage = 50
[limits]
max_open_orders = 5
max_leverage = 50
[liquidation]
insurance_fund = "1000"
[join]
teams = true
[[rounds]]
name = "one"
duration = "20s"
clock_speed = 60
[rounds.scenario]
headlines = [{ at = "2s", text = "Hello class" }]
[[rounds]]
name = "two"
duration = "20s"
clock_speed = 60
reset_positions = true
"""


class FakeWall:
    """Each reading is `step` seconds after the previous one: a round of N seconds
    passes in about N / step ticks, however slow the machine is."""

    def __init__(self, step: float = 1.0) -> None:
        self.t = 0.0
        self.step = step
        self.frozen = False

    def __call__(self) -> float:
        if not self.frozen:
            self.t += self.step
        return self.t


def exchange_for(game: Game) -> Exchange:
    return Exchange(game.instruments, adl=game.adl)


@contextlib.asynccontextmanager
async def running_game(
    text: str = GAME, journal: Any = None, wall: FakeWall | None = None
) -> AsyncIterator[Classroom]:
    game = parse_game(text)
    rt = Runtime(exchange_for(game), clock="stepped", start_ts=10**18)
    await rt.start()
    c = Classroom(game, rt, journal or MemoryJournal(), tick=0.01, wall=wall or FakeWall())
    await c.open()
    try:
        yield c
    finally:
        await c.close()
        await rt.stop()


ROOT = Path(__file__).resolve().parents[2]
ADMIN = "class-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, game: Path, db: Path, ws: int, http: int, *, bots: bool = False) -> None:
        self.args = [
            sys.executable, "-m", "exchange.cli", "class", "run", str(game),
            "--db", f"sqlite:///{db}", "--port", str(ws), "--http-port", str(http),
            "--admin-token", ADMIN, "--bots" if bots else "--no-bots", "--out", str(db.parent / "out"),
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
