"""Database connections for the store: SQLite (file or memory) and PostgreSQL.

Every call here blocks; the store runs them on its own threads, never on the event loop.

SQLite: a file in WAL mode. `synchronous=FULL` on the journal's connection in durable
mode (a commit survives power loss), `NORMAL` elsewhere (a commit survives a process
crash, the last ones may not survive power loss: fine for fast mode and for the query
tables, which recovery rebuilds). Transactions start with `BEGIN IMMEDIATE`, so a
writer waits for the lock (up to the busy timeout) instead of failing on upgrade.
`sqlite://` (memory) is one connection shared by every thread, behind a lock.

PostgreSQL: `postgresql+psycopg://` (`postgresql://` and `postgres://` are accepted and
mean the same), with a connect timeout, a statement timeout and a lock timeout so a
slow or gone server makes a call fail within the timeout instead of hanging; stale
pooled connections are detected with a pre-ping, so the store recovers by itself when
the server is back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from itertools import chain
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from .urls import DEFAULT_DB_URL, normalize_url

__all__ = ["DEFAULT_DB_URL", "normalize_url"]


class WriteGate:
    """One writer at a time per SQLite database in this process, the journal first.

    SQLite lets one transaction write at a time and makes the others poll with growing
    sleeps, so a busy query-table writer could starve the journal. The gate hands the
    database to waiting journal writes (`urgent`) before any other writer.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._busy = False
        self._urgent = 0

    @contextlib.contextmanager
    def hold(self, urgent: bool) -> Iterator[None]:
        with self._cv:
            if urgent:
                self._urgent += 1
            try:
                while self._busy or (not urgent and self._urgent):
                    self._cv.wait()
            finally:
                if urgent:
                    self._urgent -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()


_MANY_SQL: dict[tuple[str, str, int, str], str] = {}
MAX_PARAMS = 30_000  # per statement: under SQLite's default limit (32,766) and psycopg's


def insert_many(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    suffix: str = "",
) -> None:
    """INSERT `rows` (tuples in `columns` order) with multi-row VALUES statements.

    One statement per few hundred rows instead of one per row: the driver releases and
    retakes the GIL around each statement it runs, so a row-at-a-time `executemany`
    would hand the GIL back and forth with the engine thread for every row.
    `suffix` is appended to each statement (e.g. an ON CONFLICT clause).
    """
    if not rows:
        return
    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    ncol = len(columns)
    per = max(1, MAX_PARAMS // ncol)
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        key = (table, ",".join(columns), len(chunk), suffix + conn.dialect.name)
        sql = _MANY_SQL.get(key)
        if sql is None:
            one = "(" + ", ".join([ph] * ncol) + ")"
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([one] * len(chunk))
                + suffix
            )
            if len(_MANY_SQL) > 4096:
                _MANY_SQL.clear()
            _MANY_SQL[key] = sql
        flat = tuple(chain.from_iterable(chunk))
        conn.exec_driver_sql(sql, flat)


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Database:
    """One SQLAlchemy engine set up for a role of the store.

    `synchronous`: SQLite's synchronous level for this engine's connections ("FULL" or
    "NORMAL"); on PostgreSQL "NORMAL" turns `synchronous_commit` off for them.
    `timeout`: seconds a statement (or lock wait, or connect) may take before failing.
    `immediate`: SQLite transactions take the write lock at BEGIN (writers); readers
    that must not block a running server pass False.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "FULL",
        timeout: float = 5.0,
        immediate: bool = True,
        shared: Database | None = None,
    ) -> None:
        self.url_text = normalize_url(url)
        self.url = make_url(self.url_text)
        self.backend = self.url.get_backend_name()
        self.memory = is_memory(self.url)
        self.timeout = timeout
        self.gate: WriteGate | None = None
        if self.backend == "sqlite":
            self.gate = shared.gate if shared is not None and shared.gate else WriteGate()
        if shared is not None and self.memory:
            # an in-memory database exists once, on one connection: share it
            self.engine: Engine = shared.engine
            self.lock: threading.Lock | contextlib.nullcontext[None] = shared.lock
            return
        self.lock = threading.Lock() if self.memory else contextlib.nullcontext()
        if self.backend == "sqlite":
            self.engine = self._sqlite(synchronous, timeout, immediate)
        elif self.backend == "postgresql":
            self.engine = self._postgresql(synchronous, timeout)
        else:
            raise ValueError(f"unsupported database {self.backend!r}: use sqlite or postgresql")

    def _sqlite(self, synchronous: str, timeout: float, immediate: bool) -> Engine:
        kw: dict[str, Any] = {"connect_args": {"timeout": timeout, "check_same_thread": False}}
        if self.memory:
            kw["poolclass"] = StaticPool
        engine = create_engine(self.url_text, **kw)
        memory = self.memory

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            read = conn.get_execution_options().get("mc_read", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate and not read else "BEGIN")

        return engine

    def _postgresql(self, synchronous: str, timeout: float) -> Engine:
        engine = create_engine(
            self.url_text,
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=2,
            pool_timeout=timeout,
            connect_args={"connect_timeout": max(2, int(timeout))},
        )
        ms = int(timeout * 1000)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {ms}")
                cur.execute(f"SET lock_timeout = {ms}")
                cur.execute(f"SET idle_in_transaction_session_timeout = {ms * 4}")
                if synchronous != "FULL":
                    cur.execute("SET synchronous_commit = off")
            dbapi_conn.commit()

        return engine

    @contextlib.contextmanager
    def begin(self, urgent: bool = False) -> Iterator[Connection]:
        """A connection in a write transaction: committed on exit, rolled back on error.
        `urgent`: the journal's; it goes before other writers waiting (SQLite)."""
        gate = self.gate.hold(urgent) if self.gate is not None else contextlib.nullcontext()
        with gate, self.lock, self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading (SQLite: a deferred transaction, no write lock)."""
        with self.lock, self.engine.connect() as conn:
            yield conn.execution_options(mc_read=True)

    def create(self, tables: tuple[type[SQLModel], ...]) -> None:
        """Create the tables (and their indexes) that do not exist yet."""
        with self.begin() as conn:
            SQLModel.metadata.create_all(
                conn,
                tables=[t.__table__ for t in tables],  # type: ignore[attr-defined]
            )

    def dispose(self) -> None:
        self.engine.dispose()
