"""The exchange as one deterministic state machine: `Exchange.handle(cmd) -> events`.

Every command is validated completely before anything changes; a rejected command
leaves the state (and `state_hash()`) untouched and yields exactly one rejection event.
An accepted command runs to the end, including everything it sets off: matching,
triggered conditional orders, mark moves, liquidations and the cascade they cause,
funding at funding times passed. Then the command's events are returned.

Money (see `margin.py` for positions): an account's `available` balance is free cash;
`reserved` is what its open orders hold back (initial margin + fee + open loss); each
position holds its isolated `margin`. Conservation, exact to the quantum:

    Σ available + Σ reserved + Σ (margin − cost) over positions + fees collected
      + insurance fund = deposits − withdrawals

where Σ(margin − cost) is the positions' equity at any common price (positions net to
zero lots, so the price terms cancel). `_check()` asserts it.
"""

from __future__ import annotations

import gc
import hashlib
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from functools import cmp_to_key, partial
from typing import Any

from sortedcontainers import SortedList

from . import commands as C
from . import events as E
from . import supervision as S
from .book import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REPLACED,
    SELL,
    SIDES,
    STATUS_NAMES,
    UNTRIGGERED,
    Book,
    Level,
    Order,
)
from .errors import MESSAGES, Code
from .instruments import Instrument
from .margin import is_liquidatable, liquidation_tick
from .monitor import MarginMonitor
from .numbers import RATE_ONE, ceil_div
from .views import AccountView, BalanceView, MarketView, OrderView, PositionView

FUND = 0  # the insurance fund's account id
ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_MARKET",
    "STOP_LIMIT",
    "TAKE_PROFIT_MARKET",
    "TAKE_PROFIT_LIMIT",
)
CONDITIONAL = {"STOP_MARKET", "STOP_LIMIT", "TAKE_PROFIT_MARKET", "TAKE_PROFIT_LIMIT"}
LIMIT_KINDS = {"LIMIT", "STOP_LIMIT", "TAKE_PROFIT_LIMIT"}
TIFS = ("GTC", "IOC", "FOK", "GTX")
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
CLIENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")
MAX_AMOUNT = 10**30  # money and sizes beyond this are nonsense, rejected before any arithmetic


class Rejected(Exception):
    """Raised during validation only; turned into one rejection event."""

    def __init__(self, code: Code, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.msg = MESSAGES[code] + (f" {detail}" if detail else "")


class Seat:
    """One account's state on one symbol: its net position and its order bookkeeping."""

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


class Account:
    __slots__ = ("id", "available", "reserved", "seats", "client_ids")

    def __init__(self, account_id: int) -> None:
        self.id = account_id
        self.available: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.seats: dict[str, Seat] = {}
        self.client_ids: dict[str, int] = {}


class Market:
    """Per-symbol state: book, conditional orders, prices, funding, monitor."""

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
        "basis_sum",
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
        self.basis: deque[int] = deque()
        self.basis_sum = 0
        self.funding_rate = inst.interest_rate
        self.monitor = MarginMonitor()
        self.seats: dict[int, Seat] = {}  # account -> seat with a position or orders
        self.queued: list[int] = []  # accounts awaiting liquidation after a truncated cascade
        self.stop_count = 0  # untriggered conditional orders
        self.mark_key: tuple[int, ...] = ()  # the inputs the mark was last computed from
        # open positions by side (0 long, 1 short): account -> seat, for ADL ranking
        self.sides: tuple[dict[int, Seat], dict[int, Seat]] = ({}, {})
        self.funding_override: int | None = None  # a rate imposed for the next funding time
        # caches, derived from the state above (never part of it):
        # the price band around the mark `band_ref` (see `Exchange._band`)
        self.band_ref = 0
        self.band_lo = 0
        self.band_hi = 1 << 62
        # the fee rate a reservation charges: the larger of taker and maker, at least 0
        self.fee_rate = max(inst.taker_fee, inst.maker_fee, 0)
        # (monitor version, mark) at which no position was found due: while both are
        # unchanged `_react` need not look at the monitor again
        self.quiet: tuple[int, int] = (-1, 0)


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


def _adl_compare(a: tuple[int, int, Seat], b: tuple[int, int, Seat]) -> int:
    """Order two ADL scores num/den (den > 0), higher first."""
    x = a[0] * b[1]
    y = b[0] * a[1]
    return -1 if x > y else 1 if x < y else 0


_ADL_ORDER = cmp_to_key(_adl_compare)


class Exchange:
    """The whole exchange. `handle` is the only mutator; everything else reads."""

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        max_cascade_liquidations: int = 1_000_000,
        max_cascade_generations: int = 10_000,
        policy: Any = None,
    ) -> None:
        from .liquidation import BinanceLiquidation

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
        self.policy = policy if policy is not None else BinanceLiquidation()
        self.limits: dict[int, S.AccountLimits] = {}  # see supervision.py
        self._out: list[E.Event] = []
        self._touched: dict[tuple[int, str], Seat] = {}
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
            C.SetAccountLimits: partial(S.set_account_limits, self),
            C.SettlePositions: partial(S.settle_positions, self),
            C.FundInsurance: partial(S.fund_insurance, self),
        }

    # ------------------------------------------------------------------ entry point

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
        for m in self.markets.values():
            if m.queued:
                if carry is None:
                    carry = []
                carry.append(m)
        if ts > before:
            # only the clock moving touches the funding schedule: keep it to restore it
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
            self.now = ts
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

    # ------------------------------------------------------------------ helpers

    def _emit(self, cls: Any, *args: Any) -> None:
        self.seq = seq = self.seq + 1
        self._out.append(cls(seq, self.now, *args))

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

    def _account(self, account_id: Any) -> Account:
        a = self.accounts.get(account_id) if type(account_id) is int else None
        if a is None or account_id == FUND:
            raise Rejected(Code.UNKNOWN_ACCOUNT)
        return a

    def _seat(self, acct: Account, m: Market) -> Seat:
        seat = acct.seats.get(m.inst.symbol)
        if seat is None:
            seat = acct.seats[m.inst.symbol] = Seat(acct.id, m.inst.symbol, m.inst.default_leverage)
        return seat

    @staticmethod
    def _int(
        value: Any,
        what: str,
        lo: int = 1,
        hi: int = MAX_AMOUNT,
        code: Code = Code.INVALID_PARAMETER,
    ) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise Rejected(code, f"{what} must be an integer in [{lo}, {hi}].")
        return value

    def _touch(self, seat: Seat) -> None:
        self._touched[(seat.account, seat.symbol)] = seat

    def _touch_balance(self, account: int, asset: str) -> None:
        self._balances_touched[(account, asset)] = None

    def _credit(self, acct: Account, asset: str, amount: int) -> None:
        acct.available[asset] = acct.available.get(asset, 0) + amount
        self._touch_balance(acct.id, asset)

    def _band(self, m: Market) -> tuple[int, int]:
        """(lowest, highest) tick allowed around the mark; (0, huge) without a mark."""
        ref = m.mark
        if ref <= 0:
            return 0, 1 << 62
        if ref != m.band_ref:
            m.band_lo = band_edge(m.inst, SELL, ref)
            m.band_hi = band_edge(m.inst, BUY, ref)
            m.band_ref = ref
        return m.band_lo, m.band_hi

    # ------------------------------------------------------------------ orders

    def _place(self, cmd: C.PlaceOrder) -> None:
        # the checks below are in the order that decides which rejection wins
        symbol = cmd.symbol
        m = self._market(symbol)
        acct = self._account(cmd.account)
        account_id = acct.id
        inst = m.inst
        side_name = cmd.side
        if side_name not in SIDES:
            raise Rejected(Code.INVALID_SIDE)
        kind = cmd.type
        if kind not in ORDER_TYPES:
            raise Rejected(Code.INVALID_ORDER_TYPE)
        tif = cmd.time_in_force
        if tif not in TIFS:
            raise Rejected(Code.INVALID_TIME_IN_FORCE)
        stp = cmd.stp
        if stp not in STP_MODES:
            raise Rejected(
                Code.INVALID_PARAMETER,
                "stp must be one of NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH.",
            )
        working_type = cmd.working_type
        if working_type not in WORKING_TYPES:
            raise Rejected(
                Code.INVALID_PARAMETER, "workingType must be MARK_PRICE or CONTRACT_PRICE."
            )
        reduce_only = cmd.reduce_only
        if type(reduce_only) is not bool:
            raise Rejected(Code.INVALID_PARAMETER, "reduceOnly must be a boolean.")
        cid = cmd.client_id
        if cid is not None:
            if (
                type(cid) is not str
                or not 1 <= len(cid) <= 36
                or not CLIENT_ID_CHARS.issuperset(cid)
            ):
                raise Rejected(Code.CLIENT_ID_INVALID)
            original = acct.client_ids.get(cid)
            if original is not None:
                self._emit(E.OrderResubmissionIgnored, acct.id, symbol, cid, original)
                return
        if m.halted:
            raise Rejected(Code.MARKET_HALTED)
        is_limit = kind in LIMIT_KINDS
        qty = cmd.qty
        if type(qty) is not int or qty <= 0:
            raise Rejected(Code.QTY_LESS_THAN_ZERO)
        if qty < inst.min_qty:
            raise Rejected(Code.QTY_LESS_THAN_MIN)
        if qty > (inst.max_qty if is_limit else inst.market_max_qty):
            raise Rejected(Code.QTY_GREATER_THAN_MAX)
        price = cmd.price
        if is_limit:
            if type(price) is not int or price <= 0:
                raise Rejected(Code.PRICE_LESS_THAN_ZERO)
            if price < inst.min_price:
                raise Rejected(Code.PRICE_LESS_THAN_MIN)
            if price > inst.max_price:
                raise Rejected(Code.PRICE_GREATER_THAN_MAX)
        elif type(price) is not int or price != 0:
            raise Rejected(Code.INVALID_PARAMETER, "price must not be sent with a market order.")
        side = BUY if side_name == "BUY" else SELL
        stop = cmd.stop_price
        conditional = kind in CONDITIONAL
        if conditional:
            if type(stop) is not int or stop <= 0:
                raise Rejected(Code.STOP_PRICE_LESS_THAN_ZERO)
            if stop > inst.max_price:
                raise Rejected(Code.PRICE_GREATER_THAN_MAX, "(stopPrice)")
            ref = m.mark if working_type == "MARK_PRICE" else m.last
            if ref <= 0:
                raise Rejected(Code.NO_REFERENCE_PRICE)
            direction = self._stop_direction(kind, side)
            if (direction > 0 and ref >= stop) or (direction < 0 and ref <= stop):
                raise Rejected(Code.ORDER_WOULD_IMMEDIATELY_TRIGGER)
        elif type(stop) is not int or stop != 0:
            raise Rejected(Code.INVALID_PARAMETER, "stopPrice is only for conditional orders.")
        mark = m.mark
        if mark > 0 and mark != m.band_ref:
            self._band(m)  # refresh the cached band around the mark
        if is_limit:
            if mark > 0:
                if price > m.band_hi:
                    raise Rejected(Code.PRICE_ABOVE_BAND)
                if price < m.band_lo:
                    raise Rejected(Code.PRICE_BELOW_BAND)
            worst = price
            notional_price = price
        elif kind == "MARKET":
            if mark <= 0:
                raise Rejected(Code.NO_REFERENCE_PRICE)
            # the worst price a market order can reach: the band edge
            worst = m.band_hi if side == BUY else m.band_lo
            notional_price = mark
        else:
            # a conditional market order: the band edge around its stop (the mark being
            # unknown until it triggers)
            worst = band_edge(inst, side, stop)
            notional_price = stop
        lv = inst.lot_value
        if not reduce_only and notional_price * qty * lv < inst.min_notional:
            raise Rejected(Code.NOTIONAL_TOO_SMALL)
        seat = acct.seats.get(inst.symbol)
        if seat is not None and seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        open_orders = len(seat.orders) if seat is not None else 0
        if open_orders >= inst.max_open_orders:
            raise Rejected(Code.MAX_OPEN_ORDERS)
        if self.limits:
            S.check_order(self, m, account_id, seat, side, 0 if reduce_only else qty, worst, True)
        pos = seat.qty if seat is not None else 0
        if reduce_only:
            if pos == 0 or (pos > 0) == (side == BUY):
                raise Rejected(Code.REDUCE_ONLY_REJECTED)
            if not conditional:
                qty = min(qty, abs(pos))  # a reduce-only order is never bigger than the position
        if kind == "LIMIT":
            if tif == "GTX" and self._would_take(m, side, price):
                raise Rejected(Code.POST_ONLY_WOULD_TAKE)
            if tif == "FOK" and self._fillable(m, side, price, qty, acct.id, stp) < qty:
                raise Rejected(Code.FOK_WOULD_NOT_FILL)
        quote = inst.quote_asset
        reserve = 0
        if not reduce_only:
            if seat is not None:
                leverage = seat.leverage
                pending = seat.pending[side]
            else:
                leverage = inst.default_leverage
                pending = 0
            apos = pos if pos >= 0 else -pos
            if (pos < 0) if side == BUY else (pos > 0):  # the order can close the position
                closable = apos - pending if apos > pending else 0
                grow = pending - apos if pending > apos else 0
            else:
                closable = 0
                grow = apos + pending
            increase = qty - closable if qty > closable else 0
            # the reservation (see `_reservation`): initial margin on the increasing
            # part + fee on all + the open loss of a price worse than the mark
            reserve = -((-qty * worst * lv * m.fee_rate) // RATE_ONE)
            if increase:
                value = increase * worst * lv
                caps = inst._caps  # inst.bracket_for(notional), inlined
                i = bisect_left(caps, grow * worst * lv + value)
                if i >= len(caps):
                    i = len(caps) - 1
                if inst.brackets[i].max_leverage < leverage:
                    raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
                reserve += -((-value) // leverage)
                if mark > 0:
                    gap = worst - mark if side == BUY else mark - worst
                    if gap > 0:
                        reserve += gap * increase * lv
            if reserve > acct.available.get(quote, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        # ---- accepted: mutate from here on
        oid = self.next_order_id
        self.next_order_id = oid + 1
        now = self.now
        o = Order(
            oid,
            account_id,
            inst.symbol,
            side,
            kind,
            tif,
            price,
            qty,
            stop,
            working_type,
            reduce_only,
            cid,
            stp,
            now,
        )
        self.orders[oid] = o
        if cid is not None:
            acct.client_ids[cid] = oid
        if seat is None:
            seat = self._seat(acct, m)
        m.seats[account_id] = seat
        seat.orders[oid] = o
        seat.pending[side] += qty
        if reserve:
            o.reserved = reserve
            acct.available[quote] -= reserve
            reserved = acct.reserved
            reserved[quote] = reserved.get(quote, 0) + reserve
            self._balances_touched[(account_id, quote)] = None
        if conditional:
            o.status = UNTRIGGERED
            m.stops[(working_type, self._stop_direction(kind, side))].add((stop, oid))
            m.stop_count += 1
        self.seq = seq = self.seq + 1
        self._out.append(
            E.OrderAccepted(
                seq,
                now,
                oid,
                cid,
                account_id,
                inst.symbol,
                side_name,
                kind,
                tif,
                price,
                qty,
                stop,
                reduce_only,
                "UNTRIGGERED" if conditional else "NEW",
            )
        )
        if conditional:
            self._flush(m)
            return
        if kind == "LIMIT" and not reduce_only and (tif == "GTC" or tif == "GTX"):
            # a limit order that does not cross rests at once (what `_execute` would do)
            book = m.book
            if side == BUY:
                best = book.best_ask()
                crosses = best is not None and best <= price
            else:
                best = book.best_bid()
                crosses = best is not None and best >= price
            if not crosses:
                book.rest(o)
                self._react(m)
                return
        self._execute(m, o, worst)
        self._react(m)

    def _order_reservation(self, m: Market, seat: Seat, o: Order, leverage: int) -> int:
        """What open order `o` would reserve now at `leverage` (0 for reduce-only)."""
        if o.reduce_only:
            return 0
        inst = m.inst
        if o.type in LIMIT_KINDS:
            worst = o.price
        else:
            worst = band_edge(inst, o.side, o.stop_price or m.mark)
        pos = seat.qty
        opposite = (pos < 0) if o.side == BUY else (pos > 0)
        others = seat.pending[o.side] - o.remaining
        closable = max(0, abs(pos) - others) if opposite else 0
        increase = max(0, o.remaining - closable)
        return self._reservation(m, o.side, worst, o.remaining, increase, leverage)

    @staticmethod
    def _stop_direction(kind: str, side: int) -> int:
        """+1: triggers when the price rises to the stop; −1: when it falls to it."""
        stop = kind.startswith("STOP")
        return 1 if (stop == (side == BUY)) else -1

    def _reservation(
        self, m: Market, side: int, price: int, qty: int, increase: int, leverage: int
    ) -> int:
        """Initial margin on the increasing part + taker fee on all + the open loss of a
        price worse than the mark, each rounded up. O(1)."""
        inst = m.inst
        lv = inst.lot_value
        im = ceil_div(increase * price * lv, leverage) if increase else 0
        fee = ceil_div(qty * price * lv * max(inst.taker_fee, inst.maker_fee, 0), RATE_ONE)
        loss = 0
        if increase and m.mark > 0:
            gap = price - m.mark if side == BUY else m.mark - price
            if gap > 0:
                loss = gap * increase * lv
        return im + fee + loss

    def _would_take(self, m: Market, side: int, price: int) -> bool:
        if side == BUY:
            ba = m.book.best_ask()
            return ba is not None and ba <= price
        bb = m.book.best_bid()
        return bb is not None and bb >= price

    def _fillable(self, m: Market, side: int, limit: int, want: int, account: int, stp: str) -> int:
        """Lots an order could take at `limit` or better, counting up to `want`."""
        got = 0
        closable: dict[int, int] = {}  # what reduce-only makers can still close, per account
        levels = m.book.asks if side == BUY else m.book.bids
        prices = (
            levels.irange(maximum=limit)
            if side == BUY
            else levels.irange(minimum=limit, reverse=True)
        )
        for p in prices:
            lvl: Level = levels[p]
            for o in lvl.live():
                if stp != "NONE" and o.account == account:
                    if stp != "EXPIRE_MAKER":
                        return got
                    continue
                if o.reduce_only:
                    left = closable.get(o.account)
                    if left is None:
                        pos = self.accounts[o.account].seats[o.symbol].qty
                        left = abs(pos) if pos and (pos > 0) == (o.side == SELL) else 0
                    n = min(left, o.remaining)
                    closable[o.account] = left - n
                    got += n
                else:
                    got += o.remaining
                if got >= want:
                    return got
        return got

    def _execute(self, m: Market, o: Order, limit: int) -> None:
        """Match `o` as a taker up to `limit`, then rest or expire what is left."""
        if o.reduce_only:
            seat = self.accounts[o.account].seats[o.symbol]
            closable = abs(seat.qty) if (seat.qty > 0) == (o.side == SELL) and seat.qty else 0
            if closable < o.remaining:
                if closable == 0:
                    self._close_order(m, o, EXPIRED, "REDUCE_ONLY")
                    return
                self._cut(m, o, o.remaining - closable)
        reason = self._match(m, o, limit, False)
        if o.status >= FILLED:
            return
        if o.remaining == 0:
            return
        if reason is None and o.type in LIMIT_KINDS and o.tif in ("GTC", "GTX"):
            m.book.rest(o)
            return
        if reason is None:
            if o.type in LIMIT_KINDS:
                reason = "IOC"
            else:
                book = m.book.asks if o.side == BUY else m.book.bids
                reason = "PRICE_BAND" if book else "NO_LIQUIDITY"
        self._close_order(m, o, EXPIRED, reason)

    def _cut(self, m: Market, o: Order, lots: int) -> None:
        """Shrink a not-resting order's remaining quantity by `lots`, releasing its share."""
        seat = self.accounts[o.account].seats[o.symbol]
        seat.pending[o.side] -= lots
        if o.reserved:
            rel = o.reserved * lots // o.remaining
            self._release(m, o, rel)
        o.remaining -= lots
        o.qty -= lots
        self._emit(E.OrderAmended, o.oid, o.account, o.symbol, o.price, o.qty, o.remaining, True)

    def _release(self, m: Market, o: Order, amount: int) -> None:
        if amount:
            acct = self.accounts[o.account]
            quote = m.inst.quote_asset
            o.reserved -= amount
            acct.reserved[quote] -= amount
            acct.available[quote] += amount
            self._balances_touched[(acct.id, quote)] = None

    def _close_order(self, m: Market, o: Order, status: int, reason: str) -> None:
        """Finish an open order that is not (or no longer) resting: release everything."""
        acct = self.accounts[o.account]
        seat = acct.seats[o.symbol]
        oid = o.oid
        del seat.orders[oid]
        remaining = o.remaining
        seat.pending[o.side] -= remaining
        amount = o.reserved
        if amount:  # self._release(m, o, amount)
            quote = m.inst.quote_asset
            o.reserved = 0
            acct.reserved[quote] -= amount
            acct.available[quote] += amount
            self._balances_touched[(acct.id, quote)] = None
        o.status = status
        cls = E.OrderCanceled if status == CANCELED else E.OrderExpired
        self.seq = seq = self.seq + 1
        self._out.append(
            cls(seq, self.now, oid, o.client_id, o.account, o.symbol, remaining, reason)
        )

    def _match(self, m: Market, t: Order, limit: int, liquidation: bool) -> str | None:
        """Fill taker `t` against the book in price-time order up to `limit`.

        Returns an expiry reason when self-trade prevention stopped the taker, else None.
        O(k + log L) for k fills.
        """
        book = m.book
        buy = t.side == BUY
        levels = book.asks if buy else book.bids
        if not levels or not t.remaining:
            return None
        idx = 0 if buy else -1
        stp = "NONE" if liquidation else t.stp
        accounts = self.accounts
        lv = m.inst.lot_value
        # the taker's seat: `_beyond_bankruptcy` for the taker, inlined below
        t_seat = accounts[t.account].seats[t.symbol]
        t_fund = t.account == FUND
        fill = self._fill
        while t.remaining and levels:
            price, lvl = levels.peekitem(idx)
            if (price > limit) if buy else (price < limit):
                break
            q = lvl.orders
            while t.remaining and q:
                mk = q[0]
                if mk.status >= FILLED:
                    q.popleft()
                    continue
                if mk.account == t.account and stp != "NONE":
                    if stp == "EXPIRE_MAKER" or stp == "EXPIRE_BOTH":
                        q.popleft()
                        book.unrest(mk)
                        self._close_order(m, mk, EXPIRED, "STP_MAKER")
                        if stp == "EXPIRE_BOTH":
                            return "STP_BOTH"
                        if not levels or price not in levels:
                            break
                        continue
                    return "STP_TAKER"
                n = mk.remaining if mk.remaining < t.remaining else t.remaining
                if mk.reduce_only:
                    ms = accounts[mk.account].seats[mk.symbol]
                    closable = abs(ms.qty) if ms.qty and (ms.qty > 0) == (mk.side == SELL) else 0
                    if closable == 0:
                        q.popleft()
                        book.unrest(mk)
                        self._close_order(m, mk, EXPIRED, "REDUCE_ONLY")
                        if price not in levels:
                            break
                        continue
                    if closable < n:
                        n = closable
                if not liquidation:
                    # Would the fill close part of the taker's or the maker's position
                    # beyond its bankruptcy price (`margin.bankruptcy_tick`, inlined)?
                    # Isolated margin bounds a position's loss: such fills never happen
                    # (the order expires instead; a liquidation deals with the position).
                    pq = t_seat.qty
                    if pq and (pq > 0) != buy and not t_fund:
                        if pq > 0:
                            bk = -((t_seat.margin - t_seat.cost) // (pq * lv))
                            if price < (bk if bk > 1 else 1):
                                return "BANKRUPTCY"
                        elif price > (t_seat.margin - t_seat.cost) // (-pq * lv):
                            return "BANKRUPTCY"
                    ms = accounts[mk.account].seats[mk.symbol]
                    pq = ms.qty
                    if pq and (pq > 0) == buy and mk.account != FUND:
                        if pq > 0:
                            bk = -((ms.margin - ms.cost) // (pq * lv))
                            beyond = price < (bk if bk > 1 else 1)
                        else:
                            beyond = price > (ms.margin - ms.cost) // (-pq * lv)
                        if beyond:
                            q.popleft()
                            book.unrest(mk)
                            self._close_order(m, mk, EXPIRED, "BANKRUPTCY")
                            if price not in levels:
                                break
                            continue
                fill(m, t, mk, price, n, liquidation)
                if mk.remaining == 0:
                    q.popleft()
                elif mk.reduce_only and n < t.remaining:
                    # the maker could only close part of its size: the rest would increase
                    q.popleft()
                    book.unrest(mk)
                    self._close_order(m, mk, EXPIRED, "REDUCE_ONLY")
            if lvl.qty == 0 and price in levels:
                del levels[price]
        return None

    def _fill(self, m: Market, t: Order, mk: Order, price: int, n: int, liquidation: bool) -> None:
        """One match of taker `t` with resting maker `mk`: n lots at `price`."""
        inst = m.inst
        quote = inst.quote_asset
        notional = price * n * inst.lot_value
        maker_fee = -((-notional * inst.maker_fee) // RATE_ONE)
        taker_fee = 0 if liquidation else -((-notional * inst.taker_fee) // RATE_ONE)
        t_before = t.remaining
        mk_before = mk.remaining
        t.remaining = t_left = t_before - n
        mk.remaining = mk_left = mk_before - n
        m.book.shrink(mk, n)
        accounts = self.accounts
        settle = self._settle
        settle(m, t, t_before, price, n, taker_fee, liquidation)
        settle(m, mk, mk_before, price, n, maker_fee, False)
        fees = self.fees_collected
        fees[quote] = fees.get(quote, 0) + maker_fee + taker_fee
        now = self.now
        m.last = price
        m.last_qty = n
        m.last_ts = now
        tid = self.next_trade_id
        self.next_trade_id = tid + 1
        self.seq = seq = self.seq + 1
        self._out.append(
            E.OrderFilled(
                seq,
                now,
                inst.symbol,
                tid,
                price,
                n,
                SIDES[t.side],
                t.oid,
                mk.oid,
                t.account,
                mk.account,
                taker_fee,
                maker_fee,
                t_left,
                mk_left,
                liquidation,
            )
        )
        if mk_left == 0:
            mk.status = FILLED
            del accounts[mk.account].seats[mk.symbol].orders[mk.oid]
            if mk.reserved:
                self._release(m, mk, mk.reserved)
        else:
            mk.status = PARTIALLY_FILLED
        if t_left == 0:
            t.status = FILLED
            del accounts[t.account].seats[t.symbol].orders[t.oid]
            if t.reserved:
                self._release(m, t, t.reserved)
        else:
            t.status = PARTIALLY_FILLED

    def _settle(
        self, m: Market, o: Order, before: int, price: int, n: int, fee: int, liquidation: bool
    ) -> None:
        """Book one fill of `n` of the order's `before` remaining lots at `price` into its
        account and position; the reservation's pro-rata share (all of it on the last
        fill) goes into the trade."""
        acct = self.accounts[o.account]
        seat = acct.seats[o.symbol]
        seat.pending[o.side] -= n
        funds = 0
        r = o.reserved
        if r:
            funds = r if n == before else r * n // before
            o.reserved = r - funds
            acct.reserved[m.inst.quote_asset] -= funds
        self._trade_into(m, acct, seat, o.side, price, n, fee, funds, liquidation)

    def _trade_into(
        self,
        m: Market,
        acct: Account,
        seat: Seat,
        side: int,
        price: int,
        n: int,
        fee: int,
        funds: int,
        hold: bool,
    ) -> int:
        """Change `seat`'s position by a trade of n lots; settle money. Returns realized PnL.

        `funds` is money already set aside for this trade (a reservation share). The
        reducing part releases its share of margin plus realized PnL; the increasing part
        takes initial margin. Net leftovers go to the wallet; a shortfall comes from the
        wallet, then the position's margin, then the insurance fund, so no balance is
        ever negative. With `hold` (a position under liquidation) the reducing part's
        money stays in the position margin, to be settled by the liquidation policy.
        """
        inst = m.inst
        quote = inst.quote_asset
        lv = inst.lot_value
        qty = seat.qty
        buy = side == BUY
        realized = 0
        reduce = 0
        if qty and (qty > 0) != buy:
            aq = qty if qty > 0 else -qty
            if n < aq:
                reduce = n
                released_cost = seat.cost * n // aq
                released_margin = seat.margin * n // aq
            else:
                reduce = aq
                released_cost = seat.cost
                released_margin = seat.margin
            exit_value = price * reduce * lv
            realized = (exit_value if qty > 0 else -exit_value) - released_cost
            seat.cost -= released_cost
            qty = seat.qty = qty + reduce if buy else qty - reduce
            seat.realized += realized
            if hold:
                seat.margin += realized
            else:
                seat.margin -= released_margin
                funds += released_margin + realized
                if seat.orders:
                    self._review[(seat.account, seat.symbol, side)] = seat
        increase = n - reduce
        if increase:
            value = price * increase * lv
            if buy:
                seat.cost += value
                qty = seat.qty = qty + increase
            else:
                seat.cost -= value
                qty = seat.qty = qty - increase
            im = 0 if acct.id == FUND else -((-value) // seat.leverage)
            seat.margin += im
            funds -= im
        seat.fees += fee
        funds -= fee
        available = acct.available
        if funds >= 0:
            if funds:
                available[quote] = available.get(quote, 0) + funds
        else:
            short = -funds
            have = available.get(quote, 0)
            take = have if have < short else short
            available[quote] = have - take
            short -= take
            if short and not hold:
                take = seat.margin if seat.margin < short else short
                seat.margin -= take
                short -= take
            if short:
                # fills beyond bankruptcy never happen, so only a fee (or a reservation's
                # rounding) can be left uncovered here: the exchange waives it
                self.fees_collected[quote] = self.fees_collected.get(quote, 0) - short
        if qty == 0 and not hold:
            if seat.margin:
                available[quote] = available.get(quote, 0) + seat.margin
                seat.margin = 0
            seat.cost = 0
        self._balances_touched[(acct.id, quote)] = None
        self._touched[(seat.account, seat.symbol)] = seat
        return realized

    def _find(self, acct: Account, m: Market, order_id: Any, client_id: Any) -> Order:
        """The account's order by id or client id; -2011 for anything else (including
        another account's order, which must look exactly like an unknown one)."""
        o = None
        if order_id is not None:
            if type(order_id) is not int:
                raise Rejected(Code.UNKNOWN_ORDER)
            o = self.orders.get(order_id)
        elif client_id is not None:
            if type(client_id) is not str:
                raise Rejected(Code.UNKNOWN_ORDER)
            oid = acct.client_ids.get(client_id)
            o = self.orders.get(oid) if oid is not None else None
        else:
            raise Rejected(
                Code.MANDATORY_PARAM_MISSING, "orderId or origClientOrderId is required."
            )
        if o is None or o.account != acct.id or o.symbol != m.inst.symbol:
            raise Rejected(Code.UNKNOWN_ORDER)
        return o

    def _cancel(self, cmd: C.CancelOrder) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        o = self._find(acct, m, cmd.order_id, cmd.client_id)
        if o.status not in (NEW, PARTIALLY_FILLED, UNTRIGGERED):
            raise Rejected(Code.UNKNOWN_ORDER, "The order is no longer open.")
        self._cancel_order(m, o, "USER")
        self._flush(m)

    def _cancel_order(self, m: Market, o: Order, reason: str) -> None:
        if o.status == UNTRIGGERED:
            m.stops[(o.trigger, self._stop_direction(o.type, o.side))].remove((o.stop_price, o.oid))
            m.stop_count -= 1
        else:
            m.book.unrest(o)
        self._close_order(m, o, CANCELED, reason)

    def _open_orders_of(self, account: int, symbol: str) -> list[Order]:
        seat = self.accounts[account].seats.get(symbol)
        return sorted(seat.orders.values(), key=lambda o: o.oid) if seat is not None else []

    def _cancel_all(self, cmd: C.CancelAllOrders) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        for o in self._open_orders_of(acct.id, m.inst.symbol):
            self._cancel_order(m, o, "CANCEL_ALL")
        self._flush(m)

    def _amend(self, cmd: C.AmendOrder) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        o = self._find(acct, m, cmd.order_id, cmd.client_id)
        inst = m.inst
        if acct.seats[inst.symbol].liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        if o.status not in (NEW, PARTIALLY_FILLED) or o.type != "LIMIT":
            raise Rejected(Code.UNKNOWN_ORDER, "Only open LIMIT orders can be amended.")
        if m.halted:
            raise Rejected(Code.MARKET_HALTED)
        if cmd.qty is None and cmd.price is None:
            raise Rejected(Code.MANDATORY_PARAM_MISSING, "quantity or price is required.")
        new_qty = o.qty if cmd.qty is None else cmd.qty
        new_price = o.price if cmd.price is None else cmd.price
        if type(new_qty) is not int or new_qty <= 0:
            raise Rejected(Code.QTY_LESS_THAN_ZERO)
        filled = o.qty - o.remaining
        if new_qty <= filled:
            raise Rejected(
                Code.QTY_LESS_THAN_MIN, "The new quantity must exceed what is already filled."
            )
        if new_qty < inst.min_qty:
            raise Rejected(Code.QTY_LESS_THAN_MIN)
        if new_qty > inst.max_qty:
            raise Rejected(Code.QTY_GREATER_THAN_MAX)
        if type(new_price) is not int or new_price <= 0:
            raise Rejected(Code.PRICE_LESS_THAN_ZERO)
        if new_price < inst.min_price:
            raise Rejected(Code.PRICE_LESS_THAN_MIN)
        if new_price > inst.max_price:
            raise Rejected(Code.PRICE_GREATER_THAN_MAX)
        lo, hi = self._band(m)
        if new_price != o.price and m.mark > 0:
            if new_price > hi:
                raise Rejected(Code.PRICE_ABOVE_BAND)
            if new_price < lo:
                raise Rejected(Code.PRICE_BELOW_BAND)
        new_remaining = new_qty - filled
        if self.limits:
            added = 0 if o.reduce_only else max(0, new_qty - o.qty)
            S.check_order(
                self, m, acct.id, acct.seats[inst.symbol], o.side, added, new_price, False
            )
        if not o.reduce_only and new_price * new_qty * inst.lot_value < inst.min_notional:
            raise Rejected(Code.NOTIONAL_TOO_SMALL)
        crosses = new_price != o.price and self._would_take(m, o.side, new_price)
        if crosses and o.tif == "GTX":
            raise Rejected(Code.POST_ONLY_WOULD_TAKE)
        seat = acct.seats[inst.symbol]
        reserve = 0
        if not o.reduce_only:
            pending_others = seat.pending[o.side] - o.remaining
            pos = seat.qty
            opposite = (pos < 0) if o.side == BUY else (pos > 0)
            closable = max(0, abs(pos) - pending_others) if opposite else 0
            increase = max(0, new_remaining - closable)
            if increase:
                grow = increase + (
                    max(0, pending_others - abs(pos)) if opposite else abs(pos) + pending_others
                )
                if inst.bracket_for(grow * new_price * inst.lot_value).max_leverage < seat.leverage:
                    raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
            reserve = self._reservation(
                m, o.side, new_price, new_remaining, increase, seat.leverage
            )
            if new_price == o.price and new_remaining <= o.remaining:
                reserve = min(reserve, o.reserved)  # a pure decrease never needs more
            if reserve - o.reserved > acct.available.get(inst.quote_asset, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        # ---- accepted
        keep = new_price == o.price and new_remaining <= o.remaining
        quote = inst.quote_asset
        delta = reserve - o.reserved
        if delta:
            o.reserved = reserve
            acct.available[quote] -= delta
            acct.reserved[quote] = acct.reserved.get(quote, 0) + delta
            self._touch_balance(acct.id, quote)
        seat.pending[o.side] += new_remaining - o.remaining
        if keep:
            m.book.shrink(o, o.remaining - new_remaining)
            o.remaining = new_remaining
            o.qty = new_qty
            self._emit(
                E.OrderAmended, o.oid, acct.id, inst.symbol, o.price, o.qty, o.remaining, True
            )
            self._flush(m)
            return
        m.book.unrest(o)
        fresh = o.copy()
        o.status = REPLACED
        fresh.price = new_price
        fresh.qty = new_qty
        fresh.remaining = new_remaining
        fresh.ts = self.now
        self.orders[o.oid] = fresh
        seat.orders[o.oid] = fresh
        self._emit(
            E.OrderAmended,
            fresh.oid,
            acct.id,
            inst.symbol,
            new_price,
            new_qty,
            new_remaining,
            False,
        )
        self._execute(m, fresh, new_price)
        self._react(m)

    # ------------------------------------------------------------------ conditional orders

    def _fire_stops(self, m: Market) -> bool:
        """Trigger every conditional order whose stop the mark or last price has reached,
        lowest order id first, and execute it. Returns whether any fired."""
        if m.halted:
            return False  # a halted market triggers nothing until it resumes
        fired: list[tuple[int, int, str]] = []
        for (wt, direction), lst in m.stops.items():
            if not lst:
                continue
            ref = m.mark if wt == "MARK_PRICE" else m.last
            if ref <= 0:
                continue
            if direction > 0:
                j = lst.bisect_left((ref + 1, -1))
                hits = list(lst.islice(0, j))
                del lst[:j]
            else:
                i = lst.bisect_left((ref, -1))
                hits = list(lst.islice(i))
                del lst[i:]
            fired.extend((oid, ref, wt) for _, oid in hits)
        if not fired:
            return False
        m.stop_count -= len(fired)
        fired.sort()
        for oid, ref, wt in fired:
            o = self.orders[oid]
            o.status = NEW
            self._emit(E.OrderTriggered, oid, o.account, o.symbol, o.stop_price, ref, wt)
            if o.type in LIMIT_KINDS:
                limit = o.price
            else:
                lo, hi = self._band(m)
                limit = hi if o.side == BUY else lo
            seat = self.accounts[o.account].seats[o.symbol]
            if seat.liquidating:
                self._close_order(m, o, EXPIRED, "LIQUIDATION")
                continue
            if o.type in LIMIT_KINDS and o.tif == "GTX" and self._would_take(m, o.side, limit):
                self._close_order(m, o, EXPIRED, "POST_ONLY")
                continue
            if (
                o.type in LIMIT_KINDS
                and o.tif == "FOK"
                and self._fillable(m, o.side, limit, o.remaining, o.account, o.stp) < o.remaining
            ):
                self._close_order(m, o, EXPIRED, "FOK")
                continue
            self._execute(m, o, limit)
        return True

    # ------------------------------------------------------------------ prices

    def _set_index(self, cmd: C.SetIndexPrice) -> None:
        m = self._market(cmd.symbol)
        price = self._int(cmd.price, "price", 1, m.inst.max_price, Code.PRICE_LESS_THAN_ZERO)
        m.index = price
        self._sample_premium(m)
        self._emit(E.IndexPriceChanged, m.inst.symbol, price)
        self._react(m)

    def _set_funding_rate(self, cmd: C.SetFundingRate) -> None:
        m = self._market(cmd.symbol)
        rate = self._int(cmd.rate, "rate", -RATE_ONE // 10, RATE_ONE // 10)
        m.funding_override = m.funding_rate = rate
        self._emit(E.FundingRateSet, m.inst.symbol, rate, m.next_funding_ts)
        self._react(m)

    def _sample_premium(self, m: Market) -> None:
        """Sample the premium index and the mid − index basis at an index update."""
        idx = m.index
        bb, ba = m.book.best_bid(), m.book.best_ask()
        prem = 0
        if bb is not None and bb > idx:
            prem += (bb - idx) * RATE_ONE // idx
        if ba is not None and ba < idx:
            prem -= (idx - ba) * RATE_ONE // idx
        m.premium_sum += prem
        m.premium_n += 1
        inst = m.inst
        avg = m.premium_sum // m.premium_n
        if m.funding_override is not None:
            m.funding_rate = m.funding_override
        else:
            m.funding_rate = avg + max(
                -inst.funding_clamp, min(inst.funding_clamp, inst.interest_rate - avg)
            )
        if bb is not None and ba is not None:
            b = (bb + ba) // 2 - idx
            m.basis.append(b)
            m.basis_sum += b
            if len(m.basis) > inst.basis_window:
                m.basis_sum -= m.basis.popleft()

    def _compute_mark(self, m: Market) -> int:
        method = m.inst.mark_method
        idx = m.index
        if method == "index":
            return idx
        if method == "last":
            return m.last or idx
        bb, ba = m.book.best_bid(), m.book.best_ask()
        if method == "mid":
            if bb is not None and ba is not None:
                return (bb + ba) // 2
            return m.last or idx
        if idx <= 0:
            return m.last
        iv = m.inst.funding_interval_ns
        to_funding = max(0, m.next_funding_ts - self.now)
        p1 = idx + idx * m.funding_rate * to_funding // (RATE_ONE * iv)
        p2 = idx + (m.basis_sum // len(m.basis) if m.basis else 0)
        p3 = m.last or idx
        return sorted((p1, p2, p3))[1]

    def _update_mark(self, m: Market) -> bool:
        method = m.inst.mark_method
        if method != "mid":
            # only these inputs can move an index, last or median mark
            key = (
                (m.index, m.last, self.now, m.basis_sum, m.funding_rate)
                if method == "median"
                else (m.index, m.last, 0, 0, 0)
            )
            if key == m.mark_key:
                return False
            m.mark_key = key
        mark = self._compute_mark(m)
        if mark <= 0 or mark == m.mark:
            return False
        m.mark = mark
        self._emit(
            E.MarkPriceChanged,
            m.inst.symbol,
            mark,
            m.index,
            m.last,
            m.funding_rate,
            m.next_funding_ts,
        )
        return True

    # ------------------------------------------------------------------ after every change

    def _review_reservations(self) -> None:
        """Orders sized as closing a position that has since shrunk may now open one: top
        their reservation up from the wallet, or cancel them (reason MARGIN)."""
        review = self._review
        self._review = {}
        for (_, sym, side), seat in review.items():
            m = self.markets[sym]
            inst = m.inst
            acct = self.accounts[seat.account]
            quote = inst.quote_asset
            lv = inst.lot_value
            leverage = seat.leverage
            orders = seat.orders
            # a cancel below changes neither the position nor the mark
            pos = seat.qty
            closing = (pos < 0) if side == BUY else (pos > 0)
            apos = pos if pos > 0 else -pos
            mark = m.mark
            fee_rate = m.fee_rate
            buy = side == BUY
            # oldest first (a cancel below removes only the order at hand)
            for oid in sorted(orders):
                o = orders[oid]
                if o.side != side or o.reduce_only:
                    continue
                # what the order would reserve now: `_order_reservation`, inlined
                if o.type in LIMIT_KINDS:
                    worst = o.price
                else:
                    worst = band_edge(inst, side, o.stop_price or mark)
                remaining = o.remaining
                if closing:
                    others = seat.pending[side] - remaining
                    closable = apos - others if apos > others else 0
                    increase = remaining - closable if remaining > closable else 0
                else:
                    increase = remaining
                value = worst * lv
                need = -((-remaining * value * fee_rate) // RATE_ONE)
                if increase:
                    need -= (-increase * value) // leverage
                    if mark > 0:
                        gap = worst - mark if buy else mark - worst
                        if gap > 0:
                            need += gap * increase * lv
                more = need - o.reserved
                if more <= 0:
                    continue
                if more <= acct.available.get(quote, 0):
                    o.reserved += more
                    acct.available[quote] -= more
                    acct.reserved[quote] = acct.reserved.get(quote, 0) + more
                    self._touch_balance(acct.id, quote)
                else:
                    self._cancel_order(m, o, "MARGIN")

    def _flush(self, m: Market) -> None:
        """Emit position, balance and book changes made so far, and re-index positions."""
        if self._review:
            self._review_reservations()
        if self._touched:
            touched = self._touched
            self._touched = {}
            refresh = self._refresh
            for seat in touched.values():
                refresh(seat)
        if self._balances_touched:
            bt = self._balances_touched
            self._balances_touched = {}
            accounts = self.accounts
            append = self._out.append
            now = self.now
            seq = self.seq
            balance_changed = E.BalanceChanged
            for account, asset in bt:
                acct = accounts[account]
                seq += 1
                append(
                    balance_changed(
                        seq,
                        now,
                        account,
                        asset,
                        acct.available.get(asset, 0),
                        acct.reserved.get(asset, 0),
                    )
                )
            self.seq = seq
        if len(self.markets) == 1:
            book = m.book
            if book.dirty:
                changed = book.flush()
                if changed is not None:
                    self.seq = seq = self.seq + 1
                    self._out.append(
                        E.BookUpdated(
                            seq, self.now, m.inst.symbol, book.seq, changed[0], changed[1]
                        )
                    )
            return
        for mk in self.markets.values():
            changed = mk.book.flush()
            if changed is not None:
                self._emit(E.BookUpdated, mk.inst.symbol, mk.book.seq, changed[0], changed[1])

    def _refresh(self, seat: Seat) -> None:
        m = self.markets[seat.symbol]
        qty = seat.qty
        account = seat.account
        if qty:
            inst = m.inst
            cost = seat.cost
            margin = seat.margin
            liq = seat.liq = liquidation_tick(inst, qty, cost, margin)
            qf = (qty if qty > 0 else -qty) * inst.lot_value
            # margin.bankruptcy_tick, inlined
            if qty > 0:
                bk = -((margin - cost) // qf)
                if bk < 1:
                    bk = 1
            else:
                bk = (margin - cost) // qf
            seat.bk = bk
        else:
            liq = bk = seat.liq = seat.bk = 0
        if account != FUND and not seat.liquidating:
            mon = m.monitor
            if (qty and liq > 0) or account in mon.keys:  # else update() would do nothing
                mon.update(account, qty, liq)
        longs, shorts = m.sides
        if qty > 0:
            m.seats[account] = seat
            longs[account] = seat
            if account in shorts:
                del shorts[account]
        elif qty < 0:
            m.seats[account] = seat
            shorts[account] = seat
            if account in longs:
                del longs[account]
        else:
            if seat.orders:
                m.seats[account] = seat
            elif account in m.seats:
                del m.seats[account]
            if account in longs:
                del longs[account]
            if account in shorts:
                del shorts[account]
        self.seq = seq = self.seq + 1
        self._out.append(
            E.PositionChanged(
                seq,
                self.now,
                account,
                seat.symbol,
                qty,
                seat.cost,
                seat.margin,
                seat.leverage,
                liq,
                bk,
                seat.realized,
            )
        )

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
            if not (
                (mon.longs and mon.longs[-1][0] >= mark > 0)
                or (mon.shorts and 0 < mon.shorts[0][0] <= mark)
            ):
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

    def _due(self, m: Market) -> list[Seat]:
        if m.mark <= 0:
            return []
        out = []
        due = m.monitor.pop_due(m.mark)
        if due:
            accounts = self.accounts
            symbol = m.inst.symbol
            for a in due:
                seat = accounts[a].seats[symbol]
                seat.liquidating = True
                out.append(seat)
        return out

    def _cascade(self, m: Market) -> bool:
        """Liquidate every position the mark has crossed, and every one that the
        resulting mark moves cross in turn. Returns whether anything was liquidated."""
        queue: deque[tuple[Seat, int, int | None, int]] = deque()
        if m.queued:
            for a in m.queued:
                queue.append((self.accounts[a].seats[m.inst.symbol], 0, None, m.mark))
            m.queued = []
        queue.extend((s, 0, None, m.mark) for s in self._due(m))
        if not queue:
            return False
        quote = m.inst.quote_asset
        fund = self.accounts[FUND]
        cas = Cascade(self.next_cascade_id, m.inst.symbol, fund.available.get(quote, 0))
        self.next_cascade_id += 1
        # A cascade allocates many objects that all live on (its events, the liquidation
        # orders) and no garbage cycles: the cyclic collector would only traverse the
        # whole heap again and again as they accumulate. It is paused meanwhile (and
        # left as it was found); nothing it does is observable in the state or events.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            truncated = self._liquidate_queue(m, queue, cas)
        finally:
            if paused:
                gc.enable()
        if cas.count == 0 and not truncated:
            self.next_cascade_id -= 1  # nothing was liquidated after all: no cascade
            return False
        self._emit(
            E.CascadeEnded,
            cas.cid,
            cas.symbol,
            cas.count,
            cas.volume,
            cas.depth,
            tuple(cas.path),
            cas.fund_before,
            fund.available.get(quote, 0),
            cas.adl,
            truncated,
        )
        return cas.count > 0 and not truncated

    def _liquidate_queue(
        self, m: Market, queue: deque[tuple[Seat, int, int | None, int]], cas: Cascade
    ) -> bool:
        """The cascade loop: liquidate the queued positions in order, queueing the ones
        each resulting mark move crosses. Returns whether a bound truncated it."""
        inst = m.inst
        liquidate = self.policy.liquidate
        max_count = self.max_cascade_liquidations
        max_gen = self.max_cascade_generations
        flush = self._flush
        update_mark = self._update_mark
        due = self._due
        path = cas.path
        while queue:
            seat, gen, parent, trigger = queue.popleft()
            if cas.count >= max_count or gen >= max_gen:
                m.queued = [seat.account] + [s.account for s, *_ in queue]
                return True
            qty = seat.qty
            if qty == 0 or not is_liquidatable(inst, qty, seat.cost, seat.margin, m.mark):
                seat.liquidating = False
                self._touched[(seat.account, seat.symbol)] = seat
                continue
            lid = self.next_liquidation_id
            self.next_liquidation_id = lid + 1
            liquidate(self, m, seat, cas, lid, gen, parent, trigger)
            seat.liquidating = False
            cas.count += 1
            cas.volume += qty if qty > 0 else -qty
            if gen + 1 > cas.depth:
                cas.depth = gen + 1
            if not path or path[-1] != trigger:
                path.append(trigger)
            flush(m)
            if update_mark(m):
                self._fire_stops(m)
                flush(m)
            more = due(m)
            if more:
                mark = m.mark
                queue.extend([(s, gen + 1, lid, mark) for s in more])
        return False

    # ---- primitives used by liquidation policies

    def cancel_orders_of(self, m: Market, seat: Seat, reason: str) -> None:
        """Cancel every open order of the seat's account on its symbol."""
        if seat.orders:
            for o in self._open_orders_of(seat.account, seat.symbol):
                self._cancel_order(m, o, reason)

    def liquidation_order(self, m: Market, seat: Seat, price: int) -> list[tuple[int, int]]:
        """Send an IOC order for the whole position at `price` into the book as a taker,
        without fee; its proceeds stay in the position margin. Returns its fills."""
        side = SELL if seat.qty > 0 else BUY
        qty = abs(seat.qty)
        o = Order(
            self.next_order_id,
            seat.account,
            seat.symbol,
            side,
            "LIQUIDATION",
            "IOC",
            price,
            qty,
            0,
            "MARK_PRICE",
            True,
            None,
            "NONE",
            self.now,
        )
        self.next_order_id += 1
        oid = o.oid
        self.orders[oid] = o
        seat.orders[oid] = o
        seat.pending[side] += qty
        fills: list[tuple[int, int]] = []
        if m.book.bids if side == SELL else m.book.asks:  # else nothing to match
            out = self._out
            start = len(out)
            self._match(m, o, price, True)
            fills = [
                (e.price, e.qty)
                for e in out[start:]
                if type(e) is E.OrderFilled and e.taker_order_id == oid
            ]
        if o.remaining and o.status < FILLED:
            del seat.orders[oid]
            seat.pending[side] -= o.remaining
            o.status = EXPIRED
        return fills

    def transfer_position(self, m: Market, seat: Seat, to: Seat, lots: int, price: int) -> int:
        """Move `lots` of seat's position to `to` at `price` (fund takeover, ADL).
        `seat` keeps its proceeds in margin (it is being liquidated); `to` settles
        normally. Returns `to`'s realized PnL."""
        side = SELL if seat.qty > 0 else BUY
        self._trade_into(m, self.accounts[seat.account], seat, side, price, lots, 0, 0, True)
        return self._trade_into(
            m, self.accounts[to.account], to, 1 - side, price, lots, 0, 0, False
        )

    def fund_seat(self, m: Market) -> Seat:
        return self._seat(self.accounts[FUND], m)

    def fund_equity(self, m: Market) -> int:
        """Insurance fund balance plus the unrealized PnL of its positions at their marks."""
        fund = self.accounts[FUND]
        eq = fund.available.get(m.inst.quote_asset, 0)
        for sym, seat in fund.seats.items():
            mk = self.markets[sym]
            if seat.qty and mk.inst.quote_asset == m.inst.quote_asset:
                eq += seat.qty * mk.mark * mk.inst.lot_value - seat.cost
        return eq

    def close_liquidated(self, m: Market, seat: Seat) -> int:
        """Move what is left of a closed liquidated position's margin to the fund.
        Returns the amount (the fund's gain)."""
        assert seat.qty == 0
        quote = m.inst.quote_asset
        fund = self.accounts[FUND]
        amount = seat.margin
        fund.available[quote] = fund.available.get(quote, 0) + amount
        seat.margin = 0
        seat.cost = 0
        self._touch_balance(FUND, quote)
        self._touch(seat)
        return amount

    def adl_candidates(self, m: Market, long_liquidated: bool, exclude: int) -> list[Seat]:
        """Opposite positions ranked for auto-deleveraging: by profit % × effective
        leverage (profit % ÷ effective leverage when losing), highest first; ties by
        account id; the insurance fund's own positions last. O(N log N), rare.

        profit % = uPnL / |cost| (|cost| 1 when 0), effective leverage = notional /
        equity (10¹² when equity ≤ 0): each score is an exact fraction num/den with
        den > 0, compared by integer cross-multiplication."""
        lv = m.inst.lot_value
        mark = m.mark
        ranked: list[tuple[int, int, Seat]] = []  # (num, den, seat) in account order
        fund_seats: list[Seat] = []
        opposite = m.sides[1 if long_liquidated else 0]
        for acct_id, seat in sorted(opposite.items()):
            qty = seat.qty
            if acct_id == exclude or qty == 0 or (qty < 0) != long_liquidated:
                continue
            if acct_id == FUND:
                fund_seats.append(seat)
                continue
            upnl = qty * mark * lv - seat.cost
            equity = seat.margin + upnl
            notional = (qty if qty > 0 else -qty) * mark * lv
            c = abs(seat.cost) or 1
            if equity > 0:
                if upnl > 0:  # (upnl / c) × (notional / equity)
                    ranked.append((upnl * notional, c * equity, seat))
                elif notional:  # (upnl / c) ÷ (notional / equity)
                    ranked.append((upnl * equity, c * notional, seat))
                else:
                    raise ZeroDivisionError("profit % divided by a zero effective leverage")
            elif upnl > 0:  # (upnl / c) × 10¹²
                ranked.append((upnl * 10**12, c, seat))
            else:  # (upnl / c) ÷ 10¹²
                ranked.append((upnl, c * 10**12, seat))
        if len(ranked) > 1:
            # highest score first; the sort is stable, so equal scores stay in account order
            ranked.sort(key=_ADL_ORDER)
        return [s for _, _, s in ranked] + fund_seats

    def emit(self, cls: Any, *args: Any) -> None:
        """Emit an event (for liquidation policies)."""
        self.seq = seq = self.seq + 1
        self._out.append(cls(seq, self.now, *args))

    # ------------------------------------------------------------------ accounts

    def _create_account(self, cmd: C.CreateAccount) -> None:
        aid = self._int(cmd.account, "account", 1, 2**63 - 1)
        if aid in self.accounts:
            raise Rejected(Code.ACCOUNT_EXISTS)
        self.accounts[aid] = Account(aid)
        self._emit(E.AccountCreated, aid)

    def _asset(self, asset: Any) -> str:
        if type(asset) is not str or not asset or not asset.isalnum() or len(asset) > 12:
            raise Rejected(Code.INVALID_PARAMETER, "asset must be a short alphanumeric name.")
        return asset

    def _deposit(self, cmd: C.Deposit) -> None:
        acct = self._account(cmd.account)
        asset = self._asset(cmd.asset)
        amount = self._int(cmd.amount, "amount")
        self._credit(acct, asset, amount)
        self.deposited[asset] = self.deposited.get(asset, 0) + amount
        self._emit(E.FundsDeposited, acct.id, asset, amount)
        self._flush_balances()

    def _withdraw(self, cmd: C.Withdraw) -> None:
        acct = self._account(cmd.account)
        asset = self._asset(cmd.asset)
        amount = self._int(cmd.amount, "amount")
        if amount > acct.available.get(asset, 0):
            raise Rejected(Code.BALANCE_INSUFFICIENT)
        self._credit(acct, asset, -amount)
        self.withdrawn[asset] = self.withdrawn.get(asset, 0) + amount
        self._emit(E.FundsWithdrawn, acct.id, asset, amount)
        self._flush_balances()

    def _flush_balances(self) -> None:
        bt = self._balances_touched
        self._balances_touched = {}
        for account, asset in bt:
            acct = self.accounts[account]
            self._emit(
                E.BalanceChanged,
                account,
                asset,
                acct.available.get(asset, 0),
                acct.reserved.get(asset, 0),
            )

    def _set_leverage(self, cmd: C.SetLeverage) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        inst = m.inst
        lev = self._int(cmd.leverage, "leverage", 1, inst.max_leverage, Code.INVALID_LEVERAGE)
        seat = acct.seats.get(inst.symbol)
        if seat is not None and seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        if self.limits:
            S.check_leverage(self, acct.id, lev)
        top_up = 0
        if seat is not None:
            price = m.mark or (
                abs(seat.cost) // (abs(seat.qty) * inst.lot_value) if seat.qty else 0
            )
            exposure = (abs(seat.qty) + max(seat.pending)) * price * inst.lot_value
            if inst.bracket_for(exposure).max_leverage < lev:
                raise Rejected(Code.LEVERAGE_EXCEEDS_BRACKET)
            if seat.qty:
                need = ceil_div(abs(seat.qty) * price * inst.lot_value, lev)
                top_up = max(0, need - seat.margin)
            # open orders reserved at the old leverage: lowering it needs more for them too
            extra = {
                o.oid: more
                for o in seat.orders.values()
                if (more := self._order_reservation(m, seat, o, lev) - o.reserved) > 0
            }
            if top_up + sum(extra.values()) > acct.available.get(inst.quote_asset, 0):
                raise Rejected(
                    Code.MARGIN_INSUFFICIENT,
                    "Lowering leverage needs more margin for the position and its orders.",
                )
        # ---- accepted
        if seat is None:
            seat = self._seat(acct, m)
        else:
            quote = inst.quote_asset
            for oid, more in extra.items():
                seat.orders[oid].reserved += more
                acct.available[quote] -= more
                acct.reserved[quote] = acct.reserved.get(quote, 0) + more
                self._touch_balance(acct.id, quote)
        seat.leverage = lev
        if top_up:
            acct.available[inst.quote_asset] -= top_up
            seat.margin += top_up
            self._touch_balance(acct.id, inst.quote_asset)
            self._touch(seat)
        self._emit(E.LeverageChanged, acct.id, inst.symbol, lev)
        self._react(m)

    def _adjust_margin(self, cmd: C.AdjustIsolatedMargin) -> None:
        m = self._market(cmd.symbol)
        acct = self._account(cmd.account)
        inst = m.inst
        amount = cmd.amount
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT:
            raise Rejected(Code.INVALID_PARAMETER, "amount must be a non-zero integer.")
        seat = acct.seats.get(inst.symbol)
        if seat is None or seat.qty == 0:
            raise Rejected(Code.INVALID_PARAMETER, "No open position to adjust.")
        if seat.liquidating:
            raise Rejected(Code.USER_IN_LIQUIDATION)
        quote = inst.quote_asset
        if amount > 0:
            if amount > acct.available.get(quote, 0):
                raise Rejected(Code.MARGIN_INSUFFICIENT)
        else:
            price = m.mark or abs(seat.cost) // (abs(seat.qty) * inst.lot_value)
            upnl = seat.qty * price * inst.lot_value - seat.cost
            im = ceil_div(abs(seat.qty) * price * inst.lot_value, seat.leverage)
            removable = seat.margin + min(0, upnl) - im
            if -amount > removable:
                raise Rejected(
                    Code.MARGIN_CANNOT_BE_REMOVED, f"At most {max(0, removable)} can be removed."
                )
        acct.available[quote] -= amount
        seat.margin += amount
        self._touch_balance(acct.id, quote)
        self._touch(seat)
        self._emit(E.IsolatedMarginChanged, acct.id, inst.symbol, amount, seat.margin)
        self._react(m)

    # ------------------------------------------------------------------ admin and clock

    def _advance_clock(self, cmd: C.AdvanceClock) -> None:
        self._emit(E.ClockAdvanced)

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

    # ------------------------------------------------------------------ funding

    def _settle_funding_due(self) -> bool:
        """Settle each funding time passed, in order; a market without positions (or a
        jump of over 10,000 intervals) skips straight to the next funding time.
        Returns whether any funding was settled."""
        settled = False
        for m in self.markets.values():
            if m.next_funding_ts > self.now:
                continue
            iv = m.inst.funding_interval_ns
            if not (m.sides[0] or m.sides[1]) or (self.now - m.next_funding_ts) // iv > 10_000:
                m.next_funding_ts = (self.now // iv + 1) * iv
                m.premium_sum = m.premium_n = 0
                m.funding_override = None
                continue
            while m.next_funding_ts <= self.now:
                settled = True
                self._settle_funding(m, m.next_funding_ts)
                m.next_funding_ts += m.inst.funding_interval_ns
                m.premium_sum = m.premium_n = 0
                m.funding_rate = m.inst.interest_rate
                m.funding_override = None
                self._react(m)
        return settled

    def _settle_funding(self, m: Market, at: int) -> None:
        """Pay funding between longs and shorts, zero-sum to the quantum.

        Payers pay ceil(notional × |rate|), capped at their margin (the fund pays from
        its balance); receivers share exactly what was paid, pro rata to notional,
        rounded down, the remainder handed out a quantum each by largest remainder,
        then account id. O(P log P) for P positions.
        """
        rate = m.funding_rate
        if rate == 0 or m.mark <= 0:
            self._emit(
                E.FundingSettled, m.inst.symbol, rate, at, 0, at + m.inst.funding_interval_ns
            )
            return
        lv = m.inst.lot_value
        quote = m.inst.quote_asset
        payers_long = rate > 0
        payers: list[tuple[int, Seat]] = []
        receivers: list[tuple[int, Seat]] = []
        for acct_id in sorted(m.seats):
            seat = m.seats[acct_id]
            if seat.qty == 0:
                continue
            notional = abs(seat.qty) * m.mark * lv
            (payers if (seat.qty > 0) == payers_long else receivers).append((notional, seat))
        total = 0
        for notional, seat in payers:
            due = ceil_div(notional * abs(rate), RATE_ONE)
            if seat.account == FUND:
                fund = self.accounts[FUND]
                pay = min(due, max(0, fund.available.get(quote, 0)))
                fund.available[quote] = fund.available.get(quote, 0) - pay
                self._touch_balance(FUND, quote)
            else:
                pay = min(due, seat.margin)
                seat.margin -= pay
            total += pay
            self._touch(seat)
            self._emit(E.FundingPaid, seat.account, m.inst.symbol, rate, -pay, seat.qty, m.mark)
        weight = sum(n for n, _ in receivers)
        shares: list[tuple[int, int, Seat]] = []
        given = 0
        for notional, seat in receivers:
            share, rem = divmod(total * notional, weight) if weight else (0, 0)
            shares.append((share, rem, seat))
            given += share
        bonus = {
            r[2].account
            for r in sorted(shares, key=lambda r: (-r[1], r[2].account))[: total - given]
        }
        for share, _, seat in shares:
            share += seat.account in bonus
            if seat.account == FUND:
                fund = self.accounts[FUND]
                fund.available[quote] = fund.available.get(quote, 0) + share
                self._touch_balance(FUND, quote)
            else:
                seat.margin += share
            self._touch(seat)
            self._emit(E.FundingPaid, seat.account, m.inst.symbol, rate, share, seat.qty, m.mark)
        self._emit(
            E.FundingSettled, m.inst.symbol, rate, at, total, at + m.inst.funding_interval_ns
        )

    # ------------------------------------------------------------------ queries

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

    def insurance_fund(self, asset: str = "USDT") -> int:
        return self.accounts[FUND].available.get(asset, 0)

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

    # ------------------------------------------------------------------ integrity

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
                        tuple(m.basis),
                        m.funding_rate,
                        m.funding_override,
                        m.book.seq,
                        tuple(m.queued),
                    )
                ).encode()
            )
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

    def _check(self) -> None:
        """Assert every invariant of the whole exchange (books, orders, money, monitor)."""
        for sym, m in self.markets.items():
            m.book._check()
            m.monitor._check()
            resting = {o.oid for side in m.book.l3() for o in side}
            open_book = {
                o.oid
                for o in self.orders.values()
                if o.symbol == sym and o.status in (NEW, PARTIALLY_FILLED)
            }
            assert resting == open_book, f"{sym}: id index and book disagree"
            stops = {oid for lst in m.stops.values() for _, oid in lst}
            untriggered = {
                o.oid for o in self.orders.values() if o.symbol == sym and o.status == UNTRIGGERED
            }
            assert stops == untriggered, f"{sym}: conditional orders disagree"
            net = 0
            for a in self.accounts.values():
                s = a.seats.get(sym)
                if s is None:
                    continue
                net += s.qty
                assert s.margin >= 0, f"negative margin {a.id}"
                assert (s.qty == 0) == (s.cost == 0) or a.id == FUND or s.liquidating, (
                    f"cost without position {a.id}"
                )
                opens = [
                    o
                    for o in self.orders.values()
                    if o.account == a.id
                    and o.symbol == sym
                    and o.status in (NEW, PARTIALLY_FILLED, UNTRIGGERED)
                ]
                assert sorted(s.orders) == sorted(o.oid for o in opens), (
                    f"open orders off for {a.id}"
                )
                for oid, o in s.orders.items():
                    assert self.orders[oid] is o, f"seat {a.id} holds a stale copy of order {oid}"
                for side in (BUY, SELL):
                    assert s.pending[side] == sum(o.remaining for o in opens if o.side == side), (
                        f"pending off for {a.id}"
                    )
                if a.id != FUND and s.qty and not s.liquidating and m.mark > 0:
                    want = liquidation_tick(m.inst, s.qty, s.cost, s.margin)
                    assert s.liq == want, f"stale liquidation price for {a.id}"
                    key = m.monitor.keys.get(a.id)
                    if s.liq > 0:
                        assert key is not None and key[1] == s.liq, f"monitor misses {a.id}"
            assert net == 0, f"{sym}: positions do not net to zero ({net})"
            for side, book in enumerate(m.sides):
                for acct_id, s in book.items():
                    assert s is self.accounts[acct_id].seats[sym], "side index holds a stale seat"
                    assert (s.qty > 0) if side == 0 else (s.qty < 0), "side index off"
        for o in self.orders.values():
            assert 0 <= o.remaining <= o.qty, f"order {o.oid} quantity out of range"
            assert o.reserved >= 0
            if o.status >= FILLED and o.status != UNTRIGGERED:
                assert o.reserved == 0, f"closed order {o.oid} still reserves"
        for a in self.accounts.values():
            for asset, r in a.reserved.items():
                held = sum(
                    o.reserved
                    for o in self.orders.values()
                    if o.account == a.id and self.instruments[o.symbol].quote_asset == asset
                )
                assert r == held, f"reservation total off for {a.id}"
            for asset, v in a.available.items():
                assert v >= 0, f"negative balance {a.id} {asset}"
        for asset in set(self.deposited) | set(self.fees_collected):
            held, net_in = self.conservation(asset)
            assert held == net_in, f"money not conserved in {asset}: {held} != {net_in}"
