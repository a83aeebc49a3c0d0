"""Read-only snapshots of core state handed to the layers above (frozen, integer units)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: int
    client_id: str | None
    account: int
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: int
    qty: int
    filled: int
    remaining: int
    stop_price: int
    working_type: str
    reduce_only: bool
    status: str
    ts: int


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    qty: int  # signed lots
    cost: int  # signed open notional, money quanta
    entry_price: tuple[int, int]  # ticks as an exact fraction (num, den); (0, 1) when flat
    margin: int
    leverage: int
    mark: int
    liquidation_price: int
    bankruptcy_price: int
    unrealized_pnl: int
    maintenance_margin: int
    margin_ratio: int  # maintenance margin / (margin + uPnL), as a rate (RATE_ONE = 100 %)
    realized_pnl: int


@dataclass(frozen=True, slots=True)
class BalanceView:
    asset: str
    available: int
    reserved: int


@dataclass(frozen=True, slots=True)
class AccountView:
    account: int
    balances: tuple[BalanceView, ...]
    positions: tuple[PositionView, ...]


@dataclass(frozen=True, slots=True)
class MarketView:
    symbol: str
    mark: int
    index: int
    last: int
    funding_rate: int
    next_funding_ts: int
    halted: bool
    best_bid: int | None
    best_ask: int | None
