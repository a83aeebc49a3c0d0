"""`python -m bench policies --json`: bench cascade's 100,000 leveraged positions and
one 30 % index shock, once under each liquidation policy (`binance`, `bitmex`,
`hyperliquid`, `dydx`, imposed with `Exchange.policy`), each on a fresh copy of the
same state; per policy the liquidations, generations, seconds and events of that one
command, and its time relative to the Binance policy's in the same run
(`ratio_vs_binance`; the aim is each within 2×).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from bench.cascade import START, SYMBOL, build
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.liquidation import POLICIES, make_policy


def _one(name: str, n: int, method: str, check: bool) -> dict[str, Any]:
    ex = build(n, method)
    ex.policy = make_policy(name)
    gc.collect()
    t = time.perf_counter()
    events = ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=START * 70 // 100))
    seconds = time.perf_counter() - t
    if check:
        ex._check()
    liqs = [e for e in events if isinstance(e, E.PositionLiquidated)]
    ends = [e for e in events if isinstance(e, E.CascadeEnded)]
    fund = ex.accounts[0].seats.get(SYMBOL)
    return {
        "liquidations": len(liqs),
        "liquidated_lots": sum(e.qty for e in liqs),
        "generations": max((c.generations for c in ends), default=0),
        "book_fills": sum(1 for e in events if isinstance(e, E.OrderFilled)),
        "fund_takeover_lots": sum(e.fund_takeover_qty for e in liqs),
        "adl_events": sum(1 for e in events if isinstance(e, E.PositionAutoDeleveraged)),
        "fund_resting_lots": fund.pending[0] + fund.pending[1] if fund is not None else 0,
        "insurance_fund_after": ex.insurance_fund("USDT"),
        "events": len(events),
        "seconds": round(seconds, 3),
        "_seconds": seconds,
    }


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    n = getattr(args, "positions", None) or 100_000
    method = getattr(args, "mark_method", None) or "index"
    names = getattr(args, "policies", None) or list(POLICIES)
    if "binance" not in names:
        names = ["binance", *names]  # the baseline is always measured in the same run
    check = n <= 20_000
    rows = {name: _one(name, n, method, check) for name in names}
    base = rows["binance"]["_seconds"]
    for row in rows.values():
        row["ratio_vs_binance"] = round(row.pop("_seconds") / base, 3)
    return {
        "bench": "policies",
        "positions": n,
        "mark_method": method,
        "shock": "-30 %",
        "policies": rows,
        "max_ratio_vs_binance": max(r["ratio_vs_binance"] for r in rows.values()),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--positions", type=int, default=100_000)
    p.add_argument("--mark-method", default="index", choices=["index", "median", "last", "mid"])
    p.add_argument("--policies", nargs="+", choices=list(POLICIES), default=None)
