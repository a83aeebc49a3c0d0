"""Fixed-point conventions of the core.

Prices are integer ticks, quantities integer lots, money an integer count of
`10**-MONEY_DECIMALS` of the quote asset, rates an integer count of `1/RATE_ONE`.
One tick times one lot is worth `Instrument.lot_value` money quanta, so every
notional is an exact integer product. Rounding helpers below say which way they go;
where a rounding must favour someone it favours the exchange (margin and fees up,
payouts down).
"""

from __future__ import annotations

MONEY_DECIMALS = 8
RATE_ONE = 100_000_000  # a rate of 1.0; 0.04 % is 40_000


def ceil_div(a: int, b: int) -> int:
    """Ceiling of a / b for b > 0, exact for any sign of a."""
    return -((-a) // b)


def mul_rate_up(amount: int, rate: int) -> int:
    """amount × rate, rounded up (toward +inf): used for margins and fees charged."""
    return -((-amount * rate) // RATE_ONE)


def mul_rate_down(amount: int, rate: int) -> int:
    """amount × rate, rounded down (toward −inf): used for payouts."""
    return (amount * rate) // RATE_ONE


def decimal_text(mantissa: int, scale: int) -> str:
    """mantissa / 10**scale as plain decimal text, trailing zeros dropped: (-150, 2) → "-1.5"."""
    sign = "-" if mantissa < 0 else ""
    whole, frac = divmod(abs(mantissa), 10**scale)
    digits = str(frac).rjust(scale, "0").rstrip("0") if scale else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def money_text(quanta: int, asset: str) -> str:
    """An amount of money in the asset's units, for messages: 30_000_000_000 → "300 USDT"."""
    return f"{decimal_text(quanta, MONEY_DECIMALS)} {asset}"


def ticks_text(ticks: int, tick_size: str) -> str:
    """A price in ticks as a decimal price, for messages: (451_807, "0.10") → "45180.7"."""
    digits, _, exp = tick_size.upper().partition("E")  # str(Decimal) may write "1E-8"
    whole, _, frac = digits.partition(".")
    scale = len(frac) - int(exp or 0)
    mantissa = ticks * int(whole + frac)
    return decimal_text(mantissa, scale) if scale >= 0 else str(mantissa * 10**-scale)


def rate_text(rate: int) -> str:
    """A rate in 1/RATE_ONE as a decimal fraction, for messages: 10_000 → "0.0001"."""
    return decimal_text(rate, 8)
