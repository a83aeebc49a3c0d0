"""Instrument files: the shipped defaults load; bad files fail at load naming the field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exchange.config import InstrumentFileError, load_instruments, parse_instruments
from exchange.core import Exchange
from exchange.core.instruments import derive_brackets
from exchange.core.numbers import RATE_ONE

USDT = 10**8

BASE: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "base_asset": "BTC",
    "quote_asset": "USDT",
    "tick_size": "0.10",
    "step_size": "0.001",
    "min_price": "556.80",
    "max_price": "4529764",
    "min_qty": "0.001",
    "max_qty": "1000",
    "market_max_qty": "120",
    "min_notional": "5",
    "max_leverage": 125,
}
BRACKETS: list[dict[str, Any]] = [
    {"cap": "50000", "max_leverage": 125, "mmr": "0.004"},
    {"cap": "250000", "max_leverage": 100, "mmr": "0.005"},
    {"cap": "1000000", "max_leverage": 50, "mmr": "0.01"},
]


def toml(fields: dict[str, Any] | None = None, brackets: list[dict[str, Any]] | None = None) -> str:
    """One [[instrument]] with its [[instrument.brackets]], as TOML text."""

    def value(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int) else f'"{v}"'

    lines = ["[[instrument]]"]
    lines += [f"{k} = {value(v)}" for k, v in (BASE if fields is None else fields).items()]
    for b in BRACKETS if brackets is None else brackets:
        lines.append("[[instrument.brackets]]")
        lines += [f"{k} = {value(v)}" for k, v in b.items()]
    return "\n".join(lines) + "\n"


def error_of(text: str) -> str:
    with pytest.raises(InstrumentFileError) as e:
        parse_instruments(text, source="test.toml")
    return str(e.value)


# ---------------------------------------------------------------- the shipped file


def test_shipped_instruments_load() -> None:
    insts = {i.symbol: i for i in load_instruments()}
    assert sorted(insts) == ["BTCUSDT", "ETHUSDT"]
    btc = insts["BTCUSDT"]
    assert (btc.base_asset, btc.quote_asset, btc.tick_size, btc.step_size) == (
        "BTC",
        "USDT",
        "0.10",
        "0.001",
    )
    assert btc.lot_value == 10_000  # 0.10 × 0.001 = 0.0001 USDT = 10_000 quanta
    assert (btc.min_price, btc.max_price) == (5_568, 45_297_640)
    assert (btc.min_qty, btc.max_qty, btc.market_max_qty) == (1, 1_000_000, 120_000)
    assert btc.min_notional == 5 * USDT
    assert (btc.maker_fee, btc.taker_fee) == (20_000, 50_000)
    assert (btc.band_up, btc.band_down) == (5_000_000, 5_000_000)
    assert (btc.max_leverage, btc.default_leverage, btc.max_open_orders) == (125, 20, 200)
    assert btc.funding_interval_ns == 8 * 3600 * 10**9
    assert insts["ETHUSDT"].lot_value == 1_000  # 0.01 × 0.001 USDT
    for inst in insts.values():
        assert inst.check() == []
    Exchange(insts.values())._check()


def test_btcusdt_brackets_and_derived_cum() -> None:
    btc = next(i for i in load_instruments() if i.symbol == "BTCUSDT")
    b = btc.brackets
    assert len(b) == 10
    assert (b[0].floor, b[0].cap, b[0].max_leverage, b[0].mmr, b[0].cum) == (
        0,
        50_000 * USDT,
        125,
        RATE_ONE * 4 // 1000,
        0,
    )
    assert b[1].cum == 50 * USDT  # 50,000 × (0.5 % − 0.4 %)
    assert b[2].cum == 1_300 * USDT  # 250,000 × (1 % − 0.5 %) + 50
    assert all(x.floor == y.cap for x, y in zip(b[1:], b, strict=False))
    # the maintenance margin is continuous at each bracket boundary
    for lo, hi in zip(b, b[1:], strict=False):
        n = lo.cap
        assert n * lo.mmr // RATE_ONE - lo.cum == n * hi.mmr // RATE_ONE - hi.cum


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "instruments.toml"
    path.write_text(toml(), encoding="utf-8")
    (inst,) = load_instruments(path)
    assert inst.symbol == "BTCUSDT" and [x.cum for x in inst.brackets] == [
        0,
        50 * USDT,
        1_300 * USDT,
    ]


def test_missing_file_is_an_instrument_file_error(tmp_path: Path) -> None:
    with pytest.raises(InstrumentFileError, match="cannot read"):
        load_instruments(tmp_path / "nope.toml")


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "field", ["symbol", "base_asset", "tick_size", "step_size", "max_qty", "max_leverage"]
)
def test_missing_field_is_named(field: str) -> None:
    fields = {k: v for k, v in BASE.items() if k != field}
    assert field in error_of(toml(fields))


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("tick_size", "0.1x"),
        ("max_qty", "lots"),
        ("min_notional", "five"),
        ("max_leverage", "1.5"),
        ("maker_fee", True),
        ("tick_size", "-0.10"),
        ("band_up", "Infinity"),
    ],
)
def test_bad_number_is_named(field: str, bad: Any) -> None:
    assert field in error_of(toml({**BASE, field: bad}))


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("min_price", "556.85"),
        ("max_price", "4529764.05"),
        ("min_qty", "0.0015"),
        ("max_qty", "1000.0005"),
    ],
)
def test_value_not_a_multiple_of_tick_or_step_is_named(field: str, bad: str) -> None:
    msg = error_of(toml({**BASE, field: bad}))
    assert field in msg and "multiple" in msg


def test_tick_times_step_below_the_money_quantum_is_rejected() -> None:
    msg = error_of(toml({**BASE, "tick_size": "0.00001", "step_size": "0.0001"}))
    assert "tick_size" in msg


def test_bracket_with_a_gap_is_named() -> None:
    """The file gives no floors (each is the previous cap); one that tries to is refused."""
    gap = [BRACKETS[0], {"floor": "60000", **BRACKETS[1]}, BRACKETS[2]]
    msg = error_of(toml(brackets=gap))
    assert "brackets[1]" in msg and "floor" in msg


def test_brackets_out_of_order_are_named() -> None:
    msg = error_of(toml(brackets=[BRACKETS[1], BRACKETS[0]]))
    assert "brackets[1].cap" in msg


def test_bracket_bad_number_is_named() -> None:
    bad = [BRACKETS[0], {**BRACKETS[1], "mmr": "half"}]
    assert "brackets[1].mmr" in error_of(toml(brackets=bad))


def test_no_brackets_is_named() -> None:
    assert "brackets" in error_of(toml(brackets=[]))


def test_a_gap_between_brackets_fails_the_core_check() -> None:
    btc = next(i for i in load_instruments() if i.symbol == "BTCUSDT")
    tiers = [(b.floor, b.cap, b.max_leverage, b.mmr) for b in btc.brackets[:3]]
    tiers[1] = (tiers[1][0] + USDT, *tiers[1][1:])  # floor 1 USDT above the previous cap
    gapped = replace(btc, brackets=derive_brackets(tiers))
    assert any(p.startswith("brackets[1].floor") for p in gapped.check())
    with pytest.raises(ValueError, match=r"brackets\[1\]\.floor"):
        Exchange([gapped])


def test_unknown_field_is_named() -> None:
    assert "colour" in error_of(toml({**BASE, "colour": "orange"}))


def test_non_toml_is_rejected() -> None:
    msg = error_of("this is [not toml\n")
    assert "TOML" in msg


def test_a_file_without_instruments_is_rejected() -> None:
    assert "instrument" in error_of('title = "nothing here"\n')


def test_duplicate_symbol_is_named() -> None:
    msg = error_of(toml() + toml())
    assert "symbol" in msg and "duplicate" in msg


def test_errors_name_the_instrument() -> None:
    msg = error_of(toml({**BASE, "symbol": "XYZUSDT", "max_qty": "many"}))
    assert "XYZUSDT" in msg and "max_qty" in msg and "test.toml" in msg


def test_liquidation_policy_defaults_to_binance_and_is_validated() -> None:
    (inst,) = parse_instruments(toml(), source="test.toml")
    assert inst.liquidation_policy == "binance"
    (inst,) = parse_instruments(toml({**BASE, "liquidation_policy": "bitmex"}), source="test.toml")
    assert inst.liquidation_policy == "bitmex"
    msg = error_of(toml({**BASE, "liquidation_policy": "ftx"}))
    assert "liquidation_policy: must be one of binance, bitmex, hyperliquid, dydx" in msg
