"""Backtest statistics against values computed by hand on a small series (docs/backtest.md
defines each), round trips from fills, and the DataFrames of a real in-process run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from replay.results import Q, Trade, compute_stats, round_trips

DAY = 86400 * 10**9


def test_statistics_of_a_small_series_match_hand_computed_values() -> None:
    times = [k * DAY for k in range(5)]
    equity = [100.0, 110.0, 99.0, 108.9, 119.79]  # returns +10 %, -10 %, +10 %, +10 %
    trades = [Trade("X", "LONG", 0, 1, 1, 18), Trade("X", "SHORT", 1, 2, 1, -13),
              Trade("X", "LONG", 2, 3, 2, -11)]  # fmt: skip
    s = compute_stats(times, equity, trades, exposure_ns=3 * DAY, fees=4.0, funding=-1.5,
                      liquidations=1, adl=2)  # fmt: skip
    ppy = 365.0  # daily samples, 365-day years
    assert s["periods_per_year"] == ppy
    assert s["total_return"] == pytest.approx(0.1979)
    # mean 0.05; sample sd: sqrt((3 × 0.05² + 0.15²) / 3) = 0.1
    assert s["volatility"] == pytest.approx(0.1 * math.sqrt(ppy))
    assert s["sharpe"] == pytest.approx(0.05 / 0.1 * math.sqrt(ppy))
    # downside deviation: sqrt(0.1² / 4) = 0.05
    assert s["sortino"] == pytest.approx(0.05 / 0.05 * math.sqrt(ppy))
    cagr = 1.1979 ** (365 / 4) - 1
    assert s["annual_return"] == pytest.approx(cagr)
    assert s["max_drawdown"] == pytest.approx(0.1)  # 110 → 99
    assert s["max_drawdown_duration_s"] == 2 * 86400  # below 110 from day 1 to day 3
    assert s["calmar"] == pytest.approx(cagr / 0.1)
    assert s["trades"] == 3
    assert s["win_rate"] == pytest.approx(1 / 3)
    assert s["profit_factor"] == pytest.approx(18 / 24)
    assert s["avg_trade"] == pytest.approx(-2 / Q)
    assert s["exposure"] == pytest.approx(0.75)
    assert (s["fees"], s["funding"], s["liquidations"], s["adl_hits"]) == (4.0, -1.5, 1, 2)


def test_risk_free_rate_is_compounded_per_period() -> None:
    times = [k * DAY for k in range(5)]
    equity = [100.0, 110.0, 99.0, 108.9, 119.79]
    s = compute_stats(times, equity, risk_free=0.05)
    rf = 1.05 ** (1 / 365) - 1
    assert s["sharpe"] == pytest.approx((0.05 - rf) / 0.1 * math.sqrt(365))
    down = math.sqrt(sum(min(0.0, r - rf) ** 2 for r in (0.1, -0.1, 0.1, 0.1)) / 4)
    assert s["sortino"] == pytest.approx((0.05 - rf) / down * math.sqrt(365))


def test_a_deposit_is_the_starting_point() -> None:
    s = compute_stats([0, DAY], [110.0, 121.0], deposit=100.0)
    assert s["total_return"] == pytest.approx(0.21)


def test_round_trips_split_at_flat_and_at_flips() -> None:
    rows = [
        (1, 7, "X", 1, "BUY", 100, 2, "taker", 1, False),
        (2, 7, "X", 2, "SELL", 110, 2, "taker", 1, False),  # +20 - 2 fees = +18
        (3, 7, "X", 3, "SELL", 110, 1, "taker", 1, False),
        (4, 7, "X", 4, "BUY", 120, 3, "taker", 2, False),  # flip: -10 - 3 = -13; long 2 @ 120
        (5, 7, "X", 5, "SELL", 115, 2, "maker", 1, False),  # -10 - 1 = -11
    ]
    got = round_trips(rows, {"X": 1})
    assert [(t.side, t.open_ts, t.close_ts, t.qty, t.pnl) for t in got] == [
        ("LONG", 1, 2, 2, 18), ("SHORT", 3, 4, 1, -13), ("LONG", 4, 5, 2, -11),
    ]  # fmt: skip


def test_too_short_a_curve_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_stats([0], [1.0])


def test_dataframes_and_stats_of_an_in_process_run(tmp_path: Path) -> None:
    from replay.inprocess import backtest
    from replay.testdata import ohlcv_bars, write_text

    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(240, 1_640_995_200))
    from replay.strategy import MovingAverageCross

    strat = MovingAverageCross(fast="5", slow="20", qty="0.05")
    res = backtest(f, strat, symbol="BTCUSDT", step="1m", population=30, seed=2)
    fills, eq, pos = res.fills(), res.equity(), res.positions()
    assert len(fills) == len(res.recorder.fills) > 5
    assert str(fills.index.tz) == "UTC" and set(fills["side"]) == {"BUY", "SELL"}
    assert len(eq) == 240 and eq["drawdown"].max() <= 0.0
    assert (pos["qty"].abs() <= 0.05 + 1e-12).all()
    assert len(res.orders()) == strat.trades
    for frame in (res.prices(), res.liquidations(), res.cascades(), res.funding()):
        assert frame.index.name == "time"
    st = res.stats()
    assert st["trades"] == len(res.trades()) and st["fees"] > 0
    assert st["total_return"] == pytest.approx(eq["equity"].iloc[-1] / 10_000 - 1)
    assert 0 < st["exposure"] <= 1
    figs = res.plot()  # the report's charts, for a notebook
    titles = [f.layout.title.text for f in figs]
    assert "BTCUSDT: price, fills, liquidations" in titles
    assert "account 1: equity and drawdown" in titles
    price = figs[titles.index("BTCUSDT: price, fills, liquidations")]
    names = {t.name for t in price.data}
    assert {"mark", "buy fills", "sell fills"} <= names
    # the strategy flips long/short: one liquidation-price line a side, each broken where
    # the position is on the other side (a single line zig-zagged between the two)
    liq = {t.name: t for t in price.data if t.name.startswith("liquidation price")}
    assert set(liq) == {"liquidation price (long)", "liquidation price (short)"}
    for name, sign in (("liquidation price (long)", 1), ("liquidation price (short)", -1)):
        held = pos[pos["qty"] * sign > 0]
        want = {round(v, 6) for v in held["liquidation_price"].astype(float)}
        got = {round(y, 6) for y in liq[name].y if y is not None}
        assert got == want, name  # exactly this side's liquidation prices
        assert None in liq[name].y  # broken where the position is on the other side
