"""Canonical replay events: what every reader produces and the event log stores.

Guarantees:

* Every event is a frozen dataclass with ``__slots__``: immutable, hashable, compared by value.
* ``exchange_ts`` (when the venue says it happened) and ``local_ts`` (when the recorder received
  it) are integer nanoseconds since the Unix epoch, UTC. Sources without an arrival time set
  ``local_ts = exchange_ts``.
* Prices, amounts and rates are :class:`decimal.Decimal`, exactly as written in the source file
  (``Decimal("8531.50")`` keeps its trailing zero). No float is ever involved.
* ``priority`` (a class attribute) breaks ties between events with equal timestamps when streams
  are merged; lower goes first. See :mod:`replay.merge` and ``docs/replay.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal, NamedTuple

from exchange.core.events import fast_init

__all__ = [
    "EVENT_TYPES",
    "BookLevel",
    "BookUpdate",
    "Event",
    "FundingRate",
    "Kline",
    "KlineKind",
    "Liquidation",
    "Quote",
    "Side",
    "Ticker",
    "Trade",
]

Side = Literal["buy", "sell", "unknown"]
"""Aggressor (taker) side of a trade, or the side of a liquidation order."""

KlineKind = Literal["trade", "mark", "index", "premium"]
"""What a kline's prices are: last-trade prices, mark price, index price or premium index."""


class Event:
    """Base of all canonical events (no fields of its own)."""

    __slots__ = ()
    type_name: ClassVar[str] = ""
    priority: ClassVar[int] = 9
    exchange_ts: int
    local_ts: int
    symbol: str
    exchange: str


class BookLevel(NamedTuple):
    """One price level: ``amount`` is the new total resting there; ``0`` removes the level."""

    price: Decimal
    amount: Decimal


@fast_init
@dataclass(frozen=True, slots=True)
class Ticker(Event):
    """Derivative ticker state; ``None`` means "not known yet" (never "unchanged").

    Readers carry forward the last known value of each field per symbol, so a ticker always
    shows the latest state. ``funding_ts`` is the next funding time in ns.
    """

    type_name: ClassVar[str] = "ticker"
    priority: ClassVar[int] = 0
    exchange_ts: int
    local_ts: int
    symbol: str
    mark_price: Decimal | None
    index_price: Decimal | None
    last_price: Decimal | None
    funding_rate: Decimal | None
    predicted_funding_rate: Decimal | None
    funding_ts: int | None
    open_interest: Decimal | None
    exchange: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Kline(Event):
    """An OHLCV bar covering ``[open_ts, exchange_ts)``.

    ``exchange_ts`` is the end of the bar (``open_ts`` + interval): the first instant at which the
    whole bar is known, so merging bars with other streams never leaks the future.
    """

    type_name: ClassVar[str] = "kline"
    priority: ClassVar[int] = 0
    exchange_ts: int
    local_ts: int
    symbol: str
    kind: KlineKind
    open_ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    exchange: str = ""

    @property
    def interval_ns(self) -> int:
        """Length of the bar in nanoseconds."""
        return self.exchange_ts - self.open_ts


@fast_init
@dataclass(frozen=True, slots=True)
class FundingRate(Event):
    """A funding rate settled (or calculated) at ``exchange_ts``."""

    type_name: ClassVar[str] = "funding"
    priority: ClassVar[int] = -1  # first on a tie: a rate must precede its funding time
    exchange_ts: int
    local_ts: int
    symbol: str
    rate: Decimal
    interval_hours: int | None = None
    exchange: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Trade(Event):
    """A recorded trade; ``side`` is the aggressor's side."""

    type_name: ClassVar[str] = "trade"
    priority: ClassVar[int] = 2
    exchange_ts: int
    local_ts: int
    symbol: str
    price: Decimal
    amount: Decimal
    side: Side
    trade_id: str = ""
    exchange: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Liquidation(Event):
    """A recorded liquidation order; ``side`` ``buy`` means a short position was liquidated."""

    type_name: ClassVar[str] = "liquidation"
    priority: ClassVar[int] = 3
    exchange_ts: int
    local_ts: int
    symbol: str
    price: Decimal
    amount: Decimal
    side: Side
    liquidation_id: str = ""
    exchange: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class BookUpdate(Event):
    """Changes to price levels of an order book, from one message of the recording.

    ``snapshot=True`` means: clear the whole book (both sides), then apply these levels. Levels
    of a snapshot whose rows span several messages continue in events with ``snapshot=False``.
    ``update_id`` is the venue's sequence number when the source has one.
    """

    type_name: ClassVar[str] = "book"
    priority: ClassVar[int] = 4
    exchange_ts: int
    local_ts: int
    symbol: str
    snapshot: bool
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    update_id: int | None = None
    exchange: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Quote(Event):
    """Best bid and offer; ``None`` when that side of the book is empty."""

    type_name: ClassVar[str] = "quote"
    priority: ClassVar[int] = 5
    exchange_ts: int
    local_ts: int
    symbol: str
    bid_price: Decimal | None
    bid_amount: Decimal | None
    ask_price: Decimal | None
    ask_amount: Decimal | None
    exchange: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls
    for cls in (Ticker, Kline, FundingRate, Trade, Liquidation, BookUpdate, Quote)
}
"""Event classes by their ``type_name`` (the ``"type"`` key of the event log)."""
