"""Methods `order.*` and `openOrders.status`: place, cancel, amend, look up orders."""

from __future__ import annotations

from typing import Any

from exchange import units
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.protocol.params import (
    SYMBOL,
    method,
    v_bool,
    v_client_id,
    v_decimal,
    v_int,
    v_str,
    v_symbol,
)
from exchange.protocol.session import Session
from exchange.protocol.views import _avg_price, _levels, order_view_json
from exchange.protocol.wire import ProtocolError

ORDER_REF = {"orderId": v_int(0), "origClientOrderId": v_client_id}


def _require_one(p: dict[str, Any]) -> None:
    if "orderId" not in p and "origClientOrderId" not in p:
        raise ProtocolError(
            Code.MANDATORY_PARAM_MISSING, "Either 'orderId' or 'origClientOrderId' must be sent."
        )


@method(
    "order.place",
    "user",
    required={"symbol": v_symbol, "side": v_str(8), "type": v_str(24), "quantity": v_decimal},
    optional={
        "price": v_decimal,
        "timeInForce": v_str(8),
        "stopPrice": v_decimal,
        "workingType": v_str(16),
        "reduceOnly": v_bool,
        "newClientOrderId": v_client_id,
        "selfTradePreventionMode": v_str(16),
    },
)
async def _order_place(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    cmd = C.PlaceOrder(
        account=s.account,  # type: ignore[arg-type]
        symbol=inst.symbol,
        side=p["side"],
        type=p["type"],
        qty=units.qty_to_lots(inst, p["quantity"]),
        price=units.price_to_ticks(inst, p["price"]) if "price" in p else 0,
        time_in_force=p.get("timeInForce", "GTC"),
        reduce_only=p.get("reduceOnly", False),
        client_id=p.get("newClientOrderId"),
        stop_price=units.stop_price_to_ticks(inst, p["stopPrice"]) if "stopPrice" in p else 0,
        working_type=p.get("workingType", "MARK_PRICE"),
        stp=p.get("selfTradePreventionMode", "NONE"),
    )
    events = await s.submit(cmd)
    return place_result(s, inst, events)


def place_result(s: Session, inst: Instrument, events: list[E.Event]) -> dict[str, Any]:
    acc = None
    for ev in events:
        if type(ev) is E.OrderResubmissionIgnored:
            v = s.api.exchange.order_view(s.account, inst.symbol, ev.order_id)
            out = order_view_json(inst, v)
            out["duplicate"] = True
            return out
        if type(ev) is E.OrderAccepted and ev.account == s.account:
            acc = ev
            break
    if acc is None:  # cannot happen for an accepted order
        raise ProtocolError(Code.UNKNOWN)
    oid = acc.order_id
    fills: list[tuple[int, int]] = []
    status = acc.status
    closed = None
    for ev in events:
        t = type(ev)
        if t is E.OrderFilled and ev.taker_order_id == oid:  # type: ignore[attr-defined]
            fills.append((ev.price, ev.qty))  # type: ignore[attr-defined]
        elif (t is E.OrderExpired or t is E.OrderCanceled) and ev.order_id == oid:  # type: ignore[attr-defined]
            closed = ("EXPIRED" if t is E.OrderExpired else "CANCELED", ev.reason)  # type: ignore[attr-defined]
    filled = sum(q for _, q in fills)
    if closed is not None:
        status = closed[0]
    elif filled == acc.qty:
        status = "FILLED"
    elif filled:
        status = "PARTIALLY_FILLED"
    out = {
        "orderId": oid,
        "clientOrderId": acc.client_id,
        "symbol": acc.symbol,
        "side": acc.side,
        "type": acc.type,
        "timeInForce": acc.time_in_force,
        "price": units.ticks_to_str(inst, acc.price),
        "origQty": units.lots_to_str(inst, acc.qty),
        "executedQty": units.lots_to_str(inst, filled),
        "remainingQty": units.lots_to_str(
            inst, 0 if closed or filled == acc.qty else acc.qty - filled
        ),
        "avgPrice": _avg_price(inst, fills),
        "cumQuote": units.quanta_to_str(sum(p * q for p, q in fills) * inst.lot_value),
        "stopPrice": units.ticks_to_str(inst, acc.stop_price),
        "reduceOnly": acc.reduce_only,
        "status": status,
        "fills": _levels(inst, fills),
        "ts": acc.ts,
    }
    if closed is not None:
        out["expireReason"] = closed[1]
    return out


def _order_lookup(s: Session, inst: Instrument, p: dict[str, Any]) -> Any:
    v = s.api.exchange.order_view(
        s.account,
        inst.symbol,
        p.get("orderId"),
        p.get("origClientOrderId") if "orderId" not in p else None,
    )
    if v is None:
        raise ProtocolError(Code.UNKNOWN_ORDER)
    return v


@method("order.cancel", "user", required=SYMBOL, optional=ORDER_REF)
async def _order_cancel(s: Session, p: dict[str, Any]) -> Any:
    _require_one(p)
    inst = s.api.instrument(p["symbol"])
    await s.submit(
        C.CancelOrder(
            account=s.account,  # type: ignore[arg-type]
            symbol=inst.symbol,
            order_id=p.get("orderId"),
            client_id=p.get("origClientOrderId") if "orderId" not in p else None,
        )
    )
    return order_view_json(inst, _order_lookup(s, inst, p))


@method(
    "order.modify",
    "user",
    required=SYMBOL,
    optional={**ORDER_REF, "quantity": v_decimal, "price": v_decimal},
)
async def _order_modify(s: Session, p: dict[str, Any]) -> Any:
    _require_one(p)
    inst = s.api.instrument(p["symbol"])
    if "quantity" not in p and "price" not in p:
        raise ProtocolError(Code.MANDATORY_PARAM_MISSING, "Send 'quantity', 'price' or both.")
    await s.submit(
        C.AmendOrder(
            account=s.account,  # type: ignore[arg-type]
            symbol=inst.symbol,
            order_id=p.get("orderId"),
            client_id=p.get("origClientOrderId") if "orderId" not in p else None,
            qty=units.qty_to_lots(inst, p["quantity"]) if "quantity" in p else None,
            price=units.price_to_ticks(inst, p["price"]) if "price" in p else None,
        )
    )
    return order_view_json(inst, _order_lookup(s, inst, p))


@method("order.cancelAll", "user", required=SYMBOL)
async def _order_cancel_all(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    events = await s.submit(C.CancelAllOrders(account=s.account, symbol=inst.symbol))  # type: ignore[arg-type]
    n = sum(1 for ev in events if type(ev) is E.OrderCanceled and ev.account == s.account)
    return {"symbol": inst.symbol, "canceled": n}


@method("order.status", "user", required=SYMBOL, optional=ORDER_REF)
async def _order_status(s: Session, p: dict[str, Any]) -> Any:
    _require_one(p)
    inst = s.api.instrument(p["symbol"])
    return order_view_json(inst, _order_lookup(s, inst, p))


@method("openOrders.status", "user", optional=SYMBOL)
async def _open_orders(s: Session, p: dict[str, Any]) -> Any:
    ex = s.api.exchange
    sym = p.get("symbol")
    if sym is not None:
        s.api.instrument(sym)
    return [order_view_json(ex.instruments[o.symbol], o) for o in ex.open_orders(s.account, sym)]
