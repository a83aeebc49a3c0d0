"""Lockstep: the replay waits, after each step, until every registered strategy is ready.

The barrier (`Lockstep`) lives beside the runtime; strategies reach it over the WebSocket
API with three methods this module adds to the protocol (`install_methods()`):

| method | access | params | result |
|---|---|---|---|
| `replay.register` | user | – | the current step (see below); the session now takes part |
| `replay.ready` | user | `step` | waits until a step after `step` is published, returns it |
| `replay.status` | public | – | the current step and the barrier's counters |

A step is `{"step": n, "ts": engine ns, "done": bool, "engineTime": ..., "markets":
{SYMBOL: {"mark", "index", "last", "bestBid", "bestAsk"}}}` (prices as decimal text or
null). Step 0 means "not started"; `done: true` means the replay is over.

The player publishes step n after applying everything up to it, then waits until every
registered session has called `replay.ready` with `step ≥ n` — or `timeout` seconds, after
which it goes on without the late ones (counted in `timeouts`; a strategy that answers
late just gets the newest step). Nothing else moves the engine meanwhile (the clock is
stepped), so a strategy's requests between receiving step n and saying ready see the state
of step n and are applied at its time, however long it thinks: one strategy answering in
0 ms or in 50 ms gets the same fills. (Several strategies in one lockstep replay each see
step n, but their orders interleave in arrival order.) A session that closes stops taking
part.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from exchange.core.errors import Code
from exchange.protocol.params import METHODS, Method, v_int
from exchange.protocol.session import Session
from exchange.protocol.wire import ProtocolError

__all__ = ["Lockstep", "attach", "install_methods", "uninstall_methods", "methods_installed"]


class Lockstep:
    """The barrier. `barrier(step, ts, info)` is awaited by the player after each step."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.step = 0
        self.ts = 0
        self.done = False
        self.info: dict[str, Any] = {}
        self.participants: dict[Any, int] = {}  # key (a Session) → last step it is ready for
        self.timeouts = 0
        self.late: dict[str, int] = {}
        self.wait_seconds = 0.0
        self._published = asyncio.Event()
        self._readied = asyncio.Event()
        self._joined = asyncio.Event()

    # -- the strategies' side

    def current(self) -> dict[str, Any]:
        return {"step": self.step, "ts": self.ts, "done": self.done, **self.info}

    def register(self, key: Any) -> dict[str, Any]:
        self.participants.setdefault(key, self.step - 1)
        self._joined.set()
        self._readied.set()
        return self.current()

    def unregister(self, key: Any) -> None:
        if self.participants.pop(key, None) is not None:
            self._readied.set()

    def ready(self, key: Any, step: int) -> None:
        if key in self.participants:
            self.participants[key] = max(self.participants[key], step)
        else:
            self.participants[key] = step
            self._joined.set()
        self._readied.set()

    async def next_after(self, step: int) -> dict[str, Any]:
        """Wait until a step after `step` is published (or the replay is done)."""
        while self.step <= step and not self.done:
            ev = self._published
            await ev.wait()
        return self.current()

    # -- the player's side

    async def wait_for(self, n: int, timeout: float) -> bool:
        """Wait until `n` participants registered (False after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self._live()) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._joined.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._joined.wait(), min(left, 0.25))
        return True

    def _live(self) -> dict[Any, int]:
        dead = [k for k in self.participants if getattr(k, "closed", False)]
        for k in dead:
            del self.participants[k]
        return self.participants

    def publish(self, step: int, ts: int, info: dict[str, Any]) -> None:
        self.step, self.ts, self.info = step, ts, info
        ev, self._published = self._published, asyncio.Event()
        ev.set()

    async def barrier(self, step: int, ts: int, info: dict[str, Any]) -> None:
        """Publish step `step` and wait until every participant is ready for it."""
        self.publish(step, ts, info)
        if not self.participants:
            return
        started = time.monotonic()
        deadline = started + self.timeout
        while True:
            waiting = [k for k, s in self._live().items() if s < step]
            if not waiting:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                self.timeouts += 1
                for k in waiting:
                    name = str(getattr(k, "account", k))
                    self.late[name] = self.late.get(name, 0) + 1
                break
            self._readied.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._readied.wait(), min(left, 0.25))
        self.wait_seconds += time.monotonic() - started

    def finish(self, info: dict[str, Any]) -> None:
        self.done = True
        self.info = info
        ev, self._published = self._published, asyncio.Event()
        ev.set()

    def stats(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "done": self.done,
            "participants": len(self.participants),
            "timeouts": self.timeouts,
            "late": dict(self.late),
            "waitSeconds": round(self.wait_seconds, 3),
            "timeout": self.timeout,
        }


# ---------------------------------------------------------------------- protocol methods

_BARRIERS: weakref.WeakKeyDictionary[Any, Lockstep] = weakref.WeakKeyDictionary()


def attach(runtime: Any, lockstep: Lockstep | None) -> None:
    """Make `lockstep` the barrier the `replay.*` methods of `runtime`'s server use."""
    if lockstep is None:
        _BARRIERS.pop(runtime, None)
    else:
        _BARRIERS[runtime] = lockstep


def _barrier(s: Session) -> Lockstep:
    b = _BARRIERS.get(s.api.runtime)
    if b is None:
        raise ProtocolError(Code.INVALID_PARAMETER, "No lockstep replay is running here.")
    return b


async def _register(s: Session, p: dict[str, Any]) -> Any:
    return _barrier(s).register(s)


async def _ready(s: Session, p: dict[str, Any]) -> Any:
    b = _barrier(s)
    b.ready(s, p["step"])
    return await b.next_after(p["step"])


async def _status(s: Session, p: dict[str, Any]) -> Any:
    b = _BARRIERS.get(s.api.runtime)
    if b is None:
        return {"lockstep": False}
    return {"lockstep": True, **b.current(), **b.stats()}


_METHODS = {
    "replay.register": Method("replay.register", _register, "user", {}),
    "replay.ready": Method("replay.ready", _ready, "user", {"step": v_int(0)}),
    "replay.status": Method("replay.status", _status, "public", {}),
}


def install_methods() -> None:
    """Add the `replay.*` methods to the protocol (idempotent)."""
    METHODS.update(_METHODS)


def uninstall_methods() -> None:
    for name, m in _METHODS.items():
        if METHODS.get(name) is m:
            del METHODS[name]


def methods_installed() -> bool:
    return all(METHODS.get(n) is m for n, m in _METHODS.items())


@contextmanager
def protocol_methods() -> Iterator[None]:
    """`install_methods()` for the duration of a `with` block (tests)."""
    was = methods_installed()
    install_methods()
    try:
        yield
    finally:
        if not was:
            uninstall_methods()
