"""What the replay player replays and how (`PlayerConfig`), the synthetic liquidity it
quotes where no book is recorded (`SyntheticBook`), and what it counts (`PlayerStats`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

REPLAY_ACCOUNT = 2_000_000_000
"""The replay-liquidity account: mirrored book levels and recorded taker flow."""

USDT = 10**8


class UnknownSymbol(ValueError):
    """A recorded symbol maps to no instrument (`PlayerConfig.unknown_symbols="error"`)."""

    def __init__(self, recorded: str, exchange: str, instruments: Iterable[str]) -> None:
        self.recorded = recorded
        known = ", ".join(sorted(instruments))
        super().__init__(
            f"symbol {recorded!r} ({exchange}) is not an instrument ({known}): map it with "
            f"--symbol (symbol= / PlayerConfig.symbols), e.g. --symbol BTCUSDT, or add it "
            f"with --instruments FILE.toml"
        )


@dataclass(frozen=True)
class SyntheticBook:
    """Liquidity for data without a book (OHLCV, tickers): at every index update the replay
    account quotes `levels` levels a side around the index, the best ones `spread_ppm`
    apart (millionths of the index), then every `step_ppm`, `qty` (base asset) each, as one
    `ReplaceBook` command (consumed by fills until the next re-centring). Used only for a
    symbol that has no recorded book or quote. With `per_bar` (the default), bar data
    re-centres once a bar, at its close, not at each point of the walk through it: the
    book is replaced once per step, which is what a bar is (ticker and trade data re-centre
    at every index change)."""

    levels: int = 3
    spread_ppm: int = 200  # 2 bp between the best bid and the best ask
    step_ppm: int = 500
    qty: Decimal = Decimal("5")
    per_bar: bool = True


@dataclass(frozen=True)
class PlayerConfig:
    """What the player replays and how. See the module docstring."""

    symbols: Mapping[str, str] = field(default_factory=dict)  # recorded symbol → instrument
    default_symbol: str | None = None  # instrument for recorded symbols not otherwise known
    clock: Literal["exchange", "local"] = "exchange"  # which timestamp is engine time
    index: bool = True  # replay reference prices as SetIndexPrice
    reference: Literal["index", "mark"] = "index"  # which recorded price feeds the index
    book: bool = True  # mirror recorded L2 books / quotes
    trades: bool = False  # replay recorded trades as taker flow
    start_ns: int | None = None  # skip events before this time
    end_ns: int | None = None  # skip events at or after this time
    account: int = REPLAY_ACCOUNT
    deposit: int = 10**12 * USDT  # the replay account's wallet (money quanta)
    leverage: int = 1  # the replay account's leverage on every symbol
    funding_clock: bool = True  # AdvanceClock at each funding boundary crossed
    synthetic: SyntheticBook | None = None  # quotes around the index where no book is recorded
    # a recorded symbol that maps to no instrument: "error" raises UnknownSymbol (what the
    # CLI and `replay.backtest` use: a replay of nothing is never what was meant), "skip"
    # counts it in `stats.unknown_symbol` (multi-venue files where only some symbols matter)
    unknown_symbols: Literal["skip", "error"] = "skip"


@dataclass
class PlayerStats:
    events: int = 0
    commands: int = 0
    out_of_window: int = 0
    unknown_symbol: int = 0
    ignored: int = 0  # liquidations, premium klines, quotes of a symbol with a book ...
    index_updates: int = 0
    levels_placed: int = 0
    levels_amended: int = 0
    levels_canceled: int = 0
    levels_out_of_band: int = 0
    levels_too_small: int = 0
    levels_uncrossed: int = 0
    taker_orders: int = 0
    taker_skipped: int = 0
    recorded_funding: list[tuple[int, str, str]] = field(default_factory=list)
    late_funding: int = 0  # recorded rates that arrived after their funding time was settled

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["recorded_funding"] = len(self.recorded_funding)
        return d
