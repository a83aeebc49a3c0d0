"""Query tables: events in, rows out (`Projector`), and their blocking writes.

`Projector.project(events)` turns a run of events into `Rows` (tuples per table, in the
column order of `COLUMNS`, plus the orders to upsert) without any I/O; `commit_rows`
puts one `Rows` in the database in one transaction together with the new watermark
(`projection_state.last_seq`), so the query tables always hold exactly the events up to
the watermark, never a part of a batch. `rollback_to(conn, seq)` undoes every row above
a seq (used by recovery when the tables got ahead of the journal, e.g. after a crash in
fast mode, or after a gap).

Speed matters here: this runs on a thread beside the engine and competes with it for
the GIL, so rows are plain tuples made with `operator.attrgetter` where a table mirrors
an event, and go to the driver's `executemany` without per-row work in SQLAlchemy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, func, select

from exchange.core import events as E
from exchange.core.instruments import Instrument

from .codec import to_jsonable
from .rowwrites import (
    COLUMNS,
    OPEN_STATUSES,
    ORDER_COLS,
    Rows,
    commit_rows,
    is_transient,
    max_event_seq,
    rollback_to,
    sanitize,
    set_watermark,
    watermark,
    write_rows,
)
from .rowwrites import (
    columns_of as _cols,
)
from .rowwrites import (
    table_of as _t,
)
from .tables import (
    AccountRow,
    AutoDeleverageRow,
    BalanceRow,
    CascadeRow,
    FillRow,
    FundingPaymentRow,
    FundingSettlementRow,
    InstrumentRow,
    InsuranceFundRow,
    LiquidationRow,
    MarkPriceRow,
    OrderRow,
    OrderUpdateRow,
    PositionRow,
    ProjectionState,
    RejectionRow,
    TransferRow,
)

# the writing half lives in `rowwrites`; its names stay importable from here
__all__ = [
    "COLUMNS",
    "ORDER_COLS",
    "Projector",
    "Rows",
    "commit_rows",
    "instrument_row",
    "is_transient",
    "max_event_seq",
    "rollback_to",
    "sanitize",
    "set_watermark",
    "watermark",
    "write_rows",
]

log = logging.getLogger("margincall.store")

FUND_ACCOUNT = 0


# tables that mirror one event: column → event attribute
_MIRRORS: list[tuple[type, Any, dict[str, str]]] = [
    (E.OrderFilled, FillRow, {}),
    (E.PositionChanged, PositionRow, {}),
    (E.BalanceChanged, BalanceRow, {}),
    (E.PositionAutoDeleveraged, AutoDeleverageRow, {}),
    (E.FundingPaid, FundingPaymentRow, {}),
    (E.FundingSettled, FundingSettlementRow, {}),
    (E.MarkPriceChanged, MarkPriceRow, {"index_price": "index"}),
    (E.AccountCreated, AccountRow, {"created_seq": "seq", "created_ts": "ts"}),
]


def _getter(model: Any, rename: dict[str, str]) -> Callable[[Any], tuple[Any, ...]]:
    names = [rename.get(c, c) for c in _cols(model)]
    g = attrgetter(*names)
    return g


def instrument_row(inst: Instrument, seq: int, ts: int) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "added_seq": seq,
        "added_ts": ts,
        "base_asset": inst.base_asset,
        "quote_asset": inst.quote_asset,
        "tick_size": inst.tick_size,
        "step_size": inst.step_size,
        "lot_value": inst.lot_value,
        "max_leverage": inst.max_leverage,
        "maker_fee": inst.maker_fee,
        "taker_fee": inst.taker_fee,
        "mark_method": inst.mark_method,
        "spec": json.dumps(to_jsonable(inst), sort_keys=True, separators=(",", ":")),
    }


_T_UPD = _t(OrderUpdateRow)
_T_REJ = _t(RejectionRow)
_T_FUND = _t(InsuranceFundRow)
_T_TRANSFER = _t(TransferRow)
_T_LIQ = _t(LiquidationRow)
_T_CASCADE = _t(CascadeRow)
_T_INST = _t(InstrumentRow)


class Projector:
    """Turns events into rows. Holds the open orders (to update them) and the insurance
    fund's balance per asset (to write deltas); `load` restores both from the tables."""

    def __init__(self, instrument_lookup: Callable[[str], Instrument | None] | None = None):
        self.lookup = instrument_lookup
        self.last_seq = 0
        self.orders: dict[int, dict[str, Any]] = {}  # open orders, by id
        self.fund: dict[str, int] = {}
        self.cascade: int | None = None  # cascade in progress (between liquidations and end)
        self._mirrors: dict[type, list[tuple[Any, Callable[[Any], tuple[Any, ...]]]]] = {}
        for cls, model, rename in _MIRRORS:
            self._mirrors.setdefault(cls, []).append((_t(model), _getter(model, rename)))
        self._custom: dict[type, Callable[[Any, Rows, set[int]], None]] = {
            E.OrderAccepted: self._accepted,
            E.OrderRejected: self._order_rejected,
            E.CommandRejected: self._command_rejected,
            E.OrderFilled: self._filled,
            E.OrderCanceled: self._closed,
            E.OrderExpired: self._closed,
            E.OrderAmended: self._amended,
            E.OrderTriggered: self._triggered,
            E.BalanceChanged: self._balance,
            E.FundsDeposited: self._deposit,
            E.FundsWithdrawn: self._withdraw,
            E.PositionLiquidated: self._liquidated,
            E.CascadeEnded: self._cascade_ended,
            E.InstrumentAdded: self._instrument,
        }

    # -------------------------------------------------------------- state

    def load(self, conn: Connection) -> None:
        """Restore the projector's memory from the tables (after a restart)."""
        st = conn.execute(select(_t(ProjectionState).c.last_seq)).scalar_one_or_none()
        self.last_seq = int(st or 0)
        o = _t(OrderRow)
        self.orders = {}
        for r in conn.execute(select(o).where(o.c.status.in_(OPEN_STATUSES))).mappings():
            row = dict(r)
            row["_remaining"] = row["remaining"]
            self.orders[row["order_id"]] = row
        f = _t(InsuranceFundRow)
        latest = select(f.c.asset, func.max(f.c.seq).label("seq")).group_by(f.c.asset).subquery()
        self.fund = {
            a: int(b)
            for a, b in conn.execute(
                select(f.c.asset, f.c.balance).join(
                    latest, (f.c.asset == latest.c.asset) & (f.c.seq == latest.c.seq)
                )
            )
        }
        self.cascade = None

    # -------------------------------------------------------------- projecting

    def project(self, events: Iterable[E.Event]) -> Rows:
        rows = Rows()
        ins = rows.inserts
        touched: set[int] = set()  # orders created or changed in this run
        mirrors = self._mirrors.get
        custom = self._custom.get
        n = 0
        ev: E.Event | None = None
        for ev in events:
            if n == 0:
                rows.first_seq = ev.seq
            n += 1
            t = type(ev)
            m = mirrors(t)
            if m is not None:
                for table, get in m:
                    lst = ins.get(table)
                    if lst is None:
                        lst = ins[table] = []
                    lst.append(get(ev))
            c = custom(t)
            if c is not None:
                c(ev, rows, touched)
        if ev is not None:
            rows.last_seq = ev.seq
            self.last_seq = ev.seq
        rows.events = n
        orders = self.orders
        for oid in touched:
            o = orders[oid]
            rows.orders.append(tuple([o[c] for c in ORDER_COLS]))
            if o["status"] not in OPEN_STATUSES:
                del orders[oid]
        return rows

    @staticmethod
    def _add(rows: Rows, table: Any, row: tuple[Any, ...]) -> None:
        lst = rows.inserts.get(table)
        if lst is None:
            lst = rows.inserts[table] = []
        lst.append(row)

    def _update(
        self, rows: Rows, ev: E.Event, o: dict[str, Any], kind: str, last_qty: int, reason: Any
    ) -> None:
        # seq, order_id, ts, account, symbol, event, price, qty, last_qty, remaining, reason
        self._add(
            rows,
            _T_UPD,
            (
                ev.seq,
                o["order_id"],
                ev.ts,
                o["account"],
                o["symbol"],
                kind,
                o["price"],
                o["qty"],
                last_qty,
                o["_remaining"],
                reason,
            ),
        )
        o["updated_seq"] = ev.seq
        o["updated_ts"] = ev.ts

    def _accepted(self, ev: E.OrderAccepted, rows: Rows, touched: set[int]) -> None:
        o = {
            "order_id": ev.order_id,
            "client_id": ev.client_id,
            "account": ev.account,
            "symbol": ev.symbol,
            "side": ev.side,
            "type": ev.type,
            "time_in_force": ev.time_in_force,
            "price": ev.price,
            "qty": ev.qty,
            "stop_price": ev.stop_price,
            "reduce_only": ev.reduce_only,
            "status": ev.status,
            "filled": 0,
            "remaining": ev.qty,
            "triggered": False,
            "created_seq": ev.seq,
            "created_ts": ev.ts,
            "updated_seq": ev.seq,
            "updated_ts": ev.ts,
            "_remaining": ev.qty,
        }
        self.orders[ev.order_id] = o
        touched.add(ev.order_id)
        self._update(rows, ev, o, "ACCEPTED", 0, ev.status)

    def _fill_side(
        self, ev: E.OrderFilled, oid: int, remaining: int, rows: Rows, touched: set[int]
    ) -> None:
        o = self.orders.get(oid)
        if o is None:  # a liquidation order (no OrderAccepted), or closed long ago
            return
        o["filled"] += ev.qty
        # qty = filled + remaining always; the core may shrink a reduce-only order
        # before it matches without an event of its own, the fill's remaining shows it
        o["qty"] = o["filled"] + remaining
        o["_remaining"] = remaining
        o["remaining"] = remaining
        o["status"] = "FILLED" if remaining == 0 else "PARTIALLY_FILLED"
        touched.add(oid)
        self._update(rows, ev, o, o["status"], ev.qty, None)

    def _filled(self, ev: E.OrderFilled, rows: Rows, touched: set[int]) -> None:
        self._fill_side(ev, ev.taker_order_id, ev.taker_remaining, rows, touched)
        self._fill_side(ev, ev.maker_order_id, ev.maker_remaining, rows, touched)

    def _closed(self, ev: E.OrderCanceled | E.OrderExpired, rows: Rows, touched: set[int]) -> None:
        o = self.orders.get(ev.order_id)
        if o is None:
            return
        kind = "CANCELED" if type(ev) is E.OrderCanceled else "EXPIRED"
        o["status"] = kind
        o["_remaining"] = ev.remaining
        o["remaining"] = 0
        touched.add(ev.order_id)
        self._update(rows, ev, o, kind, 0, ev.reason)

    def _amended(self, ev: E.OrderAmended, rows: Rows, touched: set[int]) -> None:
        o = self.orders.get(ev.order_id)
        if o is None:
            return
        o["price"] = ev.price
        o["qty"] = ev.qty
        o["_remaining"] = ev.remaining
        o["remaining"] = ev.remaining
        touched.add(ev.order_id)
        why = "PRIORITY_KEPT" if ev.priority_kept else "PRIORITY_LOST"
        self._update(rows, ev, o, "AMENDED", 0, why)

    def _triggered(self, ev: E.OrderTriggered, rows: Rows, touched: set[int]) -> None:
        o = self.orders.get(ev.order_id)
        if o is None:
            return
        o["triggered"] = True
        if o["status"] == "UNTRIGGERED":
            o["status"] = "NEW"
        touched.add(ev.order_id)
        self._update(rows, ev, o, "TRIGGERED", 0, ev.working_type)

    def _order_rejected(self, ev: E.OrderRejected, rows: Rows, touched: set[int]) -> None:
        # seq, ts, command, account, symbol, client_id, order_id, code, msg
        self._add(
            rows,
            _T_REJ,
            (ev.seq, ev.ts, ev.command, ev.account, ev.symbol, ev.client_id, ev.order_id,
             ev.code, ev.msg),
        )  # fmt: skip

    def _command_rejected(self, ev: E.CommandRejected, rows: Rows, touched: set[int]) -> None:
        self._add(
            rows, _T_REJ, (ev.seq, ev.ts, ev.command, ev.account, None, None, None, ev.code, ev.msg)
        )

    def _balance(self, ev: E.BalanceChanged, rows: Rows, touched: set[int]) -> None:
        if ev.account != FUND_ACCOUNT:
            return
        before = self.fund.get(ev.asset, 0)
        self.fund[ev.asset] = ev.available
        if ev.available != before:
            # seq, ts, asset, delta, balance, cascade_id
            self._add(
                rows,
                _T_FUND,
                (ev.seq, ev.ts, ev.asset, ev.available - before, ev.available, self.cascade),
            )

    def _deposit(self, ev: E.FundsDeposited, rows: Rows, touched: set[int]) -> None:
        self._add(rows, _T_TRANSFER, (ev.seq, ev.ts, ev.account, ev.asset, "DEPOSIT", ev.amount))

    def _withdraw(self, ev: E.FundsWithdrawn, rows: Rows, touched: set[int]) -> None:
        self._add(rows, _T_TRANSFER, (ev.seq, ev.ts, ev.account, ev.asset, "WITHDRAWAL", ev.amount))

    def _liquidated(self, ev: E.PositionLiquidated, rows: Rows, touched: set[int]) -> None:
        self.cascade = ev.cascade_id
        fills = json.dumps([list(f) for f in ev.fills], separators=(",", ":"))
        self._add(
            rows,
            _T_LIQ,
            (ev.seq, ev.ts, ev.liquidation_id, ev.cascade_id, ev.generation, ev.parent_id,
             ev.account, ev.symbol, ev.side, ev.qty, ev.trigger_mark, ev.liquidation_price,
             ev.bankruptcy_price, fills, ev.filled_qty, ev.fund_takeover_qty, ev.adl_qty,
             ev.insurance_delta),
        )  # fmt: skip

    def _cascade_ended(self, ev: E.CascadeEnded, rows: Rows, touched: set[int]) -> None:
        self.cascade = None
        path = json.dumps(list(ev.price_path), separators=(",", ":"))
        self._add(
            rows,
            _T_CASCADE,
            (ev.seq, ev.ts, ev.cascade_id, ev.symbol, ev.liquidations, ev.volume, ev.generations,
             path, ev.insurance_before, ev.insurance_after, ev.adl_count, ev.truncated),
        )  # fmt: skip

    def _instrument(self, ev: E.InstrumentAdded, rows: Rows, touched: set[int]) -> None:
        inst = self.lookup(ev.symbol) if self.lookup is not None else None
        if inst is None:
            log.warning("query tables: no spec for added instrument %s; row skipped", ev.symbol)
            return
        r = instrument_row(inst, ev.seq, ev.ts)
        self._add(rows, _T_INST, tuple(r[c] for c in COLUMNS[_T_INST]))


def _check_columns() -> None:
    """The hand-made tuples above follow the tables' column order."""
    expect = {
        _T_UPD: ("seq", "order_id", "ts", "account", "symbol", "event", "price", "qty",
                 "last_qty", "remaining", "reason"),
        _T_REJ: ("seq", "ts", "command", "account", "symbol", "client_id", "order_id", "code",
                 "msg"),
        _T_FUND: ("seq", "ts", "asset", "delta", "balance", "cascade_id"),
        _T_TRANSFER: ("seq", "ts", "account", "asset", "kind", "amount"),
        _T_LIQ: ("seq", "ts", "liquidation_id", "cascade_id", "generation", "parent_id",
                 "account", "symbol", "side", "qty", "trigger_mark", "liquidation_price",
                 "bankruptcy_price", "fills", "filled_qty", "fund_takeover_qty", "adl_qty",
                 "insurance_delta"),
        _T_CASCADE: ("seq", "ts", "cascade_id", "symbol", "liquidations", "volume",
                     "generations", "price_path", "insurance_before", "insurance_after",
                     "adl_count", "truncated"),
    }  # fmt: skip
    for table, cols in expect.items():
        assert COLUMNS[table] == cols, (table.name, COLUMNS[table])


_check_columns()
