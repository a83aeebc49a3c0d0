"""A classroom game served: store, exchange, runtime, WebSocket API, HTTP app, controller.

`start_class(game, options)` opens (or, after a crash, recovers) the game's database,
starts the exchange with a stepped clock (only the game moves time), the WebSocket API
and — when the HTTP server is available — the classroom's pages and HTTP API (and the
web app, whose views the instructor console mounts), then
opens the `Classroom` on it. `stop_class(cs)` stops it all cleanly (a final snapshot).
One database holds one game: the exchange journal, its query tables, and the game
journal; `margincall class run` with the same `--db` resumes that game.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.stack import ServeOptions, Stack, start_stack, stop_stack

from .controller import Classroom
from .gamefile import Game
from .journal import StoreJournal

log = logging.getLogger("margincall.classroom")

WILDCARDS = ("0.0.0.0", "[::]")


def reachable_url(url: str) -> str:
    """`url` as a student's browser can open it: a wildcard listening address (`0.0.0.0`,
    `[::]`, as `--host 0.0.0.0` gives) replaced by this machine's address on its default
    route, else its host name; any other URL unchanged. (Nothing is sent: a UDP socket
    only picks the route.)"""
    scheme, sep, rest = url.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or not colon or host not in WILDCARDS:
        return url
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            addr = str(s.getsockname()[0])
    except OSError:
        addr = "0.0.0.0"
    if addr.startswith(("0.", "127.")):
        addr = socket.gethostname()
    return f"{scheme}://{addr}:{port}"


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
    stack: Stack
    http: Any = None

    @property
    def ws_url(self) -> str:
        return str(self.server.url)

    @property
    def http_url(self) -> str | None:
        return None if self.http is None else str(self.http.url)

    @property
    def page_ws_url(self) -> str:
        """The WebSocket API on the pages' origin (`/class/ws`), else the native one."""
        if self.http is None:
            return self.ws_url
        return self.http.url.replace("http://", "ws://", 1) + "/class/ws"

    @property
    def join_url(self) -> str | None:
        """The students' join page, at an address they can reach (`reachable_url`)."""
        return None if self.http is None else f"{reachable_url(str(self.http.url))}/class/"

    @property
    def admin_token(self) -> str:
        return str(self.server.admin_token)


async def start_class(game: Game, o: ClassOptions) -> ClassStack:
    from exchange.web.app import setup as web_app

    from . import web

    opts = _serve_options(game, o)
    store = _install_store(opts, game, o)
    recovered = opts.extra["exchange"]
    if recovered.now == 0:
        opts.start_ts = time.time_ns()  # a fresh game: engine time starts at wall time
    holder: dict[str, Any] = {}
    # the web app too: the console mounts its market and liquidation views (its
    # modules under /static/, plotly under /vendor/, the WebSocket at /api/ws)
    opts.http_setup.append(web_app)
    opts.http_setup.append(lambda app, stack: web.setup(app, stack, holder))
    stack = await start_stack(opts)
    runtime, server, http = stack.runtime, stack.server, stack.http
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
    cs = ClassStack(game, classroom, runtime, server, store, journal, stack, http=http)
    holder["cs"] = cs
    return cs


async def stop_class(cs: ClassStack) -> None:
    await cs.classroom.close()
    await stop_stack(cs.stack)
    await cs.store.close(cs.runtime.exchange)
    await cs.journal.close()


def _install_store(opts: Any, game: Game, o: ClassOptions) -> Any:
    """The store, as for `serve`, with the game's instruments and liquidation policy."""
    from exchange.store.serving import install

    return install(
        opts,
        o.db,
        o.store_mode,
        instruments=game.instruments,
        exchange_kwargs={"adl": game.adl},  # each instrument's own policy
        snapshot_every=o.snapshot_every,
    )


def _serve_options(game: Game, o: ClassOptions) -> ServeOptions:
    opts = ServeOptions(
        host=o.host,
        port=o.port,
        clock="stepped",
        admin_token=o.admin_token,
        master_key_file=o.master_key_file,
        rate_limit=o.rate_limit,
        max_connections=o.max_connections,
        tick_interval=None,
        http_port=o.http_port,
    )
    opts.extra["instrument_list"] = list(game.instruments)
    opts.extra.update(o.extra)
    return opts
