"""API keys, secrets and the admin token.

How secrets are kept (the choice, and why)
------------------------------------------
`session.logon` is signed like the Binance WebSocket API: HMAC-SHA256 keyed by the
secret over the canonical payload, so the server must be able to recompute the
signature, i.e. must know the secret. A plain hash of the secret would not do.
Rather than store the secret encrypted, margincall *derives* it:

    secret = HMAC-SHA256(master_key, "margincall/api-secret/v1\\0" + api_key)  (hex)

and stores, per key, only SHA-256(api_key) → account. Nothing on disk is a secret
except the master key, which lives in one place (a file with mode 0600 or an
environment variable, see `exchange.cli`); a leaked key table alone gives neither
keys nor secrets, and there is no encryption scheme or nonce to get wrong. Rotating
the master key invalidates every secret at once. A key is revoked by deleting its
record. The store persists `KeyRecord`s (hashes only) through `KeyStore.records` /
`KeyStore.load` and the `on_issue` hook.

Logon checks, in order: parameters present and well typed (-1102 / -1130); the
timestamp within the receive window of the server's wall clock (-1021); the key known
(-2015); the signature (-1022). Comparisons are constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from exchange.core.errors import Code

SECRET_CONTEXT = b"margincall/api-secret/v1\0"
DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
FUTURE_TOLERANCE_MS = 1_000


class AuthError(Exception):
    def __init__(self, code: Code, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What is stored about an API key: its SHA-256 and its account. Never the key itself."""

    key_hash: str
    account: int
    created_ms: int


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def canonical_payload(params: Mapping[str, Any]) -> str:
    """The signed text: every parameter except `signature`, sorted by name, `k=v` joined by `&`.

    Booleans print as `true`/`false`, everything else with `str` (as the Binance WS API).
    """
    parts = []
    for k in sorted(params):
        if k == "signature":
            continue
        v = params[k]
        parts.append(f"{k}={'true' if v is True else 'false' if v is False else v}")
    return "&".join(parts)


def sign(secret: str, params: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of the canonical payload, keyed by the secret."""
    return hmac.new(secret.encode(), canonical_payload(params).encode(), hashlib.sha256).hexdigest()


class KeyStore:
    """API keys → accounts, with secrets derived from a master key (see module docstring)."""

    def __init__(self, master_key: bytes | None = None) -> None:
        self._master = master_key if master_key is not None else secrets.token_bytes(32)
        if len(self._master) < 16:
            raise ValueError("master key must be at least 16 bytes")
        self._by_hash: dict[str, KeyRecord] = {}
        # each hook may return a future (concurrent or awaitable) for a save it started
        self.on_issue: list[Callable[[KeyRecord], Any]] = []

    def secret_for(self, api_key: str) -> str:
        return hmac.new(
            self._master, SECRET_CONTEXT + api_key.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

    def issue(self, account: int) -> tuple[str, str]:
        """A new (api_key, secret) for `account`; only the key's hash is kept. The
        `on_issue` hooks' saves may still be in progress: see `issue_saved`."""
        api_key, secret, _ = self._issue(account)
        return api_key, secret

    async def issue_saved(self, account: int) -> tuple[str, str]:
        """Like `issue`, but returns only once every save an `on_issue` hook started (a
        future it returned) is done, so a key handed out survives a crash. If a save
        fails the key is withdrawn and the error raised: nobody ever holds it."""
        api_key, secret, saving = self._issue(account)
        try:
            for fut in saving:
                await (asyncio.wrap_future(fut) if isinstance(fut, Future) else fut)
        except BaseException:
            self.revoke(api_key)
            raise
        return api_key, secret

    def _issue(self, account: int) -> tuple[str, str, list[Any]]:
        api_key = secrets.token_hex(32)
        rec = KeyRecord(key_hash(api_key), account, int(time.time() * 1000))
        self._by_hash[rec.key_hash] = rec
        saving = [r for r in (hook(rec) for hook in self.on_issue) if r is not None]
        return api_key, self.secret_for(api_key), saving

    def revoke(self, api_key: str) -> bool:
        return self._by_hash.pop(key_hash(api_key), None) is not None

    def records(self) -> list[KeyRecord]:
        return list(self._by_hash.values())

    def load(self, records: Iterable[KeyRecord]) -> None:
        for rec in records:
            self._by_hash[rec.key_hash] = rec

    def account_for(self, api_key: str) -> int | None:
        rec = self._by_hash.get(key_hash(api_key))
        return rec.account if rec else None

    def verify(self, params: Mapping[str, Any], now_ms: int | None = None) -> int:
        """Check a `session.logon` {apiKey, timestamp, signature[, recvWindow]}; the account."""
        api_key = params.get("apiKey")
        ts = params.get("timestamp")
        sig = params.get("signature")
        window = params.get("recvWindow", DEFAULT_RECV_WINDOW_MS)
        for name, val in (("apiKey", api_key), ("timestamp", ts), ("signature", sig)):
            if val is None or val == "":
                raise AuthError(
                    Code.MANDATORY_PARAM_MISSING, f"Mandatory parameter '{name}' was not sent."
                )
        if not isinstance(api_key, str) or len(api_key) > 128:
            raise AuthError(Code.INVALID_PARAMETER, "Parameter 'apiKey' must be a string.")
        if not isinstance(sig, str) or len(sig) > 128:
            raise AuthError(Code.INVALID_PARAMETER, "Parameter 'signature' must be a string.")
        if isinstance(ts, bool) or not isinstance(ts, int) or not 0 < ts < 2**53:
            raise AuthError(
                Code.INVALID_PARAMETER, "Parameter 'timestamp' must be an integer (ms)."
            )
        if (
            isinstance(window, bool)
            or not isinstance(window, int)
            or not 0 < window <= MAX_RECV_WINDOW_MS
        ):
            raise AuthError(
                Code.INVALID_PARAMETER,
                f"Parameter 'recvWindow' must be an integer in 1..{MAX_RECV_WINDOW_MS}.",
            )
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if not now - window <= ts <= now + FUTURE_TOLERANCE_MS:
            raise AuthError(
                Code.TIMESTAMP_OUTSIDE_WINDOW,
                "Timestamp for this request is outside of the recvWindow.",
            )
        rec = self._by_hash.get(key_hash(api_key))
        if rec is None:
            raise AuthError(
                Code.INVALID_KEY_OR_PERMISSION, "Invalid API-key, IP, or permissions for action."
            )
        expected = sign(self.secret_for(api_key), params)
        if not hmac.compare_digest(expected.encode(), sig.lower().encode("ascii", "replace")):
            raise AuthError(Code.BAD_SIGNATURE, "Signature for this request is not valid.")
        return rec.account


class AdminAuth:
    """The admin token: one shared secret, compared in constant time."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token if token else secrets.token_urlsafe(24)

    def check(self, candidate: object) -> bool:
        if not isinstance(candidate, str) or len(candidate) > 256:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())
