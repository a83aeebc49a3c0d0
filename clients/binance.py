"""Pointing ccxt's `binanceusdm` (sync, async_support or pro) at margincall.

    import ccxt.pro
    from clients.binance import ccxt_config
    ex = ccxt.pro.binanceusdm(ccxt_config("http://127.0.0.1:8766", key, secret))

`ccxt_config` overrides only `urls` (every fapi URL ccxt signs or calls, and the
websocket base that ccxt.pro rewrites to /public/ws, /market/ws and /private/ws),
turns `fetchCurrencies` off (else `load_markets` asks Binance's spot `sapi` for its
currencies once keys are set) and, because ccxt picks its USDⓈ-M error table by the
host name `fapi.binance.com`, adds that table to the generic one: -2019 then raises
`InsufficientFunds`, -2022 and -4164 `InvalidOrder`, as they do against Binance.
"""

from __future__ import annotations

from typing import Any

_API = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
}


def linear_exceptions() -> dict[str, Any]:
    """ccxt's own USDⓈ-M (`linear`) error table: code → ccxt exception class."""
    import ccxt

    described = ccxt.binanceusdm().describe()["exceptions"]
    return dict(described.get("linear", {}).get("exact", {}))


def ccxt_config(
    url: str = "http://127.0.0.1:8766",
    api_key: str | None = None,
    secret: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The constructor config for `ccxt.binanceusdm` against margincall at `url`."""
    url = url.rstrip("/")
    api: dict[str, Any] = {k: url + v for k, v in _API.items()}
    api["ws"] = {"linear": "ws" + url[len("http") :] + "/ws"}
    cfg: dict[str, Any] = {
        "urls": {"api": api},
        "options": {"fetchCurrencies": False},
        "exceptions": {"exact": linear_exceptions()},
        **extra,
    }
    if api_key is not None:
        cfg["apiKey"] = api_key
        cfg["secret"] = secret
    return cfg
