"""The leaderboard against hand-computed values."""

from __future__ import annotations

from fractions import Fraction

from exchange.classroom.leaderboard import Tracker, equity_of, standings
from exchange.core import commands as C
from exchange.core.engine import Exchange
from tests.core.conftest import SYM, btcusdt

USDT = 10**8
A, B = 1001, 1002


def setup() -> tuple[Exchange, Tracker, list]:  # type: ignore[type-arg]
    ex = Exchange([btcusdt()])  # fees: maker 0.02 %, taker 0.05 %; mark = index
    for a in (A, B):
        ex.handle(C.CreateAccount(account=a))
        ex.handle(C.Deposit(account=a, asset="USDT", amount=10_000 * USDT))
        ex.handle(C.SetLeverage(account=a, symbol=SYM, leverage=10))
    ex.handle(C.SetIndexPrice(symbol=SYM, price=500_000))  # 50,000.0
    tr = Tracker({SYM: ex.instruments[SYM].lot_value})
    tr.begin_round({A: 10_000 * USDT, B: 10_000 * USDT}, ts=0)
    events = []
    # B sells 1 BTC at 50,000 (maker), A buys it (taker)
    events += ex.handle(C.PlaceOrder(account=B, symbol=SYM, side="SELL", qty=1000, price=500_000))
    events += ex.handle(C.PlaceOrder(account=A, symbol=SYM, side="BUY", qty=1000, type="MARKET"))
    tr.observe(events)
    tr.sample(1, lambda a: equity_of(ex, a))
    ex.handle(C.SetIndexPrice(symbol=SYM, price=510_000))  # +1,000 USDT for the long
    tr.sample(2, lambda a: equity_of(ex, a))
    return ex, tr, events


def test_equity_return_drawdown_fees_volume() -> None:
    ex, tr, _ = setup()
    a, b = tr.stats[A], tr.stats[B]
    # A: 10,000 − 25 taker fee + 1,000 gain; B: 10,000 − 10 maker fee − 1,000 loss
    assert a.equity == 10_975 * USDT and b.equity == 8_990 * USDT
    assert a.return_pct == Fraction(975, 100) and b.return_pct == Fraction(-1010, 100)
    # A dipped to 9,975 after its fee; B fell from 10,000 to 8,990
    assert a.max_drawdown == Fraction(25, 10_000) and b.max_drawdown == Fraction(1010, 10_000)
    assert (a.fees, b.fees) == (25 * USDT, 10 * USDT)
    assert a.volume == b.volume == 50_000 * USDT
    assert (a.liquidations, a.adl_hits) == (0, 0)


def test_ranking_by_each_metric() -> None:
    _, tr, _ = setup()
    names = {A: "alice", B: "bob"}.__getitem__
    rows = standings(tr, "return", names)
    assert [(r["rank"], r["name"], r["returnPct"], r["maxDrawdownPct"]) for r in rows] == [
        (1, "alice", "9.75", "0.25"),
        (2, "bob", "-10.10", "10.10"),
    ]
    # return ÷ max(drawdown, 1 %): alice 9.75 / 1 = 9.75, bob −10.10 / 10.10 = −1
    rod = standings(tr, "return_over_drawdown", names)
    assert [(r["name"], r["score"]) for r in rod] == [("alice", "9.75"), ("bob", "-1.00")]
    eq = standings(tr, "equity", names)
    assert [(r["name"], r["score"]) for r in eq] == [("alice", "10975.00"), ("bob", "8990.00")]


def test_liquidations_and_adl_are_counted_for_the_right_account() -> None:
    ex, tr, _ = setup()
    ex.handle(C.SetLeverage(account=A, symbol=SYM, leverage=10))
    # the long (A, 10x from 50,000) is liquidated below ~45,200; nobody bids, the fund
    # is empty, so the rest is auto-deleveraged against B's short
    events = ex.handle(C.SetIndexPrice(symbol=SYM, price=440_000))
    liquidated = tr.observe(events)
    assert liquidated == [A]
    assert tr.stats[A].liquidations == 1 and tr.stats[B].adl_hits == 1
    assert tr.stats[B].liquidations == 0


def test_ties_break_by_fewer_liquidations_then_name() -> None:
    tr = Tracker({SYM: 1})
    tr.begin_round({1: 100, 2: 100, 3: 100}, ts=0)
    tr.stats[2].liquidations = 1
    rows = standings(tr, "return", {1: "zed", 2: "amy", 3: "bea"}.__getitem__)
    assert [r["name"] for r in rows] == ["bea", "zed", "amy"]
