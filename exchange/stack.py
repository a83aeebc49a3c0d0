"""Assembling a running exchange: the runtime, the WebSocket API and the HTTP server.

`start_stack(ServeOptions)` builds every piece in one place, so the CLI, the store's
serving process, the replay and the backtest start the same stack the same way:

1. the `Exchange` (given, recovered by the store, or built from the instruments file),
2. the `Runtime` that owns it (one task, one command queue),
3. the WebSocket `Server` (the native API),
4. the `HttpServer` when `http_port` is not None, with every `http_setup` hook called on
   its aiohttp application (the web app, the Binance gateway and the classroom each
   register their own routes this way),
5. the `before_start` hooks (the store attaches, the MQTT bridge subscribes),

then starts runtime, WebSocket server and HTTP server, in that order. `stop_stack`
stops them in the reverse order.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from exchange.core.engine import Exchange
    from exchange.http import HttpServer
    from exchange.runtime import Runtime
    from exchange.server import Server


@dataclass
class ServeOptions:
    """Everything a stack needs; adapters (store, MQTT, HTTP features) add hooks here.

    `http_port`: None serves no HTTP; 0 takes any free port. `http_setup`: callables
    `(app, stack)` that register routes on the HTTP server's aiohttp application before
    it starts. `extra` keys understood by `start_stack`: ``"exchange"`` (an `Exchange` to
    run, e.g. one the store recovered), ``"instrument_list"`` (instruments instead of the
    file), ``"before_start"`` (async callables `(runtime, server)` run after everything
    is built and before it starts: the place to `store.attach(runtime)`, load key records
    into `server.api.keys`, or start an MQTT bridge on `runtime.subscribe(...)`) and
    ``"after_stop"`` (async callables `()` that `serve` runs after `stop_stack`).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    instruments: Path | None = None
    clock: str = "realtime"
    start_ts: int | None = None
    admin_token: str | None = None
    master_key_file: Path | None = None
    rate_limit: float | None = 5000.0
    max_connections: int = 1000
    compression: bool = False
    tick_interval: float | None = 1.0
    http_port: int | None = None
    http_setup: list[Callable[[web.Application, Stack], None]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stack:
    """A running exchange: its runtime, its WebSocket server and (maybe) its HTTP server."""

    runtime: Runtime
    server: Server
    http: HttpServer | None = None
    opts: ServeOptions | None = None

    @property
    def url(self) -> str:
        """The WebSocket API's URL (``ws://host:port``)."""
        return self.server.url

    @property
    def http_url(self) -> str | None:
        """The HTTP server's URL (``http://host:port``), or None when it is off."""
        return self.http.url if self.http is not None else None

    @property
    def admin_token(self) -> str:
        return self.server.admin_token

    @property
    def exchange(self) -> Exchange:
        return self.runtime.exchange


def load_master_key(path: Path | None) -> bytes | None:
    """The master key that API secrets are derived from (see `exchange.auth`).

    From MARGINCALL_MASTER_KEY (hex) or a file (created with 32 random bytes, mode 0600,
    when missing). None: a fresh random key per process (secrets die with it)."""
    env = os.environ.get("MARGINCALL_MASTER_KEY")
    if env:
        return bytes.fromhex(env)
    if path is None:
        return None
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


async def start_stack(opts: ServeOptions) -> Stack:
    """Build and start the stack described by `opts` (see the module docstring)."""
    from exchange.auth import AdminAuth, KeyStore
    from exchange.config import load_instruments
    from exchange.core.engine import Exchange
    from exchange.runtime import Runtime
    from exchange.server import Server, ServerConfig

    instruments = opts.extra.get("instrument_list") or load_instruments(opts.instruments)
    exchange = opts.extra.get("exchange") or Exchange(instruments)
    runtime = Runtime(
        exchange,
        clock=opts.clock,  # type: ignore[arg-type]
        start_ts=opts.start_ts,
        tick_interval=opts.tick_interval,
    )
    keys = KeyStore(load_master_key(opts.master_key_file))
    cfg = ServerConfig(
        host=opts.host,
        port=opts.port,
        rate_limit=opts.rate_limit or None,
        max_connections=opts.max_connections,
        compression="deflate" if opts.compression else None,
    )
    server = Server(runtime, cfg, keys=keys, admin=AdminAuth(opts.admin_token))
    stack = Stack(runtime, server, opts=opts)
    if opts.http_port is not None:
        from exchange.http import HttpConfig, HttpServer

        stack.http = HttpServer(stack, HttpConfig(host=opts.host, port=opts.http_port))
        for setup in opts.http_setup:
            stack.http.add_setup(setup)
    opts.extra["runtime"] = runtime
    opts.extra["stack"] = stack
    for hook in opts.extra.get("before_start", []):
        await hook(runtime, server)
    await runtime.start()
    await server.start()
    if stack.http is not None:
        await stack.http.start()
    return stack


async def stop_stack(stack: Stack) -> None:
    """Stop the HTTP server, the WebSocket server and the runtime, in that order."""
    if stack.http is not None:
        await stack.http.stop()
    await stack.server.stop()
    await stack.runtime.stop()
