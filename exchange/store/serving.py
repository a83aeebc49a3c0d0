"""The store wired into `margincall serve` (and runnable on its own for the crash test).

`install(opts, db, mode, ...)` opens the store, recovers the exchange and puts it in
`opts.extra["exchange"]`, and adds a `before_start` hook that attaches the store to the
runtime (journal, snapshots, query tables) and persists API keys and session tokens
(hashes only): those stored so far are loaded into the server's `KeyStore` and
`SessionTokens`, new ones are saved as they are issued, revoked tokens deleted.
After `stop_stack`, `await store.close(runtime.exchange)` writes a final snapshot. For API secrets to survive a restart the master key must too
(`--master-key-file` or MARGINCALL_MASTER_KEY; see `exchange.auth`).

    python -m exchange.store.serving --db sqlite:///data/x.db --port 0 --admin-token T

prints `READY ws://host:port` on stdout once it listens, and stops cleanly (final
snapshot) on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from .db import DEFAULT_DB_URL, normalize_url
from .store import Store, StoreConfig

log = logging.getLogger("margincall.store")


def install(
    opts: Any,
    db: str = DEFAULT_DB_URL,
    mode: str = "durable",
    *,
    instruments: Any = None,
    exchange_kwargs: dict[str, Any] | None = None,
    **config: Any,
) -> Store:
    """Open the store for `serve`: recover the exchange into `opts` and add the hook
    that attaches the store once the runtime and server exist. Returns the store.
    `instruments` and `exchange_kwargs` (e.g. a liquidation `policy`) shape the exchange
    built on an empty database; by default the instruments are the options'."""
    from exchange.config import load_instruments

    url = normalize_url(db)
    if url.startswith("sqlite:///") and url != "sqlite://":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    store = Store(url, StoreConfig(mode=mode, **config))  # type: ignore[arg-type]
    if instruments is None:
        instruments = opts.extra.get("instrument_list") or load_instruments(opts.instruments)
    exchange, info = store.recover(instruments, **(exchange_kwargs or {}))
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


async def _main(args: argparse.Namespace) -> None:
    from exchange.stack import ServeOptions, start_stack, stop_stack

    opts = ServeOptions(
        host=args.host,
        port=args.port,
        instruments=args.instruments,
        clock=args.clock,
        admin_token=args.admin_token,
        master_key_file=args.master_key_file,
        rate_limit=args.rate_limit or None,
        tick_interval=args.tick_interval or None,
    )
    store = install(
        opts,
        args.db,
        args.mode,
        snapshot_every=args.snapshot_every,
        snapshot_interval=args.snapshot_interval,
    )
    stack = await start_stack(opts)
    print(f"READY {stack.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await stop_stack(stack)
    await store.close(stack.exchange)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m exchange.store.serving", description=__doc__)
    p.add_argument("--db", default=DEFAULT_DB_URL)
    p.add_argument("--mode", choices=("durable", "fast"), default="durable")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--instruments", type=Path, default=None)
    p.add_argument("--clock", choices=("realtime", "stepped"), default="realtime")
    p.add_argument("--admin-token", default=None)
    p.add_argument("--master-key-file", type=Path, default=None)
    p.add_argument("--rate-limit", type=float, default=0.0)
    p.add_argument("--tick-interval", type=float, default=1.0)
    p.add_argument("--snapshot-every", type=int, default=50_000)
    p.add_argument("--snapshot-interval", type=float, default=300.0)
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
