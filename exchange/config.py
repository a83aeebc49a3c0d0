"""Instrument files (TOML) → core `Instrument`s.

Decimals are parsed exactly (TOML floats are read as `Decimal`, never `float`) and
converted to the core's integers here, at the edge. Any problem raises
`InstrumentFileError` naming the instrument and the field.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from exchange.core.instruments import Instrument, derive_brackets
from exchange.core.numbers import MONEY_DECIMALS, RATE_ONE

QUANTUM = Decimal(1).scaleb(-MONEY_DECIMALS)
NS_PER_HOUR = 3600 * 10**9


class InstrumentFileError(ValueError):
    """A bad instrument file; the message names the instrument and field."""


def default_instruments_path() -> Path:
    return Path(str(resources.files("exchange") / "data" / "instruments.toml"))


def load_instruments(path: str | Path | None = None) -> list[Instrument]:
    """Load and validate every instrument in a TOML file (the shipped default if None)."""
    p = Path(path) if path is not None else default_instruments_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InstrumentFileError(f"{p}: cannot read: {e.strerror}") from e
    return parse_instruments(text, source=str(p))


def parse_instruments(text: str, source: str = "<string>") -> list[Instrument]:
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        raise InstrumentFileError(f"{source}: not valid TOML: {e}") from e
    items = doc.get("instrument")
    if not isinstance(items, list) or not items:
        raise InstrumentFileError(f"{source}: instrument: at least one [[instrument]] table")
    out: list[Instrument] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        name = raw.get("symbol", f"#{i}") if isinstance(raw, dict) else f"#{i}"
        inst = instrument_from_dict(raw, where=f"{source}: instrument {name}")
        if inst.symbol in seen:
            raise InstrumentFileError(f"{source}: instrument {name}: symbol: duplicate")
        seen.add(inst.symbol)
        out.append(inst)
    return out


_FIELDS = {
    "symbol", "base_asset", "quote_asset", "tick_size", "step_size", "min_price", "max_price",
    "min_qty", "max_qty", "market_max_qty", "min_notional", "band_up", "band_down",
    "max_open_orders", "maker_fee", "taker_fee", "max_leverage", "brackets", "mark_method",
    "funding_interval_hours", "interest_rate", "funding_clamp", "basis_window",
    "mark_band", "default_leverage", "liquidation_policy",
}  # fmt: skip


def instrument_from_dict(raw: Any, where: str = "instrument") -> Instrument:
    """Validate one instrument table (decimal strings or numbers) into an `Instrument`."""
    if not isinstance(raw, dict):
        raise InstrumentFileError(f"{where}: must be a table")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InstrumentFileError(f"{where}: {unknown[0]}: unknown field")

    def dec(key: str, default: Any = None) -> Decimal:
        v = raw.get(key, default)
        if v is None:
            raise InstrumentFileError(f"{where}: {key}: missing")
        if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
            raise InstrumentFileError(f"{where}: {key}: must be a decimal number")
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise InstrumentFileError(f"{where}: {key}: {v!r} is not a number") from None
        if not d.is_finite():
            raise InstrumentFileError(f"{where}: {key}: must be finite")
        return d

    def integer(key: str, default: Any = None) -> int:
        d = dec(key, default)
        if d != d.to_integral_value():
            raise InstrumentFileError(f"{where}: {key}: must be a whole number")
        return int(d)

    def text(key: str, default: str | None = None) -> str:
        v = raw.get(key, default)
        if not isinstance(v, str) or not v:
            raise InstrumentFileError(f"{where}: {key}: must be a non-empty string")
        return v

    def exact(key: str, value: Decimal, unit: Decimal, what: str) -> int:
        n = value / unit
        if n != n.to_integral_value():
            raise InstrumentFileError(f"{where}: {key}: {value} is not a multiple of the {what}")
        return int(n)

    def rate(key: str, default: Any = None) -> int:
        return exact(key, dec(key, default), Decimal(1) / RATE_ONE, "rate quantum 1e-8")

    tick = dec("tick_size")
    step = dec("step_size")
    if tick <= 0:
        raise InstrumentFileError(f"{where}: tick_size: must be positive")
    if step <= 0:
        raise InstrumentFileError(f"{where}: step_size: must be positive")
    lot_value = tick * step / QUANTUM
    if lot_value != lot_value.to_integral_value():
        raise InstrumentFileError(
            f"{where}: tick_size: tick_size × step_size must be a multiple of 1e-{MONEY_DECIMALS}"
        )
    tiers = raw.get("brackets")
    if not isinstance(tiers, list) or not tiers:
        raise InstrumentFileError(f"{where}: brackets: at least one [[instrument.brackets]]")
    parsed: list[tuple[int, int, int, int]] = []
    floor = 0
    for j, t in enumerate(tiers):
        w = f"brackets[{j}]"
        if not isinstance(t, dict):
            raise InstrumentFileError(f"{where}: {w}: must be a table of cap, max_leverage, mmr")
        extra = sorted(set(t) - {"cap", "max_leverage", "mmr"})
        if extra:
            raise InstrumentFileError(
                f"{where}: {w}.{extra[0]}: unknown field (a bracket's floor is the previous cap)"
            )
        sub = instrument_from_sub(t, where, w)
        cap = exact(f"{w}.cap", sub["cap"], QUANTUM, "money quantum")
        lev = sub["max_leverage"]
        if lev != lev.to_integral_value():
            raise InstrumentFileError(f"{where}: {w}.max_leverage: must be a whole number")
        mmr = exact(f"{w}.mmr", sub["mmr"], Decimal(1) / RATE_ONE, "rate quantum 1e-8")
        parsed.append((floor, cap, int(lev), mmr))
        floor = cap
    mark_method = text("mark_method", "median")
    interval_h = dec("funding_interval_hours", 8)
    inst = Instrument(
        symbol=text("symbol"),
        base_asset=text("base_asset"),
        quote_asset=text("quote_asset", "USDT"),
        tick_size=str(tick),
        step_size=str(step),
        lot_value=int(lot_value),
        min_price=exact("min_price", dec("min_price", tick), tick, "tick size"),
        max_price=exact("max_price", dec("max_price", tick * 10**9), tick, "tick size"),
        min_qty=exact("min_qty", dec("min_qty", step), step, "step size"),
        max_qty=exact("max_qty", dec("max_qty"), step, "step size"),
        market_max_qty=exact(
            "market_max_qty", dec("market_max_qty", raw.get("max_qty")), step, "step size"
        ),
        min_notional=exact("min_notional", dec("min_notional", 0), QUANTUM, "money quantum"),
        band_up=rate("band_up", "0.05"),
        band_down=rate("band_down", "0.05"),
        max_open_orders=integer("max_open_orders", 200),
        maker_fee=rate("maker_fee", "0.0002"),
        taker_fee=rate("taker_fee", "0.0005"),
        max_leverage=integer("max_leverage"),
        brackets=derive_brackets(parsed),
        mark_method=mark_method,
        funding_interval_ns=int(interval_h * NS_PER_HOUR),
        interest_rate=rate("interest_rate", "0.0001"),
        funding_clamp=rate("funding_clamp", "0.0005"),
        basis_window=integer("basis_window", 300),
        mark_band=rate("mark_band", "0.05"),
        default_leverage=integer("default_leverage", min(20, integer("max_leverage"))),
        liquidation_policy=text("liquidation_policy", "binance"),
    )
    problems = inst.check()
    if problems:
        raise InstrumentFileError(f"{where}: {problems[0]}")
    return inst


def instrument_from_sub(t: dict[str, Any], where: str, w: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for k in ("cap", "max_leverage", "mmr"):
        v = t.get(k)
        if v is None or isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
            raise InstrumentFileError(f"{where}: {w}.{k}: must be a decimal number")
        try:
            out[k] = Decimal(v)
        except InvalidOperation:
            raise InstrumentFileError(f"{where}: {w}.{k}: {v!r} is not a number") from None
    return out
