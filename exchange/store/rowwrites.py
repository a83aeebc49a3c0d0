"""Writing the query tables: `Rows` (what the projector makes), `commit_rows` (one
`Rows` and the watermark in one transaction, values that do not fit a column stored as
NULL and logged), the watermark (`projection_state.last_seq`), and `rollback_to` (undo
every row above a seq).

Blocking (SQLAlchemy Core, the driver's `executemany`); called from the store's writer
thread or process and from recovery. The projector (`exchange.store.projection`) makes
the rows without I/O and re-exports these names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .db import insert_many
from .tables import (
    EVENT_TABLES,
    QUERY_TABLES,
    AccountRow,
    ApiKeyRow,
    InstrumentRow,
    OrderRow,
    OrderUpdateRow,
    ProjectionState,
    SessionTokenRow,
)

log = logging.getLogger("margincall.store")

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED", "UNTRIGGERED")


def table_of(model: Any) -> Any:
    """The SQLAlchemy table of a SQLModel class."""
    return model.__table__


def columns_of(model: Any) -> tuple[str, ...]:
    return tuple(c.name for c in table_of(model).columns)


# each table's columns, in the order of the tuples the projector makes
COLUMNS: dict[Any, tuple[str, ...]] = {
    table_of(m): columns_of(m)
    for m in QUERY_TABLES
    if m not in (ProjectionState, ApiKeyRow, SessionTokenRow)
}
ORDER_COLS = COLUMNS[table_of(OrderRow)]


@dataclass
class Rows:
    """What one run of events adds to the query tables: tuples per table (columns as in
    `COLUMNS`) and the orders created or changed (tuples as `ORDER_COLS`)."""

    inserts: dict[Any, list[tuple[Any, ...]]] = field(default_factory=dict)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    events: int = 0

    def count(self) -> int:
        return sum(len(v) for v in self.inserts.values()) + len(self.orders)


_T_INST = table_of(InstrumentRow)


def _suffix(table: Any) -> str:
    """Keyed rows that change (instruments, orders) are upserted."""
    if table is not _T_INST and table is not table_of(OrderRow):
        return ""
    pk = [c.name for c in table.primary_key.columns]
    sets = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[table] if c not in pk)
    return f" ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {sets}"


def write_rows(conn: Connection, rows: Rows, advance: bool = True) -> None:
    """Insert one `Rows` and move the watermark (unless `advance` is False, after a
    gap), in the caller's transaction."""
    for table, items in rows.inserts.items():
        insert_many(conn, table.name, COLUMNS[table], items, _suffix(table))
    o = table_of(OrderRow)
    insert_many(conn, o.name, ORDER_COLS, rows.orders, _suffix(o))
    if rows.events and advance:
        set_watermark(conn, rows.last_seq)


# ------------------------------------------------------------------ values that do not fit

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _fit_int(v: Any) -> Any:
    if type(v) is bool:
        return int(v)
    return v if type(v) is int and INT64_MIN <= v <= INT64_MAX else None


def _fit_bool(v: Any) -> Any:
    return v if type(v) is bool else None


def _fit_text(n: int | None) -> Callable[[Any], Any]:
    def fit(v: Any) -> Any:
        if v is None:
            return None
        t = v if type(v) is str else repr(v)
        t = t.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
        return t[:n] if n else t

    return fit


def _same(v: Any) -> Any:
    return v


def _fitters(table: Any) -> list[Callable[[Any], Any]]:
    out: list[Callable[[Any], Any]] = []
    for name in COLUMNS[table]:
        c = table.columns[name]
        try:
            py = c.type.python_type
        except NotImplementedError:
            py = object
        if py is int:
            out.append(_fit_int)
        elif py is bool:
            out.append(_fit_bool)
        elif py is str:
            out.append(_fit_text(getattr(c.type, "length", None)))
        else:
            out.append(_same)
    return out


def sanitize(rows: Rows) -> None:
    """Make every value storable: integers beyond 64 bits (the core allows money up to
    10^30 quanta) and ill-typed values become NULL, text is made valid and cut to its
    column. Used only when a batch was refused for its values."""

    def fix(table: Any, items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        f = _fitters(table)
        return [tuple(fn(v) for fn, v in zip(f, r, strict=True)) for r in items]

    for table in list(rows.inserts):
        rows.inserts[table] = fix(table, rows.inserts[table])
    rows.orders = fix(table_of(OrderRow), rows.orders)


def is_transient(e: BaseException) -> bool:
    """A failure worth retrying (the database busy, slow or gone), not one of the data."""
    if isinstance(e, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(e, DBAPIError) and bool(e.connection_invalidated)


def _write_or_refusal(db: Any, rows: Rows, advance: bool) -> str | None:
    """Write `rows` in one transaction: None once committed, else why the database refused
    their values (the first line of its error). Transient failures raise."""
    try:
        with db.begin() as conn:
            write_rows(conn, rows, advance)
        return None
    except Exception as e:
        if is_transient(e):
            raise
        return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def commit_rows(db: Any, rows: Rows, advance: bool = True) -> int:
    """Write one `Rows` in one transaction. Transient failures raise (the caller retries);
    a batch refused for its values is stored sanitized, and if even that fails, skipped
    with an error log (the watermark still moves, so no writer loops on it). Returns the
    number of events skipped."""
    why = _write_or_refusal(db, rows, advance)
    if why is None:
        return 0
    log.warning(
        "query tables: events %d..%d did not fit (%s); storing unfit values as NULL",
        rows.first_seq,
        rows.last_seq,
        why,
    )
    sanitize(rows)
    why = _write_or_refusal(db, rows, advance)
    if why is None:
        return 0
    log.error(
        "query tables: events %d..%d cannot be stored and are skipped: %s",
        rows.first_seq,
        rows.last_seq,
        why,
    )
    if advance and rows.events:
        with db.begin() as conn:
            set_watermark(conn, rows.last_seq)
    return rows.events


def set_watermark(conn: Connection, seq: int) -> None:
    st = table_of(ProjectionState)
    n = conn.execute(
        update(st).where(st.c.id == 1).values(last_seq=seq, updated_ns=time.time_ns())
    ).rowcount
    if not n:
        conn.execute(insert(st).values(id=1, last_seq=seq, updated_ns=time.time_ns()))


def watermark(conn: Connection) -> int:
    st = table_of(ProjectionState)
    return int(conn.execute(select(st.c.last_seq).where(st.c.id == 1)).scalar_one_or_none() or 0)


def max_event_seq(conn: Connection) -> int:
    """The highest seq in any event table (above the watermark only after a gap)."""
    best = 0
    for model in EVENT_TABLES:
        t = table_of(model)
        v = conn.execute(select(func.max(t.c.seq))).scalar_one_or_none()
        best = max(best, int(v or 0))
    o = table_of(OrderRow)
    v = conn.execute(select(func.max(o.c.updated_seq))).scalar_one_or_none()
    return max(best, int(v or 0))


# status an order has after each kind of update (AMENDED/TRIGGERED: see `rollback_to`)
_STATUS_AFTER = {
    "FILLED": "FILLED",
    "PARTIALLY_FILLED": "PARTIALLY_FILLED",
    "CANCELED": "CANCELED",
    "EXPIRED": "EXPIRED",
}


def rollback_to(conn: Connection, seq: int) -> int:
    """Undo every query-table row of events after `seq`; orders changed after it are
    rebuilt from their updates up to `seq`. Returns the number of orders rebuilt."""
    for model in EVENT_TABLES:
        t = table_of(model)
        conn.execute(delete(t).where(t.c.seq > seq))
    a = table_of(AccountRow)
    conn.execute(delete(a).where(a.c.created_seq > seq))
    i = table_of(InstrumentRow)
    conn.execute(delete(i).where(i.c.added_seq > seq))
    o = table_of(OrderRow)
    conn.execute(delete(o).where(o.c.created_seq > seq))
    stale = [dict(r) for r in conn.execute(select(o).where(o.c.updated_seq > seq)).mappings()]
    u = table_of(OrderUpdateRow)
    for order in stale:
        ups = (
            conn.execute(select(u).where(u.c.order_id == order["order_id"]).order_by(u.c.seq))
            .mappings()
            .all()
        )
        status = "NEW"
        filled = 0
        triggered = False
        for up in ups:
            kind = up["event"]
            if kind == "ACCEPTED":
                status = up["reason"] or "NEW"
            elif kind in _STATUS_AFTER:
                status = _STATUS_AFTER[kind]
            elif kind == "TRIGGERED":
                triggered = True
                if status == "UNTRIGGERED":
                    status = "NEW"
            filled += up["last_qty"]
        last = ups[-1]
        values = {
            "price": last["price"],
            "qty": last["qty"],
            "status": status,
            "filled": filled,
            "remaining": last["remaining"] if status in OPEN_STATUSES else 0,
            "triggered": triggered,
            "updated_seq": last["seq"],
            "updated_ts": last["ts"],
        }
        conn.execute(update(o).where(o.c.order_id == order["order_id"]).values(values))
    set_watermark(conn, seq)
    return len(stale)
