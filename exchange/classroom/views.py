"""What the pages show of a game: its status, and the students' risk table."""

from __future__ import annotations

from typing import Any, Protocol

from exchange import units
from exchange.core.numbers import RATE_ONE
from exchange.runtime import Runtime

from .gamefile import Game
from .leaderboard import equity_of
from .roster import Roster
from .scenario import NS, IndexPath


class Classroom(Protocol):
    """What these views read of a game (`controller.Classroom`, which calls them: declared
    here by its shape, so the two modules do not import each other)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def game(self) -> Game: ...
    @property
    def state(self) -> str: ...
    @property
    def round(self) -> int: ...
    @property
    def path(self) -> IndexPath | None: ...
    @property
    def held(self) -> dict[str, str]: ...
    @property
    def headlines(self) -> list[dict[str, Any]]: ...
    @property
    def revealed(self) -> bool: ...
    @property
    def roster(self) -> Roster: ...

    def elapsed_ns(self) -> int: ...


MESSAGES: dict[str, str] = {
    "lobby": "Waiting for the instructor to start the game.",
    "running": "",
    "paused": "Trading is paused by the instructor: orders are refused until it resumes.",
    "round_over": "The round is over: trading is closed until the next round starts.",
    "game_over": "The game is over. Thank you for playing!",
}


def status(g: Classroom) -> dict[str, Any]:
    ex = g.runtime.exchange
    rnd = g.game.rounds[g.round] if g.round >= 0 else None
    left = None  # no countdown once the round is over (it may have been ended early)
    if rnd is not None and g.path is not None and g.state in ("running", "paused"):
        left = max(0.0, (g.path.duration_ns - g.elapsed_ns()) / NS / rnd.clock_speed)
    return {
        "game": g.game.name,
        "state": g.state,
        "round": g.round + 1,
        "rounds": len(g.game.rounds),
        "roundName": rnd.name if rnd else None,
        "secondsLeft": None if left is None else round(left, 1),
        "clockSpeed": rnd.clock_speed if rnd else None,
        "symbols": [
            {"symbol": s, "halted": ex.markets[s].halted, "heldBy": g.held.get(s)}
            for s in g.game.symbols()
        ],
        "headlines": [
            {"text": h["text"], "round": h["round"] + 1, "source": h["source"]}
            for h in g.headlines[-20:]
        ],
        "revealed": g.revealed,
        "students": len(g.roster.students),
        "message": MESSAGES[g.state],
    }


def danger_table(g: Classroom) -> list[dict[str, Any]]:
    """Every student account's positions, nearest to liquidation first."""
    ex = g.runtime.exchange
    rows = []
    for account, members in g.roster.accounts().items():
        view = ex.account_view(account)
        positions = [p for p in view.positions if p.qty] if view is not None else []
        worst = max((p.margin_ratio for p in positions), default=0)
        rows.append(
            {
                "account": account,
                "name": g.roster.label(account),
                "students": [
                    m.public() | {"frozen": m.frozen, "kicked": m.kicked} for m in members
                ],
                "equity": equity_of(ex, account),
                "marginRatio": worst,
                "marginRatioPct": f"{worst * 100 / RATE_ONE:.2f}",
                "positions": [_position(ex.instruments[p.symbol], p) for p in positions],
            }
        )
    rows.sort(key=lambda r: (-r["marginRatio"], r["name"].casefold()))
    return rows


def _position(inst: Any, p: Any) -> dict[str, Any]:
    """One position in the asset's units, as the web app shows it (quantity in the base
    asset, prices in the quote asset; no liquidation price is null)."""
    return {
        "symbol": p.symbol,
        "qty": units.lots_to_str(inst, p.qty),
        "mark": units.ticks_to_str(inst, p.mark),
        "liquidationPrice": units.ticks_to_str(inst, p.liquidation_price)
        if p.liquidation_price
        else None,
        "leverage": p.leverage,
        "marginRatio": p.margin_ratio,
        "unrealizedPnl": units.quanta_to_str(p.unrealized_pnl),
    }
