"""The WebSocket protocol: request parsing and validation, method dispatch, formatting.

Transport-free: `Session.handle_text(text)` takes one text frame and returns the text
of its answer; `Router.route(events)` turns a batch of core events into stream
messages and hands them to the sessions subscribed to them. `exchange.server` is the
thin adapter that moves frames between sockets and these objects.

Requests ``{"id": 7, "method": "order.place", "params": {...}}`` get
``{"id": 7, "status": 200, "result": {...}}`` or
``{"id": 7, "status": 400, "error": {"code": -4014, "msg": "..."}}``.
Stream messages are ``{"stream": "mark.BTCUSDT", "data": {...}}``. Decimals travel as
strings; times are integer nanoseconds of engine time (``ts``) except where a name says
milliseconds (``serverTime``, ``timestamp``). See docs/protocol.md.

Validation happens here, before anything reaches the core: the envelope, each method's
parameters (unknown → -1104, missing → -1102, wrong type → -1130), decimals (see
`exchange.units`), authorization (-2015). Semantic checks (band, margin, ...) are the
core's, which answers with a rejection event mapped to the same error shape.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import orjson

from exchange import units
from exchange.auth import AdminAuth, AuthError, KeyStore
from exchange.config import InstrumentFileError, instrument_from_dict
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import MESSAGES, Code
from exchange.core.instruments import Instrument
from exchange.core.ladder import DECADES, MAX_BUCKETS
from exchange.core.numbers import RATE_ONE
from exchange.errors import StoreUnavailable
from exchange.runtime import Runtime
from exchange.sessions import MAX_LABEL, MAX_TTL_S, SessionRecord, SessionTokens
from exchange.units import UnitError

PROTOCOL_VERSION = "1.0"
MAX_ID_LEN = 64
MAX_STREAMS = 100
MAX_INT = 2**63 - 1
CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}\Z")

_STATUS_FOR = {
    Code.INVALID_KEY_OR_PERMISSION: 401,
    Code.BAD_SIGNATURE: 401,
    Code.TIMESTAMP_OUTSIDE_WINDOW: 401,
    Code.TOO_MANY_REQUESTS: 429,
    Code.STORE_UNAVAILABLE: 503,
    Code.UNKNOWN: 500,
}


class ProtocolError(Exception):
    """An error answer: wire code, message and HTTP-like status."""

    def __init__(self, code: int, msg: str | None = None, status: int | None = None) -> None:
        c = Code(code) if code in Code._value2member_map_ else None
        if msg is None:
            msg = MESSAGES.get(c, "Error.") if c is not None else "Error."
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.status = status if status is not None else _STATUS_FOR.get(c, 400)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_int(text: str) -> Any:
    # Huge integers stay text, so they fail type checks (-1130) instead of costing CPU.
    return int(text) if len(text) <= 40 else units.JsonNumber(text)


_decoder = json.JSONDecoder(
    parse_float=units.JsonNumber, parse_int=_parse_int, parse_constant=_reject_constant
)
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _has_float(obj: Any) -> bool:
    t = type(obj)
    if t is float:
        return True
    if t is dict:
        return any(_has_float(v) for v in obj.values())
    if t is list:
        return any(_has_float(v) for v in obj)
    return False


def loads(text: str) -> Any:
    """Strict JSON: NaN/Infinity rejected, floats kept as exact text (`JsonNumber`).

    orjson parses first (~4× faster than `json`); what it refuses, and anything holding a
    float (orjson makes floats of decimals and of integers past 64 bits), is parsed again
    by the strict `json` decoder, so the result and every error are exactly that decoder's.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _decoder.decode(text)
    if _has_float(obj):
        return _decoder.decode(text)
    return obj


def dumps(obj: Any) -> str:
    return _encode(obj)


def encode_plain(obj: Any) -> bytes:
    """`_encode(obj).encode()` for data built only from str, int (and bool, IntEnum), None,
    lists and str-keyed dicts — the formatters' output: the same bytes, ~7× faster
    (orjson). Never use it for floats (their text differs) or anything else; on any error
    (an integer past 64 bits, a lone surrogate) it falls back to `_encode`.
    """
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encode(obj).encode()


def _encode_plain(obj: Any) -> str:
    """`encode_plain` as text (answers and stream messages are text frames)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return _encode(obj)


def _id_text(req_id: Any) -> str:
    """The JSON text of a request id (None, int or str), exactly as `_encode` writes it."""
    if req_id is None:
        return "null"
    if type(req_id) is int:
        return int.__repr__(req_id)
    return _encode(req_id)


def _ok_text(req_id: Any, result_text: str) -> str:
    return '{"id":' + _id_text(req_id) + ',"status":200,"result":' + result_text + "}"


def _stream_text(stream: str, data: dict[str, Any]) -> str:
    """`_encode({"stream": stream, "data": data})` for formatter data (see `_encode_plain`)."""
    return _encode_plain({"stream": stream, "data": data})


def stream_message(stream: str, payload: bytes) -> str:
    """The text of a stream message whose `data` is already encoded (`Formatter.payload`)."""
    return '{"stream":' + _encode(stream) + ',"data":' + payload.decode() + "}"


def error_text(req_id: Any, code: int, msg: str, status: int = 400) -> str:
    return _encode({"id": req_id, "status": status, "error": {"code": code, "msg": msg}})


# ------------------------------------------------------------------------ parameters

Validator = Callable[[Any, str], Any]


def _type_error(name: str, what: str) -> ProtocolError:
    return ProtocolError(Code.INVALID_PARAMETER, f"Parameter '{name}' must be {what}.")


def v_str(maxlen: int = 32) -> Validator:
    def check(v: Any, name: str) -> str:
        if type(v) is not str or not 0 < len(v) <= maxlen:
            raise _type_error(name, f"a string of 1..{maxlen} characters")
        return v

    return check


def v_int(lo: int = 0, hi: int = MAX_INT) -> Validator:
    def check(v: Any, name: str) -> int:
        if type(v) is not int or not lo <= v <= hi:
            raise _type_error(name, f"an integer in [{lo}, {hi}]")
        return v

    return check


def v_bool(v: Any, name: str) -> bool:
    if v is True or v == "true":
        return True
    if v is False or v == "false":
        return False
    raise _type_error(name, "a boolean")


def v_decimal(v: Any, name: str) -> Any:
    # type and syntax now (so errors are uniform); conversion needs the instrument
    units.split_decimal(v, name)
    return v


def v_client_id(v: Any, name: str) -> str:
    if type(v) is not str or not CLIENT_ID_RE.match(v):
        raise ProtocolError(Code.CLIENT_ID_INVALID)
    return v


def v_streams(v: Any, name: str) -> list[str]:
    if type(v) is not list or not 0 < len(v) <= MAX_STREAMS:
        raise _type_error(name, f"a list of 1..{MAX_STREAMS} stream names")
    for s in v:
        if type(s) is not str or not 0 < len(s) <= 64:
            raise _type_error(name, "a list of stream names")
    return v


def v_object(v: Any, name: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise _type_error(name, "an object")
    return v


def v_symbol(v: Any, name: str) -> str:
    if type(v) is not str or not 0 < len(v) <= 32:
        raise _type_error(name, "a symbol string")
    return v


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Callable[[Session, dict[str, Any]], Awaitable[Any]]
    access: str  # public | user | admin
    required: Mapping[str, Validator]
    optional: Mapping[str, Validator] = field(default_factory=dict)
    # derived once (validate_params runs on every request)
    names: frozenset[str] = field(init=False, repr=False, compare=False)
    required_items: tuple[tuple[str, Validator], ...] = field(init=False, repr=False, compare=False)
    optional_items: tuple[tuple[str, Validator], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "names", frozenset(self.required) | frozenset(self.optional))
        set_(self, "required_items", tuple(self.required.items()))
        set_(self, "optional_items", tuple(self.optional.items()))


METHODS: dict[str, Method] = {}

# Methods whose results are built only by the formatters below from str, int, bool, None
# and lists/dicts of those (never floats): their answers are encoded by `_encode_plain`.
# (Their handlers, set at the end of the module, so a replaced method is not included.)
PLAIN_RESULTS = (
    "order.place",
    "order.cancel",
    "order.modify",
    "order.status",
    "order.cancelAll",
    "openOrders.status",
    "account.status",
    "depth",
    "market.liquidationLadder",
)
_PLAIN_HANDLERS: frozenset[Any] = frozenset()


def method(
    name: str,
    access: str,
    required: Mapping[str, Validator] | None = None,
    optional: Mapping[str, Validator] | None = None,
) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        METHODS[name] = Method(name, fn, access, required or {}, optional or {})
        return fn

    return deco


def validate_params(m: Method, params: dict[str, Any]) -> dict[str, Any]:
    """Unknown names first (in the request's order), then the required parameters, then
    the optional ones (each in declaration order); the first failure is the answer."""
    if not m.names.issuperset(params):
        for k in params:
            if k not in m.names:
                raise ProtocolError(Code.UNKNOWN_PARAM, f"Unknown parameter '{k[:64]}'.")
    out: dict[str, Any] = {}
    get = params.get
    for k, check in m.required_items:
        v = get(k)
        if v is None or v == "":
            raise ProtocolError(
                Code.MANDATORY_PARAM_MISSING, f"Mandatory parameter '{k}' was not sent."
            )
        out[k] = check(v, k)
    left = len(params) - len(out)  # optional names sent (None values included)
    if left:
        for k, check in m.optional_items:
            v = get(k)
            if v is not None:
                out[k] = check(v, k)
                left -= 1
                if not left:
                    break
    return out


# ------------------------------------------------------------------------ formatting


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


# ------------------------------------------------------------------------ the API


class Api:
    """What every session shares: the runtime, keys, admin token, router, counters."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        keys: KeyStore | None = None,
        admin: AdminAuth | None = None,
        sessions: SessionTokens | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.keys = keys if keys is not None else KeyStore()
        self.admin = admin if admin is not None else AdminAuth()
        self.sessions = sessions if sessions is not None else SessionTokens()
        self.sessions.on_revoke.append(self._tokens_revoked)
        self.formatter = Formatter.shared(runtime)
        self.router = Router(self)
        self.extra_stats = stats
        accounts = getattr(runtime.exchange, "accounts", None)
        self.next_account = max(accounts) + 1 if accounts else 1
        self.requests = 0
        self.errors = 0

    @property
    def exchange(self) -> Any:
        return self.runtime.exchange

    def instrument(self, symbol: str) -> Instrument:
        inst = self.runtime.exchange.instruments.get(symbol)
        if inst is None:
            raise ProtocolError(Code.BAD_SYMBOL)
        return inst

    def _tokens_revoked(self, records: list[SessionRecord]) -> None:
        # connections on a revoked token stop receiving their account stream at once;
        # any other request they make finds the token gone (`Session.handle_text`)
        for rec in records:
            for s in list(self.router.accounts.get(rec.account, ())):
                if s.token_hash == rec.token_hash:
                    s.end_logon()


MARGIN_CALL_RATIO = 80 * RATE_ONE // 100  # a margin call at 80 % of the way to liquidation
MARGIN_CALL_REARM = 70 * RATE_ONE // 100  # and again only after falling back under 70 %


class Router:
    """Event batches → stream messages → subscribed sessions (formatted once per stream).

    Margin calls are the edge's own: when a mark or position change takes a position of
    an account with a subscribed `account` stream to a margin ratio (maintenance margin
    / (margin + unrealized PnL)) of 80 % or more, that stream gets one `marginCall`
    message; it re-arms below 70 %. Cost: one position read per subscribed account
    holding the symbol, per mark change — nothing when nobody listens.
    """

    def __init__(self, api: Api) -> None:
        self.api = api
        self.formatter = api.formatter
        self.topics: dict[str, set[Session]] = {}
        self.accounts: dict[int, set[Session]] = {}
        self.messages = 0
        self.margin_calls = 0
        self._called: set[tuple[int, str]] = set()

    def add(self, session: Session, stream: str) -> None:
        self.topics.setdefault(stream, set()).add(session)

    def remove(self, session: Session, stream: str) -> None:
        s = self.topics.get(stream)
        if s is not None:
            s.discard(session)
            if not s:
                del self.topics[stream]

    def add_account(self, session: Session, account: int) -> None:
        self.accounts.setdefault(account, set()).add(session)

    def remove_account(self, session: Session, account: int) -> None:
        s = self.accounts.get(account)
        if s is not None:
            s.discard(session)
            if not s:
                del self.accounts[account]

    def drop(self, session: Session) -> None:
        for stream in list(session.streams):
            self.remove(session, stream)
        if session.account is not None:
            self.remove_account(session, session.account)

    def route(self, batch: list[E.Event]) -> None:
        topics, accounts, fmt = self.topics, self.accounts, self.formatter
        for ev in batch:
            if topics:
                stream = fmt.stream_of(ev)
                if stream is not None and stream in topics:
                    pub = fmt.payload(ev)
                    if pub is not None:
                        text = stream_message(stream, pub[1])
                        seq = ev.book_seq if type(ev) is E.BookUpdated else 0
                        for s in list(topics.get(stream, ())):
                            s.deliver(stream, text, seq)
                            self.messages += 1
            if accounts and fmt.has_private(ev):
                for acct, data in fmt.private(ev):
                    targets = accounts.get(acct)
                    if targets:
                        text = _stream_text("account", data)
                        for s in list(targets):
                            s.deliver("account", text, 0)
                            self.messages += 1
                t = type(ev)
                if t is E.PositionChanged and ev.account in accounts:  # type: ignore[attr-defined]
                    self._margin_check(ev.symbol, ev.ts, ev.seq, [ev.account])  # type: ignore[attr-defined]
            elif accounts and type(ev) is E.MarkPriceChanged:
                self._margin_check(ev.symbol, ev.ts, ev.seq, list(accounts))  # type: ignore[attr-defined]

    def _margin_check(self, symbol: str, ts: int, seq: int, accounts: list[int]) -> None:
        ex = self.api.exchange
        for acct in accounts:
            view = ex.account_view(acct)
            pos = None
            if view is not None:
                pos = next((p for p in view.positions if p.symbol == symbol), None)
            key = (acct, symbol)
            if pos is None or pos.margin_ratio < MARGIN_CALL_REARM:
                self._called.discard(key)
                continue
            if pos.margin_ratio < MARGIN_CALL_RATIO or key in self._called:
                continue
            self._called.add(key)
            self.margin_calls += 1
            data = self.formatter.margin_call(pos, ts, seq)
            text = _stream_text("account", data)
            for s in list(self.accounts.get(acct, ())):
                s.deliver("account", text, 0)
                self.messages += 1


# Methods a connection may pipeline (see `Session.pipeline`): nothing before their
# command is queued reads state another command changes, and their answer comes from
# the command's own events or from a state no later command can change (a canceled
# order; `order.cancel` only by `orderId`, as a client order id can be reused later).
# One exception, by design: an `order.place` the core ignores as a resubmission answers
# with the earlier order as it is when the answer is written.
PIPELINED = frozenset({"order.place", "order.cancel"})


class Session:
    """One connection's protocol state: who it is and what it listens to.

    `sink(text)` is how stream messages leave (the server's bounded outbox).
    At most `MAX_IN_ENGINE` of one session's commands wait in the engine's queue at
    once (pipelined ones included: until one gets a slot the connection reads no further);
    more wait here, in order, so a connection that pipelines a burst is interleaved with
    the others instead of filling the queue ahead of them.
    """

    MAX_IN_ENGINE = 8

    def __init__(self, api: Api, sink: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.engine_slots = asyncio.Semaphore(self.MAX_IN_ENGINE)
        self.sink = sink
        self.account: int | None = None
        self.token_hash: str | None = None  # set when logged on with a session token
        self.admin = False
        self.streams: set[str] = set()
        self.book_floor: dict[str, int] = {}
        self.closed = False
        self._inflight: set[asyncio.Task[str]] = set()  # pipelined requests not yet answered
        self._ready: asyncio.Future[None] | None = None  # set by `submit` (see `pipeline`)

    # -- streams

    def deliver(self, stream: str, text: str, book_seq: int = 0) -> None:
        if self.closed or self.sink is None:
            return
        if book_seq and book_seq <= self.book_floor.get(stream, 0):
            return  # already in the snapshot this session got
        self.sink(text)

    def close(self) -> None:
        self.closed = True
        self.api.router.drop(self)
        self.streams.clear()

    def end_logon(self) -> None:
        """Back to no account (the admin flag stays): logout, or a token that died."""
        if self.account is not None:
            self.api.router.remove_account(self, self.account)
        self.streams.discard("account")
        self.account = None
        self.token_hash = None

    # -- requests

    def pipeline(self, text: str | bytes) -> tuple[asyncio.Task[str], asyncio.Future[None]]:
        """Start one request without waiting for its answer: (its answer, ready).

        Requests of one connection take effect in the order they are started, and each
        answer is what `handle_text` would have given had they run one at a time. The
        caller starts the next request once `ready` is done: when this one has finished,
        or when it is an `order.place` or an `order.cancel` by `orderId` (see
        `PIPELINED`) and its command is queued in the runtime — so a connection's
        commands can share one durable commit instead of waiting for one each. Any other
        request first waits until every earlier one is answered, and is ready only when
        it is answered itself.
        """
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        earlier = list(self._inflight)
        task = loop.create_task(self.handle_text(text, ready=ready, earlier=earlier))
        self._inflight.add(task)

        def done(t: asyncio.Task[str]) -> None:
            self._inflight.discard(t)
            if not ready.done():
                ready.set_result(None)

        task.add_done_callback(done)
        return task, ready

    async def handle_text(
        self,
        text: str | bytes,
        *,
        ready: asyncio.Future[None] | None = None,
        earlier: list[asyncio.Task[str]] | None = None,
    ) -> str:
        """One frame in, the text of its answer out. Never raises.

        `ready` and `earlier` are `pipeline`'s: without them the request simply runs.
        """
        req_id: Any = None
        api = self.api
        api.requests += 1
        try:
            if not isinstance(text, str):
                raise ProtocolError(
                    Code.ILLEGAL_CHARS, "Binary frames are not supported; send JSON text."
                )
            try:
                req = loads(text)
            except (ValueError, RecursionError):
                raise ProtocolError(Code.ILLEGAL_CHARS, "Malformed JSON.") from None
            if type(req) is not dict:
                raise ProtocolError(Code.ILLEGAL_CHARS, "A request must be a JSON object.")
            rid = req.get("id")
            if (
                rid is None
                or (type(rid) is int and -MAX_INT <= rid <= MAX_INT)
                or (type(rid) is str and len(rid) <= MAX_ID_LEN)
            ):
                req_id = rid
            else:
                raise ProtocolError(
                    Code.INVALID_PARAMETER,
                    f"'id' must be an integer, a string of at most {MAX_ID_LEN} characters or null.",
                )
            for k in req:
                if k not in ("id", "method", "params"):
                    raise ProtocolError(Code.UNKNOWN_PARAM, f"Unknown field '{str(k)[:64]}'.")
            name = req.get("method")
            if name is None:
                raise ProtocolError(
                    Code.MANDATORY_PARAM_MISSING, "Mandatory field 'method' was not sent."
                )
            if type(name) is not str:
                raise ProtocolError(Code.INVALID_PARAMETER, "'method' must be a string.")
            m = METHODS.get(name)
            if m is None:
                raise ProtocolError(Code.INVALID_PARAMETER, f"Unknown method '{name[:64]}'.")
            params = req.get("params", {})
            if params is None:
                params = {}
            if type(params) is not dict:
                raise ProtocolError(Code.INVALID_PARAMETER, "'params' must be an object.")
            if m.access == "user":
                if self.token_hash is not None and api.sessions.valid_hash(self.token_hash) is None:
                    self.end_logon()
                    raise ProtocolError(
                        Code.INVALID_KEY_OR_PERMISSION,
                        "The session token expired or was revoked: log on again.",
                    )
                if self.account is None:
                    raise ProtocolError(
                        Code.INVALID_KEY_OR_PERMISSION, "Not logged on: call session.logon first."
                    )
            if m.access == "admin" and not self.admin:
                raise ProtocolError(Code.INVALID_KEY_OR_PERMISSION)
            p = validate_params(m, params)
            if ready is not None:
                if name in PIPELINED and (name != "order.cancel" or "orderId" in p):
                    # no await until the handler's `submit`, which hands `ready` on
                    self._ready = ready
                elif earlier:
                    await asyncio.wait(earlier)
            result = await m.handler(self, p)
            if m.handler in _PLAIN_HANDLERS:
                return _ok_text(req_id, _encode_plain(result))
            return _encode({"id": req_id, "status": 200, "result": result})
        except ProtocolError as e:
            api.errors += 1
            return error_text(req_id, e.code, e.msg, e.status)
        except UnitError as e:
            api.errors += 1
            return error_text(req_id, int(e.code), e.msg, 400)
        except StoreUnavailable:
            api.errors += 1
            return error_text(
                req_id, int(Code.STORE_UNAVAILABLE), MESSAGES[Code.STORE_UNAVAILABLE], 503
            )
        except Exception:  # a bug: answer, log, keep the connection
            import logging

            logging.getLogger("margincall.protocol").exception("request failed: %.200r", text)
            api.errors += 1
            return error_text(req_id, int(Code.UNKNOWN), MESSAGES[Code.UNKNOWN], 500)

    async def submit(self, cmd: C.Command) -> list[E.Event]:
        # `ready` is taken before any await: it belongs to the request that set it
        ready = self._ready
        self._ready = None
        # a pipelined request counts toward the bound too: while it waits for a slot its
        # `ready` stays unset, so the connection reads no further (back-pressure)
        async with self.engine_slots:
            fut = self.api.runtime.submit_future(cmd, owned=True)
            if ready is not None and not ready.done():
                ready.set_result(None)
            events = await fut
        for ev in events:
            t = type(ev)
            if t is E.OrderRejected or t is E.CommandRejected:
                raise ProtocolError(ev.code, ev.msg)  # type: ignore[attr-defined]
        return events


def _opt_int(p: dict[str, Any], k: str) -> Any:
    return p.get(k)


# ------------------------------------------------------------------------ methods

SYMBOL = {"symbol": v_symbol}
ORDER_REF = {"orderId": v_int(0), "origClientOrderId": v_client_id}


def _require_one(p: dict[str, Any]) -> None:
    if "orderId" not in p and "origClientOrderId" not in p:
        raise ProtocolError(
            Code.MANDATORY_PARAM_MISSING, "Either 'orderId' or 'origClientOrderId' must be sent."
        )


@method(
    "session.logon",
    "public",
    optional={
        "apiKey": v_str(128),
        "timestamp": v_int(0),
        "signature": v_str(128),
        "recvWindow": v_int(1, 60_000),
        "adminToken": v_str(256),
        "token": v_str(128),
    },
)
async def _logon(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    if "adminToken" in p:
        if len(p) != 1:
            raise ProtocolError(Code.UNKNOWN_PARAM, "Send either adminToken or apiKey, not both.")
        if not api.admin.check(p["adminToken"]):
            raise ProtocolError(Code.INVALID_KEY_OR_PERMISSION)
        s.admin = True
        return {"admin": True, "account": s.account, "serverTime": int(time.time() * 1000)}
    if "token" in p:
        if len(p) != 1:
            raise ProtocolError(Code.UNKNOWN_PARAM, "Send either token or apiKey, not both.")
        rec = api.sessions.record(p["token"])
        if rec is None:
            raise ProtocolError(
                Code.INVALID_KEY_OR_PERMISSION, "Unknown, expired or revoked session token."
            )
        _become(s, rec.account)
        s.token_hash = rec.token_hash
        return {
            "account": rec.account,
            "admin": s.admin,
            "serverTime": int(time.time() * 1000),
            "expiresAt": rec.expires_ms,
            "label": rec.label,
        }
    try:
        account = api.keys.verify(p)
    except AuthError as e:
        raise ProtocolError(e.code, e.msg) from None
    _become(s, account)
    return {"account": account, "admin": s.admin, "serverTime": int(time.time() * 1000)}


def _become(s: Session, account: int) -> None:
    if s.account is not None and s.account != account:
        s.api.router.remove_account(s, s.account)
        s.streams.discard("account")
    s.account = account
    s.token_hash = None


def v_label(v: Any, name: str) -> str:
    # any printable text (a nickname): the app shows it with textContent, never as HTML
    if type(v) is not str or len(v) > MAX_LABEL or not v.isprintable():
        raise _type_error(name, f"printable text of at most {MAX_LABEL} characters")
    return v


_TOKEN_OPTS = {"ttl": v_int(60, int(MAX_TTL_S)), "label": v_label}


async def _new_token(s: Session, account: int, p: dict[str, Any]) -> dict[str, Any]:
    token, rec = await s.api.sessions.issue_saved(
        account, ttl_s=p.get("ttl"), label=p.get("label", "")
    )  # durable before it is handed out
    return {"token": token, "account": account, "expiresAt": rec.expires_ms, "label": rec.label}


@method("session.create", "user", optional=_TOKEN_OPTS)
async def _session_create(s: Session, p: dict[str, Any]) -> Any:
    """A session token for this connection's own account (e.g. for a browser)."""
    if s.token_hash is not None:
        # a token cannot mint tokens: a stolen one then dies with its expiry
        raise ProtocolError(
            Code.INVALID_KEY_OR_PERMISSION, "session.create needs an API-key logon."
        )
    return await _new_token(s, s.account, p)  # type: ignore[arg-type]


@method("session.revoke", "public", optional={"token": v_str(128)})
async def _session_revoke(s: Session, p: dict[str, Any]) -> Any:
    """Revoke the given token, or (without one) the token this connection logged on with."""
    sessions = s.api.sessions
    if "token" in p:
        return {"revoked": 1 if sessions.revoke(p["token"]) else 0}
    if s.token_hash is None:
        raise ProtocolError(
            Code.MANDATORY_PARAM_MISSING, "Send 'token', or log on with a session token first."
        )
    h = s.token_hash
    s.end_logon()
    return {"revoked": 1 if sessions.revoke_hash(h) else 0}


@method("session.status", "public")
async def _session_status(s: Session, p: dict[str, Any]) -> Any:
    return {"account": s.account, "admin": s.admin, "streams": sorted(s.streams)}


@method("session.logout", "public")
async def _logout(s: Session, p: dict[str, Any]) -> Any:
    s.end_logon()
    s.admin = False
    return {"account": None, "admin": False}


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


def account_json(api: Api, account: int) -> dict[str, Any]:
    ex = api.exchange
    view = ex.account_view(account)
    if view is None:
        raise ProtocolError(Code.UNKNOWN_ACCOUNT)
    return {
        "account": account,
        "balances": [
            {
                "asset": b.asset,
                "available": units.quanta_to_str(b.available),
                "reserved": units.quanta_to_str(b.reserved),
                "total": units.quanta_to_str(b.available + b.reserved),
            }
            for b in view.balances
        ],
        "positions": [position_json(ex.instruments[pv.symbol], pv) for pv in view.positions],
    }


@method("account.status", "user")
async def _account_status(s: Session, p: dict[str, Any]) -> Any:
    return account_json(s.api, s.account)  # type: ignore[arg-type]


@method(
    "position.margin",
    "user",
    required={"symbol": v_symbol, "amount": v_decimal, "type": v_int(1, 2)},
)
async def _position_margin(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    amount = units.money_to_quanta(p["amount"])
    events = await s.submit(
        C.AdjustIsolatedMargin(
            account=s.account,  # type: ignore[arg-type]
            symbol=inst.symbol,
            amount=amount if p["type"] == 1 else -amount,
        )
    )
    margin = next((ev.margin for ev in events if type(ev) is E.IsolatedMarginChanged), None)
    return {
        "symbol": inst.symbol,
        "amount": units.quanta_to_str(amount),
        "type": p["type"],
        "isolatedMargin": units.quanta_to_str(margin) if margin is not None else None,
    }


@method("leverage.set", "user", required={"symbol": v_symbol, "leverage": v_int(1, 1000)})
async def _leverage_set(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(
        C.SetLeverage(account=s.account, symbol=inst.symbol, leverage=p["leverage"])  # type: ignore[arg-type]
    )
    return {"symbol": inst.symbol, "leverage": p["leverage"]}


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


_STREAM_KINDS = ("book", "trades", "mark", "liquidations", "status")


def check_stream(s: Session, name: str) -> None:
    if name == "cascades":
        return
    if name == "account":
        if s.account is None:
            raise ProtocolError(
                Code.INVALID_KEY_OR_PERMISSION, "The account stream needs session.logon first."
            )
        return
    kind, _, sym = name.partition(".")
    if kind not in _STREAM_KINDS or not sym:
        raise ProtocolError(Code.INVALID_PARAMETER, f"Unknown stream '{name}'.")
    if sym not in s.api.exchange.instruments:
        raise ProtocolError(Code.BAD_SYMBOL, f"Unknown symbol in stream '{name}'.")


@method("subscribe", "public", required={"streams": v_streams})
async def _subscribe(s: Session, p: dict[str, Any]) -> Any:
    names = list(dict.fromkeys(p["streams"]))
    for name in names:
        check_stream(s, name)
    if len(s.streams | set(names)) > MAX_STREAMS:
        raise ProtocolError(
            Code.INVALID_PARAMETER, f"At most {MAX_STREAMS} streams per connection."
        )
    api = s.api
    ex = api.exchange
    for name in names:
        if name in s.streams:
            continue
        s.streams.add(name)
        if name == "account":
            api.router.add_account(s, s.account)  # type: ignore[arg-type]
            continue
        api.router.add(s, name)
        kind, _, sym = name.partition(".")
        if kind == "book":
            seq = ex.book_seq(sym)
            bids, asks = ex.depth(sym)
            s.book_floor[name] = seq
            s.deliver(
                name,
                _encode(
                    {
                        "stream": name,
                        "data": api.formatter.book_snapshot(sym, seq, bids, asks, ex.now),
                    }
                ),
            )
        elif kind == "mark":
            mv = ex.market_view(sym)
            if mv.mark:
                data = api.formatter.mark_data(sym, mv.mark, mv.index, mv.last, mv.funding_rate, mv.next_funding_ts, ex.now, 0)  # fmt: skip
                s.deliver(name, _encode({"stream": name, "data": data}))
    return {"streams": sorted(s.streams)}


@method("unsubscribe", "public", required={"streams": v_streams})
async def _unsubscribe(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    for name in p["streams"]:
        if name not in s.streams:
            continue
        s.streams.discard(name)
        s.book_floor.pop(name, None)
        if name == "account":
            if s.account is not None:
                api.router.remove_account(s, s.account)
        else:
            api.router.remove(s, name)
    return {"streams": sorted(s.streams)}


# -- admin


@method(
    "admin.createAccount",
    "admin",
    optional={"deposit": v_decimal, "asset": v_str(16), "account": v_int(1, 2**31)},
)
async def _admin_create(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    if "account" in p:
        account = p["account"]
        api.next_account = max(api.next_account, account + 1)
    else:
        account = api.next_account
        api.next_account += 1
    amount = units.money_to_quanta(p["deposit"], "deposit") if "deposit" in p else 0
    await s.submit(C.CreateAccount(account=account))
    if amount:
        await s.submit(C.Deposit(account=account, asset=p.get("asset", "USDT"), amount=amount))
    key, secret = await api.keys.issue_saved(account)  # durable before it is handed out
    return {"account": account, "apiKey": key, "secret": secret}


@method("admin.createSession", "admin", required={"account": v_int(1, 2**31)}, optional=_TOKEN_OPTS)
async def _admin_create_session(s: Session, p: dict[str, Any]) -> Any:
    if s.api.exchange.account_view(p["account"]) is None:
        raise ProtocolError(Code.UNKNOWN_ACCOUNT)
    return await _new_token(s, p["account"], p)


@method("admin.revokeSessions", "admin", required={"account": v_int(1, 2**31)})
async def _admin_revoke_sessions(s: Session, p: dict[str, Any]) -> Any:
    return {"account": p["account"], "revoked": s.api.sessions.revoke_account(p["account"])}


_FUNDS = {"account": v_int(1, 2**31), "asset": v_str(16), "amount": v_decimal}


@method("admin.deposit", "admin", required=_FUNDS)
async def _admin_deposit(s: Session, p: dict[str, Any]) -> Any:
    await s.submit(
        C.Deposit(account=p["account"], asset=p["asset"], amount=units.money_to_quanta(p["amount"]))
    )
    return account_json(s.api, p["account"])


@method("admin.withdraw", "admin", required=_FUNDS)
async def _admin_withdraw(s: Session, p: dict[str, Any]) -> Any:
    await s.submit(
        C.Withdraw(
            account=p["account"], asset=p["asset"], amount=units.money_to_quanta(p["amount"])
        )
    )
    return account_json(s.api, p["account"])


def _market_result(s: Session, symbol: str) -> dict[str, Any]:
    mv = s.api.exchange.market_view(symbol)
    data = s.api.formatter.mark_data(symbol, mv.mark, mv.index, mv.last, mv.funding_rate, mv.next_funding_ts, s.api.exchange.now, 0)  # fmt: skip
    del data["seq"]
    data["type"] = "market"
    data["status"] = "HALTED" if mv.halted else "TRADING"
    return data


@method("admin.setIndex", "admin", required={"symbol": v_symbol, "price": v_decimal})
async def _admin_set_index(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    ticks = units.price_to_ticks_rounded(inst, p["price"])
    await s.submit(C.SetIndexPrice(symbol=inst.symbol, price=ticks))
    return _market_result(s, inst.symbol)


@method("admin.shockIndex", "admin", required={"symbol": v_symbol, "change": v_decimal})
async def _admin_shock(s: Session, p: dict[str, Any]) -> Any:
    """Move the index by a relative change, e.g. "-0.10" for a 10 % crash."""
    inst = s.api.instrument(p["symbol"])
    change = units.rate_from_text(p["change"], "change")
    if not -RATE_ONE < change <= 10 * RATE_ONE:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'change' must be in (-1, 10].")
    index = s.api.exchange.market_view(inst.symbol).index
    if index <= 0:
        raise ProtocolError(Code.INVALID_PARAMETER, "The symbol has no index price to shock yet.")
    ticks = max(1, round(Fraction(index * (RATE_ONE + change), RATE_ONE)))
    await s.submit(C.SetIndexPrice(symbol=inst.symbol, price=ticks))
    return _market_result(s, inst.symbol)


@method("admin.setFundingRate", "admin", required={"symbol": v_symbol, "rate": v_decimal})
async def _admin_set_funding_rate(s: Session, p: dict[str, Any]) -> Any:
    """Impose the funding rate of the next funding time (journaled like every command)."""
    inst = s.api.instrument(p["symbol"])
    rate = units.rate_from_text(p["rate"], "rate")
    await s.submit(C.SetFundingRate(symbol=inst.symbol, rate=rate))
    return _market_result(s, inst.symbol)


@method("admin.halt", "admin", required=SYMBOL)
async def _admin_halt(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(C.HaltSymbol(symbol=inst.symbol))
    return _market_result(s, inst.symbol)


@method("admin.resume", "admin", required=SYMBOL)
async def _admin_resume(s: Session, p: dict[str, Any]) -> Any:
    inst = s.api.instrument(p["symbol"])
    await s.submit(C.ResumeSymbol(symbol=inst.symbol))
    return _market_result(s, inst.symbol)


@method("admin.addInstrument", "admin", required={"instrument": v_object})
async def _admin_add_instrument(s: Session, p: dict[str, Any]) -> Any:
    raw = _plain(p["instrument"])
    try:
        inst = instrument_from_dict(raw, where="instrument")
    except InstrumentFileError as e:
        raise ProtocolError(Code.INVALID_PARAMETER, str(e)[:300]) from None
    await s.submit(C.AddInstrument(instrument=inst))
    return instrument_json(inst)


def _plain(v: Any, depth: int = 0) -> Any:
    """JSON numbers as their exact text, so the instrument parser reads them as decimals."""
    if depth > 4:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'instrument' is nested too deeply.")
    if isinstance(v, dict):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x, depth + 1) for x in v]
    if isinstance(v, units.JsonNumber):
        return str(v)
    return v


@method("admin.advanceClock", "admin", optional={"to": v_int(0), "by": v_int(0)})
async def _admin_advance(s: Session, p: dict[str, Any]) -> Any:
    ex = s.api.exchange
    if ("to" in p) == ("by" in p):
        raise ProtocolError(Code.MANDATORY_PARAM_MISSING, "Send exactly one of 'to' or 'by' (ns).")
    target = p["to"] if "to" in p else ex.now + p["by"]
    if target < ex.now:
        raise ProtocolError(Code.INVALID_PARAMETER, "The clock never goes backwards.")
    if target > 2**62:
        raise ProtocolError(Code.INVALID_PARAMETER, "Parameter 'to' is too far in the future.")
    if target > ex.now:
        await s.submit(C.AdvanceClock(ts=target))
    return {"engineTime": ex.now, "clock": s.api.runtime.clock}


@method("admin.stats", "admin")
async def _admin_stats(s: Session, p: dict[str, Any]) -> Any:
    api = s.api
    ex = api.exchange
    out: dict[str, Any] = {
        "runtime": api.runtime.stats(),
        "protocol": {
            "requests": api.requests,
            "errors": api.errors,
            "streamMessages": api.router.messages,
            "marginCalls": api.router.margin_calls,
            "topics": {k: len(v) for k, v in api.router.topics.items()},
        },
        "stateHash": ex.state_hash(),
        "insuranceFund": units.quanta_to_str(ex.insurance_fund("USDT")),
        "engineTime": ex.now,
    }
    if api.extra_stats is not None:
        out["server"] = api.extra_stats()
    return out


@method("admin.account", "admin", required={"account": v_int(0, 2**31)})
async def _admin_account(s: Session, p: dict[str, Any]) -> Any:
    return account_json(s.api, p["account"])


_PLAIN_HANDLERS = frozenset(METHODS[n].handler for n in PLAIN_RESULTS)
