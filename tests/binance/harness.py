"""An in-process margincall with the Binance gateway on an HTTP port, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exchange.binance import BinanceConfig, Gateway, setup
from exchange.binance.gateway import GATEWAY
from exchange.testing import Probe, running_stack


@dataclass
class BinanceStack:
    stack: Any
    http_url: str
    gw: Gateway

    @property
    def admin_token(self) -> str:
        return self.stack.admin_token

    @property
    def exchange(self) -> Any:
        return self.stack.exchange


@dataclass
class _Opts:
    extra: dict[str, Any]


@contextlib.asynccontextmanager
async def binance_stack(
    config: BinanceConfig | None = None, **kw: Any
) -> AsyncIterator[BinanceStack]:
    kw.setdefault("clock", "realtime")
    async with running_stack(**kw) as st:
        st.opts = _Opts({"binance": config or BinanceConfig()})  # type: ignore[attr-defined]
        app = web.Application()
        setup(app, st)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield BinanceStack(st, f"http://127.0.0.1:{port}", app[GATEWAY])
        finally:
            await runner.cleanup()


async def accounts(b: BinanceStack, n: int, deposit: str = "1000000", index: str | None = "50000") -> list[dict[str, Any]]:  # fmt: skip
    """`n` funded accounts through the native admin API (their apiKey/secret dicts)."""
    async with Probe(b.stack.url) as admin:
        await admin.call("session.logon", adminToken=b.admin_token)
        out = [
            await admin.call("admin.createAccount", deposit=deposit, asset="USDT") for _ in range(n)
        ]
        if index is not None:
            await admin.call("admin.setIndex", symbol="BTCUSDT", price=index)
    return out
