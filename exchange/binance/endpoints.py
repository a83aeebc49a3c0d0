"""The `/fapi/...` endpoints that ccxt's `binanceusdm` (and freqtrade) call.

Reads come from the core's views (`order_view`, `account_view`, `depth`, `market_view`)
and the gateway's ledger; writes go through the native API's methods (`order.place`,
`order.cancel`, `order.modify`, `order.cancelAll`, `leverage.set`, `position.margin`)
with their own parameter checks, so both protocols refuse the same things with the
same codes. Another account's order is answered exactly like an unknown one.
"""

from __future__ import annotations

from typing import Any

from exchange.binance import formats as F
from exchange.binance.errors import (
    INVALID_INTERVAL,
    ORDER_TYPE_NEEDS_ALGO,
    BinanceError,
)
from exchange.binance.ledger import ms
from exchange.binance.rest import KEY, SIGNED, Request, endpoint
from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.protocol.params import METHODS, validate_params

V1, V2, V3 = "/fapi/v1/", "/fapi/v2/", "/fapi/v3/"
ORDER_UNKNOWN = -2013  # Binance's "Order does not exist." for queries (-2011 for cancels)


def _inst(r: Request, symbol: str | None = None) -> Instrument:
    sym = symbol if symbol is not None else r.need("symbol")
    inst = r.gw.exchange.instruments.get(sym)
    if inst is None:
        raise BinanceError(Code.BAD_SYMBOL, "Invalid symbol.")
    return inst


def _symbols(r: Request) -> list[Instrument]:
    if r.get("symbol") is not None:
        return [_inst(r)]
    ex = r.gw.exchange
    return [ex.instruments[s] for s in sorted(ex.instruments)]


def _engine_ms(r: Request) -> int:
    return ms(r.gw.exchange.now)


async def _native(r: Request, method: str, params: dict[str, Any]) -> Any:
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
    inst = _inst(r)
    limit = r.int("limit", 1, 5000, 500)
    ex = r.gw.exchange
    bids, asks = ex.depth(inst.symbol, limit)
    return F.depth(inst, ex.book_seq(inst.symbol), bids, asks, _engine_ms(r))


def _trades(r: Request, inst: Instrument) -> list[Any]:
    r.gw.catch_up()
    return list(r.gw.ledger.trades.get(inst.symbol, ()))


@endpoint("GET", V1 + "trades", weight=5, params="symbol limit")
async def trades(r: Request) -> Any:
    inst = _inst(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    return [F.trade(inst, t) for t in _trades(r, inst)[-limit:]]


@endpoint("GET", V1 + "historicalTrades", KEY, weight=20, params="symbol limit fromId")
async def historical_trades(r: Request) -> Any:
    inst = _inst(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    from_id = r.int("fromId")
    ts = _trades(r, inst)
    if from_id is not None:
        ts = [t for t in ts if t.trade_id >= from_id][:limit]
    return [F.trade(inst, t) for t in ts[-limit:]]


@endpoint("GET", V1 + "aggTrades", weight=20, params="symbol fromId startTime endTime limit")
async def agg_trades(r: Request) -> Any:
    inst = _inst(r)
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
    inst = _inst(r)
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
    out = [F.premium_index(i, ex.market_view(i.symbol), _engine_ms(r)) for i in _symbols(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", V1 + "fundingRate", params="symbol startTime endTime limit")
async def funding_rate(r: Request) -> Any:
    limit = r.int("limit", 1, 1000, 100) or 100
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    out = []
    for inst in _symbols(r):
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
        for i in _symbols(r)
    ]  # fmt: skip


def _ticker_weight(p: dict[str, str]) -> int:
    return 1 if p.get("symbol") else 40


def _ticker(r: Request, inst: Instrument) -> dict[str, Any]:
    gw = r.gw
    now = _engine_ms(r)
    c = gw.ledger.candles.get(inst.symbol)
    rows = c.range(now - 86_400_000 + 60_000, now) if c is not None else []
    ts = gw.ledger.trades.get(inst.symbol)
    ids = (ts[0].trade_id, ts[-1].trade_id) if ts else (0, 0)
    out = F.ticker_24h(inst, rows, ids, now, gw.exchange.market_view(inst.symbol).last)
    if ts:
        out["lastQty"] = F.units.lots_to_str(inst, ts[-1].qty)
    return out


@endpoint("GET", V1 + "ticker/24hr", weight=_ticker_weight, params="symbol")
async def ticker_24hr(r: Request) -> Any:
    r.gw.catch_up()
    out = [_ticker(r, i) for i in _symbols(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", (V1 + "ticker/price", V2 + "ticker/price"), params="symbol")
async def ticker_price(r: Request) -> Any:
    ex = r.gw.exchange
    out = [
        {"symbol": i.symbol, "price": F.units.ticks_to_str(i, ex.market_view(i.symbol).last), "time": _engine_ms(r)}
        for i in _symbols(r)
    ]  # fmt: skip
    return out[0] if r.get("symbol") is not None else out


@endpoint("GET", V1 + "ticker/bookTicker", weight=_ticker_weight, params="symbol")
async def book_ticker(r: Request) -> Any:
    ex = r.gw.exchange
    out = []
    for i in _symbols(r):
        bids, asks = ex.depth(i.symbol, 1)
        out.append(
            F.book_ticker(
                i, ex.market_view(i.symbol), bids[0][1] if bids else 0, asks[0][1] if asks else 0,
                ex.book_seq(i.symbol), _engine_ms(r),
            )
        )  # fmt: skip
    return out[0] if r.get("symbol") is not None else out


# ------------------------------------------------------------------ orders

_ORDER_PARAMS = (
    "symbol side type quantity price timeInForce reduceOnly newClientOrderId stopPrice "
    "workingType newOrderRespType positionSide priceProtect closePosition "
    "selfTradePreventionMode priceMatch goodTillDate"
)


def _check_common(r: Request) -> None:
    ps = r.get("positionSide")
    if ps not in (None, "BOTH"):
        raise BinanceError(-4061, "Order's position side does not match user's setting: margincall is one-way (BOTH) only.")  # fmt: skip
    if r.get("closePosition") == "true":
        raise BinanceError(Code.INVALID_PARAMETER, "closePosition is not supported; send the quantity with reduceOnly=true.")  # fmt: skip
    if r.get("priceMatch") not in (None, "NONE"):
        raise BinanceError(Code.INVALID_PARAMETER, "priceMatch is not supported.")


async def _place(r: Request, typ: str, stop_price: str | None, client_id: str | None) -> Any:
    _check_common(r)
    res = await _native(
        r,
        "order.place",
        {
            "symbol": r.get("symbol"),
            "side": r.get("side"),
            "type": F.TO_CORE_TYPE.get(typ, typ),
            "quantity": r.get("quantity"),
            "price": r.get("price"),
            "timeInForce": r.get("timeInForce"),
            "stopPrice": stop_price,
            "workingType": r.get("workingType"),
            "reduceOnly": r.get("reduceOnly"),
            "newClientOrderId": client_id,
            "selfTradePreventionMode": r.get("selfTradePreventionMode"),
        },
    )
    return _order_rec(r, res["symbol"], res["orderId"])


def _order_rec(r: Request, symbol: str, order_id: int) -> tuple[Instrument, Any, str]:
    ex = r.gw.exchange
    inst = ex.instruments[symbol]
    view = ex.order_view(r.account, symbol, order_id)
    rec = r.gw.ledger.orders.get(order_id) or F.record_from_view(view)
    return inst, rec, view.status


@endpoint("POST", V1 + "order", SIGNED, params=_ORDER_PARAMS)
async def new_order(r: Request) -> Any:
    typ = r.need("type")
    if F.TO_CORE_TYPE.get(typ, typ) in F.CONDITIONAL:
        raise BinanceError(ORDER_TYPE_NEEDS_ALGO)
    inst, rec, status = await _place(r, typ, r.get("stopPrice"), r.get("newClientOrderId"))
    return F.order(inst, rec, status)


def _find(r: Request, id_name: str = "orderId", cid_name: str = "origClientOrderId", code: int = ORDER_UNKNOWN) -> tuple[Instrument, Any, Any]:  # fmt: skip
    inst = _inst(r)
    oid = r.int(id_name)
    cid = r.get(cid_name)
    if oid is None and cid is None:
        raise BinanceError(Code.MANDATORY_PARAM_MISSING, f"Either '{id_name}' or '{cid_name}' must be sent.")  # fmt: skip
    r.gw.catch_up()
    view = r.gw.exchange.order_view(r.account, inst.symbol, oid, cid if oid is None else None)
    if view is None:
        raise BinanceError(code, "Order does not exist." if code == ORDER_UNKNOWN else "Unknown order sent.")  # fmt: skip
    rec = r.gw.ledger.orders.get(view.order_id) or F.record_from_view(view)
    return inst, rec, view


@endpoint("GET", V1 + "order", SIGNED, params="symbol orderId origClientOrderId")
async def get_order(r: Request) -> Any:
    inst, rec, view = _find(r)
    return F.order(inst, rec, view.status)


@endpoint("GET", V1 + "openOrder", SIGNED, params="symbol orderId origClientOrderId")
async def get_open_order(r: Request) -> Any:
    inst, rec, view = _find(r)
    if view.status not in ("NEW", "PARTIALLY_FILLED"):
        raise BinanceError(-2013, "Order does not exist.")
    return F.order(inst, rec, view.status)


@endpoint("DELETE", V1 + "order", SIGNED, params="symbol orderId origClientOrderId")
async def cancel_order(r: Request) -> Any:
    inst, rec, view = _find(r, code=int(Code.UNKNOWN_ORDER))
    await _native(r, "order.cancel", {"symbol": inst.symbol, "orderId": view.order_id})
    inst, rec, status = _order_rec(r, inst.symbol, view.order_id)
    return F.order(inst, rec, status)


@endpoint("PUT", V1 + "order", SIGNED, params="symbol orderId origClientOrderId side quantity price priceMatch")  # fmt: skip
async def modify_order(r: Request) -> Any:
    inst, rec, view = _find(r, code=int(Code.UNKNOWN_ORDER))
    side = r.get("side")
    if side is not None and side != view.side:
        raise BinanceError(Code.INVALID_PARAMETER, "An order's side cannot be modified.")
    await _native(
        r,
        "order.modify",
        {"symbol": inst.symbol, "orderId": view.order_id, "quantity": r.get("quantity"), "price": r.get("price")},
    )  # fmt: skip
    inst, rec, status = _order_rec(r, inst.symbol, view.order_id)
    return F.order(inst, rec, status)


@endpoint("DELETE", (V1 + "allOpenOrders", V1 + "algoOpenOrders"), SIGNED, params="symbol")
async def cancel_all(r: Request) -> Any:
    """Cancels every open order of the symbol, conditional ones included (one command)."""
    inst = _inst(r)
    await _native(r, "order.cancelAll", {"symbol": inst.symbol})
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def _open(r: Request, conditional: bool) -> list[tuple[Instrument, Any, str]]:
    sym = r.get("symbol")
    if sym is not None:
        _inst(r)
    r.gw.catch_up()
    ex = r.gw.exchange
    out = []
    for v in ex.open_orders(r.account, sym):
        if (v.status == "UNTRIGGERED") != conditional:
            continue
        rec = r.gw.ledger.orders.get(v.order_id) or F.record_from_view(v)
        out.append((ex.instruments[v.symbol], rec, v.status))
    return out


@endpoint("GET", V1 + "openOrders", SIGNED, weight=_ticker_weight, params="symbol")
async def open_orders(r: Request) -> Any:
    return [F.order(i, rec, s) for i, rec, s in _open(r, False)]


def _history(r: Request, conditional: bool | None) -> list[tuple[Instrument, Any, str]]:
    inst = _inst(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    from_id = r.int("orderId") or r.int("algoId") or 0
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    ex, ledger = r.gw.exchange, r.gw.ledger
    out = []
    for oid in ledger.account_order_ids(r.account):  # type: ignore[arg-type]
        rec = ledger.orders.get(oid)
        if rec is None or rec.symbol != inst.symbol or oid < from_id:
            continue
        if conditional is not None and (rec.type in F.CONDITIONAL) != conditional:
            continue
        if not start <= ms(rec.created) <= end:
            continue
        v = ex.order_view(r.account, inst.symbol, oid)
        out.append((inst, rec, v.status if v is not None else rec.status))
    return out[:limit] if from_id else out[-limit:]


@endpoint(
    "GET", V1 + "allOrders", SIGNED, weight=5, params="symbol orderId startTime endTime limit"
)
async def all_orders(r: Request) -> Any:
    return [F.order(i, rec, s) for i, rec, s in _history(r, None)]


@endpoint("GET", V1 + "userTrades", SIGNED, weight=5, params="symbol orderId startTime endTime fromId limit")  # fmt: skip
async def user_trades(r: Request) -> Any:
    inst = _inst(r)
    limit = r.int("limit", 1, 1000, 500) or 500
    oid, from_id = r.int("orderId"), r.int("fromId")
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    ts = [
        t
        for t in r.gw.ledger.account_trades.get(r.account, ())  # type: ignore[arg-type]
        if t.symbol == inst.symbol
        and (oid is None or t.order_id == oid)
        and (from_id is None or t.trade_id >= from_id)
        and start <= ms(t.ts) <= end
    ]
    ts = ts[:limit] if (from_id is not None or start) else ts[-limit:]
    return [F.user_trade(inst, t) for t in ts]


# -- conditional orders (Binance's algo API since its December 2025 migration)

_ALGO_PARAMS = (
    "algoType symbol side type quantity price triggerPrice timeInForce workingType "
    "reduceOnly clientAlgoId positionSide priceProtect closePosition newOrderRespType "
    "selfTradePreventionMode priceMatch goodTillDate activatePrice callbackRate"
)


@endpoint("POST", V1 + "algoOrder", SIGNED, params=_ALGO_PARAMS)
async def new_algo_order(r: Request) -> Any:
    if r.need("algoType") != "CONDITIONAL":
        raise BinanceError(Code.INVALID_PARAMETER, "Only algoType=CONDITIONAL is supported.")
    typ = r.need("type")
    if typ == "TRAILING_STOP_MARKET" or r.get("callbackRate") is not None:
        raise BinanceError(Code.INVALID_ORDER_TYPE, "Trailing stops are not supported.")
    if F.TO_CORE_TYPE.get(typ, typ) not in F.CONDITIONAL:
        raise BinanceError(Code.INVALID_ORDER_TYPE, "The algo API takes STOP, STOP_MARKET, TAKE_PROFIT and TAKE_PROFIT_MARKET.")  # fmt: skip
    inst, rec, status = await _place(r, typ, r.need("triggerPrice"), r.get("clientAlgoId"))
    return F.algo_order(inst, rec, status)


@endpoint("GET", V1 + "algoOrder", SIGNED, params="symbol algoId clientAlgoId")
async def get_algo_order(r: Request) -> Any:
    inst, rec, view = _find(r, "algoId", "clientAlgoId")
    return F.algo_order(inst, rec, view.status)


@endpoint("DELETE", V1 + "algoOrder", SIGNED, params="symbol algoId clientAlgoId")
async def cancel_algo_order(r: Request) -> Any:
    inst, rec, view = _find(r, "algoId", "clientAlgoId", int(Code.UNKNOWN_ORDER))
    await _native(r, "order.cancel", {"symbol": inst.symbol, "orderId": view.order_id})
    return {"algoId": view.order_id, "clientAlgoId": rec.client_id or f"mc-{view.order_id}", "code": "200", "msg": "success"}  # fmt: skip


@endpoint("GET", V1 + "openAlgoOrders", SIGNED, weight=_ticker_weight, params="symbol algoType")
async def open_algo_orders(r: Request) -> Any:
    return [F.algo_order(i, rec, s) for i, rec, s in _open(r, True)]


@endpoint("GET", V1 + "allAlgoOrders", SIGNED, weight=5, params="symbol algoId startTime endTime limit")  # fmt: skip
async def all_algo_orders(r: Request) -> Any:
    return [F.algo_order(i, rec, s) for i, rec, s in _history(r, True)]


# ------------------------------------------------------------------ account


def _account(r: Request) -> dict[str, Any]:
    r.gw.catch_up()
    ex, ledger = r.gw.exchange, r.gw.ledger
    view = ex.account_view(r.account)
    if view is None:
        raise BinanceError(Code.INVALID_KEY_OR_PERMISSION, "Invalid API-key, IP, or permissions for action.", 401)  # fmt: skip
    t = max(ms(ledger.balance_ts.get(r.account, 0)), 1)  # type: ignore[arg-type]
    positions = [
        (ex.instruments[p.symbol], p, ms(ledger.position_ts.get((r.account, p.symbol), 0)))
        for p in view.positions
    ]
    return F.account(list(view.balances), positions, {b.asset: t for b in view.balances})


@endpoint("GET", (V2 + "account", V3 + "account"), SIGNED, weight=5)
async def account(r: Request) -> Any:
    return _account(r)


@endpoint("GET", (V2 + "balance", V3 + "balance"), SIGNED, weight=5)
async def balance(r: Request) -> Any:
    return F.balances(_account(r))


@endpoint("GET", (V2 + "positionRisk", V3 + "positionRisk"), SIGNED, weight=5, params="symbol")
async def position_risk(r: Request) -> Any:
    sym = r.get("symbol")
    if sym is not None:
        _inst(r)
    r.gw.catch_up()
    ex, ledger = r.gw.exchange, r.gw.ledger
    view = ex.account_view(r.account)
    out = []
    for p in view.positions if view is not None else ():
        if sym is None or p.symbol == sym:
            t = ms(ledger.position_ts.get((r.account, p.symbol), 0))
            out.append(F.position_risk(ex.instruments[p.symbol], p, t))
    return out


@endpoint("GET", V1 + "leverageBracket", SIGNED, params="symbol")
async def leverage_bracket(r: Request) -> Any:
    out = [F.leverage_bracket(i) for i in _symbols(r)]
    return out[0] if r.get("symbol") is not None else out


@endpoint("POST", V1 + "leverage", SIGNED, params="symbol leverage")
async def set_leverage(r: Request) -> Any:
    inst = _inst(r)
    lev = r.int("leverage", 1, 1000)
    if lev is None:
        r.need("leverage")
    res = await _native(r, "leverage.set", {"symbol": inst.symbol, "leverage": lev})
    cap = 0
    for b in inst.brackets:
        if b.max_leverage >= res["leverage"]:
            cap = b.cap
    return {"leverage": res["leverage"], "maxNotionalValue": F.units.quanta_to_str(cap), "symbol": inst.symbol}  # fmt: skip


@endpoint("POST", V1 + "marginType", SIGNED, params="symbol marginType")
async def margin_type(r: Request) -> Any:
    _inst(r)
    mt = r.need("marginType")
    if mt == "ISOLATED":
        return {"code": 200, "msg": "success"}
    if mt == "CROSSED":
        raise BinanceError(Code.INVALID_PARAMETER, "Cross margin is not available: margincall margins every position in isolation (marginType ISOLATED).")  # fmt: skip
    raise BinanceError(Code.INVALID_PARAMETER, "Param 'marginType' must be ISOLATED or CROSSED.")


@endpoint("POST", V1 + "positionMargin", SIGNED, params="symbol amount type positionSide")
async def position_margin(r: Request) -> Any:
    inst = _inst(r)
    if r.get("positionSide") not in (None, "BOTH"):
        raise BinanceError(-4061, "Order's position side does not match user's setting: margincall is one-way (BOTH) only.")  # fmt: skip
    typ = r.int("type", 1, 2)
    if typ is None:
        r.need("type")
    res = await _native(r, "position.margin", {"symbol": inst.symbol, "amount": r.need("amount"), "type": typ})  # fmt: skip
    return {"amount": float(res["amount"]), "code": 200, "msg": "Successfully modify position margin.", "type": typ}  # fmt: skip


@endpoint("GET", V1 + "positionSide/dual", SIGNED)
async def position_mode(r: Request) -> Any:
    return {"dualSidePosition": False}


@endpoint("POST", V1 + "positionSide/dual", SIGNED, params="dualSidePosition")
async def set_position_mode(r: Request) -> Any:
    if r.need("dualSidePosition") == "false":
        raise BinanceError(-4059, "No need to change position side.")
    raise BinanceError(Code.INVALID_PARAMETER, "Hedge mode is not available: margincall positions are one-way (BOTH).")  # fmt: skip


@endpoint("GET", V1 + "multiAssetsMargin", SIGNED)
async def multi_assets(r: Request) -> Any:
    return {"multiAssetsMargin": False}


@endpoint("GET", V1 + "commissionRate", SIGNED, weight=20, params="symbol")
async def commission_rate(r: Request) -> Any:
    inst = _inst(r)
    rate = F.units.rate_to_str
    return {"symbol": inst.symbol, "makerCommissionRate": rate(inst.maker_fee), "takerCommissionRate": rate(inst.taker_fee)}  # fmt: skip


@endpoint("GET", V1 + "accountConfig", SIGNED, weight=5)
async def account_config(r: Request) -> Any:
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "dualSidePosition": False, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1}  # fmt: skip


@endpoint("GET", V1 + "income", SIGNED, weight=30, params="symbol incomeType startTime endTime limit page")  # fmt: skip
async def income(r: Request) -> Any:
    sym = r.get("symbol")
    if sym is not None:
        _inst(r)
    kind = r.get("incomeType")
    limit = r.int("limit", 1, 1000, 100) or 100
    start, end = r.int("startTime", default=0) or 0, r.int("endTime", default=2**62) or 2**62
    r.gw.catch_up()
    ex = r.gw.exchange
    out = []
    for row in r.gw.ledger.income.get(r.account, ()):  # type: ignore[arg-type]
        s, k, amount, t, tran = row
        if (sym is None or s == sym) and (kind is None or k == kind) and start <= ms(t) <= end:
            asset = ex.instruments[s].quote_asset
            out.append({"symbol": s, "incomeType": k, "income": F.units.quanta_to_str(amount),
                        "asset": asset, "info": k, "time": ms(t), "tranId": tran, "tradeId": ""})  # fmt: skip
    return out[:limit] if start else out[-limit:]


# ------------------------------------------------------------------ user data stream


@endpoint("POST", V1 + "listenKey", KEY)
async def listen_key_new(r: Request) -> Any:
    return {"listenKey": r.gw.listen_keys.create(r.account)}  # type: ignore[arg-type]


@endpoint("PUT", V1 + "listenKey", KEY, params="listenKey")
async def listen_key_keepalive(r: Request) -> Any:
    key = r.gw.listen_keys.extend(r.account)  # type: ignore[arg-type]
    if key is None:
        raise BinanceError(-1125)
    return {"listenKey": key}


@endpoint("DELETE", V1 + "listenKey", KEY, params="listenKey")
async def listen_key_close(r: Request) -> Any:
    key = r.gw.listen_keys.key_of(r.account)  # type: ignore[arg-type]
    if key is not None:
        r.gw.listen_keys.delete(key)
        await r.gw.streams.listen_key_closed(key)
    return {}
