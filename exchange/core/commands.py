"""Commands: everything that can change the exchange, as frozen data.

Each carries `ts`, the engine time in integer nanoseconds that the adapter assigns;
the engine never reads a clock. Engine time is max(previous time, ts), so a command
stamped in the past runs at the current time (time never goes backwards).
Sides, order types and the rest travel as the Binance strings ("BUY", "LIMIT",
"GTC" ...); the core validates them, so bad values get a coded rejection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

from .events import fast_init
from .instruments import Instrument

_Cmd = TypeVar("_Cmd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    ts: int = 0


@dataclass_transform(kw_only_default=True, frozen_default=True)
def command(cls: type[_Cmd]) -> type[_Cmd]:
    """Declare a command: a frozen, slotted, keyword-only dataclass whose constructor
    writes plain slot stores (`events.fast_init`: about half the generated one's time;
    every request, replayed tick and backtest order makes one)."""
    return fast_init(dataclass(frozen=True, slots=True, kw_only=True)(cls))


@command
class PlaceOrder(Command):
    account: int
    symbol: str
    side: str  # BUY | SELL
    qty: int  # lots
    type: str = "LIMIT"  # LIMIT MARKET STOP_MARKET STOP_LIMIT TAKE_PROFIT_MARKET TAKE_PROFIT_LIMIT
    price: int = 0  # ticks; required for LIMIT kinds
    time_in_force: str = "GTC"  # GTC IOC FOK GTX
    reduce_only: bool = False
    client_id: str | None = None
    stop_price: int = 0  # ticks; required for conditional kinds
    working_type: str = "MARK_PRICE"  # MARK_PRICE | CONTRACT_PRICE (last trade)
    stp: str = "NONE"  # NONE EXPIRE_TAKER EXPIRE_MAKER EXPIRE_BOTH


@command
class CancelOrder(Command):
    account: int
    symbol: str
    order_id: int | None = None
    client_id: str | None = None


@command
class CancelAllOrders(Command):
    account: int
    symbol: str


@command
class AmendOrder(Command):
    """Change price and/or quantity. A pure quantity decrease keeps time priority;
    a price change or a quantity increase loses it."""

    account: int
    symbol: str
    order_id: int | None = None
    client_id: str | None = None
    qty: int | None = None  # new total quantity (lots), as on Binance
    price: int | None = None


@command
class CreateAccount(Command):
    account: int


@command
class Deposit(Command):
    account: int
    asset: str
    amount: int  # money quanta


@command
class Withdraw(Command):
    account: int
    asset: str
    amount: int


@command
class SetLeverage(Command):
    account: int
    symbol: str
    leverage: int


@command
class AdjustIsolatedMargin(Command):
    """Move money between the wallet and a position's isolated margin (+ add, − remove)."""

    account: int
    symbol: str
    amount: int


@command
class SetIndexPrice(Command):
    symbol: str
    price: int  # ticks


@command
class SetFundingRate(Command):
    """Impose the funding rate (1e-8 units) for the next funding time, instead of the one
    the premium index would give (a replayed funding file, an admin override)."""

    symbol: str
    rate: int


@command
class AdvanceClock(Command):
    """Move engine time to `ts` (settling any funding times passed on the way)."""


@command
class HaltSymbol(Command):
    symbol: str


@command
class ResumeSymbol(Command):
    symbol: str


@command
class AddInstrument(Command):
    instrument: Instrument


@command
class SetAccountLimits(Command):
    """Impose (or, all zero and not frozen, lift) an account's limits; see supervision.py."""

    account: int
    max_position_notional: int = 0  # money quanta per symbol; 0 = no cap
    max_open_orders: int = 0
    max_leverage: int = 0
    frozen: bool = False


@command
class SettlePositions(Command):
    """Cancel every open order of the symbol and close every position at the mark."""

    symbol: str


@command
class FundInsurance(Command):
    """Put money into the insurance fund (counted as a deposit)."""

    asset: str
    amount: int  # money quanta


@command
class ReplaceBook(Command):
    """Replace `account`'s resting limit orders on `symbol` with one per level: (tick, lots),
    bids best first, asks best first (see `synthetic.py`)."""

    account: int
    symbol: str
    bids: tuple[tuple[int, int], ...] = ()
    asks: tuple[tuple[int, int], ...] = ()


COMMAND_TYPES: dict[str, type[Command]] = {
    c.__name__: c
    for c in (
        PlaceOrder,
        CancelOrder,
        CancelAllOrders,
        AmendOrder,
        CreateAccount,
        Deposit,
        Withdraw,
        SetLeverage,
        AdjustIsolatedMargin,
        SetIndexPrice,
        SetFundingRate,
        AdvanceClock,
        HaltSymbol,
        ResumeSymbol,
        AddInstrument,
        SetAccountLimits,
        SettlePositions,
        FundInsurance,
        ReplaceBook,
    )
}
