"""Reader for plain OHLCV bar files: ``timestamp,open,high,low,close,volume``.

The timestamp column is the bar's open time, written either as an epoch number (seconds,
milliseconds, microseconds or nanoseconds: told from the first row's magnitude) or as an ISO
8601 date-time (``2021-12-31 23:01:00.000000``; no offset means UTC). The header row is
optional. The bar length comes from ``interval=``, else from the file name (``..._1m.csv``,
``-5m-``, ``_1h``...), else it is one minute.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PurePath

from replay._source import (
    BAD_ROW,
    INF,
    MAX_NS,
    ROW_ERRORS,
    ZERO,
    CsvInput,
    ReadOptions,
    Spec,
    check_nonneg,
    check_number,
    explain,
    order_problem,
    unit_of,
)
from replay.events import Event, Kline

__all__ = [
    "OHLCV_COLUMNS",
    "TIME_COLUMN_NAMES",
    "interval_from_name",
    "is_ohlcv_header",
    "parse_interval",
    "read_ohlcv",
]

OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
TIME_COLUMN_NAMES = frozenset({"timestamp", "time", "date", "datetime", "open_time", "ts"})
DEFAULT_INTERVAL_NS = 60 * 10**9

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_ERRORS = (*ROW_ERRORS, BAD_ROW)
_PRICES_MAX = 4096  # distinct price texts remembered while reading a file
_UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 604800 * 10**9}
_INTERVAL_RE = re.compile(r"(?:^|[^0-9A-Za-z])(\d+)([smhdw])(?=$|[^0-9A-Za-z])")


def is_ohlcv_header(row: list[str]) -> bool:
    """Whether ``row`` is an OHLCV header (time column name, then open,high,low,close,volume)."""
    return (
        len(row) == 6
        and row[0].strip().lower() in TIME_COLUMN_NAMES
        and [c.strip().lower() for c in row[1:]] == ["open", "high", "low", "close", "volume"]
    )


def parse_interval(text: str | int) -> int:
    """Bar length in ns from ``"1m"``, ``"15s"``, ``"4h"``, ``"1d"``, ``"1w"`` or seconds (int)."""
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"interval must be positive, got {text}")
        return text * 10**9
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"bad interval {text!r}: expected e.g. 1m, 15s, 4h, 1d")
    return int(m.group(1)) * _UNIT_NS[m.group(2)]


def interval_from_name(name: str) -> int | None:
    """Bar length (ns) written in a file name such as ``btc-perp_1m.csv``, if any."""
    stem = name
    for suffix in (".gz", ".zip", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _INTERVAL_RE.search(stem)
    return int(m.group(1)) * _UNIT_NS[m.group(2)] if m else None


def _iso_ns(cell: str) -> int:
    dt = datetime.fromisoformat(cell)
    if dt.tzinfo is None:  # UTC: the same span from the naive epoch, without a replace
        return ((dt - _NAIVE_EPOCH) // _US) * 1000
    return ((dt - _EPOCH) // _US) * 1000


def _time_parser(first_cell: str) -> tuple[Callable[[str], int], str]:
    """Pick how to read the timestamp column from its first value; returns (parser, label)."""
    cell = first_cell.strip()
    if cell.isascii() and cell.isdigit():
        unit = unit_of(int(cell))

        def epoch_int(c: str) -> int:
            return int(c) * unit

        return epoch_int, "an integer epoch timestamp"
    try:
        whole = Decimal(cell)
    except ArithmeticError:
        pass
    else:
        if whole.is_finite() and whole >= 0:
            unit = unit_of(int(whole))

            def epoch_dec(c: str) -> int:
                v = Decimal(c) * unit
                if v != v.to_integral_value():
                    raise ValueError("finer than a nanosecond")
                return int(v)

            return epoch_dec, "a decimal epoch timestamp"
    return _iso_ns, "an ISO 8601 date-time"


def read_ohlcv(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """One :class:`Kline` per row (``kind`` from ``opts.kind``, default ``"trade"``).

    ``open_ts`` is the row's timestamp and ``exchange_ts = local_ts`` the bar's end
    (``open_ts`` + interval). Bars must not overlap: each must start at or after the previous
    bar's end (gaps are fine). ``low <= high`` and ``volume >= 0`` are checked.
    """
    name = src.name
    symbol = opts.symbol or PurePath(name).name.split(".")[0]
    exch = opts.exchange or ""
    kind = opts.kind or "trade"
    interval = opts.interval_ns or interval_from_name(name) or DEFAULT_INTERVAL_NS
    rows = iter(src.rows)
    first = next(rows, None)
    if first is None:
        return
    parse, label = _time_parser(first[0] if first else "")

    def check_time(cell: str) -> str | None:
        try:
            v = parse(cell)
        except (ValueError, ArithmeticError, OverflowError):
            return f"is not {label} like the first row's"
        return None if 0 <= v <= MAX_NS else "is out of range"

    spec: Spec = (
        ("timestamp", check_time),
        ("open", check_number),
        ("high", check_number),
        ("low", check_number),
        ("close", check_number),
        ("volume", check_nonneg),
    )

    def extra(row: list[str]) -> str | None:
        start = parse(row[0])
        if start < prev_end:
            return (
                order_problem("timestamp", start, prev_end)
                + f" (bars of {interval // 10**9} s overlap; pass interval= if bars are shorter)"
            )
        if Decimal(row[3]) > Decimal(row[2]):
            return "low is above high"
        return None

    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    # bars repeat the same few prices (each opens where the last closed): each text is
    # parsed once into one (immutable, finite) Decimal, whose hash is then computed once too
    prices: dict[str, Decimal] = {}
    known = prices.get

    def price(cell: str) -> Decimal:
        d = dec(cell)
        if not d.is_finite():
            raise bad
        if len(prices) >= _PRICES_MAX:
            prices.clear()
        prices[cell] = d
        return d

    prev_end = 0
    row: list[str] = first
    for row in itertools.chain((first,), rows):
        try:
            ts, o, h, lo, c, v = row
            start = parse(ts)
            end = start + interval
            op = known(o) or price(o)
            hi = known(h) or price(h)
            low = known(lo) or price(lo)
            cl = known(c) or price(c)
            vol = dec(v)
            if not (prev_end <= start and end <= max_ns and low <= hi and zero <= vol < inf):
                raise bad  # (the prices are finite: `price` lets no other through)
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, None, extra)) from None
        prev_end = end
        yield Kline(end, end, symbol, kind, start, op, hi, low, cl, vol, exch)  # type: ignore[arg-type]
