"""A classroom game served: store, exchange, runtime, WebSocket API, HTTP app, controller.

`start_class(game, options)` opens (or, after a crash, recovers) the game's database,
starts the exchange with a stepped clock (only the game moves time), the WebSocket API
and — when the HTTP server is available — the classroom's pages and HTTP API, then
opens the `Classroom` on it. `stop_class(cs)` stops it all cleanly (a final snapshot).
One database holds one game: the exchange journal, its query tables, and the game
journal; `margincall class run` with the same `--db` resumes that game.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.core.liquidation import BinanceLiquidation

from .controller import Classroom
from .gamefile import Game
from .journal import StoreJournal

log = logging.getLogger("margincall.classroom")


@dataclass
class ClassOptions:
    db: str = "sqlite:///data/classroom.db"
    host: str = "127.0.0.1"
    port: int = 8765
    http_port: int | None = 8766
    admin_token: str | None = None
    master_key_file: Path | None = None
    tick: float = 0.2
    sample_every: float = 1.0
    rate_limit: float | None = 50.0  # messages per second per connection
    max_connections: int = 2000
    snapshot_every: int = 50_000
    store_mode: str = "durable"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClassStack:
    game: Game
    classroom: Classroom
    runtime: Any
    server: Any
    store: Any
    journal: StoreJournal
    http: Any = None
    stack: Any = None

    @property
    def ws_url(self) -> str:
        return str(self.server.url)

    @property
    def http_url(self) -> str | None:
        return None if self.http is None else str(self.http.url)

    @property
    def join_url(self) -> str | None:
        return None if self.http is None else f"{self.http.url}/class/"

    @property
    def admin_token(self) -> str:
        return str(self.server.admin_token)


async def start_class(game: Game, o: ClassOptions) -> ClassStack:
    from . import web

    opts = _serve_options(game, o)
    store = _install_store(opts, game, o)
    recovered = opts.extra["exchange"]
    if recovered.now == 0:
        opts.start_ts = time.time_ns()  # a fresh game: engine time starts at wall time
    holder: dict[str, Any] = {}
    opts.extra.setdefault("http_setup", []).append(
        lambda app, stack: web.setup(app, stack, holder)  # type: ignore[no-untyped-call]
    )
    stack, runtime, server, http = await _start(opts)
    journal = StoreJournal(store)
    sessions = server.api.sessions
    classroom = Classroom(
        game,
        runtime,
        journal,
        tick=o.tick,
        sample_every=o.sample_every,
        on_kick=sessions.revoke_account,
    )
    await classroom.open()
    # admin-created accounts (bots) stay clear of the roster's range
    server.api.next_account = max(server.api.next_account, 900_000)
    cs = ClassStack(game, classroom, runtime, server, store, journal, http=http, stack=stack)
    holder["cs"] = cs
    return cs


async def stop_class(cs: ClassStack) -> None:
    await cs.classroom.close()
    if cs.stack is not None:
        from exchange.stack import stop_stack

        await stop_stack(cs.stack)
    else:
        from exchange.cli import stop_stack as stop_old

        if cs.http is not None:
            await cs.http.stop()
        await stop_old(cs.runtime, cs.server)
    await cs.store.close(cs.runtime.exchange)
    await cs.journal.close()


def _install_store(opts: Any, game: Game, o: ClassOptions) -> Any:
    """As `exchange.store.serving.install`, with the game's liquidation policy."""
    from exchange.store.db import normalize_url
    from exchange.store.store import Store, StoreConfig

    url = normalize_url(o.db)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    store = Store(url, StoreConfig(mode=o.store_mode, snapshot_every=o.snapshot_every))  # type: ignore[arg-type]
    exchange, info = store.recover(game.instruments, policy=BinanceLiquidation(adl=game.adl))
    opts.extra["exchange"] = exchange
    opts.extra["recovery"] = info

    async def attach(runtime: Any, server: Any) -> None:
        store.attach(runtime)
        keys = server.api.keys
        keys.load(store.load_api_keys())
        keys.on_issue.append(store.save_api_key)
        tokens = server.api.sessions
        tokens.load(store.load_session_tokens())
        tokens.on_issue.append(store.save_session_token)
        tokens.on_revoke.append(store.delete_session_tokens)

    opts.extra.setdefault("before_start", []).append(attach)
    return store


def _serve_options(game: Game, o: ClassOptions) -> Any:
    try:
        from exchange.stack import ServeOptions
    except ImportError:  # before the HTTP server existed
        from exchange.cli import ServeOptions
    opts = ServeOptions(
        host=o.host,
        port=o.port,
        clock="stepped",
        admin_token=o.admin_token,
        master_key_file=o.master_key_file,
        rate_limit=o.rate_limit,
        max_connections=o.max_connections,
        tick_interval=None,
    )
    if hasattr(opts, "http_port"):
        opts.http_port = o.http_port
    else:
        opts.extra["http_port"] = o.http_port
    opts.extra["instrument_list"] = list(game.instruments)
    opts.extra.update(o.extra)
    return opts


async def _start(opts: Any) -> tuple[Any, Any, Any, Any]:
    try:
        from exchange.stack import start_stack
    except ImportError:
        from exchange.cli import start_stack as start_old

        runtime, server = await start_old(opts)
        http = await _FallbackHttp.start(opts, runtime, server)
        return None, runtime, server, http
    stack = await start_stack(opts)
    return stack, stack.runtime, stack.server, stack.http


class _FallbackHttp:
    """Until the exchange's own HTTP server exists: aiohttp on `http_port` running the
    `http_setup` hooks, with the same security headers."""

    def __init__(self, runner: Any, url: str) -> None:
        self.runner = runner
        self.url = url

    @classmethod
    async def start(cls, opts: Any, runtime: Any, server: Any) -> _FallbackHttp | None:
        port = opts.extra.get("http_port", 8766)
        if not port and port != 0:
            return None
        from aiohttp import web

        @web.middleware
        async def headers(request: web.Request, handler: Any) -> Any:
            resp = await handler(request)
            resp.headers["Content-Security-Policy"] = (
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
            )
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            return resp

        app = web.Application(middlewares=[headers], client_max_size=256 * 1024)
        stack = type("Stack", (), {"runtime": runtime, "server": server, "opts": opts})()
        for setup in opts.extra.get("http_setup", []):
            setup(app, stack)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, opts.host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        return cls(runner, f"http://{opts.host}:{sock.getsockname()[1]}")

    async def stop(self) -> None:
        await self.runner.cleanup()
