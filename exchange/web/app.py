"""The web app's routes on the HTTP server: its page, its static files, plotly.js, and
the native WebSocket protocol on the same origin.

`setup(app, stack)` is an `http_setup` hook (see `exchange.http`): it adds

- ``GET /`` — the app (one page, three screens: market, liquidations, trading);
- ``GET /static/{name}`` — the app's files, shipped inside this package (a fixed set,
  read once at start-up; nothing is fetched from anywhere at run time);
- ``GET /vendor/plotly.min.js`` — plotly.js from the installed `plotly` Python package;
- ``GET /api/ws`` — the WebSocket protocol of `exchange.protocol`, so the page needs
  no other origin (CSP ``connect-src 'self'``). Same limits as `exchange.server`: the
  maximum message size (larger closes with 1009), the per-connection rate limit (-1015,
  then 1008 for abusers), the bounded outbox (a slow reader is closed with 1008), the
  maximum number of connections (shared with the WebSocket server), keepalive pings.
  Connections are counted in the WebSocket server's `admin.stats` counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import mimetypes
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from exchange.core.errors import MESSAGES, Code
from exchange.protocol.wire import error_text
from exchange.server import Connection, _request_id

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}  # fmt: skip


def plotly_js() -> Path | None:
    """plotly.min.js inside the installed `plotly` package (None if it is missing)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


class _Files:
    """The app's static files, read once: name → (bytes, content type)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for p in sorted(STATIC.rglob("*")):
            if p.is_file():
                ctype = TYPES.get(p.suffix) or mimetypes.guess_type(p.name)[0] or "application/octet-stream"  # fmt: skip
                self.files[p.relative_to(STATIC).as_posix()] = (p.read_bytes(), ctype)

    def response(self, name: str, cache: str = "no-cache") -> web.Response:
        hit = self.files.get(name)
        if hit is None:
            raise web.HTTPNotFound(text="Not found.\n")
        body, ctype = hit
        charset = "utf-8" if ctype.startswith("text/") or ctype.endswith("+xml") else None
        return web.Response(
            body=body,
            content_type=ctype,
            charset=charset,
            headers={"Cache-Control": cache},
        )


class _WsAdapter:
    """An aiohttp WebSocket with the few methods `exchange.server.Connection` uses."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self.transport = request.transport

    async def send(self, text: str) -> None:
        await self._ws.send_str(text)

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=reason.encode())


def setup(app: web.Application, stack: Any) -> None:
    """Register the web app's routes (an `http_setup` hook)."""
    files = _Files()
    plotly = plotly_js()
    plotly_body = plotly.read_bytes() if plotly is not None else None
    server = stack.server

    async def index(request: web.Request) -> web.Response:
        return files.response("index.html")

    async def static(request: web.Request) -> web.Response:
        return files.response(request.match_info["name"])

    async def vendor_plotly(request: web.Request) -> web.Response:
        if plotly_body is None:
            raise web.HTTPNotFound(text="plotly is not installed.\n")
        return web.Response(
            body=plotly_body,
            content_type="text/javascript",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def websocket(request: web.Request) -> web.StreamResponse:
        cfg = server.config
        if len(server.connections) >= cfg.max_connections:
            server.refused_connections += 1
            raise web.HTTPServiceUnavailable(text="Too many connections.\n")
        ws = web.WebSocketResponse(
            max_msg_size=cfg.max_size,
            heartbeat=cfg.ping_interval,
            compress=False,
            autoping=True,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="Expected a WebSocket upgrade.\n")
        await ws.prepare(request)
        await _serve(server, ws, request)
        return ws

    app.router.add_get("/", index)
    app.router.add_get("/static/{name:[A-Za-z0-9_.-]+}", static)
    app.router.add_get("/vendor/plotly.min.js", vendor_plotly)
    app.router.add_get("/api/ws", websocket)


async def _serve(server: Any, ws: web.WebSocketResponse, request: web.Request) -> None:
    """One browser connection: like `exchange.server.Server._handler`, over aiohttp."""
    conn = Connection(server, _WsAdapter(ws, request))  # type: ignore[arg-type]
    server.connections.add(conn)
    server.accepted += 1
    conn.writer = asyncio.create_task(conn.write_loop())
    handle = conn.session.handle_text
    try:
        async for msg in ws:
            if conn.dead:
                break
            if msg.type == WSMsgType.TEXT:
                text: str | bytes = msg.data
            elif msg.type == WSMsgType.BINARY:
                server.binary_frames += 1
                text = msg.data
            elif msg.type == WSMsgType.ERROR:
                break
            else:
                continue
            if conn.limited():
                if conn.dead:
                    break
                await ws.send_str(
                    error_text(
                        _request_id(text),
                        int(Code.TOO_MANY_REQUESTS),
                        MESSAGES[Code.TOO_MANY_REQUESTS],
                        429,
                    )
                )
                continue
            await ws.send_str(await handle(text))
    except ConnectionError:
        pass
    finally:
        server.connections.discard(conn)
        conn.session.close()
        conn.dead = True
        conn.wake.set()
        if conn.writer is not None:
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await conn.writer
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
