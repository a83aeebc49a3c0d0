"""Tardis CSV readers on files generated in Tardis's published column layouts."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import (
    BookLevel,
    BookUpdate,
    Liquidation,
    Quote,
    ReplayFormatError,
    Ticker,
    Trade,
    detect_format,
    read,
)
from replay.tardis import book_snapshot_columns
from tests.replay.helpers import COMPRESSIONS, csv_text, write

T0 = 1598918403696000  # µs


TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
TRADES_ROWS = [
    ["binance-futures", "BTCUSDT", T0, T0 + 115, "185151", "buy", "11657.08", "0.010"],
    ["binance-futures", "BTCUSDT", T0 + 1000, T0 + 1200, "185152", "sell", "11657.07", "1.5"],
    ["binance-futures", "BTCUSDT", T0 + 1000, T0 + 1200, "185153", "sell", "11657.07", "0.002"],
    ["binance-futures", "BTCUSDT", T0 + 900, T0 + 1300, "", "unknown", "11656.5", "3"],
]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_trades(tmp_path: Path, compression: str) -> None:
    f = write(
        tmp_path / "binance-futures_trades_2020-09-01_BTCUSDT.csv",
        csv_text(TRADES_HEADER, TRADES_ROWS),
        compression,
    )
    assert detect_format(f) == "tardis.trades"
    events = list(read(f))
    assert events == [
        Trade(
            T0 * 1000,
            (T0 + 115) * 1000,
            "BTCUSDT",
            D("11657.08"),
            D("0.010"),
            "buy",
            "185151",
            "binance-futures",
        ),
        Trade(
            (T0 + 1000) * 1000,
            (T0 + 1200) * 1000,
            "BTCUSDT",
            D("11657.07"),
            D("1.5"),
            "sell",
            "185152",
            "binance-futures",
        ),
        Trade(
            (T0 + 1000) * 1000,
            (T0 + 1200) * 1000,
            "BTCUSDT",
            D("11657.07"),
            D("0.002"),
            "sell",
            "185153",
            "binance-futures",
        ),
        # exchange time may go back a little (files are sorted by arrival): kept as is
        Trade(
            (T0 + 900) * 1000,
            (T0 + 1300) * 1000,
            "BTCUSDT",
            D("11656.5"),
            D("3"),
            "unknown",
            "",
            "binance-futures",
        ),
    ]
    # the exact text survives: trailing zeros are kept, no float anywhere
    assert str(events[0].amount) == "0.010"
    assert all(type(e.price) is D and type(e.exchange_ts) is int for e in events)


def test_liquidations_told_from_trades_by_name(tmp_path: Path) -> None:
    rows = [
        ["bitmex", "XBTUSD", T0, T0 + 10, "liq-1", "buy", "8531.5", "2152"],
        ["bitmex", "XBTUSD", T0 + 5, T0 + 20, "liq-2", "sell", "8530", "100"],
    ]
    f = write(
        tmp_path / "bitmex_liquidations_2020-03-01_XBTUSD.csv.gz",
        csv_text(TRADES_HEADER, rows),
    )
    assert detect_format(f) == "tardis.liquidations"
    events = list(read(f))
    assert events[0] == Liquidation(
        T0 * 1000, (T0 + 10) * 1000, "XBTUSD", D("8531.5"), D("2152"), "buy", "liq-1", "bitmex"
    )
    assert [e.side for e in events] == ["buy", "sell"]
    # forcing the format works whatever the name
    plain = write(tmp_path / "x.csv", csv_text(TRADES_HEADER, rows))
    assert isinstance(next(read(plain, "tardis.liquidations")), Liquidation)
    assert isinstance(next(read(plain)), Trade)


L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_incremental_book_l2_groups_messages(tmp_path: Path, compression: str) -> None:
    ex, sym = "deribit", "BTC-PERPETUAL"
    rows = [
        # a snapshot spread over two timestamps: one fresh book
        [ex, sym, T0, T0 + 100, "true", "ask", "6421.5", "18640"],
        [ex, sym, T0, T0 + 100, "true", "bid", "6421", "2000"],
        [ex, sym, T0, T0 + 100, "true", "bid", "6420.5", "100"],
        [ex, sym, T0, T0 + 101, "true", "ask", "6422", "1190"],
        # deltas: two messages
        [ex, sym, T0 + 50, T0 + 150, "false", "ask", "6421.5", "0"],
        [ex, sym, T0 + 50, T0 + 150, "false", "bid", "6421", "2500"],
        [ex, sym, T0 + 60, T0 + 160, "false", "bid", "6420", "7"],
        # a new snapshot after deltas: the book starts over
        [ex, sym, T0 + 70, T0 + 170, "true", "bid", "6419", "1"],
    ]
    f = write(
        tmp_path / "deribit_incremental_book_L2_2020-04-01_BTC-PERPETUAL.csv",
        csv_text(L2_HEADER, rows),
        compression,
    )
    assert detect_format(f) == "tardis.incremental_book_L2"
    events = list(read(f))
    us = 1000
    assert events == [
        BookUpdate(
            T0 * us,
            (T0 + 100) * us,
            sym,
            True,
            (BookLevel(D("6421"), D("2000")), BookLevel(D("6420.5"), D("100"))),
            (BookLevel(D("6421.5"), D("18640")),),
            None,
            ex,
        ),
        BookUpdate(
            T0 * us, (T0 + 101) * us, sym, False, (), (BookLevel(D("6422"), D("1190")),), None, ex
        ),
        BookUpdate(
            (T0 + 50) * us,
            (T0 + 150) * us,
            sym,
            False,
            (BookLevel(D("6421"), D("2500")),),
            (BookLevel(D("6421.5"), D("0")),),
            None,
            ex,
        ),
        BookUpdate(
            (T0 + 60) * us,
            (T0 + 160) * us,
            sym,
            False,
            (BookLevel(D("6420"), D("7")),),
            (),
            None,
            ex,
        ),
        BookUpdate(
            (T0 + 70) * us,
            (T0 + 170) * us,
            sym,
            True,
            (BookLevel(D("6419"), D("1")),),
            (),
            None,
            ex,
        ),
    ]


def test_incremental_book_l2_symbols_tracked_separately(tmp_path: Path) -> None:
    rows = [
        ["deribit", "A", T0, T0, "true", "bid", "1", "1"],
        ["deribit", "B", T0, T0, "true", "bid", "2", "1"],
        ["deribit", "A", T0, T0 + 1, "true", "bid", "0.5", "1"],  # continues A's snapshot
    ]
    f = write(tmp_path / "l2.csv", csv_text(L2_HEADER, rows))
    assert [(e.symbol, e.snapshot) for e in read(f)] == [("A", True), ("B", True), ("A", False)]


@pytest.mark.parametrize("levels", [1, 3, 25])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_book_snapshot_any_depth(tmp_path: Path, levels: int, compression: str) -> None:
    header = book_snapshot_columns(levels)
    assert (
        header[4:12]
        == (
            "asks[0].price",
            "asks[0].amount",
            "bids[0].price",
            "bids[0].amount",
            "asks[1].price",
            "asks[1].amount",
            "bids[1].price",
            "bids[1].amount",
        )[: 4 * min(levels, 2)]
    )
    row1: list[object] = ["binance-futures", "BTCUSDT", T0, T0 + 5]
    row2: list[object] = ["binance-futures", "BTCUSDT", T0 + 10, T0 + 15]
    for i in range(levels):
        row1 += [f"{100 + i}.5", f"{i + 1}", f"{99 - i}.5", f"{i + 2}.0"]
        # second row: a thin book, bids missing beyond the first level
        row2 += [f"{100 + i}.5", "1", *(("99.5", "3") if i == 0 else ("", ""))]
    f = write(
        tmp_path / f"binance-futures_book_snapshot_{levels}_2020-09-01_BTCUSDT.csv",
        csv_text(header, [row1, row2]),
        compression,
    )
    assert detect_format(f) == "tardis.book_snapshot"
    a, b = read(f)
    assert a.snapshot and b.snapshot
    assert a.asks == tuple(BookLevel(D(f"{100 + i}.5"), D(f"{i + 1}")) for i in range(levels))
    assert a.bids == tuple(BookLevel(D(f"{99 - i}.5"), D(f"{i + 2}.0")) for i in range(levels))
    assert len(b.asks) == levels and b.bids == (BookLevel(D("99.5"), D("3")),)
    assert (a.exchange_ts, a.local_ts) == (T0 * 1000, (T0 + 5) * 1000)
    assert next(read(f, f"tardis.book_snapshot_{levels}")) == a


QUOTES_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_quotes(tmp_path: Path, compression: str) -> None:
    rows = [
        ["deribit", "BTC-PERPETUAL", T0, T0 + 3, "18640", "6421.5", "6421", "2000"],
        ["deribit", "BTC-PERPETUAL", T0 + 1, T0 + 4, "", "", "6421", "1500"],  # no asks
    ]
    f = write(tmp_path / "q.csv", csv_text(QUOTES_HEADER, rows), compression)
    assert detect_format(f) == "tardis.quotes"
    assert list(read(f)) == [
        Quote(
            T0 * 1000,
            (T0 + 3) * 1000,
            "BTC-PERPETUAL",
            D("6421"),
            D("2000"),
            D("6421.5"),
            D("18640"),
            "deribit",
        ),
        Quote(
            (T0 + 1) * 1000,
            (T0 + 4) * 1000,
            "BTC-PERPETUAL",
            D("6421"),
            D("1500"),
            None,
            None,
            "deribit",
        ),
    ]


TICKER_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
)
FUND = 1598947200000000  # next funding time, µs


def _ticker_file(tmp_path: Path, compression: str = "plain") -> Path:
    ex = "binance-futures"
    rows = [
        [ex, "BTCUSDT", T0, T0 + 1, FUND, "0.0001", "", "", "", "", "11650.5"],
        [ex, "ETHUSDT", T0 + 1, T0 + 2, FUND, "-0.0002", "", "5000", "400.1", "400", "400.2"],
        [ex, "BTCUSDT", T0 + 2, T0 + 3, "", "", "0.00012", "12345.6", "11651", "11650", ""],
        [ex, "BTCUSDT", T0 + 3, T0 + 4, "", "0.00011", "", "", "", "11649.9", "11650.1"],
    ]
    return write(
        tmp_path / "binance-futures_derivative_ticker_2020-09-01_PERPETUALS.csv",
        csv_text(TICKER_HEADER, rows),
        compression,
    )


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_derivative_ticker_carries_blank_cells_forward(tmp_path: Path, compression: str) -> None:
    f = _ticker_file(tmp_path, compression)
    assert detect_format(f) == "tardis.derivative_ticker"
    btc1, eth, btc2, btc3 = read(f)
    ns = 1000
    assert btc1 == Ticker(
        T0 * ns,
        (T0 + 1) * ns,
        "BTCUSDT",
        mark_price=D("11650.5"),
        index_price=None,  # never seen yet
        last_price=None,
        funding_rate=D("0.0001"),
        predicted_funding_rate=None,
        funding_ts=FUND * ns,
        open_interest=None,
        exchange="binance-futures",
    )
    # another symbol neither sees nor disturbs BTC's state
    assert (eth.funding_rate, eth.open_interest, eth.mark_price) == (
        D("-0.0002"),
        D("5000"),
        D("400.2"),
    )
    # blanks keep BTC's previous values; set cells replace them
    assert btc2.mark_price == D("11650.5")
    assert btc2.funding_rate == D("0.0001")
    assert btc2.funding_ts == FUND * ns
    assert (btc2.predicted_funding_rate, btc2.open_interest) == (D("0.00012"), D("12345.6"))
    assert (btc2.last_price, btc2.index_price) == (D("11651"), D("11650"))
    assert btc3 == Ticker(
        (T0 + 3) * ns,
        (T0 + 4) * ns,
        "BTCUSDT",
        D("11650.1"),
        D("11649.9"),
        D("11651"),
        D("0.00011"),
        D("0.00012"),
        FUND * ns,
        D("12345.6"),
        "binance-futures",
    )


def test_derivative_ticker_without_carry_forward(tmp_path: Path) -> None:
    btc1, _eth, btc2, _ = read(_ticker_file(tmp_path), carry_forward=False)
    assert btc1.mark_price == D("11650.5")
    assert btc2.mark_price is None and btc2.funding_rate is None and btc2.funding_ts is None
    assert btc2.open_interest == D("12345.6")


def test_derivative_ticker_bad_row_reported_even_if_cached(tmp_path: Path) -> None:
    ex = "deribit"
    rows = [
        [ex, "X", T0, T0, FUND, "0.0001", "", "", "", "", "10"],
        [ex, "X", T0, T0, FUND, "0.0001", "", "", "", "", "abc"],
    ]
    f = write(tmp_path / "t.csv", csv_text(TICKER_HEADER, rows))
    with pytest.raises(ReplayFormatError) as err:
        list(read(f))
    assert err.value.line == 3
    assert "mark_price" in err.value.problem and "'abc'" in err.value.problem


def test_tardis_requires_header_when_forced(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", csv_text(None, TRADES_ROWS))
    with pytest.raises(ReplayFormatError, match="header"):
        list(read(f, "tardis.trades"))
