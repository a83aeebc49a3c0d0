"""The exchange's state records: accounts, seats (an account on a symbol) and markets.

Plain mutable records with `__slots__`, no behaviour: the rooms of the exchange
(`orders`, `matching`, `positions`, `monitoring`, `mark`, `funding`, `cascade`,
`accounts`) each write their own fields, as noted on each field, and `views` reads them.
Every field listed here is part of `state_hash()` unless it is marked as a cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedList

from .book import BUY, WORKING_TYPES, Book, Order
from .instruments import Instrument
from .monitor import MarginMonitor
from .numbers import RATE_ONE, ceil_div
from .premium import MarkBasis

FUND = 0  # the insurance fund's account id
MAX_AMOUNT = 10**30  # money and sizes beyond this are nonsense, rejected before any arithmetic


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """What an operator imposes on one account (see supervision.py); all zero and not
    frozen is no limit at all, and is never stored."""

    max_position_notional: int = 0  # money quanta per symbol; 0 = no cap
    max_open_orders: int = 0  # 0 = the instrument's own cap only
    max_leverage: int = 0  # 0 = the brackets' cap only
    frozen: bool = False

    def key(self) -> tuple[int, int, int, bool]:
        return (self.max_position_notional, self.max_open_orders, self.max_leverage, self.frozen)


class Seat:
    """One account's state on one symbol: its net position and its order bookkeeping.

    Who writes what: positions `qty`, `cost`, `margin`, `realized`, `fees`, `leverage`;
    orders `pending`, `orders`; monitoring `liq`, `bk`; cascade `liquidating`; the
    liquidation policies `partial_until`.
    """

    __slots__ = (
        "account",
        "symbol",
        "leverage",
        "qty",
        "cost",
        "margin",
        "realized",
        "fees",
        "pending",
        "orders",
        "liq",
        "bk",
        "liquidating",
        "partial_until",
    )

    def __init__(self, account: int, symbol: str, leverage: int) -> None:
        self.account = account
        self.symbol = symbol
        self.leverage = leverage
        self.qty = 0  # signed lots
        self.cost = 0  # signed open notional (money quanta)
        self.margin = 0  # isolated margin
        self.realized = 0
        self.fees = 0
        self.pending = [0, 0]  # remaining lots of open orders per side
        self.orders: dict[int, Order] = {}  # open orders, oldest first
        self.liq = 0
        self.bk = 0
        self.liquidating = False
        # engine time (ns) until which a partial liquidation's cooldown runs (Hyperliquid)
        self.partial_until = 0


class Account:
    __slots__ = ("id", "available", "reserved", "seats", "client_ids")

    def __init__(self, account_id: int) -> None:
        self.id = account_id
        self.available: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.seats: dict[str, Seat] = {}
        self.client_ids: dict[str, int] = {}


class Market:
    """Per-symbol state: book, conditional orders, prices, funding, monitor.

    Who writes what: matching the `book` and `last*`; stops `stops`, `stop_count`;
    mark `index`, `mark`, `mark_key`, `premium_*`, `basis`, `funding_rate`,
    `funding_override`; funding `next_funding_ts`; monitoring `monitor`, `seats`,
    `sides`; cascade `queued`; the engine `halted`; the caches `quiet` and `quotes`
    (synthetic liquidity).
    """

    __slots__ = (
        "inst",
        "book",
        "stops",
        "index",
        "mark",
        "last",
        "last_qty",
        "last_ts",
        "halted",
        "next_funding_ts",
        "premium_sum",
        "premium_n",
        "basis",
        "funding_rate",
        "monitor",
        "seats",
        "queued",
        "stop_count",
        "mark_key",
        "sides",
        "funding_override",
        "band_ref",
        "band_lo",
        "band_hi",
        "fee_rate",
        "quiet",
        "quotes",
    )

    def __init__(self, inst: Instrument, now: int) -> None:
        self.inst = inst
        self.book = Book()
        # (working type, direction) -> SortedList of (stop, order id); direction +1
        # triggers when price >= stop, -1 when price <= stop
        self.stops: dict[tuple[str, int], SortedList] = {
            (w, d): SortedList() for w in WORKING_TYPES for d in (1, -1)
        }
        self.index = 0
        self.mark = 0
        self.last = 0
        self.last_qty = 0
        self.last_ts = 0
        self.halted = False
        iv = inst.funding_interval_ns
        self.next_funding_ts = (now // iv + 1) * iv
        self.premium_sum = 0
        self.premium_n = 0
        self.basis = MarkBasis(inst.basis_window, now)  # time-weighted inputs of the median
        self.funding_rate = inst.interest_rate
        self.monitor = MarginMonitor()
        self.seats: dict[int, Seat] = {}  # account -> seat with a position or orders
        self.queued: list[int] = []  # accounts awaiting liquidation after a truncated cascade
        self.stop_count = 0  # untriggered conditional orders
        self.mark_key: tuple[int | None, ...] = ()  # the inputs the mark was last computed from
        # open positions by side (0 long, 1 short): account -> seat, for ADL ranking
        self.sides: tuple[dict[int, Seat], dict[int, Seat]] = ({}, {})
        self.funding_override: int | None = None  # a rate imposed for the next funding time
        # caches, derived from the state above (never part of it):
        # the price band around the mark `band_ref` (see `Matching._band`)
        self.band_ref = 0
        self.band_lo = 0
        self.band_hi = 1 << 62
        # the fee rate a reservation charges: the larger of taker and maker, at least 0
        self.fee_rate = max(inst.taker_fee, inst.maker_fee, 0)
        # (monitor version, mark) at which no position was found due: while both are
        # unchanged `_react` need not look at the monitor again
        self.quiet: tuple[int, int] = (-1, 0)
        # (account, book seq, orders: bids then asks, number of bids) of the last
        # `ReplaceBook` that left the book holding only its quotes; valid while the book's
        # seq is unmoved (see `synthetic`)
        self.quotes: tuple[int, int, list[Order], int] | None = None

    def __setstate__(self, state: Any) -> None:
        """Unpickle, giving the caches a snapshot from before them lacks their defaults."""
        self.quotes = None
        _, slots = state
        for name, value in slots.items():
            setattr(self, name, value)


class Cascade:
    __slots__ = (
        "cid",
        "symbol",
        "count",
        "volume",
        "depth",
        "path",
        "fund_before",
        "adl",
    )

    def __init__(self, cid: int, symbol: str, fund_before: int) -> None:
        self.cid = cid
        self.symbol = symbol
        self.count = 0
        self.volume = 0
        self.depth = 0
        self.path: list[int] = []
        self.fund_before = fund_before
        self.adl = 0


def band_edge(inst: Instrument, side: int, ref: int) -> int:
    """The furthest tick a buy (up) or sell (down) may trade from `ref` inside the
    instrument's price band, rounded inward."""
    if side == BUY:
        return ref * (RATE_ONE + inst.band_up) // RATE_ONE
    return ceil_div(ref * (RATE_ONE - inst.band_down), RATE_ONE)
