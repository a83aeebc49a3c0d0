"""Index paths: seeded and deterministic, shocks as documented, recorded files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from exchange.classroom import parse_game
from exchange.classroom.scenario import NS, IndexPath, LiveShock, to_ticks

REAL = Path("/work/shared/data/real/btc-perp-20211231-20220201_1m.csv")


def game(scenario: str, duration: str = "1m", speed: int = 60):  # type: ignore[no-untyped-def]
    return parse_game(
        f"""
name = "t"
starting_balance = 1000
[[instruments]]
symbol = "BTCUSDT"
initial_index = "40000"
[[rounds]]
duration = "{duration}"
clock_speed = {speed}
[rounds.scenario]
{scenario}
"""
    )


def test_generated_path_is_seeded_and_starts_at_the_index() -> None:
    g = game('volatility = "5"\nseed = 3')
    a = IndexPath(g.rounds[0], Decimal(40000))
    b = IndexPath(g.rounds[0], Decimal(40000))
    assert a.prices == b.prices and a.price_at(0) == Decimal("40000.0")
    other = IndexPath(game('volatility = "5"\nseed = 4').rounds[0], Decimal(40000))
    assert other.prices != a.prices
    # one point per wall second: 61 points over a minute, 60 engine seconds apart
    assert len(a.times) == 61 and a.times[1] == 60 * NS
    assert a.price_at(a.times[1] - 1) == a.price_at(0)  # a step function


def test_flat_path_and_shock_ramp() -> None:
    g = game('shocks = [{ at = "10s", size = -20, over = "10s" }]')
    p = IndexPath(g.rounds[0], Decimal(40000))
    s = 60 * NS  # engine ns per wall second
    assert p.price_at(10 * s) == Decimal("40000.0")
    assert p.price_at(15 * s) == Decimal("36000.0")  # half way: −10 %
    assert p.price_at(20 * s) == Decimal("32000.0")
    assert p.price_at(50 * s) == Decimal("32000.0")
    p.add_shock(LiveShock(at_ns=30 * s, size=Decimal(50), over_ns=0))
    assert p.price_at(30 * s) == Decimal("48000.0")  # 32,000 × 1.5, at once


def test_drift_without_volatility_is_exact_growth() -> None:
    p = IndexPath(game('drift = "10"', duration="1m", speed=60).rounds[0], Decimal(100))
    # 60 simulated minutes at 10 %/h: e^0.1
    assert abs(float(p.price_at(p.duration_ns)) - 100 * 2.718281828**0.1) < 1e-6


def test_to_ticks() -> None:
    assert to_ticks(Decimal("46000.04"), "0.10") == 460000
    assert to_ticks(Decimal("0"), "0.10") == 1


@pytest.mark.skipif(not REAL.exists(), reason="the real market-data sample is not on this machine")
def test_recorded_file_time_compressed_and_rescaled() -> None:
    g = game(f'source = "file"\nfile = "{REAL}"\nstart_price = "20000"', duration="1m", speed=60)
    p = IndexPath(g.rounds[0], Decimal(1))
    assert p.price_at(0) == Decimal("20000.0")
    # one-minute bars, 60x: one bar a wall second, 61 over the round
    assert len(p.times) == 61 and p.times[1] == 60 * NS
    # the second bar's close relative to the first, as in the file (46377 → 46411)
    assert abs(float(p.price_at(60 * NS)) - 20000 * 46411 / 46377) < 1e-6
