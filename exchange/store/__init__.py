"""The store: a journal of commands, snapshots, recovery and query tables (SQLModel;
SQLite by default, PostgreSQL by URL). An adapter around the core: the core never
imports it. See `docs/store.md`.

    store = Store("sqlite:///data/margincall.db", mode="durable")
    exchange, info = store.recover(instruments)
    runtime = Runtime(exchange)
    store.attach(runtime)          # journal, snapshots, query tables
    await runtime.start()
    ...
    await runtime.stop()
    await store.close(runtime.exchange)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument

from .codec import CodecError, decode_command, encode_command
from .db import DEFAULT_DB_URL, normalize_url
from .export import ExportError, export
from .store import RecoveryInfo, Store, StoreConfig

__all__ = [
    "DEFAULT_DB_URL",
    "CodecError",
    "ExportError",
    "RecoveryInfo",
    "Store",
    "StoreConfig",
    "decode_command",
    "encode_command",
    "export",
    "normalize_url",
    "recover",
    "replay_journal",
]


def recover(
    db_url: str, instruments: Iterable[Instrument] = (), **config: Any
) -> tuple[Exchange, RecoveryInfo]:
    """The exchange rebuilt from `db_url` (newest valid snapshot + journal after it),
    with what recovery found. Opens and closes its own connections."""
    store = Store(db_url, **config)
    try:
        return store.recover(instruments)
    finally:
        store.close_sync()


def replay_journal(db_url: str, instruments: Iterable[Instrument] = ()) -> tuple[Exchange, int]:
    """The exchange rebuilt from the whole journal, ignoring snapshots (a check of
    determinism and of the snapshots): (exchange, entries applied). Read-only."""
    from .db import Database
    from .recovery import replay
    from .store import Store

    st = Store(db_url, query_tables=False)
    try:
        genesis = st._genesis(instruments)
    finally:
        st.close_sync()
    db = Database(db_url, immediate=False)
    try:
        ex = Exchange(genesis)
        last, n, damage = replay(ex, db, 0)
        if damage is not None:
            raise ValueError(f"journal cannot be replayed from the start: {damage.reason}")
        return ex, n
    finally:
        db.dispose()
