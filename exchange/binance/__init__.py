"""A Binance USDⓈ-M compatible gateway: REST under /fapi, market and user-data streams.

`setup(app, stack)` is the HTTP server's plug-in hook (see `exchange.binance.wiring`);
docs/binance.md says what is covered and how to point ccxt, python-binance and freqtrade
at margincall.
"""

from exchange.binance.gateway import GATEWAY, BinanceConfig, Gateway
from exchange.binance.wiring import setup, setup_with

__all__ = ["GATEWAY", "BinanceConfig", "Gateway", "setup", "setup_with"]
