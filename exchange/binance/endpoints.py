"""The `/fapi/...` endpoints that ccxt's `binanceusdm` (and freqtrade) call.

Reads come from the core's views (`order_view`, `account_view`, `depth`, `market_view`)
and the gateway's ledger; writes go through the native API's methods (`order.place`,
`order.cancel`, `order.modify`, `order.cancelAll`, `leverage.set`, `position.margin`)
with their own parameter checks, so both protocols refuse the same things with the
same codes. Another account's order is answered exactly like an unknown one.

This module holds the shared helpers and the market-data endpoints; the order endpoints
are in `exchange.binance.order_endpoints`, the account and user-data-stream ones in
`exchange.binance.account_endpoints` (`exchange.binance.wiring` imports all three, which
registers their handlers).
"""

from __future__ import annotations

from typing import Any

from exchange.binance import formats as F
from exchange.binance.errors import (
    INVALID_INTERVAL,
    BinanceError,
)
from exchange.binance.ledger import ms
from exchange.binance.rest import KEY, Request, endpoint
from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.protocol.params import METHODS, validate_params

V1, V2, V3 = "/fapi/v1/", "/fapi/v2/", "/fapi/v3/"
ORDER_UNKNOWN = -2013  # Binance's "Order does not exist." for queries (-2011 for cancels)


def instrument_of(r: Request, symbol: str | None = None) -> Instrument:
    sym = symbol if symbol is not None else r.need("symbol")
    inst = r.gw.exchange.instruments.get(sym)
    if inst is None:
        raise BinanceError(Code.BAD_SYMBOL, "Invalid symbol.")
    return inst


def symbols_of(r: Request) -> list[Instrument]:
    if r.get("symbol") is not None:
        return [instrument_of(r)]
    ex = r.gw.exchange
    return [ex.instruments[s] for s in sorted(ex.instruments)]


def engine_ms(r: Request) -> int:
    return ms(r.gw.exchange.now)


async def call_native(r: Request, method: str, params: dict[str, Any]) -> Any:
    m = METHODS[method]
    p = validate_params(m, {k: v for k, v in params.items() if v is not None})
    result = await m.handler(r.gw.session(r.account), p)
    r.gw.catch_up()
    return result


# ------------------------------------------------------------------ market data


@endpoint("GET", V1 + "ping")
async def ping(r: Request) -> Any:
    return {}


@endpoint("GET", V1 + "time")
async def server_time(r: Request) -> Any:
    return {"serverTime": r.now_ms}


@endpoint("GET", V1 + "exchangeInfo")
async def exchange_info(r: Request) -> Any:
    ex = r.gw.exchange
    syms = [
        F.symbol_info(ex.instruments[s], ex.market_view(s).halted) for s in sorted(ex.instruments)
    ]
    quotes = sorted({i.quote_asset for i in ex.instruments.values()})
    return F.exchange_info(syms, r.now_ms, r.gw.config.weight_limit, quotes)


@endpoint(
    "GET", ("/api/v3/exchangeInfo", "/dapi/v1/exchangeInfo"), params="symbol symbols permissions"
)
async def no_markets(r: Request) -> Any:
    """Spot and coin-margined markets do not exist here (freqtrade's `binance` asks)."""
    return {"timezone": "UTC", "serverTime": r.now_ms, "rateLimits": [], "exchangeFilters": [], "symbols": []}  # fmt: skip


def _depth_weight(p: dict[str, str]) -> int:
    n = int(p["limit"]) if p.get("limit", "").isdigit() else 500
    return 2 if n <= 50 else 5 if n <= 100 else 10 if n <= 500 else 20


@endpoint("GET", V1 + "depth", weight=_depth_weight, params="symbol limit")
async def depth(r: Request) -> Any:
    inst = instrument_of(r)
    limit = r.int("limit", 1, 5000, 500)
    ex = r.gw.exchange
    bids, asks = ex.depth(inst.symbol, limit)
    return F.depth(inst, ex.book_seq(inst.symbol), bids, asks, engine_ms(r))


def _trades(r: Request, inst: Instrument) -> list[Any]:
    r.gw.catch_up()
    return list(r.gw.ledger.trades.get(inst.symbol, ()))


@endpoint("GET", V1 + "trades", weight=5, params="symbol limit")
async def trades(r: Request) -> Any:
    inst = instrument_of(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    return [F.trade(inst, t) for t in _trades(r, inst)[-limit:]]


@endpoint("GET", V1 + "historicalTrades", KEY, weight=20, params="symbol limit fromId")
async def historical_trades(r: Request) -> Any:
    inst = instrument_of(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    from_id = r.int("fromId")
    ts = _trades(r, inst)
    if from_id is not None:
        ts = [t for t in ts if t.trade_id >= from_id][:limit]
    return [F.trade(inst, t) for t in ts[-limit:]]


@endpoint("GET", V1 + "aggTrades", weight=20, params="symbol fromId startTime endTime limit")
async def agg_trades(r: Request) -> Any:
    inst = instrument_of(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    from_id, start, end = r.int("fromId"), r.int("startTime"), r.int("endTime")
    ts = _trades(r, inst)
    if from_id is not None:
        ts = [t for t in ts if t.trade_id >= from_id]
    if start is not None or end is not None:
        lo, hi = start or 0, end if end is not None else 2**62
        if start is not None and end is not None and end - start > 3_600_000:
            raise BinanceError(-1127, "More than 1 hour between startTime and endTime.")
        ts = [t for t in ts if lo <= ms(t.ts) <= hi]
        return [F.agg_trade(inst, t) for t in ts[:limit]]
    return [F.agg_trade(inst, t) for t in (ts[:limit] if from_id is not None else ts[-limit:])]


def _kline_weight(p: dict[str, str]) -> int:
    n = int(p["limit"]) if p.get("limit", "").isdigit() else 500
    return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10


@endpoint(
    "GET", V1 + "klines", weight=_kline_weight, params="symbol interval startTime endTime limit"
)
async def klines(r: Request) -> Any:
    inst = instrument_of(r)
    interval = F.INTERVALS_MS.get(r.need("interval"))
    if interval is None:
        raise BinanceError(INVALID_INTERVAL)
    limit = r.int("limit", 1, 1500, 500) or 500
    start = r.int("startTime", default=0) or 0
    end = r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    rows = r.gw.ledger.klines(inst.symbol, interval, start, end, limit)
    return [F.kline(inst, k, interval) for k in rows]


@endpoint("GET", V1 + "premiumIndex", params="symbol")
async def premium_index(r: Request) -> Any:
    ex = r.gw.exchange
    out = [F.premium_index(i, ex.market_view(i.symbol), engine_ms(r)) for i in symbols_of(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", V1 + "fundingRate", params="symbol startTime endTime limit")
async def funding_rate(r: Request) -> Any:
    limit = r.int("limit", 1, 1000, 100) or 100
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    out = []
    for inst in symbols_of(r):
        for t, rate, mark in r.gw.ledger.funding.get(inst.symbol, ()):
            if start <= ms(t) <= end:
                out.append(F.funding_rate(inst, t, rate, mark))
    out.sort(key=lambda x: x["fundingTime"])
    return out[:limit] if start else out[-limit:]


@endpoint("GET", V1 + "fundingInfo")
async def funding_info(r: Request) -> Any:
    return [
        {"symbol": i.symbol, "adjustedFundingRateCap": F.units.rate_to_str(i.funding_clamp),
         "adjustedFundingRateFloor": F.units.rate_to_str(-i.funding_clamp),
         "fundingIntervalHours": i.funding_interval_ns // 3_600_000_000_000, "disclaimer": False}
        for i in symbols_of(r)
    ]  # fmt: skip


def ticker_weight(p: dict[str, str]) -> int:
    return 1 if p.get("symbol") else 40


def _ticker(r: Request, inst: Instrument) -> dict[str, Any]:
    gw = r.gw
    now = engine_ms(r)
    c = gw.ledger.candles.get(inst.symbol)
    rows = c.range(now - 86_400_000 + 60_000, now) if c is not None else []
    ts = gw.ledger.trades.get(inst.symbol)
    ids = (ts[0].trade_id, ts[-1].trade_id) if ts else (0, 0)
    out = F.ticker_24h(inst, rows, ids, now, gw.exchange.market_view(inst.symbol).last)
    if ts:
        out["lastQty"] = F.units.lots_to_str(inst, ts[-1].qty)
    return out


@endpoint("GET", V1 + "ticker/24hr", weight=ticker_weight, params="symbol")
async def ticker_24hr(r: Request) -> Any:
    r.gw.catch_up()
    out = [_ticker(r, i) for i in symbols_of(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", (V1 + "ticker/price", V2 + "ticker/price"), params="symbol")
async def ticker_price(r: Request) -> Any:
    ex = r.gw.exchange
    out = [
        {"symbol": i.symbol, "price": F.units.ticks_to_str(i, ex.market_view(i.symbol).last), "time": engine_ms(r)}
        for i in symbols_of(r)
    ]  # fmt: skip
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", V1 + "ticker/bookTicker", weight=ticker_weight, params="symbol")
async def book_ticker(r: Request) -> Any:
    ex = r.gw.exchange
    out = []
    for i in symbols_of(r):
        bids, asks = ex.depth(i.symbol, 1)
        out.append(
            F.book_ticker(
                i, ex.market_view(i.symbol), bids[0][1] if bids else 0, asks[0][1] if asks else 0,
                ex.book_seq(i.symbol), engine_ms(r),
            )
        )  # fmt: skip
    return out[0] if r.get("symbol") is not None else out
