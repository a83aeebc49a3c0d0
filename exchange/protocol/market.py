"""Public market queries: `exchangeInfo`, `depth`, `market.liquidationLadder`, `time`,
`ticker`."""

from __future__ import annotations

import time
from typing import Any

from exchange import units
from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.core.ladder import DECADES, MAX_BUCKETS
from exchange.protocol.params import SYMBOL, method, v_decimal, v_int
from exchange.protocol.session import Session
from exchange.protocol.views import _levels, instrument_json
from exchange.protocol.wire import PROTOCOL_VERSION, ProtocolError


@method("exchangeInfo", "public", optional=SYMBOL)
async def _exchange_info(s: Session, p: dict[str, Any]) -> Any:
    ex = s.api.exchange
    syms = [s.api.instrument(p["symbol"]).symbol] if "symbol" in p else sorted(ex.instruments)
    return {
        "protocol": PROTOCOL_VERSION,
        "serverTime": int(time.time() * 1000),
        "engineTime": ex.now,
        "clock": s.api.runtime.clock,
        "symbols": [
            instrument_json(ex.instruments[sym], ex.market_view(sym).halted) for sym in syms
        ],
        "streams": ["book.<SYMBOL>", "trades.<SYMBOL>", "mark.<SYMBOL>", "liquidations.<SYMBOL>",
                    "status.<SYMBOL>", "cascades", "account"],
    }  # fmt: skip


@method("depth", "public", required=SYMBOL, optional={"limit": v_int(1, 5000)})
async def _depth(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    ex = s.api.exchange
    bids, asks = ex.depth(inst.symbol, p.get("limit"))
    return {
        "symbol": inst.symbol,
        "bookSeq": ex.book_seq(inst.symbol),
        "bids": _levels(inst, bids),
        "asks": _levels(inst, asks),
        "ts": ex.now,
    }


def ladder_json(inst: Instrument, v: Any, ts: int) -> dict[str, Any]:
    def buckets(bs: Any) -> list[dict[str, Any]]:
        return [
            {
                "low": units.ticks_to_str(inst, b.low),
                "high": units.ticks_to_str(inst, b.high),
                "qty": units.lots_to_str(inst, b.qty),
                "positions": b.positions,
            }
            for b in bs
        ]

    return {
        "symbol": v.symbol,
        "mark": units.ticks_to_str(inst, v.mark),
        "bucketSize": units.ticks_to_str(inst, v.bucket_ticks),
        "longs": buckets(v.longs),
        "shorts": buckets(v.shorts),
        "longQty": units.lots_to_str(inst, v.long_qty),
        "longPositions": v.long_positions,
        "shortQty": units.lots_to_str(inst, v.short_qty),
        "shortPositions": v.short_positions,
        "ts": ts,
    }


@method(
    "market.liquidationLadder",
    "public",
    required=SYMBOL,
    optional={"buckets": v_int(1, MAX_BUCKETS), "bucketSize": v_decimal},
)
async def _liquidation_ladder(s: Session, p: dict[str, Any]) -> Any:
    """Open interest by liquidation price around the mark: public and aggregated."""
    inst = s.api.instrument(p["symbol"])
    exponent = None
    if "bucketSize" in p:
        ticks = units.price_to_ticks(inst, p["bucketSize"], "bucketSize")
        exponent = len(str(ticks)) - 1
        if ticks != 10**exponent or exponent >= DECADES:
            raise ProtocolError(
                Code.INVALID_PARAMETER,
                f"Parameter 'bucketSize' must be the tick size times 10^k, k in 0..{DECADES - 1}.",
            )
    ex = s.api.exchange
    view = ex.liquidation_ladder(inst.symbol, p.get("buckets", 20), exponent)
    return ladder_json(inst, view, ex.now)


@method("time", "public")
async def _time(s: Session, p: dict[str, Any]) -> Any:
    return {
        "serverTime": int(time.time() * 1000),
        "engineTime": s.api.exchange.now,
        "clock": s.api.runtime.clock,
    }


@method("ticker", "public", required=SYMBOL)
async def _ticker(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    mv = s.api.exchange.market_view(inst.symbol)
    out = s.api.formatter.mark_data(
        inst.symbol, mv.mark, mv.index, mv.last, mv.funding_rate, mv.next_funding_ts,
        s.api.exchange.now, 0,
    )  # fmt: skip
    del out["seq"]
    out["type"] = "ticker"
    out["status"] = "HALTED" if mv.halted else "TRADING"
    out["bestBid"] = units.ticks_to_str(inst, mv.best_bid) if mv.best_bid else None
    out["bestAsk"] = units.ticks_to_str(inst, mv.best_ask) if mv.best_ask else None
    out["insuranceFund"] = units.quanta_to_str(s.api.exchange.insurance_fund(inst.quote_asset))
    return out
