"""Plain OHLCV bars: timestamp unit / ISO format detected from the file."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import Kline, ReplayFormatError, detect_format, read
from replay.ohlcv import interval_from_name, parse_interval
from tests.replay.helpers import COMPRESSIONS, csv_text, write

HEADER = "timestamp,open,high,low,close,volume"
S0 = 1640991660  # 2021-12-31 23:01:00 UTC
NS = 10**9
BARS = [
    ("46319.0", "46385.0", "46319.0", "46377.0", "2300413.7295"),
    ("46377.0", "46411.0", "46377.0", "46411.0", "1829623.1938"),
]


def _rows(stamps: list[str]) -> list[list[str]]:
    return [[s, *bar] for s, bar in zip(stamps, BARS, strict=True)]


STAMPS = {
    "iso-space": ["2021-12-31 23:01:00.000000", "2021-12-31 23:02:00.000000"],
    "iso-t-z": ["2021-12-31T23:01:00Z", "2021-12-31T23:02:00Z"],
    "iso-offset": ["2022-01-01T00:01:00+01:00", "2022-01-01T00:02:00+01:00"],
    "s": [str(S0), str(S0 + 60)],
    "ms": [str(S0 * 1000), str((S0 + 60) * 1000)],
    "us": [str(S0 * 10**6), str((S0 + 60) * 10**6)],
    "ns": [str(S0 * NS), str((S0 + 60) * NS)],
    "s-decimal": [f"{S0}.0", f"{S0 + 60}.000"],
}


@pytest.mark.parametrize("style", list(STAMPS))
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_ohlcv_timestamp_styles(tmp_path: Path, style: str, header: bool, compression: str) -> None:
    f = write(
        tmp_path / "btc-perp_1m.csv",
        csv_text(HEADER if header else None, _rows(STAMPS[style])),
        compression,
    )
    assert detect_format(f) == "ohlcv"
    a, b = read(f, symbol="BTCUSDT")
    assert a == Kline(
        exchange_ts=(S0 + 60) * NS,
        local_ts=(S0 + 60) * NS,
        symbol="BTCUSDT",
        kind="trade",
        open_ts=S0 * NS,
        open=D("46319.0"),
        high=D("46385.0"),
        low=D("46319.0"),
        close=D("46377.0"),
        volume=D("2300413.7295"),
        exchange="",
    )
    assert b.open_ts == (S0 + 60) * NS and b.close == D("46411.0")


def test_ohlcv_options(tmp_path: Path) -> None:
    f = write(tmp_path / "bars.csv", csv_text(HEADER, _rows(STAMPS["s"])))
    a, _ = read(f, kind="mark", interval="30s", exchange="x")
    assert (a.kind, a.interval_ns, a.exchange, a.symbol) == ("mark", 30 * NS, "x", "bars")
    with pytest.raises(ValueError, match="kind"):
        read(f, kind="weird")


def test_interval_parsing() -> None:
    assert interval_from_name("btc-perp-20211231-20220201_1m.csv") == 60 * NS
    assert interval_from_name("ETHUSDT-5m-2024-01.csv.gz") == 300 * NS
    assert interval_from_name("bars_4h.zip") == 4 * 3600 * NS
    assert interval_from_name("bars.csv") is None
    assert parse_interval("1d") == 86400 * NS and parse_interval(15) == 15 * NS
    with pytest.raises(ValueError):
        parse_interval("0m")


def test_hour_bars_from_name_and_overlap_check(tmp_path: Path) -> None:
    rows = [[str(S0 + i * 3600), "1", "2", "0.5", "1.5", "10"] for i in range(3)]
    f = write(tmp_path / "x_1h.csv", csv_text(HEADER, rows))
    assert [k.interval_ns for k in read(f)] == [3600 * NS] * 3
    # read as one-day bars, they overlap: that is an error, on the second data line
    with pytest.raises(ReplayFormatError) as err:
        list(read(f, interval="1d"))
    assert err.value.line == 3
    assert "overlap" in err.value.problem


def test_ohlcv_mixed_timestamp_styles_rejected(tmp_path: Path) -> None:
    rows = _rows([str(S0), "2021-12-31 23:02:00"])
    f = write(tmp_path / "x.csv", csv_text(HEADER, rows))
    with pytest.raises(ReplayFormatError) as err:
        list(read(f))
    assert err.value.line == 3
    assert "timestamp" in err.value.problem and "integer epoch" in err.value.problem


def test_ohlcv_low_above_high_rejected(tmp_path: Path) -> None:
    rows = [[str(S0), "1", "2", "3", "1.5", "10"]]
    f = write(tmp_path / "x.csv", csv_text(HEADER, rows))
    with pytest.raises(ReplayFormatError, match=r"x\.csv:2: low is above high"):
        list(read(f))


@pytest.mark.parametrize("bad", ["NaN", "sNaN", "Infinity", "-Infinity", "abc"])
@pytest.mark.parametrize("column", [1, 2, 3, 4])
def test_ohlcv_non_finite_prices_rejected_even_after_good_rows(
    tmp_path: Path, bad: str, column: int
) -> None:
    """Each price text is parsed once and then remembered: a bad one is never let in, on
    its first row or after rows whose prices were fine."""
    good = [str(S0), "1", "2", "1", "1.5", "10"]
    row = list(good)
    row[0] = str(S0 + 60)
    row[column] = bad
    f = write(tmp_path / "x.csv", csv_text(HEADER, [good, row, good]))
    name = HEADER.split(",")[column]
    with pytest.raises(ReplayFormatError, match=rf"x\.csv:3: column {column + 1} \({name}\)"):
        list(read(f))
    bars = list(read(write(tmp_path / "y.csv", csv_text(HEADER, [good]))))
    assert [(b.open, b.high, b.low, b.close) for b in bars] == [(D(1), D(2), D(1), D("1.5"))]
