"""The query-table writer: event batches -> rows, on a thread or in the query process.

A room of `Store` (see `exchange.store.store`): it owns the event queue (`_pq`, `_pcv`),
the query thread and its projector, the consumer task, and the requests to the forked
query process (`exchange.store.query_process`) when that writes the tables instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from exchange.core.events import Event

from . import projection as P
from .writer import _first_line

log = logging.getLogger("margincall.store")


class QueryWriter:
    """`Store`'s query tables: `consume`, `feed`, the query thread, and their flush."""

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
        cfg = self.config
        limit = (
            min(cfg.max_rows_per_txn, cfg.durable_query_rows)
            if self.durable
            else cfg.max_rows_per_txn
        )
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
