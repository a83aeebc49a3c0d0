"""JSON views of core state: orders, positions, instruments, book levels.

Pure functions from the core's read-only views to the dicts answers carry (decimals as
text); shared by the method handlers, the stream formatter and the Binance gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from exchange import units
from exchange.core.instruments import Instrument
from exchange.core.numbers import RATE_ONE


def _avg_price(inst: Instrument, fills: list[tuple[int, int]]) -> str:
    qty = sum(q for _, q in fills)
    if not qty:
        return units.ticks_to_str(inst, 0)
    return units.fraction_ticks_to_str(inst, Fraction(sum(p * q for p, q in fills), qty))


def order_view_json(inst: Instrument, o: Any) -> dict[str, Any]:
    return {
        "orderId": o.order_id,
        "clientOrderId": o.client_id,
        "symbol": o.symbol,
        "side": o.side,
        "type": o.type,
        "timeInForce": o.time_in_force,
        "price": units.ticks_to_str(inst, o.price),
        "origQty": units.lots_to_str(inst, o.qty),
        "executedQty": units.lots_to_str(inst, o.filled),
        "remainingQty": units.lots_to_str(inst, o.remaining),
        "stopPrice": units.ticks_to_str(inst, o.stop_price),
        "workingType": o.working_type,
        "reduceOnly": o.reduce_only,
        "status": o.status,
        "ts": o.ts,
    }


def position_json(inst: Instrument, p: Any) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "positionAmt": units.lots_to_str(inst, p.qty),
        "entryPrice": units.fraction_ticks_to_str(inst, p.entry_price),
        "markPrice": units.ticks_to_str(inst, p.mark),
        "liquidationPrice": units.ticks_to_str(inst, p.liquidation_price),
        "bankruptcyPrice": units.ticks_to_str(inst, p.bankruptcy_price),
        "isolatedMargin": units.quanta_to_str(p.margin),
        "leverage": p.leverage,
        # Binance's notional: signed size at the mark; the entry value is entryNotional
        "notional": units.quanta_to_str(p.qty * p.mark * inst.lot_value),
        "entryNotional": units.quanta_to_str(p.cost),
        "unrealizedProfit": units.quanta_to_str(p.unrealized_pnl),
        "maintMargin": units.quanta_to_str(p.maintenance_margin),
        "marginRatio": units.rate_to_str(p.margin_ratio),
        "realizedPnl": units.quanta_to_str(p.realized_pnl),
    }


def _levels(inst: Instrument, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
    return [[units.ticks_to_str(inst, p), units.lots_to_str(inst, q)] for p, q in levels]


def instrument_json(inst: Instrument, halted: bool = False) -> dict[str, Any]:
    tick, step = inst.tick_size, inst.step_size
    return {
        "symbol": inst.symbol,
        "status": "HALTED" if halted else "TRADING",
        "contractType": "PERPETUAL",
        "baseAsset": inst.base_asset,
        "quoteAsset": inst.quote_asset,
        "marginAsset": inst.quote_asset,
        "pricePrecision": len(tick.split(".")[1]) if "." in tick else 0,
        "quantityPrecision": len(step.split(".")[1]) if "." in step else 0,
        "tickSize": tick,
        "stepSize": step,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": units.ticks_to_str(inst, inst.min_price),
                "maxPrice": units.ticks_to_str(inst, inst.max_price),
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": units.lots_to_str(inst, inst.min_qty),
                "maxQty": units.lots_to_str(inst, inst.max_qty),
                "stepSize": step,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": units.lots_to_str(inst, inst.min_qty),
                "maxQty": units.lots_to_str(inst, inst.market_max_qty),
                "stepSize": step,
            },
            {"filterType": "MIN_NOTIONAL", "notional": units.quanta_to_str(inst.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": units.rate_to_str(RATE_ONE + inst.band_up),
                "multiplierDown": units.rate_to_str(RATE_ONE - inst.band_down),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": inst.max_open_orders},
        ],
        "makerFee": units.rate_to_str(inst.maker_fee),
        "takerFee": units.rate_to_str(inst.taker_fee),
        "maxLeverage": inst.max_leverage,
        "defaultLeverage": inst.default_leverage,
        "markMethod": inst.mark_method,
        "liquidationPolicy": inst.liquidation_policy,
        "fundingIntervalNs": inst.funding_interval_ns,
        "interestRate": units.rate_to_str(inst.interest_rate),
        "fundingClamp": units.rate_to_str(inst.funding_clamp),
        "brackets": [
            {
                "bracket": i + 1,
                "notionalFloor": units.quanta_to_str(b.floor),
                "notionalCap": units.quanta_to_str(b.cap),
                "maxLeverage": b.max_leverage,
                "maintMarginRatio": units.rate_to_str(b.mmr),
                "cum": units.quanta_to_str(b.cum),
            }
            for i, b in enumerate(inst.brackets)
        ],
    }
