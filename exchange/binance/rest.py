"""Binance USDⓈ-M REST under `/fapi/...` on the HTTP server (aiohttp).

One dispatcher does, for every request, in order: method and path known (404 / 405,
JSON); size limits (413 / 414); the weight limit (429, -1003, `Retry-After`; every
answer carries `X-MBX-USED-WEIGHT-1M`); parameters parsed from the query string and a
form body (malformed → -1100, repeated → -1101, unknown → -1104; a non-form body →
-1130); the key and signature for `USER_DATA`/`TRADE` endpoints (`signing.verify`). The
handler then reads the core or submits through the native API's methods
(`exchange.protocol.params.METHODS`), so the checks on values are the native API's: a request
refused for any reason changes nothing. Handlers live in `exchange.binance.endpoints`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic_core import to_json

from exchange.binance import signing
from exchange.binance.errors import TOO_MUCH_WEIGHT, BinanceError
from exchange.binance.gateway import Gateway
from exchange.core.errors import MESSAGES, Code
from exchange.errors import StoreUnavailable
from exchange.protocol.wire import ProtocolError
from exchange.units import UnitError

log = logging.getLogger("margincall.binance")

NONE, KEY, SIGNED = "NONE", "KEY", "SIGNED"
_SIGNING = frozenset(("timestamp", "recvWindow", "signature"))
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\Z")


@dataclass
class Request:
    """What a handler gets: the parameters (text), the account, times, the gateway."""

    gw: Gateway
    params: dict[str, str]
    account: int | None
    now_ms: int
    api_key: str | None

    def get(self, name: str) -> str | None:
        v = self.params.get(name)
        return v if v != "" else None

    def need(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise BinanceError(
                Code.MANDATORY_PARAM_MISSING,
                f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
            )
        return v

    def int(self, name: str, lo: int = 0, hi: int = 2**63 - 1, default: int | None = None) -> int | None:  # fmt: skip
        v = self.get(name)
        if v is None:
            return default
        if not (v.isdigit() and v.isascii()) or len(v) > 19 or not lo <= int(v) <= hi:
            raise BinanceError(
                Code.INVALID_PARAMETER, f"Param '{name}' must be an integer in [{lo}, {hi}]."
            )
        return int(v)


Handler = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    security: str
    weight: int | Callable[[dict[str, str]], int]
    params: frozenset[str]


ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


def endpoint(method: str, paths: str | tuple[str, ...], security: str = NONE,
             weight: int | Callable[[dict[str, str]], int] = 1, params: str = "") -> Callable[[Handler], Handler]:  # fmt: skip
    """Register a handler for `method` on each of `paths`; `params` names what it reads
    (the signing parameters are added for signed endpoints)."""
    names = frozenset(params.split())
    if security == SIGNED:
        names |= _SIGNING

    def deco(fn: Handler) -> Handler:
        for p in (paths,) if isinstance(paths, str) else paths:
            ENDPOINTS[(method, p)] = Endpoint(fn, security, weight, names)
        return fn

    return deco


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=to_json(data),
        content_type="application/json",
        headers=headers,
    )


def _parse(raw: str, into: dict[str, str]) -> None:
    try:
        pairs = parse_qsl(
            raw, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=64
        )
    except (ValueError, UnicodeDecodeError):
        raise BinanceError(Code.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
    for k, v in pairs:
        if k in into:
            raise BinanceError(
                Code.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected."
            )
        if not _NAME.match(k) or len(v) > 1024:
            raise BinanceError(Code.ILLEGAL_CHARS, "Illegal characters found in a parameter name, or a value over 1024 characters.")  # fmt: skip
        into[k] = v


def _address(request: web.Request) -> str:
    return request.remote or "?"


def _error_from(e: Exception) -> BinanceError:
    if isinstance(e, BinanceError):
        return e
    if isinstance(e, ProtocolError):
        status = e.status if e.status in (401, 429, 503, 500) else 400
        if e.code in (Code.BAD_SIGNATURE, Code.TIMESTAMP_OUTSIDE_WINDOW):
            status = 400
        return BinanceError(e.code, e.msg, status)
    if isinstance(e, UnitError):
        return BinanceError(int(e.code), e.msg, 400)
    if isinstance(e, StoreUnavailable):
        return BinanceError(Code.STORE_UNAVAILABLE, MESSAGES[Code.STORE_UNAVAILABLE], 503)
    log.exception("Binance request failed")
    return BinanceError(Code.UNKNOWN, MESSAGES[Code.UNKNOWN], 500)


async def dispatch(gw: Gateway, ep: Endpoint, request: web.Request) -> web.Response:
    t0 = time.perf_counter()
    try:
        return await _dispatch(gw, ep, request)
    finally:
        gw.handler_seconds += time.perf_counter() - t0
        gw.handled += 1


async def _dispatch(gw: Gateway, ep: Endpoint, request: web.Request) -> web.Response:
    gw.requests += 1
    cfg = gw.config
    who = _address(request)
    headers: dict[str, str] = {}
    try:
        raw_query = request.rel_url.raw_query_string
        if len(raw_query) > cfg.max_query:
            return _json(414, {"code": int(Code.ILLEGAL_CHARS), "msg": "Query string too long."})
        if request.content_length is not None and request.content_length > cfg.max_body:
            return _json(413, {"code": int(Code.ILLEGAL_CHARS), "msg": "Request body too large."})
        body = b""
        if request.can_read_body:
            body = await request.content.read(cfg.max_body + 1)
            if len(body) > cfg.max_body:
                return _json(
                    413, {"code": int(Code.ILLEGAL_CHARS), "msg": "Request body too large."}
                )
        params: dict[str, str] = {}
        _parse(raw_query, params)
        raw_body = ""
        if body:
            ctype = request.content_type
            if ctype not in ("application/x-www-form-urlencoded", "application/octet-stream", ""):
                raise BinanceError(
                    Code.INVALID_PARAMETER,
                    "Send parameters in the query string or as an application/x-www-form-urlencoded body.",
                )
            try:
                raw_body = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BinanceError(Code.ILLEGAL_CHARS, "The body is not UTF-8.") from None
            _parse(raw_body, params)
        weight = ep.weight(params) if callable(ep.weight) else ep.weight
        ok, used, retry = gw.weights.take(who, weight)
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        if not ok:
            headers["Retry-After"] = str(retry)
            raise BinanceError(
                TOO_MUCH_WEIGHT,
                f"Too much request weight used; current limit is {cfg.weight_limit} request weight per 1 MINUTE.",
                429,
            )
        for k in params:
            if k not in ep.params:
                raise BinanceError(Code.UNKNOWN_PARAM, f"Unknown parameter '{k[:64]}'.")
        now = int(time.time() * 1000)
        api_key = request.headers.get("X-MBX-APIKEY")
        account = None
        if ep.security == SIGNED:
            account = signing.verify(gw.api.keys, api_key, raw_query, raw_body, params, now)
        elif ep.security == KEY:
            account = signing.api_key_account(gw.api.keys, api_key)
        result = await ep.handler(Request(gw, params, account, now, api_key))
        return _json(200, result, headers)
    except Exception as e:
        gw.errors += 1
        err = _error_from(e)
        return _json(err.status, err.body(), headers)


def add_routes(app: web.Application, gw: Gateway) -> None:
    """One route per (method, path) of `ENDPOINTS`, so the HTTP server answers unknown
    paths 404 and wrong methods 405 (with `Allow`) in the Binance error shape."""

    def handler(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await dispatch(gw, ep, request)

        return handle

    for (method, path), ep in ENDPOINTS.items():
        app.router.add_route(method, path, handler(ep))
