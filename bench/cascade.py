"""`python -m bench cascade --json`: 100,000 leveraged positions, a book of makers,
then one 30 % index shock; how long the engine takes to process that one command.

The leveraged longs are installed directly into the engine's state (trading them in
would only lengthen the set-up), against one well-margined maker holding the
opposite short; four makers then quote a ladder of bids the liquidation orders hit.
The shock goes through `Exchange.handle(SetIndexPrice)` like any other command.
It is run `--repeat` times (default 3) on a market built afresh each time; the fastest
run is reported (`seconds`), every run listed (`runs_seconds`) with the load.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace
from typing import Any

from bench import load_1min
from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Account, Seat

SYMBOL = "BTCUSDT"
START = 300_000
USDT = 10**8


def build(n: int, mark_method: str, seed: int = 7, counterparties: int = 1) -> Exchange:
    btc = next(i for i in load_instruments() if i.symbol == SYMBOL)
    inst = replace(btc, mark_method=mark_method, max_open_orders=100_000)
    ex = Exchange([inst])
    makers = (1, 2, 3, 4, 5)
    for mk in makers:
        ex.handle(C.CreateAccount(account=mk))
        ex.handle(C.Deposit(account=mk, asset="USDT", amount=10**10 * USDT))
        ex.handle(C.SetLeverage(account=mk, symbol=SYMBOL, leverage=1))
    ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=START))
    m = ex.markets[SYMBOL]
    lv = inst.lot_value
    rng = random.Random(seed)
    total = 0
    total_cost = 0
    for i in range(n):
        aid = 1000 + i
        acct = ex.accounts[aid] = Account(aid)
        lev = rng.randint(2, 50)
        qty = rng.randint(1, 20)
        entry = START + rng.randint(-1500, 1500)
        seat = Seat(aid, SYMBOL, lev)
        seat.qty, seat.cost = qty, qty * entry * lv
        seat.margin = -(-seat.cost // lev)
        acct.seats[SYMBOL] = seat
        ex.deposited["USDT"] = ex.deposited.get("USDT", 0) + seat.margin
        ex._touch(seat)
        total += qty
        total_cost += seat.cost
    # the opposite short: one maker's, or split over `counterparties` accounts (ADL then
    # ranks that many positions at every liquidation it needs)
    holders = [makers[0]] + [2_000_000 + k for k in range(1, counterparties)]
    for k, aid in enumerate(holders):
        if aid not in ex.accounts:
            ex.accounts[aid] = Account(aid)
        qty = total // len(holders) + (1 if k < total % len(holders) else 0)
        cost = total_cost * qty // total if k else 0
        counter = ex.accounts[aid].seats.setdefault(SYMBOL, Seat(aid, SYMBOL, 1))
        counter.qty, counter.cost = -qty, -cost
        counter.margin = qty * START * lv
        if aid == makers[0]:
            ex.accounts[aid].available["USDT"] -= counter.margin
        else:
            ex.deposited["USDT"] = ex.deposited.get("USDT", 0) + counter.margin
        ex._touch(counter)
    # the first holder takes what is left of the cost, so the shorts' cost nets exactly
    first = ex.accounts[makers[0]].seats[SYMBOL]
    first.cost = -(total_cost - sum(-ex.accounts[a].seats[SYMBOL].cost for a in holders[1:]))
    ex._flush(m)
    # a ladder of bids down to -35 %, 0.1 % apart, thin enough for fills to move prices
    for k in range(1, 351):
        for mk in makers[1:]:
            ex.handle(
                C.PlaceOrder(
                    account=mk, symbol=SYMBOL, side="BUY", qty=40, price=START - START * k // 1000
                )
            )
            ex.handle(
                C.PlaceOrder(
                    account=mk, symbol=SYMBOL, side="SELL", qty=40, price=START + START * k // 1000
                )
            )
    return ex


def crash(n: int, method: str, counterparties: int) -> tuple[float, list[E.Event]]:
    """Build the market afresh, shock it; (seconds the shock took, its events)."""
    ex = build(n, method, counterparties=counterparties)
    if n <= 20_000:
        ex._check()
    t = time.perf_counter()
    events = ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=START * 70 // 100))
    seconds = time.perf_counter() - t
    if n <= 20_000:
        ex._check()
    return seconds, events


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    n = getattr(args, "positions", None) or 100_000
    method = getattr(args, "mark_method", None) or "index"
    counterparties = getattr(args, "counterparties", None) or 1
    repeat = max(1, getattr(args, "repeat", 1) or 1)
    runs: list[float] = []
    for _ in range(repeat):
        seconds, events = crash(n, method, counterparties)  # the same events every run
        runs.append(seconds)
    seconds = min(runs)
    liqs = [e for e in events if isinstance(e, E.PositionLiquidated)]
    ends = [e for e in events if isinstance(e, E.CascadeEnded)]
    return {
        "bench": "cascade",
        "positions": n,
        "mark_method": method,
        "counterparties": counterparties,
        "liquidations": len(liqs),
        "generations": max((c.generations for c in ends), default=0),
        "book_fills": sum(1 for e in events if isinstance(e, E.OrderFilled)),
        "fund_takeovers": sum(1 for e in liqs if e.fund_takeover_qty),
        "adl_events": sum(1 for e in events if isinstance(e, E.PositionAutoDeleveraged)),
        "events": len(events),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(events) / seconds),
        "runs_seconds": [round(t, 3) for t in runs],
        "load_1min": load_1min(),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--positions", type=int, default=100_000)
    p.add_argument("--counterparties", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="crashes, each built afresh")
    p.add_argument("--mark-method", default="index", choices=["index", "median", "last", "mid"])
