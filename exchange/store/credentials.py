"""API keys and session tokens: their rows, written through the journal writer.

A room of `Store` (see `exchange.store.store`): saving (insert once, durable before the
key or token is handed out), deleting, and loading them at start-up. Owns no state.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .tables import (
    ApiKeyRow,
    SessionTokenRow,
)
from .writer import _Job


class Credentials:
    """`Store`'s API keys (`KeyStore` hooks) and session tokens (`SessionTokens` hooks)."""

    def save_api_key(self, record: Any) -> concurrent.futures.Future[Any]:
        """Persist a `KeyRecord` (hash, account, created_ms); for `KeyStore.on_issue`.
        Queued on the journal writer; the future is done once it is committed (the
        admin API answers only then: `KeyStore.issue_saved`)."""
        row = {
            "key_hash": record.key_hash,
            "account": record.account,
            "created_ms": record.created_ms,
        }
        return self._insert_once(ApiKeyRow, "key_hash", row)

    def _insert_once(
        self, table: Any, key: str, row: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        """Queue an insert of `row` into `table` on the journal writer, ignored when `key`
        already holds its value; the future is done once it is committed."""

        def write(conn: Connection) -> None:
            t = table.__table__
            ins: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t)
            conn.execute(ins.on_conflict_do_nothing(index_elements=[key]), [row])

        if self._writer is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=write))
        return fut

    def delete_api_key(self, key_hash: str) -> None:
        def write(conn: Connection) -> None:
            t = ApiKeyRow.__table__  # type: ignore[attr-defined]
            conn.execute(delete(t).where(t.c.key_hash == key_hash))

        if self._writer is None:
            self.start()
        self._submit(_Job("call", future=concurrent.futures.Future(), payload=write))

    def load_api_keys(self) -> list[Any]:
        """Every stored `KeyRecord` (blocking; at start-up)."""
        from exchange.auth import KeyRecord

        t = ApiKeyRow.__table__  # type: ignore[attr-defined]
        self._qdb.create((ApiKeyRow,))
        with self._qdb.connect() as conn:
            return [
                KeyRecord(r.key_hash, int(r.account), int(r.created_ms))
                for r in conn.execute(select(t).order_by(t.c.created_ms))
            ]

    # ================================================================ session tokens

    def save_session_token(self, record: Any) -> concurrent.futures.Future[Any]:
        """Persist a `SessionRecord` (hash, account, times, label); for
        `SessionTokens.on_issue`. The future is done once it is committed."""
        row = {
            "token_hash": record.token_hash,
            "account": record.account,
            "created_ms": record.created_ms,
            "expires_ms": record.expires_ms,
            "label": record.label,
        }
        return self._insert_once(SessionTokenRow, "token_hash", row)

    def delete_session_tokens(self, records: list[Any]) -> concurrent.futures.Future[Any]:
        """Delete revoked or expired `SessionRecord`s; for `SessionTokens.on_revoke`."""
        hashes = [r.token_hash for r in records]

        def write(conn: Connection) -> None:
            t = SessionTokenRow.__table__  # type: ignore[attr-defined]
            conn.execute(delete(t).where(t.c.token_hash.in_(hashes)))

        if self._writer is None:
            self.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job("call", future=fut, payload=write))
        return fut

    def load_session_tokens(self) -> list[Any]:
        """Every stored `SessionRecord` (blocking; at start-up)."""
        from exchange.sessions import SessionRecord

        t = SessionTokenRow.__table__  # type: ignore[attr-defined]
        self._qdb.create((SessionTokenRow,))
        with self._qdb.connect() as conn:
            return [
                SessionRecord(
                    r.token_hash, int(r.account), int(r.created_ms), int(r.expires_ms), r.label
                )
                for r in conn.execute(select(t).order_by(t.c.created_ms))
            ]
