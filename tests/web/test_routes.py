"""The web app's routes without a browser: the page, its static files and plotly.js come
from the installed package, every answer carries the CSP, unknown paths 404, wrong
methods 405, oversized bodies are never read, and /api/ws speaks the native protocol with the
WebSocket server's limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from exchange.http import CSP
from exchange.server import ServerConfig
from exchange.stack import Stack
from exchange.testing import Schemas, running_stack
from exchange.web.app import STATIC, plotly_js, setup

S = Schemas()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    cfg = ServerConfig(max_size=4096, rate_limit=20.0, rate_burst=20.0, max_outbox=50)
    async with running_stack(config=cfg, http_setup=[setup]) as s:
        yield s


async def get(url: str, method: str = "GET", **kw: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as r:
        return r.status, dict(r.headers), await r.read()


async def test_the_page_and_its_files_come_from_the_package(stack: Stack) -> None:
    base = stack.http_url
    status, headers, body = await get(f"{base}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "connect-src 'self'" in CSP
    assert body == (STATIC / "index.html").read_bytes()
    assert b"<script>" not in body and b"onclick=" not in body  # no inline script
    for name in ("main.js", "conn.js", "app.css", "favicon.svg"):
        status, headers, body = await get(f"{base}/static/{name}")
        assert status == 200 and body == (STATIC / name).read_bytes(), name
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert (await get(f"{base}/static/main.js"))[1]["Content-Type"].startswith("text/javascript")


async def test_plotly_is_served_from_the_installed_python_package(stack: Stack) -> None:
    path = plotly_js()
    assert path is not None and path.parts[-3:] == ("plotly", "package_data", "plotly.min.js")
    status, headers, body = await get(f"{stack.http_url}/vendor/plotly.min.js")
    assert status == 200 and body == path.read_bytes()
    assert headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    ["/nope", "/static/nope.js", "/static/../app.py", "/static/%2e%2e/app.py", "/vendor/x.js"],
)
async def test_unknown_paths_are_404(stack: Stack, path: str) -> None:
    status, headers, _ = await get(stack.http_url + path)
    assert status == 404 and headers["Content-Security-Policy"] == CSP


async def test_wrong_methods_are_405_even_with_big_bodies(stack: Stack) -> None:
    status, headers, _ = await get(f"{stack.http_url}/", "POST", data=b"x")
    assert status == 405 and "GET" in headers["Allow"]
    status, _, _ = await get(f"{stack.http_url}/static/main.js", "DELETE")
    assert status == 405
    status, _, _ = await get(f"{stack.http_url}/", "POST", data=b"x" * (1 << 20))
    assert status in (405, 413)
    # an API path answers in the Binance error shape; the oversized body is never read
    status, _, body = await get(f"{stack.http_url}/api/ws", "POST", data=b"x" * (1 << 20))
    assert status == 405 and json.loads(body)["code"] < 0
    status, _, _ = await get(f"{stack.http_url}/api/ws")  # no upgrade
    assert status == 400


async def ws(stack: Stack) -> Any:
    session = aiohttp.ClientSession()
    conn = await session.ws_connect(f"{stack.http_url}/api/ws", max_msg_size=1 << 24)
    return session, conn


async def test_the_native_protocol_on_the_http_port(stack: Stack) -> None:
    session, conn = await ws(stack)
    try:
        await conn.send_str(json.dumps({"id": 1, "method": "time"}))
        ans = json.loads(await conn.receive_str())
        S.check_response("time", ans)
        await conn.send_str(
            json.dumps({"id": 2, "method": "subscribe", "params": {"streams": ["book.BTCUSDT"]}})
        )
        msgs = [json.loads(await conn.receive_str()) for _ in range(2)]
        assert {m.get("stream") for m in msgs} == {None, "book.BTCUSDT"}
        for m in msgs:
            S.observe("subscribe" if "id" in m else None, m)
        await conn.send_bytes(b"{}")
        assert json.loads(await conn.receive_str())["error"]["code"] == -1100
        assert stack.server.stats()["connections"] == 1  # counted with the WebSocket API's
    finally:
        await conn.close()
        await session.close()
    assert not S.failures, S.failures


async def test_the_ws_limits_hold_on_the_http_port(stack: Stack) -> None:
    session, conn = await ws(stack)
    try:
        codes = []
        for i in range(40):  # over 20 a second: -1015, answered, not processed
            await conn.send_str(json.dumps({"id": i, "method": "time"}))
        for _ in range(40):
            ans = json.loads(await conn.receive_str())
            codes.append(ans.get("error", {}).get("code"))
        assert -1015 in codes and None in codes
        await conn.send_str("x" * 10_000)  # over max_size: closed with 1009
        msg = await conn.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert conn.close_code == 1009
    finally:
        await conn.close()
        await session.close()
