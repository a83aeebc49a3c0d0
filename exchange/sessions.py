"""Session tokens: how a browser logs on without ever holding an API secret.

A session token is an opaque bearer string (``mcs_`` + 43 URL-safe characters, 256
random bits) that stands for one account until it expires or is revoked. It is handed
out to a connection that proved the account (an API-key logon: `session.create`), by
an admin (`admin.createSession`), or by another adapter (the classroom's join codes),
and is accepted by `session.logon {"token": ...}`.

Only SHA-256(token) is kept, in memory and in the store (`session_tokens` table): a
leaked table gives no usable token. Expiry is wall-clock time (tokens are an edge
concern; the core never sees them). `verify` costs one hash and one dict lookup;
expired records are dropped when seen and swept every `sweep_every` issues, so the
table stays bounded by the tokens alive (at most `max_per_account` per account — the
oldest goes first when an account asks for more).

Persistence mirrors `exchange.auth.KeyStore`: `on_issue` hooks get each new
`SessionRecord` and may return a future for the save they started (`issue_saved`
returns only once those are done), `on_revoke` hooks get the hashes that stopped
being valid, `records()` / `load()` move records in and out at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

TOKEN_PREFIX = "mcs_"
DEFAULT_TTL_S = 8 * 3600.0
MAX_TTL_S = 30 * 24 * 3600.0
MIN_TTL_S = 1.0
MAX_LABEL = 64
MAX_TOKEN_LEN = 128


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What is stored about a token: its SHA-256, account, times (wall ms) and label."""

    token_hash: str
    account: int
    created_ms: int
    expires_ms: int
    label: str = ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionTokens:
    """Token hash → `SessionRecord`, with expiry and revocation.

    `clock()` gives wall seconds (injectable for tests). All methods are O(1) except
    `revoke_account` (O(tokens of that account)) and the periodic sweep (O(tokens),
    amortized over `sweep_every` issues).
    """

    def __init__(
        self,
        *,
        default_ttl_s: float = DEFAULT_TTL_S,
        max_per_account: int = 100,
        sweep_every: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not MIN_TTL_S <= default_ttl_s <= MAX_TTL_S:
            raise ValueError(f"default_ttl_s must be in [{MIN_TTL_S}, {MAX_TTL_S}]")
        self.default_ttl_s = default_ttl_s
        self.max_per_account = max_per_account
        self.sweep_every = sweep_every
        self.clock = clock
        self._by_hash: dict[str, SessionRecord] = {}
        self._by_account: dict[int, dict[str, None]] = {}  # insertion-ordered: oldest first
        self._issued = 0
        # each on_issue hook may return a future (concurrent or awaitable) for its save
        self.on_issue: list[Callable[[SessionRecord], Any]] = []
        self.on_revoke: list[Callable[[list[SessionRecord]], Any]] = []

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- issuing

    def issue(self, account: int, *, ttl_s: float | None = None, label: str = "") -> str:
        """A new token for `account`, valid for `ttl_s` seconds (None: `default_ttl_s`).
        The `on_issue` hooks' saves may still be in progress: see `issue_saved`."""
        token, _, _ = self._issue(account, ttl_s, label)
        return token

    async def issue_saved(
        self, account: int, *, ttl_s: float | None = None, label: str = ""
    ) -> tuple[str, SessionRecord]:
        """Like `issue`, but returns (token, record) only once every save an `on_issue`
        hook started is done, so a token handed out survives a crash. If a save fails
        the token is withdrawn and the error raised: nobody ever holds it."""
        token, rec, saving = self._issue(account, ttl_s, label)
        try:
            for fut in saving:
                await (asyncio.wrap_future(fut) if isinstance(fut, Future) else fut)
        except BaseException:
            self._drop([rec.token_hash])
            raise
        return token, rec

    def _issue(
        self, account: int, ttl_s: float | None, label: str
    ) -> tuple[str, SessionRecord, list[Any]]:
        ttl = self.default_ttl_s if ttl_s is None else float(ttl_s)
        if not MIN_TTL_S <= ttl <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be in [{MIN_TTL_S}, {MAX_TTL_S}]")
        if type(account) is not int or account < 0:
            raise ValueError("account must be a non-negative integer")
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise ValueError(f"label must be a string of at most {MAX_LABEL} characters")
        self._issued += 1
        if self._issued % self.sweep_every == 0:
            self.sweep()
        mine = self._by_account.get(account)
        if mine is not None and len(mine) >= self.max_per_account:
            self._drop(list(mine)[: len(mine) - self.max_per_account + 1])
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._now_ms()
        rec = SessionRecord(token_hash(token), account, now, now + int(ttl * 1000), label)
        self._add(rec)
        saving = [r for r in (hook(rec) for hook in self.on_issue) if r is not None]
        return token, rec, saving

    def _add(self, rec: SessionRecord) -> None:
        self._by_hash[rec.token_hash] = rec
        self._by_account.setdefault(rec.account, {})[rec.token_hash] = None

    # -- checking

    def verify(self, token: object) -> int | None:
        """The token's account if it is known, unexpired and not revoked; else None."""
        rec = self.record(token)
        return rec.account if rec is not None else None

    def record(self, token: object) -> SessionRecord | None:
        if type(token) is not str or not 0 < len(token) <= MAX_TOKEN_LEN:
            return None
        return self.valid_hash(token_hash(token))

    def valid_hash(self, h: str) -> SessionRecord | None:
        """The live record for a token hash (an expired one is dropped here)."""
        rec = self._by_hash.get(h)
        if rec is None:
            return None
        if rec.expires_ms <= self._now_ms():
            self._drop([h])
            return None
        return rec

    # -- revoking

    def revoke(self, token: object) -> bool:
        """Revoke one token; True if it was live."""
        rec = self.record(token)
        if rec is None:
            return False
        self._drop([rec.token_hash])
        return True

    def revoke_hash(self, h: str) -> bool:
        if h not in self._by_hash:
            return False
        self._drop([h])
        return True

    def revoke_account(self, account: int) -> int:
        """Revoke every token of `account`; how many were live."""
        mine = self._by_account.get(account)
        if not mine:
            return 0
        now = self._now_ms()
        live = sum(1 for h in mine if self._by_hash[h].expires_ms > now)
        self._drop(list(mine))
        return live

    def sweep(self) -> int:
        """Drop every expired record; how many."""
        now = self._now_ms()
        dead = [h for h, r in self._by_hash.items() if r.expires_ms <= now]
        if dead:
            self._drop(dead)
        return len(dead)

    def _drop(self, hashes: list[str]) -> None:
        gone = []
        for h in hashes:
            rec = self._by_hash.pop(h, None)
            if rec is None:
                continue
            gone.append(rec)
            mine = self._by_account.get(rec.account)
            if mine is not None:
                mine.pop(h, None)
                if not mine:
                    del self._by_account[rec.account]
        if gone:
            for hook in self.on_revoke:
                hook(gone)

    # -- persistence

    def records(self) -> list[SessionRecord]:
        return list(self._by_hash.values())

    def load(self, records: Iterable[SessionRecord]) -> None:
        """Take stored records back (at start-up); expired ones are skipped."""
        now = self._now_ms()
        for rec in sorted(records, key=lambda r: r.created_ms):
            if rec.expires_ms > now:
                self._add(rec)

    def __len__(self) -> int:
        return len(self._by_hash)

    def _check(self) -> None:
        n = 0
        for acct, mine in self._by_account.items():
            assert mine, acct
            for h in mine:
                assert self._by_hash[h].account == acct
                n += 1
        assert n == len(self._by_hash)
        for h, rec in self._by_hash.items():
            assert rec.token_hash == h and rec.expires_ms > rec.created_ms
