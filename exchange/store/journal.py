"""The command journal: blocking reads and writes (the store calls them off the loop).

A row is (idx, type, payload, crc): the command's 1-based position in the engine's
history, its class name, its canonical JSON (see `codec`) and a CRC-32 of the three.
Rows are written one transaction per batch (group commit). Reading checks each row
in order: contiguous index, checksum, decodable payload. The first row that fails
ends the valid journal; it and every row after it are the *damaged tail*, which
recovery moves to `journal_dropped` with a log line and never applies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from exchange.core.commands import Command

from .codec import CodecError, checksum, decode_command, encode_command
from .db import Database, insert_many
from .tables import DroppedJournalRow, JournalRow, SnapshotRow

log = logging.getLogger("margincall.store")

_J = JournalRow.__table__  # type: ignore[attr-defined]
_D = DroppedJournalRow.__table__  # type: ignore[attr-defined]
_S = SnapshotRow.__table__  # type: ignore[attr-defined]
PAGE = 5_000


COLUMNS = ("idx", "type", "payload", "crc")


def encode_rows(base: int, commands: Sequence[Command]) -> list[tuple[int, str, str, int]]:
    """Journal rows (idx, type, payload, crc) for `commands`, the first at index `base`."""
    rows: list[tuple[int, str, str, int]] = []
    for i, cmd in enumerate(commands, base):
        name, payload = encode_command(cmd)
        rows.append((i, name, payload, checksum(i, name, payload)))
    return rows


def write_rows(
    conn: Connection, rows: list[tuple[int, str, str, int]], *, clear_from: int | None
) -> None:
    """Insert journal rows in the caller's transaction.

    `clear_from`: first delete every row at or after this index (rows of a batch that
    was refused after its commit outcome became unknown; see `Store`).
    """
    if clear_from is not None:
        conn.execute(delete(_J).where(_J.c.idx >= clear_from))
    insert_many(conn, "journal", COLUMNS, rows)


def write_snapshot(conn: Connection, row: dict[str, Any], keep: int) -> None:
    """Insert a snapshot row in the caller's transaction; keep the newest `keep`."""
    conn.execute(insert(_S), [row])
    newest = [
        r[0]
        for r in conn.execute(
            select(_S.c.id).order_by(_S.c.journal_idx.desc(), _S.c.id.desc()).limit(keep)
        )
    ]
    conn.execute(delete(_S).where(_S.c.id.not_in(newest)))


def last_index(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(_J.c.idx), 0))).scalar_one())


def first_index(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.min(_J.c.idx), 0))).scalar_one())


def raw_rows(db: Database, after: int = 0) -> Iterator[tuple[int, str, str, int]]:
    """Every journal row with idx > `after`, in order, unchecked (paged)."""
    while True:
        with db.connect() as conn:
            page = conn.execute(
                select(_J.c.idx, _J.c.type, _J.c.payload, _J.c.crc)
                .where(_J.c.idx > after)
                .order_by(_J.c.idx)
                .limit(PAGE)
            ).all()
        for r in page:
            yield int(r[0]), str(r[1]), str(r[2]), int(r[3])
        if len(page) < PAGE:
            return
        after = int(page[-1][0])


@dataclass(frozen=True, slots=True)
class Damage:
    """Where the valid journal ends and why."""

    idx: int  # the first row that is not applied
    reason: str


def read_commands(db: Database, after: int = 0) -> Iterator[tuple[int, Command] | Damage]:
    """(idx, command) for each valid row after `after`, in order; if a row is damaged
    (gap, checksum, payload), yields one `Damage` and stops."""
    expect = after + 1
    for idx, name, payload, crc in raw_rows(db, after):
        if idx != expect:
            yield Damage(expect, f"entry {expect} is missing (next present is {idx})")
            return
        if checksum(idx, name, payload) != crc:
            yield Damage(idx, f"entry {idx} fails its checksum (torn or damaged write)")
            return
        try:
            cmd = decode_command(name, payload)
        except CodecError as e:
            yield Damage(idx, f"entry {idx} does not decode: {e}")
            return
        yield idx, cmd
        expect += 1


def drop_tail(db: Database, from_idx: int, reason: str) -> int:
    """Move every journal row at or after `from_idx` to `journal_dropped`; their count."""
    now = time.time_ns()
    with db.begin() as conn:
        rows = conn.execute(
            select(_J.c.idx, _J.c.type, _J.c.payload, _J.c.crc)
            .where(_J.c.idx >= from_idx)
            .order_by(_J.c.idx)
        ).all()
        if rows:
            conn.execute(
                insert(_D),
                [
                    {
                        "idx": r[0],
                        "type": r[1],
                        "payload": r[2],
                        "crc": r[3],
                        "reason": reason,
                        "dropped_ns": now,
                    }
                    for r in rows
                ],
            )
            conn.execute(delete(_J).where(_J.c.idx >= from_idx))
    if rows:
        log.error(
            "journal: dropped a damaged tail of %d entr%s from index %d (%s); "
            "moved to table journal_dropped, not applied",
            len(rows),
            "y" if len(rows) == 1 else "ies",
            from_idx,
            reason,
        )
    return len(rows)
