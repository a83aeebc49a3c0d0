"""The replay player: canonical events in, core commands out.

`Player.translate(event)` turns one recorded event into the commands that replay it on an
`Exchange` (reading the exchange's state where it must, never changing it). Two drivers run
it:

* `play(exchange, events, ...)` — synchronous, straight into `Exchange.handle`: as fast as
  the core goes (tests, the benchmark, offline reports);
* `play_async(runtime, events, ...)` — through the runtime's command queue, paced in real
  time × a speed factor, as fast as possible, or in lockstep with strategies
  (`replay.lockstep.Lockstep`): what `margincall replay` and `margincall backtest` use.

What is replayed, per event type (docs/replay.md, "The player", says why):

* **index** (`SetIndexPrice`) from, in order of preference per symbol: `Ticker.index_price`
  (rank 0), index-price klines (1), mark-price klines (2), trade klines / OHLCV (3), recorded
  trades (4); with `reference="mark"`, `Ticker.mark_price` and mark-price klines take the
  place of the index ones (so that, with `mark_method="index"`, the core's mark is the
  recorded mark). The best-ranked source seen so far for a symbol drives its index; worse ones are
  then ignored. A kline is walked open → low → high → close when it closed at or above its
  open, else open → high → low → close, at its start, ⅓ and ⅔ into the bar and its last
  nanosecond. An unchanged index is not re-sent. The mark follows from the instrument's
  `mark_method`.
* **book** from `BookUpdate` (or, for a symbol that never has one, `Quote` as a one-level
  book): mirrored as resting orders of the replay account, one per price level (see
  `replay.mirror.Mirror`).
* **trades**, when `PlayerConfig.trades` is on: each buy/sell trade becomes an IOC limit order
  of the replay account for the recorded amount at the recorded price (taker flow). It is not
  sent when the opposite side of the book has nothing at that price or better.
* **funding** (`FundingRate`): imposed. A recorded rate becomes a `SetFundingRate` for the
  funding time nearest its timestamp, stamped just before it, so the core settles that
  time with the recorded rate (merge puts funding records first on a timestamp tie). A
  record that arrives after its funding time was settled is counted in
  `PlayerStats.late_funding` and not applied. Funding *times* are replayed exactly (an
  `AdvanceClock` at every funding boundary the replay crosses); without a funding file the
  core's own rate (premium + clamped interest) is paid.
* `Liquidation`, premium-index klines: not replayed (counted).

Engine time is the event's timestamp (`exchange_ts` or `local_ts`, `PlayerConfig.clock`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from replay.events import Event
from replay.playerconfig import (
    REPLAY_ACCOUNT,
    PlayerConfig,
    PlayerStats,
    SyntheticBook,
    UnknownSymbol,
)
from replay.translator import Player

if TYPE_CHECKING:
    from exchange.runtime import Runtime
    from replay.lockstep import Lockstep
    from replay.population import Population

__all__ = [
    "REPLAY_ACCOUNT",
    "Pacing",
    "PlayerConfig",
    "PlayerStats",
    "Player",
    "SyntheticBook",
    "Stepper",
    "UnknownSymbol",
    "market_info",
    "play",
    "play_async",
]


# ---------------------------------------------------------------------- stepping


class Stepper:
    """Groups replay time into steps of `step_ns` (grid-aligned) and samples state.

    A step closes when replay time reaches the next multiple of `step_ns` (`step_ns=1`:
    at every new timestamp). `on_step(step_no, ts)` runs when a step closes, after its
    commands were applied; the recorder samples there too.
    """

    def __init__(self, step_ns: int) -> None:
        if step_ns < 1:
            raise ValueError("step_ns must be at least 1 ns")
        self.step_ns = step_ns
        self.step = 0  # steps closed so far
        self.bucket: int | None = None
        self.ts = 0  # latest replay time seen

    def end(self) -> int:
        """When the open step closes: its end, the first instant of the next step (with
        `step_ns=1`, the step's own timestamp). Everything in the step happened before."""
        assert self.bucket is not None
        if self.step_ns == 1:
            return self.bucket
        return (self.bucket + 1) * self.step_ns

    def open(self, ts: int) -> int:
        """Open the step holding `ts`; return its first instant after it: a time at or
        past that starts a new step (what `crosses` says, as one comparison)."""
        b = self.bucket = ts // self.step_ns
        return (b + 1) * self.step_ns

    def crosses(self, ts: int) -> bool:
        """True when `ts` starts a new step (the open one must close first)."""
        b = ts // self.step_ns
        if self.bucket is None:
            self.bucket = b
            return False
        return b > self.bucket


# ---------------------------------------------------------------------- direct driver

StepHook = Callable[[int, int, Exchange], Iterable[C.Command] | None]
EventSink = Callable[[list[E.Event]], None]


def play(
    exchange: Exchange,
    events: Iterable[Event],
    config: PlayerConfig | None = None,
    *,
    population: Population | None = None,
    sink: EventSink | None = None,
    step_ns: int | None = None,
    on_step: StepHook | None = None,
    setup: bool = True,
) -> Player:
    """Replay `events` straight into `exchange`, as fast as the core goes.

    `sink(events)` receives every batch of core events (the report's recorder); `on_step`
    (with `step_ns`) is called at each step close with (step number, replay time, exchange)
    and may return commands to apply there (an in-process strategy). Returns the player
    (its `stats`).
    """
    player = Player(exchange, config, population)
    handle = exchange.handle

    def apply(cmds: Iterable[C.Command]) -> None:
        for cmd in cmds:
            evs = handle(cmd)
            if sink is not None:
                sink(evs)

    if setup:
        apply(player.setup())
    stepper = Stepper(step_ns) if step_ns else None
    translate = player.translate
    pop_next = population.next_ts if population is not None else 1 << 63

    def close(ts: int) -> None:
        assert stepper is not None
        if ts > exchange.now:
            apply([C.AdvanceClock(ts=ts)])
        stepper.step += 1
        if on_step is not None:
            apply(on_step(stepper.step, ts, exchange) or ())

    def at(ts: int) -> None:
        assert stepper is not None
        if stepper.crosses(ts):
            close(stepper.end())
            stepper.bucket = ts // stepper.step_ns
        if ts > stepper.ts:
            stepper.ts = ts

    if stepper is None and sink is None and population is None:
        # the fast path (benchmark): no steps, nobody listening
        for ev in events:
            for cmd in translate(ev):
                handle(cmd)
            if player.done:
                break
        return player
    if stepper is None and sink is None:
        for ev in events:
            for cmd in translate(ev):
                handle(cmd)
            if player.done:
                break
            last = player.last_ts
            if last is not None and last >= pop_next:
                for cmd in player.due(last):
                    handle(cmd)
                assert population is not None
                pop_next = population.next_ts
        return player

    for ev in events:
        cmds = translate(ev)
        if player.done:
            break
        for cmd in cmds:
            if stepper is not None:
                at(cmd.ts)
            evs = handle(cmd)
            if sink is not None:
                sink(evs)
        last = player.last_ts
        if last is not None:
            if stepper is not None:
                at(player.step_ts)
            if last >= pop_next:
                apply(player.due(last))
                assert population is not None
                pop_next = population.next_ts
    if stepper is not None and stepper.bucket is not None:
        close(stepper.end())
    return player


# ---------------------------------------------------------------------- runtime driver


@dataclass(frozen=True)
class Pacing:
    """How fast the replay runs: `speed` × real time, or as fast as possible (`speed=None`).

    With a `Lockstep`, each step also waits for the registered strategies (both can apply:
    a lockstep replay never runs faster than `speed` either).
    """

    speed: float | None = None

    def delay(self, ts: int, t0: int, wall0: float) -> float:
        if not self.speed:
            return 0.0
        target = wall0 + (ts - t0) / 1e9 / self.speed
        return target - time.monotonic()


Progress = Callable[[Player, int], None]


async def play_async(
    runtime: Runtime,
    events: Iterable[Event],
    config: PlayerConfig | None = None,
    *,
    population: Population | None = None,
    pacing: Pacing | None = None,
    lockstep: Lockstep | None = None,
    step_ns: int = 1,
    on_step: Callable[[int, int], Any] | None = None,
    progress: Progress | None = None,
    setup: bool = True,
    yield_every: int = 2000,
) -> Player:
    """Replay `events` through `runtime`'s command queue (see the module docstring).

    Each event's commands are submitted in order and awaited before the next event is
    translated (the player reads the state its previous commands made). A step closes when
    replay time enters the next `step_ns` bucket: the clock is advanced to the step's last
    time, `on_step(step, ts)` runs (sampling), then a `lockstep` publishes the step and waits
    for every registered strategy (or its timeout). `progress(player, step)` is called at
    each step close and every `yield_every` events.
    """
    pacing = pacing or Pacing()
    ex = runtime.exchange
    player = Player(ex, config, population)
    submit = runtime.submit_future
    handle_now = getattr(runtime, "handle_now", None)
    if setup:
        for cmd in player.setup():
            await runtime.submit(cmd)
    stepper = Stepper(step_ns)
    t0: int | None = None
    wall0 = 0.0
    translate = player.translate

    async def run(cmds: Sequence[C.Command]) -> None:
        if not cmds:
            return
        if lockstep is None and handle_now is not None and handle_now(cmds):
            return
        futs = [submit(c) for c in cmds]
        await asyncio.gather(*futs)

    async def close(ts: int) -> None:
        if ts > ex.now:
            await run([C.AdvanceClock(ts=ts)])
        if on_step is not None and lockstep is None and hasattr(runtime, "flush_now"):
            # the step's sample sees every event before it, consumed
            runtime.flush_now()
            await asyncio.sleep(0)
        stepper.step += 1
        if on_step is not None:
            on_step(stepper.step, ts)
        if progress is not None:
            progress(player, stepper.step)
        if lockstep is not None:
            await lockstep.barrier(stepper.step, ts, market_info(ex))

    async def at(ts: int) -> None:
        nonlocal t0, wall0
        if stepper.crosses(ts):
            await close(stepper.end())
            stepper.bucket = ts // stepper.step_ns
        if ts > stepper.ts:
            stepper.ts = ts
        if pacing.speed:
            if t0 is None:
                t0, wall0 = ts, time.monotonic()
            d = pacing.delay(ts, t0, wall0)
            if d > 0.001:
                await asyncio.sleep(d)

    if lockstep is None and hasattr(runtime, "handle_now"):
        await _play_inline(runtime, events, player, stepper, close, pacing, progress, yield_every)
        if stepper.bucket is not None:
            await close(stepper.end())
        runtime.flush_now()
        return player

    for n, ev in enumerate(events, 1):
        cmds = translate(ev)
        if player.done:
            break
        if cmds:
            i = 0
            while i < len(cmds):
                ts = cmds[i].ts
                await at(ts)
                j = i + 1
                while j < len(cmds) and cmds[j].ts == ts:
                    j += 1
                await run(cmds[i:j])
                i = j
        last = player.last_ts
        if last is not None:
            await at(player.step_ts)
            if population is not None and last >= population.next_ts:
                await run(player.due(last))
        if n % yield_every == 0:
            if progress is not None:
                progress(player, stepper.step)
            await asyncio.sleep(0)
    if stepper.bucket is not None:
        await close(stepper.end())
    if lockstep is not None:
        lockstep.finish(market_info(ex))
    return player


async def _play_inline(
    runtime: Runtime,
    events: Iterable[Event],
    player: Player,
    stepper: Stepper,
    close: Callable[[int], Awaitable[None]],
    pacing: Pacing,
    progress: Progress | None,
    yield_every: int,
) -> None:
    """`play_async`'s loop when nobody waits on the steps (no lockstep): each event's
    commands are applied with `runtime.handle_now` — at once, so the player reads the
    state they made before translating the next event, as `play` does — and the loop
    yields to the event loop (subscribers, the server, other submitters) every
    `yield_every` events and at each step close. When someone else has queued commands,
    `handle_now` declines and the commands wait their turn in the queue instead."""
    handle_now = runtime.handle_now
    submit = runtime.submit_future
    translate = player.translate
    population = player.population
    t0: int | None = None
    wall0 = 0.0
    speed = pacing.speed
    crosses = stepper.crosses
    step_ns = stepper.step_ns
    # a copy of stepper.bucket (-1 before the first): a command in the same bucket cannot
    # cross a step, so the common case compares one integer instead of calling `crosses`
    bucket = -1 if stepper.bucket is None else stepper.bucket

    async def apply(cmds: Sequence[C.Command]) -> None:
        if not handle_now(cmds):
            await asyncio.gather(*[submit(c) for c in cmds])  # behind someone else's

    async def at(ts: int) -> None:
        nonlocal t0, wall0
        if crosses(ts):
            await close(stepper.end())
            stepper.bucket = ts // stepper.step_ns
        if ts > stepper.ts:
            stepper.ts = ts
        if speed:
            if t0 is None:
                t0, wall0 = ts, time.monotonic()
            d = pacing.delay(ts, t0, wall0)
            if d > 0.001:
                runtime.flush_now()
                await asyncio.sleep(d)

    for n, ev in enumerate(events, 1):
        cmds = translate(ev)
        if player.done:
            break
        if cmds:
            k = len(cmds)
            if k == 1 and not speed and (ts := cmds[0].ts) // step_ns == bucket:
                # the common case, without a coroutine: one command inside the open step
                if ts > stepper.ts:
                    stepper.ts = ts
                if not handle_now(cmds):
                    await apply(cmds)
            else:
                i = 0
                while i < k:
                    ts = cmds[i].ts
                    if speed or crosses(ts):
                        await at(ts)
                    elif ts > stepper.ts:
                        stepper.ts = ts
                    j = i + 1
                    while j < k and cmds[j].ts == ts:
                        j += 1
                    group = cmds[i:j] if i or j < k else cmds
                    if not handle_now(group):
                        await apply(group)
                    i = j
                bucket = -1 if stepper.bucket is None else stepper.bucket
        last = player.last_ts
        if last is not None:
            ts = player.step_ts
            if speed or (ts // step_ns != bucket and crosses(ts)):
                await at(ts)
            elif ts > stepper.ts:
                stepper.ts = ts
            bucket = -1 if stepper.bucket is None else stepper.bucket
            if population is not None and last >= population.next_ts:
                due = player.due(last)
                if due:
                    await apply(list(due))
        if n % yield_every == 0:
            runtime.flush_now()
            if progress is not None:
                progress(player, stepper.step)
            await asyncio.sleep(0)


def market_info(ex: Exchange) -> dict[str, Any]:
    """What a strategy is told at each step: engine time and each market's prices (text)."""
    from exchange.units import ticks_to_str

    markets: dict[str, Any] = {}
    for sym in sorted(ex.instruments):
        mv = ex.market_view(sym)
        inst = ex.instruments[sym]

        def p(t: int | None, inst: Any = inst) -> str | None:
            return ticks_to_str(inst, t) if t else None

        markets[sym] = {
            "mark": p(mv.mark),
            "index": p(mv.index),
            "last": p(mv.last),
            "bestBid": p(mv.best_bid),
            "bestAsk": p(mv.best_ask),
        }
    return {"engineTime": ex.now, "markets": markets}
