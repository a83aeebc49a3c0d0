"""The HTTP server's limits and manners, for every route a feature registers:
404 and 405 in the Binance error shape on API paths, 413 past the body limit, 400 for
oversized headers, 503 past the connection limit or the handler time limit, and the
security headers (a Content-Security-Policy of the serving origin only) on every answer."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exchange.http import CSP, HttpConfig, HttpServer
from exchange.stack import ServeOptions, Stack, start_stack, stop_stack
from exchange.testing import running_stack

ROOT = Path(__file__).resolve().parents[1]


def routes(app: web.Application, stack: Stack) -> None:
    """What a feature does: register its own routes, here an echo and a slow page."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"bytes": len(body), "symbols": list(stack.exchange.markets)})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>hi</p>", content_type="text/html")

    app.router.add_post("/api/v1/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/", page)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(http_setup=[routes]) as s:
        assert s.http is not None
        s.http.config.request_timeout = 0.5
        yield s


async def fetch(method: str, url: str, **kw: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as r:
        return r.status, dict(r.headers), await r.text()


async def test_a_registered_route_answers_with_the_security_headers(stack: Stack) -> None:
    status, headers, text = await fetch("GET", f"{stack.http_url}/")
    assert status == 200 and "<p>hi</p>" in text
    assert headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "connect-src 'self'" in CSP
    assert "frame-ancestors 'none'" in CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    status, _, text = await fetch("POST", f"{stack.http_url}/api/v1/echo", data=b"x" * 100)
    assert status == 200 and json.loads(text) == {"bytes": 100, "symbols": ["BTCUSDT", "ETHUSDT"]}


async def test_unknown_paths_are_404_and_wrong_methods_405(stack: Stack) -> None:
    status, headers, text = await fetch("GET", f"{stack.http_url}/fapi/v1/nothing")
    assert status == 404 and json.loads(text) == {"code": -9404, "msg": "No such path."}
    assert headers["Content-Security-Policy"] == CSP
    status, _, text = await fetch("GET", f"{stack.http_url}/nothing.html")
    assert status == 404 and text == "No such path.\n"
    status, headers, text = await fetch("DELETE", f"{stack.http_url}/api/v1/echo")
    assert status == 405 and json.loads(text)["code"] == -9405
    assert "POST" in headers["Allow"]


async def test_a_body_over_the_limit_is_413_and_reaches_no_feature(stack: Stack) -> None:
    assert stack.http is not None
    big = b"x" * (stack.http.config.max_body + 1)
    status, _, text = await fetch("POST", f"{stack.http_url}/api/v1/echo", data=big)
    assert status == 413 and json.loads(text)["code"] == -9413


async def test_oversized_headers_are_refused(stack: Stack) -> None:
    status, _, _ = await fetch("GET", f"{stack.http_url}/", headers={"X-Big": "y" * 20_000})
    assert status == 400


async def test_a_handler_past_the_time_limit_answers_503(stack: Stack) -> None:
    status, _, text = await fetch("GET", f"{stack.http_url}/slow")
    assert status == 503 and "too long" in text
    assert stack.http is not None and stack.http.stats()["timeouts"] == 1


async def test_connections_past_the_limit_get_503() -> None:
    async with running_stack(http_setup=[routes]) as s:
        assert s.http is not None
        s.http.config.max_connections = 2
        conn = aiohttp.TCPConnector(limit=10, force_close=False)
        async with aiohttp.ClientSession(connector=conn) as http:
            held = [await asyncio.open_connection("127.0.0.1", s.http.port) for _ in range(3)]
            await asyncio.sleep(0.1)
            async with http.get(f"{s.http_url}/") as r:
                assert r.status == 503 and r.headers["Retry-After"] == "1"
            for _, w in held:
                w.close()
            await asyncio.sleep(0.1)
            async with http.get(f"{s.http_url}/") as r:
                assert r.status == 200
        assert s.http.stats()["refusedConnections"] == 1


async def test_routes_cannot_be_added_once_serving(stack: Stack) -> None:
    assert stack.http is not None
    with pytest.raises(RuntimeError):
        stack.http.add_setup(routes)


async def test_start_stack_serves_http_when_asked_and_not_otherwise() -> None:
    opts = ServeOptions(port=0, http_port=0, admin_token="t", tick_interval=None)
    opts.http_setup.append(routes)
    stack = await start_stack(opts)
    try:
        assert stack.http_url is not None and stack.http_url.startswith("http://127.0.0.1:")
        status, _, _ = await fetch("GET", f"{stack.http_url}/")
        assert status == 200
    finally:
        await stop_stack(stack)
    plain = await start_stack(ServeOptions(port=0, admin_token="t", tick_interval=None))
    try:
        assert plain.http is None and plain.http_url is None
    finally:
        await stop_stack(plain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_command_has_an_http_port_and_can_turn_it_off() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli", "serve", "--port", "0", "--store", "off",
         "--http-port", str(port), "--clock", "stepped"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(40):
            line = proc.stderr.readline()
            if "margincall listening on" in line:
                break
        assert f"HTTP on http://127.0.0.1:{port}" in line, line
        status, _, text = asyncio.run(fetch("GET", f"http://127.0.0.1:{port}/api/nothing"))
        assert status == 404 and json.loads(text)["code"] == -9404
    finally:
        proc.terminate()
        proc.wait(15)
    off = subprocess.run(
        [sys.executable, "-m", "exchange.cli", "serve", "--help"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert "--http-port" in off.stdout and "--no-http" in off.stdout


def test_http_config_defaults_are_bounded() -> None:
    cfg = HttpConfig()
    assert cfg.port == 8766 and cfg.max_body == 64 * 1024 and cfg.request_timeout > 0
    assert HttpServer(None, cfg).url == "http://127.0.0.1:None"
