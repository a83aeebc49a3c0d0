"""Binance USDⓈ-M REST shapes, from the core's views and the gateway's ledger (pure).

Every function takes integers in the core's units (ticks, lots, quanta, rates, ns) and
returns JSON-ready dicts with Binance's field names; decimals are strings printed with
the instrument's precision (prices: tick, quantities: step, money: 8 decimals). Times
are milliseconds: engine time for everything that happened, wall time only for
`serverTime`. Nothing here reads the core or a clock.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from exchange import units
from exchange.binance.ledger import AccountTrade, OrderRecord, Trade, ms
from exchange.core.instruments import Instrument
from exchange.core.numbers import RATE_ONE
from exchange.core.views import MarketView, OrderView, PositionView
from exchange.protocol.views import instrument_json

# the core's order type names ↔ Binance's (the liquidation engine's orders are LIMIT IOC)
TO_BINANCE_TYPE = {"STOP_LIMIT": "STOP", "TAKE_PROFIT_LIMIT": "TAKE_PROFIT", "LIQUIDATION": "LIMIT"}
TO_CORE_TYPE = {"STOP": "STOP_LIMIT", "TAKE_PROFIT": "TAKE_PROFIT_LIMIT"}
ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"]
CONDITIONAL = frozenset(("STOP_MARKET", "STOP_LIMIT", "TAKE_PROFIT_MARKET", "TAKE_PROFIT_LIMIT"))
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]
PERPETUAL_DELIVERY_MS = 4133404800000  # what Binance gives perpetuals as deliveryDate

INTERVALS_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
    "1w": 604_800_000,
}  # fmt: skip


def _q(quanta: int) -> str:
    return units.quanta_to_str(quanta)


def _p(inst: Instrument, ticks: int) -> str:
    return units.ticks_to_str(inst, ticks)


def _l(inst: Instrument, lots: int) -> str:
    return units.lots_to_str(inst, lots)


def _notional(inst: Instrument, ticks_lots: int) -> str:
    """A sum of price × qty (ticks·lots) as quote money."""
    return _q(ticks_lots * inst.lot_value)


def _avg(inst: Instrument, ticks_lots: int, lots: int) -> str:
    if not lots:
        return _p(inst, 0)
    return units.fraction_ticks_to_str(inst, Fraction(ticks_lots, lots), _decimals(inst.tick_size))


def _decimals(unit: str) -> int:
    return len(unit.split(".")[1]) if "." in unit else 0


def _levels(inst: Instrument, levels: Any) -> list[list[str]]:
    return [[_p(inst, p), _l(inst, q)] for p, q in levels]


# ------------------------------------------------------------------ markets


def symbol_info(inst: Instrument, halted: bool = False) -> dict[str, Any]:
    """One `symbols[]` entry of /fapi/v1/exchangeInfo (the native API's filters, reused)."""
    native = instrument_json(inst, halted)
    mmr = inst.brackets[0].mmr if inst.brackets else 0
    filters = native["filters"]
    for f in filters:
        if f["filterType"] == "PERCENT_PRICE":
            f["multiplierDecimal"] = "4"
    return {
        "symbol": inst.symbol,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": 1569398400000,
        "status": "HALT" if halted else "TRADING",
        "maintMarginPercent": units.rate_to_str(mmr * 100),
        "requiredMarginPercent": units.rate_to_str(RATE_ONE * 100 // max(inst.max_leverage, 1)),
        "baseAsset": inst.base_asset,
        "quoteAsset": inst.quote_asset,
        "marginAsset": inst.quote_asset,
        "pricePrecision": native["pricePrecision"],
        "quantityPrecision": native["quantityPrecision"],
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0",
        "marketTakeBound": units.rate_to_str(inst.band_up),
        "maxMoveOrderLimit": 10000,
        "filters": filters,
        "orderTypes": list(ORDER_TYPES),
        "timeInForce": list(TIME_IN_FORCE),
        "permissionSets": ["GRID", "COPY"],
    }


def exchange_info(symbols: list[dict[str, Any]], server_ms: int, weight_limit: int, quote_assets: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
        ],  # fmt: skip
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "0"} for a in quote_assets
        ],
        "symbols": symbols,
    }


def depth(inst: Instrument, seq: int, bids: Any, asks: Any, now_ms: int) -> dict[str, Any]:
    return {
        "lastUpdateId": seq,
        "E": now_ms,
        "T": now_ms,
        "bids": _levels(inst, bids),
        "asks": _levels(inst, asks),
    }


def ticker_24h(inst: Instrument, candles: list[list[int]], trades_first_last: tuple[int, int], now_ms: int, last: int) -> dict[str, Any]:  # fmt: skip
    """24 h statistics from the minute candles of the last day (all zero without trades)."""
    if candles:
        o = candles[0][1]
        h = max(c[2] for c in candles)
        lo = min(c[3] for c in candles)
        c_ = candles[-1][4]
        vol = sum(c[5] for c in candles)
        quote = sum(c[6] for c in candles)
        count = sum(c[7] for c in candles)
    else:
        o = h = lo = c_ = last
        vol = quote = count = 0
    change = c_ - o
    pct = units.fraction_ticks_to_str(inst, 0) if not o else _pct(change, o)
    return {
        "symbol": inst.symbol,
        "priceChange": _p(inst, change),
        "priceChangePercent": pct,
        "weightedAvgPrice": _avg(inst, quote, vol) if vol else _p(inst, c_),
        "lastPrice": _p(inst, c_),
        "lastQty": _l(inst, 0),
        "openPrice": _p(inst, o),
        "highPrice": _p(inst, h),
        "lowPrice": _p(inst, lo),
        "volume": _l(inst, vol),
        "quoteVolume": _notional(inst, quote),
        "openTime": now_ms - 86_400_000,
        "closeTime": now_ms,
        "firstId": trades_first_last[0],
        "lastId": trades_first_last[1],
        "count": count,
    }


def _pct(change: int, base: int) -> str:
    """100 × change / base with 3 decimals, half-even (Binance prints e.g. "-1.234")."""
    v = Fraction(change * 100, base)
    return str(Decimal(round(v * 1000)) / 1000)


def book_ticker(inst: Instrument, mv: MarketView, bid_qty: int, ask_qty: int, seq: int, now_ms: int) -> dict[str, Any]:  # fmt: skip
    return {
        "symbol": inst.symbol,
        "bidPrice": _p(inst, mv.best_bid or 0),
        "bidQty": _l(inst, bid_qty),
        "askPrice": _p(inst, mv.best_ask or 0),
        "askQty": _l(inst, ask_qty),
        "time": now_ms,
        "lastUpdateId": seq,
    }


def agg_trade(inst: Instrument, t: Trade) -> dict[str, Any]:
    """One aggregate trade: margincall's trades are single fills, so f == l == a."""
    return {
        "a": t.trade_id,
        "p": _p(inst, t.price),
        "q": _l(inst, t.qty),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": ms(t.ts),
        "m": t.buyer_maker,
    }


def trade(inst: Instrument, t: Trade) -> dict[str, Any]:
    return {
        "id": t.trade_id,
        "price": _p(inst, t.price),
        "qty": _l(inst, t.qty),
        "quoteQty": _notional(inst, t.price * t.qty),
        "time": ms(t.ts),
        "isBuyerMaker": t.buyer_maker,
    }


def kline(inst: Instrument, k: list[int], interval_ms: int) -> list[Any]:
    return [
        k[0],
        _p(inst, k[1]),
        _p(inst, k[2]),
        _p(inst, k[3]),
        _p(inst, k[4]),
        _l(inst, k[5]),
        k[0] + interval_ms - 1,
        _notional(inst, k[6]),
        k[7],
        _l(inst, k[8]),
        _notional(inst, k[9]),
        "0",
    ]


def premium_index(inst: Instrument, mv: MarketView, now_ms: int) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "markPrice": _p(inst, mv.mark),
        "indexPrice": _p(inst, mv.index),
        "estimatedSettlePrice": _p(inst, mv.index),
        "lastFundingRate": units.rate_to_str(mv.funding_rate),
        "interestRate": units.rate_to_str(inst.interest_rate),
        "nextFundingTime": ms(mv.next_funding_ts),
        "time": now_ms,
    }


def funding_rate(inst: Instrument, funding_ns: int, rate: int, mark: int) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "fundingRate": units.rate_to_str(rate),
        "fundingTime": ms(funding_ns),
        "markPrice": _p(inst, mark),
    }


def _number(text: str) -> int | float:
    """Binance sends bracket figures as JSON numbers: an integer, or the float whose
    shortest repr is exactly this decimal text (display only, never computed with)."""
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def leverage_bracket(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "brackets": [
            {
                "bracket": i + 1,
                "initialLeverage": b.max_leverage,
                "notionalCap": _number(_q(b.cap)),
                "notionalFloor": _number(_q(b.floor)),
                "maintMarginRatio": _number(units.rate_to_str(b.mmr)),
                "cum": _number(_q(b.cum)),
            }
            for i, b in enumerate(inst.brackets)
        ],
    }


# ------------------------------------------------------------------ orders


def record_from_view(v: OrderView) -> OrderRecord:
    """An order the ledger never saw (it predates this process): totals unknown but
    filled quantity, priced at the order's own price."""
    return OrderRecord(
        v.order_id, v.account, v.symbol, v.client_id, v.side, v.type, v.time_in_force,
        v.price, v.qty, v.stop_price, v.reduce_only, v.status, v.ts, v.ts, v.filled,
        v.filled * v.price, v.working_type,
    )  # fmt: skip


def order_status(rec: OrderRecord, status: str | None = None) -> str:
    s = status or rec.status
    return "NEW" if s == "UNTRIGGERED" else s


def order(inst: Instrument, rec: OrderRecord, status: str | None = None) -> dict[str, Any]:
    """An order as /fapi/v1/order answers (status from the core when given)."""
    typ = TO_BINANCE_TYPE.get(rec.type, rec.type)
    return {
        "orderId": rec.order_id,
        "symbol": rec.symbol,
        "status": order_status(rec, status),
        "clientOrderId": rec.client_id or f"mc-{rec.order_id}",
        "price": _p(inst, rec.price),
        "avgPrice": _avg(inst, rec.quote, rec.filled),
        "origQty": _l(inst, rec.qty),
        "executedQty": _l(inst, rec.filled),
        "cumQty": _l(inst, rec.filled),
        "cumQuote": _notional(inst, rec.quote),
        "timeInForce": rec.time_in_force,
        "type": typ,
        "reduceOnly": rec.reduce_only,
        "closePosition": False,
        "side": rec.side,
        "positionSide": "BOTH",
        "stopPrice": _p(inst, rec.stop_price),
        "workingType": rec.working_type,
        "priceProtect": False,
        "origType": typ,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": ms(rec.created),
        "updateTime": ms(rec.updated),
    }


def algo_status(rec: OrderRecord, status: str | None = None) -> str:
    s = status or rec.status
    if s == "UNTRIGGERED":
        return "NEW"
    if s in ("CANCELED", "EXPIRED"):
        return s
    return "FINISHED" if s == "FILLED" else "TRIGGERED"


def algo_order(inst: Instrument, rec: OrderRecord, status: str | None = None) -> dict[str, Any]:
    """A conditional order as /fapi/v1/algoOrder answers; its algoId is its orderId."""
    return {
        "algoId": rec.order_id,
        "clientAlgoId": rec.client_id or f"mc-{rec.order_id}",
        "algoType": "CONDITIONAL",
        "orderType": TO_BINANCE_TYPE.get(rec.type, rec.type),
        "symbol": rec.symbol,
        "side": rec.side,
        "positionSide": "BOTH",
        "timeInForce": rec.time_in_force,
        "quantity": _l(inst, rec.qty),
        "algoStatus": algo_status(rec, status),
        "actualOrderId": str(rec.order_id) if rec.triggered else "",
        "actualPrice": _avg(inst, rec.quote, rec.filled) if rec.filled else "0",
        "triggerPrice": _p(inst, rec.stop_price),
        "price": _p(inst, rec.price),
        "icebergQuantity": None,
        "tpTriggerPrice": "0",
        "tpPrice": "0",
        "slTriggerPrice": "0",
        "slPrice": "0",
        "tpOrderType": "",
        "selfTradePreventionMode": "NONE",
        "workingType": rec.working_type,
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": rec.reduce_only,
        "createTime": ms(rec.created),
        "updateTime": ms(rec.updated),
        "triggerTime": ms(rec.updated) if rec.triggered else 0,
        "goodTillDate": 0,
    }


def user_trade(inst: Instrument, t: AccountTrade) -> dict[str, Any]:
    return {
        "buyer": t.side == "BUY",
        "commission": _q(t.fee),
        "commissionAsset": inst.quote_asset,
        "id": t.trade_id,
        "maker": t.maker,
        "orderId": t.order_id,
        "price": _p(inst, t.price),
        "qty": _l(inst, t.qty),
        "quoteQty": _notional(inst, t.price * t.qty),
        "realizedPnl": _q(t.realized),
        "side": t.side,
        "positionSide": "BOTH",
        "symbol": t.symbol,
        "time": ms(t.ts),
    }


# ------------------------------------------------------------------ account


def position_risk(inst: Instrument, p: PositionView, update_ms: int) -> dict[str, Any]:
    """/fapi/v2 ∪ v3 positionRisk for one isolated one-way position."""
    notional = p.qty * p.mark * inst.lot_value
    initial = -(-abs(notional) // max(p.leverage, 1))
    cap = inst.brackets[-1].cap if inst.brackets else 0
    for b in inst.brackets:
        if b.max_leverage >= p.leverage:
            cap = b.cap
    entry = units.fraction_ticks_to_str(inst, p.entry_price, _decimals(inst.tick_size) + 4)
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": _l(inst, p.qty),
        "entryPrice": entry,
        "breakEvenPrice": entry,
        "markPrice": _p(inst, p.mark),
        "unRealizedProfit": _q(p.unrealized_pnl),
        "liquidationPrice": _p(inst, p.liquidation_price),
        "isolatedMargin": _q(p.margin + p.unrealized_pnl),
        "notional": _q(notional),
        "marginAsset": inst.quote_asset,
        "isolatedWallet": _q(p.margin),
        "initialMargin": _q(initial),
        "maintMargin": _q(p.maintenance_margin),
        "positionInitialMargin": _q(initial),
        "openOrderInitialMargin": _q(0),
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "leverage": str(p.leverage),
        "maxNotionalValue": _q(cap),
        "marginType": "isolated",
        "isAutoAddMargin": "false",
        "updateTime": update_ms,
    }


def account(balances: list[Any], positions: list[tuple[Instrument, PositionView, int]], update_ms: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """/fapi/v2|v3/account. Per asset: wallet = available + reserved + isolated wallets;
    initial margin = reserved + isolated wallets; available = what orders may use.
    `updateTime` is never 0 (ccxt skips such assets): 1 ms at the earliest."""
    assets = []
    tot: dict[str, int] = dict.fromkeys(("wallet", "upnl", "im", "mm", "avail", "reserved"), 0)
    for b in balances:
        iso = sum(p.margin for i, p, _ in positions if i.quote_asset == b.asset)
        upnl = sum(p.unrealized_pnl for i, p, _ in positions if i.quote_asset == b.asset)
        mm = sum(p.maintenance_margin for i, p, _ in positions if i.quote_asset == b.asset)
        wallet = b.available + b.reserved + iso
        assets.append(
            {
                "asset": b.asset,
                "walletBalance": _q(wallet),
                "unrealizedProfit": _q(upnl),
                "marginBalance": _q(wallet + upnl),
                "maintMargin": _q(mm),
                "initialMargin": _q(b.reserved + iso),
                "positionInitialMargin": _q(iso),
                "openOrderInitialMargin": _q(b.reserved),
                "crossWalletBalance": _q(b.available + b.reserved),
                "crossUnPnl": _q(0),
                "availableBalance": _q(b.available),
                "maxWithdrawAmount": _q(b.available),
                "marginAvailable": True,
                "updateTime": max(update_ms.get(b.asset, 1), 1),
            }
        )
        if b.asset == "USDT":
            tot["wallet"] += wallet
            tot["upnl"] += upnl
            tot["im"] += b.reserved + iso
            tot["mm"] += mm
            tot["avail"] += b.available
            tot["reserved"] += b.reserved
    return {
        "totalInitialMargin": _q(tot["im"]),
        "totalMaintMargin": _q(tot["mm"]),
        "totalWalletBalance": _q(tot["wallet"]),
        "totalUnrealizedProfit": _q(tot["upnl"]),
        "totalMarginBalance": _q(tot["wallet"] + tot["upnl"]),
        "totalPositionInitialMargin": _q(tot["im"] - tot["reserved"]),
        "totalOpenOrderInitialMargin": _q(tot["reserved"]),
        "totalCrossWalletBalance": _q(tot["avail"] + tot["reserved"]),
        "totalCrossUnPnl": _q(0),
        "availableBalance": _q(tot["avail"]),
        "maxWithdrawAmount": _q(tot["avail"]),
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "multiAssetsMargin": False,
        "updateTime": 0,
        "assets": assets,
        "positions": [
            {
                "symbol": p.symbol,
                "positionSide": "BOTH",
                "positionAmt": _l(i, p.qty),
                "unrealizedProfit": _q(p.unrealized_pnl),
                "isolatedMargin": _q(p.margin + p.unrealized_pnl),
                "notional": _q(p.qty * p.mark * i.lot_value),
                "isolatedWallet": _q(p.margin),
                "initialMargin": _q(-(-abs(p.qty * p.mark * i.lot_value) // max(p.leverage, 1))),
                "maintMargin": _q(p.maintenance_margin),
                "leverage": str(p.leverage),
                "isolated": True,
                "entryPrice": units.fraction_ticks_to_str(i, p.entry_price),
                "updateTime": t,
            }
            for i, p, t in positions
        ],
    }


def balances(acct: dict[str, Any]) -> list[dict[str, Any]]:
    """/fapi/v2|v3/balance from the account answer."""
    return [
        {
            "accountAlias": "margincall",
            "asset": a["asset"],
            "balance": a["walletBalance"],
            "crossWalletBalance": a["crossWalletBalance"],
            "crossUnPnl": a["crossUnPnl"],
            "availableBalance": a["availableBalance"],
            "maxWithdrawAmount": a["maxWithdrawAmount"],
            "marginAvailable": True,
            "updateTime": a["updateTime"],
        }
        for a in acct["assets"]
    ]
