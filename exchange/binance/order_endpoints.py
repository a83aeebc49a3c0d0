"""The `/fapi/...` order endpoints (new, query, modify, cancel, open and past orders,
trades, and the algo-order API for conditional orders): reads from the core's order
views, writes through the native API's `order.*` methods (see
`exchange.binance.endpoints`). Another account's order is answered like an unknown one.
"""

from __future__ import annotations

from typing import Any

from exchange.binance import formats as F
from exchange.binance.endpoints import (
    ORDER_UNKNOWN,
    V1,
    call_native,
    instrument_of,
    ticker_weight,
)
from exchange.binance.errors import (
    ORDER_TYPE_NEEDS_ALGO,
    BinanceError,
)
from exchange.binance.ledger import ms
from exchange.binance.rest import SIGNED, Request, endpoint
from exchange.core.errors import Code
from exchange.core.instruments import Instrument

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
    res = await call_native(
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
    inst = instrument_of(r)
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
    await call_native(r, "order.cancel", {"symbol": inst.symbol, "orderId": view.order_id})
    inst, rec, status = _order_rec(r, inst.symbol, view.order_id)
    return F.order(inst, rec, status)


@endpoint("PUT", V1 + "order", SIGNED, params="symbol orderId origClientOrderId side quantity price priceMatch")  # fmt: skip
async def modify_order(r: Request) -> Any:
    inst, rec, view = _find(r, code=int(Code.UNKNOWN_ORDER))
    side = r.get("side")
    if side is not None and side != view.side:
        raise BinanceError(Code.INVALID_PARAMETER, "An order's side cannot be modified.")
    await call_native(
        r,
        "order.modify",
        {"symbol": inst.symbol, "orderId": view.order_id, "quantity": r.get("quantity"), "price": r.get("price")},
    )  # fmt: skip
    inst, rec, status = _order_rec(r, inst.symbol, view.order_id)
    return F.order(inst, rec, status)


@endpoint("DELETE", (V1 + "allOpenOrders", V1 + "algoOpenOrders"), SIGNED, params="symbol")
async def cancel_all(r: Request) -> Any:
    """Cancels every open order of the symbol, conditional ones included (one command)."""
    inst = instrument_of(r)
    await call_native(r, "order.cancelAll", {"symbol": inst.symbol})
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def _open(r: Request, conditional: bool) -> list[tuple[Instrument, Any, str]]:
    sym = r.get("symbol")
    if sym is not None:
        instrument_of(r)
    r.gw.catch_up()
    ex = r.gw.exchange
    out = []
    for v in ex.open_orders(r.account, sym):
        if (v.status == "UNTRIGGERED") != conditional:
            continue
        rec = r.gw.ledger.orders.get(v.order_id) or F.record_from_view(v)
        out.append((ex.instruments[v.symbol], rec, v.status))
    return out


@endpoint("GET", V1 + "openOrders", SIGNED, weight=ticker_weight, params="symbol")
async def open_orders(r: Request) -> Any:
    return [F.order(i, rec, s) for i, rec, s in _open(r, False)]


def _history(r: Request, conditional: bool | None) -> list[tuple[Instrument, Any, str]]:
    inst = instrument_of(r)
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
    inst = instrument_of(r)
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
    await call_native(r, "order.cancel", {"symbol": inst.symbol, "orderId": view.order_id})
    return {"algoId": view.order_id, "clientAlgoId": rec.client_id or f"mc-{view.order_id}", "code": "200", "msg": "success"}  # fmt: skip


@endpoint("GET", V1 + "openAlgoOrders", SIGNED, weight=ticker_weight, params="symbol algoType")
async def open_algo_orders(r: Request) -> Any:
    return [F.algo_order(i, rec, s) for i, rec, s in _open(r, True)]


@endpoint("GET", V1 + "allAlgoOrders", SIGNED, weight=5, params="symbol algoId startTime endTime limit")  # fmt: skip
async def all_algo_orders(r: Request) -> Any:
    return [F.algo_order(i, rec, s) for i, rec, s in _history(r, True)]
