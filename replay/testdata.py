"""Small synthetic market-data files in the exact published layouts (tests, benchmark, demos).

Every generator is seeded and writes integers and fixed-point text only, so the same call
writes the same bytes (gzip without a timestamp). Prices follow a random walk in ticks of
0.1 around `start` (BTCUSDT-like); times are µs, as Tardis writes them.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "TRADES_HEADER",
    "TICKER_HEADER",
    "BOOK_HEADER",
    "OHLCV_HEADER",
    "write_text",
    "tardis_trades",
    "tardis_ticker",
    "tardis_book",
    "ohlcv_bars",
    "write_tardis_pair",
    "write_tardis_session",
]

TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
TICKER_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
)
BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
OHLCV_HEADER = "timestamp,open,high,low,close,volume"
EX = "binance-futures"


def _px(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}"


def _qty(lots: int) -> str:
    return f"{lots // 1000}.{lots % 1000:03d}"


def write_text(path: Path, lines: Iterator[str]) -> Path:
    """Write lines (each without its newline); gzip when the name ends in .gz (mtime 0)."""
    data = "".join(line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    else:
        path.write_bytes(data)
    return path


def _walk(n: int, start: int, seed: int, vol: int) -> list[int]:
    rng = random.Random(seed)
    out, p = [], start
    for _ in range(n):
        p = max(10, p + rng.randint(-vol, vol))
        out.append(p)
    return out


def tardis_trades(
    n: int, t0_us: int, *, step_us: int = 1000, start: int = 400_000, seed: int = 1,
    symbol: str = "BTCUSDT",
) -> Iterator[str]:  # fmt: skip
    """Trades every `step_us`: side random, 0.001–2 BTC, price walking ±3 ticks."""
    rng = random.Random(seed + 1)
    yield TRADES_HEADER
    for i, p in enumerate(_walk(n, start, seed, 3)):
        ts = t0_us + i * step_us
        side = "buy" if rng.random() < 0.5 else "sell"
        yield f"{EX},{symbol},{ts},{ts + 7},{i + 1},{side},{_px(p)},{_qty(rng.randint(1, 2000))}"


def tardis_ticker(
    n: int, t0_us: int, *, step_us: int = 10_000, start: int = 400_000, seed: int = 1,
    symbol: str = "BTCUSDT", blanks: bool = True,
) -> Iterator[str]:  # fmt: skip
    """Derivative ticker rows every `step_us`; with `blanks`, unchanged cells left empty."""
    rng = random.Random(seed + 2)
    yield TICKER_HEADER
    funding_ts = (t0_us // (8 * 3600 * 10**6) + 1) * 8 * 3600 * 10**6
    for i, p in enumerate(_walk(n, start, seed + 3, 4)):
        ts = t0_us + i * step_us
        mark = p + rng.randint(-3, 3)
        rate = f"0.000{rng.randint(10, 99)}"
        if blanks and i % 4:
            yield f"{EX},{symbol},{ts},{ts + 5},,,,,{_px(p)},{_px(p)},{_px(mark)}"
        else:
            yield (
                f"{EX},{symbol},{ts},{ts + 5},{funding_ts},{rate},{rate},12345.678,"
                f"{_px(p)},{_px(p)},{_px(mark)}"
            )


def tardis_book(
    n: int, t0_us: int, *, step_us: int = 100_000, start: int = 400_000, seed: int = 1,
    depth: int = 10, symbol: str = "BTCUSDT",
) -> Iterator[str]:  # fmt: skip
    """incremental_book_L2: a snapshot of `depth` levels a side, then `n` update messages
    that re-centre the book on a random walk (levels leaving it are deleted)."""
    rng = random.Random(seed + 4)
    yield BOOK_HEADER
    mid = start
    bids = {mid - 1 - k: rng.randint(1, 3000) for k in range(depth)}
    asks = {mid + 1 + k: rng.randint(1, 3000) for k in range(depth)}
    ts = t0_us
    for side, book in (("bid", bids), ("ask", asks)):
        for p in sorted(book, reverse=side == "bid"):
            yield f"{EX},{symbol},{ts},{ts},true,{side},{_px(p)},{_qty(book[p])}"
    for i, m in enumerate(_walk(n, start, seed + 5, 2)):
        ts = t0_us + (i + 1) * step_us
        new_b = {m - 1 - k for k in range(depth)}
        new_a = {m + 1 + k for k in range(depth)}
        rows = []
        for side, book, new in (("bid", bids, new_b), ("ask", asks, new_a)):
            for p in sorted(set(book) - new):
                del book[p]
                rows.append((side, p, 0))
            for p in sorted(new):
                if p not in book or rng.random() < 0.3:
                    book[p] = rng.randint(1, 3000)
                    rows.append((side, p, book[p]))
        for side, p, q in rows:
            yield f"{EX},{symbol},{ts},{ts},false,{side},{_px(p)},{_qty(q)}"


def ohlcv_bars(
    n: int, t0_s: int, *, start: int = 400_000, seed: int = 1, interval_s: int = 60
) -> Iterator[str]:
    """Plain OHLCV bars (ISO times), each bar walking 10 steps of ±40 ticks."""
    from datetime import UTC, datetime

    rng = random.Random(seed + 6)
    yield OHLCV_HEADER
    p = start
    for i in range(n):
        o = p
        path = [o]
        for _ in range(10):
            p = max(100, p + rng.randint(-40, 40))
            path.append(p)
        t = datetime.fromtimestamp(t0_s + i * interval_s, UTC).strftime("%Y-%m-%d %H:%M:%S")
        yield f"{t},{_px(o)},{_px(max(path))},{_px(min(path))},{_px(p)},{rng.randint(1, 999)}.5"


def write_tardis_pair(
    folder: Path, trades: int = 200_000, tickers: int = 20_000, seed: int = 1
) -> list[Path]:
    """A gzip Tardis trades + derivative_ticker pair over the same span (the benchmark's)."""
    t0 = 1_600_000_000 * 10**6
    span = trades * 1000
    return [
        write_text(
            folder / "binance-futures_trades_2020-09-13_BTCUSDT.csv.gz",
            tardis_trades(trades, t0, step_us=1000, seed=seed),
        ),
        write_text(
            folder / "binance-futures_derivative_ticker_2020-09-13_BTCUSDT.csv.gz",
            tardis_ticker(tickers, t0, step_us=max(1, span // max(1, tickers)), seed=seed),
        ),
    ]


def write_tardis_session(
    folder: Path, seconds: int = 30, seed: int = 1, *, gz: bool = False
) -> list[Path]:
    """A small consistent Tardis session: an incremental L2 book re-centred every 100 ms,
    trades every 50 ms at its best bid or ask, a ticker every second with the mid as index
    and mark. Files: derivative_ticker, trades, incremental_book_L2."""
    t0 = 1_600_000_000 * 10**6
    ext = ".csv.gz" if gz else ".csv"
    n = seconds * 10
    mids = [400_000] + _walk(n, 400_000, seed + 5, 2)  # the book's walk (tardis_book)
    rng = random.Random(seed + 7)

    def ticker() -> Iterator[str]:
        yield TICKER_HEADER
        for i in range(seconds):
            ts = t0 + i * 10**6
            m = _px(mids[i * 10])
            yield f"{EX},BTCUSDT,{ts},{ts + 5},{t0 + 8 * 3600 * 10**6},0.0001,0.0001,1.0,{m},{m},{m}"

    def trades() -> Iterator[str]:
        yield TRADES_HEADER
        for i in range(seconds * 20):
            ts = t0 + 1000 + i * 50_000
            m = mids[(i + 1) // 2]
            buy = rng.random() < 0.5
            p = m + 1 if buy else m - 1
            side = "buy" if buy else "sell"
            yield f"{EX},BTCUSDT,{ts},{ts + 7},{i + 1},{side},{_px(p)},{_qty(rng.randint(1, 500))}"

    return [
        write_text(folder / f"binance-futures_derivative_ticker_2020-09-13_BTCUSDT{ext}", ticker()),
        write_text(folder / f"binance-futures_trades_2020-09-13_BTCUSDT{ext}", trades()),
        write_text(
            folder / f"binance-futures_incremental_book_L2_2020-09-13_BTCUSDT{ext}",
            tardis_book(n, t0, step_us=100_000, seed=seed),
        ),
    ]
