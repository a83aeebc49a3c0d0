"""What Binance's API shows and the core does not keep: built from the event stream.

The core keeps every order and the current state; Binance's REST API also answers with
history (trades, klines, funding rates, an account's trades) and per-order totals
(`cumQuote`, `avgPrice`, `updateTime`). `Ledger.apply(batch)` folds core events into
bounded in-memory tables; it never touches the core. It is fed by the gateway's own
runtime subscription, drained before every read (see `Gateway.catch_up`), so a read
after a write sees the write.

Bounds (oldest dropped first): `TRADES_KEPT` public trades and `MINUTES_KEPT` one-minute
candles per symbol, `FUNDING_KEPT` funding settlements per symbol, `ACCOUNT_TRADES_KEPT`
trades and `ACCOUNT_ORDERS_KEPT` order ids per account. History starts when the process
does: after a restart the core's state is recovered by the store, this history is not.
Each `apply` is O(events); a kline query is O(log M + candles read).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import Any

from exchange.core import events as E

TRADES_KEPT = 10_000
MINUTES_KEPT = 14 * 1440
FUNDING_KEPT = 1_000
ACCOUNT_TRADES_KEPT = 2_000
ACCOUNT_ORDERS_KEPT = 2_000
MINUTE_MS = 60_000


def ms(ts_ns: int) -> int:
    """Engine nanoseconds → Binance milliseconds."""
    return ts_ns // 1_000_000


@dataclass(slots=True)
class Trade:
    trade_id: int
    price: int  # ticks
    qty: int  # lots
    buyer_maker: bool
    ts: int  # ns
    liquidation: bool


@dataclass(slots=True)
class OrderRecord:
    """One order as Binance describes it, kept up to date from its events."""

    order_id: int
    account: int
    symbol: str
    client_id: str | None
    side: str
    type: str  # the core's type name
    time_in_force: str
    price: int
    qty: int
    stop_price: int
    reduce_only: bool
    status: str  # NEW PARTIALLY_FILLED FILLED CANCELED EXPIRED (UNTRIGGERED while waiting)
    created: int  # ns
    updated: int  # ns
    filled: int = 0  # lots
    quote: int = 0  # sum of price × qty, in ticks·lots
    working_type: str = "MARK_PRICE"
    triggered: bool = False


@dataclass(slots=True)
class AccountTrade:
    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: int
    qty: int
    fee: int  # quanta
    maker: bool
    ts: int
    realized: int = 0  # quanta, filled in by the position change that follows


class Candles:
    """One-minute candles of one symbol, in time order: [open_ms, o, h, l, c, lots,
    quote (ticks·lots), trades, taker-buy lots, taker-buy quote]."""

    __slots__ = ("keys", "rows")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.rows: list[list[int]] = []

    def add(self, t: Trade) -> None:
        minute = ms(t.ts) // MINUTE_MS * MINUTE_MS
        taker_buy = not t.buyer_maker
        if self.keys and self.keys[-1] == minute:
            r = self.rows[-1]
            r[2] = max(r[2], t.price)
            r[3] = min(r[3], t.price)
            r[4] = t.price
            r[5] += t.qty
            r[6] += t.qty * t.price
            r[7] += 1
            if taker_buy:
                r[8] += t.qty
                r[9] += t.qty * t.price
            return
        if self.keys and minute < self.keys[-1]:
            return  # engine time never goes back; a stamped-in-the-past trade joins nothing
        tb = t.qty if taker_buy else 0
        self.keys.append(minute)
        self.rows.append(
            [
                minute,
                t.price,
                t.price,
                t.price,
                t.price,
                t.qty,
                t.qty * t.price,
                1,
                tb,
                tb * t.price,
            ]
        )
        if len(self.keys) > MINUTES_KEPT + 1024:
            del self.keys[:1024]
            del self.rows[:1024]

    def range(self, start_ms: int, end_ms: int) -> list[list[int]]:
        """Candles with open time in [start_ms, end_ms]."""
        i = bisect_left(self.keys, start_ms)
        j = bisect_left(self.keys, end_ms + 1)
        return self.rows[i:j]


class Ledger:
    """Event-fed history for the Binance gateway (see the module docstring)."""

    def __init__(self) -> None:
        self.trades: dict[str, deque[Trade]] = {}
        self.candles: dict[str, Candles] = {}
        self.funding: dict[str, deque[tuple[int, int, int]]] = {}  # (funding ns, rate, mark)
        self.marks: dict[str, int] = {}
        self.orders: dict[int, OrderRecord] = {}
        self.account_orders: dict[int, deque[int]] = {}
        self.account_trades: dict[int, deque[AccountTrade]] = {}
        self.income: dict[
            int, deque[tuple[str, str, int, int, int]]
        ] = {}  # (sym, type, quanta, ns, id)
        self.balance_ts: dict[int, int] = {}
        self.position_ts: dict[tuple[int, str], int] = {}
        self._realized: dict[tuple[int, str], int] = {}
        self._pending_realized: dict[tuple[int, str], AccountTrade] = {}
        self.applied = 0

    # ------------------------------------------------------------------ folding

    def apply(self, batch: list[E.Event]) -> None:
        for ev in batch:
            f = _APPLY.get(type(ev))
            if f is not None:
                f(self, ev)
        self.applied += 1

    def _accepted(self, ev: E.OrderAccepted) -> None:
        rec = OrderRecord(
            ev.order_id, ev.account, ev.symbol, ev.client_id, ev.side, ev.type,
            ev.time_in_force, ev.price, ev.qty, ev.stop_price, ev.reduce_only, ev.status,
            ev.ts, ev.ts,
        )  # fmt: skip
        self._keep_order(rec)

    def _keep_order(self, rec: OrderRecord) -> None:
        self.orders[rec.order_id] = rec
        ids = self.account_orders.setdefault(rec.account, deque())
        ids.append(rec.order_id)
        if len(ids) > ACCOUNT_ORDERS_KEPT:
            old = self.orders.get(ids[0])
            if old is None or old.status not in ("NEW", "PARTIALLY_FILLED", "UNTRIGGERED"):
                self.orders.pop(ids.popleft(), None)

    def _filled(self, ev: E.OrderFilled) -> None:
        t = Trade(ev.trade_id, ev.price, ev.qty, ev.taker_side == "SELL", ev.ts, ev.liquidation)
        q = self.trades.setdefault(ev.symbol, deque(maxlen=TRADES_KEPT))
        q.append(t)
        c = self.candles.get(ev.symbol)
        if c is None:
            c = self.candles[ev.symbol] = Candles()
        c.add(t)
        maker_side = "SELL" if ev.taker_side == "BUY" else "BUY"
        for acct, oid, side, fee, maker, rem in (
            (ev.taker_account, ev.taker_order_id, ev.taker_side, ev.taker_fee, False, ev.taker_remaining),
            (ev.maker_account, ev.maker_order_id, maker_side, ev.maker_fee, True, ev.maker_remaining),
        ):  # fmt: skip
            rec = self.orders.get(oid)
            if rec is None and ev.liquidation and not maker:
                # the liquidation engine's own IOC order: no OrderAccepted precedes it
                rec = OrderRecord(
                    oid, acct, ev.symbol, f"autoclose-{oid}", side, "LIQUIDATION", "IOC",
                    ev.price, ev.qty + rem, 0, True, "NEW", ev.ts, ev.ts,
                )  # fmt: skip
                self._keep_order(rec)
            if rec is not None:
                rec.filled += ev.qty
                rec.quote += ev.qty * ev.price
                rec.updated = ev.ts
                rec.status = "FILLED" if rem == 0 else "PARTIALLY_FILLED"
                if rec.type == "LIQUIDATION" and rem:
                    rec.status = "PARTIALLY_FILLED"
            at = AccountTrade(
                ev.symbol, ev.trade_id, oid, side, ev.price, ev.qty, fee, maker, ev.ts
            )
            tq = self.account_trades.setdefault(acct, deque(maxlen=ACCOUNT_TRADES_KEPT))
            tq.append(at)
            self._pending_realized[(acct, ev.symbol)] = at
            if fee:
                self._income(acct, ev.symbol, "COMMISSION", -fee, ev.ts, ev.trade_id * 2 + maker)

    def _closed(self, ev: E.OrderCanceled | E.OrderExpired) -> None:
        rec = self.orders.get(ev.order_id)
        if rec is not None:
            rec.status = "CANCELED" if type(ev) is E.OrderCanceled else "EXPIRED"
            rec.updated = ev.ts

    def _amended(self, ev: E.OrderAmended) -> None:
        rec = self.orders.get(ev.order_id)
        if rec is not None:
            rec.price = ev.price
            rec.qty = ev.qty
            rec.updated = ev.ts

    def _triggered(self, ev: E.OrderTriggered) -> None:
        rec = self.orders.get(ev.order_id)
        if rec is not None:
            rec.triggered = True
            rec.working_type = ev.working_type
            if rec.status == "UNTRIGGERED":
                rec.status = "NEW"
            rec.updated = ev.ts

    def _position(self, ev: E.PositionChanged) -> None:
        key = (ev.account, ev.symbol)
        self.position_ts[key] = ev.ts
        prev = self._realized.get(key, ev.realized_pnl)
        self._realized[key] = ev.realized_pnl
        at = self._pending_realized.pop(key, None)
        if at is not None and at.ts == ev.ts:
            at.realized = ev.realized_pnl - prev
        if ev.realized_pnl != prev:
            self._income(
                ev.account, ev.symbol, "REALIZED_PNL", ev.realized_pnl - prev, ev.ts, ev.seq
            )

    def _income(
        self, account: int, symbol: str, kind: str, amount: int, ts: int, tran: int
    ) -> None:
        q = self.income.setdefault(account, deque(maxlen=ACCOUNT_TRADES_KEPT))
        q.append((symbol, kind, amount, ts, tran))

    def _funding_paid(self, ev: E.FundingPaid) -> None:
        self._income(ev.account, ev.symbol, "FUNDING_FEE", ev.amount, ev.ts, ev.seq)

    def _balance(self, ev: Any) -> None:
        self.balance_ts[ev.account] = ev.ts

    def _mark(self, ev: E.MarkPriceChanged) -> None:
        self.marks[ev.symbol] = ev.mark

    def _funding(self, ev: E.FundingSettled) -> None:
        q = self.funding.setdefault(ev.symbol, deque(maxlen=FUNDING_KEPT))
        q.append((ev.funding_ts, ev.rate, self.marks.get(ev.symbol, 0)))

    # ------------------------------------------------------------------ reads

    def account_order_ids(self, account: int) -> list[int]:
        return list(self.account_orders.get(account, ()))

    def klines(self, symbol: str, interval_ms: int, start_ms: int, end_ms: int, limit: int) -> list[list[int]]:  # fmt: skip
        """Candles of `interval_ms` (a multiple of a minute) built from the minute ones,
        open times in [start_ms, end_ms], at most `limit` (the latest when no start)."""
        c = self.candles.get(symbol)
        if c is None:
            return []
        first = start_ms - _align(start_ms, interval_ms)
        out: list[list[int]] = []
        for r in c.range(first, end_ms):
            start = r[0] - _align(r[0], interval_ms)
            if out and out[-1][0] == start:
                k = out[-1]
                k[2] = max(k[2], r[2])
                k[3] = min(k[3], r[3])
                k[4] = r[4]
                for i in range(5, 10):
                    k[i] += r[i]
            else:
                out.append([start, *r[1:]])
        return out[:limit] if start_ms > 0 else out[-limit:]


_WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; Binance's weeks start on Monday


def _align(open_ms: int, interval_ms: int) -> int:
    """How far `open_ms` lies into its candle of `interval_ms`."""
    if interval_ms == 7 * 86_400_000:
        return (open_ms - _WEEK_OFFSET_MS) % interval_ms
    return open_ms % interval_ms


_APPLY: dict[type, Any] = {
    E.OrderAccepted: Ledger._accepted,
    E.OrderFilled: Ledger._filled,
    E.OrderCanceled: Ledger._closed,
    E.OrderExpired: Ledger._closed,
    E.OrderAmended: Ledger._amended,
    E.OrderTriggered: Ledger._triggered,
    E.PositionChanged: Ledger._position,
    E.BalanceChanged: Ledger._balance,
    E.FundsDeposited: Ledger._balance,
    E.FundsWithdrawn: Ledger._balance,
    E.MarkPriceChanged: Ledger._mark,
    E.FundingSettled: Ledger._funding,
    E.FundingPaid: Ledger._funding_paid,
}
