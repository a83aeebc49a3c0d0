"""The fast mode's journal writer in a process of its own, fed through a pipe.

Why: as a thread of the server's process the journal writer's Python work (encoding
each command, binding the rows for the driver) took the GIL from the engine: ~5 µs a
command against the engine's ~30. Here the engine encodes each batch once
(`codec.encode_batch`, one orjson call: ~0.6 µs a command) and a sender thread writes
the bytes to a pipe, outside the GIL; the forked child turns them into journal rows
(checksums included) and commits them, in transactions of at most `max_rows` rows.

Order: one channel carries everything the journal writer runs: journal batches,
snapshot rows, admin writes (`call`: the function is pickled; one that cannot be runs
on the sender thread in this process, once the child has committed everything before
it, and nothing after it is sent until it is done) and barriers (`flush`, `stop`). The
child runs them strictly in that order, so a snapshot is written after the commands it
covers and `flush()` returns once everything sent before it is committed.

Acknowledgements come back on a second pipe, read by a thread that resolves the
futures and counts what is still pending (sent, not committed): the fast mode's bound
(`fast_max_pending`) counts those, whether they wait in this process or in the child.

Failure: the child retries failed journal and snapshot writes as the thread did. If
it dies, the reader sees its pipe close: the death is logged at ERROR level with the
commands that were sent and not acknowledged, every waiting future fails with
`StoreUnavailable`, and the store takes the journal over on a thread of its own with
a hole where those commands were (see `writer`): a snapshot closes it, as it closes the
hole fast mode leaves when the database is too slow. When the server dies, the child
stops at once (its input pipe closes, and on Linux it gets SIGKILL with its parent): a
transaction is atomic, so the journal stays a prefix of the history.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import logging
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from exchange.errors import StoreUnavailable

from . import journal as J
from .codec import checksum, decode_batch
from .db import Database

log = logging.getLogger("margincall.store")

_HEAD = struct.Struct(">cQ")  # kind, body length
_BASE = struct.Struct(">QI")  # first journal index, command count
_PIPE_SIZE = 1 << 20  # Linux: a larger pipe buffer, so the sender rarely blocks
_F_SETPIPE_SZ = 1031


def _frame(kind: bytes, body: bytes) -> bytes:
    return _HEAD.pack(kind, len(body)) + body


class JournalProcess:
    """The parent's handle on the forked journal writer (see the module docstring)."""

    def __init__(self, pid: int, out: int, ack: int, jdb: Database, linger: float = 0.0) -> None:
        self.pid = pid
        self.linger = linger  # seconds the sender lets journal batches pile up
        self._out = out
        self._ack = ack
        self._jdb = jdb  # for a call that cannot be pickled (run in this process)
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._queue: deque[bytes | tuple[Any, concurrent.futures.Future[Any]]] = deque()
        self._waiting: dict[int, concurrent.futures.Future[Any]] = {}
        self._mid = 0
        self.pending = 0  # commands sent (or queued to send), not yet committed
        self.sent_idx = 0  # the last journal index handed over
        self.committed_idx = 0  # the last journal index the child acknowledged
        self.counters: dict[str, Any] = {}
        self.dead = False  # the child died (not stopped)
        self.death = ""
        self._stopping = False
        self._sender = threading.Thread(target=self._send_main, name="mc-journal-send", daemon=True)
        self._reader = threading.Thread(target=self._read_main, name="mc-journal-ack", daemon=True)
        self.cpu_s = {"sender": 0.0, "reader": 0.0}
        self.writes = 0  # writes to the pipe
        self._sender.start()
        self._reader.start()

    @classmethod
    def start(
        cls, url: str, after: int, max_rows: int, linger: float, timeout: float, jdb: Database
    ) -> JournalProcess:
        """Fork the writer; its journal continues after index `after`."""
        out_r, out_w = os.pipe()
        ack_r, ack_w = os.pipe()
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(out_w, _F_SETPIPE_SZ, _PIPE_SIZE)

        def run() -> None:  # pragma: no cover - the child
            # the server decides when its writer stops (Ctrl-C reaches the whole process
            # group), and the server's event loop's wake-up socket is not ours
            with contextlib.suppress(ValueError):  # (only the main thread may)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.set_wakeup_fd(-1)
            _Child(url, max_rows, linger, timeout, out_r, ack_w).run()

        pid = fork_writer(run, (out_w, ack_r), "journal process")
        os.close(out_r)
        os.close(ack_w)
        handle = cls(pid, out_w, ack_r, jdb, linger)
        handle.sent_idx = handle.committed_idx = after
        return handle

    # ------------------------------------------------------------ engine side

    def journal(self, base: int, n: int, data: bytes) -> None:
        """Queue an encoded batch of `n` commands from index `base` (never blocks)."""
        msg = _frame(b"J", _BASE.pack(base, n) + data)
        with self._cv:
            self.pending += n
            self.sent_idx = base + n - 1
            idle = not self._queue
            self._queue.append(msg)
            if idle:
                self._cv.notify()

    def request(self, kind: bytes, payload: Any = None) -> concurrent.futures.Future[Any]:
        """Queue a snapshot row (b"S"), a call (b"C"), a barrier (b"F") or the stop
        (b"Q"); the future is done when the child has run it."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if kind == b"C":
            try:
                body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a closure: run here, in order (see the module docstring)
                self._put(("local", payload), fut)
                return fut
        elif kind == b"S":
            body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            body = b""
        self._put((kind, body), fut)
        return fut

    def _put(self, item: tuple[Any, Any], fut: concurrent.futures.Future[Any]) -> None:
        with self._cv:
            if self.dead or self._stopping:
                fut.set_exception(StoreUnavailable(self.death or "journal process stopped"))
                return
            if item[0] == b"Q":
                self._stopping = True
            self._queue.append((item, fut))
            self._cv.notify()

    # ------------------------------------------------------------ sender thread

    def _send_main(self) -> None:
        q = self._queue
        while True:
            with self._cv:
                while not q:
                    self._cv.wait()
                if self.linger and all(type(item) is bytes for item in q):
                    # Only journal batches: let more pile up (the child lingers as long
                    # before committing anyway). Waking for every turn's batch took the
                    # GIL from the engine hundreds of times a second under a WebSocket
                    # load of small batches; a request (a flush, a snapshot) cuts it short.
                    self._cv.wait(self.linger)
                items = list(q)
                q.clear()
            chunk: list[bytes] = []
            for item in items:
                if isinstance(item, bytes):
                    chunk.append(item)
                    continue
                (kind, body), fut = item
                if kind == "local":
                    self._write(chunk)
                    chunk = []
                    self._run_local(body, fut)
                    continue
                with self._lock:
                    self._mid += 1
                    mid = self._mid
                    self._waiting[mid] = fut
                chunk.append(_frame(kind, struct.pack(">Q", mid) + body))
                if kind == b"Q":
                    self._write(chunk)
                    self.cpu_s["sender"] = time.thread_time()
                    return
            self._write(chunk)
            self.cpu_s["sender"] = time.thread_time()

    def _write(self, chunk: list[bytes]) -> None:
        if not chunk or self.dead:
            return
        self.writes += 1
        view = memoryview(b"".join(chunk))
        try:
            while view:
                view = view[os.write(self._out, view) :]
        except OSError:  # the child is gone: the reader reports it
            pass

    def _run_local(self, fn: Any, fut: concurrent.futures.Future[Any]) -> None:
        """Run a call that cannot be pickled here, once the child has committed what
        was sent before it; the sender sends nothing else meanwhile."""
        barrier: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._mid += 1
            mid = self._mid
            self._waiting[mid] = barrier
        self._write([_frame(b"F", struct.pack(">Q", mid))])
        try:
            barrier.result()
            with self._jdb.begin() as conn:
                fut.set_result(fn(conn))
        except BaseException as e:
            fut.set_exception(e)

    # ------------------------------------------------------------ reader thread

    def _read_main(self) -> None:
        buf = bytearray()
        while True:
            try:
                data = os.read(self._ack, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self._gone()
                return
            buf += data
            while len(buf) >= _HEAD.size:
                kind, n = _HEAD.unpack_from(buf)
                if len(buf) < _HEAD.size + n:
                    break
                body = bytes(buf[_HEAD.size : _HEAD.size + n])
                del buf[: _HEAD.size + n]
                self._acked(kind, body)
            self.cpu_s["reader"] = time.thread_time()

    def _acked(self, kind: bytes, body: bytes) -> None:
        mid, ok, result, committed, idx, counters = pickle.loads(body)
        with self._cv:
            self.pending -= committed
            if idx:
                self.committed_idx = idx
            self.counters = counters
            fut = self._waiting.pop(mid, None) if mid else None
        if fut is not None:
            if ok:
                fut.set_result(result)
            else:
                fut.set_exception(result)

    def _gone(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._ack)
        status = 0
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.pid, 0)
        with self._cv:
            stopped = self._stopping and not self._waiting
            if not stopped:
                self.dead = True
                lost = (
                    f"journal indices {self.committed_idx + 1}..{self.sent_idx} were sent "
                    "and not acknowledged"
                    if self.sent_idx > self.committed_idx
                    else "every journal batch sent was acknowledged"
                )
                self.death = f"journal writer process {self.pid} died ({_describe(status)}); {lost}"
            waiting = list(self._waiting.values())
            self._waiting.clear()
            self._cv.notify_all()
        if not stopped:
            log.error("%s", self.death)
        for fut in waiting:
            if not fut.done():
                fut.set_exception(StoreUnavailable(self.death or "journal process stopped"))

    def stop(self, timeout: float | None = None) -> dict[str, Any]:
        """Blocking: commit everything queued, stop the child; its last counters."""
        fut = self.request(b"Q")
        with contextlib.suppress(Exception):
            fut.result(timeout)
        self._reader.join(timeout)
        with contextlib.suppress(OSError):
            os.close(self._out)
        return self.counters

    def kill(self) -> None:
        """Kill the child (it is dead or hung) and wait for the reader to notice."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reader.join(5)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


def fork_writer(run: Callable[[], None], close: tuple[int, ...], what: str) -> int:
    """Fork a writer process and return its pid. The child closes the parent's ends of
    its pipes (`close`), dies with its parent when forked from the main thread (so no
    write of a crashed server lands after its restart), runs `run()` and exits: status
    0, or 1 with the failure logged as `what`'s."""
    main = threading.current_thread() is threading.main_thread()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            for fd in close:
                os.close(fd)
            if main:
                die_with_parent()
            run()
            code = 0
        except BaseException:
            log.exception("%s failed", what)
        finally:
            os._exit(code)
    return pid


def die_with_parent() -> None:  # pragma: no cover - the child
    """Linux: SIGKILL when the parent dies, so no write outlives a crashed server."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)


class _Child:  # pragma: no cover - runs in the forked process (tested through the store)
    def __init__(
        self, url: str, max_rows: int, linger: float, timeout: float, inp: int, ack: int
    ) -> None:
        self.db = Database(url, synchronous="NORMAL", timeout=timeout)
        self.max_rows = max_rows
        self.linger = linger
        self.inp = inp
        self.ack = ack
        self.parent = os.getppid()
        self.buf = bytearray()
        self.msgs: deque[tuple[bytes, bytes]] = deque()
        self.eof = False
        self.stopping = False
        self.counters = {"write_retries": 0, "batches": 0, "commands": 0}

    def read(self, wait: float | None) -> None:
        """Move what the pipe holds into `msgs` (waiting up to `wait` seconds for it)."""
        if self.eof:
            return
        ready, _, _ = select.select([self.inp], [], [], wait)
        while ready:
            data = os.read(self.inp, 1 << 20)
            if not data:
                self.eof = True  # the server is gone: what is not committed is lost
                return
            self.buf += data
            ready, _, _ = select.select([self.inp], [], [], 0)
        buf = self.buf
        while len(buf) >= _HEAD.size:
            kind, n = _HEAD.unpack_from(buf)
            if len(buf) < _HEAD.size + n:
                break
            self.msgs.append((kind, bytes(buf[_HEAD.size : _HEAD.size + n])))
            if kind == b"Q":
                self.stopping = True
            del buf[: _HEAD.size + n]

    def run(self) -> None:
        msgs = self.msgs
        while True:
            while not msgs and not self.eof:
                self.read(None)
            if self.eof:
                return
            kind, body = msgs[0]
            if kind == b"J":
                self.journal()
                continue
            msgs.popleft()
            mid = struct.unpack_from(">Q", body)[0]
            if kind == b"S":
                row = pickle.loads(body[8:])
                write = functools.partial(J.write_snapshot, row=row, keep=row.pop("_keep"))
                self.retrying("snapshot", write)
                self.answer(mid, True, None)
            elif kind == b"C":
                try:
                    fn = pickle.loads(body[8:])
                    with self.db.begin() as conn:
                        result = fn(conn)
                except Exception as e:
                    self.answer(mid, False, _portable(e))
                else:
                    self.answer(mid, True, result)
            elif kind == b"F":
                self.answer(mid, True, None)
            elif kind == b"Q":
                self.answer(mid, True, None)
                return

    def journal(self) -> None:
        """Commit the journal batches at the head of `msgs` (lingering a moment so they
        pile up, up to `max_rows` rows) in one transaction."""
        msgs = self.msgs
        deadline = time.monotonic() + self.linger
        while not self.stopping and not self.eof:
            queued = 0
            for kind, body in msgs:
                if kind != b"J":
                    break
                queued += _BASE.unpack_from(body)[1]
            else:
                left = deadline - time.monotonic()
                if queued < self.max_rows and left > 0:
                    self.read(left)
                    continue
            break
        if self.eof:
            return
        rows: list[tuple[int, str, str, int]] = []
        while msgs and msgs[0][0] == b"J":
            body = msgs[0][1]
            base, n = _BASE.unpack_from(body)
            if rows and len(rows) + n > self.max_rows:
                break
            msgs.popleft()
            for i, (name, payload) in enumerate(decode_batch(body[_BASE.size :]), base):
                rows.append((i, name, payload, checksum(i, name, payload)))
        self.retrying("fast", functools.partial(J.write_rows, rows=rows, clear_from=None))
        self.counters["batches"] += 1
        self.counters["commands"] += len(rows)
        self.answer(0, True, None, committed=len(rows), idx=rows[-1][0] if rows else 0)

    def retrying(self, what: str, fn: Any) -> None:
        """Run `fn(conn)` in a transaction until it commits (journal and snapshot writes
        are never given up while the server runs; at stop, after 3 tries)."""
        tries = 0
        while True:
            if os.getppid() != self.parent:
                os._exit(1)  # the server is gone: no write may outlive it
            try:
                with self.db.begin(urgent=True) as conn:
                    fn(conn)
                return
            except Exception as e:
                tries += 1
                self.counters["write_retries"] += 1
                if self.stopping and tries > 3:
                    log.error("journal process: gave up a %s write at close: %s", what, e)
                    return
                if tries in (1, 10) or tries % 100 == 0:
                    first = str(e).splitlines()[0] if str(e) else type(e).__name__
                    log.error(
                        "journal process: %s write failed (try %d), retrying: %s",
                        what,
                        tries,
                        first,
                    )
                time.sleep(min(2.0, 0.05 * tries))
                self.read(0)
                if self.eof:
                    os._exit(1)

    def answer(self, mid: int, ok: bool, result: Any, committed: int = 0, idx: int = 0) -> None:
        counters = dict(self.counters, cpu_s=round(time.process_time(), 3))
        body = pickle.dumps((mid, ok, result, committed, idx, counters))
        view = memoryview(_frame(b"A", body))
        try:
            while view:
                view = view[os.write(self.ack, view) :]
        except OSError:
            os._exit(1)  # the server is gone


def _portable(e: BaseException) -> BaseException:
    """`e` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")
    return e
