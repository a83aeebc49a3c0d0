"""bench policies runs end to end on a small size under every policy and reports what
it claims (the real figures come from full runs by hand, never from timed assertions)."""

from __future__ import annotations

import argparse

import pytest

from bench import policies
from exchange.core.liquidation import POLICIES


def test_policies_bench_runs_the_crash_under_every_policy() -> None:
    r = policies.run(argparse.Namespace(positions=1_500, mark_method="median", policies=None))
    assert r["bench"] == "policies" and r["positions"] == 1_500
    rows = r["policies"]
    assert list(rows) == list(POLICIES)
    assert rows["binance"]["ratio_vs_binance"] == 1.0
    for name, row in rows.items():
        assert 0 < row["liquidations"] <= 1_500, name
        assert row["generations"] >= 1 and row["events"] > row["liquidations"], name
        assert row["seconds"] >= 0 and row["ratio_vs_binance"] > 0, name
    # only BitMEX leaves what the fund took over resting in the book
    assert rows["binance"]["fund_resting_lots"] == 0
    assert rows["bitmex"]["fund_resting_lots"] == rows["bitmex"]["fund_takeover_lots"]
    assert r["max_ratio_vs_binance"] == pytest.approx(
        max(row["ratio_vs_binance"] for row in rows.values())
    )


def test_the_baseline_is_measured_even_when_not_asked_for() -> None:
    r = policies.run(argparse.Namespace(positions=300, mark_method="index", policies=["dydx"]))
    assert list(r["policies"]) == ["binance", "dydx"]
