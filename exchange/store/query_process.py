"""The query-table writer in a process of its own, fed by the journal (fast mode).

Why: in one interpreter the query writer's Python work (projecting ~4.5 events per
command into rows, binding them for the driver) takes the GIL from the engine, and on
a 2-core machine that was most of what fast mode cost it. A forked process shares no
GIL with the engine, and reading the journal costs the engine nothing at all.

How: `QueryProcess.start` forks when the store is attached, before any of the store's
threads exist, so the child holds a copy of the recovered exchange and of the
projector. The child reads the journal rows the journal writer commits (after the index
the exchange was recovered at), applies each command to its copy — the core is
deterministic, so it sees the very events the engine emitted — and writes the query
tables as the thread would, in transactions of at most `max_rows_per_txn` rows, each
with the new watermark. Fast-mode journal rows are never rewritten (only durable mode
removes the rows of a batch it refused), which is what makes the journal a safe feed.

Control: one line per request on a pipe, ``flush N`` (answer once every journal row up
to index N is projected, or none can be) and ``stop N`` (the same, then exit), each
answered with one JSON line of counters. A hole in the journal (fast mode skipped
commands while the database was too slow) freezes the tables where they are, as a gap
does for the thread writer; the next start rebuilds them (see recovery). The child
exits when the parent goes away (its end of the pipe closes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import time
from typing import Any

from sqlalchemy import select as sql_select

from exchange.core.engine import Exchange

from . import journal as J
from . import projection as P
from .codec import decode_command
from .db import Database
from .journal_process import fork_writer

log = logging.getLogger("margincall.store")

PAGE = 1_000  # journal rows read per step
# the child's scheduling priority below the server's: when the CPUs are all busy the
# engine comes first and the tables lag (they catch up when the load drops)
NICE = 10


class QueryProcess:
    """The parent's handle on the forked query writer."""

    def __init__(self, pid: int, ctl: int, ack: int) -> None:
        self.pid = pid
        self._ctl = ctl
        self._ack = os.fdopen(ack, "rb")
        self.counters: dict[str, Any] = {}
        self.exited = False

    @classmethod
    def start(
        cls,
        url: str,
        exchange: Exchange,
        projector: P.Projector,
        after: int,
        max_rows: int,
        linger: float,
    ) -> QueryProcess:
        """Fork the writer; it follows the journal from index `after` + 1."""
        ctl_r, ctl_w = os.pipe()
        ack_r, ack_w = os.pipe()

        def run() -> None:  # pragma: no cover - the child
            with contextlib.suppress(OSError):
                os.nice(NICE)
            _Child(url, exchange, projector, after, max_rows, linger, ctl_r, ack_w).run()

        pid = fork_writer(run, (ctl_w, ack_r), "query process")
        os.close(ctl_r)
        os.close(ack_w)
        return cls(pid, ctl_w, ack_r)

    def request(self, kind: str, upto: int) -> dict[str, Any]:
        """Blocking: ask for `flush` or `stop` up to journal index `upto`; the counters."""
        if self.exited:
            return self.counters
        try:
            os.write(self._ctl, f"{kind} {upto}\n".encode())
            line = self._ack.readline()
        except OSError:
            line = b""
        if not line:  # the child is gone
            self._reap()
            return self.counters
        self.counters = json.loads(line)
        if kind == "stop":
            self._reap()
        return self.counters

    def _reap(self) -> None:
        if self.exited:
            return
        self.exited = True
        with contextlib.suppress(OSError):
            os.close(self._ctl)
        self._ack.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class _Child:  # pragma: no cover - runs in the forked process (tested through the store)
    def __init__(
        self,
        url: str,
        exchange: Exchange,
        projector: P.Projector,
        after: int,
        max_rows: int,
        linger: float,
        ctl: int,
        ack: int,
    ) -> None:
        self.exchange = exchange
        self.projector = projector
        self.pos = after
        self.max_rows = max_rows
        self.linger = linger
        self.ctl = ctl
        self.ack = ack
        # fresh engines: the parent's connections are never used here
        self.reader = Database(url, synchronous="NORMAL", timeout=10.0, immediate=False)
        self.writer = Database(url, synchronous="NORMAL", timeout=10.0)
        self.frozen = False
        self.counters = {"query_events": 0, "query_gaps": 0, "query_retries": 0, "query_skipped": 0}

    def run(self) -> None:
        buf = b""
        while True:
            progressed = self.step() if not self.frozen else False
            wait = 0.0 if progressed else self.linger
            ready, _, _ = select.select([self.ctl], [], [], wait)
            if not ready:
                continue
            data = os.read(self.ctl, 4096)
            if not data:
                return  # the parent is gone
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                kind, upto = line.decode().split()
                while not self.frozen and self.pos < int(upto) and self.step():
                    pass
                self.answer()
                if kind == "stop":
                    return

    def answer(self) -> None:
        out = dict(self.counters, position=self.pos, cpu_s=round(time.process_time(), 3))
        view = memoryview(json.dumps(out).encode() + b"\n")
        while view:
            view = view[os.write(self.ack, view) :]

    def step(self) -> bool:
        """Project the next page of journal rows; False when there was none."""
        t = J._J
        with self.reader.connect() as conn:
            rows = conn.execute(
                sql_select(t.c.idx, t.c.type, t.c.payload)
                .where(t.c.idx > self.pos)
                .order_by(t.c.idx)
                .limit(PAGE)
            ).all()
        if not rows:
            return False
        handle = self.exchange.handle
        events: list[Any] = []
        for idx, type_name, payload in rows:
            if idx != self.pos + 1:
                self.frozen = True
                self.counters["query_gaps"] += 1
                log.error(
                    "query tables: the journal skips from %d to %d; the tables stay at %d "
                    "until the next start rebuilds them",
                    self.pos,
                    idx,
                    self.pos,
                )
                break
            try:
                events.extend(handle(decode_command(type_name, payload)))
            except Exception:  # a core bug: the runtime logs and goes on, so do we
                log.exception("query process: the core raised on journal row %d", idx)
            self.pos = idx
            if len(events) >= self.max_rows:
                self.write(events)
                events = []
        if events:
            self.write(events)
        return True

    def write(self, events: list[Any]) -> None:
        rows = self.projector.project(events)
        tries = 0
        while True:
            try:
                self.counters["query_skipped"] += P.commit_rows(self.writer, rows)
                break
            except Exception as e:
                tries += 1
                self.counters["query_retries"] += 1
                if tries >= 100:  # over a minute and a half: skip (the watermark stays)
                    log.error("query tables: gave up a write after %d tries: %s", tries, e)
                    self.counters["query_skipped"] += rows.events
                    self.frozen = True
                    break
                if tries in (1, 10):
                    log.error("query tables: write failed (try %d): %s", tries, e)
                time.sleep(min(2.0, 0.05 * tries))
        self.counters["query_events"] += len(events)
