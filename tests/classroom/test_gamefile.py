"""The game file: the shipped example loads; every bad field is refused by its path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from exchange.classroom import GameFileError, load_game, parse_game

EXAMPLE = Path(__file__).resolve().parents[2] / "exchange" / "classroom" / "examples"
REAL = Path("/work/shared/data/real/btc-perp-20211231-20220201_1m.csv")

MINIMAL = """
name = "t"
starting_balance = "1000"
[[instruments]]
symbol = "BTCUSDT"
[[rounds]]
duration = "1m"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(GameFileError) as e:
        parse_game(text)
    return e.value.problems


def test_each_instrument_may_have_its_own_liquidation_policy() -> None:
    g = parse_game(
        MINIMAL.replace('symbol = "BTCUSDT"', 'symbol = "BTCUSDT"\nliquidation_policy = "bitmex"')
    )
    assert g.instruments[0].liquidation_policy == "bitmex"
    assert parse_game(MINIMAL).instruments[0].liquidation_policy == "binance"


def test_the_shipped_example_loads_with_its_overrides() -> None:
    g = load_game(EXAMPLE / "leverage-101.toml")
    assert g.name == "Leverage 101"
    btc = g.instruments[0]
    assert (btc.symbol, btc.max_leverage, btc.mark_method) == ("BTCUSDT", 50, "last")
    assert all(b.max_leverage <= 50 for b in btc.brackets)
    assert g.starting_balance == Decimal("10000") and g.insurance_fund == Decimal("20000")
    assert [r.duration for r in g.rounds] == [300, 480]
    crash = g.rounds[1].scenario
    assert crash.shocks[0].size == Decimal("-12") and crash.shocks[0].over == 20
    assert crash.halts[0].at == 360 and crash.halts[0].duration == 30
    assert [b.kind for b in g.bots] == ["market_maker", "noise"]
    assert g.limits.max_open_orders == 20 and g.teams


def test_minimal_file_gets_the_defaults() -> None:
    g = parse_game(MINIMAL)
    assert g.rank_by == "return" and g.adl and g.rounds[0].clock_speed == 1
    assert g.rounds[0].reset_positions and g.rounds[0].scenario.source == "generated"


def test_the_documented_example_error() -> None:
    text = (
        MINIMAL
        + """
[[rounds]]
duration = "2m"
[rounds.scenario]
shocks = [{ at = "30s", size = -95 }]
"""
    )
    assert problems(text) == [
        "rounds[1].scenario.shocks[0].size: must be a percentage between -90 and 90"
    ]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ('starting_balance = "-5"', "starting_balance: must be an amount of USDT"),
        ('rank_by = "luck"', "rank_by: must be one of return, equity, return_over_drawdown"),
        ("colour = 1", "colour: unknown field"),
        ('[[instruments]]\nsymbol = "DOGEUSDT"', "instruments[1].symbol: 'DOGEUSDT' is not in"),
        (
            '[[instruments]]\nsymbol = "ETHUSDT"\nmark_method = "vibes"',
            "instruments[1].mark_method",
        ),
        ('[[instruments]]\nsymbol = "ETHUSDT"\nmax_leverage = 0', "instruments[1].max_leverage"),
        (
            '[[instruments]]\nsymbol = "ETHUSDT"\nliquidation_policy = "ftx"',
            "instruments[1].liquidation_policy: must be one of binance, bitmex, hyperliquid, dydx",
        ),
        (
            "[limits]\nmax_leverage = 500",
            "limits.max_leverage: must be a whole number between 0 and 125",
        ),
        ('[liquidation]\nadl = "yes"', "liquidation.adl: must be true or false"),
        ('[[bots]]\nkind = "whale"', "bots[0].kind: must be one of market_maker, noise"),
        ('[[rounds]]\nduration = "forever"', "rounds[1].duration: must be a duration"),
        ("[[rounds]]\nduration = 5", "rounds[1].duration: must be between 10 and 14400 seconds"),
        ('[[rounds]]\nduration = "1m"\nclock_speed = 0', "rounds[1].clock_speed"),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nsource = "dream"',
            "rounds[1].scenario.source",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nsource = "file"',
            "rounds[1].scenario.file: a recorded file is needed",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nsource = "file"\nfile = "nope.csv"',
            "rounds[1].scenario.file:",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nvolatility = "-1"',
            "rounds[1].scenario.volatility",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nheadlines = [{ at = "2m", text = "late" }]',
            "rounds[1].scenario.headlines[0].at: must be before the round ends",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nheadlines = [{ at = "2s" }]',
            "rounds[1].scenario.headlines[0].text",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nhalts = [{ at = "2s", symbol = "X" }]',
            "rounds[1].scenario.halts[0].symbol",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nshocks = [{ at = "2s", size = 0 }]',
            "rounds[1].scenario.shocks[0].size",
        ),
        (
            '[[rounds]]\nduration = "1m"\n[rounds.scenario]\nshocks = [{ at = "2s", size = 5, speed = 1 }]',
            "rounds[1].scenario.shocks[0].speed: unknown field",
        ),
    ],
)
def test_a_bad_field_is_named(patch: str, expected: str) -> None:
    if "[" in patch:
        text = MINIMAL + patch
    else:  # a top-level key: replace the minimal file's own, before the tables
        key = patch.split("=")[0].strip()
        rest = "\n".join(x for x in MINIMAL.splitlines() if not x.startswith(key + " "))
        text = patch + "\n" + rest
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_several_problems_are_reported_together() -> None:
    found = problems(
        'rank_by = "x"\nstarting_balance = "0"\n' + MINIMAL.replace('starting_balance = "1000"', "")
    )
    assert len(found) >= 2


def test_not_toml_and_no_rounds() -> None:
    assert problems("name = ")[0].startswith("not valid TOML")
    assert "rounds: at least one [[rounds]] table" in problems(MINIMAL.split("[[rounds]]")[0])


@pytest.mark.skipif(not REAL.exists(), reason="the real market-data sample is not on this machine")
def test_a_recorded_file_scenario(tmp_path: Path) -> None:
    g = parse_game(
        MINIMAL.replace('duration = "1m"', 'duration = "1m"\nclock_speed = 60')
        + f'[rounds.scenario]\nsource = "file"\nfile = "{REAL}"\n'
    )
    assert g.rounds[0].scenario.file == REAL
