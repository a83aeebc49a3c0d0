"""What every connection shares: the runtime, keys, tokens, the formatter and router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exchange.auth import AdminAuth, KeyStore
from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.protocol.fanout import Router
from exchange.protocol.formatter import Formatter
from exchange.protocol.wire import ProtocolError
from exchange.runtime import Runtime
from exchange.sessions import SessionRecord, SessionTokens


class Api:
    """What every session shares: the runtime, keys, admin token, router, counters."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        keys: KeyStore | None = None,
        admin: AdminAuth | None = None,
        sessions: SessionTokens | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.keys = keys if keys is not None else KeyStore()
        self.admin = admin if admin is not None else AdminAuth()
        self.sessions = sessions if sessions is not None else SessionTokens()
        self.sessions.on_revoke.append(self._tokens_revoked)
        self.formatter = Formatter.shared(runtime)
        self.router = Router(self)
        self.extra_stats = stats
        accounts = getattr(runtime.exchange, "accounts", None)
        self.next_account = max(accounts) + 1 if accounts else 1
        self.requests = 0
        self.errors = 0

    @property
    def exchange(self) -> Any:
        return self.runtime.exchange

    def instrument(self, symbol: str) -> Instrument:
        inst = self.runtime.exchange.instruments.get(symbol)
        if inst is None:
            raise ProtocolError(Code.BAD_SYMBOL)
        return inst

    def _tokens_revoked(self, records: list[SessionRecord]) -> None:
        # connections on a revoked token stop receiving their account stream at once;
        # any other request they make finds the token gone (`Session.handle_text`)
        for rec in records:
            for s in list(self.router.accounts.get(rec.account, ())):
                if s.token_hash == rec.token_hash:
                    s.end_logon()
