"""Events: what happened, past tense, frozen. Every event has the global sequence
number `seq` and the engine time `ts` of the command that produced it.

Prices are ticks, quantities lots, money quanta, rates 1/RATE_ONE, as in commands.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, Self, TypeVar, dataclass_transform

T = TypeVar("T")


def _opened(cls: type) -> type | None:
    """A class laid out like `cls` (same bases, same slots) whose instances take object's
    __setattr__ and __delattr__ whatever the bases define (a frozen base too), or None
    if `cls` has no slots: `cls`'s instances can be switched to it and back."""
    slots = cls.__dict__.get("__slots__")
    if slots is None:
        return None
    try:
        # both of object's own: they share one type slot, which is then object's C
        # function (with __setattr__ alone, every store would go through a Python lookup)
        plain = {"__setattr__": object.__setattr__, "__delattr__": object.__delattr__}
        opened = type(cls.__name__, cls.__bases__, {"__slots__": slots, **plain})
        probe: object = object.__new__(cls)
        object.__setattr__(probe, "__class__", opened)
        probe.__class__ = cls
    except TypeError:
        return None
    opened.__qualname__ = f"{cls.__qualname__}.<opened>"
    return opened


def fast_init(cls: type[T]) -> type[T]:
    """Give a frozen slotted dataclass a faster __init__ and a faster still factory
    `cls.new` (same signature): both make the same frozen instance as the generated
    __init__ (equality, hash, repr, pickling unchanged), which goes through
    object.__setattr__ per field. Events are made several times per command and replay
    parses millions of rows, so this is on both hot paths: for an event of 11 fields,
    `new` takes about 0.3 of the generated constructor's time, a call of the class 0.5.

    Both write each field with one plain slot store, on the instance made as (or
    switched to) a class laid out the same but not frozen (even if a base is frozen),
    and switch it to `cls` before returning. Where no such class can be made (no slots),
    the fields are written through the slots' descriptors, and `new` is the class
    itself; so is it for a subclass that is not itself declared an event (see
    `Event.__init_subclass__`), whose instances the inherited __init__ builds the same
    slower way. The signature is positional, or keyword-only when every field is
    (commands). A field called `new`, and one that is init=False, has a default
    factory, or is kw_only beside positional ones (which this signature would not
    mirror), is refused with TypeError."""
    opened = _opened(cls)
    # The generated code's own names start with "__fi_", which no field can (a class
    # body mangles such a name), so no field's parameter shadows one of them.
    ns: dict[str, Any] = {"__fi_type": type, "__fi_osa": object.__setattr__}
    ns.update(__fi_new=object.__new__, __fi_open=opened, __fi_closed=cls)
    params, fast, slow = [], [], []
    flds = fields(cls)  # type: ignore[arg-type]
    keywords = all(f.kw_only for f in flds)
    for f in flds:
        n = f.name
        if n == "new" or n.startswith("__fi_"):
            raise TypeError(f"{cls.__qualname__}: a field cannot be called {n!r}")
        if not f.init or f.kw_only != keywords or f.default_factory is not MISSING:
            # the generated signature is positional with plain defaults: it would differ
            raise TypeError(
                f"{cls.__qualname__}.{n}: init=False, kw_only and default "
                "factories are not supported"
            )
        ns[f"__fi_s_{n}"] = next(k.__dict__[n] for k in cls.__mro__ if n in k.__dict__).__set__
        if f.default is not MISSING:
            ns[f"__fi_d_{n}"] = f.default
            params.append(f"{n}=__fi_d_{n}")
        else:
            params.append(n)
        fast.append(f"        __fi_self.{n} = {n}\n")
        slow.append(f"            __fi_s_{n}(__fi_self, {n})\n")
    sig = ("*, " if keywords and params else "") + ", ".join(params)
    # (builtins are passed in under other names: a field called `type` would shadow one;
    # and the constants are closure cells, not globals: a cell load is the cheaper)
    src = (
        f"def make({', '.join(ns)}):\n"
        f"    def __init__(__fi_self, {sig}):\n"
        "        if __fi_open is None or __fi_type(__fi_self) is not __fi_closed:\n"
        f"{''.join(slow)}"
        "            return\n"
        '        __fi_osa(__fi_self, "__class__", __fi_open)\n'
        f"{''.join(fast)}"
        "        __fi_self.__class__ = __fi_closed\n"
        f"    def new({sig}):\n"
        "        __fi_self = __fi_new(__fi_open)\n"
        f"{''.join(fast)}"
        "        __fi_self.__class__ = __fi_closed\n"
        "        return __fi_self\n"
        "    return __init__, new\n"
    )
    exec(src, ns)
    init, new = ns["make"](*(v for k, v in ns.items() if k not in ("make", "__builtins__")))
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    new.__qualname__ = f"{cls.__qualname__}.new"
    cls.__init__ = init  # type: ignore[method-assign]
    cls.new = staticmethod(new if opened is not None else cls)  # type: ignore[attr-defined]
    return cls


@dataclass_transform(frozen_default=True)
def event(cls: type[T]) -> type[T]:
    """Declare an event: a frozen dataclass with __slots__ and a fast constructor."""
    return fast_init(dataclass(frozen=True, slots=True)(cls))


@dataclass(frozen=True, slots=True)
class Event:
    """The base of every event: frozen, with the slots `seq` and `ts`."""

    seq: int
    ts: int

    if TYPE_CHECKING:

        @classmethod
        def new(cls, *args: Any, **kwargs: Any) -> Self:
            """The fast factory `fast_init` gives each event class."""
            ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super(Event, cls).__init_subclass__(**kwargs)  # (slots=True remade Event)
        if "new" in cls.__dict__.get("__annotations__", {}):
            # it would take this factory for its default, and `event` would replace its slot
            raise TypeError(f"{cls.__qualname__}: a field cannot be called 'new'")
        cls.new = staticmethod(cls)  # type: ignore[method-assign]  # until `event` gives its own


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
