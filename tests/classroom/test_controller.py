"""The controller on a real runtime: lifecycle, halts, the clock, accounts, shocks."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from exchange.classroom.controller import GameError
from exchange.classroom.leaderboard import equity_of
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.errors import Code
from tests.classroom.helpers import FakeWall, running_game

SYM = "BTCUSDT"
USDT = 10**8


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def order(c, account: int, side: str, qty: int, price: int = 0, **kw):  # type: ignore[no-untyped-def]
    kind = "LIMIT" if price else "MARKET"
    return await c.runtime.submit(
        C.PlaceOrder(account=account, symbol=SYM, side=side, qty=qty, price=price, type=kind, **kw)
    )


async def test_lobby_join_start_pause_resume_and_rounds() -> None:
    wall = FakeWall()
    async with running_game(wall=wall) as c:
        ex = c.runtime.exchange
        assert c.state == "lobby" and len(c.join_code) == 6
        assert ex.markets[SYM].halted and ex.insurance_fund("USDT") == 1000 * USDT
        a, secret = await c.join("Ada")
        b, _ = await c.join("Bob")
        assert equity_of(ex, a.account) == 10_000 * USDT
        assert c.rejoin(secret) is a
        # lobby: trading is closed
        ev = await order(c, a.account, "BUY", 10, 500_000)
        assert ev[-1].code == Code.MARKET_HALTED
        wall.frozen = True  # hold the clock while we trade
        await c.act("start")
        assert c.state == "running" and not ex.markets[SYM].halted
        t0 = ex.now
        await order(c, b.account, "SELL", 100, 500_000)
        fills = [e for e in await order(c, a.account, "BUY", 100) if type(e) is E.OrderFilled]
        assert fills and fills[0].qty == 100
        await c.act("pause")
        assert ex.markets[SYM].halted
        ev = await order(c, a.account, "BUY", 10, 499_000)
        assert ev[-1].code == Code.MARKET_HALTED
        assert "paused" in c.status()["message"]
        wall.frozen = False
        await asyncio.sleep(0.1)
        assert ex.now == t0  # the clock stands still while paused
        await c.act("resume")
        await wait_for(lambda: c.state == "round_over")
        assert ex.now == t0 + 20 * 60 * 10**9  # exactly the round's length in engine time
        assert ex.markets[SYM].halted
        assert [h["text"] for h in c.headlines] == ["Hello class"]
        assert 1 in c.results or 0 in c.results
        # the next round resets positions and wallets
        await c.act("next_round")
        assert c.round == 1 and c.state == "running"
        for s in (a, b):
            view = ex.account_view(s.account)
            assert all(p.qty == 0 for p in view.positions)
            assert equity_of(ex, s.account) == 10_000 * USDT
        await wait_for(lambda: c.state == "round_over")
        await c.act("next_round")  # after the last round: the game is over
        assert c.state == "game_over"
        with pytest.raises(GameError, match="cannot start while the game is game over"):
            await c.act("start")


async def test_instructor_shock_liquidates_and_the_board_counts_it() -> None:
    wall = FakeWall()
    wall.frozen = True
    async with running_game(wall=wall) as c:
        ex = c.runtime.exchange
        a, _ = await c.join("Ada")
        b, _ = await c.join("Bob")
        await c.act("start")
        await c.runtime.submit(C.SetLeverage(account=a.account, symbol=SYM, leverage=50))
        await order(c, b.account, "SELL", 1000, 500_000)
        await order(c, a.account, "BUY", 1000)
        assert ex.account_view(a.account).positions[0].qty == 1000
        # the console's danger table speaks the asset's units, not lots and ticks
        [ada] = [r for r in c.danger_table() if r["name"] == "Ada"]
        [pos] = ada["positions"]
        assert pos["qty"] == "1.000" and pos["mark"] == "50000.00"
        assert 40_000 < float(pos["liquidationPrice"]) < 50_000
        await c.shock(Decimal(-5), 0)  # at once: a 50x long is far past liquidation
        await wait_for(lambda: c.tracker.stats[a.account].liquidations == 1)
        assert ex.markets[SYM].index == 475_000
        liq = [r for r in c.liquidations if r["account"] == a.account]
        assert liq and liq[0]["student"] and liq[0]["trigger_mark"] == 475_000
        board = c.leaderboard()
        assert board[0]["name"] == "Bob" and board[1]["liquidations"] == 1
        danger = c.danger_table()
        assert {r["name"] for r in danger} == {"Ada", "Bob"}
        with pytest.raises(GameError, match="between -90 and 90"):
            await c.shock(Decimal(-95), 0)


async def test_limits_freeze_kick_and_halt() -> None:
    async with running_game() as c:
        ex = c.runtime.exchange
        a, secret = await c.join("Ada")
        c.wall.frozen = True  # type: ignore[attr-defined]
        await c.act("start")
        for i in range(5):
            await order(c, a.account, "BUY", 1, 490_000 - i * 10)
        ev = await order(c, a.account, "BUY", 1, 480_000)
        assert ev[-1].code == Code.MAX_OPEN_ORDERS  # the game's limit of 5
        ev = await c.runtime.submit(C.SetLeverage(account=a.account, symbol=SYM, leverage=51))
        assert type(ev[-1]) is E.CommandRejected
        await c.freeze(a.id, True)
        ev = await order(c, a.account, "SELL", 1, 510_000)
        assert ev[-1].code == Code.ACCOUNT_FROZEN
        await c.freeze(a.id, False)
        assert (
            type((await order(c, a.account, "SELL", 1, 510_000))[0]) is E.OrderRejected
        )  # open orders cap
        await c.hold(SYM, True)
        assert ex.markets[SYM].halted
        await c.act("pause")
        await c.act("resume")
        assert ex.markets[SYM].halted  # the instructor's halt outlives pause and resume
        await c.hold(SYM, False)
        assert not ex.markets[SYM].halted
        await c.kick(a.id)
        with pytest.raises(GameError, match="removed"):
            c.rejoin(secret)
        ev = await order(c, a.account, "SELL", 1, 510_000)
        assert ev[-1].code == Code.ACCOUNT_FROZEN


async def test_teams_and_csv_roster() -> None:
    async with running_game() as c:
        x, _ = await c.join("x", "red")
        y, _ = await c.join("y", "red")
        assert x.account == y.account
        slips, already = await c.import_roster("nickname,team\nAda,\nBob,blue\n")
        assert [s.nickname for s, _ in slips] == ["Ada", "Bob"] and already == []
        ex = c.runtime.exchange
        for s, secret in slips:
            assert equity_of(ex, s.account) == 10_000 * USDT
            assert c.rejoin(secret) is s
        with pytest.raises(GameError):
            await c.join("   ")


async def test_importing_a_roster_twice_makes_each_student_once() -> None:
    async with running_game() as c:
        ex = c.runtime.exchange
        made, _ = await c.import_roster("nickname,team\nBea,\nCy,red\nDee,red\n")
        accounts = set(ex.accounts)
        again, already = await c.import_roster("nickname,team\nBea,\nCy,red\nDee,red\nEd,\n")
        assert [s.nickname for s, _ in again] == ["Ed"]
        assert [s.nickname for s in already] == ["Bea", "Cy", "Dee"]
        assert sorted(s.nickname for s in c.roster.students.values()) == ["Bea", "Cy", "Dee", "Ed"]
        assert set(ex.accounts) - accounts == {again[0][0].account}  # only Ed's account is new
        for s, secret in made:  # the first slips still let their students in
            assert c.rejoin(secret) is s
        none, already = await c.import_roster("Bea\n")
        assert none == [] and [s.nickname for s in already] == ["Bea"]


async def test_game_over_shows_the_whole_games_standings_and_no_countdown() -> None:
    """Round 1 has a winner and a loser; round 2 (positions reset) is ended at once, so
    its own board is all zeros. At game over the standings are over both rounds, the
    countdown is gone, and no symbol can be halted any more (a release still works)."""
    wall = FakeWall()
    wall.frozen = True
    async with running_game(wall=wall) as c:
        a, _ = await c.join("Ada")
        b, _ = await c.join("Bob")
        with pytest.raises(GameError, match="needs a round in play"):
            await c.hold(SYM, True)  # the lobby halts every symbol already
        await c.act("start")
        assert c.status()["secondsLeft"] == 20.0
        await order(c, b.account, "SELL", 100, 500_000)
        await order(c, a.account, "BUY", 100)
        await c.shock(Decimal(5), 0)  # +5 %: Ada's long gains 250, Bob's short loses it
        await c.act("next_round")  # ends round 1 early
        assert c.state == "round_over" and c.status()["secondsLeft"] is None
        with pytest.raises(GameError, match="needs a round in play"):
            await c.hold(SYM, True)
        round1 = {r["name"]: r for r in c.results[0]}
        assert round1["Ada"]["returnPct"] != "0.00"
        await c.act("next_round")
        await c.act("finish")  # round 2 ended at once: nobody traded in it
        assert {r["returnPct"] for r in c.results[1]} == {"0.00"}
        assert c.state == "game_over" and c.status()["secondsLeft"] is None
        final = c.game_standings()
        assert [r["name"] for r in final] == ["Ada", "Bob"]
        for r in final:
            assert (r["equity"], r["returnPct"]) == (
                round1[r["name"]]["equity"],
                round1[r["name"]]["returnPct"],
            )
        assert float(final[0]["returnPct"]) > 2 and float(final[1]["returnPct"]) < -2
        with pytest.raises(GameError, match="needs a round in play"):
            await c.hold(SYM, True)
        await c.hold(SYM, False)  # a release is always accepted
