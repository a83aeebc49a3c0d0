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

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .urls import DEFAULT_DB_URL, normalize_url

if TYPE_CHECKING:
    from exchange.core.engine import Exchange
    from exchange.core.instruments import Instrument

    from .codec import CodecError, decode_command, encode_command
    from .export import ExportError, export
    from .store import RecoveryInfo, Store, StoreConfig

# Imported on first use: SQLModel and SQLAlchemy cost most of a second, and a command
# that never opens a database (`margincall --help`, `replay`) must not pay for them.
_LAZY = {
    "CodecError": ".codec",
    "decode_command": ".codec",
    "encode_command": ".codec",
    "ExportError": ".export",
    "export": ".export",
    "RecoveryInfo": ".store",
    "Store": ".store",
    "StoreConfig": ".store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        # every name of that module at once: importing the submodule `export` set the
        # package's `export` to the module, which must become the function again
        for other, where in _LAZY.items():
            if where == _LAZY[name]:
                globals()[other] = getattr(module, other)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from .store import Store

    store = Store(db_url, **config)
    try:
        return store.recover(instruments)
    finally:
        store.close_sync()


def replay_journal(db_url: str, instruments: Iterable[Instrument] = ()) -> tuple[Exchange, int]:
    """The exchange rebuilt from the whole journal, ignoring snapshots (a check of
    determinism and of the snapshots): (exchange, entries applied). Read-only."""
    from exchange.core.engine import Exchange

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
