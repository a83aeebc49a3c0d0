"""Decimal text ↔ core integers: every conversion exact or rejected with its code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange import units
from exchange.config import load_instruments
from exchange.core.errors import Code
from exchange.units import UnitError

BTC = load_instruments()[0]  # tick 0.10, step 0.001


@pytest.mark.parametrize(
    ("text", "ticks"),
    [("50000", 500000), ("50000.1", 500001), ("50000.10", 500001), ("50000.100", 500001),
     (50000, 500000), (units.JsonNumber("50000.5"), 500005), ("0.1", 1)],
)  # fmt: skip
def test_price_to_ticks_accepts_exact_tick_multiples(text: object, ticks: int) -> None:
    assert units.price_to_ticks(BTC, text) == ticks


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("50000.15", Code.PRICE_NOT_TICK_MULTIPLE),
        ("50000.123", Code.BAD_PRECISION),
        ("0", Code.PRICE_LESS_THAN_ZERO),
        ("-1", Code.PRICE_LESS_THAN_ZERO),
        ("0.00", Code.PRICE_LESS_THAN_ZERO),
        ("NaN", Code.ILLEGAL_CHARS),
        ("Infinity", Code.ILLEGAL_CHARS),
        ("-Infinity", Code.ILLEGAL_CHARS),
        ("1e5", Code.ILLEGAL_CHARS),
        (units.JsonNumber("1E+5"), Code.ILLEGAL_CHARS),
        (" 1", Code.ILLEGAL_CHARS),
        ("+1", Code.ILLEGAL_CHARS),
        ("1.", Code.ILLEGAL_CHARS),
        (".5", Code.ILLEGAL_CHARS),
        ("", Code.ILLEGAL_CHARS),
        ("1" * 41, Code.ILLEGAL_CHARS),
        ("٣", Code.ILLEGAL_CHARS),  # non-ASCII digit
        (True, Code.INVALID_PARAMETER),
        (None, Code.INVALID_PARAMETER),
        (1.5, Code.INVALID_PARAMETER),
        ([1], Code.INVALID_PARAMETER),
        ({"a": 1}, Code.INVALID_PARAMETER),
        (10**50, Code.ILLEGAL_CHARS),
    ],
)
def test_price_rejections(text: object, code: Code) -> None:
    with pytest.raises(UnitError) as e:
        units.price_to_ticks(BTC, text)
    assert e.value.code == code


@pytest.mark.parametrize(
    ("text", "code"),
    [("1.0005", Code.BAD_PRECISION), ("0", Code.QTY_LESS_THAN_ZERO),
     ("-0.001", Code.QTY_LESS_THAN_ZERO), ("1e3", Code.ILLEGAL_CHARS)],
)  # fmt: skip
def test_qty_rejections(text: str, code: Code) -> None:
    with pytest.raises(UnitError) as e:
        units.qty_to_lots(BTC, text)
    assert e.value.code == code


def test_qty_step_multiple_code() -> None:
    step5 = BTC.__class__(**{**{f: getattr(BTC, f) for f in BTC.__dataclass_fields__ if f != "_caps"}, "step_size": "0.005"})  # fmt: skip
    with pytest.raises(UnitError) as e:
        units.qty_to_lots(step5, "0.001")
    assert e.value.code == Code.QTY_NOT_STEP_MULTIPLE
    assert units.qty_to_lots(step5, "0.010") == 2


def test_stop_price_code() -> None:
    with pytest.raises(UnitError) as e:
        units.stop_price_to_ticks(BTC, "0")
    assert e.value.code == Code.STOP_PRICE_LESS_THAN_ZERO


def test_money_and_rates() -> None:
    assert units.money_to_quanta("100.5") == 10_050_000_000
    assert units.money_to_quanta("0.00000001") == 1
    for bad, code in (("0.000000001", Code.BAD_PRECISION), ("0", Code.INVALID_PARAMETER)):
        with pytest.raises(UnitError) as e:
            units.money_to_quanta(bad)
        assert e.value.code == code
    assert units.rate_from_text("-0.25", "change") == -25_000_000
    assert units.quanta_to_str(-12345) == "-0.00012345"
    assert units.rate_to_str(10_000) == "0.00010000"


def test_formatting_uses_the_written_precision() -> None:
    assert units.ticks_to_str(BTC, 500001) == "50000.10"
    assert units.lots_to_str(BTC, 1500) == "1.500"
    assert units.fraction_ticks_to_str(BTC, (1000003, 2)) == "50000.15000000"
    assert units.fraction_ticks_to_str(BTC, (0, 1)) == "0.00000000"
    assert units.fraction_ticks_to_str(BTC, (1, 3)) == "0.03333333"


def test_index_rounding_is_half_even() -> None:
    assert units.price_to_ticks_rounded(BTC, "50000.15") == 500002
    assert units.price_to_ticks_rounded(BTC, "50000.25") == 500002
    assert units.price_to_ticks_rounded(BTC, "50000.26") == 500003


@given(st.integers(min_value=1, max_value=10**12))
def test_price_round_trip(ticks: int) -> None:
    assert units.price_to_ticks(BTC, units.ticks_to_str(BTC, ticks)) == ticks


@given(st.integers(min_value=1, max_value=10**12))
def test_qty_round_trip(lots: int) -> None:
    assert units.qty_to_lots(BTC, units.lots_to_str(BTC, lots)) == lots


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6
    )
)
def test_any_decimal_is_exact_or_rejected(d: Decimal) -> None:
    text = format(d, "f")
    try:
        ticks = units.price_to_ticks(BTC, text)
    except UnitError as e:
        assert e.code in (
            Code.PRICE_NOT_TICK_MULTIPLE,
            Code.BAD_PRECISION,
            Code.PRICE_LESS_THAN_ZERO,
        )
    else:
        assert Decimal(ticks) * Decimal("0.1") == d
