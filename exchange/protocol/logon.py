"""Methods `session.*`: logon (API key, session token or admin token), tokens, logout."""

from __future__ import annotations

import time
from typing import Any

from exchange.auth import AuthError
from exchange.core.errors import Code
from exchange.protocol.params import _type_error, method, v_int, v_str
from exchange.protocol.session import Session
from exchange.protocol.wire import ProtocolError
from exchange.sessions import MAX_LABEL, MAX_TTL_S


@method(
    "session.logon",
    "public",
    optional={
        "apiKey": v_str(128),
        "timestamp": v_int(0),
        "signature": v_str(128),
        "recvWindow": v_int(1, 60_000),
        "adminToken": v_str(256),
        "token": v_str(128),
    },
)
async def _logon(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    if "adminToken" in p:
        if len(p) != 1:
            raise ProtocolError(Code.UNKNOWN_PARAM, "Send either adminToken or apiKey, not both.")
        if not api.admin.check(p["adminToken"]):
            raise ProtocolError(Code.INVALID_KEY_OR_PERMISSION)
        s.admin = True
        return {"admin": True, "account": s.account, "serverTime": int(time.time() * 1000)}
    if "token" in p:
        if len(p) != 1:
            raise ProtocolError(Code.UNKNOWN_PARAM, "Send either token or apiKey, not both.")
        rec = api.sessions.record(p["token"])
        if rec is None:
            raise ProtocolError(
                Code.INVALID_KEY_OR_PERMISSION, "Unknown, expired or revoked session token."
            )
        _become(s, rec.account)
        s.token_hash = rec.token_hash
        return {
            "account": rec.account,
            "admin": s.admin,
            "serverTime": int(time.time() * 1000),
            "expiresAt": rec.expires_ms,
            "label": rec.label,
        }
    try:
        account = api.keys.verify(p)
    except AuthError as e:
        raise ProtocolError(e.code, e.msg) from None
    _become(s, account)
    return {"account": account, "admin": s.admin, "serverTime": int(time.time() * 1000)}


def _become(s: Session, account: int) -> None:
    if s.account is not None and s.account != account:
        s.api.router.remove_account(s, s.account)
        s.streams.discard("account")
    s.account = account
    s.token_hash = None


def v_label(v: Any, name: str) -> str:
    # any printable text (a nickname): the app shows it with textContent, never as HTML
    if type(v) is not str or len(v) > MAX_LABEL or not v.isprintable():
        raise _type_error(name, f"printable text of at most {MAX_LABEL} characters")
    return v


_TOKEN_OPTS = {"ttl": v_int(60, int(MAX_TTL_S)), "label": v_label}


async def _new_token(s: Session, account: int, p: dict[str, Any]) -> dict[str, Any]:
    token, rec = await s.api.sessions.issue_saved(
        account, ttl_s=p.get("ttl"), label=p.get("label", "")
    )  # durable before it is handed out
    return {"token": token, "account": account, "expiresAt": rec.expires_ms, "label": rec.label}


@method("session.create", "user", optional=_TOKEN_OPTS)
async def _session_create(s: Session, p: dict[str, Any]) -> Any:
    """A session token for this connection's own account (e.g. for a browser)."""
    if s.token_hash is not None:
        # a token cannot mint tokens: a stolen one then dies with its expiry
        raise ProtocolError(
            Code.INVALID_KEY_OR_PERMISSION, "session.create needs an API-key logon."
        )
    return await _new_token(s, s.account, p)  # type: ignore[arg-type]


@method("session.revoke", "public", optional={"token": v_str(128)})
async def _session_revoke(s: Session, p: dict[str, Any]) -> Any:
    """Revoke the given token, or (without one) the token this connection logged on with."""
    sessions = s.api.sessions
    if "token" in p:
        return {"revoked": 1 if sessions.revoke(p["token"]) else 0}
    if s.token_hash is None:
        raise ProtocolError(
            Code.MANDATORY_PARAM_MISSING, "Send 'token', or log on with a session token first."
        )
    h = s.token_hash
    s.end_logon()
    return {"revoked": 1 if sessions.revoke_hash(h) else 0}


@method("session.status", "public")
async def _session_status(s: Session, p: dict[str, Any]) -> Any:
    return {"account": s.account, "admin": s.admin, "streams": sorted(s.streams)}


@method("session.logout", "public")
async def _logout(s: Session, p: dict[str, Any]) -> Any:
    s.end_logon()
    s.admin = False
    return {"account": None, "admin": False}
