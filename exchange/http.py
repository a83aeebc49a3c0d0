"""The HTTP server: one aiohttp application beside the WebSocket API, in the same loop.

Why aiohttp: it is pure asyncio (no ASGI layer, no second server library), starts
inside an already running loop (`AppRunner` + `TCPSite`), reads request bodies (which
`websockets`' own HTTP handling cannot: ccxt sends POST forms), and serves WebSocket
routes on the same port, which the Binance gateway's stream paths need. The native
WebSocket API stays on `websockets` at its own port.

Features do not live here. Each registers its routes from its own module through a
setup hook `setup(app, stack)` (`ServeOptions.http_setup`, `HttpServer.add_setup`),
so the web app, the Binance gateway and the classroom stay separate rooms.

Limits and safety, for every route (see `HttpConfig`):

* request bodies over `max_body` bytes → 413; request lines and headers over
  `max_line_size` / `max_field_size` → 400 (aiohttp's parser);
* more than `max_connections` open connections → 503 with ``Retry-After``;
* a handler that runs longer than `request_timeout` → 503 (WebSocket upgrades are
  long-lived and exempt); idle keep-alive connections close after `keepalive_timeout`;
* unknown paths → 404, a known path with the wrong method → 405 (with ``Allow``);
  API paths (``/fapi``, ``/api``, ``/dapi``, ``/class/api``) answer in the Binance
  error shape ``{"code": -9404, "msg": "..."}``, other paths in plain text;
* every response carries a Content-Security-Policy that allows only the app's own
  origin (no inline scripts, no other hosts), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer`` and ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exchange.core.errors import MESSAGES, Code

log = logging.getLogger("margincall.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: `setup(app, stack)`: the stack is an `exchange.stack.Stack` (typed `Any` here so that
#: this module, which the stack module builds, does not import it back).
Setup = Callable[[web.Application, Any], None]

#: The one policy for every page: scripts, styles, images, fonts and connections
#: (fetch and WebSocket) only from the serving origin. `style-src` allows the style
#: attributes that plotly.js sets from script (it sets no inline <style> text).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
API_PREFIXES = ("/fapi/", "/api/", "/dapi/", "/sapi/", "/class/api/")


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8766  # 0: any free port
    max_body: int = 64 * 1024
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_connections: int = 1000
    request_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    shutdown_timeout: float = 5.0


def error_response(status: int, code: Code | int, msg: str | None = None) -> web.Response:
    """A Binance-shaped error: HTTP `status`, body ``{"code": code, "msg": msg}``."""
    code = Code(code) if not isinstance(code, Code) else code
    body = json.dumps({"code": int(code), "msg": msg or MESSAGES[code]})
    return web.Response(status=status, text=body, content_type="application/json")


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


_HTTP_CODES = {
    404: Code.HTTP_NOT_FOUND,
    405: Code.HTTP_METHOD_NOT_ALLOWED,
    413: Code.HTTP_BODY_TOO_LARGE,
    503: Code.HTTP_BUSY,
}


class HttpServer:
    """The HTTP side of a stack. `add_setup(fn)` before `await start()`; `url`; `await stop()`."""

    def __init__(self, stack: Any, config: HttpConfig | None = None) -> None:
        self.stack = stack
        self.config = config or HttpConfig()
        self.app = web.Application(
            client_max_size=self.config.max_body,
            middlewares=[self._guard],
            handler_args={
                "max_line_size": self.config.max_line_size,
                "max_field_size": self.config.max_field_size,
            },
        )
        self.app.on_response_prepare.append(self._headers)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.refused_connections = 0
        self.timeouts = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def add_setup(self, setup: Setup) -> None:
        """Let `setup(app, stack)` register its routes; only before `start()`."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the HTTP server starts")
        assert self.stack is not None, "a setup hook needs the stack"
        setup(self.app, self.stack)

    async def start(self) -> None:
        cfg = self.config
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=cfg.keepalive_timeout,
            shutdown_timeout=cfg.shutdown_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stats(self) -> dict[str, int]:
        server = self._runner.server if self._runner is not None else None
        return {
            "connections": len(server.connections) if server is not None else 0,
            "refusedConnections": self.refused_connections,
            "timeouts": self.timeouts,
        }

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        server = self._runner.server if self._runner is not None else None
        if server is not None and len(server.connections) > self.config.max_connections:
            self.refused_connections += 1
            resp = self._error(request, 503)
            resp.headers["Retry-After"] = "1"
            resp.force_close()
            return resp
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        try:
            if upgrade:
                return await handler(request)
            async with asyncio.timeout(self.config.request_timeout):
                return await handler(request)
        except TimeoutError:
            self.timeouts += 1
            return self._error(request, 503, "The request took too long; nothing more was done.")
        except web.HTTPException as e:
            if e.status in _HTTP_CODES:
                resp = self._error(request, e.status)
                if e.status == 405:
                    resp.headers["Allow"] = e.headers.get("Allow", "")
                return resp
            raise

    @staticmethod
    def _error(request: web.Request, status: int, msg: str | None = None) -> web.Response:
        code = _HTTP_CODES[status]
        if _is_api(request.path):
            return error_response(status, code, msg)
        return web.Response(status=status, text=(msg or MESSAGES[code]) + "\n")

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
