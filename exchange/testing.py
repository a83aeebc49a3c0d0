"""Test support for the WebSocket API: an in-process stack and the AsyncAPI schemas.

Used by margincall's own tests and by anyone testing a strategy or an adapter
(the store, the MQTT bridge) against a real server on 127.0.0.1:

    async with running_stack(clock="stepped") as stack:
        async with Probe(stack.url, schemas) as p:
            await p.call("session.logon", adminToken=stack.admin_token)

`Schemas` validates every request, answer and stream message against the JSON
Schemas in docs/asyncapi.yaml (needs the `test` extras: jsonschema, pyyaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect

from exchange.auth import sign
from exchange.config import load_instruments
from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument
from exchange.runtime import ClockMode, CommandLog, Runtime
from exchange.server import Server, ServerConfig
from exchange.stack import Stack, stop_stack

if TYPE_CHECKING:
    from exchange.http import Setup

ASYNCAPI = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"


class Schemas:
    """The AsyncAPI document's schemas as jsonschema validators (Draft 7)."""

    def __init__(self, path: Path = ASYNCAPI) -> None:
        import yaml  # type: ignore[import-untyped]
        from jsonschema import Draft7Validator  # type: ignore[import-untyped]
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT7

        self.doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.names = set(self.doc["components"]["schemas"])
        resource = Resource.from_contents(self.doc, default_specification=DRAFT7)
        self._registry = Registry().with_resource("urn:asyncapi", resource)
        self._cls = Draft7Validator
        self._validators: dict[str, Any] = {}
        self.checked = 0
        self.failures: list[str] = []  # from checks that cannot raise (reader tasks)

    def validator(self, name: str) -> Any:
        v = self._validators.get(name)
        if v is None:
            if name not in self.names:
                raise KeyError(f"no schema {name!r} in {ASYNCAPI.name}")
            v = self._cls(
                {"$ref": f"urn:asyncapi#/components/schemas/{name}"}, registry=self._registry
            )
            self._validators[name] = v
        return v

    def check(self, name: str, instance: Any) -> None:
        errors = sorted(self.validator(name).iter_errors(instance), key=lambda e: e.path)
        if errors:
            best = errors[0]
            raise AssertionError(
                f"{name}: {best.message} at {list(best.absolute_path)}\n"
                f"{json.dumps(instance)[:2000]}"
            )
        self.checked += 1

    def check_request(self, msg: dict[str, Any]) -> None:
        # `Request` is the oneOf of every req.<method>, told apart by the method's const;
        # checking the one that applies is the same test, 30× cheaper.
        method = msg.get("method")
        if f"req.{method}" not in self.names:
            raise AssertionError(f"Request: no method {method!r} in the AsyncAPI document")
        self.check(f"req.{method}", msg)

    def check_response(self, method: str | None, msg: dict[str, Any]) -> None:
        if msg.get("status") == 200:
            self.check("Response", msg)
            if method is not None:
                self.check(f"res.{method}", msg["result"])
        else:
            self.check("ErrorResponse", msg)

    _STREAM_SCHEMA = {
        "book": "BookMessage",
        "trades": "TradesMessage",
        "mark": "MarkMessage",
        "liquidations": "LiquidationsMessage",
        "status": "StatusMessage",
        "cascades": "CascadesMessage",
        "account": "AccountMessage",
    }

    def check_stream(self, msg: dict[str, Any]) -> None:
        kind = str(msg.get("stream", "")).split(".")[0]
        schema = self._STREAM_SCHEMA.get(kind)
        if schema is None:
            raise AssertionError(f"unknown stream in {msg!r}")
        self.check(schema, msg)

    def observe(self, method: str | None, msg: dict[str, Any]) -> None:
        """Check a received message, recording (not raising) a failure."""
        try:
            if "stream" in msg:
                self.check_stream(msg)
            else:
                self.check_response(method, msg)
        except AssertionError as e:
            self.failures.append(str(e))

    def tracer(self) -> Any:
        """A `Client.trace` hook validating everything a `clients.Client` sends and receives."""
        methods: dict[Any, str] = {}

        def trace(direction: str, msg: dict[str, Any]) -> None:
            if direction == "send":
                self.check_request(msg)
                methods[msg.get("id")] = msg["method"]
            else:
                self.observe(None if "stream" in msg else methods.pop(msg.get("id"), None), msg)

        return trace


class ApiCallError(Exception):
    def __init__(self, msg: dict[str, Any]) -> None:
        super().__init__(json.dumps(msg))
        self.code: int = msg["error"]["code"]
        self.status: int = msg["status"]
        self.msg = msg


class Probe:
    """A raw JSON client for tests: validates what it sends and receives, buffers streams."""

    def __init__(self, url: str, schemas: Schemas | None = None, **connect_kw: Any) -> None:
        self.url = url
        self.schemas = schemas
        self.connect_kw = connect_kw
        self.ws: ClientConnection | None = None
        self.streams: dict[str, deque[dict[str, Any]]] = {}
        self.stream_event = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[Any, tuple[str | None, asyncio.Future[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.account: int | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    async def __aenter__(self) -> Probe:
        kw = {"compression": None, "max_size": 2**24, **self.connect_kw}
        self.ws = await connect(self.url, **kw)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "stream" in msg:
                    if self.schemas:
                        self.schemas.observe(None, msg)
                    self.streams.setdefault(msg["stream"], deque()).append(msg["data"])
                    self.stream_event.set()
                    continue
                method, fut = self._pending.pop(msg.get("id"), (None, None))
                if self.schemas:
                    self.schemas.observe(method, msg)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                elif fut is None:
                    self.streams.setdefault("_unmatched", deque()).append(msg)
                    self.stream_event.set()
        except Exception as e:  # connection closed or a bug in the test: note it
            self.close_reason = repr(e)
        finally:
            self.closed.set()
            for _, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

    async def send_raw(self, text: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def raw(self, method: str, params: dict[str, Any] | None = None, *, check: bool = True,
                  timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
        """Send a request and return the whole answer (validated)."""
        rid = next(self._ids)
        body: dict[str, Any] = {"id": rid, "method": method}
        if params is not None:
            body["params"] = params
        if check and self.schemas:
            self.schemas.check_request(body)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (method, fut)
        assert self.ws is not None
        await self.ws.send(json.dumps(body))
        return await asyncio.wait_for(fut, timeout)

    async def call(self, method: str, **params: Any) -> Any:
        """Send a request; return its result or raise `ApiCallError`."""
        msg = await self.raw(method, params or None)
        if msg["status"] != 200:
            raise ApiCallError(msg)
        return msg["result"]

    async def error(self, method: str, **params: Any) -> int:
        """Send a request expected to fail; return the error code.

        The request is not schema-checked (it is often invalid on purpose); the answer is.
        """
        msg = await self.raw(method, params or None, check=False)
        assert msg["status"] != 200, msg
        return int(msg["error"]["code"])

    async def logon(self, api_key: str, secret: str) -> Any:
        params: dict[str, Any] = {"apiKey": api_key, "timestamp": int(time.time() * 1000)}
        params["signature"] = sign(secret, params)
        res = await self.call("session.logon", **params)
        self.account = res["account"]
        return res

    async def next(self, stream: str, timeout: float = 5.0, where: Any = None) -> dict[str, Any]:
        """The next buffered message of `stream` (matching `where`), waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            q = self.streams.get(stream)
            while q:
                m = q.popleft()
                if where is None or where(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {stream}")
            self.stream_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stream_event.wait(), left)

    def drain(self, stream: str) -> list[dict[str, Any]]:
        q = self.streams.get(stream)
        out = list(q) if q else []
        if q:
            q.clear()
        return out


@contextlib.asynccontextmanager
async def running_stack(
    instruments: Iterable[Instrument] | None = None,
    *,
    clock: ClockMode = "stepped",
    config: ServerConfig | None = None,
    command_log: CommandLog | None = None,
    exchange: Exchange | None = None,
    admin_token: str | None = "test-admin-token",
    http: bool = False,
    http_setup: Iterable[Setup] = (),
    **runtime_kw: Any,
) -> AsyncIterator[Stack]:
    """A runtime and a server on 127.0.0.1 (a free port), stopped on exit. With `http`
    (or any `http_setup` hook), an HTTP server on another free port too."""
    from exchange.auth import AdminAuth

    ex = (
        exchange
        if exchange is not None
        else Exchange(instruments if instruments is not None else load_instruments())
    )
    runtime = Runtime(ex, clock=clock, command_log=command_log, **runtime_kw)
    cfg = config or ServerConfig()
    cfg.host, cfg.port = "127.0.0.1", 0 if cfg.port == 8765 else cfg.port
    server = Server(runtime, cfg, admin=AdminAuth(admin_token))
    stack = Stack(runtime, server)
    setups = list(http_setup)
    if http or setups:
        from exchange.http import HttpConfig, HttpServer

        stack.http = HttpServer(stack, HttpConfig(host="127.0.0.1", port=0))
        for setup in setups:
            stack.http.add_setup(setup)
    await runtime.start()
    await server.start()
    if stack.http is not None:
        await stack.http.start()
    try:
        yield stack
    finally:
        await stop_stack(stack)


async def fund_accounts(
    admin: Probe,
    n: int,
    deposit: str = "1000000",
    symbol: str = "BTCUSDT",
    index: str | None = "50000",
) -> list[dict[str, Any]]:
    """Create `n` funded accounts (and set the index if given); their key/secret dicts."""
    out = [await admin.call("admin.createAccount", deposit=deposit, asset="USDT") for _ in range(n)]
    if index is not None:
        await admin.call("admin.setIndex", symbol=symbol, price=index)
    return out
