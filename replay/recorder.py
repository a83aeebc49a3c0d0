"""What a backtest report is made of: `Recorder` collects it from core events and sampled
state (see `replay.report` for the files written from it and `replay.charts` for its plotly
charts; both read it, neither is needed to record)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument

__all__ = ["Recorder", "iso"]


def iso(ts: int) -> str:
    """Engine time (ns) as an ISO 8601 UTC text, to the millisecond."""
    dt = datetime.fromtimestamp(ts // 10**9, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ts // 10**6) % 1000:03d}Z"


@dataclass
class Recorder:
    """Collects what the report needs from core events and sampled state."""

    instruments: Mapping[str, Instrument]
    subjects: set[int] = field(default_factory=set)
    replay_accounts: set[int] = field(default_factory=set)
    population: set[int] | range = field(default_factory=set)
    sample_ns: int = 60 * 10**9
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    equity: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    prices: list[tuple[int, str, int, int, int]] = field(default_factory=list)
    liquidations: list[E.PositionLiquidated] = field(default_factory=list)
    cascades: list[E.CascadeEnded] = field(default_factory=list)
    funding: list[E.FundingSettled] = field(default_factory=list)
    leverage: dict[int, int] = field(default_factory=dict)  # last leverage per account
    deposits: dict[int, int] = field(default_factory=dict)
    fees: dict[int, int] = field(default_factory=dict)
    funding_paid: dict[int, int] = field(default_factory=dict)
    events: int = 0
    first_ts: int | None = None
    last_ts: int = 0
    insurance: list[tuple[int, int]] = field(default_factory=list)
    # orders of watched accounts: accepted, and expired for want of liquidity
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    no_liquidity: dict[int, int] = field(default_factory=dict)
    adl: list[E.PositionAutoDeleveraged] = field(default_factory=list)
    _next_sample: int | None = None
    _sorted_symbols: list[str] | None = None
    _handlers: dict[type, Any] | None = field(default=None, repr=False, compare=False)

    def _watched(self, account: int) -> bool:
        if self.subjects:
            return account in self.subjects
        return account not in self.replay_accounts and account != 0

    def record(self, batch: Iterable[E.Event]) -> None:
        """Take in a batch of core events: O(1) per event (one dict look-up by type; the
        events nobody reports on, the bulk of them, stop there)."""
        if type(batch) is not list:
            batch = list(batch)
        self.events += len(batch)
        handlers = self._handlers
        if handlers is None:
            handlers = self._handlers = self._dispatch()
        get = handlers.get
        for ev in batch:
            h = get(type(ev))
            if h is not None:
                h(ev)

    def _dispatch(self) -> dict[type, Any]:
        def position(ev: E.PositionChanged) -> None:
            if self._watched(ev.account):
                self.positions.append(_position_row(ev))

        def cascade(ev: E.CascadeEnded) -> None:
            self.cascades.append(ev)
            self.insurance.append((ev.ts, ev.insurance_after))

        def funding_paid(ev: E.FundingPaid) -> None:
            a = ev.account
            self.funding_paid[a] = self.funding_paid.get(a, 0) + ev.amount

        def leverage(ev: E.LeverageChanged) -> None:
            self.leverage[ev.account] = ev.leverage

        def deposited(ev: E.FundsDeposited) -> None:
            self.deposits[ev.account] = self.deposits.get(ev.account, 0) + ev.amount

        def withdrawn(ev: E.FundsWithdrawn) -> None:
            self.deposits[ev.account] = self.deposits.get(ev.account, 0) - ev.amount

        def accepted(ev: E.OrderAccepted) -> None:
            if self.subjects and ev.account in self.subjects:
                self.orders.append(_order_row(ev))

        def expired(ev: E.OrderExpired) -> None:
            a = ev.account
            if ev.reason == "NO_LIQUIDITY" and self._watched(a):
                self.no_liquidity[a] = self.no_liquidity.get(a, 0) + 1

        return {
            E.OrderFilled: self._fill,
            E.PositionChanged: position,
            E.PositionLiquidated: self.liquidations.append,
            E.CascadeEnded: cascade,
            E.FundingSettled: self.funding.append,
            E.FundingPaid: funding_paid,
            E.LeverageChanged: leverage,
            E.FundsDeposited: deposited,
            E.FundsWithdrawn: withdrawn,
            E.OrderAccepted: accepted,
            E.OrderExpired: expired,
            E.PositionAutoDeleveraged: self.adl.append,
        }

    def _fill(self, ev: E.OrderFilled) -> None:
        taker, maker = ev.taker_account, ev.maker_account
        for account, role in ((taker, "taker"), (maker, "maker")):
            if not self._watched(account) or (role == "maker" and maker == taker):
                continue
            buy = (ev.taker_side == "BUY") == (role == "taker")
            fee = ev.taker_fee if role == "taker" else ev.maker_fee
            self.fees[account] = self.fees.get(account, 0) + fee
            self.fills.append(
                (
                    ev.ts,
                    account,
                    ev.symbol,
                    ev.trade_id,
                    "BUY" if buy else "SELL",
                    ev.price,
                    ev.qty,
                    role,
                    fee,
                    ev.liquidation,
                )
            )

    def warnings(self, account: int | None, player: Any = None) -> list[str]:
        """What a user must be told about a run that looks fine but is not (empty books)."""
        out = []
        for a in sorted(self.subjects if account is None else {account}):
            n = self.no_liquidity.get(a, 0)
            if n:
                out.append(
                    f"{n} order{'s' if n != 1 else ''} of account {a} found an empty book "
                    f"(expired NO_LIQUIDITY): the data has no book; quote synthetic liquidity "
                    f"(--synthetic LEVELS,SPREAD_BPS,STEP_BPS,QTY) or replay a book"
                )
            elif any(o[1] == a for o in self.orders) and not any(f[1] == a for f in self.fills):
                out.append(f"account {a} placed orders but none filled")
        if player is not None and player.stats.unknown_symbol:
            out.append(f"{player.stats.unknown_symbol} events of unknown symbols were skipped")
        return out

    def sample(self, ts: int, ex: Exchange, force: bool = False) -> None:
        """Sample prices and equity if `sample_ns` of replay time passed since the last one.

        Reads the core's state directly (what `market_view` and `account_view` would
        return, without building them): O(symbols + subjects' positions) per sample."""
        if self.first_ts is None:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts
        prices = self.prices
        if not force:
            due = self._next_sample
            if due is not None and ts < due:
                return
            if prices and prices[-1][0] == ts:
                return
        sample_ns = self.sample_ns
        self._next_sample = (ts // sample_ns + 1) * sample_ns
        markets = ex.markets
        syms = self._sorted_symbols
        if syms is None or len(syms) != len(self.instruments):
            syms = self._symbols()
        for sym in syms:
            m = markets[sym]
            if m.mark or m.index:
                prices.append((ts, sym, m.mark, m.index, m.last))
        accounts = ex.accounts
        subjects = self.subjects
        for a in sorted(subjects) if len(subjects) > 1 else subjects:
            acct = accounts.get(a)
            if acct is None:
                continue
            wallet = acct.available.get("USDT", 0) + acct.reserved.get("USDT", 0)
            margin = upnl = 0
            for sym, seat in acct.seats.items():
                qty = seat.qty
                if qty:  # an open position (`position_view`'s margin and unrealised PnL)
                    m = markets[sym]
                    margin += seat.margin
                    upnl += qty * m.mark * m.inst.lot_value - seat.cost
            self.equity.append((ts, a, wallet + margin + upnl, wallet, upnl))
        self.insurance.append((ts, ex.insurance_fund("USDT")))

    def _symbols(self) -> list[str]:
        syms = self._sorted_symbols
        if syms is None or len(syms) != len(self.instruments):
            syms = self._sorted_symbols = sorted(self.instruments)
        return syms


def _order_row(ev: E.OrderAccepted) -> tuple[Any, ...]:
    return (ev.ts, ev.account, ev.symbol, ev.order_id, ev.client_id, ev.side, ev.type,
            ev.time_in_force, ev.price, ev.qty, ev.stop_price, ev.reduce_only)  # fmt: skip


def _position_row(ev: E.PositionChanged) -> tuple[Any, ...]:
    return (
        ev.ts,
        ev.account,
        ev.symbol,
        ev.qty,
        ev.cost,
        ev.margin,
        ev.leverage,
        ev.liquidation_price,
        ev.bankruptcy_price,
        ev.realized_pnl,
    )
