"""The game's bots get their accounts once: journaled, created and funded exactly once,
and a crash between the records is finished without funding twice."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from exchange.classroom import parse_game
from exchange.classroom.bots import DEPOSIT, FIRST_BOT_ACCOUNT, bot_accounts, ensure_bot_accounts
from exchange.classroom.journal import MemoryJournal
from exchange.core import commands as C
from exchange.runtime import Runtime
from tests.classroom.helpers import exchange_for

GAME = """
name = "Bots"
starting_balance = "10000"
[[instruments]]
symbol = "BTCUSDT"
[[bots]]
kind = "market_maker"
count = 1
size = "0.05"
[[bots]]
kind = "noise"
count = 2
size = "0.02"
[[rounds]]
duration = "1m"
"""


async def _stack(journal: MemoryJournal) -> Any:
    game = parse_game(GAME)
    rt = Runtime(exchange_for(game), clock="stepped", start_ts=10**18)
    await rt.start()
    return SimpleNamespace(game=game, runtime=rt, journal=journal,
                           server=SimpleNamespace(api=SimpleNamespace(next_account=1)))  # fmt: skip


def _deposits(ex: Any) -> int:
    return int(ex.deposited.get("USDT", 0))


async def test_accounts_are_made_once_and_found_again() -> None:
    journal = MemoryJournal()
    cs = await _stack(journal)
    try:
        first = await ensure_bot_accounts(cs)
        accounts = [a for _, _, a in first]
        assert accounts == [FIRST_BOT_ACCOUNT, FIRST_BOT_ACCOUNT + 1, FIRST_BOT_ACCOUNT + 2]
        assert [s.kind for _, s, _ in first] == ["market_maker", "noise", "noise"]
        ex = cs.runtime.exchange
        total = DEPOSIT["market_maker"] + 2 * DEPOSIT["noise"]
        assert _deposits(ex) == total
        assert bot_accounts(journal.load()) == {
            "0.0": (accounts[0], True), "1.0": (accounts[1], True), "1.1": (accounts[2], True)
        }  # fmt: skip
        # a bot that lost everything is still never funded again
        await cs.runtime.submit(
            C.Withdraw(account=accounts[1], asset="USDT", amount=DEPOSIT["noise"]), owned=True
        )
        n = len(journal.records)
        again = await ensure_bot_accounts(cs)
        assert [a for _, _, a in again] == accounts
        assert len(journal.records) == n and _deposits(ex) == total
        assert cs.server.api.next_account == accounts[-1] + 1
    finally:
        await cs.runtime.stop()


async def test_a_crash_between_the_records_is_finished_without_funding_twice() -> None:
    journal = MemoryJournal()
    cs = await _stack(journal)
    ex = cs.runtime.exchange
    try:
        # bot 0.0: its record, then the crash before the account was created;
        # bot 1.0: created, not funded; bot 1.1: funded, but its bot_funded record was lost
        await journal.append([
            {"kind": "bot", "bot": "0.0", "account": 900_010},
            {"kind": "bot", "bot": "1.0", "account": 900_011},
            {"kind": "bot", "bot": "1.1", "account": 900_012},
        ])  # fmt: skip
        await cs.runtime.submit(C.CreateAccount(account=900_011), owned=True)
        await cs.runtime.submit(C.CreateAccount(account=900_012), owned=True)
        await cs.runtime.submit(
            C.Deposit(account=900_012, asset="USDT", amount=DEPOSIT["noise"]), owned=True
        )
        out = await ensure_bot_accounts(cs)
        assert [a for _, _, a in out] == [900_010, 900_011, 900_012]
        for account, kind in ((900_010, "market_maker"), (900_011, "noise"), (900_012, "noise")):
            assert ex.accounts[account].available["USDT"] == DEPOSIT[kind]
        assert _deposits(ex) == DEPOSIT["market_maker"] + 2 * DEPOSIT["noise"]
        assert all(funded for _, funded in bot_accounts(journal.load()).values())
    finally:
        await cs.runtime.stop()
