"""``python -m replay`` (convert, detect) and the parse-only benchmark helper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replay import Kline, Trade, read_event_log
from replay.bench_parse import parse_only
from replay.cli import main
from tests.replay.helpers import csv_text, write

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
T0 = 1640991660  # 2021-12-31 23:01:00 UTC


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    us = T0 * 10**6
    trades = write(
        tmp_path / "binance-futures_trades_2021-12-31_BTCUSDT.csv",
        csv_text(
            TRADES_HEADER,
            [
                [
                    "binance-futures",
                    "BTCUSDT",
                    us + 30 * 10**6,
                    us + 30 * 10**6,
                    "1",
                    "buy",
                    "1",
                    "2",
                ],
                [
                    "binance-futures",
                    "BTCUSDT",
                    us + 90 * 10**6,
                    us + 90 * 10**6,
                    "2",
                    "sell",
                    "3",
                    "4",
                ],
            ],
        ),
        "gz",
    )
    bars = write(
        tmp_path / "bars_1m.csv",
        csv_text(
            "timestamp,open,high,low,close,volume",
            [[T0, "1", "2", "0.5", "1.5", "10"], [T0 + 60, "1.5", "2", "1", "1", "5"]],
        ),
        "zip",
    )
    return trades, bars


def test_convert_merges_into_an_event_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trades, bars = _inputs(tmp_path)
    out = tmp_path / "out.jsonl.gz"
    assert main(["convert", str(trades), str(bars), "-o", str(out), "--symbol", "BTCUSDT"]) == 0
    assert "wrote 4 events" in capsys.readouterr().err
    events = list(read_event_log(out))
    # bars are stamped at their end: trade@30s, bar ending 60s, trade@90s, bar ending 120s
    assert [type(e) for e in events] == [Trade, Kline, Trade, Kline]
    assert [e.exchange_ts for e in events] == sorted(e.exchange_ts for e in events)
    assert events[1].symbol == "BTCUSDT"


def test_detect_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trades, bars = _inputs(tmp_path)
    assert main(["detect", str(trades), str(bars)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{trades}: tardis.trades", f"{bars}: ohlcv"]
    bad = write(
        tmp_path / "bad.csv", csv_text(TRADES_HEADER, [["e", "X", "1", "1", "i", "up", "1", "1"]])
    )
    assert main(["convert", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: column 6 (side) 'up'" in err


def test_python_dash_m(tmp_path: Path) -> None:
    trades, _ = _inputs(tmp_path)
    out = tmp_path / "o.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "replay", "convert", str(trades), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list(read_event_log(out))) == 2


def test_parse_only_counts_events(tmp_path: Path) -> None:
    trades, bars = _inputs(tmp_path)
    assert parse_only([trades, bars]) == 4
    assert parse_only([]) == 0
