"""The store's tables, as SQLModel classes. `docs/store.md` documents them for SQL users.

Three groups:

- the journal and its neighbours (`journal`, `journal_dropped`, `snapshots`,
  `store_meta`): what recovery reads; written by the journal writer and the snapshotter;
- the query tables (`accounts`, `api_keys`, `session_tokens`, `instruments`, `orders`,
  `order_updates`, `rejections`, `fills`, `positions`, `balances`, `liquidations`,
  `auto_deleverages`, `cascades`, `funding_payments`, `funding_settlements`,
  `insurance_fund`, `transfers`, `mark_prices`) and their watermark
  (`projection_state`): derived from the event stream (API keys and session tokens:
  from their issuers), rebuilt by recovery when needed, never read by the engine;
- nothing else: the store owns no table it does not list here.

Units are the core's: prices in ticks, quantities in lots, money in quanta of 10⁻⁸ of
the quote asset, rates in 10⁻⁸, times in ns since the epoch (engine time). Every
event-derived row carries the event's global `seq` (unique, gap-free per event) and
engine time `ts`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from .urls import EXPORTABLE_NAMES


def _big(**kw: Any) -> Any:
    return Field(sa_type=BigInteger, **kw)


def _num(**kw: Any) -> Any:
    """A query-table integer: nullable, so a value beyond 64 bits can be stored as NULL
    (see `projection.sanitize`) instead of stopping the writer."""
    return Field(default=None, sa_type=BigInteger, nullable=True, **kw)


def _str(n: int, **kw: Any) -> Any:
    return Field(default=None, max_length=n, nullable=True, **kw)


def _text() -> Any:
    return Field(default=None, sa_type=Text, nullable=True)


def _seq_pk() -> Any:
    return Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})


# --------------------------------------------------------------------------- journal


class JournalRow(SQLModel, table=True):
    """One command, in the order the engine applied it. `idx` starts at 1, no gaps."""

    __tablename__ = "journal"

    idx: int = _seq_pk()
    type: str = Field(max_length=40)
    payload: str = Field(sa_type=Text)
    crc: int = _big()


class DroppedJournalRow(SQLModel, table=True):
    """Journal rows that recovery found damaged (or after a damaged one) and set aside."""

    __tablename__ = "journal_dropped"

    id: int | None = Field(default=None, primary_key=True)
    idx: int = _big()
    type: str = Field(sa_type=Text)
    payload: str = Field(sa_type=Text)
    crc: int = _big()
    reason: str = Field(sa_type=Text)
    dropped_ns: int = _big()


class SnapshotRow(SQLModel, table=True):
    """A pickled `Exchange` after journal entry `journal_idx` (0 = before any)."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_journal_idx", "journal_idx"),)

    id: int | None = Field(default=None, primary_key=True)
    journal_idx: int = _big()
    event_seq: int = _big()
    engine_ts: int = _big()
    state_hash: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    size: int = _big()
    pause_us: int = _big()
    created_ns: int = _big()
    data: bytes = Field(sa_type=LargeBinary)


class StoreMeta(SQLModel, table=True):
    __tablename__ = "store_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_type=Text)


# --------------------------------------------------------------------------- query tables


class ProjectionState(SQLModel, table=True):
    """The query tables hold exactly the events with seq ≤ last_seq."""

    __tablename__ = "projection_state"

    id: int = Field(default=1, primary_key=True)
    last_seq: int = _num()
    updated_ns: int = _num()


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"

    account: int = _seq_pk()
    created_seq: int = _num()
    created_ts: int = _num()


class ApiKeyRow(SQLModel, table=True):
    """API keys, hashed (SHA-256 hex of the key); never the key or its secret."""

    __tablename__ = "api_keys"

    key_hash: str = Field(primary_key=True, max_length=64)
    account: int = _num(index=True)
    created_ms: int = _num()


class SessionTokenRow(SQLModel, table=True):
    """Session tokens, hashed (SHA-256 hex of the token); never the token itself.
    Times are wall-clock milliseconds; a revoked token's row is deleted."""

    __tablename__ = "session_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    account: int = _num(index=True)
    created_ms: int = _num()
    expires_ms: int = _num()
    label: str = Field(default="", max_length=64)


class InstrumentRow(SQLModel, table=True):
    __tablename__ = "instruments"

    symbol: str = Field(primary_key=True, max_length=64)
    added_seq: int = _num()  # 0: part of the initial set
    added_ts: int = _num()
    base_asset: str = _str(64)
    quote_asset: str = _str(64)
    tick_size: str = _str(64)  # decimal text: price = ticks × tick_size
    step_size: str = _str(64)  # decimal text: quantity = lots × step_size
    lot_value: int = _num()  # money quanta per tick × lot
    max_leverage: int = _num()
    maker_fee: int = _num()
    taker_fee: int = _num()
    mark_method: str = _str(64)
    spec: str = _text()  # the whole Instrument as JSON (brackets included)


class OrderRow(SQLModel, table=True):
    """Every order placed, with its current state (updated as events arrive)."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_account_symbol", "account", "symbol"),)

    order_id: int = _seq_pk()
    client_id: str | None = _str(64)
    account: int = _num()
    symbol: str = _str(64)
    side: str = _str(32)
    type: str = _str(64)
    time_in_force: str = _str(32)
    price: int = _num()
    qty: int = _num()
    stop_price: int = _num()
    reduce_only: bool
    status: str = _str(32, index=True)
    filled: int = _num()
    remaining: int = _num()  # 0 once the order is closed
    triggered: bool = False
    created_seq: int = _num()
    created_ts: int = _num()
    updated_seq: int = _num()
    updated_ts: int = _num()


class OrderUpdateRow(SQLModel, table=True):
    """Each change to an order, in order: ACCEPTED, PARTIALLY_FILLED, FILLED, AMENDED,
    TRIGGERED, CANCELED, EXPIRED."""

    __tablename__ = "order_updates"
    __table_args__ = (Index("ix_order_updates_order", "order_id"),)

    seq: int = _seq_pk()
    order_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    ts: int = _num()
    account: int = _num()
    symbol: str = _str(64)
    event: str = _str(64)
    price: int = _num()
    qty: int = _num()  # the order's total quantity after the update
    last_qty: int = _num()  # filled by this update (fills), else 0
    remaining: int = _num()
    reason: str | None = _str(64)


class RejectionRow(SQLModel, table=True):
    __tablename__ = "rejections"

    seq: int = _seq_pk()
    ts: int = _num()
    command: str = _text()  # as the client sent them: any text, any length
    account: int | None = _num()
    symbol: str | None = _text()
    client_id: str | None = _text()
    order_id: int | None = _num()
    code: int = _num()
    msg: str = _text()


class FillRow(SQLModel, table=True):
    __tablename__ = "fills"
    __table_args__ = (
        Index("ix_fills_taker_account", "taker_account"),
        Index("ix_fills_maker_account", "maker_account"),
    )

    seq: int = _seq_pk()
    ts: int = _num()
    symbol: str = _str(64)
    trade_id: int = _num(index=True)
    price: int = _num()
    qty: int = _num()
    taker_side: str = _str(32)
    taker_order_id: int = _num()
    maker_order_id: int = _num()
    taker_account: int = _num()
    maker_account: int = _num()
    taker_fee: int = _num()
    maker_fee: int = _num()
    liquidation: bool


class PositionRow(SQLModel, table=True):
    """A position after each change (positions over time)."""

    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_account_symbol", "account", "symbol", "seq"),)

    seq: int = _seq_pk()
    ts: int = _num()
    account: int = _num()
    symbol: str = _str(64)
    qty: int = _num()  # signed lots: + long, − short
    cost: int = _num()  # signed open notional (quanta)
    margin: int = _num()
    leverage: int = _num()
    liquidation_price: int = _num()
    bankruptcy_price: int = _num()
    realized_pnl: int = _num()


class BalanceRow(SQLModel, table=True):
    """An account's balance of one asset after each change."""

    __tablename__ = "balances"
    __table_args__ = (Index("ix_balances_account_asset", "account", "asset", "seq"),)

    seq: int = _seq_pk()
    ts: int = _num()
    account: int = _num()
    asset: str = _str(64)
    available: int = _num()
    reserved: int = _num()


class LiquidationRow(SQLModel, table=True):
    __tablename__ = "liquidations"
    __table_args__ = (Index("ix_liquidations_cascade", "cascade_id"),)

    seq: int = _seq_pk()
    ts: int = _num()
    liquidation_id: int = _num(unique=True)
    cascade_id: int = _num()
    generation: int = _num()
    parent_id: int | None = _num()
    account: int = _num(index=True)
    symbol: str = _str(64)
    side: str = _str(32)  # LONG | SHORT: the position's side
    qty: int = _num()
    trigger_mark: int = _num()
    liquidation_price: int = _num()
    bankruptcy_price: int = _num()
    fills: str = _text()  # JSON [[price, qty], ...]
    filled_qty: int = _num()
    fund_takeover_qty: int = _num()
    adl_qty: int = _num()
    insurance_delta: int = _num()


class AutoDeleverageRow(SQLModel, table=True):
    __tablename__ = "auto_deleverages"

    seq: int = _seq_pk()
    ts: int = _num()
    liquidation_id: int = _num(index=True)
    cascade_id: int = _num()
    account: int = _num()
    symbol: str = _str(64)
    qty: int = _num()
    price: int = _num()
    realized_pnl: int = _num()


class CascadeRow(SQLModel, table=True):
    __tablename__ = "cascades"

    seq: int = _seq_pk()
    ts: int = _num()
    cascade_id: int = _num(index=True)
    symbol: str = _str(64)
    liquidations: int = _num()
    volume: int = _num()
    generations: int = _num()
    price_path: str = _text()  # JSON [mark, ...]
    insurance_before: int = _num()
    insurance_after: int = _num()
    adl_count: int = _num()
    truncated: bool


class FundingPaymentRow(SQLModel, table=True):
    __tablename__ = "funding_payments"
    __table_args__ = (Index("ix_funding_payments_account", "account", "symbol"),)

    seq: int = _seq_pk()
    ts: int = _num()
    account: int = _num()
    symbol: str = _str(64)
    rate: int = _num()
    amount: int = _num()  # + received, − paid
    position_qty: int = _num()
    mark: int = _num()


class FundingSettlementRow(SQLModel, table=True):
    __tablename__ = "funding_settlements"

    seq: int = _seq_pk()
    ts: int = _num()
    symbol: str = _str(64)
    rate: int = _num()
    funding_ts: int = _num()
    total: int = _num()
    next_funding_ts: int = _num()


class InsuranceFundRow(SQLModel, table=True):
    """The insurance fund's ledger: each change of its balance (account 0)."""

    __tablename__ = "insurance_fund"

    seq: int = _seq_pk()
    ts: int = _num()
    asset: str = _str(64)
    delta: int = _num()
    balance: int = _num()
    cascade_id: int | None = _num()


class TransferRow(SQLModel, table=True):
    """Deposits and withdrawals."""

    __tablename__ = "transfers"

    seq: int = _seq_pk()
    ts: int = _num()
    account: int = _num(index=True)
    asset: str = _str(64)
    kind: str = _str(32)  # DEPOSIT | WITHDRAWAL
    amount: int = _num()


class MarkPriceRow(SQLModel, table=True):
    __tablename__ = "mark_prices"
    __table_args__ = (Index("ix_mark_prices_symbol", "symbol", "seq"),)

    seq: int = _seq_pk()
    ts: int = _num()
    symbol: str = _str(64)
    mark: int = _num()
    index_price: int = _num()
    last: int = _num()
    funding_rate: int = _num()
    next_funding_ts: int = _num()


JOURNAL_TABLES = (JournalRow, DroppedJournalRow, SnapshotRow, StoreMeta)

QUERY_TABLES = (
    ProjectionState,
    AccountRow,
    ApiKeyRow,
    SessionTokenRow,
    InstrumentRow,
    OrderRow,
    OrderUpdateRow,
    RejectionRow,
    FillRow,
    PositionRow,
    BalanceRow,
    LiquidationRow,
    AutoDeleverageRow,
    CascadeRow,
    FundingPaymentRow,
    FundingSettlementRow,
    InsuranceFundRow,
    TransferRow,
    MarkPriceRow,
)

# tables whose rows are event rows keyed by `seq` (rolled back by `seq > n`)
EVENT_TABLES = (
    OrderUpdateRow,
    RejectionRow,
    FillRow,
    PositionRow,
    BalanceRow,
    LiquidationRow,
    AutoDeleverageRow,
    CascadeRow,
    FundingPaymentRow,
    FundingSettlementRow,
    InsuranceFundRow,
    TransferRow,
    MarkPriceRow,
)

ALL_TABLES = JOURNAL_TABLES + QUERY_TABLES
TABLES_BY_NAME: dict[str, type[SQLModel]] = {str(t.__tablename__): t for t in ALL_TABLES}
EXPORTABLE = tuple(t for t in TABLES_BY_NAME if t not in ("snapshots", "store_meta"))
if EXPORTABLE != EXPORTABLE_NAMES:  # the CLI lists the names without importing this module
    raise ImportError(f"urls.EXPORTABLE_NAMES is stale: the tables are {EXPORTABLE}")
