"""`python -m bench monitor --json`: one mark update that liquidates nothing, with
10,000 / 100,000 / 1,000,000 open positions, against a full scan of the same positions.

Positions are installed directly into the engine's state (a long and a short per
pair of accounts, so they net to zero) instead of being traded in, which would take
minutes at a million; the update itself goes through `Exchange.handle(SetIndexPrice)`:
mark recomputation, the MarkPriceChanged event, the monitor query. The scan baseline
evaluates the exact liquidation predicate for every position at the same mark.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace
from typing import Any

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core.engine import Account, Seat
from exchange.core.margin import bankruptcy_tick, is_liquidatable, liquidation_tick

SYMBOL = "BTCUSDT"
MARK = 300_000  # 30,000.0 USDT


def exchange_with_positions(n: int, seed: int = 1) -> Exchange:
    btc = next(i for i in load_instruments() if i.symbol == SYMBOL)
    inst = replace(btc, mark_method="index")
    ex = Exchange([inst])
    ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=MARK))
    m = ex.markets[SYMBOL]
    rng = random.Random(seed)
    lv = inst.lot_value
    for i in range(n):
        aid = i + 1
        acct = ex.accounts[aid] = Account(aid)
        lev = rng.choice((2, 3, 5, 10, 20, 25, 50))
        qty = rng.randint(1, 50) * (1 if i % 2 == 0 else -1)
        entry = MARK + rng.randint(-3000, 3000)
        seat = Seat(aid, SYMBOL, lev)
        seat.qty = qty
        seat.cost = qty * entry * lv
        seat.margin = -(-abs(seat.cost) // lev)
        seat.liq = liquidation_tick(inst, seat.qty, seat.cost, seat.margin)
        seat.bk = bankruptcy_tick(inst, seat.qty, seat.cost, seat.margin)
        acct.seats[SYMBOL] = seat
        m.seats[aid] = seat
        m.monitor.update(aid, seat.qty, seat.liq)
    return ex


def safe_marks(ex: Exchange) -> tuple[int, int]:
    """A mark range that crosses no liquidation tick."""
    mon = ex.markets[SYMBOL].monitor
    hi_long = mon.longs[-1][0] if mon.longs else 0
    lo_short = mon.shorts[0][0] if mon.shorts else 1 << 62
    return hi_long + 1, lo_short - 1


def measure(n: int, updates: int) -> dict[str, Any]:
    ex = exchange_with_positions(n)
    lo, hi = safe_marks(ex)
    assert lo < MARK < hi, "the synthetic book must leave room around the mark"
    marks = [MARK + (1 if i % 2 else -1) for i in range(updates)]
    t = time.perf_counter()
    for p in marks:
        events = ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=p))
    per_update = (time.perf_counter() - t) / updates
    assert not any(type(e).__name__ == "PositionLiquidated" for e in events)
    m = ex.markets[SYMBOL]
    inst = m.inst
    seats = list(m.seats.values())
    scans = max(1, min(5, 2_000_000 // max(n, 1)))
    t = time.perf_counter()
    for _ in range(scans):
        due = [s for s in seats if is_liquidatable(inst, s.qty, s.cost, s.margin, MARK)]
    per_scan = (time.perf_counter() - t) / scans
    assert not due
    return {
        "positions": n,
        "us_per_update": round(per_update * 1e6, 2),
        "scan_us_per_update": round(per_scan * 1e6, 1),
        "speedup": round(per_scan / per_update),
    }


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    sizes = getattr(args, "sizes", None) or [10_000, 100_000, 1_000_000]
    return {"bench": "monitor", "sizes": [measure(n, 20_000) for n in sizes]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
