"""`Store`: the journal, the snapshots and the query tables, around the runtime.

The runtime sees four hooks (see `exchange.runtime`): `durable`, `append(batch)`,
`snapshot_due()` and `snapshot_hook(exchange)`; `attach(runtime)` wires them, subscribes
the query-table writer to the event stream and lets snapshots know how many commands
the engine has applied.

Threads. Nothing here blocks the event loop: every database call runs on one of two
threads the store owns. The *journal writer* runs journal batches, snapshot writes and
small admin writes strictly in submission order; the *query writer* projects event
batches into rows and writes them. Both retry transient failures in order. In fast mode
with a database file both are forked processes instead, so their work never takes the
engine's GIL: the journal writer fed through a pipe, in the same order
(`journal_process`), the query writer by the committed journal (`query_process`).

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

The store is assembled from one class per room, all on the one state `Store.__init__`
sets up: `writer.JournalWriter` (the journal and its writer thread),
`snapshots.Snapshots`, `queries.QueryWriter` (the query tables) and
`credentials.Credentials` (API keys and session tokens). This module opens the database,
recovers, wires the store into a runtime, flushes and closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, insert, select

from exchange.core.engine import Exchange
from exchange.core.events import Event
from exchange.core.instruments import Instrument

from . import projection as P
from .codec import from_jsonable, to_jsonable
from .credentials import Credentials
from .db import DEFAULT_DB_URL, Database
from .journal_process import JournalProcess
from .queries import QueryWriter
from .query_process import QueryProcess
from .recovery import RecoveryInfo, run_recovery
from .snapshots import Snapshots
from .tables import (
    JOURNAL_TABLES,
    QUERY_TABLES,
    StoreMeta,
)
from .writer import JournalWriter, _Job

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
    # durable mode: query-table rows per transaction. A journal commit (an order's
    # acknowledgement) waits for the query transaction holding SQLite's one write lock,
    # so these stay short (measured: a 200-student class, the journal's wait p99 14 -> 6 ms)
    durable_query_rows: int = 500
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
    # "process": fast mode's journal is written by a forked process fed through a pipe
    # (a database file; see `journal_process`); "thread": by a thread of this process;
    # "auto": process where it can be, else thread. Durable mode always uses the thread.
    journal_writer: str = "auto"

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
        if self.journal_writer not in ("auto", "thread", "process"):
            raise ValueError("journal_writer must be auto, thread or process")


class Store(JournalWriter, Snapshots, QueryWriter, Credentials):
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
        self._jproc: JournalProcess | None = None  # fast: the journal writer process
        self._jproc_dead: JournalProcess | None = None
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
        self._fault: Callable[[str], None] | None = None
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
            "journal_process_deaths": 0,
        }
        self.snapshot_pauses_us: deque[int] = deque(maxlen=1000)
        self.thread_cpu_s: dict[str, float] = {"journal": 0.0, "query": 0.0}
        self.commit_us: deque[int] = deque(maxlen=10_000)

    # ================================================================ opening

    @property
    def fault(self) -> Callable[[str], None] | None:
        """Fault injection for tests: called with a job kind before each database job of
        this process. Setting one while the journal writer process runs hands the
        journal over to the thread (after the process committed what it was given), so
        the hook sees every journal job."""
        return self._fault

    @fault.setter
    def fault(self, fn: Callable[[str], None] | None) -> None:
        self._fault = fn
        jp = self._jproc
        if fn is not None and jp is not None and not jp.dead:
            jp.stop()
            self._absorb(jp)
            self._jproc = None
            self.start()

    def _absorb(self, jp: JournalProcess) -> None:
        """Take the journal process's last counters into this store's."""
        self.counters["write_retries"] += int(jp.counters.get("write_retries", 0))
        self.thread_cpu_s["journal"] += float(jp.counters.get("cpu_s", 0.0))

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
            # no open connection may be carried into a child: SQLite shares its
            # file and WAL-index state between the connections of a process, and the
            # child's own connections would inherit a stale one
            self._qdb.dispose()
            self._jdb.dispose()
            self._qproc = QueryProcess.start(
                self.url,
                runtime.exchange,
                proj,
                self._base,
                self.config.max_rows_per_txn,
                self.config.linger,
            )
        if self._journal_process_wanted():
            self._jdb.dispose()  # as for the query process above
            self._jproc = JournalProcess.start(
                self.url,
                self._next - 1,
                self.config.max_rows_per_txn,
                self.config.linger,
                self.config.commit_timeout * 0.8,
                self._jdb,
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

    def _journal_process_wanted(self) -> bool:
        cfg = self.config
        if cfg.journal_writer == "thread" or self._writer is not None or self._fault:
            return False
        possible = not self.durable and not self._jdb.memory and hasattr(os, "fork")
        if cfg.journal_writer == "process" and not possible:
            raise ValueError("journal_writer='process' needs fast mode, a database file and fork")
        return possible and (cfg.journal_writer == "process" or sys.platform == "linux")

    def start(self) -> None:
        """Start the writer threads (idempotent; `append` starts them too)."""
        if self._next is None:
            raise RuntimeError("call recover() before using the store")
        if self._writer is None and self._jproc is None:
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

    async def flush(self) -> None:
        """Wait until everything queued so far (fast-mode batches, a snapshot in
        progress, query-table rows) is committed."""
        if self._snap_task is not None:
            with contextlib.suppress(Exception):
                await self._snap_task
        await self._barrier()
        await self._flush_queries()

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
        jp = self._jproc
        if jp is not None:
            jp.stop()
            if jp.dead:
                self._jproc_dead = jp
            else:
                self._absorb(jp)
            self._jproc = None
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
            "pending": self._queued(),
            "gap": self._gap,
            **self.counters,
            "snapshot_pause_us_max": pauses[-1] if pauses else None,
            "snapshot_pause_us_p50": pct(pauses, 0.5),
            "commit_us_p50": pct(commits, 0.5),
            "commit_us_p99": pct(commits, 0.99),
            "query_backlog": sum(len(b) for b in self._pq),
            "query_writer": "process" if self._qproc is not None else "thread",
            "journal_writer": "process" if self._jproc is not None else "thread",
            "journal_thread_cpu_s": round(self._journal_cpu(), 3),
            # the writer process's helpers in this process (pipe writes, acknowledgements)
            "journal_pipe_cpu_s": round(self._pipe_cpu(), 3),
            "query_thread_cpu_s": round(self.thread_cpu_s["query"], 3),
        }

    def _journal_cpu(self) -> float:
        """CPU seconds of the journal writer: its thread, or its process while it runs."""
        jp = self._jproc
        live = float(jp.counters.get("cpu_s", 0.0)) if jp is not None else 0.0
        return self.thread_cpu_s["journal"] + live

    def _pipe_cpu(self) -> float:
        return sum(
            sum(jp.cpu_s.values()) for jp in (self._jproc, self._jproc_dead) if jp is not None
        )


__all__ = ["FORMAT", "RecoveryInfo", "Store", "StoreConfig"]
