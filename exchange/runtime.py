"""The asyncio runtime around the core: one task owns the `Exchange`.

Every change goes through one queue and one task, in one order: WebSocket requests,
index feeds, the replay player, admin actions and the clock. Each turn of the loop

1. drains the queue into a batch (at most `max_batch` commands) and stamps each
   command's time (`ts`) from the clock,
2. in *durable* mode awaits `command_log.append(batch)` first (write-ahead; every
   command, including those the core will reject, so a replay sees the same sequence);
   if the store raises `StoreUnavailable` the whole batch is refused — every submitter
   gets the exception, nothing is applied,
3. applies the batch to the core, one `handle` per command, and answers each
   submitter's future with that command's events,
4. in *fast* mode hands the batch to a background appender (answers do not wait),
5. offers the batch's events to every subscriber: each has its own bounded queue and
   its own consumer task; a full queue drops the batch (counted) or closes the
   subscription, so a slow consumer never slows the engine,
6. between turns, calls `snapshot_hook(exchange)` when `snapshot_due()` says so.

Reads (depth, order status, account views) are done directly on `runtime.exchange`
from the same event loop: the core is only mutated inside step 3, which does not
await, so a read always sees a state between two commands.

`handle_now(cmds)` is that turn run in the submitter's own task, allowed only when it is
indistinguishable from queuing: the engine idles with nothing queued, no durable journal
write must come first and no snapshot is due. A replay that alone drives the runtime
uses it to apply each event's commands and read their effect at once, with no task
switch per command; `apply_now(cmd)` is the same for one command whose events the caller
wants (the WebSocket API's requests, when the store is off or fast), at most one per turn
of the event loop (a burst takes the queue, batched with everyone else's). `handle_now`'s
events reach the subscribers in one batch at `flush_now()`, `apply_now`'s before it
returns; a fast-mode journal gets the commands applied so at the next turn of the loop
(`apply_now`) or at `flush_now()`; both always before the engine's next turn, so order is
kept.

Clock modes: ``realtime`` stamps commands with wall time (ns, never going backwards)
and, every `tick_interval` seconds, submits an `AdvanceClock` so funding settles while
nobody trades; ``stepped`` stamps commands with the engine's current time, so time
moves only by explicit `AdvanceClock` commands (admin clock advance, the replay
player) and a backtest gives the same fills however fast the strategy answers.
A command that already carries a nonzero `ts` keeps it in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from exchange.core.commands import AdvanceClock, Command
from exchange.core.engine import Exchange
from exchange.core.events import Event
from exchange.errors import StoreUnavailable

log = logging.getLogger("margincall.runtime")

ClockMode = Literal["realtime", "stepped"]


class CommandLog(Protocol):
    """What the store provides to journal commands (see the module docstring)."""

    durable: bool

    async def append(self, commands: list[Command]) -> None: ...


class Subscription:
    """A bounded queue of event batches for one consumer; an async iterator of batches.

    The engine offers each batch without waiting. When the queue is full the batch is
    dropped and counted (`policy="drop"`), or the subscription is closed and counted
    (`policy="close"`; iteration then ends after what was queued).
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        maxsize: int,
        policy: Literal["drop", "close"] = "drop",
        active: Callable[[], bool] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.name = name
        self.active = active  # when given and false, batches are not even offered
        self.maxsize = maxsize
        self.policy = policy
        self.dropped_batches = 0
        self.dropped_events = 0
        self.delivered_batches = 0
        self.closed = False
        self.overflowed = False
        self._runtime = runtime
        self._queue: deque[list[Event]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, batch: list[Event]) -> None:
        """Called by the engine: enqueue without waiting, or drop (counted)."""
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self.dropped_batches += 1
            self.dropped_events += len(batch)
            if self.policy == "close":
                self.overflowed = True
                self.close()
            return
        self._queue.append(batch)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._runtime._unsubscribe(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> list[Event] | None:
        if self._queue:
            self.delivered_batches += 1
            return self._queue.popleft()
        return None

    async def get(self) -> list[Event]:
        """The next batch; raises `StopAsyncIteration` once closed and drained."""
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered_batches += 1
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self

    async def __anext__(self) -> list[Event]:
        return await self.get()

    def stats(self) -> dict[str, Any]:
        return {
            "queued": len(self._queue),
            "maxsize": self.maxsize,
            "policy": self.policy,
            "delivered_batches": self.delivered_batches,
            "dropped_batches": self.dropped_batches,
            "dropped_events": self.dropped_events,
            "closed": self.closed,
        }


# (command, its future or None, whether the runtime may stamp it in place)
_Pending = tuple[Command, "asyncio.Future[list[Event]] | None", bool]


class Runtime:
    """Owns the `Exchange`; see the module docstring for the loop and its guarantees."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        clock: ClockMode = "realtime",
        command_log: CommandLog | None = None,
        snapshot_hook: Callable[[Exchange], Awaitable[None]] | None = None,
        snapshot_due: Callable[[], bool] | None = None,
        max_batch: int = 1024,
        tick_interval: float | None = 1.0,
        start_ts: int | None = None,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if clock not in ("realtime", "stepped"):
            raise ValueError(f"clock must be 'realtime' or 'stepped', not {clock!r}")
        self.exchange = exchange
        self.clock: ClockMode = clock
        self.command_log = command_log
        self.snapshot_hook = snapshot_hook
        self.snapshot_due = snapshot_due
        self.max_batch = max_batch
        self.tick_interval = tick_interval if clock == "realtime" else None
        self.start_ts = start_ts
        self._wall = wall_clock
        self._pending: deque[_Pending] = deque()
        self._waiter: asyncio.Future[None] | None = None  # set while the engine idles
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._appender: asyncio.Task[None] | None = None
        self._append_queue: deque[list[Command]] = deque()
        self._append_wake: asyncio.Event | None = None
        self._closing = False
        self._last_ts = exchange.now
        self._inline_events: list[Event] = []  # of `handle_now`, not yet offered
        self._inline_cmds: list[Command] = []  # of `handle_now`, for a fast-mode journal
        self._applied_now = False  # `apply_now` applied one this loop turn (`_loop_turned` due)
        # counters
        self.batches = 0
        self.commands = 0
        self.events = 0
        self.refused = 0
        self.max_batch_seen = 0
        self.append_failures = 0
        self.snapshots = 0
        self.subscriptions_closed: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        if self.start_ts is not None and self.exchange.now < self.start_ts:
            self.submit_nowait(AdvanceClock(ts=self.start_ts))
        self._task = asyncio.create_task(self._run(), name="margincall-engine")
        if self.command_log is not None and not self.command_log.durable:
            self._append_wake = asyncio.Event()
            self._appender = asyncio.create_task(self._append_loop(), name="margincall-append")
        if self.tick_interval:
            self._ticker = asyncio.create_task(self._tick_loop(), name="margincall-clock")

    async def stop(self) -> None:
        """Finish what is queued, stop the tasks, flush the fast-mode appender."""
        if self._task is None:
            return
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._poke()
        await self._task
        self._task = None
        self.flush_now()
        if self._appender is not None:
            assert self._append_wake is not None
            self._append_wake.set()
            await self._appender
            self._appender = None
        for sub in list(self._subs):
            sub.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closing

    # ---------------------------------------------------------------- commands

    def now(self) -> int:
        """The time the next command would be stamped with (ns)."""
        if self.clock == "stepped":
            return self.exchange.now
        return max(self._wall(), self._last_ts, self.exchange.now)

    def submit_nowait(self, cmd: Command, *, owned: bool = False) -> None:
        """Queue a command without waiting for its events (index feeds, the clock).

        `owned=True` tells the runtime the object is fresh and nobody else holds it, so a
        command with ts=0 may be stamped in place (cheaper than a copy); otherwise the
        runtime stamps a copy and never touches the caller's object.
        """
        self._pending.append((cmd, None, owned))
        self._poke()

    def submit_future(self, cmd: Command, *, owned: bool = False) -> asyncio.Future[list[Event]]:
        """Queue a command; the future gets its events (or `StoreUnavailable`)."""
        if self._closing or self._task is None:
            raise RuntimeError("runtime is not running")
        fut: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append((cmd, fut, owned))
        self._poke()
        return fut

    def apply_now(self, cmd: Command, *, owned: bool = False) -> list[Event] | None:
        """`cmd`'s events, the command applied at once in the caller's task when
        `handle_now` may (see there) and no other was applied so in this turn of the
        event loop; None, with nothing done, otherwise (then submit it). As after a
        turn, its events have been offered to the subscribers when this returns (a read
        that follows sees them folded in, as the Binance gateway's ledger does); a
        fast-mode journal gets the command at the next turn of the loop, with every
        other applied so meanwhile.

        One per turn of the loop: each call offers its own batch, and the subscribers
        (and other connections) only run between turns, so a burst of requests read
        in one go (a client that sends without waiting) would otherwise pile up one
        batch per command in every subscriber's bounded queue (the MQTT bridge's holds
        1,024), dropping events, and run ahead of every other connection; the rest of
        such a burst takes the queue and is batched by the engine, as before."""
        if self._applied_now:
            return None
        start = len(self._inline_events)  # (a replay's, not yet offered, come first)
        if not self.handle_now((cmd,), owned=owned):
            return None
        self._applied_now = True
        asyncio.get_running_loop().call_soon(self._loop_turned)
        evs = self._inline_events[start:]
        self._offer_inline()
        return evs

    def _loop_turned(self) -> None:
        """The turn of the loop after an `apply_now`: another may apply in place, and
        the fast-mode journal gets what was applied so."""
        self._applied_now = False
        self._journal_inline()

    def handle_now(self, cmds: Sequence[Command], *, owned: bool = False) -> bool:
        """Apply `cmds` at once, in the caller's task, when that is what queuing them would
        do: the engine task idles with nothing queued, no journal write must come first
        (no store, or a fast-mode one) and no snapshot is due (that waits for a turn).

        Returns False, with nothing done, otherwise (then submit them). The commands are
        stamped (in place with `owned`, as `submit_nowait` says), handled and counted
        exactly as in a turn; their events reach the subscribers, and a fast-mode
        store's journal gets them, in order, before anything else does (at the next
        `flush_now`, or before the engine's next turn). O(1) beyond the core's own work:
        no task switch, no future per command — what lets a replay that alone drives the
        runtime go as fast as the core, and an answer come one loop turn sooner.
        """
        clog = self.command_log
        if (
            self._waiter is None
            or self._pending
            or self._closing
            or (clog is not None and clog.durable)
            or (self.snapshot_due is not None and self.snapshot_hook is not None
                and self.snapshot_due())
        ):  # fmt: skip
            return False
        ex = self.exchange
        ts = ex.now if self.clock == "stepped" else max(self._wall(), self._last_ts)
        handle = ex.handle
        out = self._inline_events
        for cmd in cmds:
            t = cmd.ts
            if t:
                if t > ts:
                    ts = t
            elif owned:  # (as `submit_nowait` says)
                object.__setattr__(cmd, "ts", ts)
            else:
                cmd = dataclasses.replace(cmd, ts=ts)
            if clog is not None:
                self._inline_cmds.append(cmd)
            try:
                out += handle(cmd)
            except Exception:  # a core bug: report it, keep serving (as a turn does)
                log.exception("core raised on %r", cmd)
        self._last_ts = ts
        self.batches += 1
        n = len(cmds)
        self.commands += n
        if n > self.max_batch_seen:
            self.max_batch_seen = n
        return True

    def flush_now(self) -> None:
        """Hand the commands of `handle_now` calls to a fast-mode store's journal, and
        offer their events to the subscribers, each as one batch."""
        self._journal_inline()
        self._offer_inline()

    def _journal_inline(self) -> None:
        cmds = self._inline_cmds
        if cmds:
            self._inline_cmds = []
            self._append_queue.append(cmds)
            if self._append_wake is not None:
                self._append_wake.set()

    def _offer_inline(self) -> None:
        evs = self._inline_events
        if not evs:
            return
        self._inline_events = []
        self.events += len(evs)
        for sub in list(self._subs):
            if sub.active is None or sub.active():
                sub.offer(evs)

    def _poke(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def submit(self, cmd: Command, *, owned: bool = False) -> list[Event]:
        """Queue a command and wait for the events it produced.

        Raises `StoreUnavailable` when the durable store refused the batch.
        """
        return await self.submit_future(cmd, owned=owned)

    # ---------------------------------------------------------------- subscribers

    def subscribe(
        self,
        name: str,
        maxsize: int = 10_000,
        policy: Literal["drop", "close"] = "drop",
        active: Callable[[], bool] | None = None,
    ) -> Subscription:
        """A new subscriber with its own bounded queue of event batches.

        `active`, if given, is asked before each offer; while it returns false the
        subscriber is skipped (the WebSocket fan-out uses it: no listener, no work).
        """
        sub = Subscription(self, name, maxsize, policy, active)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)
        if sub.overflowed:
            self.subscriptions_closed[sub.name] = self.subscriptions_closed.get(sub.name, 0) + 1
        self.dropped[sub.name] = self.dropped.get(sub.name, 0) + sub.dropped_batches

    def stats(self) -> dict[str, Any]:
        dropped = dict(self.dropped)
        for s in self._subs:
            dropped[s.name] = dropped.get(s.name, 0) + s.dropped_batches
        return {
            "clock": self.clock,
            "engine_time": self.exchange.now,
            "queued": len(self._pending),
            "batches": self.batches,
            "commands": self.commands,
            "events": self.events,
            "max_batch": self.max_batch_seen,
            "refused": self.refused,
            "append_failures": self.append_failures,
            "append_backlog": len(self._append_queue),
            "snapshots": self.snapshots,
            "durable": bool(self.command_log is not None and self.command_log.durable),
            "subscribers": {s.name: s.stats() for s in self._subs},
            "dropped_batches": dropped,
            "subscriptions_closed": dict(self.subscriptions_closed),
        }

    # ---------------------------------------------------------------- the loop

    def _stamp(self, batch: list[_Pending]) -> list[Command]:
        """Give every command without a time the clock's time, in queue order.

        An `owned` command is stamped in place (`object.__setattr__` on the frozen object,
        ~40× cheaper than `dataclasses.replace`); any other gets a stamped copy.
        """
        if self.clock == "stepped":
            ts = self.exchange.now
        else:
            ts = max(self._wall(), self._last_ts)
        out = []
        setattr_ = object.__setattr__
        for cmd, _, owned in batch:
            if cmd.ts:
                # an explicit time (clock advance, replay) moves the stamp of what follows
                ts = max(ts, cmd.ts)
            elif owned:
                setattr_(cmd, "ts", ts)
            else:
                cmd = dataclasses.replace(cmd, ts=ts)
            out.append(cmd)
        self._last_ts = ts
        return out

    async def _run(self) -> None:
        pending = self._pending
        loop = asyncio.get_running_loop()
        while True:
            if not pending:
                if self._closing:
                    return
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            n = min(len(pending), self.max_batch)
            batch = [pending.popleft() for _ in range(n)]
            try:
                await self._turn(batch)
            except Exception:  # never let the engine task die silently
                log.exception("engine turn failed")
                for _, fut, _owned in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(RuntimeError("internal error"))
            if self.snapshot_hook is not None and self.snapshot_due is not None:
                try:
                    if self.snapshot_due():
                        await self.snapshot_hook(self.exchange)
                        self.snapshots += 1
                except Exception:
                    log.exception("snapshot hook failed")
            if pending:
                # more arrived meanwhile (a durable append, a snapshot): let the answered
                # submitters and the subscribers run before the next turn
                await asyncio.sleep(0)

    async def _turn(self, batch: list[_Pending]) -> None:
        if self._inline_events or self._inline_cmds:
            self.flush_now()  # what was applied in place comes first, for everyone
        cmds = self._stamp(batch)
        clog = self.command_log
        if clog is not None and clog.durable:
            try:
                await clog.append(cmds)
            except StoreUnavailable as e:
                self.refused += len(batch)
                self.append_failures += 1
                for _, fut, _owned in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(StoreUnavailable(str(e) or "store unavailable"))
                return
        handle = self.exchange.handle
        all_events: list[Event] = []
        for (_, fut, _owned), cmd in zip(batch, cmds, strict=True):
            try:
                evs = handle(cmd)
            except Exception as e:  # a core bug: report it, keep serving
                log.exception("core raised on %r", cmd)
                if fut is not None and not fut.done():
                    fut.set_exception(RuntimeError(f"internal error: {type(e).__name__}"))
                continue
            all_events.extend(evs)
            if fut is not None and not fut.done():
                fut.set_result(evs)
        self.batches += 1
        self.commands += len(cmds)
        self.events += len(all_events)
        if len(cmds) > self.max_batch_seen:
            self.max_batch_seen = len(cmds)
        if clog is not None and not clog.durable:
            self._append_queue.append(cmds)
            assert self._append_wake is not None
            self._append_wake.set()
        if all_events:
            for sub in list(self._subs):
                if sub.active is None or sub.active():
                    sub.offer(all_events)

    async def _append_loop(self) -> None:
        """Fast mode: journal batches in order, off the engine's path."""
        assert self._append_wake is not None and self.command_log is not None
        q = self._append_queue
        while True:
            if not q:
                if self._closing and self._task is None:
                    return
                self._append_wake.clear()
                if self._closing and self._task is None:
                    return
                await self._append_wake.wait()
                continue
            cmds = q[0]
            try:
                await self.command_log.append(cmds)
            except StoreUnavailable:
                self.append_failures += 1
                await asyncio.sleep(0.05)  # keep the batch, retry in order
                continue
            except Exception:
                log.exception("fast-mode append failed; batch dropped from the journal")
                self.append_failures += 1
            q.popleft()

    async def _tick_loop(self) -> None:
        assert self.tick_interval
        while True:
            await asyncio.sleep(self.tick_interval)
            if not self._pending:
                self.submit_nowait(AdvanceClock(ts=max(self._wall(), self._last_ts)))
