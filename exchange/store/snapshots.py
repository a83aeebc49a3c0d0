"""Snapshots: when one is due, the fork (or pickle) between engine turns, and its write.

A room of `Store` (see `exchange.store.store`): it owns the snapshot schedule
(`_last_snap_idx`, `_last_snap_time`), the task finishing a snapshot and, in fast mode,
the snapshot waiting for the commands it covers (`_deferred`). The rows are written by
the journal writer, in order with the journal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import hashlib
import json
import logging
import os
import pickle
import time
import warnings
from typing import Any

from sqlalchemy import Connection

from exchange.core.engine import Exchange

from . import journal as J
from .writer import _Job

log = logging.getLogger("margincall.store")


class Snapshots:
    """`Store`'s snapshots: `snapshot_due`, `snapshot_hook` and what follows a fork."""

    def _covered(self) -> int:
        """The journal index of the engine's current state."""
        assert self._next is not None
        if self._applied is not None:
            return self._base + self._applied()
        return self._next - 1

    def snapshot_due(self) -> bool:
        if self._next is None or (self._snap_task is not None and not self._snap_task.done()):
            return False
        if self._gap:
            return True
        done = self._covered() - self._last_snap_idx
        if done <= 0:
            return False
        cfg = self.config
        if cfg.snapshot_every and done >= cfg.snapshot_every:
            return True
        return bool(
            cfg.snapshot_interval
            and time.monotonic() - self._last_snap_time >= cfg.snapshot_interval
        )

    async def snapshot_hook(self, exchange: Exchange) -> None:
        """Between engine turns: fork (or pickle) the exchange, the only pause; the rest
        happens in the child, on a worker thread and on the journal writer."""
        if self._next is None or self._closed:
            return
        if self._snap_task is not None and not self._snap_task.done():
            return
        if not self.durable and self._applied is None and self._warn_unbound_fast():
            return
        self._take_snapshot(exchange)

    def _warn_unbound_fast(self) -> bool:
        if not getattr(self, "_warned_unbound", False):
            self._warned_unbound = True
            log.warning(
                "store (fast): snapshots need attach(runtime) to know which journal index "
                "the engine's state covers; skipping snapshots"
            )
        return True

    def _take_snapshot(self, exchange: Exchange) -> None:
        covered = self._covered()
        t0 = time.perf_counter_ns()
        source: tuple[Any, ...]
        if self._use_fork:
            # copy-on-write: the child pickles and checks the state as it is now, the
            # engine goes on at once; the pause is the fork itself
            r, w = os.pipe()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _snapshot_child(exchange, r, w)
            os.close(w)
            source = ("fork", pid, r)
        else:
            source = ("inline", pickle.dumps(exchange, protocol=pickle.HIGHEST_PROTOCOL))
        pause_us = (time.perf_counter_ns() - t0) // 1000
        self.snapshot_pauses_us.append(pause_us)
        meta = {
            "journal_idx": covered,
            "event_seq": exchange.seq,
            "engine_ts": exchange.now,
            "pause_us": pause_us,
        }
        self._last_snap_idx = covered
        self._last_snap_time = time.monotonic()
        self._snap_task = asyncio.get_running_loop().create_task(
            self._finish_snapshot(source, meta), name="margincall-snapshot"
        )

    async def _finish_snapshot(self, source: tuple[Any, ...], meta: dict[str, Any]) -> None:
        try:
            state_hash, digest, blob = await asyncio.to_thread(_collect_snapshot, source)
            row = {
                **meta,
                "state_hash": state_hash,
                "sha256": digest,
                "size": len(blob),
                "created_ns": time.time_ns(),
                "data": blob,
            }
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            job = _Job("snapshot", future=fut, payload=row)
            job.base = meta["journal_idx"]
            if self.durable:
                self._submit(job)
            else:
                self._deferred = job
                self._place_deferred()
            await asyncio.wrap_future(fut)
            self.counters["snapshots"] += 1
            log.info(
                "snapshot: journal index %d, %d bytes, engine paused %d us (%s)",
                meta["journal_idx"],
                len(blob),
                meta["pause_us"],
                source[0],
            )
        except Exception as e:
            self.counters["snapshot_failures"] += 1
            self._last_snap_idx = min(self._last_snap_idx, meta["journal_idx"] - 1)
            log.error("snapshot at journal index %d failed: %s", meta["journal_idx"], e)

    def _place_deferred(self) -> None:
        """Fast mode: queue a waiting snapshot once the commands it covers are queued."""
        job = self._deferred
        if job is None or self._next is None or self._next - 1 < job.base:
            return
        self._deferred = None
        self._submit(job)
        if self._gap and job.base == self._next - 1:
            self._gap = False
            log.warning(
                "journal (fast): snapshot at index %d covers the %d skipped commands; "
                "journaling resumes",
                job.base,
                self.counters["fast_skipped"],
            )

    def _write_snapshot(self, conn: Connection, row: dict[str, Any]) -> None:
        J.write_snapshot(conn, row, self.config.keep_snapshots)


def _snapshot_child(exchange: Exchange, r: int, w: int) -> None:  # pragma: no cover
    """In the forked child: pickle the exchange and hash its state, send (header,
    bytes) to the parent, exit. Touches no lock, no logging,
    no database connection (only this thread exists here)."""
    code = 1
    try:
        os.close(r)
        gc.disable()
        blob = pickle.dumps(exchange, protocol=pickle.HIGHEST_PROTOCOL)
        state_hash = exchange.state_hash()
        # (recovery checks that the bytes load back to this hash; not doing it here too
        # halves the child's CPU time, which a 2-core machine shares with the engine)
        header = json.dumps(
            {"state_hash": state_hash, "sha256": hashlib.sha256(blob).hexdigest()}
        ).encode()
        view = memoryview(len(header).to_bytes(8, "big") + header + blob)
        while view:
            view = view[os.write(w, view) :]
        code = 0
    finally:
        os._exit(code)


def _collect_snapshot(source: tuple[Any, ...]) -> tuple[str, str, bytes]:
    """(state hash, sha256, bytes) of a snapshot taken by `_take_snapshot`. Runs on a
    worker thread. Inline snapshots get their hash from a copy loaded back here."""
    if source[0] == "inline":
        blob = source[1]
        return pickle.loads(blob).state_hash(), hashlib.sha256(blob).hexdigest(), blob
    _, pid, r = source
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or len(data) < 8:
        raise RuntimeError(f"snapshot process failed (wait status {status})")
    n = int.from_bytes(data[:8], "big")
    header = json.loads(data[8 : 8 + n])
    blob = data[8 + n :]
    digest = hashlib.sha256(blob).hexdigest()
    if digest != header["sha256"]:
        raise RuntimeError("the snapshot was damaged on its way from the snapshot process")
    return str(header["state_hash"]), digest, blob
