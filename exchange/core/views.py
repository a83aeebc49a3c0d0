"""Read-only views: frozen snapshots of core state for the layers above, the queries
that make them, and `state_hash()`.

Views never hand out the core's mutable objects (orders, seats); every value is an
integer in core units. `state_hash()` is a SHA-256 over a sorted rendering of the whole
state, so the same state hashes the same however it was reached or restored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .book import FILLED, SIDES, STATUS_NAMES, UNTRIGGERED, Order
from .errors import Rejected
from .ladder import LadderView, ladder_from
from .numbers import RATE_ONE
from .room import Room
from .state import Seat


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


class Views(Room):
    """Read-only queries; none of them changes anything."""

    def _order_view(self, o: Order) -> OrderView:
        return OrderView(
            o.oid,
            o.client_id,
            o.account,
            o.symbol,
            SIDES[o.side],
            o.type,
            o.tif,
            o.price,
            o.qty,
            o.qty - o.remaining,
            o.remaining if o.status < FILLED or o.status == UNTRIGGERED else 0,
            o.stop_price,
            o.trigger,
            o.reduce_only,
            STATUS_NAMES[o.status],
            o.ts,
        )

    def order_view(
        self, account: int, symbol: str, order_id: int | None = None, client_id: str | None = None
    ) -> OrderView | None:
        """The account's own order (open or closed), else None."""
        acct = self.accounts.get(account)
        m = self.markets.get(symbol)
        if acct is None or m is None:
            return None
        try:
            o = self._find(acct, m, order_id, client_id)
        except Rejected:
            return None
        return self._order_view(o)

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(account)
        if acct is None:
            return []
        syms = [symbol] if symbol is not None else sorted(acct.seats)
        out: list[OrderView] = []
        for s in syms:
            seat = acct.seats.get(s)
            if seat is not None and seat.orders:
                out.extend(self._order_view(o) for o in self._open_orders_of(account, s))
        return out

    def depth(
        self, symbol: str, limit: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return self.markets[symbol].book.depth(limit)

    def book_seq(self, symbol: str) -> int:
        return self.markets[symbol].book.seq

    def l3(self, symbol: str) -> tuple[list[OrderView], list[OrderView]]:
        bids, asks = self.markets[symbol].book.l3()
        return [self._order_view(o) for o in bids], [self._order_view(o) for o in asks]

    def best_bid_ask(self, symbol: str) -> tuple[int | None, int | None]:
        b = self.markets[symbol].book
        return b.best_bid(), b.best_ask()

    def last_trade(self, symbol: str) -> tuple[int, int, int] | None:
        m = self.markets[symbol]
        return (m.last, m.last_qty, m.last_ts) if m.last else None

    def liquidation_ladder(
        self, symbol: str, buckets: int = 20, exponent: int | None = None
    ) -> LadderView:
        """Open interest by liquidation price around the mark (see `ladder`). The
        first call per symbol builds the aggregates, O(N); then O(buckets)."""
        m = self.markets[symbol]
        if m.monitor.ladder is None:
            seats = m.sides[0] | m.sides[1]
            m.monitor.ladder = ladder_from(m.monitor.keys, lambda a: seats[a].qty)
        return m.monitor.ladder.view(symbol, m.mark, buckets, exponent)

    def market_view(self, symbol: str) -> MarketView:
        m = self.markets[symbol]
        return MarketView(
            symbol,
            m.mark,
            m.index,
            m.last,
            m.funding_rate,
            m.next_funding_ts,
            m.halted,
            m.book.best_bid(),
            m.book.best_ask(),
        )

    def position_view(self, seat: Seat) -> PositionView:
        m = self.markets[seat.symbol]
        inst = m.inst
        lv = inst.lot_value
        mark = m.mark
        upnl = seat.qty * mark * lv - seat.cost if seat.qty else 0
        notional = abs(seat.qty) * mark * lv
        mm = inst.maintenance_margin(notional) if seat.qty else 0
        equity = seat.margin + upnl
        ratio = mm * RATE_ONE // equity if equity > 0 else (RATE_ONE if seat.qty else 0)
        entry = (abs(seat.cost), abs(seat.qty) * lv) if seat.qty else (0, 1)
        return PositionView(
            seat.symbol,
            seat.qty,
            seat.cost,
            entry,
            seat.margin,
            seat.leverage,
            mark,
            seat.liq,
            seat.bk,
            upnl,
            mm,
            ratio,
            seat.realized,
        )

    def account_view(self, account: int) -> AccountView | None:
        acct = self.accounts.get(account)
        if acct is None:
            return None
        assets = sorted(set(acct.available) | set(acct.reserved))
        balances = tuple(
            BalanceView(a, acct.available.get(a, 0), acct.reserved.get(a, 0)) for a in assets
        )
        positions = tuple(self.position_view(s) for _, s in sorted(acct.seats.items()) if s.qty)
        return AccountView(account, balances, positions)

    def state_hash(self) -> str:
        """SHA-256 over a canonical rendering of the whole state (sorted, so the same
        state gives the same digest however it was reached or restored). Excludes the
        event sequence counter, so a rejected command leaves it unchanged. O(state)."""
        h = hashlib.sha256()
        put = h.update
        put(
            repr(
                (
                    self.now,
                    self.next_order_id,
                    self.next_trade_id,
                    self.next_liquidation_id,
                    self.next_cascade_id,
                )
            ).encode()
        )
        put(repr(sorted(self.fees_collected.items())).encode())
        put(repr((sorted(self.deposited.items()), sorted(self.withdrawn.items()))).encode())
        if self.limits:  # absent until an operator sets one: older digests stay as they were
            put(repr(sorted((a, lim.key()) for a, lim in self.limits.items())).encode())
        for sym in sorted(self.markets):
            m = self.markets[sym]
            put(
                repr(
                    (
                        sym,
                        m.inst,
                        m.index,
                        m.mark,
                        m.last,
                        m.last_qty,
                        m.last_ts,
                        m.halted,
                        m.next_funding_ts,
                        m.premium_sum,
                        m.premium_n,
                        m.basis.state(),
                        m.funding_rate,
                        m.funding_override,
                        m.book.seq,
                        tuple(m.queued),
                    )
                ).encode()
            )
            if (
                m.inst.liquidation_policy != "binance"
            ):  # the default leaves older digests as they were
                put(repr(("liquidation_policy", m.inst.liquidation_policy)).encode())
            bids, asks = m.book.l3()
            put(repr([o.oid for o in bids] + [-1] + [o.oid for o in asks]).encode())
            for key in sorted(m.stops):
                put(repr((key, list(m.stops[key]))).encode())
            put(repr((list(m.monitor.longs), list(m.monitor.shorts))).encode())
        for aid in sorted(self.accounts):
            a = self.accounts[aid]
            put(
                repr(
                    (
                        aid,
                        sorted(a.available.items()),
                        sorted(a.reserved.items()),
                        sorted(a.client_ids.items()),
                    )
                ).encode()
            )
            for sym in sorted(a.seats):
                s = a.seats[sym]
                put(
                    repr(
                        (
                            sym,
                            s.leverage,
                            s.qty,
                            s.cost,
                            s.margin,
                            s.realized,
                            s.fees,
                            s.pending,
                            sorted(s.orders),
                            s.liq,
                            s.bk,
                            s.liquidating,
                        )
                    ).encode()
                )
                if s.partial_until:  # set by a partial liquidation only
                    put(repr(("partial_until", s.partial_until)).encode())
        for oid in sorted(self.orders):
            put(repr(self.orders[oid].key()).encode())
        return h.hexdigest()

    def conservation(self, asset: str = "USDT") -> tuple[int, int]:
        """(money held everywhere, deposits − withdrawals): equal when money is conserved."""
        held = self.fees_collected.get(asset, 0)
        for a in self.accounts.values():
            held += a.available.get(asset, 0) + a.reserved.get(asset, 0)
            for sym, s in a.seats.items():
                if self.instruments[sym].quote_asset == asset:
                    held += s.margin - s.cost
        return held, self.deposited.get(asset, 0) - self.withdrawn.get(asset, 0)
