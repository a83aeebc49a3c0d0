"""Core events -> stream messages: the public market streams and the `account` stream.

One `Formatter` per runtime (`Formatter.shared`) formats each event once for every
consumer (the WebSocket fan-out, the MQTT bridge).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from exchange import units
from exchange.core import events as E
from exchange.core.instruments import Instrument
from exchange.protocol.views import _levels
from exchange.protocol.wire import encode_plain
from exchange.runtime import Runtime

_SHARED: weakref.WeakKeyDictionary[Runtime, Formatter] = weakref.WeakKeyDictionary()


class Formatter:
    """Core events → stream messages. Public streams never carry an account id.

    `public(ev)` gives (stream, data) for market streams; `private(ev)` gives
    (account, data) pairs for the owners' `account` streams. `payload(ev)` gives
    (stream, the JSON bytes of data), formatted once per event however many consumers
    ask: the WebSocket fan-out and the MQTT bridge of one runtime share one formatter
    (`Formatter.shared`), so MQTT payloads are the WebSocket streams' `data`, byte for
    byte, and an event both send is formatted once.
    """

    _MEMO = 1 << 16  # events remembered by `payload` (consumers lag each other by less)

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self.instruments = instruments
        self._memo: dict[int, tuple[Any, tuple[str, bytes] | None]] = {}
        self._public: dict[type, Callable[[Any], tuple[str, dict[str, Any]]]] = {
            E.BookUpdated: self._book,
            E.OrderFilled: self._trade,
            E.MarkPriceChanged: self._mark,
            E.PositionLiquidated: self._liquidation,
            E.CascadeEnded: self._cascade,
            E.SymbolHalted: self._status,
            E.SymbolResumed: self._status,
        }
        self._private: dict[type, Callable[[Any], list[tuple[int, dict[str, Any]]]]] = {
            E.OrderAccepted: self._p_accepted,
            E.OrderRejected: self._p_rejected,
            E.CommandRejected: self._p_cmd_rejected,
            E.OrderFilled: self._p_fill,
            E.OrderCanceled: self._p_closed,
            E.OrderExpired: self._p_closed,
            E.OrderAmended: self._p_amended,
            E.OrderTriggered: self._p_triggered,
            E.PositionChanged: self._p_position,
            E.BalanceChanged: self._p_balance,
            E.FundsDeposited: self._p_funds,
            E.FundsWithdrawn: self._p_funds,
            E.LeverageChanged: self._p_leverage,
            E.IsolatedMarginChanged: self._p_margin,
            E.PositionLiquidated: self._p_liquidation,
            E.PositionAutoDeleveraged: self._p_adl,
            E.FundingPaid: self._p_funding,
        }

    @staticmethod
    def stream_of(ev: Any) -> str | None:
        """The public stream an event goes to, without formatting it."""
        t = type(ev)
        if t is E.BookUpdated:
            return "book." + str(ev.symbol)
        if t is E.OrderFilled:
            return "trades." + str(ev.symbol)
        if t is E.MarkPriceChanged:
            return "mark." + str(ev.symbol)
        if t is E.PositionLiquidated:
            return "liquidations." + str(ev.symbol)
        if t is E.CascadeEnded:
            return "cascades"
        if t is E.SymbolHalted or t is E.SymbolResumed:
            return "status." + str(ev.symbol)
        return None

    @classmethod
    def shared(cls, runtime: Runtime) -> Formatter:
        """The one formatter of `runtime`'s consumers (created on first use)."""
        f = _SHARED.get(runtime)
        if f is None or f.instruments is not runtime.exchange.instruments:
            f = _SHARED[runtime] = cls(runtime.exchange.instruments)
        return f

    def public(self, ev: E.Event) -> tuple[str, dict[str, Any]] | None:
        f = self._public.get(type(ev))
        return f(ev) if f is not None else None

    def payload(self, ev: E.Event) -> tuple[str, bytes] | None:
        """(stream, JSON bytes of data) of a public event, or None; memoized per event
        object (O(1); the memo keeps the newest `_MEMO` events, so ids cannot repeat)."""
        memo = self._memo
        key = id(ev)
        hit = memo.get(key)
        if hit is not None and hit[0] is ev:
            return hit[1]
        f = self._public.get(type(ev))
        out = None
        if f is not None:
            stream, data = f(ev)
            out = (stream, encode_plain(data))
        memo[key] = (ev, out)
        if len(memo) > self._MEMO:
            for k in list(itertools.islice(memo, self._MEMO // 2)):  # the older half
                del memo[k]
        return out

    def private(self, ev: E.Event) -> list[tuple[int, dict[str, Any]]]:
        f = self._private.get(type(ev))
        return f(ev) if f is not None else []

    def has_private(self, ev: E.Event) -> bool:
        return type(ev) in self._private

    # -- public

    def book_snapshot(self, symbol: str, seq: int, bids: Any, asks: Any, ts: int) -> dict[str, Any]:
        inst = self.instruments[symbol]
        return {
            "type": "snapshot",
            "symbol": symbol,
            "bookSeq": seq,
            "bids": _levels(inst, bids),
            "asks": _levels(inst, asks),
            "ts": ts,
        }

    def merged_book(self, symbol: str, first: int, last: int, bids: dict[int, int], asks: dict[int, int], ts: int, seq: int) -> dict[str, Any]:  # fmt: skip
        """One delta standing for the engine deltas `first`..`last` (newest totals)."""
        inst = self.instruments[symbol]
        return {
            "type": "delta",
            "symbol": symbol,
            "firstBookSeq": first,
            "bookSeq": last,
            "bids": _levels(inst, sorted(bids.items(), reverse=True)),
            "asks": _levels(inst, sorted(asks.items())),
            "ts": ts,
            "seq": seq,
        }

    def _book(self, ev: E.BookUpdated) -> tuple[str, dict[str, Any]]:
        inst = self.instruments[ev.symbol]
        return "book." + ev.symbol, {
            "type": "delta",
            "symbol": ev.symbol,
            "bookSeq": ev.book_seq,
            "bids": _levels(inst, ev.bids),
            "asks": _levels(inst, ev.asks),
            "ts": ev.ts,
            "seq": ev.seq,
        }

    def _trade(self, ev: E.OrderFilled) -> tuple[str, dict[str, Any]]:
        inst = self.instruments[ev.symbol]
        return "trades." + ev.symbol, {
            "type": "trade",
            "symbol": ev.symbol,
            "tradeId": ev.trade_id,
            "price": units.ticks_to_str(inst, ev.price),
            "qty": units.lots_to_str(inst, ev.qty),
            "takerSide": ev.taker_side,
            "liquidation": ev.liquidation,
            "ts": ev.ts,
            "seq": ev.seq,
        }

    def mark_data(self, symbol: str, mark: int, index: int, last: int, rate: int, nxt: int, ts: int, seq: int) -> dict[str, Any]:  # fmt: skip
        inst = self.instruments[symbol]
        return {
            "type": "mark",
            "symbol": symbol,
            "mark": units.ticks_to_str(inst, mark),
            "index": units.ticks_to_str(inst, index),
            "last": units.ticks_to_str(inst, last),
            "fundingRate": units.rate_to_str(rate),
            "nextFundingTs": nxt,
            "ts": ts,
            "seq": seq,
        }

    def _mark(self, ev: E.MarkPriceChanged) -> tuple[str, dict[str, Any]]:
        return "mark." + ev.symbol, self.mark_data(
            ev.symbol,
            ev.mark,
            ev.index,
            ev.last,
            ev.funding_rate,
            ev.next_funding_ts,
            ev.ts,
            ev.seq,
        )

    def _liq_fields(self, ev: E.PositionLiquidated) -> dict[str, Any]:
        inst = self.instruments[ev.symbol]
        return {
            "type": "liquidation",
            "symbol": ev.symbol,
            "liquidationId": ev.liquidation_id,
            "cascadeId": ev.cascade_id,
            "generation": ev.generation,
            "parentId": ev.parent_id,
            "side": ev.side,
            "qty": units.lots_to_str(inst, ev.qty),
            "triggerMark": units.ticks_to_str(inst, ev.trigger_mark),
            "liquidationPrice": units.ticks_to_str(inst, ev.liquidation_price),
            "bankruptcyPrice": units.ticks_to_str(inst, ev.bankruptcy_price),
            "fills": _levels(inst, ev.fills),
            "filledQty": units.lots_to_str(inst, ev.filled_qty),
            "fundTakeoverQty": units.lots_to_str(inst, ev.fund_takeover_qty),
            "adlQty": units.lots_to_str(inst, ev.adl_qty),
            "insuranceDelta": units.quanta_to_str(ev.insurance_delta),
            "ts": ev.ts,
            "seq": ev.seq,
        }

    def _liquidation(self, ev: E.PositionLiquidated) -> tuple[str, dict[str, Any]]:
        return "liquidations." + ev.symbol, self._liq_fields(ev)

    def _cascade(self, ev: E.CascadeEnded) -> tuple[str, dict[str, Any]]:
        inst = self.instruments[ev.symbol]
        return "cascades", {
            "type": "cascade",
            "cascadeId": ev.cascade_id,
            "symbol": ev.symbol,
            "liquidations": ev.liquidations,
            "volume": units.lots_to_str(inst, ev.volume),
            "generations": ev.generations,
            "pricePath": [units.ticks_to_str(inst, p) for p in ev.price_path],
            "insuranceBefore": units.quanta_to_str(ev.insurance_before),
            "insuranceAfter": units.quanta_to_str(ev.insurance_after),
            "adlCount": ev.adl_count,
            "truncated": ev.truncated,
            "ts": ev.ts,
            "seq": ev.seq,
        }

    def _status(self, ev: E.SymbolHalted | E.SymbolResumed) -> tuple[str, dict[str, Any]]:
        halted = type(ev) is E.SymbolHalted
        return "status." + ev.symbol, {
            "type": "status",
            "symbol": ev.symbol,
            "status": "HALTED" if halted else "TRADING",
            "ts": ev.ts,
            "seq": ev.seq,
        }

    # -- private (account stream)

    def _p_accepted(self, ev: E.OrderAccepted) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "order",
                    "event": ev.status,
                    "orderId": ev.order_id,
                    "clientOrderId": ev.client_id,
                    "symbol": ev.symbol,
                    "side": ev.side,
                    "orderType": ev.type,
                    "timeInForce": ev.time_in_force,
                    "price": units.ticks_to_str(inst, ev.price),
                    "origQty": units.lots_to_str(inst, ev.qty),
                    "stopPrice": units.ticks_to_str(inst, ev.stop_price),
                    "reduceOnly": ev.reduce_only,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_rejected(self, ev: E.OrderRejected) -> list[tuple[int, dict[str, Any]]]:
        if type(ev.account) is not int:
            return []
        return [
            (
                ev.account,
                {
                    "type": "rejected",
                    "command": ev.command,
                    "symbol": ev.symbol if type(ev.symbol) is str else None,
                    "orderId": ev.order_id if type(ev.order_id) is int else None,
                    "clientOrderId": ev.client_id if type(ev.client_id) is str else None,
                    "code": ev.code,
                    "msg": ev.msg,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_cmd_rejected(self, ev: E.CommandRejected) -> list[tuple[int, dict[str, Any]]]:
        if type(ev.account) is not int:
            return []
        return [
            (
                ev.account,
                {
                    "type": "rejected",
                    "command": ev.command,
                    "symbol": None,
                    "orderId": None,
                    "clientOrderId": None,
                    "code": ev.code,
                    "msg": ev.msg,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_fill(self, ev: E.OrderFilled) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        price = units.ticks_to_str(inst, ev.price)
        qty = units.lots_to_str(inst, ev.qty)
        maker_side = "SELL" if ev.taker_side == "BUY" else "BUY"
        out = []
        for acct, oid, side, fee, maker, rem in (
            (ev.taker_account, ev.taker_order_id, ev.taker_side, ev.taker_fee, False, ev.taker_remaining),
            (ev.maker_account, ev.maker_order_id, maker_side, ev.maker_fee, True, ev.maker_remaining),
        ):  # fmt: skip
            out.append(
                (
                    acct,
                    {
                        "type": "fill",
                        "symbol": ev.symbol,
                        "tradeId": ev.trade_id,
                        "orderId": oid,
                        "side": side,
                        "price": price,
                        "qty": qty,
                        "fee": units.quanta_to_str(fee),
                        "feeAsset": inst.quote_asset,
                        "maker": maker,
                        "remainingQty": units.lots_to_str(inst, rem),
                        "liquidation": ev.liquidation,
                        "ts": ev.ts,
                        "seq": ev.seq,
                    },
                )
            )
        return out

    def _p_closed(self, ev: E.OrderCanceled | E.OrderExpired) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "order",
                    "event": "CANCELED" if type(ev) is E.OrderCanceled else "EXPIRED",
                    "orderId": ev.order_id,
                    "clientOrderId": ev.client_id,
                    "symbol": ev.symbol,
                    "remainingQty": units.lots_to_str(inst, ev.remaining),
                    "reason": ev.reason,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_amended(self, ev: E.OrderAmended) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "order",
                    "event": "AMENDED",
                    "orderId": ev.order_id,
                    "symbol": ev.symbol,
                    "price": units.ticks_to_str(inst, ev.price),
                    "origQty": units.lots_to_str(inst, ev.qty),
                    "remainingQty": units.lots_to_str(inst, ev.remaining),
                    "priorityKept": ev.priority_kept,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_triggered(self, ev: E.OrderTriggered) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "order",
                    "event": "TRIGGERED",
                    "orderId": ev.order_id,
                    "symbol": ev.symbol,
                    "stopPrice": units.ticks_to_str(inst, ev.stop_price),
                    "triggerPrice": units.ticks_to_str(inst, ev.trigger_price),
                    "workingType": ev.working_type,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_position(self, ev: E.PositionChanged) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        entry = (abs(ev.cost), abs(ev.qty) * inst.lot_value) if ev.qty else (0, 1)
        return [
            (
                ev.account,
                {
                    "type": "position",
                    "symbol": ev.symbol,
                    "positionAmt": units.lots_to_str(inst, ev.qty),
                    "entryPrice": units.fraction_ticks_to_str(inst, entry),
                    "entryNotional": units.quanta_to_str(ev.cost),
                    "isolatedMargin": units.quanta_to_str(ev.margin),
                    "leverage": ev.leverage,
                    "liquidationPrice": units.ticks_to_str(inst, ev.liquidation_price),
                    "bankruptcyPrice": units.ticks_to_str(inst, ev.bankruptcy_price),
                    "realizedPnl": units.quanta_to_str(ev.realized_pnl),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_balance(self, ev: E.BalanceChanged) -> list[tuple[int, dict[str, Any]]]:
        return [
            (
                ev.account,
                {
                    "type": "balance",
                    "asset": ev.asset,
                    "available": units.quanta_to_str(ev.available),
                    "reserved": units.quanta_to_str(ev.reserved),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_funds(self, ev: E.FundsDeposited | E.FundsWithdrawn) -> list[tuple[int, dict[str, Any]]]:
        return [
            (
                ev.account,
                {
                    "type": "deposit" if type(ev) is E.FundsDeposited else "withdrawal",
                    "asset": ev.asset,
                    "amount": units.quanta_to_str(ev.amount),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_leverage(self, ev: E.LeverageChanged) -> list[tuple[int, dict[str, Any]]]:
        return [
            (
                ev.account,
                {
                    "type": "leverage",
                    "symbol": ev.symbol,
                    "leverage": ev.leverage,
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_margin(self, ev: E.IsolatedMarginChanged) -> list[tuple[int, dict[str, Any]]]:
        return [
            (
                ev.account,
                {
                    "type": "margin",
                    "symbol": ev.symbol,
                    "amount": units.quanta_to_str(ev.amount),
                    "isolatedMargin": units.quanta_to_str(ev.margin),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def _p_liquidation(self, ev: E.PositionLiquidated) -> list[tuple[int, dict[str, Any]]]:
        return [(ev.account, self._liq_fields(ev))]

    def _p_adl(self, ev: E.PositionAutoDeleveraged) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "adl",
                    "symbol": ev.symbol,
                    "liquidationId": ev.liquidation_id,
                    "cascadeId": ev.cascade_id,
                    "qty": units.lots_to_str(inst, ev.qty),
                    "price": units.ticks_to_str(inst, ev.price),
                    "realizedPnl": units.quanta_to_str(ev.realized_pnl),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]

    def margin_call(self, pos: Any, ts: int, seq: int) -> dict[str, Any]:
        inst = self.instruments[pos.symbol]
        return {
            "type": "marginCall",
            "symbol": pos.symbol,
            "positionAmt": units.lots_to_str(inst, pos.qty),
            "markPrice": units.ticks_to_str(inst, pos.mark),
            "marginRatio": units.rate_to_str(pos.margin_ratio),
            "maintMargin": units.quanta_to_str(pos.maintenance_margin),
            "isolatedMargin": units.quanta_to_str(pos.margin),
            "unrealizedProfit": units.quanta_to_str(pos.unrealized_pnl),
            "liquidationPrice": units.ticks_to_str(inst, pos.liquidation_price),
            "ts": ts,
            "seq": seq,
        }

    def _p_funding(self, ev: E.FundingPaid) -> list[tuple[int, dict[str, Any]]]:
        inst = self.instruments[ev.symbol]
        return [
            (
                ev.account,
                {
                    "type": "funding",
                    "symbol": ev.symbol,
                    "rate": units.rate_to_str(ev.rate),
                    "amount": units.quanta_to_str(ev.amount),
                    "positionAmt": units.lots_to_str(inst, ev.position_qty),
                    "mark": units.ticks_to_str(inst, ev.mark),
                    "ts": ev.ts,
                    "seq": ev.seq,
                },
            )
        ]
