"""Recovery: the newest valid snapshot plus the journal after it; and the query tables
brought up to the recovered state.

A snapshot is valid when its bytes match their SHA-256, it unpickles, and the
unpickled exchange's `state_hash()` equals the hash recorded when it was taken. Invalid
ones are logged and skipped (an older one, or the empty exchange, is used instead).

The journal after the snapshot is replayed command by command with the commands'
journaled `ts`, so the replay is the original run again: same events, same `seq`, same
state hash. The first damaged entry (gap, checksum, undecodable) ends the replay; it and
everything after it are moved to `journal_dropped` with one log line.

The query tables hold the events up to their watermark W. If W is behind the snapshot,
recovery starts from an older snapshot (or from the start) whose event seq is at most
W, so the replay regenerates exactly the missing events; if the tables are ahead of the
recovered state (fast mode lost its queued tail, or rows were written after a gap),
the rows above are rolled back.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from exchange.core.engine import Exchange
from exchange.core.events import Event
from exchange.core.instruments import Instrument

from . import journal as J
from . import projection as P
from .db import Database
from .tables import InstrumentRow, SnapshotRow

log = logging.getLogger("margincall.store")

_S = SnapshotRow.__table__  # type: ignore[attr-defined]
PROJECT_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    id: int
    journal_idx: int
    event_seq: int
    state_hash: str


@dataclass
class RecoveryInfo:
    """What `recover` found and did."""

    snapshot_idx: int | None = None  # journal index of the snapshot started from
    snapshots_rejected: int = 0  # damaged or unreadable snapshots skipped
    replayed: int = 0  # journal entries applied after it
    last_idx: int = 0  # the journal index the state corresponds to
    dropped: int = 0  # damaged-tail entries set aside
    damage: str | None = None
    state_hash: str = ""
    event_seq: int = 0
    verified_against_snapshot: bool = False  # a snapshot at last_idx had the same hash
    projection_from_seq: int = 0  # query-table watermark before recovery
    projected_events: int = 0
    projection_rolled_back: int = 0  # orders rebuilt by a rollback
    seconds: float = 0.0


def list_snapshots(db: Database) -> list[SnapshotMeta]:
    """Snapshots, newest first (without their data)."""
    with db.connect() as conn:
        rows = conn.execute(
            select(_S.c.id, _S.c.journal_idx, _S.c.event_seq, _S.c.state_hash).order_by(
                _S.c.journal_idx.desc(), _S.c.id.desc()
            )
        ).all()
    return [SnapshotMeta(int(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows]


def load_snapshot(db: Database, meta: SnapshotMeta) -> Exchange | None:
    """The exchange in snapshot `meta`, or None (logged) if it is not valid."""
    with db.connect() as conn:
        row = conn.execute(select(_S.c.data, _S.c.sha256).where(_S.c.id == meta.id)).one_or_none()
    if row is None:
        return None
    data, digest = bytes(row[0]), str(row[1])
    where = f"snapshot {meta.id} (journal index {meta.journal_idx})"
    if hashlib.sha256(data).hexdigest() != digest:
        log.error("%s is damaged (checksum mismatch); skipped", where)
        return None
    try:
        ex = pickle.loads(data)
    except Exception as e:  # an old code version, or damage the checksum missed
        log.error("%s does not load (%s: %s); skipped", where, type(e).__name__, e)
        return None
    if not isinstance(ex, Exchange):
        log.error("%s does not hold an Exchange; skipped", where)
        return None
    try:
        h = ex.state_hash()
    except Exception as e:  # pickled by other code: its objects lack what this code needs
        log.error("%s was written by other code (%s: %s); skipped", where, type(e).__name__, e)
        return None
    if h != meta.state_hash:
        log.error("%s loads to a different state hash (code changed?); skipped", where)
        return None
    return ex


def valid_snapshots(db: Database, info: RecoveryInfo) -> Iterator[tuple[SnapshotMeta, Exchange]]:
    for meta in list_snapshots(db):
        ex = load_snapshot(db, meta)
        if ex is None:
            info.snapshots_rejected += 1
            continue
        yield meta, ex


def replay(
    exchange: Exchange,
    db: Database,
    after: int,
    sink: Any = None,
) -> tuple[int, int, J.Damage | None]:
    """Apply the journal after index `after`; (last index applied, count, damage)."""
    last = after
    n = 0
    for item in J.read_commands(db, after):
        if isinstance(item, J.Damage):
            return last, n, item
        idx, cmd = item
        events = exchange.handle(cmd)
        if sink is not None:
            sink(events)
        last = idx
        n += 1
    return last, n, None


class _ProjectionSink:
    """Feeds replayed events above the watermark to the query tables, in chunks."""

    def __init__(self, db: Database, projector: P.Projector, above: int) -> None:
        self.db = db
        self.projector = projector
        self.above = above
        self.buf: list[Event] = []
        self.count = 0

    def __call__(self, events: list[Event]) -> None:
        above = self.above
        for e in events:
            if e.seq > above:
                self.buf.append(e)
        if len(self.buf) >= PROJECT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        rows = self.projector.project(self.buf)
        P.commit_rows(self.db, rows)
        self.count += len(self.buf)
        self.buf = []


def run_recovery(
    jdb: Database,
    qdb: Database,
    project: bool,
    genesis: list[Instrument],
    exchange_kwargs: dict[str, Any],
) -> tuple[Exchange, RecoveryInfo]:

    t0 = time.perf_counter()
    info = RecoveryInfo()
    snaps = valid_snapshots(jdb, info)
    newest = next(snaps, None)

    W = 0
    if project:
        with qdb.begin() as conn:
            W = P.watermark(conn)
            above = P.max_event_seq(conn)
            if above > W:
                n = P.rollback_to(conn, W)
                log.warning(
                    "query tables: rows above the watermark %d (up to %d) rolled back "
                    "(%d orders rebuilt); the replay rewrites them",
                    W,
                    above,
                    n,
                )
            _ensure_genesis_instruments(conn, genesis)
    info.projection_from_seq = W

    # where to start: the newest snapshot, or an older one the query tables can follow
    start: tuple[SnapshotMeta, Exchange] | None = newest
    if project and newest is not None and newest[0].event_seq > W:
        start = None
        for cand in snaps:
            if cand[0].event_seq <= W:
                start = cand
                break
        if start is None and J.first_index(jdb) > 1:
            start = newest  # the journal does not reach back to the start: cannot bridge

    def begin(point: tuple[SnapshotMeta, Exchange] | None) -> tuple[Exchange, int]:
        if point is None:
            return Exchange(genesis, **exchange_kwargs), 0
        return point[1], point[0].journal_idx

    exchange, after = begin(start)
    sink: _ProjectionSink | None = None
    if project:
        projector = P.Projector(lambda s: exchange.instruments.get(s))
        with qdb.connect() as conn:
            projector.load(conn)
        if exchange.seq > W:  # cannot regenerate (W, exchange.seq]: a hole in the tables
            log.warning(
                "query tables: events %d..%d cannot be regenerated (no snapshot or journal "
                "reaches back to them); the tables miss them",
                W + 1,
                exchange.seq,
            )
            with qdb.begin() as conn:
                P.set_watermark(conn, exchange.seq)
            projector.last_seq = exchange.seq
        sink = _ProjectionSink(qdb, projector, max(W, exchange.seq))
    info.snapshot_idx = after if start is not None else None

    last, n, damage = replay(exchange, jdb, after, sink)
    top = newest[0].journal_idx if newest is not None else 0
    if newest is not None and (damage.idx <= top if damage is not None else last < top):
        # the journal is broken, or ends (a hole fast mode left, which that snapshot
        # closed, with nothing journaled after it yet), below the newest snapshot: that
        # snapshot bridges it
        log.warning(
            "journal: %s, below the newest snapshot (index %d); recovering from the "
            "snapshot instead",
            damage.reason if damage is not None else f"ends at index {last}",
            top,
        )
        if sink is not None:
            sink.flush()
        exchange, after = newest[1], newest[0].journal_idx
        info.snapshot_idx = after
        if sink is not None:
            sink.projector.lookup = lambda s: exchange.instruments.get(s)
            if exchange.seq > sink.projector.last_seq:
                log.warning(
                    "query tables: events %d..%d cannot be regenerated; the tables miss them",
                    sink.projector.last_seq + 1,
                    exchange.seq,
                )
                with qdb.begin() as conn:
                    P.set_watermark(conn, exchange.seq)
                sink.projector.last_seq = exchange.seq
            sink.above = max(sink.above, exchange.seq)
        last, n, damage = replay(exchange, jdb, after, sink)
    info.replayed = n
    info.last_idx = last
    if damage is not None:
        info.damage = damage.reason
        info.dropped = J.drop_tail(jdb, damage.idx, damage.reason)
    if sink is not None:
        sink.flush()
        info.projected_events = sink.count
        with qdb.begin() as conn:
            if P.watermark(conn) > exchange.seq:
                info.projection_rolled_back = P.rollback_to(conn, exchange.seq)
                log.warning(
                    "query tables: were ahead of the journal; rolled back to event %d",
                    exchange.seq,
                )
    info.state_hash = exchange.state_hash()
    info.event_seq = exchange.seq
    for meta in list_snapshots(jdb):
        if meta.journal_idx == last:
            info.verified_against_snapshot = meta.state_hash == info.state_hash
            if not info.verified_against_snapshot:
                log.error(
                    "recovery: state hash %s differs from snapshot %d's %s at the same "
                    "journal index: replay is not deterministic",
                    info.state_hash[:16],
                    meta.id,
                    meta.state_hash[:16],
                )
            break
    info.seconds = time.perf_counter() - t0
    log.info(
        "recovered: journal index %d (snapshot %s + %d replayed, %d dropped), "
        "state hash %s, %.2f s",
        info.last_idx,
        info.snapshot_idx,
        info.replayed,
        info.dropped,
        info.state_hash[:16],
        info.seconds,
    )
    return exchange, info


def _ensure_genesis_instruments(conn: Any, genesis: list[Instrument]) -> None:
    t = InstrumentRow.__table__  # type: ignore[attr-defined]
    have = {r[0] for r in conn.execute(select(t.c.symbol))}
    rows = [P.instrument_row(i, 0, 0) for i in genesis if i.symbol not in have]
    if rows:
        conn.execute(t.insert(), rows)
