"""Shared helpers: a small game, a fast fake wall clock, a controller on a runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from exchange.classroom import parse_game
from exchange.classroom.controller import Classroom
from exchange.classroom.gamefile import Game
from exchange.classroom.journal import MemoryJournal
from exchange.core.engine import Exchange
from exchange.core.liquidation import BinanceLiquidation
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
    return Exchange(game.instruments, policy=BinanceLiquidation(adl=game.adl))


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
