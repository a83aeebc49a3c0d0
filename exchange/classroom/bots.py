"""The game file's bots: each on its own account, which survives a restart.

Each bot has a name, ``"<n>.<i>"`` (the i-th of the n-th ``[[bots]]`` table), and its
account is journaled in the game journal the first time the game starts:

1. ``{"kind": "bot", "bot": name, "account": id}`` is committed, then the account is
   created (`CreateAccount`) and funded once (`Deposit`);
2. ``{"kind": "bot_funded", "bot": name}`` is committed after the deposit (the store
   commits records and commands in the order they were made, so this record implies
   the deposit), and only then does the bot start trading.

On a restart with the same database the bots come back on the accounts of their
``bot`` records, positions and orders as they were, and are never funded again. A crash
between the two records is finished idempotently: the bot has not traded yet, so its
account is either untouched (no balance, nothing reserved, no seat: deposit now) or
holds exactly the deposit. A bot logs on with a new API key for its account, issued by
the server's key store and saved before it is used (keys are stored hashed, so an old
one cannot be handed out again).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from exchange.core import commands as C

#: What each kind of bot is funded with, once (USDT quanta of 10⁻⁸).
DEPOSIT = {"market_maker": 5_000_000 * 10**8, "noise": 200_000 * 10**8}
FIRST_BOT_ACCOUNT = 900_000  # clear of the roster's account range


def bot_accounts(records: list[dict[str, Any]]) -> dict[str, tuple[int, bool]]:
    """name → (account, funded), from the game journal's records."""
    out: dict[str, tuple[int, bool]] = {}
    for r in records:
        if r["kind"] == "bot":
            out[r["bot"]] = (int(r["account"]), False)
        elif r["kind"] == "bot_funded" and r["bot"] in out:
            out[r["bot"]] = (out[r["bot"]][0], True)
    return out


async def ensure_bot_accounts(cs: Any) -> list[tuple[int, Any, int]]:
    """Every bot of the game file with its account, created and funded exactly once
    (see the module docstring): a list of (index of its [[bots]] table, spec, account)."""
    known = bot_accounts(cs.journal.load())
    api, runtime = cs.server.api, cs.runtime
    ex = runtime.exchange
    out = []
    for n, spec in enumerate(cs.game.bots):
        for i in range(spec.count):
            name = f"{n}.{i}"
            account, funded = known.get(name, (0, False))
            if not account:
                account = max(api.next_account, FIRST_BOT_ACCOUNT, max(ex.accounts, default=0) + 1)
                api.next_account = account + 1
                await cs.journal.append([{"kind": "bot", "bot": name, "account": account,
                                          "type": spec.kind, "symbol": spec.symbol}])  # fmt: skip
            if not funded:
                if account not in ex.accounts:
                    await runtime.submit(C.CreateAccount(account=account), owned=True)
                a = ex.accounts[account]
                if not a.seats and not any(a.available.values()) and not any(a.reserved.values()):
                    await runtime.submit(
                        C.Deposit(account=account, asset="USDT", amount=DEPOSIT[spec.kind]),
                        owned=True,
                    )
                await cs.journal.append([{"kind": "bot_funded", "bot": name}])
            api.next_account = max(api.next_account, account + 1)
            out.append((n, spec, account))
    return out


async def start_bots(cs: Any, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Run the game file's bots over the WebSocket API, each on its own journaled
    account (new on the game's first start, the same after a restart)."""
    from clients import Client
    from clients.bots import MarketMaker, NoiseTrader

    tasks = []
    rngs: dict[int, random.Random] = {}  # one per [[bots]] table, as the seeds say
    for n, spec, account in await ensure_bot_accounts(cs):
        rng = rngs.setdefault(n, random.Random(spec.seed))
        key, secret = await cs.server.api.keys.issue_saved(account)
        c = await Client(cs.ws_url, api_key=key, secret=secret).connect()
        if spec.kind == "market_maker":
            bot: Any = MarketMaker(
                c, spec.symbol, size=spec.size, refresh=0.5, seed=rng.randrange(2**32)
            )
        else:
            bot = NoiseTrader(
                c, spec.symbol, size=spec.size, max_position=spec.size * 15, mean_interval=1.0,
                seed=rng.randrange(2**32),
            )  # fmt: skip
        tasks.append(asyncio.create_task(bot.run(stop)))
    return tasks
