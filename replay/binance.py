"""Readers for Binance USDⓈ-M public data (https://data.binance.vision) and tick-level depth.

* ``aggTrades``, ``trades``, ``klines`` (and ``markPriceKlines``, ``indexPriceKlines``,
  ``premiumIndexKlines``), ``fundingRate``: the monthly/daily files of data.binance.vision,
  with or without their header row (older files have none). These files carry no symbol
  column: the symbol comes from the file name (``BTCUSDT-aggTrades-2024-01-01.csv``) unless
  given. They carry no arrival time either: ``local_ts = exchange_ts``.
* ``depth``: Binance's historical tick-level order book files
  (``symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu``).

Timestamps are milliseconds in today's USDⓈ-M files; the unit is told from the first row's
magnitude (so microsecond files also work) and then applies to the whole file. Rows must be
sorted by time; a row that goes back in time is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from replay._source import (
    BAD_ROW,
    INF,
    MAX_NS,
    NEG_INF,
    ROW_ERRORS,
    ZERO,
    CsvInput,
    ReadOptions,
    Spec,
    check_any,
    check_int,
    check_nonneg,
    check_number,
    check_positive,
    explain,
    one_of,
    order_problem,
    peek_unit,
    timestamp,
)
from replay.events import BookLevel, BookUpdate, Event, FundingRate, Kline, Trade

__all__ = [
    "AGG_TRADES_COLUMNS",
    "DEFAULT_EXCHANGE",
    "DEPTH_COLUMNS",
    "FUNDING_RATE_COLUMNS",
    "KLINE_COLUMNS",
    "TRADES_COLUMNS",
    "read_agg_trades",
    "read_depth",
    "read_funding_rate",
    "read_klines",
    "read_trades",
    "symbol_from_name",
]

DEFAULT_EXCHANGE = "binance-futures"
"""Exchange id given to Binance USDⓈ-M events (the id Tardis uses for the same venue)."""

AGG_TRADES_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)
TRADES_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker")
KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
FUNDING_RATE_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
DEPTH_COLUMNS = (
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
    "pu",
)

_ERRORS = (*ROW_ERRORS, BAD_ROW)
# is_buyer_maker true: the buyer rested, so the aggressor sold.
_TAKER_SIDE = {"true": "sell", "false": "buy", "True": "sell", "False": "buy"}
_BOOL_CHECK = one_of(*_TAKER_SIDE)
_SYMBOL_RE = re.compile(r"^([A-Z0-9]+(?:_[A-Z0-9]+)?)-")


def symbol_from_name(name: str) -> str | None:
    """The symbol at the start of a data.binance.vision file name, e.g. ``BTCUSDT``."""
    m = _SYMBOL_RE.match(name)
    return m.group(1) if m else None


def _symbol(src: CsvInput, opts: ReadOptions) -> str:
    if opts.symbol:
        return opts.symbol
    sym = symbol_from_name(src.name)
    if sym is None:
        raise src.error(
            f"cannot tell the symbol from the file name {src.name!r}; pass symbol=...", None
        )
    return sym


def _exchange(opts: ReadOptions) -> str:
    return DEFAULT_EXCHANGE if opts.exchange is None else opts.exchange


def read_agg_trades(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """``aggTrades``: one :class:`Trade` per aggregate trade (``trade_id`` = agg_trade_id)."""
    sym, exch = _symbol(src, opts), _exchange(opts)
    unit, rows = peek_unit(src, 5)
    spec: Spec = (
        ("agg_trade_id", check_int),
        ("price", check_positive),
        ("quantity", check_nonneg),
        ("first_trade_id", check_int),
        ("last_trade_id", check_int),
        ("transact_time", timestamp(unit)),
        ("is_buyer_maker", _BOOL_CHECK),
    )
    dec = Decimal
    zero, inf, max_ns, bad, sides = ZERO, INF, MAX_NS, BAD_ROW, _TAKER_SIDE
    prev = 0
    row: list[str] = []
    for row in rows:
        try:
            aid, price, qty, fid, lid, tt, ibm = row
            t = int(tt) * unit
            p = dec(price)
            q = dec(qty)
            s = sides[ibm]
            if not (
                prev <= t <= max_ns
                and zero < p < inf
                and zero <= q < inf
                and aid.isdigit()
                and fid.isdigit()
                and lid.isdigit()
            ):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, (5, "transact_time", unit, prev))) from None
        prev = t
        yield Trade(t, t, sym, p, q, s, aid, exch)  # type: ignore[arg-type]


def read_trades(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """``trades``: one :class:`Trade` per trade (``quote_qty`` is checked, not kept)."""
    sym, exch = _symbol(src, opts), _exchange(opts)
    unit, rows = peek_unit(src, 4)
    spec: Spec = (
        ("id", check_int),
        ("price", check_positive),
        ("qty", check_nonneg),
        ("quote_qty", check_nonneg),
        ("time", timestamp(unit)),
        ("is_buyer_maker", _BOOL_CHECK),
    )
    dec = Decimal
    zero, inf, max_ns, bad, sides = ZERO, INF, MAX_NS, BAD_ROW, _TAKER_SIDE
    prev = 0
    row: list[str] = []
    for row in rows:
        try:
            tid, price, qty, quote_qty, tt, ibm = row
            t = int(tt) * unit
            p = dec(price)
            q = dec(qty)
            s = sides[ibm]
            if not (
                prev <= t <= max_ns
                and zero < p < inf
                and zero <= q < inf
                and zero <= dec(quote_qty) < inf
                and tid.isdigit()
            ):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, (4, "time", unit, prev))) from None
        prev = t
        yield Trade(t, t, sym, p, q, s, tid, exch)  # type: ignore[arg-type]


def read_klines(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Kline files: one :class:`Kline` per bar, ``kind`` from ``opts.kind``.

    ``exchange_ts`` is the bar's end (``close_time`` + 1 unit). Bars must not overlap: each
    ``open_time`` must be at or after the previous bar's end (gaps are allowed).
    """
    sym, exch = _symbol(src, opts), _exchange(opts)
    kind = opts.kind or "trade"
    unit, rows = peek_unit(src, 0)
    ts = timestamp(unit)
    spec: Spec = (
        ("open_time", ts),
        ("open", check_number),
        ("high", check_number),
        ("low", check_number),
        ("close", check_number),
        ("volume", check_nonneg),
        ("close_time", ts),
        ("quote_volume", check_number),
        ("count", check_int),
        ("taker_buy_volume", check_nonneg),
        ("taker_buy_quote_volume", check_number),
        ("ignore", check_any),
    )
    dec = Decimal
    zero, inf, ninf, max_ns, bad = ZERO, INF, NEG_INF, MAX_NS, BAD_ROW
    prev_end = 0
    row: list[str] = []
    for row in rows:
        try:
            ot, o, h, lo, c, v, ct, qv, cnt, tbv, tbqv, _ignore = row
            start = int(ot) * unit
            end = (int(ct) + 1) * unit
            op, hi, low, cl, vol = dec(o), dec(h), dec(lo), dec(c), dec(v)
            if not (
                prev_end <= start < end <= max_ns
                and ninf < low <= hi < inf
                and ninf < op < inf
                and ninf < cl < inf
                and zero <= vol < inf
                and ninf < dec(qv) < inf
                and zero <= dec(tbv) < inf
                and ninf < dec(tbqv) < inf
                and cnt.isdigit()
            ):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, None, _kline_problem(unit, prev_end))) from None
        prev_end = end
        yield Kline(end, end, sym, kind, start, op, hi, low, cl, vol, exch)  # type: ignore[arg-type]


def _kline_problem(unit: int, prev_end: int):  # type: ignore[no-untyped-def]
    def extra(row: list[str]) -> str | None:
        start, close = int(row[0]) * unit, int(row[6]) * unit
        if start < prev_end:
            return order_problem("open_time", start, prev_end) + " (bars overlap)"
        if close < start:
            return "close_time is before open_time"
        if Decimal(row[3]) > Decimal(row[2]):
            return "low is above high"
        return None

    return extra


def read_funding_rate(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """``fundingRate``: one :class:`FundingRate` per settlement (``exchange_ts`` = calc_time)."""
    sym, exch = _symbol(src, opts), _exchange(opts)
    unit, rows = peek_unit(src, 0)
    spec: Spec = (
        ("calc_time", timestamp(unit)),
        ("funding_interval_hours", check_int),
        ("last_funding_rate", check_number),
    )
    dec = Decimal
    inf, ninf, max_ns, bad = INF, NEG_INF, MAX_NS, BAD_ROW
    prev = 0
    row: list[str] = []
    for row in rows:
        try:
            ct, hours, rate = row
            t = int(ct) * unit
            r = dec(rate)
            if not (prev <= t <= max_ns and ninf < r < inf and hours.isdigit()):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, (0, "calc_time", unit, prev))) from None
        prev = t
        yield FundingRate(t, t, sym, r, int(hours), exch)


_DEPTH_SIDES = {"b": True, "a": False}


def _check_pu(cell: str) -> str | None:
    """``pu`` (previous update id): an integer, ``-1`` for snapshot rows."""
    if cell == "-1" or (cell.isascii() and cell.isdigit()):
        return None
    return "is not an update id (an integer >= -1)"


_UPDATE_TYPES = {"snap": True, "set": False}


def read_depth(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tick-level depth: rows of one update (same symbol, timestamp, last_update_id and
    update_type) become one :class:`BookUpdate` with ``update_id = last_update_id``.

    A run of ``snap`` rows is a full book: its first event has ``snapshot=True`` (clear the book
    first). ``qty`` is the new absolute amount at the price, ``0`` removes the level.
    """
    exch = _exchange(opts)
    unit, rows = peek_unit(src, 1)
    spec: Spec = (
        ("symbol", check_any),
        ("timestamp", timestamp(unit)),
        ("first_update_id", check_int),
        ("last_update_id", check_int),
        ("side", one_of(*_DEPTH_SIDES)),
        ("update_type", one_of(*_UPDATE_TYPES)),
        ("price", check_positive),
        ("qty", check_nonneg),
        ("pu", _check_pu),
    )
    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    sides, types, level = _DEPTH_SIDES, _UPDATE_TYPES, BookLevel
    in_snapshot: dict[str, bool] = {}
    prev = 0
    cur_t = cur_id = -1
    cur_sym = ""
    cur_snap = False
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    row: list[str] = []
    for row in rows:
        try:
            sym, ts, fid, lid, side, utype, price, qty, pu = row
            t = int(ts) * unit
            uid = int(lid)
            p = dec(price)
            q = dec(qty)
            is_bid = sides[side]
            is_snap = types[utype]
            if not (
                prev <= t <= max_ns
                and zero < p < inf
                and zero <= q < inf
                and fid.isdigit()
                and lid.isdigit()
                and int(pu) >= -1
            ):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, (1, "timestamp", unit, prev))) from None
        prev = t
        if t != cur_t or uid != cur_id or is_snap != cur_snap or sym != cur_sym:
            if bids or asks:
                starts = cur_snap and not in_snapshot.get(cur_sym, False)
                in_snapshot[cur_sym] = cur_snap
                yield BookUpdate(
                    cur_t, cur_t, cur_sym, starts, tuple(bids), tuple(asks), cur_id, exch
                )
                bids = []
                asks = []
            cur_t, cur_id, cur_snap, cur_sym = t, uid, is_snap, sym
        if is_bid:
            bids.append(level(p, q))
        else:
            asks.append(level(p, q))
    if bids or asks:
        starts = cur_snap and not in_snapshot.get(cur_sym, False)
        yield BookUpdate(cur_t, cur_t, cur_sym, starts, tuple(bids), tuple(asks), cur_id, exch)
