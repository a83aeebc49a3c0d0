"""The journal writer: the thread that commits journal batches, and `append`.

A room of `Store` (see `exchange.store.store`): it owns the job queue (`_jobs`, `_cv`),
the writer thread, the next journal index, the durable mode's failure pause and the
fast mode's pending count and gap. Every database write of the store's journal side
(journal batches, snapshots, admin writes through `call`) runs here, strictly in
submission order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from exchange.core.commands import Command
from exchange.errors import StoreUnavailable

from . import journal as J
from .codec import CodecError, encode_batch

log = logging.getLogger("margincall.store")


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


class JournalWriter:
    """`Store`'s journal: `append` (durable or fast), the writer thread, `call`."""

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

    def _queued(self) -> int:
        """Fast mode: commands handed to the journal writer and not yet committed."""
        jp = self._jproc
        return self._pending + (jp.pending if jp is not None else 0)

    def _append_fast(self, commands: list[Command]) -> None:
        assert self._next is not None
        jp = self._jproc
        if jp is not None and jp.dead:
            self._take_over()
            jp = None
        n = len(commands)
        base = self._next
        self._next += n
        if not self._gap and self._queued() + n > self.config.fast_max_pending:
            self._gap = True
            log.error(
                "journal (fast): %d commands are waiting for the database (bound %d); "
                "skipping from index %d until a snapshot covers them",
                self._queued(),
                self.config.fast_max_pending,
                base,
            )
        if self._gap:
            self.counters["fast_skipped"] += n
        elif jp is not None:
            try:
                data = encode_batch(commands)
            except CodecError as e:  # a command that cannot be journaled
                log.error("journal: cannot encode a command: %s", e)
                self._gap = True  # the next snapshot covers the hole
                self.counters["fast_skipped"] += n
            else:
                jp.journal(base, n, data)
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

    def _take_over(self) -> None:
        """The journal writer process died: journal on a thread from here on, with a
        hole where the commands it did not acknowledge were (a snapshot closes it)."""
        jp = self._jproc
        assert jp is not None
        self._jproc = None
        self._jproc_dead = jp
        self._gap = True
        self.counters["journal_process_deaths"] += 1
        self.counters["fast_skipped"] += max(0, jp.sent_idx - jp.committed_idx)
        log.error(
            "journal (fast): %s; the journal continues on a thread of this process from "
            "the next snapshot, which covers them",
            jp.death,
        )
        self.start()

    def _submit(self, job: _Job) -> None:
        jp = self._jproc
        if jp is not None and jp.dead:
            self._take_over()
            jp = None
        if jp is not None:
            if job.kind == "snapshot":
                fut = jp.request(b"S", dict(job.payload, _keep=self.config.keep_snapshots))
            elif job.kind == "call":
                fut = jp.request(b"C", job.payload)
            else:
                raise AssertionError(job.kind)
            if job.future is not None:
                _chain(fut, job.future)
            return
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

    async def _barrier(self) -> None:
        """Wait until everything handed to the journal writer so far is committed."""
        jp = self._jproc
        if jp is not None and jp.dead:
            self._take_over()
            jp = None
        if jp is not None:
            await asyncio.wrap_future(jp.request(b"F"))
        elif self._writer is not None:
            await self.call(lambda conn: None)

    async def call(self, fn: Callable[[Connection], Any]) -> Any:
        """Run `fn(conn)` in a transaction on the journal writer, after what is queued.
        With the writer process, `fn` is pickled (a module-level function, or a
        `functools.partial` of one); one that cannot be runs in this process, in order."""
        if self._writer is None and self._jproc is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=fn))
        return await asyncio.wrap_future(fut)


def _chain(src: concurrent.futures.Future[Any], dst: concurrent.futures.Future[Any]) -> None:
    """Complete `dst` as `src` completes."""

    def done(f: concurrent.futures.Future[Any]) -> None:
        if dst.done():
            return
        e = f.exception()
        if e is None:
            dst.set_result(f.result())
        else:
            dst.set_exception(e)

    src.add_done_callback(done)
