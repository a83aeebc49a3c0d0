"""Decimal text ↔ the core's integers, at the edge.

The core counts prices in ticks, quantities in lots, money in quanta of 1e-8 of the
quote asset and rates in 1e-8. The wire carries decimals as JSON strings (JSON numbers
are accepted too and read from their exact text, never through float). This module is
the only place that converts, and every conversion is exact or rejected:

* not a plain decimal (NaN, Infinity, exponent, sign other than a leading ``-``,
  spaces, more than `MAX_CHARS` characters) → -1100;
* a wrong JSON type (bool, object, list, null) → -1130;
* ≤ 0 → -4001 (price), -4006 (stop price), -4003 (quantity), -1130 (amounts);
* more fractional digits than the tick's (or step's, or the quantum's) precision → -1111
  (trailing zeros do not count: ``"50000.100"`` is 50000.1);
* a price that is not a multiple of the tick size → -4014; a quantity that is not a
  multiple of the step size → -4023.

Formatting goes the other way with the precision of the tick (prices), step (quantities)
or 8 decimals (money and rates), so a price of 500001 ticks of "0.10" prints "50000.10".
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from exchange.core.errors import Code
from exchange.core.instruments import Instrument
from exchange.core.numbers import MONEY_DECIMALS, RATE_ONE

MAX_CHARS = 40
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?\Z")


class UnitError(ValueError):
    """A value that cannot be converted; carries the wire error code."""

    def __init__(self, code: Code, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class JsonNumber(str):
    """The exact text of a JSON number with a fraction or exponent (see `exchange.protocol`)."""

    __slots__ = ()


def split_decimal(value: Any, name: str) -> tuple[int, int]:
    """Parse a decimal into (mantissa, scale) with value = mantissa / 10**scale, scale minimal.

    Accepts str, int (not bool) and `JsonNumber`; see the module docstring for codes.
    """
    if type(value) is str or type(value) is JsonNumber:
        hit = _SPLIT_CACHE.get(value)
        if hit is not None:
            return hit
        hit = _split(value, name)
        if len(_SPLIT_CACHE) >= _CACHE_MAX:
            _SPLIT_CACHE.clear()
        _SPLIT_CACHE[value] = hit
        return hit
    return _split(value, name)


# Successful conversions of decimal *text* (str or JsonNumber, never int/bool) are pure
# functions of the text (and the unit): they are memoized so a price or quantity seen
# before costs one dict lookup. Failures are never cached (their message names the
# parameter), so every error is raised by the same code path as before. Bounded: a full
# cache is simply cleared.
_CACHE_MAX = 8192
_SPLIT_CACHE: dict[str, tuple[int, int]] = {}
_UNITS_CACHE: dict[str, dict[str, int]] = {}


def _split(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, bool) or value is None:
        raise UnitError(Code.INVALID_PARAMETER, f"Parameter '{name}' must be a decimal string.")
    if isinstance(value, int):
        text = str(value) if abs(value) < 10**MAX_CHARS else "x"
    elif isinstance(value, str):
        text = value
    else:
        raise UnitError(Code.INVALID_PARAMETER, f"Parameter '{name}' must be a decimal string.")
    if len(text) > MAX_CHARS:
        raise UnitError(Code.ILLEGAL_CHARS, f"Parameter '{name}' is too long.")
    m = _DECIMAL.match(text)
    if m is None:
        raise UnitError(Code.ILLEGAL_CHARS, f"Parameter '{name}' is not a plain decimal number.")
    sign, whole, frac = m.groups()
    frac = (frac or "").rstrip("0")
    mantissa = int(whole + frac)
    return (-mantissa if sign else mantissa), len(frac)


@lru_cache(maxsize=256)
def _scale_of(unit: str) -> tuple[int, int]:
    m, s = split_decimal(unit, "unit")
    return m, s


@lru_cache(maxsize=256)
def _written(unit: str) -> int:
    return len(unit.split(".")[1]) if "." in unit else 0


def _to_units(value: Any, name: str, unit: str, not_multiple: Code, nonpositive: Code) -> int:
    if type(value) is str or type(value) is JsonNumber:
        cache = _UNITS_CACHE.get(unit)
        if cache is None:
            cache = _UNITS_CACHE[unit] = {}
        hit = cache.get(value)
        if hit is not None:
            return hit
        n = _to_units_uncached(value, name, unit, not_multiple, nonpositive)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[value] = n
        return n
    return _to_units_uncached(value, name, unit, not_multiple, nonpositive)


def _to_units_uncached(
    value: Any, name: str, unit: str, not_multiple: Code, nonpositive: Code
) -> int:
    mantissa, scale = split_decimal(value, name)
    if mantissa <= 0:
        raise UnitError(nonpositive, f"Parameter '{name}' must be greater than zero.")
    u_mant, u_scale = _scale_of(unit)
    # The precision allowed is the unit's written precision ("0.10" allows 2 decimals).
    if scale > max(_written(unit), u_scale):
        raise UnitError(Code.BAD_PRECISION, f"Parameter '{name}' has too much precision.")
    # value / unit = mantissa·10^u_scale / (u_mant·10^scale), exactly.
    num = mantissa * 10**u_scale
    den = u_mant * 10**scale
    if num % den:
        raise UnitError(not_multiple, f"Parameter '{name}' is not a multiple of {unit}.")
    return int(num // den)


def price_to_ticks(inst: Instrument, value: Any, name: str = "price") -> int:
    return _to_units(
        value, name, inst.tick_size, Code.PRICE_NOT_TICK_MULTIPLE, Code.PRICE_LESS_THAN_ZERO
    )


def stop_price_to_ticks(inst: Instrument, value: Any, name: str = "stopPrice") -> int:
    return _to_units(
        value, name, inst.tick_size, Code.PRICE_NOT_TICK_MULTIPLE, Code.STOP_PRICE_LESS_THAN_ZERO
    )


def qty_to_lots(inst: Instrument, value: Any, name: str = "quantity") -> int:
    return _to_units(
        value, name, inst.step_size, Code.QTY_NOT_STEP_MULTIPLE, Code.QTY_LESS_THAN_ZERO
    )


def price_to_ticks_rounded(inst: Instrument, value: Any, name: str = "price") -> int:
    """A price rounded half-even to the nearest tick (for index feeds, not for orders)."""
    mantissa, scale = split_decimal(value, name)
    if mantissa <= 0:
        raise UnitError(Code.PRICE_LESS_THAN_ZERO, f"Parameter '{name}' must be greater than zero.")
    u_mant, u_scale = _scale_of(inst.tick_size)
    q = Fraction(mantissa * 10**u_scale, u_mant * 10**scale)
    ticks = round(q)  # Fraction rounds half to even
    if ticks <= 0:
        raise UnitError(Code.PRICE_LESS_THAN_ZERO, f"Parameter '{name}' is below one tick.")
    return ticks


def money_to_quanta(value: Any, name: str = "amount") -> int:
    """A positive money amount in quanta of 1e-8."""
    mantissa, scale = split_decimal(value, name)
    if mantissa <= 0:
        raise UnitError(Code.INVALID_PARAMETER, f"Parameter '{name}' must be greater than zero.")
    if scale > MONEY_DECIMALS:
        raise UnitError(Code.BAD_PRECISION, f"Parameter '{name}' has too much precision.")
    return int(mantissa * 10 ** (MONEY_DECIMALS - scale))


def rate_from_text(value: Any, name: str) -> int:
    """A signed rate (e.g. "-0.25") in 1e-8."""
    mantissa, scale = split_decimal(value, name)
    if scale > 8:
        raise UnitError(Code.BAD_PRECISION, f"Parameter '{name}' has too much precision.")
    return int(mantissa * RATE_ONE // 10**scale)


def _fixed(mantissa: int, scale: int) -> str:
    """mantissa / 10**scale as fixed-point text with exactly `scale` decimals."""
    sign = "-" if mantissa < 0 else ""
    digits = str(abs(mantissa)).rjust(scale + 1, "0")
    if scale == 0:
        return sign + digits
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


@lru_cache(maxsize=256)
def _unit_parts(unit: str) -> tuple[int, int]:
    """(mantissa at written scale, written scale): "0.10" → (10, 2)."""
    written = len(unit.split(".")[1]) if "." in unit else 0
    whole, _, frac = unit.partition(".")
    return int(whole + frac), written


# Formatted prices and quantities per unit (memoized like the conversions above: the
# same few levels and sizes are printed over and over).
_TEXT_CACHE: dict[str, dict[int, str]] = {}


def _unit_text(unit: str, n: int) -> str:
    cache = _TEXT_CACHE.get(unit)
    if cache is None:
        cache = _TEXT_CACHE[unit] = {}
    text = cache.get(n)
    if text is None:
        m, s = _unit_parts(unit)
        text = _fixed(n * m, s)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[n] = text
    return text


def ticks_to_str(inst: Instrument, ticks: int) -> str:
    return _unit_text(inst.tick_size, ticks)


def lots_to_str(inst: Instrument, lots: int) -> str:
    return _unit_text(inst.step_size, lots)


_ZERO_QUANTA = "0." + "0" * MONEY_DECIMALS


def quanta_to_str(quanta: int) -> str:
    if not quanta:
        return _ZERO_QUANTA
    return _fixed(quanta, MONEY_DECIMALS)


def rate_to_str(rate: int) -> str:
    return _fixed(rate, 8)


def fraction_ticks_to_str(inst: Instrument, value: Any, decimals: int = 8) -> str:
    """A price given as a fraction of ticks ((num, den), Fraction or int), half-even
    rounded to `decimals` places."""
    if isinstance(value, tuple):
        num, den = value
        frac = Fraction(num, den) if den else Fraction(0)
    else:
        frac = Fraction(value)
    m, s = _unit_parts(inst.tick_size)
    price = frac * m / 10**s
    return _fixed(round(price * 10**decimals), decimals)  # Fraction rounds half to even
