"""Instrument specifications as the core sees them: integers only.

Parsing decimals from a TOML file lives outside the core (`exchange.config`);
this module holds the validated, integer form and the bracket arithmetic.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from .numbers import RATE_ONE, ceil_div

MARK_METHODS = ("index", "last", "mid", "median")
# the names of `liquidation.POLICIES` (kept here so that instruments import no policy)
LIQUIDATION_POLICIES = ("binance", "bitmex", "hyperliquid", "dydx")


@dataclass(frozen=True, slots=True)
class Bracket:
    """One maintenance-margin tier: notional in (floor, cap] (money quanta)."""

    floor: int
    cap: int
    max_leverage: int
    mmr: int  # maintenance margin rate, in 1/RATE_ONE
    cum: int  # maintenance amount, derived: floor·(mmr − mmr_prev) + cum_prev


def derive_brackets(tiers: list[tuple[int, int, int, int]]) -> tuple[Bracket, ...]:
    """Build brackets from (floor, cap, max_leverage, mmr) tiers, deriving each `cum`.

    cum_n = floor_n × (mmr_n − mmr_{n−1}) + cum_{n−1}, rounded down to the quantum
    (down raises the maintenance margin by under one quantum: the exchange's side).
    """
    out: list[Bracket] = []
    cum = 0
    prev_mmr = 0
    for floor, cap, lev, mmr in tiers:
        cum = (floor * (mmr - prev_mmr)) // RATE_ONE + cum
        out.append(Bracket(floor, cap, lev, mmr, cum))
        prev_mmr = mmr
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A perpetual contract, every field an integer in the core's units.

    `tick_size` and `step_size` keep their decimal text for the edges to format with.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: str
    step_size: str
    lot_value: int  # money quanta per tick·lot
    min_price: int  # ticks
    max_price: int  # ticks
    min_qty: int  # lots
    max_qty: int  # lots
    market_max_qty: int  # lots
    min_notional: int  # money quanta
    band_up: int  # PERCENT_PRICE multiplierUp − 1, as a rate
    band_down: int  # 1 − multiplierDown, as a rate
    max_open_orders: int
    maker_fee: int  # rate; negative is a rebate
    taker_fee: int  # rate
    max_leverage: int
    brackets: tuple[Bracket, ...]
    mark_method: str = "median"
    funding_interval_ns: int = 8 * 3600 * 10**9
    interest_rate: int = 10_000  # 0.01 % per interval
    funding_clamp: int = 50_000  # ±0.05 %
    basis_window: int = 300  # seconds (one sample each) in the moving average of the basis
    mark_band: int = 5_000_000  # the median mark and each basis sample stay within ±5 % of index
    default_leverage: int = 20
    # which `liquidation.POLICIES` closes its positions (when the exchange imposes none);
    # out of the repr so that `state_hash` stays as it was for the default
    liquidation_policy: str = field(default="binance", repr=False)
    _caps: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_caps", tuple(b.cap for b in self.brackets))

    def bracket_index(self, notional: int) -> int:
        """Index of the bracket holding `notional` (floor < notional ≤ cap). O(log B)."""
        i = bisect_left(self._caps, notional)
        return i if i < len(self._caps) else len(self._caps) - 1

    def bracket_for(self, notional: int) -> Bracket:
        return self.brackets[self.bracket_index(notional)]

    def maintenance_margin(self, notional: int) -> int:
        """MM = notional × MMR − cum, with MMR and cum of notional's bracket; rounded up."""
        b = self.brackets[self.bracket_index(notional)]
        return ceil_div(notional * b.mmr, RATE_ONE) - b.cum

    def check(self) -> list[str]:
        """Every problem with the spec, each naming its field; empty when valid."""
        errs: list[str] = []
        ints = (
            "lot_value", "min_price", "max_price", "min_qty", "max_qty", "market_max_qty",
            "min_notional", "band_up", "band_down", "max_open_orders", "maker_fee", "taker_fee",
            "max_leverage", "funding_interval_ns", "interest_rate", "funding_clamp",
            "basis_window", "mark_band", "default_leverage",
        )  # fmt: skip
        bad = [k for k in ints if type(getattr(self, k)) is not int]
        if bad:
            return [f"{k}: must be an integer" for k in bad]
        texts = (
            "symbol", "base_asset", "quote_asset", "tick_size", "step_size", "mark_method",
            "liquidation_policy",
        )  # fmt: skip
        bad = [k for k in texts if type(getattr(self, k)) is not str]
        if bad:
            return [f"{k}: must be a string" for k in bad]
        if not isinstance(self.brackets, tuple) or not all(
            isinstance(b, Bracket)
            and all(type(v) is int for v in (b.floor, b.cap, b.max_leverage, b.mmr, b.cum))
            for b in self.brackets
        ):
            return ["brackets: must be a tuple of integer Brackets"]
        derived = derive_brackets([(b.floor, b.cap, b.max_leverage, b.mmr) for b in self.brackets])
        if derived != self.brackets:
            errs.append("brackets: cum must be the derived maintenance amount")
        for k in ("base_asset", "quote_asset"):
            v = getattr(self, k)
            if not v or not v.isalnum() or len(v) > 12:
                errs.append(f"{k}: must be a short alphanumeric name")
        if not self.symbol or not self.symbol.isalnum() or not self.symbol.isupper():
            errs.append(f"symbol: {self.symbol!r} must be upper-case letters and digits")
        pos = {
            "lot_value": self.lot_value,
            "min_price": self.min_price,
            "min_qty": self.min_qty,
            "max_open_orders": self.max_open_orders,
            "max_leverage": self.max_leverage,
            "funding_interval_ns": self.funding_interval_ns,
            "basis_window": self.basis_window,
        }
        errs += [f"{k}: must be positive, got {v}" for k, v in pos.items() if v <= 0]
        if self.max_price < self.min_price:
            errs.append("max_price: must not be below min_price")
        if self.max_qty < self.min_qty:
            errs.append("max_qty: must not be below min_qty")
        if not 0 < self.market_max_qty <= self.max_qty:
            errs.append("market_max_qty: must be positive and at most max_qty")
        if self.min_notional < 0:
            errs.append("min_notional: must not be negative")
        if not 0 < self.band_up < RATE_ONE * 10:
            errs.append("band_up: must be a positive fraction")
        if not 0 < self.band_down < RATE_ONE:
            errs.append("band_down: must be between 0 and 1")
        if not -RATE_ONE // 100 < self.maker_fee < RATE_ONE // 10:
            errs.append("maker_fee: out of range (-1 % .. 10 %)")
        if not 0 <= self.taker_fee < RATE_ONE // 10:
            errs.append("taker_fee: out of range (0 .. 10 %)")
        if self.maker_fee + self.taker_fee < 0:
            errs.append("maker_fee: the rebate exceeds the taker fee")
        if self.mark_method not in MARK_METHODS:
            errs.append(f"mark_method: must be one of {', '.join(MARK_METHODS)}")
        if self.liquidation_policy not in LIQUIDATION_POLICIES:
            errs.append(f"liquidation_policy: must be one of {', '.join(LIQUIDATION_POLICIES)}")
        if not 0 < self.mark_band < RATE_ONE:
            errs.append("mark_band: must be between 0 and 1")
        if self.basis_window > 86_400:
            errs.append("basis_window: at most 86400 seconds")
        if not 0 <= self.funding_clamp < RATE_ONE:
            errs.append("funding_clamp: must be between 0 and 1")
        if not 1 <= self.default_leverage <= self.max_leverage:
            errs.append("default_leverage: must be between 1 and max_leverage")
        if not self.brackets:
            errs.append("brackets: at least one bracket is required")
        prev_cap = 0
        prev_mmr = 0
        for i, b in enumerate(self.brackets):
            where = f"brackets[{i}]"
            if b.floor != prev_cap:
                errs.append(f"{where}.floor: must equal the previous cap ({prev_cap})")
            if b.cap <= b.floor:
                errs.append(f"{where}.cap: must be above floor")
            if not 0 < b.mmr < RATE_ONE // 2 + 1:
                errs.append(f"{where}.mmr: must be in (0, 0.5]")
            if b.mmr < prev_mmr:
                errs.append(f"{where}.mmr: must not decrease")
            if not 1 <= b.max_leverage <= self.max_leverage:
                errs.append(f"{where}.max_leverage: must be in 1..max_leverage")
            if b.max_leverage * b.mmr > RATE_ONE:
                errs.append(f"{where}.mmr: maintenance above initial margin at max leverage")
            prev_cap, prev_mmr = b.cap, b.mmr
        return errs
