"""Events: what happened, past tense, frozen. Every event has the global sequence
number `seq` and the engine time `ts` of the command that produced it.

Prices are ticks, quantities lots, money quanta, rates 1/RATE_ONE, as in commands.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give a frozen slotted dataclass an __init__ that writes its slots through their
    member descriptors: the same frozen instance (signature, defaults, equality, hash,
    repr unchanged), built about twice as fast as the generated one, which goes through
    object.__setattr__ per field. Events are made several times per command, and replay
    parses millions of rows, so this is on both hot paths."""
    params, body, setters = [], [], []
    ns: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        n = f.name
        ns[f"_s_{n}"] = next(k.__dict__[n] for k in cls.__mro__ if n in k.__dict__).__set__
        setters.append(f"_s_{n}")
        if f.default is not MISSING:
            ns[f"_d_{n}"] = f.default
            params.append(f"{n}=_d_{n}")
        else:
            params.append(n)
        body.append(f"        _s_{n}(self, {n})\n")
    # the setters are closure cells, not globals: a cell load is the cheaper of the two
    src = (
        f"def make({', '.join(setters)}):\n"
        f"    def __init__(self, {', '.join(params)}):\n{''.join(body) or '        pass'}\n"
        "    return __init__\n"
    )
    exec(src, ns)
    init = ns["make"](*(ns[s] for s in setters))
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@dataclass_transform(frozen_default=True)
def event(cls: type[T]) -> type[T]:
    """Declare an event: a frozen dataclass with __slots__ and a fast constructor."""
    return fast_init(dataclass(frozen=True, slots=True)(cls))


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    ts: int


@event
class OrderAccepted(Event):
    order_id: int
    client_id: str | None
    account: int
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: int
    qty: int
    stop_price: int
    reduce_only: bool
    status: str  # NEW, or UNTRIGGERED for a conditional order waiting for its trigger


@event
class OrderRejected(Event):
    account: int
    symbol: str
    client_id: str | None
    order_id: int | None
    code: int
    msg: str
    command: str


@event
class CommandRejected(Event):
    code: int
    msg: str
    command: str
    account: int | None


@event
class OrderResubmissionIgnored(Event):
    """A PlaceOrder reused an accepted client id: nothing changed; `order_id` is the original."""

    account: int
    symbol: str
    client_id: str
    order_id: int


@event
class OrderFilled(Event):
    """One match, both sides. `*_remaining` is what each order has left after it."""

    symbol: str
    trade_id: int
    price: int
    qty: int
    taker_side: str
    taker_order_id: int
    maker_order_id: int
    taker_account: int
    maker_account: int
    taker_fee: int
    maker_fee: int
    taker_remaining: int
    maker_remaining: int
    liquidation: bool


@event
class OrderCanceled(Event):
    order_id: int
    client_id: str | None
    account: int
    symbol: str
    remaining: int
    reason: str  # USER, CANCEL_ALL, LIQUIDATION, HALT


@event
class OrderExpired(Event):
    order_id: int
    client_id: str | None
    account: int
    symbol: str
    remaining: int
    reason: str  # IOC, FOK, POST_ONLY, PRICE_BAND, NO_LIQUIDITY, STP_TAKER, STP_MAKER, STP_BOTH,
    # REDUCE_ONLY, LIQUIDATION


@event
class OrderAmended(Event):
    order_id: int
    account: int
    symbol: str
    price: int
    qty: int
    remaining: int
    priority_kept: bool


@event
class OrderTriggered(Event):
    order_id: int
    account: int
    symbol: str
    stop_price: int
    trigger_price: int
    working_type: str


@event
class BookUpdated(Event):
    """Levels whose total changed in one command: (price, new total); total 0 = gone."""

    symbol: str
    book_seq: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


@event
class PositionChanged(Event):
    account: int
    symbol: str
    qty: int
    cost: int  # signed open notional; entry price = cost / (qty × lot_value)
    margin: int
    leverage: int
    liquidation_price: int
    bankruptcy_price: int
    realized_pnl: int  # cumulative


@event
class BalanceChanged(Event):
    account: int
    asset: str
    available: int
    reserved: int


@event
class AccountCreated(Event):
    account: int


@event
class FundsDeposited(Event):
    account: int
    asset: str
    amount: int


@event
class FundsWithdrawn(Event):
    account: int
    asset: str
    amount: int


@event
class LeverageChanged(Event):
    account: int
    symbol: str
    leverage: int


@event
class IsolatedMarginChanged(Event):
    account: int
    symbol: str
    amount: int
    margin: int


@event
class IndexPriceChanged(Event):
    symbol: str
    index: int


@event
class FundingRateSet(Event):
    symbol: str
    rate: int
    next_funding_ts: int


@event
class MarkPriceChanged(Event):
    symbol: str
    mark: int
    index: int
    last: int
    funding_rate: int
    next_funding_ts: int


@event
class PositionLiquidated(Event):
    liquidation_id: int
    cascade_id: int
    generation: int
    parent_id: int | None
    account: int
    symbol: str
    side: str  # the side of the position (LONG/SHORT)
    qty: int  # lots liquidated (positive)
    trigger_mark: int
    liquidation_price: int
    bankruptcy_price: int
    fills: tuple[tuple[int, int], ...]  # (price, qty) of each book fill
    filled_qty: int
    fund_takeover_qty: int
    adl_qty: int
    insurance_delta: int  # change of the insurance fund balance caused by this liquidation


@event
class PositionAutoDeleveraged(Event):
    liquidation_id: int
    cascade_id: int
    account: int
    symbol: str
    qty: int  # lots closed (positive)
    price: int
    realized_pnl: int


@event
class CascadeEnded(Event):
    cascade_id: int
    symbol: str
    liquidations: int
    volume: int  # lots liquidated
    generations: int  # deepest generation + 1
    price_path: tuple[int, ...]  # marks that triggered liquidations, in order
    insurance_before: int
    insurance_after: int
    adl_count: int
    truncated: bool  # the round bound was hit; the rest waits for the next command


@event
class FundingPaid(Event):
    account: int
    symbol: str
    rate: int
    amount: int  # + received, − paid
    position_qty: int
    mark: int


@event
class FundingSettled(Event):
    symbol: str
    rate: int
    funding_ts: int
    total: int  # quanta paid by payers = received by receivers
    next_funding_ts: int


@event
class SymbolHalted(Event):
    symbol: str


@event
class SymbolResumed(Event):
    symbol: str


@event
class InstrumentAdded(Event):
    symbol: str


@event
class ClockAdvanced(Event):
    pass


@event
class AccountLimitsSet(Event):
    account: int
    max_position_notional: int
    max_open_orders: int
    max_leverage: int
    frozen: bool


@event
class PositionsSettled(Event):
    symbol: str
    price: int  # the mark every position was closed at
    positions: int


@event
class InsuranceFunded(Event):
    asset: str
    amount: int
    balance: int  # the fund's balance after it
