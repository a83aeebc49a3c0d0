"""The game journal: every game-level change as a JSON record, in order.

The exchange's own journal (exchange/store) already holds every command the game sent
(index prices, halts, the clock, accounts, deposits, limits), so after a crash the
exchange comes back exactly. What it cannot know is the game around it: the join code,
the roster, the lifecycle state, when each round began and at which price, the shocks
the instructor fired, the equity samples of the leaderboard. Those are records here.

`StoreJournal` keeps them in the store's database, in its own table
(`classroom_journal`), written by the store's journal writer (`Store.call`), so a
record and the commands sent after it are committed in that order. A record is
appended, and awaited, before its change takes effect; replaying the records
(`load()`) rebuilds the game. `MemoryJournal` is the same without a database.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert, select

metadata = MetaData()
classroom_journal = Table(
    "classroom_journal",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
)


class MemoryJournal:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def load(self) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(r)) for r in self.records]

    async def append(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(json.loads(json.dumps(r)) for r in records)

    async def close(self) -> None:
        pass


class StoreJournal:
    """Records in the store's database (see the module docstring)."""

    def __init__(self, store: Any) -> None:
        from exchange.store.db import Database

        self.store = store
        self._db = Database(store.url)
        with self._db.begin() as conn:
            metadata.create_all(conn)
        self._next = 1 + len(self.load_rows())

    def load_rows(self) -> list[tuple[int, str, str]]:
        t = classroom_journal
        with self._db.connect() as conn:
            rows = conn.execute(select(t.c.idx, t.c.kind, t.c.payload).order_by(t.c.idx)).all()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def load(self) -> list[dict[str, Any]]:
        out = []
        for idx, _, payload in self.load_rows():
            if idx != len(out) + 1:
                break  # a gap can only be a torn tail: stop at the last whole prefix
            out.append(json.loads(payload))
        return out

    async def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        base = self._next
        self._next += len(records)
        rows = [
            {"idx": base + i, "kind": r["kind"], "payload": json.dumps(r, separators=(",", ":"))}
            for i, r in enumerate(records)
        ]

        def write(conn: Any) -> None:
            conn.execute(insert(classroom_journal), rows)

        await self.store.call(write)

    async def close(self) -> None:
        self._db.dispose()
