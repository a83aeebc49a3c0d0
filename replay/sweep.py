"""Parameter sweeps: the same backtest over a grid of strategy parameters, in parallel.

    from replay.sweep import sweep

    table = sweep("bars_1m.csv", "replay.strategy:MovingAverageCross",
                  {"fast": [10, 20, 40], "slow": [60, 120]}, symbol="BTCUSDT", step="1m")

Each combination is one in-process backtest (`replay.inprocess`) in a worker process of a
`concurrent.futures.ProcessPoolExecutor` (`workers=`, default: the CPU count), or in any
`concurrent.futures.Executor` you pass as `executor=` — e.g. Dask's
`distributed.Client(...).get_executor()` to spread it over a cluster (docs/backtest.md shows
that, and Ray). The result is a pandas DataFrame, one row per combination: the parameters,
then `BacktestResult.stats()`; rows in grid order (the first parameter varies slowest),
whatever order the workers finish in.

`run_one(options, params)` is the unit of work (a plain module-level function of picklable
arguments: what any distributed engine needs).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from replay.backtest import SessionOptions

__all__ = ["combinations", "parse_sweep", "run_one", "sweep"]


def combinations(grid: Mapping[str, Iterable[Any]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    values = [[str(v) for v in grid[k]] for k in keys]
    for k, v in zip(keys, values, strict=True):
        if not v:
            raise ValueError(f"sweep parameter {k!r} has no values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def parse_sweep(items: Iterable[str]) -> dict[str, list[str]]:
    """`["fast=10,20,40", "slow=60,120"]` → `{"fast": ["10", "20", "40"], "slow": [...]}`."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, vals = item.partition("=")
        values = [v.strip() for v in vals.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise ValueError(f"a sweep is name=v1,v2,..., not {item!r}")
        if key.strip() in grid:
            raise ValueError(f"sweep parameter {key.strip()!r} given twice")
        grid[key.strip()] = values
    return grid


def run_one(options: SessionOptions, params: Mapping[str, str]) -> dict[str, Any]:
    """One backtest of the sweep: `options` with `params` over its strategy parameters;
    returns the parameters, the statistics and the state hash as a plain dict."""
    import asyncio

    from replay.inprocess import run_inprocess
    from replay.results import BacktestResult

    opts = dataclasses.replace(
        options,
        strategy_params={**options.strategy_params, **params},
        report=None,
        progress=False,
    )
    res = BacktestResult(asyncio.run(run_inprocess(opts)))
    row: dict[str, Any] = dict(params)
    row.update(res.stats().to_dict())
    row["state_hash"] = res.state_hash
    row["warnings"] = len(res.warnings)
    return row


def sweep(
    data: str | Path | Iterable[str | Path] | SessionOptions,
    strategy: str | None,
    grid: Mapping[str, Iterable[Any]],
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    **kw: Any,
) -> Any:
    """Run the grid (see the module docstring); returns a pandas DataFrame."""
    import pandas as pd

    from replay.inprocess import options as make_options

    if isinstance(data, SessionOptions):
        opts = data
        if strategy:
            opts.strategy = strategy
    else:
        opts = make_options(data, strategy, **kw)
    if not opts.strategy:
        raise ValueError("a sweep needs a strategy 'module:Class'")
    combos = combinations(grid)
    own = executor is None
    ex = executor if executor is not None else ProcessPoolExecutor(max_workers=workers)
    try:
        futures = [ex.submit(run_one, opts, c) for c in combos]
        rows = [f.result() for f in futures]
    finally:
        if own:
            ex.shutdown()
    return pd.DataFrame(rows)
