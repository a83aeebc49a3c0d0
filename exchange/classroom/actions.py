"""The game's actions: what the instructor does to a game (shock, headline, hold a
symbol, reveal the leaderboard, freeze or kick a student) and how students come in (join,
a roster's bulk join, rejoin). A room of `Classroom` (`controller.py`), which owns the
state these read and the records they append: each action is validated first (a
`GameError` names what is wrong and changes nothing), then journaled as a game record
before it takes effect, under the controller's lock where it touches the exchange."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E

from .gamefile import Game
from .roster import Roster, RosterError, Student
from .scenario import NS, IndexPath, to_ticks

__all__ = ["Actions", "GameError"]


class GameError(ValueError):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class Actions:
    """The instructor's and the students' actions, on `Classroom`'s state."""

    game: Game
    roster: Roster
    state: str
    round: int
    path: IndexPath | None
    on_kick: Callable[[int], Any] | None
    _lock: asyncio.Lock
    _record: Callable[..., Awaitable[None]]
    _submit: Callable[[C.Command], Awaitable[list[E.Event]]]
    _sync_halts: Callable[[], Awaitable[None]]
    _apply_limits: Callable[[int, bool], Awaitable[None]]
    _ensure_account: Callable[[int], Awaitable[None]]
    _headline_rec: Callable[[str, str], dict[str, Any]]
    elapsed_ns: Callable[[], int]

    # ================================================================ instructor

    async def shock(self, size_pct: Decimal, over_s: float) -> None:
        if self.state not in ("running", "paused") or self.path is None:
            raise GameError("bad_state", "A shock needs a round in play.")
        if not Decimal(-90) <= size_pct <= Decimal(90) or size_pct == 0:
            raise GameError("bad_size", "size: must be a percentage between -90 and 90, not 0")
        if not 0 <= over_s <= 3600:
            raise GameError("bad_speed", "over: must be between 0 and 3600 seconds")
        speed = self.game.rounds[self.round].clock_speed
        async with self._lock:
            await self._record(
                {
                    "kind": "shock",
                    "round": self.round,
                    "at_ns": self.elapsed_ns(),
                    "size": str(size_pct),
                    "over_ns": int(over_s * speed * NS),
                }
            )
            if self.state == "running" and over_s == 0:
                sym = self.game.rounds[self.round].scenario.symbol
                inst = next(i for i in self.game.instruments if i.symbol == sym)
                price = to_ticks(self.path.price_at(self.elapsed_ns()), inst.tick_size)
                await self._submit(C.SetIndexPrice(symbol=sym, price=price))

    async def headline(self, text: str) -> None:
        text = " ".join(str(text).split())[:280]
        if not text:
            raise GameError("bad_text", "text: the headline is empty")
        await self._record(self._headline_rec(text, "instructor"))

    async def hold(self, symbol: str, held: bool) -> None:
        """Halt `symbol` until the instructor resumes it (`held`), or release that halt.
        A halt needs a round in play (running or paused): in the lobby, between rounds
        and at game over every symbol is halted anyway. A release is always accepted."""
        if symbol not in self.game.symbols():
            raise GameError("bad_symbol", f"symbol: {symbol!r} is not in this game")
        if held and self.state not in ("running", "paused"):
            raise GameError("bad_state", f"Halting {symbol} needs a round in play.")
        async with self._lock:
            await self._record({"kind": "hold", "symbol": symbol, "held": held, "by": "instructor"})
            await self._sync_halts()

    async def reveal(self, revealed: bool) -> None:
        await self._record({"kind": "reveal", "revealed": bool(revealed)})

    def student(self, sid: Any) -> Student:
        s = self.roster.students.get(sid) if isinstance(sid, int) else None
        if s is None:
            raise GameError("unknown_student", "No such student.")
        return s

    async def freeze(self, sid: int, frozen: bool) -> None:
        s = self.student(sid)
        await self._record({"kind": "frozen", "student": s.id, "frozen": bool(frozen)})
        await self._refresh_limits(s.account)

    async def kick(self, sid: int) -> None:
        s = self.student(sid)
        await self._record({"kind": "kicked", "student": s.id})
        await self._refresh_limits(s.account)
        if self.on_kick is not None:
            self.on_kick(s.account)

    async def _refresh_limits(self, account: int) -> None:
        members = self.roster.accounts().get(account, [])
        await self._apply_limits(account, any(m.frozen or m.kicked for m in members))

    # ================================================================ students

    async def join(self, nickname: Any, team: Any = None) -> tuple[Student, str]:
        if self.state == "game_over":
            raise GameError("over", "The game is over.")
        async with self._lock:
            try:
                rec, secret = self.roster.plan_join(nickname, team)
            except RosterError as e:
                raise GameError(e.code, e.msg) from None
            await self._record(rec)
            await self._ensure_account(rec["account"])
            if rec["new_account"]:
                await self._apply_limits(rec["account"], False)
            return self.roster.students[rec["student"]], secret

    async def import_roster(self, text: str) -> tuple[list[tuple[Student, str]], list[Student]]:
        """Create the roster's students: ((student, personal code) for each new one, the
        students skipped because they already had a join slip; see `Roster.plan_csv`)."""
        async with self._lock:
            try:
                planned, already = self.roster.plan_csv(text)
            except RosterError as e:
                raise GameError(e.code, e.msg) from None
            if planned:
                await self._record(*(rec for rec, _ in planned))
            for rec, _ in planned:
                if rec["new_account"]:
                    await self._ensure_account(rec["account"])
                    await self._apply_limits(rec["account"], False)
            made = [(self.roster.students[rec["student"]], secret) for rec, secret in planned]
            return made, already

    def rejoin(self, secret: Any) -> Student:
        try:
            return self.roster.rejoin(secret)
        except RosterError as e:
            raise GameError(e.code, e.msg) from None
