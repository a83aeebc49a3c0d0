"""A story: 1,000 leveraged longs and a 30 % crash.

Four market makers quote both sides around the index. A thousand traders go long at
leverages from 2x to 50x. Then the index falls 30 % in fifteen steps while the makers
follow it down. The mark is Binance's median: its basis and premium are time-weighted
over 300 s and the median needs two of its three inputs to move, so the liquidation
orders' fills, which drag the last price down within a few seconds of engine time,
cannot drag the mark: every liquidation is one the index move itself made due
(generation 0), and the mark stays inside its band around the index. (Cascades of many
generations, where the fills move a `last` or `mid` mark, are in test_liquidation.)
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import FUND
from exchange.core.margin import is_liquidatable

SYM = "BTCUSDT"
USDT = 10**8
MAKERS = (1, 2, 3, 4)
LONGS = range(100, 1100)
START = 300_000  # 30,000.0 USDT
CRASH_DEPTH = 30  # lots per level per maker while the market falls: a thin book


class Story:
    def __init__(self) -> None:
        btc = next(i for i in load_instruments() if i.symbol == SYM)
        self.ex = Exchange([replace(btc, mark_method="median", max_open_orders=1000)])
        self.ts = 0
        self.events: list[E.Event] = []

    def do(self, cmd: C.Command) -> list[E.Event]:
        self.ts += 1_000_000
        out = self.ex.handle(replace(cmd, ts=self.ts))
        self.events.extend(out)
        return out

    def quote(self, center: int, size: int = 400) -> None:
        for mk in MAKERS:
            self.do(C.CancelAllOrders(account=mk, symbol=SYM))
        for k in range(1, 21):
            step = center * 5 * k // 10_000  # 0.05 % apart
            for mk in MAKERS:
                self.do(
                    C.PlaceOrder(account=mk, symbol=SYM, side="BUY", qty=size, price=center - step)
                )
                self.do(
                    C.PlaceOrder(account=mk, symbol=SYM, side="SELL", qty=size, price=center + step)
                )


@pytest.fixture(scope="module")
def story() -> Story:
    s = Story()
    for mk in MAKERS:
        s.do(C.CreateAccount(account=mk))
        s.do(C.Deposit(account=mk, asset="USDT", amount=10**9 * USDT))
        s.do(C.SetLeverage(account=mk, symbol=SYM, leverage=2))
    s.do(C.SetIndexPrice(symbol=SYM, price=START))
    s.quote(START)
    s.opened = {}  # type: ignore[attr-defined]
    for i, a in enumerate(LONGS):
        s.do(C.CreateAccount(account=a))
        s.do(C.Deposit(account=a, asset="USDT", amount=1_000 * USDT))
        s.do(C.SetLeverage(account=a, symbol=SYM, leverage=2 + i * 48 // (len(LONGS) - 1)))
        s.do(
            C.PlaceOrder(
                account=a,
                symbol=SYM,
                side="BUY",
                qty=1 + i % 20,
                price=START * 1002 // 1000,
                time_in_force="IOC",
            )
        )
        if i % 50 == 49:
            s.quote(s.ex.markets[SYM].index)
    seats = s.ex.markets[SYM].seats
    s.opened = {
        a: (seats[a].qty, seats[a].cost, seats[a].margin)
        for a in LONGS
        if a in seats and seats[a].qty > 0
    }  # type: ignore[attr-defined]
    s.fund_before = s.ex.insurance_fund()  # type: ignore[attr-defined]
    s.crash_start = len(s.events)  # type: ignore[attr-defined]
    for k in range(1, 16):
        idx = START - START * 2 * k // 100
        s.do(C.SetIndexPrice(symbol=SYM, price=idx))
        s.quote(idx, size=CRASH_DEPTH)
    return s


def crash_events(s: Story, cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in s.events[s.crash_start :] if isinstance(e, cls)]  # type: ignore[attr-defined]


def test_every_long_opened_with_its_leverage(story: Story) -> None:
    assert len(story.opened) == 1000  # type: ignore[attr-defined]
    levs = {story.ex.accounts[a].seats[SYM].leverage for a in LONGS}
    assert min(levs) == 2 and max(levs) == 50


def test_the_crash_liquidates_exactly_who_a_brute_force_says(story: Story) -> None:
    inst = story.ex.instruments[SYM]
    marks = [e.mark for e in crash_events(story, E.MarkPriceChanged)]
    lowest = min(marks)
    expected = {
        a
        for a, (qty, cost, margin) in story.opened.items()  # type: ignore[attr-defined]
        if is_liquidatable(inst, qty, cost, margin, lowest)
    }
    liquidated = {e.account for e in crash_events(story, E.PositionLiquidated)}
    assert liquidated == expected
    assert 100 < len(liquidated) < 1000  # the 2x longs survive a 30 % fall, the 50x ones don't
    for a in LONGS:
        seat = story.ex.accounts[a].seats[SYM]
        assert (seat.qty == 0) == (a in liquidated)


def test_each_liquidation_happens_at_the_first_mark_that_crosses_it(story: Story) -> None:
    inst = story.ex.instruments[SYM]
    for e in crash_events(story, E.PositionLiquidated):
        qty, cost, margin = story.opened[e.account]  # type: ignore[attr-defined]
        assert is_liquidatable(inst, qty, cost, margin, e.trigger_mark)
        assert e.trigger_mark <= e.liquidation_price


def test_the_book_cannot_feed_the_crash_back_into_the_median_mark(story: Story) -> None:
    ends = crash_events(story, E.CascadeEnded)
    assert ends and max(c.generations for c in ends) == 1
    liqs = crash_events(story, E.PositionLiquidated)
    for e in liqs:
        assert e.generation == 0 and e.parent_id is None
    band = story.ex.instruments[SYM].mark_band
    for e in crash_events(story, E.MarkPriceChanged):
        assert abs(e.mark - e.index) * 10**8 <= e.index * band  # inside the band
    per_cascade = {}
    for e in liqs:
        per_cascade[e.cascade_id] = per_cascade.get(e.cascade_id, 0) + 1
    assert {c.cascade_id: c.liquidations for c in ends} == per_cascade
    assert all(not c.truncated for c in ends)


def test_the_insurance_fund_gains_what_liquidations_left(story: Story) -> None:
    ends = crash_events(story, E.CascadeEnded)
    fund_after = story.ex.insurance_fund()
    assert fund_after - story.fund_before == sum(
        c.insurance_after - c.insurance_before for c in ends
    )  # type: ignore[attr-defined]
    liqs = crash_events(story, E.PositionLiquidated)
    if not any(e.adl_qty or e.fund_takeover_qty for e in liqs):
        assert fund_after - story.fund_before == sum(e.insurance_delta for e in liqs)  # type: ignore[attr-defined]
    assert fund_after > story.fund_before  # type: ignore[attr-defined]


def test_money_is_conserved_and_nobody_is_negative(story: Story) -> None:
    story.ex._check()
    held, net_in = story.ex.conservation("USDT")
    assert held == net_in
    for a, acct in story.ex.accounts.items():
        if a != FUND:
            assert acct.available.get("USDT", 0) >= 0


def test_each_book_filled_liquidation_gives_the_fund_what_its_fills_left(story: Story) -> None:
    """Recomputed from the position as it was opened and the fills alone: closing a long at
    bankruptcy leaves nothing, so what the fund gets is margin + proceeds − cost (the
    liquidated side pays no fee)."""
    lot_value = story.ex.instruments[SYM].lot_value
    checked = 0
    for e in crash_events(story, E.PositionLiquidated):
        if e.filled_qty != e.qty:
            continue
        qty, cost, margin = story.opened[e.account]  # type: ignore[attr-defined]
        assert e.qty == qty and sum(q for _, q in e.fills) == qty
        proceeds = sum(p * q * lot_value for p, q in e.fills)
        assert all(p >= e.bankruptcy_price for p, _ in e.fills)  # never beyond bankruptcy
        assert e.insurance_delta == margin + proceeds - cost
        checked += 1
    assert checked > 50  # most of the crash is absorbed by the book
