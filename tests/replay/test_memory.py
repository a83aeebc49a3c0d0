"""Readers stream: memory stays flat however long the file is."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

from replay import merge, read, read_event_log, write_event_log

HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
T0 = 1598918403696000


def _trades_gz(path: Path, lines: int, seed: int = 7) -> Path:
    rnd = random.Random(seed)
    t = T0
    chunk = []
    with gzip.open(path, "wt", compresslevel=1, newline="") as f:
        f.write(HEADER)
        for i in range(lines):
            t += rnd.randint(0, 900)
            side = "buy" if rnd.random() < 0.5 else "sell"
            price = 11650 + rnd.randint(0, 999) / 100
            chunk.append(
                f"binance-futures,BTCUSDT,{t},{t + 120},{i},{side},{price},0.{i % 997:03d}\n"
            )
            if len(chunk) == 10_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return path


def _peak(consume: Callable[[], int]) -> tuple[int, int]:
    tracemalloc.start()
    try:
        n = consume()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return n, peak


def _count(events: Iterable[object]) -> int:
    n = 0
    for _ in events:
        n += 1
    return n


def test_constant_memory_on_200k_line_gzip(tmp_path: Path) -> None:
    big = _trades_gz(tmp_path / "big_trades.csv.gz", 200_000)
    small = _trades_gz(tmp_path / "small_trades.csv.gz", 2_000)
    n_small, peak_small = _peak(lambda: _count(read(small)))
    n_big, peak_big = _peak(lambda: _count(read(big)))
    assert (n_small, n_big) == (2_000, 200_000)
    # ~13 MB of CSV text and 200k events went through; the peak is a few buffers
    assert peak_big < 1_000_000, peak_big
    assert peak_big < peak_small + 250_000, (peak_small, peak_big)


def test_merge_and_event_log_stream(tmp_path: Path) -> None:
    a = _trades_gz(tmp_path / "a_trades.csv.gz", 10_000, seed=1)
    b = _trades_gz(tmp_path / "b_trades.csv.gz", 10_000, seed=2)
    log = tmp_path / "merged.jsonl.gz"
    n, peak = _peak(lambda: write_event_log(log, merge([read(a), read(b)])))
    assert n == 20_000 and peak < 1_500_000, peak
    n, peak = _peak(lambda: _count(read_event_log(log)))
    assert n == 20_000 and peak < 1_000_000, peak
