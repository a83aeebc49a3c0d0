"""The game's lifecycle: every state and every allowed transition, in one table.

    lobby ──start──▶ running ◀──resume── paused
                       │  ╰──────pause─────▶ │
                  end_round               end_round
                       ▼                     │
                   round_over ◀──────────────╯
                       │ next_round (more rounds) ──▶ running
                       │ finish
                       ▼
                   game_over

`finish` is also allowed from lobby, running and paused (the instructor ends the game
early). Anything not in `TRANSITIONS` is refused with `LifecycleError`, which names the
state and the action; a refused action changes nothing.
"""

from __future__ import annotations

from typing import Literal

State = Literal["lobby", "running", "paused", "round_over", "game_over"]
Action = Literal["start", "pause", "resume", "end_round", "next_round", "finish"]

STATES: tuple[State, ...] = ("lobby", "running", "paused", "round_over", "game_over")

TRANSITIONS: dict[tuple[State, Action], State] = {
    ("lobby", "start"): "running",
    ("running", "pause"): "paused",
    ("paused", "resume"): "running",
    ("running", "end_round"): "round_over",
    ("paused", "end_round"): "round_over",
    ("round_over", "next_round"): "running",
    ("round_over", "finish"): "game_over",
    ("lobby", "finish"): "game_over",
    ("running", "finish"): "game_over",
    ("paused", "finish"): "game_over",
}

# in these states the exchange is open for trading (nothing halted by the game)
TRADING: frozenset[State] = frozenset({"running"})


class LifecycleError(ValueError):
    def __init__(self, state: State, action: str) -> None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == state)
        super().__init__(
            f"cannot {action} while the game is {state.replace('_', ' ')}"
            + (f" (possible: {', '.join(allowed)})" if allowed else "")
        )
        self.state = state
        self.action = action


def next_state(state: State, action: str) -> State:
    """The state after `action`, or `LifecycleError`. O(1)."""
    new = TRANSITIONS.get((state, action))  # type: ignore[arg-type]
    if new is None:
        raise LifecycleError(state, action)
    return new


def allowed_actions(state: State) -> list[str]:
    return sorted(a for (s, a) in TRANSITIONS if s == state)
