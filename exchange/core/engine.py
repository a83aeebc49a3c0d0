"""The exchange as one deterministic state machine: `Exchange.handle(cmd) -> events`.

Every command is validated completely before anything changes; a rejected command
leaves the state (and `state_hash()`) untouched and yields exactly one rejection event.
An accepted command runs to the end, including everything it sets off: matching,
triggered conditional orders, mark moves, liquidations and the cascade they cause,
funding at funding times passed. Then the command's events are returned.

The class is assembled from one room per concern of the trade (see
docs/architecture.md): `Accounts` (accounts.py), `Orders` (orders.py),
`Reservations` (reservations.py), `Stops` (stops.py), `Matching` (matching.py),
`Positions` (positions.py), `Monitoring` (monitoring.py), `MarkPrices` (mark.py), `Cascades` (cascade.py, with the policies in
liquidation.py), `Funding` (funding.py) and `Views` (views.py); what they share is
declared in room.py. This module routes commands to them and collects the events.

Money (see `margin.py` for positions): an account's `available` balance is free cash;
`reserved` is what its open orders hold back (initial margin + fee + open loss); each
position holds its isolated `margin`. Conservation, exact to the quantum:

    Σ available + Σ reserved + Σ (margin − cost) over positions + fees collected
      + insurance fund = deposits − withdrawals

where Σ(margin − cost) is the positions' equity at any common price (positions net to
zero lots, so the price terms cancel). `_check()` asserts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from . import commands as C
from . import events as E
from . import supervision as S
from .accounts import Accounts
from .book import (
    CLIENT_ID_CHARS,
    CONDITIONAL,
    LIMIT_KINDS,
    ORDER_TYPES,
    STP_MODES,
    TIFS,
    WORKING_TYPES,
    Order,
)
from .cascade import Cascades
from .errors import MESSAGES, Code, Rejected
from .funding import Funding
from .instruments import Instrument
from .liquidation import LiquidationPolicy
from .mark import MarkPrices
from .matching import Matching
from .monitoring import Monitoring
from .orders import Orders
from .positions import Positions
from .reservations import Reservations
from .state import FUND, MAX_AMOUNT, Account, AccountLimits, Cascade, Market, Seat, band_edge
from .stops import Stops
from .synthetic import replace_book
from .views import Views

__all__ = [
    "CLIENT_ID_CHARS",
    "CONDITIONAL",
    "FUND",
    "LIMIT_KINDS",
    "MAX_AMOUNT",
    "ORDER_TYPES",
    "STP_MODES",
    "TIFS",
    "WORKING_TYPES",
    "Account",
    "Cascade",
    "Exchange",
    "Market",
    "Rejected",
    "Seat",
    "band_edge",
]


class Exchange(
    Orders,
    Reservations,
    Stops,
    Matching,
    Positions,
    Monitoring,
    MarkPrices,
    Cascades,
    Funding,
    Accounts,
    Views,
):
    """The whole exchange. `handle` is the only mutator; everything else reads."""

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        max_cascade_liquidations: int = 1_000_000,
        max_cascade_generations: int = 10_000,
        policy: LiquidationPolicy | None = None,
        adl: bool = True,
    ) -> None:
        self.now = 0
        self.seq = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_liquidation_id = 1
        self.next_cascade_id = 1
        self.instruments: dict[str, Instrument] = {}
        self.markets: dict[str, Market] = {}
        self.accounts: dict[int, Account] = {FUND: Account(FUND)}
        self.orders: dict[int, Order] = {}
        self.fees_collected: dict[str, int] = {}
        self.deposited: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}
        self.max_cascade_liquidations = max_cascade_liquidations
        self.max_cascade_generations = max_cascade_generations
        # `policy` imposes one liquidation policy on every market; without it each market
        # uses its instrument's `liquidation_policy`, auto-deleveraging as `adl` says
        self.policy = policy
        self.adl = adl
        self._policies: dict[str, LiquidationPolicy] = {}
        self.limits: dict[int, AccountLimits] = {}  # see supervision.py
        self._out: list[E.Event] = []
        # seats changed in this command, in the order first changed (a seat is one
        # account on one symbol, so the seat itself is the key: no tuple to build)
        self._touched: dict[Seat, None] = {}
        self._reacted: set[str] = set()  # markets that ran `_react` in the current command
        # seats whose position shrank: their orders on that side may now open a position
        self._review: dict[tuple[int, str, int], Seat] = {}
        self._balances_touched: dict[tuple[int, str], None] = {}
        for inst in instruments:
            self._add_instrument(inst)
        self._handlers: dict[type, Callable[[Any], None]] = {
            C.PlaceOrder: self._place,
            C.CancelOrder: self._cancel,
            C.CancelAllOrders: self._cancel_all,
            C.AmendOrder: self._amend,
            C.CreateAccount: self._create_account,
            C.Deposit: self._deposit,
            C.Withdraw: self._withdraw,
            C.SetLeverage: self._set_leverage,
            C.AdjustIsolatedMargin: self._adjust_margin,
            C.SetIndexPrice: self._set_index,
            C.SetFundingRate: self._set_funding_rate,
            C.AdvanceClock: self._advance_clock,
            C.HaltSymbol: self._halt,
            C.ResumeSymbol: self._resume,
            C.AddInstrument: self._add_instrument_cmd,
            C.ReplaceBook: self._replace_book,
            C.SetAccountLimits: partial(S.set_account_limits, self),
            C.SettlePositions: partial(S.settle_positions, self),
            C.FundInsurance: partial(S.fund_insurance, self),
        }

    def handle(self, cmd: C.Command) -> list[E.Event]:
        """Apply one command; return the events it produced, in order.

        Engine time becomes max(now, cmd.ts); funding times passed on the way are
        settled first (that is the clock moving, not the command). Then the command is
        validated in full and either rejected (one event, nothing changed) or applied.
        """
        out: list[E.Event] = []
        self._out = out
        handler = self._handlers.get(type(cmd))
        if handler is None:
            self._emit(
                E.CommandRejected,
                int(Code.INVALID_PARAMETER),
                MESSAGES[Code.INVALID_PARAMETER] + " Unknown command.",
                type(cmd).__name__,
                None,
            )
            return out
        ts = cmd.ts
        if type(ts) is not int or ts < 0 or ts > MAX_AMOUNT:
            self._reject(
                cmd, Rejected(Code.INVALID_PARAMETER, "ts must be a non-negative integer (ns).")
            )
            return out
        before = self.now
        schedule: list[tuple[Market, int, int, int, int | None, int]] = []
        settled = False
        self._reacted.clear()
        carry: list[Market] | None = None
        due = False
        for m in self.markets.values():
            if m.queued:
                if carry is None:
                    carry = []
                carry.append(m)
            if m.next_funding_ts <= ts:
                due = True
        if ts > before:
            self.now = ts
            if due:
                # only a funding time passed touches the funding schedule: keep it to
                # restore it (with no time passed, settling would change nothing)
                schedule = [
                    (
                        m,
                        m.next_funding_ts,
                        m.premium_sum,
                        m.premium_n,
                        m.funding_override,
                        m.funding_rate,
                    )
                    for m in self.markets.values()
                ]
                settled = self._settle_funding_due()
        try:
            handler(cmd)
        except Rejected as r:
            if not settled:
                self.now = before  # nothing happened: not even the clock moved
                for m, nxt, psum, pn, override, rate in schedule:
                    m.next_funding_ts, m.premium_sum, m.premium_n = nxt, psum, pn
                    m.funding_override, m.funding_rate = override, rate
            self._reject(cmd, r)
            return out
        if carry is not None:
            for m in carry:
                if m.queued and m.inst.symbol not in self._reacted:
                    self._react(m)  # positions left due by an earlier truncated cascade
        return out

    def _emit(self, cls: Any, *args: Any) -> None:
        self.seq = seq = self.seq + 1
        self._out.append(cls.new(seq, self.now, *args))

    def _reject(self, cmd: C.Command, r: Rejected) -> None:
        name = type(cmd).__name__
        account = getattr(cmd, "account", None)
        if isinstance(cmd, (C.PlaceOrder, C.CancelOrder, C.CancelAllOrders, C.AmendOrder)):
            self._emit(
                E.OrderRejected,
                account,
                cmd.symbol,
                getattr(cmd, "client_id", None),
                getattr(cmd, "order_id", None),
                int(r.code),
                r.msg,
                name,
            )
        else:
            self._emit(E.CommandRejected, int(r.code), r.msg, name, account)

    def _market(self, symbol: Any) -> Market:
        m = self.markets.get(symbol) if type(symbol) is str else None
        if m is None:
            raise Rejected(Code.BAD_SYMBOL)
        return m

    @staticmethod
    def _int(
        value: Any,
        what: str,
        lo: int = 1,
        hi: int = MAX_AMOUNT,
        code: Code = Code.INVALID_PARAMETER,
        unit: Callable[[int], str] = str,
    ) -> int:
        """`value` if it is an integer in [lo, hi]; else a rejection naming the bounds in
        `unit` (the asset's or the instrument's units, never raw quanta or ticks)."""
        if type(value) is not int or not lo <= value <= hi:
            if unit is str:  # a count or an id: an integer
                raise Rejected(code, f"{what} must be an integer in [{lo}, {hi}].")
            raise Rejected(code, f"{what} must be in [{unit(lo)}, {unit(hi)}].")
        return value

    def _flush(self, m: Market) -> None:
        """Emit position, balance and book changes made so far, and re-index positions."""
        if self._review:
            self._review_reservations()
        if self._touched:
            touched = self._touched
            self._touched = {}
            self._refresh(touched)
        if self._balances_touched:
            self._flush_balances()
        if len(self.markets) == 1:
            book = m.book
            if book.dirty:
                changed = book.flush()
                if changed is not None:
                    self.seq = seq = self.seq + 1
                    self._out.append(
                        E.BookUpdated.new(
                            seq, self.now, m.inst.symbol, book.seq, changed[0], changed[1]
                        )
                    )
            return
        for mk in self.markets.values():
            changed = mk.book.flush()
            if changed is not None:
                self._emit(E.BookUpdated, mk.inst.symbol, mk.book.seq, changed[0], changed[1])

    def _react(self, m: Market) -> None:
        """Run everything the last change set off on this market until it is quiet:
        mark moves, triggered conditional orders, liquidations and their cascade."""
        self._reacted.add(m.inst.symbol)
        mon = m.monitor
        flush = self._flush
        while True:
            flush(m)
            self._update_mark(m)
            if m.stop_count and self._fire_stops(m):
                continue
            if m.queued:
                if self._cascade(m):
                    continue
                break
            mark = m.mark
            quiet = m.quiet
            if mon.version == quiet[0] and mark == quiet[1]:
                break  # neither the monitor nor the mark moved since nothing was due
            if mark <= 0 or mon.quiet(mark):
                m.quiet = (mon.version, mark)
                break
            if self._cascade(m):
                continue
            break
        if (
            self._review
            or self._touched
            or self._balances_touched
            or m.book.dirty
            or len(self.markets) != 1
        ):
            flush(m)

    def _advance_clock(self, cmd: C.AdvanceClock) -> None:
        self._emit(E.ClockAdvanced)

    def _replace_book(self, cmd: C.ReplaceBook) -> None:
        replace_book(self, cmd, Rejected)  # synthetic.py: quotes replaced in one command

    def _halt(self, cmd: C.HaltSymbol) -> None:
        m = self._market(cmd.symbol)
        if m.halted:
            raise Rejected(Code.MARKET_HALTED, "Already halted.")
        m.halted = True
        self._emit(E.SymbolHalted, m.inst.symbol)

    def _resume(self, cmd: C.ResumeSymbol) -> None:
        m = self._market(cmd.symbol)
        if not m.halted:
            raise Rejected(Code.INVALID_PARAMETER, "The symbol is not halted.")
        m.halted = False
        self._emit(E.SymbolResumed, m.inst.symbol)

    def _add_instrument_cmd(self, cmd: C.AddInstrument) -> None:
        inst = cmd.instrument
        if not isinstance(inst, Instrument):
            raise Rejected(Code.INVALID_PARAMETER, "instrument must be an Instrument.")
        try:
            problems = inst.check()
        except Exception:  # a malformed spec must be refused, never crash the engine
            problems = ["instrument: malformed"]
        if problems:
            raise Rejected(Code.INVALID_PARAMETER, problems[0])
        if inst.symbol in self.markets:
            raise Rejected(Code.INSTRUMENT_EXISTS)
        self._add_instrument(inst)
        self._emit(E.InstrumentAdded, inst.symbol)

    def _add_instrument(self, inst: Instrument) -> None:
        problems = inst.check()
        if problems:
            raise ValueError(f"instrument {inst.symbol}: {problems[0]}")
        self.instruments[inst.symbol] = inst
        self.markets[inst.symbol] = Market(inst, self.now)

    def _check(self) -> None:
        """Assert every invariant of the whole exchange, one structure at a time: books,
        conditional orders, orders and reservations, positions, the monitors, the mark's
        inputs, money."""
        self._check_books()
        self._check_stops()
        self._check_orders()
        self._check_positions()
        self._check_monitor()
        self._check_mark()
        self._check_accounts()
