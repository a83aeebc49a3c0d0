"""`python -m bench backtest` end to end on the first bars of the real month (the figures come
from full runs by hand, never from timed assertions)."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from bench import backtest

pytestmark = pytest.mark.skipif(
    not backtest.BARS.exists(), reason="the real 1-minute bars are absent"
)


def test_backtest_bench_reports_every_figure() -> None:
    has_bt = importlib.util.find_spec("backtrader") is not None
    args = argparse.Namespace(data=backtest.BARS, bars=400, lockstep_bars=400, no_lockstep=False,
                              no_backtrader=not has_bt, repeat=2)  # fmt: skip
    r = backtest.run(args)
    assert len(r["inprocess_runs_bars_per_s"]) == 2  # taking turns, the best one reported
    assert r["inprocess_bars_per_s"] == max(r["inprocess_runs_bars_per_s"])
    assert r["bars"] == r["lockstep_bars"] == 400
    assert r["inprocess_bars_per_s"] > 0 and r["lockstep_bars_per_s"] > 0
    assert r["trades"] == r["fills"] > 0  # every market order of the crossover filled
    assert r["ratio_vs_lockstep"] > 0
    if has_bt:
        assert r["backtrader_bars"] == 400 and r["backtrader_trades"] > 0
        assert r["ratio_vs_backtrader"] > 0
        assert r["backtrader_bars_per_s"] == max(r["backtrader_runs_bars_per_s"])
