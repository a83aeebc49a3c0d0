"""Shared builders for the margin, mark, liquidation, funding and monitor tests (issue 3).

Units as in the core: prices in ticks (BTCUSDT tick 0.10, so 50,000 USDT = 500_000),
quantities in lots (0.001 BTC, so 1 BTC = 1_000), money in 1e-8 USDT (`USDT` = 10**8),
rates in 1e-8 (`RATE_ONE`). One BTCUSDT lot at one tick is worth `LV` = 10_000 quanta.

`Sim` drives an `Exchange` one command at a time and, after every command, asserts all
of the core's invariants (`_check()`, money conservation to the quantum included) plus
two of issue 3's: no account (insurance fund included) holds a negative balance, and no
open position that is not queued for liquidation is left at or below its maintenance
margin at the mark.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

from exchange.config import load_instruments
from exchange.core import Exchange, Instrument
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.margin import is_liquidatable
from exchange.core.numbers import RATE_ONE
from exchange.core.views import PositionView

SYM = "BTCUSDT"
USDT = 10**8  # money quanta per USDT
BTC = 1_000  # lots per BTC
LV = 10_000  # BTCUSDT lot value: quanta per tick·lot
HOUR = 3600 * 10**9  # ns
INTERVAL = 8 * HOUR  # BTCUSDT funding interval
FUND = 0
FUNDS = 1_000_000 * USDT

Ev = TypeVar("Ev", bound=E.Event)

__all__ = [
    "BTC",
    "FUND",
    "FUNDS",
    "HOUR",
    "INTERVAL",
    "LV",
    "RATE_ONE",
    "SYM",
    "USDT",
    "Sim",
    "btc",
    "btc_raw",
    "first",
    "of",
    "px",
    "usdt",
]


def btc_raw() -> Instrument:
    """The shipped BTCUSDT, unchanged (mark method `median`, Binance fees)."""
    return next(i for i in load_instruments() if i.symbol == SYM)


def btc(*, fees: bool = False, **changes: Any) -> Instrument:
    """BTCUSDT marked by its index and, unless `fees`, without trading fees (so the
    arithmetic in the tests stays readable); any other field can be overridden."""
    base: dict[str, Any] = {"mark_method": "index"}
    if not fees:
        base.update(maker_fee=0, taker_fee=0)
    base.update(changes)
    return replace(btc_raw(), **base)


def px(usdt_price: str | int) -> int:
    """A BTCUSDT price in USDT (decimal text or int) → ticks, exactly."""
    t = Decimal(str(usdt_price)) * 10
    assert t == t.to_integral_value(), f"{usdt_price} is not a multiple of the tick"
    return int(t)


def usdt(amount: str | int) -> int:
    """USDT (decimal text or int) → money quanta, exactly."""
    q = Decimal(str(amount)) * USDT
    assert q == q.to_integral_value()
    return int(q)


def of(events: list[E.Event], cls: type[Ev]) -> list[Ev]:
    return [e for e in events if type(e) is cls]


def first(events: list[E.Event], cls: type[Ev]) -> Ev:
    found = of(events, cls)
    assert found, f"no {cls.__name__} in {[type(e).__name__ for e in events]}"
    return found[0]


class Sim:
    """An exchange plus a stepping clock; every command is followed by the checks."""

    def __init__(
        self,
        inst: Instrument | None = None,
        *,
        index: int | None = 500_000,
        accounts: dict[int, int] | None = None,
        **ex_kwargs: Any,
    ) -> None:
        self.inst = inst if inst is not None else btc()
        self.ex = Exchange([self.inst], **ex_kwargs)
        self.events: list[E.Event] = []
        for a, amount in (accounts or {}).items():
            self.account(a, amount)
        if index is not None:
            self.index(index)

    # ---- driving

    def do(self, cmd: C.Command) -> list[E.Event]:
        evs = self.ex.handle(cmd)
        self.events.extend(evs)
        self.check()
        return evs

    def ok(self, cmd: C.Command) -> list[E.Event]:
        evs = self.do(cmd)
        bad = [e for e in evs if isinstance(e, (E.OrderRejected, E.CommandRejected))]
        assert not bad, bad
        return evs

    def reject(self, cmd: C.Command) -> int:
        """Run a command that must be rejected: one event, state untouched. Its code."""
        before = self.ex.state_hash()
        evs = self.do(cmd)
        assert len(evs) == 1, evs
        assert isinstance(evs[0], (E.OrderRejected, E.CommandRejected)), evs
        assert self.ex.state_hash() == before
        return evs[0].code

    def check(self) -> None:
        ex = self.ex
        ex._check()
        for a in ex.accounts.values():
            for asset, v in a.available.items():
                assert v >= 0, f"account {a.id} has a negative {asset} balance {v}"
        for m in ex.markets.values():
            for acct_id, seat in m.seats.items():
                if acct_id == FUND or not seat.qty or seat.liquidating or m.mark <= 0:
                    continue
                assert not is_liquidatable(m.inst, seat.qty, seat.cost, seat.margin, m.mark), (
                    f"account {acct_id} left below maintenance at mark {m.mark}"
                )

    # ---- commands

    def account(self, a: int, amount: int = FUNDS) -> None:
        self.ok(C.CreateAccount(account=a))
        if amount:
            self.ok(C.Deposit(account=a, asset="USDT", amount=amount))

    def index(self, price: int, ts: int = 0) -> list[E.Event]:
        return self.ok(C.SetIndexPrice(symbol=self.inst.symbol, price=price, ts=ts))

    def clock(self, ts: int) -> list[E.Event]:
        return self.ok(C.AdvanceClock(ts=ts))

    def order(self, account: int, side: str, qty: int, price: int = 0, **kw: Any) -> C.PlaceOrder:
        return C.PlaceOrder(
            account=account, symbol=self.inst.symbol, side=side, qty=qty, price=price, **kw
        )

    def limit(self, account: int, side: str, qty: int, price: int, **kw: Any) -> list[E.Event]:
        return self.ok(self.order(account, side, qty, price, **kw))

    def market(self, account: int, side: str, qty: int, **kw: Any) -> list[E.Event]:
        return self.ok(self.order(account, side, qty, type="MARKET", **kw))

    def leverage(self, account: int, lev: int) -> list[E.Event]:
        return self.ok(C.SetLeverage(account=account, symbol=self.inst.symbol, leverage=lev))

    def adjust(self, account: int, amount: int) -> list[E.Event]:
        return self.ok(
            C.AdjustIsolatedMargin(account=account, symbol=self.inst.symbol, amount=amount)
        )

    def trade(self, buyer: int, seller: int, qty: int, price: int, taker: str = "BUY") -> None:
        """`qty` lots change hands at `price`: the maker rests, the taker crosses it."""
        maker, tk = (seller, buyer) if taker == "BUY" else (buyer, seller)
        maker_side = "SELL" if taker == "BUY" else "BUY"
        self.limit(maker, maker_side, qty, price)
        evs = self.limit(tk, taker, qty, price)
        fills = of(evs, E.OrderFilled)
        assert sum(f.qty for f in fills) == qty and all(f.price == price for f in fills), fills

    # ---- reading

    @property
    def market_state(self) -> Any:
        return self.ex.markets[self.inst.symbol]

    @property
    def mark(self) -> int:
        return self.ex.market_view(self.inst.symbol).mark

    def seat(self, account: int) -> Any:
        return self.ex.accounts[account].seats[self.inst.symbol]

    def qty(self, account: int) -> int:
        s = self.ex.accounts[account].seats.get(self.inst.symbol)
        return s.qty if s is not None else 0

    def pos(self, account: int) -> PositionView:
        return self.ex.position_view(self.seat(account))

    def avail(self, account: int) -> int:
        return self.ex.accounts[account].available.get(self.inst.quote_asset, 0)

    def reserved(self, account: int) -> int:
        return self.ex.accounts[account].reserved.get(self.inst.quote_asset, 0)

    def fund(self) -> int:
        return self.ex.insurance_fund(self.inst.quote_asset)

    def entry(self, account: int) -> Fraction:
        """Entry price in ticks, exactly."""
        return Fraction(*self.pos(account).entry_price)
