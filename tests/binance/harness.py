"""An in-process margincall with the Binance gateway on its HTTP port, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from exchange.binance import GATEWAY, BinanceConfig, Gateway, setup_with
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


@contextlib.asynccontextmanager
async def binance_stack(config: BinanceConfig | None = None, **kw: Any) -> AsyncIterator[BinanceStack]:  # fmt: skip
    """`running_stack` (realtime clock unless told) with the gateway's setup hook."""
    kw.setdefault("clock", "realtime")
    async with running_stack(http_setup=[setup_with(config or BinanceConfig())], **kw) as st:
        yield BinanceStack(st, st.http_url, st.http.app[GATEWAY])


async def accounts(b: BinanceStack, n: int, deposit: str = "1000000", index: str | None = "50000") -> list[dict[str, Any]]:  # fmt: skip
    """`n` funded accounts through the native admin API (their apiKey/secret dicts)."""
    async with Probe(b.stack.url) as admin:
        await admin.call("session.logon", adminToken=b.admin_token)
        out = [await admin.call("admin.createAccount", deposit=deposit, asset="USDT") for _ in range(n)]  # fmt: skip
        if index is not None:
            await admin.call("admin.setIndex", symbol="BTCUSDT", price=index)
    return out
