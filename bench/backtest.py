"""`python -m bench backtest --json`: a moving-average crossover over a month of 1-minute bars.

The strategy (`replay.strategy.MovingAverageCross`): 20/60-bar means of the step's mark,
always in the market, 0.2 BTC, 10× leverage, market orders. The data: the real bars of
`../shared/data/real/btc-perp-20211231-20220201_1m.csv` (`--data` for another file), with the
same synthetic liquidity (the default `SyntheticBook`: 3 levels a side, 2 bp spread) each way.
In the same run:

* `inprocess_bars_per_s`: `replay.inprocess.backtest` over every bar (the core matches the
  strategy's orders against the book, margins, funds and liquidates);
* `lockstep_bars_per_s`: `margincall backtest`'s path — the server, the strategy over a real
  WebSocket in lockstep — over the first `--lockstep-bars` bars (default 4,320: three days; the
  whole month takes minutes), same strategy and options;
* `backtrader_bars_per_s` (where backtrader is installed, the `[bench]` extra): the same
  crossover on the same file in backtrader (its CSV feed, `SMA`s, `order_target_size`, the
  same taker fee), and `ratio_vs_backtrader` = in-process / backtrader.

Every rate counts the file's bars over wall time, parsing included. `trades` is the number
of orders the strategy placed (and `backtrader_trades` backtrader's). The in-process run and
backtrader's take turns `--repeat` times (default 3); the best run of each is reported, as
timeit does (the run least disturbed by other work on the machine), with every run's rate
listed (`*_runs_bars_per_s`) and the load when they ended (`load_1min`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from bench import load_1min

ROOT = Path(__file__).resolve().parents[1]
BARS = ROOT / ".." / "shared" / "data" / "real" / "btc-perp-20211231-20220201_1m.csv"
STRATEGY = "replay.strategy:MovingAverageCross"
PARAMS = {"fast": "20", "slow": "60", "qty": "0.2", "leverage": "10"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=BARS, help="1-minute OHLCV bars")
    p.add_argument("--bars", type=int, default=0, help="use only the first N bars (0: all)")
    p.add_argument("--lockstep-bars", type=int, default=4320, help="bars for the lockstep run")
    p.add_argument("--no-lockstep", action="store_true")
    p.add_argument("--no-backtrader", action="store_true")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the in-process backtest and of backtrader, alternating; the best of "
        "each is reported (the least disturbed by other load), every run is listed",
    )


def _options(data: Path, bars: int) -> Any:
    from replay.backtest import SessionOptions
    from replay.player import SyntheticBook

    opts = SessionOptions(
        data=[str(data)],
        symbol="BTCUSDT",
        step_ns=60 * 10**9,
        strategy=STRATEGY,
        strategy_params=dict(PARAMS),
        synthetic=SyntheticBook(),
        trades=True,
        progress=False,
        port=0,
        only_symbols=["BTCUSDT"],
    )
    if bars:
        opts.end_ns = _first_open(data) + bars * 60 * 10**9
    return opts


def _first_open(data: Path) -> int:
    from replay.formats import read

    return next(iter(read(data, symbol="BTCUSDT"))).open_ts  # type: ignore[attr-defined]


def _count(opts: Any) -> int:
    from replay.formats import read

    n = 0
    for ev in read(opts.data[0], symbol="BTCUSDT"):
        if opts.end_ns is not None and ev.open_ts >= opts.end_ns:  # type: ignore[attr-defined]
            break
        n += 1
    return n


def inprocess(opts: Any) -> tuple[float, Any]:
    from replay.inprocess import run_inprocess

    t = time.perf_counter()
    run = asyncio.run(run_inprocess(opts))
    return time.perf_counter() - t, run


def lockstep(opts: Any) -> tuple[float, Any]:
    from replay.backtest import run_session

    opts = dataclasses.replace(opts, lockstep=True)
    t = time.perf_counter()
    res = asyncio.run(run_session(opts))
    return time.perf_counter() - t, res


def backtrader_run(data: Path, bars: int, fee: float) -> tuple[float, int, int]:
    """(seconds, bars, orders) for the same crossover in backtrader."""
    import backtrader as bt

    class Cross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=20)
            self.slow = bt.indicators.SMA(self.data.close, period=60)
            self.orders = 0

        def next(self) -> None:
            if bars and len(self.data) > bars:
                self.env.runstop()  # the same first `bars` bars as margincall
                return
            want = 0.2 if self.fast[0] > self.slow[0] else -0.2
            if self.position.size != want:
                self.order_target_size(target=want)
                self.orders += 1

    t = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    feed = bt.feeds.GenericCSVData(
        dataname=str(data),
        dtformat="%Y-%m-%d %H:%M:%S.%f",
        datetime=0,
        open=1,
        high=2,
        low=3,
        close=4,
        volume=5,
        openinterest=-1,
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
    )
    cerebro.adddata(feed)
    cerebro.addstrategy(Cross)
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=fee, leverage=10.0)
    cerebro.broker.set_shortcash(False)
    (strat,) = cerebro.run(runonce=False)
    n = min(len(strat.data), bars) if bars else len(strat.data)
    return time.perf_counter() - t, n, strat.orders


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    data = Path(getattr(args, "data", None) or BARS)
    if not data.exists():
        raise SystemExit(f"{data} is absent (the shared real-data folder beside the repo)")
    bars_limit = getattr(args, "bars", 0) or 0
    opts = _options(data, bars_limit)
    bars = _count(opts)
    repeat = max(1, getattr(args, "repeat", 1) or 1)
    with_bt = not getattr(args, "no_backtrader", False)
    if with_bt:
        try:
            import backtrader  # noqa: F401
        except ImportError:
            with_bt = False
    runs: list[float] = []
    bt_runs: list[tuple[float, int, int]] = []
    fee = 0.0
    ip: Any = None
    for _ in range(repeat):
        secs, ip = inprocess(opts)
        runs.append(secs)
        if with_bt:
            fee = ip.exchange.instruments["BTCUSDT"].taker_fee / 10**8
            bt_runs.append(backtrader_run(data, bars_limit, fee))
    secs = min(runs)
    out: dict[str, Any] = {
        "bars": bars,
        "inprocess_s": round(secs, 3),
        "inprocess_bars_per_s": round(bars / secs),
        "inprocess_runs_bars_per_s": [round(bars / t) for t in runs],
        "trades": ip.recorder.orders.__len__(),
        "fills": sum(1 for f in ip.recorder.fills if f[1] == ip.strategy_account),
        "player_commands": ip.player.stats.commands,
        "core_events": ip.recorder.events,
        "state_hash": ip.state_hash[:16],
        "load_1min": load_1min(),
    }
    if not getattr(args, "no_lockstep", False):
        n = getattr(args, "lockstep_bars", 4320) or 4320
        lopts = _options(data, min(n, bars))
        lbars = _count(lopts)
        lsecs, _ = lockstep(lopts)
        out["lockstep_bars"] = lbars
        out["lockstep_bars_per_s"] = round(lbars / lsecs)
        out["ratio_vs_lockstep"] = round(
            out["inprocess_bars_per_s"] / out["lockstep_bars_per_s"], 1
        )
    if not getattr(args, "no_backtrader", False) and not with_bt:
        out["backtrader"] = "not installed (pip install 'margincall[bench]')"
    elif bt_runs:
        bsecs, bbars, borders = min(bt_runs)
        out["backtrader_bars"] = bbars
        out["backtrader_bars_per_s"] = round(bbars / bsecs)
        out["backtrader_runs_bars_per_s"] = [round(b / t) for t, b, _ in bt_runs]
        out["backtrader_trades"] = borders
        out["ratio_vs_backtrader"] = round(
            out["inprocess_bars_per_s"] / out["backtrader_bars_per_s"], 2
        )
    return out
