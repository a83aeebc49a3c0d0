"""Readers on the real recorded samples in ../shared/data/real/ (skipped when absent)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import BookLevel, BookUpdate, Kline, Trade, detect_format, merge, read
from tests.replay.helpers import REAL_DATA

pytestmark = pytest.mark.skipif(
    not REAL_DATA.is_dir(),
    reason=f"real data samples not found at {REAL_DATA} (the shared folder beside the repo)",
)


def _real(name: str) -> Path:
    path = REAL_DATA / name
    if not path.is_file():
        pytest.skip(f"sample {name} missing from {REAL_DATA}")
    return path


def _data_lines(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:] if line]


def test_bitmex_trades() -> None:
    path = _real("bitmex_trades_XBTUSD.csv")
    assert detect_format(path) == "tardis.trades"
    trades = list(read(path))
    lines = _data_lines(path)
    assert len(trades) == len(lines) == 10
    assert trades[0] == Trade(
        1583020803145000000,
        1583020803307160000,
        "XBTUSD",
        D("8531.5"),
        D("2152"),
        "sell",
        "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf",
        "bitmex",
    )
    for t, cells in zip(trades, lines, strict=True):
        assert (t.trade_id, str(t.price), str(t.amount)) == (cells[4], cells[6], cells[7])
        assert t.local_ts == int(cells[3]) * 1000


@pytest.mark.parametrize("levels", [5, 25])
def test_binance_book_snapshots(levels: int) -> None:
    path = _real(f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv")
    assert detect_format(path) == "tardis.book_snapshot"
    books = list(read(path))
    assert len(books) == len(_data_lines(path)) == 10
    first = books[0]
    assert first.snapshot and len(first.bids) == len(first.asks) == levels
    assert first.asks[0] == BookLevel(D("11657.08"), D("1.714"))
    assert first.bids[0] == BookLevel(D("11657.07"), D("10.896"))
    for b in books:
        # published order: asks ascending, bids descending, and the book is not crossed
        assert [lv.price for lv in b.asks] == sorted(lv.price for lv in b.asks)
        assert [lv.price for lv in b.bids] == sorted((lv.price for lv in b.bids), reverse=True)
        assert b.bids[0].price < b.asks[0].price
    assert [b.local_ts for b in books] == sorted(b.local_ts for b in books)


def test_deribit_incremental_l2() -> None:
    path = _real("deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    assert detect_format(path) == "tardis.incremental_book_L2"
    events = list(read(path))
    lines = _data_lines(path)
    assert sum(len(e.bids) + len(e.asks) for e in events) == len(lines)
    assert events[0].snapshot and events[0].symbol == "BTC-PERPETUAL"
    assert events[0].asks[0] == BookLevel(D("6421.5"), D("18640"))


def test_binance_tick_level_depth() -> None:
    snap_path = _real("btcusdt-depth-snap.csv")
    upd_path = _real("btcusdt-depth-update.csv")
    assert detect_format(snap_path) == detect_format(upd_path) == "binance.depth"
    (snap,) = read(snap_path)  # one snapshot message of 100 levels
    assert isinstance(snap, BookUpdate) and snap.snapshot
    assert len(snap.bids) + len(snap.asks) == len(_data_lines(snap_path)) == 100
    assert snap.update_id == 2098021528332
    assert snap.exchange_ts == 1667346579146 * 1_000_000
    updates = list(read(upd_path))
    assert not any(u.snapshot for u in updates)
    assert sum(len(u.bids) + len(u.asks) for u in updates) == 100
    # the snapshot comes first when both files are merged
    merged = list(merge([read(upd_path), read(snap_path)]))
    assert merged[0] == snap and merged[1:] == updates


def test_btc_perp_one_minute_bars() -> None:
    path = _real("btc-perp-20211231-20220201_1m.csv")
    assert detect_format(path) == "ohlcv"
    n = 0
    first = last = None
    selloff = []
    start = int(datetime(2022, 1, 21, 21, 2, tzinfo=UTC).timestamp()) * 10**9
    for k in read(path, symbol="BTCUSDT"):
        assert isinstance(k, Kline) and k.low <= k.high
        if first is None:
            first = k
        if start <= k.open_ts < start + 3600 * 10**9:
            selloff.append(k)
        last = k
        n += 1
    assert n == 45031
    assert first is not None and last is not None
    assert first.open_ts == int(datetime(2021, 12, 31, 23, 1, tzinfo=UTC).timestamp()) * 10**9
    assert first.interval_ns == 60 * 10**9  # from the "_1m" in the name
    assert (first.open, first.close, first.volume) == (
        D("46319.0"),
        D("46377.0"),
        D("2300413.7295"),
    )
    assert last.open_ts == int(datetime(2022, 2, 1, 5, 31, tzinfo=UTC).timestamp()) * 10**9
    # the 2022-01-21 sell-off: about -6 % within the hour from 21:02
    assert len(selloff) == 60
    drop = min(k.low for k in selloff) / selloff[0].open - 1
    assert D("-0.07") < drop < D("-0.05")
