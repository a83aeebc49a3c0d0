"""Binance USDⓈ-M public data readers, with and without header rows, plain/gz/zip."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import BookLevel, FundingRate, Kline, ReplayFormatError, Trade, detect_format, read
from replay.binance import (
    AGG_TRADES_COLUMNS,
    DEPTH_COLUMNS,
    FUNDING_RATE_COLUMNS,
    KLINE_COLUMNS,
    TRADES_COLUMNS,
)
from tests.replay.helpers import COMPRESSIONS, csv_text, write

MS0 = 1704067200000  # 2024-01-01 00:00:00 UTC in ms
MS = 1_000_000  # ns per ms

HEADERS = [True, False]


def test_published_headers() -> None:
    # the exact header rows of data.binance.vision files
    assert ",".join(AGG_TRADES_COLUMNS) == (
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    )
    assert ",".join(TRADES_COLUMNS) == "id,price,qty,quote_qty,time,is_buyer_maker"
    assert ",".join(KLINE_COLUMNS) == (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    )
    assert ",".join(FUNDING_RATE_COLUMNS) == "calc_time,funding_interval_hours,last_funding_rate"


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_agg_trades(tmp_path: Path, header: bool, compression: str) -> None:
    rows = [
        [1993311400, "42314.00", "0.005", 4496394860, 4496394860, MS0 + 7, "true"],
        [1993311401, "42314.10", "1.250", 4496394861, 4496394865, MS0 + 7, "false"],
        [1993311402, "42314.10", "0.100", 4496394866, 4496394866, MS0 + 9, "true"],
    ]
    f = write(
        tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv",
        csv_text(AGG_TRADES_COLUMNS if header else None, rows),
        compression,
    )
    assert detect_format(f) == "binance.aggTrades"
    events = list(read(f))
    assert events == [
        Trade(
            (MS0 + 7) * MS,
            (MS0 + 7) * MS,
            "BTCUSDT",
            D("42314.00"),
            D("0.005"),
            "sell",  # buyer was maker: the aggressor sold
            "1993311400",
            "binance-futures",
        ),
        Trade(
            (MS0 + 7) * MS,
            (MS0 + 7) * MS,
            "BTCUSDT",
            D("42314.10"),
            D("1.250"),
            "buy",
            "1993311401",
            "binance-futures",
        ),
        Trade(
            (MS0 + 9) * MS,
            (MS0 + 9) * MS,
            "BTCUSDT",
            D("42314.10"),
            D("0.100"),
            "sell",
            "1993311402",
            "binance-futures",
        ),
    ]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_trades(tmp_path: Path, header: bool, compression: str) -> None:
    rows = [
        [4496394860, "42314.00", "0.005", "211.57000", MS0 + 7, "True"],
        [4496394861, "42314.10", "0.010", "423.14100", MS0 + 8, "False"],
    ]
    f = write(
        tmp_path / "ETHUSDT-trades-2024-01-01.csv",
        csv_text(TRADES_COLUMNS if header else None, rows),
        compression,
    )
    assert detect_format(f) == "binance.trades"
    a, b = read(f)
    assert a == Trade(
        (MS0 + 7) * MS,
        (MS0 + 7) * MS,
        "ETHUSDT",
        D("42314.00"),
        D("0.005"),
        "sell",
        "4496394860",
        "binance-futures",
    )
    assert (b.side, b.trade_id, b.amount) == ("buy", "4496394861", D("0.010"))


def _kline_rows(n: int = 3) -> list[list[object]]:
    rows: list[list[object]] = []
    for i in range(n):
        o = MS0 + i * 60_000
        rows.append(
            [o, f"4231{i}.5", f"4232{i}.0", f"4230{i}.0", f"4231{i}.9", "0", o + 59_999]
            + ["0", 60, "0", "0", "0"]
        )
    return rows


KLINE_KINDS = [
    ("BTCUSDT-1m-2024-01-01.csv", "binance.klines", "trade"),
    ("BTCUSDT-markPriceKlines-1m-2024-01-01.csv", "binance.markPriceKlines", "mark"),
    ("BTCUSDT-indexPriceKlines-1m-2024-01-01.csv", "binance.indexPriceKlines", "index"),
    ("BTCUSDT-premiumIndexKlines-1m-2024-01-01.csv", "binance.premiumIndexKlines", "premium"),
]


@pytest.mark.parametrize(("name", "fmt", "kind"), KLINE_KINDS)
@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_klines(
    tmp_path: Path, name: str, fmt: str, kind: str, header: bool, compression: str
) -> None:
    f = write(
        tmp_path / name, csv_text(KLINE_COLUMNS if header else None, _kline_rows()), compression
    )
    assert detect_format(f) == fmt
    bars = list(read(f))
    assert len(bars) == 3
    assert bars[1] == Kline(
        exchange_ts=(MS0 + 120_000) * MS,  # the bar's end: no look-ahead when merged
        local_ts=(MS0 + 120_000) * MS,
        symbol="BTCUSDT",
        kind=kind,  # type: ignore[arg-type]
        open_ts=(MS0 + 60_000) * MS,
        open=D("42311.5"),
        high=D("42321.0"),
        low=D("42301.0"),
        close=D("42311.9"),
        volume=D("0"),
        exchange="binance-futures",
    )
    assert all(b.interval_ns == 60 * 10**9 for b in bars)


def test_premium_index_klines_may_be_negative(tmp_path: Path) -> None:
    row = [MS0, "-0.00012", "0.00001", "-0.00020", "-0.00005", "0", MS0 + 59_999, "0", 12]
    f = write(
        tmp_path / "BTCUSDT-premiumIndexKlines-1m-2024-01-01.csv",
        csv_text(None, [row + ["0", "0", "0"]]),
    )
    (bar,) = read(f)
    assert (bar.kind, bar.open, bar.low) == ("premium", D("-0.00012"), D("-0.00020"))


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_funding_rate(tmp_path: Path, header: bool, compression: str) -> None:
    rows = [[MS0, 8, "0.00037409"], [MS0 + 8 * 3_600_000 + 3, 8, "-0.00010000"]]
    f = write(
        tmp_path / "BTCUSDT-fundingRate-2024-01.csv",
        csv_text(FUNDING_RATE_COLUMNS if header else None, rows),
        compression,
    )
    assert detect_format(f) == "binance.fundingRate"
    assert list(read(f)) == [
        FundingRate(MS0 * MS, MS0 * MS, "BTCUSDT", D("0.00037409"), 8, "binance-futures"),
        FundingRate(
            (MS0 + 28_800_003) * MS,
            (MS0 + 28_800_003) * MS,
            "BTCUSDT",
            D("-0.00010000"),
            8,
            "binance-futures",
        ),
    ]


def test_microsecond_timestamps_detected(tmp_path: Path) -> None:
    us0 = MS0 * 1000
    rows = [[1, "100.5", "2", 1, 1, us0 + 1, "false"], [2, "100.5", "1", 2, 2, us0 + 2, "true"]]
    f = write(tmp_path / "BTCUSDT-aggTrades-2025-01-01.csv", csv_text(None, rows))
    a, b = read(f)
    assert (a.exchange_ts, b.exchange_ts) == ((us0 + 1) * 1000, (us0 + 2) * 1000)


def test_symbol_and_exchange_options(tmp_path: Path) -> None:
    rows = [[1, "1.5", "2", 1, 1, MS0, "false"]]
    f = write(tmp_path / "mydata.csv", csv_text(AGG_TRADES_COLUMNS, rows))
    with pytest.raises(ReplayFormatError, match="symbol"):
        list(read(f))
    (t,) = read(f, symbol="SOLUSDT", exchange="binance")
    assert (t.symbol, t.exchange) == ("SOLUSDT", "binance")


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_tick_level_depth(tmp_path: Path, header: bool, compression: str) -> None:
    rows = [
        ["BTCUSDT", MS0, 100, 100, "b", "snap", "20377.00", "1.770", -1],
        ["BTCUSDT", MS0, 100, 100, "a", "snap", "20377.10", "0.500", -1],
        ["BTCUSDT", MS0 + 5, 101, 103, "a", "set", "20377.10", "0.000", 100],
        ["BTCUSDT", MS0 + 5, 101, 103, "b", "set", "20376.90", "2.000", 100],
        ["BTCUSDT", MS0 + 9, 104, 104, "b", "set", "20377.00", "0.5", 103],
    ]
    f = write(
        tmp_path / "BTCUSDT_T_DEPTH_2024-01-01_depth_update.csv",
        csv_text(DEPTH_COLUMNS if header else None, rows),
        compression,
    )
    assert detect_format(f) == "binance.depth"
    snap, upd1, upd2 = read(f)
    assert snap.snapshot and not upd1.snapshot and not upd2.snapshot
    assert snap.bids == (BookLevel(D("20377.00"), D("1.770")),)
    assert snap.asks == (BookLevel(D("20377.10"), D("0.500")),)
    assert (snap.exchange_ts, snap.local_ts, snap.update_id) == (MS0 * MS, MS0 * MS, 100)
    assert upd1.asks == (BookLevel(D("20377.10"), D("0.000")),)
    assert upd1.bids == (BookLevel(D("20376.90"), D("2.000")),)
    assert (upd1.update_id, upd2.update_id) == (103, 104)


def test_binance_errors_name_the_column(tmp_path: Path) -> None:
    rows = [
        [1, "1.5", "2", 1, 1, MS0, "false"],
        [2, "1.5", "2", 2, 2, MS0 + 1, "maybe"],
    ]
    f = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", csv_text(AGG_TRADES_COLUMNS, rows))
    with pytest.raises(ReplayFormatError) as err:
        list(read(f))
    assert err.value.line == 3
    assert "is_buyer_maker" in err.value.problem and "'maybe'" in err.value.problem


def test_overlapping_klines_rejected(tmp_path: Path) -> None:
    rows = _kline_rows(2)
    rows[1][0] = MS0 + 30_000  # starts inside the previous bar
    f = write(tmp_path / "BTCUSDT-markPriceKlines-1m-2024-01-01.csv", csv_text(None, rows))
    with pytest.raises(ReplayFormatError) as err:
        list(read(f))
    assert err.value.line == 2
    assert "open_time goes backwards" in err.value.problem and "overlap" in err.value.problem
