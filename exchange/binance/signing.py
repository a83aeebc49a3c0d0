"""Binance's request security: HMAC-SHA256 over the raw parameters, `X-MBX-APIKEY`,
`timestamp` and `recvWindow`, checked against the native API's key store.

The signed text is Binance's *totalParams*: the query string exactly as sent, followed
by the body exactly as sent, each without its `signature=` pair (so the check never
depends on how the server re-encodes parameters). Keys and secrets are the native
API's (`exchange.auth.KeyStore`): an account created by `admin.createAccount` signs
both protocols with the same secret.

Checks, in order, each with Binance's code: the key header present (-2014 API-key format
invalid when empty or too long), `timestamp` present and an integer (-1102 / -1100),
`recvWindow` an integer in 1..60000 (-1130), `signature` present (-1102), the timestamp
within the window of the server's wall clock, at most 1 s ahead (-1021), the key known
(-2015), the signature (-1022). Comparisons are constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from exchange.auth import FUTURE_TOLERANCE_MS, MAX_RECV_WINDOW_MS, KeyStore
from exchange.binance.errors import BinanceError
from exchange.core.errors import Code

DEFAULT_RECV_WINDOW_MS = 5_000
API_KEY_FORMAT_INVALID = -2014
_INT = re.compile(r"[0-9]{1,16}\Z")
_HEX = re.compile(r"[0-9a-fA-F]{64}\Z")


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(raw without its `signature=` pair, the signature or None)."""
    if "signature=" not in raw:
        return raw, None
    kept, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), sig


def sign(secret: str, total_params: str) -> str:
    """What a client sends as `signature` for `total_params` (tests, benchmarks)."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def api_key_account(keys: KeyStore, api_key: str | None) -> int:
    """The account of an API key alone (the listenKey endpoints are not signed)."""
    if not api_key or len(api_key) > 128:
        raise BinanceError(API_KEY_FORMAT_INVALID, "API-key format invalid.", 401)
    account = keys.account_for(api_key)
    if account is None:
        raise BinanceError(
            Code.INVALID_KEY_OR_PERMISSION, "Invalid API-key, IP, or permissions for action.", 401
        )
    return account


def verify(
    keys: KeyStore,
    api_key: str | None,
    raw_query: str,
    raw_body: str,
    params: dict[str, Any],
    now_ms: int,
) -> int:
    """Check a signed request (see the module docstring); the account it acts for."""
    if not api_key or len(api_key) > 128:
        raise BinanceError(API_KEY_FORMAT_INVALID, "API-key format invalid.", 401)
    ts = params.get("timestamp")
    if ts is None or ts == "":
        raise BinanceError(Code.MANDATORY_PARAM_MISSING, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")  # fmt: skip
    if not _INT.match(ts):
        raise BinanceError(Code.ILLEGAL_CHARS, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.")  # fmt: skip
    window_text = params.get("recvWindow")
    window = DEFAULT_RECV_WINDOW_MS
    if window_text is not None:
        if not _INT.match(window_text) or not 0 < int(window_text) <= MAX_RECV_WINDOW_MS:
            raise BinanceError(Code.INVALID_PARAMETER, f"Param 'recvWindow' must be an integer in 1..{MAX_RECV_WINDOW_MS}.")  # fmt: skip
        window = int(window_text)
    q, sig_q = strip_signature(raw_query)
    b, sig_b = strip_signature(raw_body)
    sig = sig_b if sig_b is not None else sig_q
    if not sig:
        raise BinanceError(Code.MANDATORY_PARAM_MISSING, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")  # fmt: skip
    t = int(ts)
    if not now_ms - window <= t <= now_ms + FUTURE_TOLERANCE_MS:
        raise BinanceError(
            Code.TIMESTAMP_OUTSIDE_WINDOW,
            "Timestamp for this request is outside of the recvWindow."
            if t < now_ms
            else "Timestamp for this request was 1000ms ahead of the server's time.",
        )
    account = keys.account_for(api_key)
    if account is None:
        raise BinanceError(
            Code.INVALID_KEY_OR_PERMISSION, "Invalid API-key, IP, or permissions for action.", 401
        )
    if not _HEX.match(sig):
        raise BinanceError(Code.BAD_SIGNATURE, "Signature for this request is not valid.")
    expected = sign(keys.secret_for(api_key), q + b)
    if not hmac.compare_digest(expected, sig.lower()):
        raise BinanceError(Code.BAD_SIGNATURE, "Signature for this request is not valid.")
    return account
