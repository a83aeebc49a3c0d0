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
