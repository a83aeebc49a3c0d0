"""The leaderboard against hand-computed values."""

from __future__ import annotations

from fractions import Fraction

from exchange.classroom.leaderboard import Tracker, equity_of, game_standings, standings
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


def _row(account: int, equity: int, dd: str = "0.00", liq: int = 0, fees: int = 0):  # type: ignore[no-untyped-def]
    return {"account": account, "equity": equity, "maxDrawdownPct": dd, "liquidations": liq,
            "adlHits": 0, "fees": fees, "volume": 0}  # fmt: skip


def test_game_standings_add_up_every_rounds_profit() -> None:
    """The whole game: each round's profit (end − start) summed over the rounds played,
    over the starting balance; the deepest drawdown; counts summed. A last round ended
    at once (every return 0) does not wipe out the first one."""
    S = 10_000 * USDT
    results = {
        0: [_row(A, 10_500 * USDT, "2.00", fees=5), _row(B, 9_000 * USDT, "12.50", liq=1)],
        1: [_row(A, S), _row(B, S), _row(3, 10_200 * USDT, "1.00")],  # 3 joined in round 2
    }
    starts = {0: {A: S, B: S}, 1: {A: S, B: S}}
    rows = game_standings(results, starts, S, "return", {A: "ada", B: "bob", 3: "cy"}.__getitem__)
    assert [(r["name"], r["equity"], r["returnPct"], r["maxDrawdownPct"]) for r in rows] == [
        ("ada", 10_500 * USDT, "5.00", "2.00"),
        ("cy", 10_200 * USDT, "2.00", "1.00"),
        ("bob", 9_000 * USDT, "-10.00", "12.50"),
    ]
    assert (rows[0]["fees"], rows[2]["liquidations"]) == (5, 1)
    # positions kept between rounds: round 2 starts from round 1's end, so the sum of
    # the profits is the equity at the end of the game
    carried = {0: [_row(A, 11_000 * USDT)], 1: [_row(A, 10_400 * USDT)]}
    rows = game_standings(carried, {0: {A: S}, 1: {A: 11_000 * USDT}}, S, "equity", str)
    assert (rows[0]["equity"], rows[0]["returnPct"], rows[0]["score"]) == (
        10_400 * USDT, "4.00", "10400.00",
    )  # fmt: skip
    # return over drawdown: 5 / 2 beats 2 / max(1, 1)
    rod = game_standings(results, starts, S, "return_over_drawdown", str)
    assert [(r["account"], r["score"]) for r in rod][:2] == [(A, "2.50"), (3, "2.00")]
