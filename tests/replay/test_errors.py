"""Malformed files: every problem names the file, the line and what is wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from replay import ReplayFormatError, detect_format, read
from replay.tardis import book_snapshot_columns
from tests.replay.helpers import csv_text, write

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
T0 = 1583020803145000


def _row(i: int, **over: object) -> list[object]:
    row: dict[str, object] = {
        "exchange": "bitmex",
        "symbol": "XBTUSD",
        "timestamp": T0 + i,
        "local_timestamp": T0 + 100 + i,
        "id": f"id{i}",
        "side": "sell",
        "price": "8531.5",
        "amount": "10",
    }
    row.update(over)
    return list(row.values())


def _bad_trades(tmp_path: Path, bad: list[object], compression: str = "plain") -> Path:
    rows = [_row(0), _row(1), bad, _row(3)]
    return write(tmp_path / "bitmex_trades.csv", csv_text(TRADES_HEADER, rows), compression)


def _error(path: Path, **kw: object) -> ReplayFormatError:
    with pytest.raises(ReplayFormatError) as err:
        list(read(path, **kw))  # type: ignore[arg-type]
    return err.value


CASES = [
    (_row(2)[:7], "expected 8 columns (exchange,symbol,timestamp,local_timestamp,id,side,"),
    (_row(2) + ["x"], "expected 8 columns"),
    (_row(2, price="8531.5.1"), "column 7 (price) '8531.5.1' is not a finite decimal number"),
    (_row(2, price="NaN"), "column 7 (price) 'NaN' is not a finite decimal number"),
    (_row(2, price="Infinity"), "column 7 (price) 'Infinity' is not a finite decimal number"),
    (_row(2, price="0"), "column 7 (price) '0' must be > 0"),
    (_row(2, amount="-1"), "column 8 (amount) '-1' must be >= 0"),
    (_row(2, amount="1e"), "column 8 (amount) '1e' is not a finite decimal number"),
    (_row(2, side="long"), "column 6 (side) 'long' must be one of buy, sell, unknown"),
    (_row(2, timestamp="2020-03-01"), "column 3 (timestamp) '2020-03-01' is not a non-negative"),
    (_row(2, local_timestamp="-5"), "column 4 (local_timestamp) '-5' is not a non-negative"),
    (_row(2, local_timestamp=T0), "local_timestamp goes backwards"),
    (_row(2, local_timestamp="9" * 20), "out of range"),
]


@pytest.mark.parametrize(("bad", "problem"), CASES)
@pytest.mark.parametrize("compression", ["plain", "gz"])
def test_malformed_trade_rows(
    tmp_path: Path, bad: list[object], problem: str, compression: str
) -> None:
    f = _bad_trades(tmp_path, bad, compression)
    it = read(f)
    good = [next(it), next(it)]  # rows before the bad one are delivered first
    assert [e.trade_id for e in good] == ["id0", "id1"]
    with pytest.raises(ReplayFormatError) as err:
        next(it)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.line == 4  # header is line 1
    assert e.path == str(f)
    assert problem in e.problem
    assert str(e) == f"{f}:4: {e.problem}"


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path: Path) -> None:
    text = csv_text(TRADES_HEADER, [_row(0)]) + "\n" + csv_text(None, [_row(1, price="x")])
    f = write(tmp_path / "t.csv", text)
    e = _error(f)
    assert e.line == 4 and "price" in e.problem


def test_crlf_line_ends(tmp_path: Path) -> None:
    text = csv_text(TRADES_HEADER, [_row(0), _row(1), _row(2, amount="?")]).replace("\n", "\r\n")
    f = write(tmp_path / "t.csv", text)
    e = _error(f)
    assert e.line == 4 and "amount" in e.problem


def test_book_snapshot_price_without_amount(tmp_path: Path) -> None:
    header = book_snapshot_columns(2)
    good = ["binance-futures", "BTCUSDT", T0, T0, "10.5", "1", "10", "2", "11", "1", "9", "1"]
    bad = list(good)
    bad[9] = ""  # asks[1].amount missing
    f = write(tmp_path / "s.csv", csv_text(header, [good, bad]))
    e = _error(f)
    assert e.line == 3
    assert e.problem == "columns 9 and 10 must both be empty or both be set"


def test_book_snapshot_wrong_width(tmp_path: Path) -> None:
    header = book_snapshot_columns(2)
    row = ["binance-futures", "BTCUSDT", T0, T0, "10.5", "1", "10", "2"]
    f = write(tmp_path / "s.csv", csv_text(header, [row]))
    e = _error(f)
    assert e.line == 2 and "expected 12 columns" in e.problem


def test_l2_bad_side(tmp_path: Path) -> None:
    header = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
    rows = [["deribit", "X", T0, T0, "false", "buy", "1", "1"]]
    f = write(tmp_path / "l2.csv", csv_text(header, rows))
    e = _error(f)
    assert e.line == 2 and e.problem == "column 6 (side) 'buy' must be one of bid, ask"


def test_header_mismatch_when_format_forced(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", csv_text(TRADES_HEADER, [_row(0)]))
    e = _error(f, format="tardis.quotes")
    assert e.line == 1 and "does not match tardis.quotes" in e.problem


def test_unknown_format(tmp_path: Path) -> None:
    f = write(tmp_path / "mystery.csv", "a,b\n1,2\n")
    e = _error(f)
    assert e.line == 1 and "cannot detect the format" in e.problem and "format=" in e.problem
    with pytest.raises(ReplayFormatError):
        detect_format(f)
    with pytest.raises(ValueError, match="unknown format"):
        read(f, "tardis.nope")


def test_zip_must_hold_one_csv(tmp_path: Path) -> None:
    f = tmp_path / "two.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("a.csv", csv_text(TRADES_HEADER, [_row(0)]))
        zf.writestr("b.csv", csv_text(TRADES_HEADER, [_row(1)]))
    e = _error(f)
    assert e.line is None and "exactly one CSV member" in e.problem and "a.csv, b.csv" in e.problem
    # a lone CSV beside other files is fine
    g = tmp_path / "one.zip"
    with zipfile.ZipFile(g, "w") as zf:
        zf.writestr("README.txt.md", "hello")
        zf.writestr("bitmex_trades.csv", csv_text(TRADES_HEADER, [_row(0)]))
    assert [e.trade_id for e in read(g)] == ["id0"]


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read(tmp_path / "nope.csv"))


def test_empty_file_has_no_events(tmp_path: Path) -> None:
    f = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", "", "gz")
    assert list(read(f)) == []
    h = write(tmp_path / "only_header.csv", csv_text(TRADES_HEADER, []))
    assert list(read(h)) == []
