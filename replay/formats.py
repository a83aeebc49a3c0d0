"""Format detection and the one entry point that reads any supported file: :func:`read`.

Detection looks at the first line (the header, when there is one) and the file name (the zip
member's name for a zip). It never reads further than the first line.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from replay import binance, ohlcv, tardis
from replay._source import CsvInput, PathLike, ReadOptions, open_text
from replay.errors import ReplayFormatError
from replay.eventlog import iter_event_lines
from replay.events import Event
from replay.merge import merge

__all__ = ["FORMATS", "EVENTS_FORMAT", "detect_format", "read", "read_merged"]

Reader = Callable[[CsvInput, ReadOptions], Iterator[Event]]

EVENTS_FORMAT = "events"
"""Format name of the canonical event log (JSON lines)."""


class _Format:
    __slots__ = ("name", "reader", "columns", "header", "kind")

    def __init__(
        self,
        name: str,
        reader: Reader,
        columns: tuple[str, ...] | None,
        header: Literal["required", "optional"],
        kind: str | None = None,
    ) -> None:
        self.name = name
        self.reader = reader
        self.columns = columns  # None: checked by the reader (book_snapshot_N, ohlcv)
        self.header = header
        self.kind = kind


def _formats() -> dict[str, _Format]:
    t, b = tardis, binance
    out = [
        _Format("tardis.trades", t.read_trades, t.TRADES_COLUMNS, "required"),
        _Format(
            "tardis.incremental_book_L2",
            t.read_incremental_book_l2,
            t.INCREMENTAL_BOOK_L2_COLUMNS,
            "required",
        ),
        _Format("tardis.book_snapshot", t.read_book_snapshot, None, "required"),
        _Format("tardis.quotes", t.read_quotes, t.QUOTES_COLUMNS, "required"),
        _Format(
            "tardis.derivative_ticker",
            t.read_derivative_ticker,
            t.DERIVATIVE_TICKER_COLUMNS,
            "required",
        ),
        _Format("tardis.liquidations", t.read_liquidations, t.LIQUIDATIONS_COLUMNS, "required"),
        _Format("binance.aggTrades", b.read_agg_trades, b.AGG_TRADES_COLUMNS, "optional"),
        _Format("binance.trades", b.read_trades, b.TRADES_COLUMNS, "optional"),
        _Format("binance.klines", b.read_klines, b.KLINE_COLUMNS, "optional", "trade"),
        _Format("binance.markPriceKlines", b.read_klines, b.KLINE_COLUMNS, "optional", "mark"),
        _Format("binance.indexPriceKlines", b.read_klines, b.KLINE_COLUMNS, "optional", "index"),
        _Format(
            "binance.premiumIndexKlines", b.read_klines, b.KLINE_COLUMNS, "optional", "premium"
        ),
        _Format("binance.fundingRate", b.read_funding_rate, b.FUNDING_RATE_COLUMNS, "optional"),
        _Format("binance.depth", b.read_depth, b.DEPTH_COLUMNS, "optional"),
        _Format("ohlcv", ohlcv.read_ohlcv, None, "optional"),
    ]
    return {f.name: f for f in out}


_FORMATS = _formats()
FORMATS: tuple[str, ...] = (*_FORMATS, EVENTS_FORMAT)
"""Every format name :func:`read` accepts (``tardis.book_snapshot_25`` etc. also work)."""

_TARDIS_BY_REST = {
    tardis.TRADES_COLUMNS[4:]: "tardis.trades",
    tardis.INCREMENTAL_BOOK_L2_COLUMNS[4:]: "tardis.incremental_book_L2",
    tardis.QUOTES_COLUMNS[4:]: "tardis.quotes",
    tardis.DERIVATIVE_TICKER_COLUMNS[4:]: "tardis.derivative_ticker",
}
_BINANCE_BY_HEADER = {
    binance.AGG_TRADES_COLUMNS: "binance.aggTrades",
    binance.TRADES_COLUMNS: "binance.trades",
    binance.FUNDING_RATE_COLUMNS: "binance.fundingRate",
    binance.DEPTH_COLUMNS: "binance.depth",
}
_KLINE_NAMES = {
    "markpriceklines": "binance.markPriceKlines",
    "indexpriceklines": "binance.indexPriceKlines",
    "premiumindexklines": "binance.premiumIndexKlines",
}
_BINANCE_NAME_HINTS = (
    ("-aggtrades-", "binance.aggTrades"),
    ("-trades-", "binance.trades"),
    ("-fundingrate-", "binance.fundingRate"),
    ("-markpriceklines-", "binance.markPriceKlines"),
    ("-indexpriceklines-", "binance.indexPriceKlines"),
    ("-premiumindexklines-", "binance.premiumIndexKlines"),
)
_BINANCE_KLINE_NAME = re.compile(r"^[A-Z0-9_]+-\d+[smhdwM]-\d{4}-\d{2}")
_SNAPSHOT_NAME = re.compile(r"^book_snapshot_(\d+)$")
_BOOLS = frozenset({"true", "false", "True", "False"})


def _looks_numeric(cell: str) -> bool:
    c = cell.strip().lstrip("-")
    return c.replace(".", "", 1).isdigit()


def _is_header(row: list[str]) -> bool:
    """A first row is a header when its first cell is not a number (nor a date-time)."""
    if not row:
        return False
    first = row[0].strip()
    return not (_looks_numeric(first) or re.match(r"^\d{4}-\d{2}-\d{2}", first))


def _kline_format(name: str) -> str:
    low = name.lower()
    for key, fmt in _KLINE_NAMES.items():
        if key in low:
            return fmt
    return "binance.klines"


def _sniff(first: list[str], name: str) -> str | None:
    """Format of a CSV file from its first row and name, or None if unknown."""
    cols = tuple(c.strip() for c in first)
    low = name.lower()
    if cols[:4] == tardis.COMMON_COLUMNS:
        rest = cols[4:]
        if rest and rest[0] == "asks[0].price":
            return "tardis.book_snapshot"
        fmt = _TARDIS_BY_REST.get(rest)
        if fmt == "tardis.trades" and "liquidation" in low:
            return "tardis.liquidations"
        return fmt
    if cols in _BINANCE_BY_HEADER:
        return _BINANCE_BY_HEADER[cols]
    if cols == binance.KLINE_COLUMNS:
        return _kline_format(name)
    if ohlcv.is_ohlcv_header(first):
        return "ohlcv"
    if _is_header(first):
        if len(first) == 9 and first[4] in ("a", "b") and first[5] in ("snap", "set"):
            return "binance.depth"  # headerless depth file: its first cell is the symbol
        return None
    # No header: the file name, then the shape of the first row.
    for hint, fmt in _BINANCE_NAME_HINTS:
        if hint in low:
            return fmt
    if _BINANCE_KLINE_NAME.match(name) and len(first) == 12:
        return "binance.klines"
    n, last = len(first), first[-1] if first else ""
    if n == 12:
        return _kline_format(name)
    if n == 7 and last in _BOOLS:
        return "binance.aggTrades"
    if n == 6 and last in _BOOLS:
        return "binance.trades"
    if n == 3:
        return "binance.fundingRate"
    if n == 6:
        return "ohlcv"
    return None


def _canonical_name(fmt: str) -> str:
    """Accept ``tardis.book_snapshot_25`` (any N), ``binance_aggTrades``... for ``format=``."""
    if fmt in _FORMATS or fmt == EVENTS_FORMAT:
        return fmt
    norm = fmt.replace(":", ".").replace("/", ".")
    if "." not in norm and "_" in norm and norm.split("_", 1)[0] in ("tardis", "binance"):
        norm = norm.replace("_", ".", 1)
    src, _, rest = norm.partition(".")
    if src == "tardis" and _SNAPSHOT_NAME.match(rest):
        return "tardis.book_snapshot"
    if norm in _FORMATS:
        return norm
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def _check_header(fmt: _Format, header: list[str], path: str) -> None:
    cols = tuple(c.strip() for c in header)
    if fmt.columns is not None:
        ok = cols == fmt.columns
        expected = ",".join(fmt.columns)
    elif fmt.name == "tardis.book_snapshot":
        levels = (len(cols) - 4) // 4
        expected_cols = tardis.book_snapshot_columns(max(levels, 1))
        ok = cols == expected_cols
        expected = f"{','.join(expected_cols[:8])},... ({len(expected_cols)} columns)"
    else:  # ohlcv
        ok = ohlcv.is_ohlcv_header(header)
        expected = ",".join(ohlcv.OHLCV_COLUMNS)
    if not ok:
        raise ReplayFormatError(
            path, 1, f"header {','.join(header)!r} does not match {fmt.name} (expected {expected})"
        )


def _has_header(fmt: _Format, first: list[str]) -> bool:
    if fmt.name.startswith("tardis."):
        return bool(first) and first[0].strip() == "exchange"
    if fmt.name == "binance.depth":
        return bool(first) and first[0].strip() == "symbol"
    return _is_header(first)


def read(
    path: PathLike,
    format: str | None = None,  # noqa: A002 - the natural name for callers
    *,
    symbol: str | None = None,
    exchange: str | None = None,
    kind: str | None = None,
    interval: str | int | None = None,
    carry_forward: bool = True,
) -> Iterator[Event]:
    """Stream the events of one file (plain, ``.gz`` or single-member ``.zip``), in file order.

    ``format`` forces a format (see :data:`FORMATS`); by default it is detected from the
    header and the file name. ``symbol`` names the instrument for files without a symbol column
    (Binance data.binance.vision files, OHLCV); ``exchange`` overrides the exchange id of such
    files; ``kind`` sets an OHLCV file's kline kind (``trade``, ``mark``, ``index``,
    ``premium``); ``interval`` its bar length (``"1m"``, ``"1h"`` or seconds);
    ``carry_forward=False`` keeps Tardis ticker blanks as ``None``.

    The file is opened on the first ``next()`` and closed when the generator is exhausted or
    closed. Memory stays constant whatever the file's size. Any malformed line raises
    :class:`ReplayFormatError` naming the file, the line and the problem.
    """
    fmt_name = _canonical_name(format) if format is not None else None
    interval_ns = ohlcv.parse_interval(interval) if interval is not None else None
    if kind is not None and kind not in ("trade", "mark", "index", "premium"):
        raise ValueError(f"kind must be trade, mark, index or premium, not {kind!r}")
    return _read(path, fmt_name, ReadOptions(symbol, exchange, kind, interval_ns, carry_forward))


def _read(path: PathLike, fmt_name: str | None, opts: ReadOptions) -> Iterator[Event]:
    display = str(path)
    with open_text(path) as (stream, name):
        first_line = stream.readline()
        if fmt_name == EVENTS_FORMAT or (fmt_name is None and first_line.startswith("{")):
            yield from iter_event_lines(itertools.chain((first_line,), stream), display)
            return
        reader = csv.reader(itertools.chain((first_line,), stream))
        first = next(reader, None)
        if first is None:
            return  # empty file: no events
        if fmt_name is None:
            fmt_name = _sniff(first, name)
            if fmt_name is None:
                raise ReplayFormatError(
                    display,
                    1,
                    f"cannot detect the format from the first line {','.join(first)[:120]!r} "
                    "and the file name; pass format=",
                )
        fmt = _FORMATS[fmt_name]
        if _has_header(fmt, first):
            _check_header(fmt, first, display)
            header: list[str] | None = first
            rows: Iterator[list[str]] = reader
        elif fmt.header == "required":
            raise ReplayFormatError(display, 1, f"{fmt.name} files start with a header row")
        else:
            header = None
            rows = itertools.chain((first,), reader)
        if fmt.kind is not None and opts.kind is None:
            opts.kind = fmt.kind
        src = CsvInput(display, name, reader, rows, header)
        yield from fmt.reader(src, opts)


def detect_format(path: PathLike) -> str:
    """The format :func:`read` would use for ``path`` (reads only its first line)."""
    with open_text(path) as (stream, name):
        first_line = stream.readline()
    if first_line.startswith("{"):
        return EVENTS_FORMAT
    first = next(csv.reader([first_line]), None)
    if first is None:
        raise ReplayFormatError(str(path), None, "empty file: cannot detect its format")
    fmt = _sniff(first, name)
    if fmt is None:
        raise ReplayFormatError(
            str(path), 1, "cannot detect the format from the first line and the file name"
        )
    return fmt


def read_merged(
    paths: Iterable[PathLike],
    *,
    by: Literal["exchange", "local"] = "exchange",
    format: str | None = None,  # noqa: A002
    **options: object,
) -> Iterator[Event]:
    """:func:`read` every path and :func:`~replay.merge.merge` them into one ordered stream.

    Ties are broken by stream priority, then by the order of ``paths``, then file order.
    """
    return merge([read(p, format, **options) for p in paths], by=by)  # type: ignore[arg-type]
