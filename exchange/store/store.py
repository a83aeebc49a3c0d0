"""`Store`: the journal, the snapshots and the query tables, around the runtime.

The runtime sees four hooks (see `exchange.runtime`): `durable`, `append(batch)`,
`snapshot_due()` and `snapshot_hook(exchange)`; `attach(runtime)` wires them, subscribes
the query-table writer to the event stream and lets snapshots know how many commands
the engine has applied.

Threads. Nothing here blocks the event loop: every database call runs on one of two
threads the store owns. The *journal writer* runs journal batches, snapshot writes and
small admin writes strictly in submission order; the *query writer* projects event
batches into rows and writes them. Both retry transient failures in order. In fast mode
with a database file the query writer is a forked process fed by the journal instead
(`query_process`), so its work never takes the engine's GIL.

Durable mode (`mode="durable"`, the default for `serve`): `append` hands the batch to
the journal writer and waits for its commit (one transaction, SQLite `synchronous=FULL`).
If the commit fails, or does not finish within `commit_timeout`, `append` raises
`StoreUnavailable` and the runtime refuses the batch. A batch whose commit outcome is
unknown (timed out, or the connection died during COMMIT) is removed again: by the
writer as soon as the commit returns, and in any case by the next batch, which starts
by deleting any row at or after its first index. While an abandoned commit is still
running every `append` fails at once, and after a failed commit `append` fails at once
for a short pause (50 ms, doubling up to 1 s while failures repeat), so a slow or gone
database costs the engine one timeout now and then, not one per batch. When the
database answers again, the next batch commits and service resumes.

Fast mode (`mode="fast"`, for backtests): `append` only queues the batch and returns;
the journal writer commits queued batches in large transactions. A crash loses what
was queued (at most `fast_max_pending` commands), never the journal's consistency: the
journal is always a prefix of the history. If the queue would exceed that bound (the
database is slower than the engine, or gone) the store stops queueing, counts what it
skips, and asks for a snapshot at once; the snapshot (written in order, after what was
queued) makes the history whole again and journaling resumes after it.

Snapshots: `snapshot_hook` forks (Linux; elsewhere it pickles in place): the child
pickles the copy-on-write image of the exchange and hashes it while the engine goes on;
the engine pauses only for `fork()` (measured, see `stats()`). A worker thread reads
the result and the journal writer stores it with the journal index it covers. The
newest `keep_snapshots` are kept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import hashlib
import itertools
import json
import logging
import os
import pickle
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from exchange.core.commands import Command
from exchange.core.engine import Exchange
from exchange.core.events import Event
from exchange.core.instruments import Instrument
from exchange.errors import StoreUnavailable

from . import journal as J
from . import projection as P
from .codec import CodecError, from_jsonable, to_jsonable
from .db import DEFAULT_DB_URL, Database
from .query_process import QueryProcess
from .recovery import RecoveryInfo, run_recovery
from .tables import (
    JOURNAL_TABLES,
    QUERY_TABLES,
    ApiKeyRow,
    SessionTokenRow,
    SnapshotRow,
    StoreMeta,
)

log = logging.getLogger("margincall.store")

FORMAT = "margincall-store/1"
Mode = Literal["durable", "fast"]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    mode: Mode = "durable"
    snapshot_every: int = 50_000  # commands between snapshots (0: never by count)
    snapshot_interval: float = 300.0  # seconds between snapshots (0: never by time)
    keep_snapshots: int = 3
    commit_timeout: float = 2.0  # durable: refuse a batch whose commit takes longer
    fast_max_pending: int = 200_000  # fast: commands queued before the store skips
    linger: float = 0.02  # fast journal and query tables: seconds to let a batch grow
    max_rows_per_txn: int = 5_000  # fast journal and query tables: rows per transaction
    query_tables: bool = True
    query_queue: int = 100_000  # event batches the runtime may queue for the query writer
    final_snapshot: bool = True  # write one at close() when given the exchange
    # "fork": a forked child pickles the state (the engine pauses only for the fork);
    # "inline": pickle on the engine's task; "auto": fork on Linux, inline elsewhere
    snapshot_method: str = "auto"
    # "process": the query tables are written by a forked process fed by the journal
    # (fast mode with a database file; see `query_process`); "thread": by a thread fed
    # with the engine's events; "auto": process where it can be, else thread
    query_writer: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ("durable", "fast"):
            raise ValueError(f"mode must be 'durable' or 'fast', not {self.mode!r}")
        if self.commit_timeout <= 0:
            raise ValueError("commit_timeout must be positive")
        if self.keep_snapshots < 1:
            raise ValueError("keep_snapshots must be at least 1")
        if self.snapshot_method not in ("auto", "fork", "inline"):
            raise ValueError("snapshot_method must be auto, fork or inline")
        if self.query_writer not in ("auto", "thread", "process"):
            raise ValueError("query_writer must be auto, thread or process")


class _Job:
    __slots__ = ("kind", "base", "commands", "future", "abandoned", "clear", "payload", "tries")

    def __init__(
        self,
        kind: str,
        base: int = 0,
        commands: Sequence[Command] = (),
        future: concurrent.futures.Future[Any] | None = None,
        clear: bool = False,
        payload: Any = None,
    ) -> None:
        self.kind = kind  # "durable" | "fast" | "snapshot" | "call"
        self.base = base
        self.commands = commands
        self.future = future
        self.abandoned = False
        self.clear = clear
        self.payload = payload
        self.tries = 0


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


class Store:
    """The store for one database URL. See the module docstring."""

    def __init__(
        self, url: str = DEFAULT_DB_URL, config: StoreConfig | None = None, **overrides: Any
    ) -> None:
        cfg = config or StoreConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        self.url = url
        self.durable = cfg.mode == "durable"
        self._use_fork = cfg.snapshot_method == "fork" or (
            cfg.snapshot_method == "auto" and sys.platform == "linux" and hasattr(os, "fork")
        )
        db_timeout = cfg.commit_timeout * 0.8
        self._jdb = Database(
            url, synchronous="FULL" if self.durable else "NORMAL", timeout=db_timeout
        )
        self._qdb = Database(url, synchronous="NORMAL", timeout=10.0, shared=self._jdb)
        self._next: int | None = None  # journal index of the next command
        self._base = 0  # journal index when this process started
        self._applied: Callable[[], int] | None = None
        self._suspect = False
        self._failures = 0  # durable commits failed in a row
        self._retry_at = 0.0
        self._last_error = ""
        self._inflight: concurrent.futures.Future[Any] | None = None
        self._closed = False
        # journal writer
        self._jobs: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._pending = 0  # fast: commands queued, not yet committed
        self._gap = False
        # snapshots
        self._last_snap_idx = 0
        self._last_snap_time = time.monotonic()
        self._snap_task: asyncio.Task[None] | None = None
        self._deferred: _Job | None = None  # fast: a snapshot waiting for its commands
        # query writer
        self._projector: P.Projector | None = None
        self._pq: deque[list[Event]] = deque()
        self._pcv = threading.Condition()
        self._pthread: threading.Thread | None = None
        self._pstop = False
        self._p_busy = False
        self._p_flush = False
        self._consumer: asyncio.Task[None] | None = None
        self._qproc: QueryProcess | None = None
        self._exchange: Exchange | None = None
        # fault injection for tests: called with a job kind before each database job
        self.fault: Callable[[str], None] | None = None
        # counters
        self.counters: dict[str, int] = {
            "batches": 0,
            "commands": 0,
            "refused_batches": 0,
            "timeouts": 0,
            "abandoned_removed": 0,
            "fast_skipped": 0,
            "write_retries": 0,
            "snapshots": 0,
            "snapshot_failures": 0,
            "query_events": 0,
            "query_gaps": 0,
            "query_retries": 0,
            "query_skipped": 0,
        }
        self.snapshot_pauses_us: deque[int] = deque(maxlen=1000)
        self.thread_cpu_s: dict[str, float] = {"journal": 0.0, "query": 0.0}
        self.commit_us: deque[int] = deque(maxlen=10_000)

    # ================================================================ opening

    def _create_tables(self) -> None:
        self._jdb.create(JOURNAL_TABLES)
        if self.config.query_tables:
            self._qdb.create(QUERY_TABLES)

    def _meta(self, conn: Connection, key: str) -> str | None:
        t = StoreMeta.__table__  # type: ignore[attr-defined]
        v = conn.execute(select(t.c.value).where(t.c.key == key)).scalar_one_or_none()
        return None if v is None else str(v)

    def _genesis(self, instruments: Iterable[Instrument]) -> list[Instrument]:
        """The instruments the journal starts from: stored at the first start, and from
        then on the stored ones win (replay needs the same start)."""
        given = list(instruments)
        t = StoreMeta.__table__  # type: ignore[attr-defined]
        with self._jdb.begin() as conn:
            fmt = self._meta(conn, "format")
            if fmt is not None and fmt != FORMAT:
                raise RuntimeError(f"database holds store format {fmt!r}, expected {FORMAT!r}")
            stored = self._meta(conn, "genesis_instruments")
            if stored is None:
                conn.execute(
                    insert(t),
                    [
                        {"key": "format", "value": FORMAT},
                        {"key": "created_ns", "value": str(time.time_ns())},
                        {
                            "key": "genesis_instruments",
                            "value": json.dumps(to_jsonable(given), sort_keys=True),
                        },
                    ],
                )
                return given
        genesis: list[Instrument] = from_jsonable(list[Instrument], json.loads(stored))
        if genesis != given:
            log.warning(
                "store: the instruments given differ from those the journal started with; "
                "using the journal's (%s). Add instruments with the admin API instead.",
                ", ".join(i.symbol for i in genesis),
            )
        return genesis

    def recover(
        self, instruments: Iterable[Instrument] = (), **exchange_kwargs: Any
    ) -> tuple[Exchange, RecoveryInfo]:
        """Open the database and rebuild the exchange: the newest valid snapshot plus the
        journal after it (blocking; call before the runtime starts). On an empty database
        this is `Exchange(instruments)`. A damaged journal tail is set aside and logged.
        The query tables are brought up to date with the recovered state."""
        self._create_tables()
        genesis = self._genesis(instruments)
        exchange, info = run_recovery(
            self._jdb, self._qdb, self.config.query_tables, genesis, exchange_kwargs
        )
        self._next = info.last_idx + 1
        self._base = info.last_idx
        self._last_snap_idx = info.snapshot_idx or 0
        self._last_snap_time = time.monotonic()
        self._exchange = exchange
        return exchange, info

    # ================================================================ runtime wiring

    def attach(self, runtime: Any) -> None:
        """Wire this store into a `Runtime` built on the recovered exchange: journal,
        snapshots and the query-table writer. Call before `runtime.start()`."""
        if self._next is None:
            raise RuntimeError("call recover() before attach()")
        runtime.command_log = self
        runtime.snapshot_hook = self.snapshot_hook
        runtime.snapshot_due = self.snapshot_due
        self._applied = lambda: int(runtime.commands)
        self._exchange = runtime.exchange
        if self._query_process_wanted():
            # forked before any thread of ours exists, from the recovered state
            proj = P.Projector(self._lookup_instrument)
            with self._qdb.connect() as conn:
                proj.load(conn)
            self._qdb.dispose()  # no pooled connection is carried into the child
            self._qproc = QueryProcess.start(
                self.url,
                runtime.exchange,
                proj,
                self._base,
                self.config.max_rows_per_txn,
                self.config.linger,
            )
        self.start()
        if self.config.query_tables and self._qproc is None:
            sub = runtime.subscribe("store", maxsize=self.config.query_queue, policy="drop")
            self.consume(sub)

    def _query_process_wanted(self) -> bool:
        cfg = self.config
        if not cfg.query_tables or cfg.query_writer == "thread" or self._pthread is not None:
            return False
        possible = not self.durable and not self._qdb.memory and hasattr(os, "fork")
        if cfg.query_writer == "process" and not possible:
            raise ValueError("query_writer='process' needs fast mode, a database file and fork")
        return possible and (cfg.query_writer == "process" or sys.platform == "linux")

    def start(self) -> None:
        """Start the writer threads (idempotent; `append` starts them too)."""
        if self._next is None:
            raise RuntimeError("call recover() before using the store")
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._writer_main, name="margincall-journal", daemon=True
            )
            self._writer.start()
        if self.config.query_tables and self._pthread is None and self._qproc is None:
            self._projector = P.Projector(self._lookup_instrument)
            with self._qdb.connect() as conn:
                self._projector.load(conn)
            self._pthread = threading.Thread(
                target=self._query_main, name="margincall-query", daemon=True
            )
            self._pthread.start()

    def _lookup_instrument(self, symbol: str) -> Instrument | None:
        ex = self._exchange
        return ex.instruments.get(symbol) if ex is not None else None

    # ================================================================ the journal

    async def append(self, commands: list[Command]) -> None:
        """Journal a batch (see the module docstring for the two modes)."""
        if not commands:
            return
        if self._closed:
            raise StoreUnavailable("store is closed")
        if self._writer is None:
            self.start()
        assert self._next is not None
        if not self.durable:
            self._append_fast(commands)
            return
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            self.counters["refused_batches"] += 1
            raise StoreUnavailable("journal: a previous commit has not finished (database slow)")
        if self._failures and time.monotonic() < self._retry_at:
            # the database failed a moment ago: refuse at once, try again after a pause
            self.counters["refused_batches"] += 1
            raise StoreUnavailable(f"journal unavailable: {self._last_error}")
        base = self._next
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        job = _Job("durable", base, list(commands), fut, clear=self._suspect)
        self._submit(job)
        t0 = time.perf_counter_ns()
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), self.config.commit_timeout)
        except TimeoutError:
            job.abandoned = True
            self._inflight = fut
            self._suspect = True
            self._failed(f"commit timed out after {self.config.commit_timeout:g} s")
            self.counters["timeouts"] += 1
            self.counters["refused_batches"] += 1
            log.error(
                "journal: commit of %d command(s) at index %d took over %.1f s; refused",
                len(commands),
                base,
                self.config.commit_timeout,
            )
            raise StoreUnavailable(
                f"journal commit timed out after {self.config.commit_timeout:g} s"
            ) from None
        except Exception as e:
            self._suspect = True
            self.counters["refused_batches"] += 1
            self._failed(_first_line(e))
            raise StoreUnavailable(f"journal commit failed: {_first_line(e)}") from e
        self.commit_us.append((time.perf_counter_ns() - t0) // 1000)
        self._next = base + len(commands)
        self._suspect = False
        if self._failures:
            log.warning("journal: commits succeed again after %d failure(s)", self._failures)
            self._failures = 0
        self.counters["batches"] += 1
        self.counters["commands"] += len(commands)

    def _failed(self, why: str) -> None:
        """Remember a failed commit: refuse at once for a short, growing pause."""
        self._failures += 1
        self._last_error = why
        pause = min(1.0, 0.05 * 2 ** min(self._failures - 1, 5))
        self._retry_at = time.monotonic() + pause

    def _append_fast(self, commands: list[Command]) -> None:
        assert self._next is not None
        n = len(commands)
        base = self._next
        self._next += n
        if not self._gap and self._pending + n > self.config.fast_max_pending:
            self._gap = True
            log.error(
                "journal (fast): %d commands are waiting for the database (bound %d); "
                "skipping from index %d until a snapshot covers them",
                self._pending,
                self.config.fast_max_pending,
                base,
            )
        if self._gap:
            self.counters["fast_skipped"] += n
        else:
            with self._cv:
                idle = not self._jobs
                self._pending += n
                self._jobs.append(_Job("fast", base, list(commands)))
                if idle or self._pending >= self.config.max_rows_per_txn:
                    self._cv.notify()  # otherwise the writer is busy or lingering anyway
        self.counters["batches"] += 1
        self.counters["commands"] += n
        self._place_deferred()

    def _submit(self, job: _Job) -> None:
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()

    def _writer_main(self) -> None:
        while True:
            try:
                more = self._writer_step()
                self.thread_cpu_s["journal"] = time.thread_time()
                if not more:
                    return
            except Exception:  # a bug here must not stop the journal: log, go on
                log.exception("journal writer: unexpected error")
                time.sleep(0.1)

    def _next_group(self) -> list[_Job] | None:
        jobs = self._jobs
        with self._cv:
            while not jobs and not self._stopping:
                self._cv.wait()
            if not jobs:
                return None
            if jobs[0].kind == "fast" and self._pending < self.config.max_rows_per_txn:
                # fast mode lingers a moment so batches pile up: fewer, larger
                # transactions, and fewer GIL hand-overs with the engine thread
                self._cv.wait_for(
                    lambda: self._stopping or self._pending >= self.config.max_rows_per_txn,
                    timeout=self.config.linger,
                )
            group = [jobs[0]]
            if group[0].kind == "fast":
                n = len(group[0].commands)
                for j in itertools.islice(jobs, 1, None):
                    if j.kind != "fast" or n + len(j.commands) > self.config.max_rows_per_txn:
                        break
                    group.append(j)
                    n += len(j.commands)
            return group

    def _done(self, group: list[_Job]) -> None:
        with self._cv:
            for _ in group:
                self._jobs.popleft()
            if group[0].kind == "fast":
                self._pending -= sum(len(j.commands) for j in group)
            self._cv.notify_all()

    def _writer_step(self) -> bool:
        """Run the next job (or group of fast batches); False once stopped and drained."""
        group = self._next_group()
        if group is None:
            return False
        job = group[0]
        fut = job.future
        if job.tries == 0 and fut is not None and not fut.set_running_or_notify_cancel():
            self._done(group)  # cancelled while queued
            return True
        try:
            result = self._run_job(group)
        except CodecError as e:  # a command that cannot be journaled: never retried
            self._done(group)
            log.error("journal: cannot encode a command: %s", e)
            if job.kind == "fast":
                self._gap = True  # the next snapshot covers the hole
            if job.future is not None:
                job.future.set_exception(e)
            return True
        except Exception as e:
            job.tries += 1
            retry = job.kind in ("fast", "snapshot") and not (self._stopping and job.tries > 3)
            if retry:
                self.counters["write_retries"] += 1
                if job.tries in (1, 10) or job.tries % 100 == 0:
                    log.error(
                        "journal writer: %s write failed (try %d), retrying: %s",
                        job.kind,
                        job.tries,
                        _first_line(e),
                    )
                time.sleep(min(2.0, 0.05 * job.tries))
                return True
            self._done(group)
            if job.kind in ("fast", "snapshot"):
                log.error("journal writer: gave up a %s write at close: %s", job.kind, e)
            if job.future is not None:
                job.future.set_exception(e)
            return True
        self._done(group)
        if job.future is not None:
            job.future.set_result(result)
        return True

    def _run_job(self, group: list[_Job]) -> Any:
        job = group[0]
        if self.fault is not None:
            self.fault(job.kind)
        if job.kind == "durable":
            rows = J.encode_rows(job.base, job.commands)
            with self._jdb.begin(urgent=True) as conn:
                J.write_rows(conn, rows, clear_from=job.base if job.clear else None)
            if job.abandoned:  # the loop refused this batch while it was committing
                with self._jdb.begin(urgent=True) as conn:
                    J.write_rows(conn, [], clear_from=job.base)
                self.counters["abandoned_removed"] += 1
                log.warning(
                    "journal: removed the late commit of a refused batch at index %d", job.base
                )
            return None
        if job.kind == "fast":
            rows = []
            for j in group:
                rows.extend(J.encode_rows(j.base, j.commands))
            with self._jdb.begin(urgent=True) as conn:
                J.write_rows(conn, rows, clear_from=None)
            return None
        if job.kind == "snapshot":
            with self._jdb.begin() as conn:
                self._write_snapshot(conn, job.payload)
            return None
        if job.kind == "call":
            with self._jdb.begin() as conn:
                return job.payload(conn)
        raise AssertionError(job.kind)

    async def call(self, fn: Callable[[Connection], Any]) -> Any:
        """Run `fn(conn)` in a transaction on the journal writer, after what is queued."""
        if self._writer is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=fn))
        return await asyncio.wrap_future(fut)

    async def flush(self) -> None:
        """Wait until everything queued so far (fast-mode batches, a snapshot in
        progress, query-table rows) is committed."""
        if self._snap_task is not None:
            with contextlib.suppress(Exception):
                await self._snap_task
        if self._writer is not None:
            await self.call(lambda conn: None)
        await self._flush_queries()

    # ================================================================ snapshots

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
        t = SnapshotRow.__table__  # type: ignore[attr-defined]
        conn.execute(insert(t), [row])
        keep = [
            r[0]
            for r in conn.execute(
                select(t.c.id)
                .order_by(t.c.journal_idx.desc(), t.c.id.desc())
                .limit(self.config.keep_snapshots)
            )
        ]
        conn.execute(delete(t).where(t.c.id.not_in(keep)))

    # ================================================================ query tables

    def consume(self, subscription: Any) -> asyncio.Task[None]:
        """Start a task that feeds event batches from `subscription` (an async iterator
        of `list[Event]`, e.g. `runtime.subscribe(...)`) to the query writer."""
        if self._pthread is None:
            self.start()

        async def run() -> None:
            async for batch in subscription:
                self.feed(batch)

        self._consumer = asyncio.get_running_loop().create_task(run(), name="margincall-query")
        return self._consumer

    def feed(self, events: list[Event]) -> None:
        """Hand a batch of events to the query writer (never blocks)."""
        if not events:
            return
        with self._pcv:
            idle = not self._pq
            self._pq.append(events)
            if idle:
                self._pcv.notify()

    def _query_main(self) -> None:
        proj = self._projector
        assert proj is not None
        q = self._pq
        limit = self.config.max_rows_per_txn
        gap_frozen = False
        while True:
            with self._pcv:
                while not q and not self._pstop:
                    self._p_busy = False
                    self._pcv.notify_all()
                    self._pcv.wait()
                if q and not self._pstop and not self._p_flush:
                    self._pcv.wait(self.config.linger)  # let events pile up (see _next_group)
                if not q:
                    self._p_busy = False
                    self._pcv.notify_all()
                    return
                self._p_busy = True
                take: list[Event] = []
                while q and (not take or len(take) + len(q[0]) <= limit):
                    take.extend(q.popleft())
            if take[0].seq <= proj.last_seq:  # already projected (recovery overlap)
                take = [e for e in take if e.seq > proj.last_seq]
                if not take:
                    continue
            if take[0].seq != proj.last_seq + 1 and not gap_frozen:
                gap_frozen = True
                self.counters["query_gaps"] += 1
                log.error(
                    "query tables: events %d..%d were dropped (writer too slow); the tables "
                    "miss them until the next start rebuilds them from the journal",
                    proj.last_seq + 1,
                    take[0].seq - 1,
                )
            rows = proj.project(take)
            tries = 0
            while True:
                try:
                    if self.fault is not None:
                        self.fault("query")
                    self.counters["query_skipped"] += P.commit_rows(
                        self._qdb, rows, advance=not gap_frozen
                    )
                    break
                except Exception as e:
                    tries += 1
                    self.counters["query_retries"] += 1
                    if self._pstop and tries >= 3:
                        log.error("query tables: gave up a write at close: %s", _first_line(e))
                        break
                    if tries in (1, 10) or tries % 100 == 0:
                        log.error("query tables: write failed (try %d): %s", tries, _first_line(e))
                    time.sleep(min(2.0, 0.05 * tries))
            self.counters["query_events"] += len(take)
            self.thread_cpu_s["query"] = time.thread_time()

    def _ask_query_process(self, kind: str) -> None:
        """Blocking: `flush` or `stop` the query process up to the last journal index."""
        assert self._qproc is not None and self._next is not None
        got = self._qproc.request(kind, self._next - 1)
        for k in ("query_events", "query_gaps", "query_retries", "query_skipped"):
            if k in got:
                self.counters[k] = int(got[k])
        if "cpu_s" in got:
            self.thread_cpu_s["query"] = float(got["cpu_s"])

    async def _flush_queries(self) -> None:
        if self._qproc is not None:
            await asyncio.to_thread(self._ask_query_process, "flush")
            return
        if self._pthread is None:
            return

        def wait() -> None:
            with self._pcv:
                self._p_flush = True
                self._pcv.notify_all()
                try:
                    while self._pq or self._p_busy:
                        self._pcv.wait(0.05)
                finally:
                    self._p_flush = False

        # let the consumer task move what the runtime queued
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.to_thread(wait)

    # ================================================================ API keys

    def save_api_key(self, record: Any) -> concurrent.futures.Future[Any]:
        """Persist a `KeyRecord` (hash, account, created_ms); for `KeyStore.on_issue`.
        Queued on the journal writer; the future is done once it is committed (the
        admin API answers only then: `KeyStore.issue_saved`)."""
        row = {
            "key_hash": record.key_hash,
            "account": record.account,
            "created_ms": record.created_ms,
        }
        return self._insert_once(ApiKeyRow, "key_hash", row)

    def _insert_once(
        self, table: Any, key: str, row: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        """Queue an insert of `row` into `table` on the journal writer, ignored when `key`
        already holds its value; the future is done once it is committed."""

        def write(conn: Connection) -> None:
            t = table.__table__
            ins: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t)
            conn.execute(ins.on_conflict_do_nothing(index_elements=[key]), [row])

        if self._writer is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=write))
        return fut

    def delete_api_key(self, key_hash: str) -> None:
        def write(conn: Connection) -> None:
            t = ApiKeyRow.__table__  # type: ignore[attr-defined]
            conn.execute(delete(t).where(t.c.key_hash == key_hash))

        if self._writer is None:
            self.start()
        self._submit(_Job("call", future=concurrent.futures.Future(), payload=write))

    def load_api_keys(self) -> list[Any]:
        """Every stored `KeyRecord` (blocking; at start-up)."""
        from exchange.auth import KeyRecord

        t = ApiKeyRow.__table__  # type: ignore[attr-defined]
        self._qdb.create((ApiKeyRow,))
        with self._qdb.connect() as conn:
            return [
                KeyRecord(r.key_hash, int(r.account), int(r.created_ms))
                for r in conn.execute(select(t).order_by(t.c.created_ms))
            ]

    # ================================================================ session tokens

    def save_session_token(self, record: Any) -> concurrent.futures.Future[Any]:
        """Persist a `SessionRecord` (hash, account, times, label); for
        `SessionTokens.on_issue`. The future is done once it is committed."""
        row = {
            "token_hash": record.token_hash,
            "account": record.account,
            "created_ms": record.created_ms,
            "expires_ms": record.expires_ms,
            "label": record.label,
        }
        return self._insert_once(SessionTokenRow, "token_hash", row)

    def delete_session_tokens(self, records: list[Any]) -> concurrent.futures.Future[Any]:
        """Delete revoked or expired `SessionRecord`s; for `SessionTokens.on_revoke`."""
        hashes = [r.token_hash for r in records]

        def write(conn: Connection) -> None:
            t = SessionTokenRow.__table__  # type: ignore[attr-defined]
            conn.execute(delete(t).where(t.c.token_hash.in_(hashes)))

        if self._writer is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=write))
        return fut

    def load_session_tokens(self) -> list[Any]:
        """Every stored `SessionRecord` (blocking; at start-up)."""
        from exchange.sessions import SessionRecord

        t = SessionTokenRow.__table__  # type: ignore[attr-defined]
        self._qdb.create((SessionTokenRow,))
        with self._qdb.connect() as conn:
            return [
                SessionRecord(
                    r.token_hash, int(r.account), int(r.created_ms), int(r.expires_ms), r.label
                )
                for r in conn.execute(select(t).order_by(t.c.created_ms))
            ]

    # ================================================================ closing

    async def close(self, exchange: Exchange | None = None) -> None:
        """Flush, write a final snapshot of `exchange` (when given; call after the
        runtime stopped), stop the threads, release the database."""
        if self._closed:
            return
        try:
            if self._snap_task is not None:
                with contextlib.suppress(Exception):
                    await self._snap_task
            if (
                exchange is not None
                and self.config.final_snapshot
                and self._next is not None
                and self._covered() != self._last_snap_idx
                and (self.durable or self._applied is not None)
            ):
                self._take_snapshot(exchange)
                assert self._snap_task is not None
                with contextlib.suppress(Exception):
                    await self._snap_task
            await self.flush()
        finally:
            self._closed = True
            if self._consumer is not None:
                self._consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._consumer
            await asyncio.to_thread(self._stop_threads)
            self._jdb.dispose()
            self._qdb.dispose()

    def _stop_threads(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        with self._pcv:
            self._pstop = True
            self._pcv.notify_all()
        if self._writer is not None:
            self._writer.join()
        if self._pthread is not None:
            self._pthread.join()
        if self._qproc is not None:
            self._ask_query_process("stop")

    def close_sync(self) -> None:
        """Stop the threads and release the database (no final snapshot)."""
        self._closed = True
        self._stop_threads()
        self._jdb.dispose()
        self._qdb.dispose()

    # ================================================================ introspection

    @property
    def next_index(self) -> int:
        assert self._next is not None
        return self._next

    def stats(self) -> dict[str, Any]:
        pauses = sorted(self.snapshot_pauses_us)
        commits = sorted(self.commit_us)

        def pct(xs: list[int], p: float) -> int | None:
            return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None

        return {
            "mode": self.config.mode,
            "next_index": self._next,
            "pending": self._pending,
            "gap": self._gap,
            **self.counters,
            "snapshot_pause_us_max": pauses[-1] if pauses else None,
            "snapshot_pause_us_p50": pct(pauses, 0.5),
            "commit_us_p50": pct(commits, 0.5),
            "commit_us_p99": pct(commits, 0.99),
            "query_backlog": sum(len(b) for b in self._pq),
            "query_writer": "process" if self._qproc is not None else "thread",
            "journal_thread_cpu_s": round(self.thread_cpu_s["journal"], 3),
            "query_thread_cpu_s": round(self.thread_cpu_s["query"], 3),
        }


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


__all__ = ["FORMAT", "RecoveryInfo", "Store", "StoreConfig"]
