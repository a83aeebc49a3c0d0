"""Readers for Tardis.dev downloadable CSV files (https://docs.tardis.dev/downloadable-csv-files).

Every Tardis file starts ``exchange,symbol,timestamp,local_timestamp`` with microsecond epoch
timestamps; files are sorted by ``local_timestamp`` and readers reject a row that goes back in
``local_timestamp``. Each reader is a generator holding at most one row (one book message for
``incremental_book_L2``) in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from replay._source import (
    BAD_ROW,
    INF,
    MAX_NS,
    NEG_INF,
    ROW_ERRORS,
    ZERO,
    Check,
    CsvInput,
    ReadOptions,
    Spec,
    check_any,
    check_nonneg,
    check_number,
    check_positive,
    explain,
    one_of,
    optional,
    timestamp,
)
from replay.events import BookLevel, BookUpdate, Event, Liquidation, Quote, Ticker, Trade

__all__ = [
    "COMMON_COLUMNS",
    "DERIVATIVE_TICKER_COLUMNS",
    "INCREMENTAL_BOOK_L2_COLUMNS",
    "LIQUIDATIONS_COLUMNS",
    "QUOTES_COLUMNS",
    "TRADES_COLUMNS",
    "book_snapshot_columns",
    "read_book_snapshot",
    "read_derivative_ticker",
    "read_incremental_book_l2",
    "read_liquidations",
    "read_quotes",
    "read_trades",
]

US = 1_000  # ns per µs
_ERRORS = (*ROW_ERRORS, BAD_ROW)

COMMON_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp")
TRADES_COLUMNS = (*COMMON_COLUMNS, "id", "side", "price", "amount")
LIQUIDATIONS_COLUMNS = TRADES_COLUMNS
INCREMENTAL_BOOK_L2_COLUMNS = (*COMMON_COLUMNS, "is_snapshot", "side", "price", "amount")
QUOTES_COLUMNS = (*COMMON_COLUMNS, "ask_amount", "ask_price", "bid_price", "bid_amount")
DERIVATIVE_TICKER_COLUMNS = (
    *COMMON_COLUMNS,
    "funding_timestamp",
    "funding_rate",
    "predicted_funding_rate",
    "open_interest",
    "last_price",
    "index_price",
    "mark_price",
)


def book_snapshot_columns(levels: int) -> tuple[str, ...]:
    """Header of a Tardis ``book_snapshot_<levels>`` file."""
    cols = list(COMMON_COLUMNS)
    for i in range(levels):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return tuple(cols)


_TS = timestamp(US)
_COMMON_SPEC: Spec = (
    ("exchange", check_any),
    ("symbol", check_any),
    ("timestamp", _TS),
    ("local_timestamp", _TS),
)
_TRADE_SIDES = {"buy": "buy", "sell": "sell", "unknown": "unknown"}
_LIQUIDATION_SIDES = {"buy": "buy", "sell": "sell"}
_BOOK_SIDES = {"bid": True, "ask": False}
_BOOLS = {"true": True, "false": False}


def _spec(*cols: tuple[str, Check]) -> Spec:
    return _COMMON_SPEC + cols


def _order(prev: int) -> tuple[int, str, int, int]:
    return (3, "local_timestamp", US, prev)


def read_trades(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``trades``: one :class:`Trade` per row (``side`` is the aggressor side)."""
    return _read_trades(src, Trade, _TRADE_SIDES)


def read_liquidations(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``liquidations``: one :class:`Liquidation` per row."""
    return _read_trades(src, Liquidation, _LIQUIDATION_SIDES)


def _read_trades(
    src: CsvInput, cls: type[Trade] | type[Liquidation], sides: dict[str, str]
) -> Iterator[Event]:
    spec = _spec(
        ("id", check_any),
        ("side", one_of(*sides)),
        ("price", check_positive),
        ("amount", check_nonneg),
    )
    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    prev = 0
    # Consecutive trades often share a price: reuse the last parsed one (same text, same value).
    last_price = ""
    p = zero
    row: list[str] = []
    for row in src.rows:
        try:
            exch, sym, ts, lts, tid, side, price, amount = row
            t = int(ts) * US
            lt = int(lts) * US
            if price != last_price:
                p = dec(price)
                if not zero < p < inf:
                    raise bad
                last_price = price
            a = dec(amount)
            s = sides[side]
            if not (prev <= lt <= max_ns and 0 <= t <= max_ns and zero <= a < inf):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, _order(prev))) from None
        prev = lt
        yield cls(t, lt, sym, p, a, s, tid, exch)  # type: ignore[arg-type]


def read_incremental_book_l2(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``incremental_book_L2``: consecutive rows of one message become one BookUpdate.

    A message is a run of rows with equal exchange, symbol, timestamp, local_timestamp and
    is_snapshot. Following Tardis, a snapshot row that follows a non-snapshot row (of the same
    symbol) starts a fresh book: that event has ``snapshot=True``; later messages of the same
    snapshot run have ``snapshot=False`` and just add levels. ``amount`` is the new absolute
    amount at the price, ``0`` removes the level.
    """
    spec = _spec(
        ("is_snapshot", one_of(*_BOOLS)),
        ("side", one_of(*_BOOK_SIDES)),
        ("price", check_positive),
        ("amount", check_nonneg),
    )
    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    bools, book_sides, level = _BOOLS, _BOOK_SIDES, BookLevel
    in_snapshot: dict[str, bool] = {}
    prev = 0
    cur_t = cur_lt = -1
    cur_sym = cur_exch = ""
    cur_snap = False
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    row: list[str] = []
    for row in src.rows:
        try:
            exch, sym, ts, lts, snap, side, price, amount = row
            t = int(ts) * US
            lt = int(lts) * US
            p = dec(price)
            a = dec(amount)
            is_snap = bools[snap]
            is_bid = book_sides[side]
            if not (
                prev <= lt <= max_ns and 0 <= t <= max_ns and zero < p < inf and zero <= a < inf
            ):
                raise bad
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, _order(prev))) from None
        prev = lt
        if lt != cur_lt or t != cur_t or sym != cur_sym or is_snap != cur_snap or exch != cur_exch:
            if bids or asks:
                starts = cur_snap and not in_snapshot.get(cur_sym, False)
                in_snapshot[cur_sym] = cur_snap
                yield BookUpdate(
                    cur_t, cur_lt, cur_sym, starts, tuple(bids), tuple(asks), None, cur_exch
                )
                bids = []
                asks = []
            cur_t, cur_lt, cur_sym, cur_snap, cur_exch = t, lt, sym, is_snap, exch
        if is_bid:
            bids.append(level(p, a))
        else:
            asks.append(level(p, a))
    if bids or asks:
        starts = cur_snap and not in_snapshot.get(cur_sym, False)
        yield BookUpdate(cur_t, cur_lt, cur_sym, starts, tuple(bids), tuple(asks), None, cur_exch)


def _pair_problem(row: list[str]) -> str | None:
    """A price without its amount (or the reverse) in a book snapshot or quote row."""
    for i in range(4, len(row) - 1, 2):
        if (row[i] == "") != (row[i + 1] == ""):
            return f"columns {i + 1} and {i + 2} must both be empty or both be set"
    return None


def read_book_snapshot(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``book_snapshot_N`` (any N): each row is a BookUpdate with ``snapshot=True``.

    The event holds the top N levels of each side as recorded (empty cells, when the book was
    thinner than N, are skipped): asks ascending, bids descending.
    """
    ncols = len(src.header) if src.header is not None else -1
    spec: Spec = ()
    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    level = BookLevel
    prev = 0
    row: list[str] = []
    for row in src.rows:
        if ncols < 0 and row:
            ncols = len(row)
        try:
            if len(row) != ncols or (ncols - 4) % 4 or ncols < 8:
                raise bad
            exch, sym, ts, lts = row[0], row[1], row[2], row[3]
            t = int(ts) * US
            lt = int(lts) * US
            if not (prev <= lt <= max_ns and 0 <= t <= max_ns):
                raise bad
            bids = []
            asks = []
            for i in range(4, ncols, 4):
                ap = row[i]
                if ap:
                    lv = level(dec(ap), dec(row[i + 1]))
                    if not (zero < lv[0] < inf and zero <= lv[1] < inf):
                        raise bad
                    asks.append(lv)
                elif row[i + 1]:
                    raise bad
                bp = row[i + 2]
                if bp:
                    lv = level(dec(bp), dec(row[i + 3]))
                    if not (zero < lv[0] < inf and zero <= lv[1] < inf):
                        raise bad
                    bids.append(lv)
                elif row[i + 3]:
                    raise bad
        except _ERRORS:
            if not row:
                continue
            if not spec:
                spec = _book_snapshot_spec(max(ncols, 8))
            raise src.error(explain(row, spec, _order(prev), _pair_problem)) from None
        prev = lt
        yield BookUpdate(t, lt, sym, True, tuple(bids), tuple(asks), None, exch)


def _book_snapshot_spec(ncols: int) -> Spec:
    levels = max((ncols - 4) // 4, 1)
    cols = book_snapshot_columns(levels)[4:]
    return _spec(
        *(
            (name, optional(check_positive if name.endswith("price") else check_nonneg))
            for name in cols
        )
    )


def read_quotes(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``quotes`` (top of book); an empty side gives ``None`` price and amount."""
    spec = _spec(
        ("ask_amount", optional(check_nonneg)),
        ("ask_price", optional(check_positive)),
        ("bid_price", optional(check_positive)),
        ("bid_amount", optional(check_nonneg)),
    )
    dec = Decimal
    zero, inf, max_ns, bad = ZERO, INF, MAX_NS, BAD_ROW
    prev = 0
    row: list[str] = []
    for row in src.rows:
        try:
            exch, sym, ts, lts, aa, ap, bp, ba = row
            t = int(ts) * US
            lt = int(lts) * US
            if not (prev <= lt <= max_ns and 0 <= t <= max_ns):
                raise bad
            if ap:
                ask_p: Decimal | None = dec(ap)
                ask_a: Decimal | None = dec(aa)
                if not (zero < ask_p < inf and zero <= ask_a < inf):  # type: ignore[operator]
                    raise bad
            elif aa:
                raise bad
            else:
                ask_p = ask_a = None
            if bp:
                bid_p: Decimal | None = dec(bp)
                bid_a: Decimal | None = dec(ba)
                if not (zero < bid_p < inf and zero <= bid_a < inf):  # type: ignore[operator]
                    raise bad
            elif ba:
                raise bad
            else:
                bid_p = bid_a = None
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, _order(prev), _quote_pair_problem)) from None
        prev = lt
        yield Quote(t, lt, sym, bid_p, bid_a, ask_p, ask_a, exch)


def _quote_pair_problem(row: list[str]) -> str | None:
    if (row[4] == "") != (row[5] == ""):
        return "ask_amount and ask_price must both be empty or both be set"
    if (row[6] == "") != (row[7] == ""):
        return "bid_price and bid_amount must both be empty or both be set"
    return None


def read_derivative_ticker(src: CsvInput, opts: ReadOptions) -> Iterator[Event]:
    """Tardis ``derivative_ticker``: one :class:`Ticker` per row.

    An empty cell means "unchanged since this symbol's previous row": with
    ``opts.carry_forward`` (the default) the last value seen for the symbol in this file is
    carried forward, so every Ticker shows the full known state (``None`` until first seen).
    Without it, empty cells give ``None``.
    """
    spec = _spec(
        ("funding_timestamp", optional(_TS)),
        ("funding_rate", optional(check_number)),
        ("predicted_funding_rate", optional(check_number)),
        ("open_interest", optional(check_nonneg)),
        ("last_price", optional(check_positive)),
        ("index_price", optional(check_positive)),
        ("mark_price", optional(check_positive)),
    )
    carry = opts.carry_forward
    dec = Decimal
    zero, inf, ninf, max_ns, bad = ZERO, INF, NEG_INF, MAX_NS, BAD_ROW
    state: dict[str, list] = {}  # type: ignore[type-arg]
    # Per column, the last text parsed and its value: tickers repeat most cells row after row,
    # and comparing text is much cheaper than parsing it again.
    r_fts = r_fr = r_pfr = r_oi = r_last = r_index = r_mark = ""
    c_fts: int | None = None
    c_fr = c_pfr = c_oi = c_last = c_index = c_mark = zero
    prev = 0
    row: list[str] = []
    for row in src.rows:
        try:
            exch, sym, ts, lts, fts, fr, pfr, oi, last, index, mark = row
            t = int(ts) * US
            lt = int(lts) * US
            if not (prev <= lt <= max_ns and 0 <= t <= max_ns):
                raise bad
            if carry:
                st = state.get(sym)
                if st is None:
                    st = state[sym] = [None, None, None, None, None, None, None]
            else:
                st = [None, None, None, None, None, None, None]
            # Parse into locals first: a bad row must not half-update the carried state.
            if fts == "":
                v_fts = st[0]
            elif fts == r_fts:
                v_fts = c_fts
            else:
                v_fts = c_fts = int(fts) * US
                if not 0 <= v_fts <= max_ns:
                    raise bad
                r_fts = fts
            if fr == "":
                v_fr = st[1]
            elif fr == r_fr:
                v_fr = c_fr
            else:
                v_fr = c_fr = dec(fr)
                if not ninf < v_fr < inf:
                    raise bad
                r_fr = fr
            if pfr == "":
                v_pfr = st[2]
            elif pfr == r_pfr:
                v_pfr = c_pfr
            else:
                v_pfr = c_pfr = dec(pfr)
                if not ninf < v_pfr < inf:
                    raise bad
                r_pfr = pfr
            if oi == "":
                v_oi = st[3]
            elif oi == r_oi:
                v_oi = c_oi
            else:
                v_oi = c_oi = dec(oi)
                if not zero <= v_oi < inf:
                    raise bad
                r_oi = oi
            if last == "":
                v_last = st[4]
            elif last == r_last:
                v_last = c_last
            else:
                v_last = c_last = dec(last)
                if not zero < v_last < inf:
                    raise bad
                r_last = last
            if index == "":
                v_index = st[5]
            elif index == r_index:
                v_index = c_index
            else:
                v_index = c_index = dec(index)
                if not zero < v_index < inf:
                    raise bad
                r_index = index
            if mark == "":
                v_mark = st[6]
            elif mark == r_mark:
                v_mark = c_mark
            else:
                v_mark = c_mark = dec(mark)
                if not zero < v_mark < inf:
                    raise bad
                r_mark = mark
        except _ERRORS:
            if not row:
                continue
            raise src.error(explain(row, spec, _order(prev))) from None
        prev = lt
        if carry:
            st[0], st[1], st[2], st[3] = v_fts, v_fr, v_pfr, v_oi
            st[4], st[5], st[6] = v_last, v_index, v_mark
        yield Ticker(t, lt, sym, v_mark, v_index, v_last, v_fr, v_pfr, v_fts, v_oi, exch)
