"""A Binance USDⓈ-M compatible gateway: REST under /fapi, market and user-data streams.

`setup(app, stack)` is the HTTP server's plug-in hook (see `exchange.binance.gateway`);
docs/binance.md says what is covered and how to point ccxt, python-binance and freqtrade
at margincall.
"""

from exchange.binance.gateway import BinanceConfig, Gateway, setup

__all__ = ["BinanceConfig", "Gateway", "setup"]
