"""Binance USDⓈ-M stream payloads from core events (pure; times in engine ms).

Market: `depthUpdate` (U/u/pu), `trade`, `aggTrade`, `markPriceUpdate`, `bookTicker`,
`kline`, `24hrTicker`, `24hrMiniTicker`, `forceOrder` (every liquidation, unsampled).
User data: `ORDER_TRADE_UPDATE`, `ACCOUNT_UPDATE`, `MARGIN_CALL`, `listenKeyExpired`.
"""

from __future__ import annotations

from typing import Any

from exchange import units
from exchange.binance import formats as F
from exchange.binance.ledger import OrderRecord, ms
from exchange.core import events as E
from exchange.core.instruments import Instrument

_p, _l, _q = F._p, F._l, F._q


def depth_update(inst: Instrument, first: int, last: int, bids: dict[int, int], asks: dict[int, int], ts: int) -> dict[str, Any]:  # fmt: skip
    """One diff covering book updates first..last: U=first, u=last, pu=first-1 (the
    previous diff's u: updates are numbered without gaps)."""
    t = ms(ts)
    return {
        "e": "depthUpdate",
        "E": t,
        "T": t,
        "s": inst.symbol,
        "U": first,
        "u": last,
        "pu": first - 1,
        "b": [[_p(inst, p), _l(inst, q)] for p, q in sorted(bids.items(), reverse=True)],
        "a": [[_p(inst, p), _l(inst, q)] for p, q in sorted(asks.items())],
    }


def partial_depth(inst: Instrument, seq: int, bids: Any, asks: Any, ts: int) -> dict[str, Any]:
    t = ms(ts)
    return {
        "e": "depthUpdate", "E": t, "T": t, "s": inst.symbol, "U": seq, "u": seq, "pu": seq - 1,
        "b": F._levels(inst, bids), "a": F._levels(inst, asks),
    }  # fmt: skip


def trade(inst: Instrument, ev: E.OrderFilled) -> dict[str, Any]:
    t = ms(ev.ts)
    return {
        "e": "trade",
        "E": t,
        "T": t,
        "s": inst.symbol,
        "t": ev.trade_id,
        "p": _p(inst, ev.price),
        "q": _l(inst, ev.qty),
        "X": "LIQUIDATION" if ev.liquidation else "MARKET",
        "m": ev.taker_side == "SELL",
    }


def agg_trade(inst: Instrument, ev: E.OrderFilled) -> dict[str, Any]:
    t = ms(ev.ts)
    return {
        "e": "aggTrade",
        "E": t,
        "a": ev.trade_id,
        "s": inst.symbol,
        "p": _p(inst, ev.price),
        "q": _l(inst, ev.qty),
        "f": ev.trade_id,
        "l": ev.trade_id,
        "T": t,
        "m": ev.taker_side == "SELL",
    }


def mark_price(inst: Instrument, ev: E.MarkPriceChanged) -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": ms(ev.ts),
        "s": inst.symbol,
        "p": _p(inst, ev.mark),
        "ap": _p(inst, ev.mark),
        "P": _p(inst, ev.index),
        "i": _p(inst, ev.index),
        "r": units.rate_to_str(ev.funding_rate),
        "T": ms(ev.next_funding_ts),
    }


def book_ticker(inst: Instrument, seq: int, bid: tuple[int, int] | None, ask: tuple[int, int] | None, ts: int) -> dict[str, Any]:  # fmt: skip
    t = ms(ts)
    return {
        "e": "bookTicker",
        "u": seq,
        "E": t,
        "T": t,
        "s": inst.symbol,
        "b": _p(inst, bid[0] if bid else 0),
        "B": _l(inst, bid[1] if bid else 0),
        "a": _p(inst, ask[0] if ask else 0),
        "A": _l(inst, ask[1] if ask else 0),
    }


def kline(inst: Instrument, interval: str, k: list[int], interval_ms: int, ts: int) -> dict[str, Any]:  # fmt: skip
    close = k[0] + interval_ms - 1
    return {
        "e": "kline",
        "E": ms(ts),
        "s": inst.symbol,
        "k": {
            "t": k[0], "T": close, "s": inst.symbol, "i": interval, "f": 0, "L": 0,
            "o": _p(inst, k[1]), "c": _p(inst, k[4]), "h": _p(inst, k[2]), "l": _p(inst, k[3]),
            "v": _l(inst, k[5]), "n": k[7], "x": ms(ts) > close, "q": F._notional(inst, k[6]),
            "V": _l(inst, k[8]), "Q": F._notional(inst, k[9]), "B": "0",
        },
    }  # fmt: skip


def ticker(t24: dict[str, Any], ts: int, mini: bool = False) -> dict[str, Any]:
    """`24hrTicker` / `24hrMiniTicker` from the REST 24 h statistics."""
    out: dict[str, Any] = {
        "e": "24hrMiniTicker" if mini else "24hrTicker",
        "E": ms(ts),
        "s": t24["symbol"],
        "c": t24["lastPrice"],
        "o": t24["openPrice"],
        "h": t24["highPrice"],
        "l": t24["lowPrice"],
        "v": t24["volume"],
        "q": t24["quoteVolume"],
    }
    if not mini:
        out.update(
            p=t24["priceChange"], P=t24["priceChangePercent"], w=t24["weightedAvgPrice"],
            Q=t24["lastQty"], O=t24["openTime"], C=t24["closeTime"], F=t24["firstId"],
            L=t24["lastId"], n=t24["count"],
        )  # fmt: skip
    return out


def force_order(inst: Instrument, ev: E.PositionLiquidated) -> dict[str, Any]:
    """A liquidation as Binance's forceOrder: the closing side, the liquidation order's
    price (bankruptcy), average fill, and what the book filled of it."""
    side = "SELL" if ev.side == "LONG" else "BUY"
    filled = sum(q for _, q in ev.fills)
    quote = sum(p * q for p, q in ev.fills)
    t = ms(ev.ts)
    return {
        "e": "forceOrder",
        "E": t,
        "o": {
            "s": inst.symbol,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": _l(inst, ev.qty),
            "p": _p(inst, ev.bankruptcy_price),
            "ap": F._avg(inst, quote, filled) if filled else _p(inst, ev.bankruptcy_price),
            "X": "FILLED",
            "l": _l(inst, filled),
            "z": _l(inst, ev.qty),
            "T": t,
        },
    }


def order_update(inst: Instrument, rec: OrderRecord, x: str, ts: int, *, last: tuple[int, int] = (0, 0),
                 fee: int = 0, maker: bool = False, trade_id: int = 0, realized: int = 0,
                 status: str | None = None) -> dict[str, Any]:  # fmt: skip
    """ORDER_TRADE_UPDATE for `rec` after execution `x` (NEW, TRADE, CANCELED, EXPIRED,
    AMENDMENT, CALCULATED = liquidation or ADL)."""
    t = ms(ts)
    typ = F.TO_BINANCE_TYPE.get(rec.type, rec.type)
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": t,
        "T": t,
        "o": {
            "s": rec.symbol,
            "c": rec.client_id or f"mc-{rec.order_id}",
            "S": rec.side,
            "o": typ,
            "f": rec.time_in_force,
            "q": _l(inst, rec.qty),
            "p": _p(inst, rec.price),
            "ap": F._avg(inst, rec.quote, rec.filled),
            "sp": _p(inst, rec.stop_price),
            "x": x,
            "X": F.order_status(rec, status),
            "i": rec.order_id,
            "l": _l(inst, last[1]),
            "z": _l(inst, rec.filled),
            "L": _p(inst, last[0]),
            "N": inst.quote_asset,
            "n": _q(fee),
            "T": t,
            "t": trade_id,
            "b": "0",
            "a": "0",
            "m": maker,
            "R": rec.reduce_only,
            "wt": rec.working_type,
            "ot": typ,
            "ps": "BOTH",
            "cp": False,
            "rp": _q(realized),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def account_update(reason: str, ts: int, balances: list[dict[str, str]], positions: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    t = ms(ts)
    return {
        "e": "ACCOUNT_UPDATE",
        "E": t,
        "T": t,
        "a": {"m": reason, "B": balances, "P": positions},
    }


def position_entry(inst: Instrument, ev: E.PositionChanged, mark: int) -> dict[str, Any]:
    entry = (abs(ev.cost), abs(ev.qty) * inst.lot_value) if ev.qty else (0, 1)
    upnl = ev.qty * mark * inst.lot_value - ev.cost if ev.qty and mark else 0
    ep = units.fraction_ticks_to_str(inst, entry)
    return {
        "s": ev.symbol, "pa": _l(inst, ev.qty), "ep": ep, "bep": ep, "cr": _q(ev.realized_pnl),
        "up": _q(upnl), "mt": "isolated", "iw": _q(ev.margin), "ps": "BOTH", "ma": inst.quote_asset,
    }  # fmt: skip


def margin_call(inst: Instrument, pos: Any, cross_wallet: int, ts: int) -> dict[str, Any]:
    return {
        "e": "MARGIN_CALL",
        "E": ms(ts),
        "cw": _q(cross_wallet),
        "p": [
            {
                "s": pos.symbol,
                "ps": "BOTH",
                "pa": _l(inst, pos.qty),
                "mt": "ISOLATED",
                "iw": _q(pos.margin),
                "mp": _p(inst, pos.mark),
                "up": _q(pos.unrealized_pnl),
                "mm": _q(pos.maintenance_margin),
            }
        ],
    }
