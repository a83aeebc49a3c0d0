"""Wiring the gateway onto the HTTP server: the plug-in hooks `setup` and `setup_with`.

The one module that knows every part (the gateway's state, the REST dispatcher with the
endpoints it registers, the streams), so none of them imports another back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange.binance import (  # noqa: F401 (the endpoint modules register handlers)
    account_endpoints,
    endpoints,
    order_endpoints,
    rest,
    streams,
)
from exchange.binance.gateway import GATEWAY, BinanceConfig, Gateway


def setup(app: web.Application, stack: Any) -> None:
    """The HTTP server's plug-in hook: Binance routes on `app`, over `stack`'s runtime.
    Options from `stack.opts.extra["binance"]` (a `BinanceConfig`) when given."""
    extra = getattr(getattr(stack, "opts", None), "extra", None) or {}
    cfg = extra.get("binance")
    install(app, stack, cfg if isinstance(cfg, BinanceConfig) else None)


def setup_with(config: BinanceConfig) -> Any:
    """A setup hook with these options (tests, benchmarks)."""

    def hook(app: web.Application, stack: Any) -> None:
        install(app, stack, config)

    return hook


def install(app: web.Application, stack: Any, config: BinanceConfig | None) -> Gateway:
    gw = Gateway(stack.server.api, config)
    app[GATEWAY] = gw
    rest.add_routes(app, gw)
    streams.add_routes(app, gw)

    async def _start(_app: web.Application) -> None:
        await gw.start()

    async def _stop(_app: web.Application) -> None:
        await gw.stop()

    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return gw
