"""The game controller: runs a `Game` on a running exchange.

It drives the exchange only through the runtime's command queue (index prices, halts,
the stepped clock, accounts, deposits, account limits, settlement), so every effect is
in the exchange's own journal. Everything else about the game is a record in the game
journal (`journal.py`), appended and awaited before it takes effect; `open()` replays
the records, so after a crash and restart the game continues where it was: same join
code, same roster and accounts, same round, same point in the round (engine time only
moves while a round runs, and the scenario is a pure function of it).

Pause, round over, lobby and game over halt every symbol (`HaltSymbol`: no new orders,
no amendments, no stop triggers) and stop the clock (nothing advances the stepped
clock then, so funding, the scenario and the round timer all stand still). What must
be halted is computed, never toggled (`_sync_halts`): a symbol trades exactly when the
game runs and neither the instructor nor the scenario holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.runtime import Runtime

from . import lifecycle as L
from . import views
from .actions import Actions, GameError
from .gamefile import Game
from .leaderboard import Tracker, equity_of, game_standings, standings
from .roster import Roster
from .scenario import NS, IndexPath, LiveShock, to_ticks

log = logging.getLogger("margincall.classroom")

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
QUANTA = Decimal(10**8)


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


def quanta(amount: Decimal) -> int:
    return int(amount * QUANTA)


class Classroom(Actions):
    """One game. `await open()`, the instructor and student methods, `await close()`."""

    def __init__(
        self,
        game: Game,
        runtime: Runtime,
        journal: Any,
        *,
        tick: float = 0.2,
        sample_every: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
        on_kick: Callable[[int], None] | None = None,
    ) -> None:
        self.game = game
        self.runtime = runtime
        self.journal = journal
        self.tick = tick
        self.sample_every = sample_every
        self.wall = wall
        self.on_kick = on_kick
        self.state: L.State = "lobby"
        self.round = -1
        self.round_start_ts = 0
        self.start_prices: dict[str, str] = {}
        self.path: IndexPath | None = None
        self.join_code = ""
        self.revealed = game.show_leaderboard
        self.held: dict[str, str] = {}  # symbol → who holds it halted: instructor | scenario
        self.roster = Roster(game.max_students, game.teams)
        self.tracker = Tracker({i.symbol: i.lot_value for i in game.instruments})
        self.headlines: list[dict[str, Any]] = []
        self.liquidations: list[dict[str, Any]] = []
        self.cascades: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.results: dict[int, list[dict[str, Any]]] = {}
        self.round_starts: dict[int, dict[int, int]] = {}  # round → account → equity
        self.board: list[dict[str, Any]] = []
        self.board_updates = 0
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_wall = 0.0
        self._last_sample = 0.0
        self._closing = False
        self._sub: Any = None
        self._backlog: list[dict[str, Any]] = []
        self._backlog_wake = asyncio.Event()

    # ================================================================ opening

    async def open(self) -> None:
        records = self.journal.load()
        if records:
            for r in records:
                self._apply(r)
            log.info(
                "classroom: resumed %s at %s, round %d", self.game.name, self.state, self.round
            )
        else:
            rec = {"kind": "created", "name": self.game.name, "join_code": new_join_code()}
            await self._record(rec)
        await self._ensure_exchange()
        self._sub = self.runtime.subscribe("classroom", maxsize=1_000_000, policy="drop")
        self._tasks.append(asyncio.create_task(self._consume(), name="classroom-events"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="classroom-clock"))
        self._tasks.append(asyncio.create_task(self._flush_backlog(), name="classroom-journal"))
        self._tasks.append(asyncio.create_task(self._sampler(), name="classroom-leaderboard"))
        self._last_wall = self.wall()

    async def close(self) -> None:
        self._closing = True
        if self._sub is not None:
            self._sub.close()
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        if self._backlog:
            await self.journal.append(list(self._backlog))
            self._backlog.clear()

    def _apply(self, r: dict[str, Any]) -> None:
        """Replay one record into the in-memory game (never touches the exchange)."""
        k = r["kind"]
        if k == "created":
            self.join_code = r["join_code"]
        elif k in ("joined", "kicked", "frozen"):
            self.roster.apply(r)
            if k == "joined" and r["account"] not in self.tracker.stats:
                start = quanta(self.game.starting_balance)
                self.tracker.add(r["account"], start, self.round_start_ts)
        elif k == "transition":
            self.state = r["state"]
        elif k == "round_started":
            self.round = r["round"]
            self.round_start_ts = r["ts"]
            self.start_prices = r["start_prices"]
            self.state = "running"
            self.path = self._make_path()
            self.round_starts[r["round"]] = {int(a): e for a, e in r["equity"].items()}
            self.tracker.begin_round(self.round_starts[r["round"]], r["ts"])
            self.held = {s: w for s, w in self.held.items() if w == "instructor"}
        elif k == "shock":
            if self.path is not None and r["round"] == self.round:
                self.path.add_shock(LiveShock(r["at_ns"], Decimal(r["size"]), r["over_ns"]))
        elif k == "headline":
            self.headlines.append(r)
        elif k == "hold":
            if r["held"]:
                self.held[r["symbol"]] = r["by"]
            else:
                self.held.pop(r["symbol"], None)
        elif k == "reveal":
            self.revealed = r["revealed"]
        elif k == "sample":
            self.samples.append(r)
            if r["round"] != self.round:
                return  # journaled late, after the next round began
            for a, eq in r["equity"].items():
                s = self.tracker.stats.get(int(a))
                if s is not None:
                    s.record(r["ts"], eq)
            for a, (liq, adl, fees, vol) in r["counts"].items():
                s = self.tracker.stats.get(int(a))
                if s is not None:
                    s.liquidations, s.adl_hits, s.fees, s.volume = liq, adl, fees, vol
        elif k == "liquidation":
            self.liquidations.append(r)
        elif k == "cascade":
            self.cascades.append(r)
        elif k == "round_result":
            self.results[r["round"]] = r["standings"]

    async def _record(self, *records: dict[str, Any]) -> None:
        await self.journal.append(list(records))
        for r in records:
            self._apply(r)

    def _make_path(self) -> IndexPath:
        rnd = self.game.rounds[self.round]
        sym = rnd.scenario.symbol
        return IndexPath(rnd, Decimal(self.start_prices.get(sym, "1")))

    async def _submit(self, cmd: C.Command) -> list[E.Event]:
        return await self.runtime.submit(cmd, owned=True)

    async def _ensure_exchange(self) -> None:
        """Make the exchange match the game (idempotent: after a crash it finishes what
        a record began): the fund, the first index, the accounts, halts, limits."""
        ex = self.runtime.exchange
        if self.game.insurance_fund > 0 and not ex.insurance_fund("USDT"):
            await self._submit(
                C.FundInsurance(asset="USDT", amount=quanta(self.game.insurance_fund))
            )
        for inst in self.game.instruments:
            if ex.markets[inst.symbol].index <= 0:
                price = to_ticks(self.game.initial_index[inst.symbol], inst.tick_size)
                await self._submit(C.SetIndexPrice(symbol=inst.symbol, price=price))
        for account, members in self.roster.accounts().items():
            await self._ensure_account(account)
            await self._apply_limits(account, any(m.frozen or m.kicked for m in members))
        if self.state == "running" and ex.now == self.round_start_ts and self.round >= 0:
            await self._reset_round()  # the crash came between the round's record and its reset
        await self._sync_halts()

    async def _ensure_account(self, account: int) -> None:
        ex = self.runtime.exchange
        if account not in ex.accounts:
            await self._submit(C.CreateAccount(account=account))
        a = ex.accounts[account]
        if not a.seats and not any(a.available.values()) and not any(a.reserved.values()):
            amount = quanta(self.game.starting_balance)
            await self._submit(C.Deposit(account=account, asset="USDT", amount=amount))

    async def _apply_limits(self, account: int, frozen: bool) -> None:
        lim = self.game.limits
        await self._submit(
            C.SetAccountLimits(
                account=account,
                max_position_notional=quanta(lim.max_position_notional)
                if lim.max_position_notional
                else 0,
                max_open_orders=lim.max_open_orders or 0,
                max_leverage=lim.max_leverage or 0,
                frozen=frozen,
            )
        )

    async def _sync_halts(self) -> None:
        ex = self.runtime.exchange
        for sym in self.game.symbols():
            want = self.state not in L.TRADING or sym in self.held
            if ex.markets[sym].halted != want:
                await self._submit(C.HaltSymbol(symbol=sym) if want else C.ResumeSymbol(symbol=sym))

    # ================================================================ lifecycle

    async def act(self, action: str) -> None:
        """Apply one lifecycle action (see lifecycle.py); `next_round` from a round in
        play ends it, from `round_over` starts the next one or, after the last, finishes."""
        async with self._lock:
            await self._act(action)

    async def _act(self, action: str) -> None:
        last = self.round + 1 >= len(self.game.rounds)
        if action == "next_round" and self.state in ("running", "paused"):
            action = "end_round"
        elif action == "next_round" and self.state == "round_over" and last:
            action = "finish"
        try:
            new = L.next_state(self.state, action)
        except L.LifecycleError as e:
            raise GameError("bad_state", str(e)) from None
        if action in ("start", "next_round"):
            await self._begin_round(self.round + 1)
        else:
            if self.state in ("running", "paused") and new in ("round_over", "game_over"):
                await self._take_sample(force=True)
                result = {"kind": "round_result", "round": self.round}
                await self._record(result | {"standings": self.leaderboard()})
            await self._record(
                {
                    "kind": "transition",
                    "action": action,
                    "state": new,
                    "ts": self.runtime.exchange.now,
                }
            )
        self._last_wall = self.wall()
        await self._sync_halts()

    async def _begin_round(self, index: int) -> None:
        rnd = self.game.rounds[index]
        ex = self.runtime.exchange
        prices = {}
        for inst in self.game.instruments:
            m = ex.markets[inst.symbol]
            current = Decimal(m.index) * Decimal(inst.tick_size)
            if index == 0 or rnd.reset_positions:
                current = self.game.initial_index[inst.symbol]
            prices[inst.symbol] = str(current)
        sc = rnd.scenario
        if sc.start_price is not None:
            prices[sc.symbol] = str(sc.start_price)
        accounts = list(self.roster.accounts())
        start = quanta(self.game.starting_balance)
        reset = index == 0 or rnd.reset_positions
        equity = {str(a): (start if reset else equity_of(ex, a)) for a in accounts}
        await self._record(
            {
                "kind": "round_started",
                "round": index,
                "ts": ex.now,
                "start_prices": prices,
                "reset": reset,
                "equity": equity,
            }
        )
        await self._reset_round()

    async def _reset_round(self) -> None:
        """Settle positions and reset wallets if the round says so, set the first index.
        Idempotent: running it twice leaves the same state."""
        ex = self.runtime.exchange
        rnd = self.game.rounds[self.round]
        if self.round > 0 and rnd.reset_positions:
            for sym in self.game.symbols():
                await self._submit(C.SettlePositions(symbol=sym))
            start = quanta(self.game.starting_balance)
            for account in self.roster.accounts():
                have = ex.accounts[account].available.get("USDT", 0)
                if have > start:
                    await self._submit(
                        C.Withdraw(account=account, asset="USDT", amount=have - start)
                    )
                elif have < start:
                    await self._submit(
                        C.Deposit(account=account, asset="USDT", amount=start - have)
                    )
        assert self.path is not None
        sym = rnd.scenario.symbol
        for inst in self.game.instruments:
            p = (
                self.path.price_at(0)
                if inst.symbol == sym
                else Decimal(self.start_prices[inst.symbol])
            )
            await self._submit(
                C.SetIndexPrice(symbol=inst.symbol, price=to_ticks(p, inst.tick_size))
            )

    # ================================================================ the clock

    def elapsed_ns(self) -> int:
        return max(0, self.runtime.exchange.now - self.round_start_ts) if self.round >= 0 else 0

    async def _ticker(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.tick)
            try:
                async with self._lock:
                    await self._step()
            except Exception:
                log.exception("classroom tick failed")

    async def _step(self) -> None:
        now = self.wall()
        dt = min(now - self._last_wall, 1.0)  # a stalled loop never makes the market jump
        self._last_wall = now
        if self.state != "running" or self.path is None:
            return
        rnd = self.game.rounds[self.round]
        old = self.elapsed_ns()
        new = min(old + int(dt * rnd.clock_speed * NS), self.path.duration_ns)
        if new > old:
            # the clock and the index in one engine batch: one durable commit, not two
            inst = next(i for i in self.game.instruments if i.symbol == rnd.scenario.symbol)
            price = to_ticks(self.path.price_at(new), inst.tick_size)
            sent = [self.runtime.submit_future(C.AdvanceClock(ts=self.round_start_ts + new))]
            if price != self.runtime.exchange.markets[inst.symbol].index:
                sent.append(
                    self.runtime.submit_future(C.SetIndexPrice(symbol=inst.symbol, price=price))
                )
            await asyncio.gather(*sent)
            await self._scheduled(old, new)
        if new >= self.path.duration_ns:
            await self._act("end_round")

    async def _scheduled(self, old: int, new: int) -> None:
        """Headlines and halts whose time is in (old, new]."""
        rnd = self.game.rounds[self.round]
        speed = rnd.clock_speed * NS
        for h in rnd.scenario.headlines:
            if old < int(h.at * speed) <= new or (old == 0 and h.at == 0):
                await self._record(self._headline_rec(h.text, "scenario"))
        changed = False
        for h in rnd.scenario.halts:
            at, until = int(h.at * speed), int((h.at + h.duration) * speed)
            if old < at <= new or (old == 0 and h.at == 0):
                await self._record(
                    {"kind": "hold", "symbol": h.symbol, "held": True, "by": "scenario"}
                )
                changed = True
            if h.duration and old < until <= new and self.held.get(h.symbol) == "scenario":
                await self._record(
                    {"kind": "hold", "symbol": h.symbol, "held": False, "by": "scenario"}
                )
                changed = True
        if changed:
            await self._sync_halts()

    def _headline_rec(self, text: str, source: str) -> dict[str, Any]:
        return {
            "kind": "headline",
            "round": self.round,
            "ts": self.runtime.exchange.now,
            "elapsed_s": self.elapsed_ns()
            / NS
            / max(1, self.game.rounds[max(0, self.round)].clock_speed),
            "text": text,
            "source": source,
        }

    async def _sampler(self) -> None:
        """The leaderboard, once every `sample_every` s: read straight from the exchange
        (no engine round trip), so a busy engine queue never slows it. On a fixed
        cadence: a late wake-up or a slow sample does not push the next one back (a
        sample missed entirely is skipped, not made up in a burst)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self._closing:
            due += self.sample_every
            now = loop.time()
            if due < now:
                due = now
            await asyncio.sleep(due - now)
            try:
                await self._take_sample()
            except Exception:
                log.exception("classroom: sampling failed")

    async def _take_sample(self, force: bool = False) -> None:
        if self.round < 0 or (self.state not in ("running", "paused") and not force):
            return
        self._last_sample = self.wall()
        ex = self.runtime.exchange
        eq = {str(a): equity_of(ex, a) for a in self.tracker.stats}
        counts = {
            str(a): [s.liquidations, s.adl_hits, s.fees, s.volume]
            for a, s in self.tracker.stats.items()
        }
        marks = {sym: [m.mark, m.index, m.last] for sym, m in ex.markets.items()}
        rec = {"kind": "sample", "round": self.round, "ts": ex.now, "equity": eq}
        rec |= {"counts": counts, "marks": marks}
        # samples only describe the past: applied now, journaled in the background, in
        # order (a sample lost in a crash costs one point of an equity curve)
        self._apply(rec)
        self._backlog.append(rec)
        self._backlog_wake.set()
        self.board = self.leaderboard()
        self.board_updates += 1

    async def _flush_backlog(self) -> None:
        while True:
            await self._backlog_wake.wait()
            self._backlog_wake.clear()
            while self._backlog:
                batch = list(self._backlog)
                self._backlog.clear()
                try:
                    await self.journal.append(batch)
                except Exception:
                    log.exception("classroom: journaling samples failed")

    # ================================================================ events

    async def _consume(self) -> None:
        async for batch in self._sub:
            try:
                liquidated = self.tracker.observe(batch)
                recs = []
                for ev in batch:
                    t = type(ev)
                    if t is E.PositionLiquidated:
                        recs.append(self._liq_rec(ev))  # type: ignore[arg-type]
                    elif t is E.CascadeEnded:
                        recs.append(
                            {
                                "kind": "cascade",
                                "round": self.round,
                                "cascade": ev.cascade_id,  # type: ignore[attr-defined]
                                "symbol": ev.symbol,  # type: ignore[attr-defined]
                                "ts": ev.ts,
                                "count": ev.liquidations,  # type: ignore[attr-defined]
                                "depth": ev.generations,  # type: ignore[attr-defined]
                                "volume": ev.volume,  # type: ignore[attr-defined]
                                "path": list(ev.price_path),  # type: ignore[attr-defined]
                                "adl": ev.adl_count,  # type: ignore[attr-defined]
                                "fund_before": ev.insurance_before,  # type: ignore[attr-defined]
                                "fund_after": ev.insurance_after,  # type: ignore[attr-defined]
                            }
                        )
                if recs:
                    await self.journal.append(recs)
                    for r in recs:
                        self._apply(r)
                if liquidated:
                    async with self._lock:
                        await self._take_sample()
            except Exception:
                log.exception("classroom: handling events failed")

    def _liq_rec(self, ev: E.PositionLiquidated) -> dict[str, Any]:
        return {
            "kind": "liquidation",
            "round": self.round,
            "ts": ev.ts,
            "id": ev.liquidation_id,
            "cascade": ev.cascade_id,
            "generation": ev.generation,
            "parent": ev.parent_id,
            "account": ev.account,
            "student": ev.account in self.tracker.stats,
            "symbol": ev.symbol,
            "side": ev.side,
            "qty": ev.qty,
            "trigger_mark": ev.trigger_mark,
            "liquidation_price": ev.liquidation_price,
            "bankruptcy_price": ev.bankruptcy_price,
            "filled": ev.filled_qty,
            "takeover": ev.fund_takeover_qty,
            "adl": ev.adl_qty,
            "fund_delta": ev.insurance_delta,
        }

    # ================================================================ views

    def leaderboard(self) -> list[dict[str, Any]]:
        labels = self.roster.labels()
        return standings(
            self.tracker, self.game.rank_by, lambda a: labels.get(a) or self.roster.label(a)
        )

    def game_standings(self) -> list[dict[str, Any]]:
        """The standings over every round played (`leaderboard.game_standings`); before
        any round has a result, the current board."""
        if not self.results:
            return self.leaderboard()
        labels = self.roster.labels()
        return game_standings(
            self.results,
            self.round_starts,
            quanta(self.game.starting_balance),
            self.game.rank_by,
            lambda a: labels.get(a) or self.roster.label(a),
        )

    def shown_board(self) -> tuple[list[dict[str, Any]], str]:
        """The leaderboard the pages show and its scope: this round's ("round"), or at
        game over the standings over every round ("game"), not the last round's."""
        if self.state == "game_over":
            return self.game_standings(), "game"
        return self.board or self.leaderboard(), "round"

    def status(self) -> dict[str, Any]:
        return views.status(self)

    def message(self) -> str:
        return views.MESSAGES[self.state]

    def danger_table(self) -> list[dict[str, Any]]:
        return views.danger_table(self)
