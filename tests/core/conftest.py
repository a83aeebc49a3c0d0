"""Shared builders for the core's unit tests.

Units as in the core: prices in ticks (BTCUSDT tick 0.10, so 50,000.0 USDT = 500_000),
quantities in lots (0.001 BTC), money in 1e-8 USDT. One BTCUSDT lot at one tick is worth
`LOT_VALUE` = 10_000 quanta, so one lot at `MID` is 50 USDT = 5_000_000_000 quanta.

`run` handles one command and then asserts every invariant of the exchange with
`_check()` (money conservation included), so every scenario is checked after every step.
The instrument is the shipped BTCUSDT with `mark_method="index"` unless a test says
otherwise: the mark then equals the index, and a test moves it with `set_index`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange, Instrument
from exchange.core import commands as C
from exchange.core import events as E

SYM = "BTCUSDT"
MID = 500_000  # 50,000.0 USDT
LOT_VALUE = 10_000  # quanta per tick·lot
USDT = 10**8  # quanta per USDT
FUNDS = 1_000_000 * USDT
MAKER_FEE = 20_000  # 0.02 % in 1e-8
TAKER_FEE = 50_000  # 0.05 %
BAND_HI = MID * 105 // 100  # 525_000: the band edges around a mark of MID
BAND_LO = MID * 95 // 100  # 475_000

Ev = TypeVar("Ev", bound=E.Event)


def btcusdt(**changes: Any) -> Instrument:
    """The shipped BTCUSDT, marked by its index, with any field overridden."""
    inst = next(i for i in load_instruments() if i.symbol == SYM)
    return replace(inst, **{"mark_method": "index", **changes})


def make_exchange(
    accounts: tuple[int, ...] = (1, 2, 3),
    funds: int = FUNDS,
    index: int | None = MID,
    engine: dict[str, Any] | None = None,
    **changes: Any,
) -> Exchange:
    """An exchange with BTCUSDT (fields overridden by `changes`), funded accounts and
    (unless None) an index price; `engine` goes to the `Exchange` constructor."""
    ex = Exchange([btcusdt(**changes)], **(engine or {}))
    for a in accounts:
        run(ex, C.CreateAccount(account=a))
        run(ex, C.Deposit(account=a, asset="USDT", amount=funds))
    if index is not None:
        set_index(ex, index)
    return ex


@pytest.fixture
def ex() -> Iterator[Exchange]:
    exchange = make_exchange()
    yield exchange
    exchange._check()


# ---------------------------------------------------------------- commands


def run(ex: Exchange, cmd: C.Command) -> list[E.Event]:
    """Handle one command, then assert every invariant of the exchange."""
    events = ex.handle(cmd)
    ex._check()
    return events


def place(
    ex: Exchange, account: int, side: str, qty: int, price: int = 0, **kw: Any
) -> list[E.Event]:
    return run(ex, C.PlaceOrder(account=account, symbol=SYM, side=side, qty=qty, price=price, **kw))


def limit(ex: Exchange, account: int, side: str, qty: int, price: int, **kw: Any) -> int:
    """Place an order that must be accepted; return its order id."""
    return accepted(place(ex, account, side, qty, price, **kw)).order_id


def market(ex: Exchange, account: int, side: str, qty: int, **kw: Any) -> list[E.Event]:
    return place(ex, account, side, qty, type="MARKET", **kw)


def cancel(ex: Exchange, account: int, **kw: Any) -> list[E.Event]:
    return run(ex, C.CancelOrder(account=account, symbol=SYM, **kw))


def amend(ex: Exchange, account: int, order_id: int, **kw: Any) -> list[E.Event]:
    return run(ex, C.AmendOrder(account=account, symbol=SYM, order_id=order_id, **kw))


def set_index(ex: Exchange, price: int) -> list[E.Event]:
    return run(ex, C.SetIndexPrice(symbol=SYM, price=price))


def open_position(ex: Exchange, account: int, lots: int, price: int = MID, other: int = 3) -> None:
    """Give `account` a position of `lots` (+ long, − short) by trading with `other`."""
    side, opposite = ("BUY", "SELL") if lots > 0 else ("SELL", "BUY")
    limit(ex, other, opposite, abs(lots), price)
    filled = fills(place(ex, account, side, abs(lots), price, time_in_force="IOC"))
    assert sum(f.qty for f in filled) == abs(lots)


# ---------------------------------------------------------------- events


def of(events: list[E.Event], cls: type[Ev]) -> list[Ev]:
    return [e for e in events if type(e) is cls]


def one(events: list[E.Event], cls: type[Ev]) -> Ev:
    found = of(events, cls)
    assert len(found) == 1, f"expected one {cls.__name__}, got {events}"
    return found[0]


def accepted(events: list[E.Event]) -> E.OrderAccepted:
    return one(events, E.OrderAccepted)


def fills(events: list[E.Event]) -> list[E.OrderFilled]:
    return of(events, E.OrderFilled)


def rejected(ex: Exchange, cmd: C.Command, code: int) -> E.Event:
    """Handle a command that must be rejected with `code`: exactly one rejection event,
    and the state hash unchanged. Returns that event."""
    before = ex.state_hash()
    events = run(ex, cmd)
    assert len(events) == 1, events
    (event,) = events
    assert isinstance(event, (E.OrderRejected, E.CommandRejected)), event
    assert event.code == code, event
    assert ex.state_hash() == before
    return event


# ---------------------------------------------------------------- state


def position(ex: Exchange, account: int) -> int:
    seat = ex.accounts[account].seats.get(SYM)
    return seat.qty if seat is not None else 0


def available(ex: Exchange, account: int) -> int:
    return ex.accounts[account].available.get("USDT", 0)


def queue(ex: Exchange) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """L3 as (price, order id, remaining), bids and asks best first, in queue order."""
    bids, asks = ex.l3(SYM)
    return (
        [(o.price, o.order_id, o.remaining) for o in bids],
        [(o.price, o.order_id, o.remaining) for o in asks],
    )
