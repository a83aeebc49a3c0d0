"""Deterministic command streams for the core's golden set, and their digests.

Each stream is a function returning `(instruments, engine kwargs, commands)`; running
it through a fresh `Exchange.handle` gives a digest of every event (SHA-256 over each
event's `repr`, one per line), the event count per type and the final `state_hash()`.
`expected.json` beside this file stores them; `tests/core/test_golden.py` compares.

Regenerate after a deliberate change of behaviour (and say why in the commit):

    .venv/bin/python -m tests.core.golden.streams               # every stream
    .venv/bin/python -m tests.core.golden.streams cascade_median funding   # some of them
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from exchange.config import load_instruments
from exchange.core import Exchange, Instrument
from exchange.core import commands as C

EXPECTED = Path(__file__).with_name("expected.json")
SYM = "BTCUSDT"
USDT = 10**8
BTC = 1_000  # lots
MS = 10**6
HOUR = 3600 * 10**9

Stream = tuple[list[Instrument], dict[str, Any], list[C.Command]]


def btc(**changes: Any) -> Instrument:
    inst = next(i for i in load_instruments() if i.symbol == SYM)
    return replace(inst, **changes)


def px(usdt: int) -> int:
    return usdt * 10  # BTCUSDT ticks are 0.10


class Script:
    """Builds a command list with a clock that moves forward a little per command."""

    def __init__(self, step_ns: int = MS) -> None:
        self.cmds: list[C.Command] = []
        self.t = 0
        self.step = step_ns

    def add(self, cmd_type: type[C.Command], **kw: Any) -> None:
        self.t += self.step
        self.cmds.append(cmd_type(ts=self.t, **kw))

    def account(self, a: int, usdt: int, leverage: int | None = None) -> None:
        self.add(C.CreateAccount, account=a)
        self.add(C.Deposit, account=a, asset="USDT", amount=usdt * USDT)
        if leverage is not None:
            self.add(C.SetLeverage, account=a, symbol=SYM, leverage=leverage)

    def order(self, a: int, side: str, qty: int, price: int = 0, **kw: Any) -> None:
        if price == 0 and "type" not in kw:
            kw["type"] = "MARKET"
        self.add(C.PlaceOrder, account=a, symbol=SYM, side=side, qty=qty, price=price, **kw)

    def trade(self, buyer: int, seller: int, qty: int, price: int) -> None:
        self.order(seller, "SELL", qty, price)
        self.order(buyer, "BUY", qty, price, time_in_force="IOC")

    def index(self, price: int) -> None:
        self.add(C.SetIndexPrice, symbol=SYM, price=price)


# ---------------------------------------------------------------- the bench stream


def bench_standard(ops: int) -> Stream:
    """`bench engine`'s stream: reference_book.gen_stream(ops, 7) over 1,000 accounts."""
    from bench.engine import bench_instrument, load_reference, to_commands

    ref = load_reference()
    stream, _ = ref.gen_stream(ops, 7)
    cmds: list[C.Command] = []
    for a in range(1, 1001):
        cmds.append(C.CreateAccount(account=a))
        cmds.append(C.Deposit(account=a, asset="USDT", amount=10_000_000 * USDT))
    cmds.append(C.SetIndexPrice(symbol=SYM, price=100_000))
    return [bench_instrument()], {}, cmds + to_commands(stream, ref)


# ---------------------------------------------------------------- a busy market


def busy_market(
    seed: int,
    mark_method: str,
    steps: int = 1_500,
    shocks: bool = True,
    engine: dict[str, Any] | None = None,
) -> Stream:
    """Makers quoting a ladder, leveraged traders sending every order kind (limit,
    market, the four conditional kinds by mark and by last price, reduce-only, every
    time in force and STP mode, client ids reused), cancels, amends, leverage and margin
    changes, withdrawals, a drifting index with shocks both ways, funding rates imposed
    and the clock crossing funding times. Rejections are part of the stream."""
    rng = random.Random(seed)
    s = Script(step_ns=37 * MS)
    makers = (1, 2, 3)
    traders = list(range(10, 40))
    for mk in makers:
        s.account(mk, 50_000_000, leverage=5)
    for a in traders:
        s.account(a, rng.choice((2_000, 5_000, 20_000, 100_000)), leverage=rng.randint(2, 75))
    mid = px(50_000)
    s.index(mid)

    def quote() -> None:
        for mk in makers:
            s.add(C.CancelAllOrders, account=mk, symbol=SYM)
            for k in range(1, 6):
                gap = mid * k // 1000
                s.order(mk, "BUY", rng.randint(20, 400), mid - gap, stp="EXPIRE_MAKER")
                s.order(mk, "SELL", rng.randint(20, 400), mid + gap, stp="EXPIRE_MAKER")

    def recent(step: int) -> str:
        return f"c{max(0, step - rng.randint(1, 30))}"

    quote()
    kinds = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP_LIMIT", "TAKE_PROFIT_LIMIT")
    for step in range(steps):
        r = rng.random()
        a = rng.choice(traders)
        side = rng.choice(("BUY", "SELL"))
        qty = rng.choice((1, 5, 20, 50, 100, 300, 1000))
        if r < 0.25:
            price = mid + rng.randint(-300, 300) * 10
            s.order(
                a,
                side,
                qty,
                price,
                time_in_force=rng.choice(("GTC", "GTC", "IOC", "FOK", "GTX")),
                stp=rng.choice(("NONE", "NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")),
                reduce_only=rng.random() < 0.15,
                client_id=f"c{step}" if rng.random() < 0.8 else f"c{rng.randint(0, step)}",
            )
        elif r < 0.37:
            s.order(a, side, qty, reduce_only=rng.random() < 0.2)
        elif r < 0.47:
            kind = rng.choice(kinds)
            up = (kind.startswith("STOP")) == (side == "BUY")
            stop = mid + (1 if up else -1) * rng.randint(10, 400) * 10
            limit = stop + rng.randint(-50, 50) * 10 if "LIMIT" in kind else 0
            s.order(
                a,
                side,
                qty,
                limit,
                type=kind,
                stop_price=stop,
                working_type=rng.choice(("MARK_PRICE", "CONTRACT_PRICE")),
                reduce_only=rng.random() < 0.3,
            )
        elif r < 0.57:
            if rng.random() < 0.7:
                s.add(C.CancelOrder, account=a, symbol=SYM, client_id=recent(step))
            else:
                s.add(C.CancelOrder, account=a, symbol=SYM, order_id=rng.randint(1, 40 + step))
        elif r < 0.59:
            s.add(C.CancelAllOrders, account=a, symbol=SYM)
        elif r < 0.67:
            change: dict[str, Any] = {}
            if rng.random() < 0.6:
                change["qty"] = rng.choice((1, 10, 50, 200, 800))
            if rng.random() < 0.6 or not change:
                change["price"] = mid + rng.randint(-300, 300) * 10
            if rng.random() < 0.8:
                s.add(C.AmendOrder, account=a, symbol=SYM, client_id=recent(step), **change)
            else:
                s.add(
                    C.AmendOrder,
                    account=a,
                    symbol=SYM,
                    order_id=rng.randint(1, 40 + step),
                    **change,
                )
        elif r < 0.80:
            if shocks and rng.random() < 0.08:
                mid = mid * rng.choice((85, 90, 93, 107, 110)) // 100
            else:
                mid += rng.randint(-40, 40) * 10
            s.index(mid)
            if rng.random() < 0.3:
                quote()
        elif r < 0.84:
            s.t += rng.choice((HOUR // 2, HOUR, 3 * HOUR))
            s.add(C.AdvanceClock)
        elif r < 0.86:
            s.add(C.SetFundingRate, symbol=SYM, rate=rng.randint(-200_000, 200_000))
        elif r < 0.90:
            s.add(C.SetLeverage, account=a, symbol=SYM, leverage=rng.randint(1, 100))
        elif r < 0.95:
            amount = rng.choice((1, -1)) * rng.randint(1, 2_000) * USDT
            s.add(C.AdjustIsolatedMargin, account=a, symbol=SYM, amount=amount)
        elif r < 0.97:
            s.add(C.Withdraw, account=a, asset="USDT", amount=rng.randint(1, 3_000) * USDT)
        else:
            quote()
    inst = btc(mark_method=mark_method, max_open_orders=100)
    return [inst], dict(engine or {}), s.cmds


# ---------------------------------------------------------------- hand-made scenarios


def cascade(mark_method: str, levered: int = 60, engine: dict[str, Any] | None = None) -> Stream:
    """Longs stacked at 20×–75× over a ladder of thin bids; a −3 % index shock. Under
    `last`, `mid` and `median` the liquidation fills move the mark: a multi-generation
    cascade."""
    rng = random.Random(11)
    s = Script()
    s.account(1, 100_000_000, leverage=1)  # the counterparty short
    s.account(2, 100_000_000, leverage=1)  # the bid ladder
    s.account(3, 100_000_000, leverage=1)  # the ask ladder
    mid = px(50_000)
    s.index(mid)
    for i in range(levered):
        a = 100 + i
        s.account(a, 10_000, leverage=rng.randint(20, 75))
        q = rng.randint(5, 60)
        s.trade(buyer=a, seller=1, qty=q, price=mid + rng.randint(-20, 20) * 10)
    for k in range(1, 80):
        s.order(2, "BUY", rng.randint(3, 40), mid - mid * k // 2000)
        s.order(3, "SELL", rng.randint(3, 40), mid + mid * k // 2000)
    s.index(mid * 98 // 100)
    s.order(3, "SELL", 900, 0)  # walks the bids: moves last, mid and the median mark
    s.index(mid * 97 // 100)
    s.order(3, "SELL", 900, 0)
    s.index(mid * 95 // 100)
    s.order(2, "BUY", 500, mid * 94 // 100)
    s.add(C.AdvanceClock)
    inst = btc(mark_method=mark_method, max_open_orders=500)
    return [inst], dict(engine or {}), s.cmds


def stops_and_amends() -> Stream:
    """Every conditional kind by mark and last price, triggered in order; reduce-only
    clipping; amends that keep and that lose priority, by order id and by client id."""
    s = Script()
    for a in (1, 2, 3, 4):
        s.account(a, 1_000_000, leverage=10)
    mid = px(50_000)
    s.index(mid)
    s.order(1, "BUY", 100, mid - 100, client_id="b1")
    s.order(1, "BUY", 100, mid - 200, client_id="b2")
    s.order(2, "SELL", 100, mid + 100, client_id="a1")
    s.order(2, "SELL", 100, mid + 200)
    s.order(3, "BUY", 50, 0, type="STOP_MARKET", stop_price=mid + 500)
    s.order(3, "SELL", 50, 0, type="TAKE_PROFIT_MARKET", stop_price=mid + 800)
    s.order(
        4, "SELL", 30, 0, type="STOP_MARKET", stop_price=mid - 500, working_type="CONTRACT_PRICE"
    )
    s.order(4, "BUY", 30, mid - 900, type="TAKE_PROFIT_LIMIT", stop_price=mid - 800)
    s.order(3, "BUY", 20, mid + 600, type="STOP_LIMIT", stop_price=mid + 550, time_in_force="IOC")
    s.order(3, "SELL", 20, 0, type="STOP_MARKET", stop_price=mid + 1)  # rejected: would trigger
    s.add(C.AmendOrder, account=1, symbol=SYM, client_id="b1", qty=60)  # keeps priority
    s.add(C.AmendOrder, account=1, symbol=SYM, client_id="b2", price=mid - 50)  # loses it
    s.add(C.AmendOrder, account=2, symbol=SYM, client_id="a1", qty=300)  # loses it
    s.add(C.AmendOrder, account=2, symbol=SYM, order_id=4, price=mid - 50)  # crosses
    s.index(mid + 600)  # fires the buy stops by mark
    s.order(1, "SELL", 80, 0)
    s.index(mid - 900)
    s.order(2, "SELL", 200, mid - 1000)
    s.order(1, "BUY", 200, 0, reduce_only=True)
    s.order(4, "BUY", 500, 0, reduce_only=True)
    s.order(4, "BUY", 10, mid - 700, reduce_only=True)
    s.index(mid)
    s.add(C.CancelAllOrders, account=1, symbol=SYM)
    s.add(C.AmendOrder, account=3, symbol=SYM, order_id=999, qty=5)  # unknown
    inst = btc(mark_method="median")
    return [inst], {}, s.cmds


def self_trade() -> Stream:
    """All four STP modes against own resting orders, partial and complete."""
    s = Script()
    for a in (1, 2):
        s.account(a, 1_000_000, leverage=10)
    mid = px(50_000)
    s.index(mid)
    for mode in ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"):
        s.order(1, "SELL", 50, mid + 10)
        s.order(2, "SELL", 50, mid + 10)
        s.order(1, "SELL", 50, mid + 20)
        s.order(1, "BUY", 120, mid + 20, stp=mode, time_in_force="IOC")
        s.order(1, "BUY", 40, 0, stp=mode)
        s.add(C.CancelAllOrders, account=1, symbol=SYM)
        s.add(C.CancelAllOrders, account=2, symbol=SYM)
        s.order(2, "BUY", 30, mid - 10)
        s.order(2, "SELL", 30, mid - 10, stp=mode, time_in_force="FOK")
        s.add(C.CancelAllOrders, account=2, symbol=SYM)
    inst = btc(mark_method="index")
    return [inst], {}, s.cmds


def funding() -> Stream:
    """Positions on both sides (the fund's too) across funding times: premium from a
    skewed book, an imposed rate, a payer capped at its margin, a long clock jump."""
    s = Script()
    for a in (1, 2, 3, 4, 5):
        s.account(a, 1_000_000, leverage=20)
    mid = px(50_000)
    s.index(mid)
    s.trade(buyer=1, seller=2, qty=BTC, price=mid)
    s.trade(buyer=3, seller=2, qty=333, price=mid)
    s.trade(buyer=2, seller=4, qty=77, price=mid)
    s.order(5, "BUY", 10, mid + 300)  # a rich bid: positive premium
    s.order(5, "SELL", 10, mid + 500)
    for k in range(12):
        s.t += HOUR
        s.index(mid + (k % 3) * 50)
    s.add(C.SetFundingRate, symbol=SYM, rate=-75_000)
    s.t += 8 * HOUR
    s.add(C.AdvanceClock)
    s.add(C.SetFundingRate, symbol=SYM, rate=9_000_000)  # 9 %: bigger than some margins
    s.t += 8 * HOUR
    s.index(mid)
    s.t += 2_000 * 8 * HOUR  # a jump over many funding times
    s.add(C.AdvanceClock)
    s.t += 100_000 * 8 * HOUR  # beyond 10,000 intervals: skipped
    s.index(mid - 100)
    inst = btc(mark_method="median")
    return [inst], {}, s.cmds


def adl_and_takeover() -> Stream:
    """A profitable liquidation fills the insurance fund; then a gap past a long's
    bankruptcy price with an empty book: the fund takes over what its equity bears and
    auto-deleveraging ranks the opposite shorts for the rest."""
    s = Script()
    s.account(1, 1_000_000, leverage=2)  # M1
    s.account(2, 1_000_000, leverage=5)  # M2
    s.account(3, 1_000_000, leverage=3)  # M3
    s.account(10, 5_000, leverage=10)  # L
    s.account(20, 10_000, leverage=10)  # L0
    s.account(21, 1_000_000)  # B0
    s.index(px(50_000))
    s.trade(buyer=10, seller=1, qty=500, price=px(50_000))
    s.trade(buyer=10, seller=2, qty=300, price=px(50_000))
    s.trade(buyer=10, seller=3, qty=200, price=px(49_000))
    s.trade(buyer=20, seller=1, qty=BTC, price=px(50_000))
    s.order(2, "SELL", 700, px(50_000))
    s.order(10, "BUY", 0, 0)  # rejected
    s.trade(buyer=3, seller=2, qty=0, price=px(50_000))  # rejected
    s.index(px(47_000))
    s.order(21, "BUY", BTC, px(45_100))
    s.index(px(45_150))  # L0 liquidated into B0's bid: the fund gains
    s.add(C.CancelAllOrders, account=21, symbol=SYM)
    s.add(C.CancelAllOrders, account=2, symbol=SYM)
    s.index(px(44_000))  # the gap: takeover + ADL
    s.index(px(30_000))
    inst = btc(mark_method="index", maker_fee=0, taker_fee=0)
    return [inst], {}, s.cmds


def truncated(mark_method: str) -> Stream:
    """A cascade bounded to 3 liquidations (then 2 generations): the queued positions
    are refused new orders (−2023) and liquidated first by the next commands."""
    instruments, _, cmds = cascade(mark_method, levered=25)
    t = cmds[-1].ts
    extra: list[C.Command] = [
        C.PlaceOrder(ts=t + 1, account=100, symbol=SYM, side="SELL", qty=1, type="MARKET"),
        C.AdvanceClock(ts=t + 2),
        C.SetIndexPrice(ts=t + 3, symbol=SYM, price=px(44_000)),
        C.AdvanceClock(ts=t + 4),
    ]
    return instruments, {"max_cascade_liquidations": 3, "max_cascade_generations": 2}, cmds + extra


STREAMS: dict[str, Callable[[], Stream]] = {
    "bench_standard_20k": lambda: bench_standard(20_000),
    "bench_standard_200k": lambda: bench_standard(200_000),
    **{f"cascade_{m}": (lambda m=m: cascade(m)) for m in ("index", "last", "mid", "median")},
    **{
        f"busy_{m}": (lambda m=m: busy_market(seed=3, mark_method=m))
        for m in ("index", "last", "mid", "median")
    },
    "busy_median_truncated": lambda: busy_market(
        seed=5, mark_method="median", engine={"max_cascade_liquidations": 2}
    ),
    **{f"truncated_{m}": (lambda m=m: truncated(m)) for m in ("index", "last", "median")},
    "stops_and_amends": stops_and_amends,
    "self_trade": self_trade,
    "funding": funding,
    "adl_and_takeover": adl_and_takeover,
}
SLOW = {"bench_standard_200k"}
NEEDS_REFERENCE = {"bench_standard_20k", "bench_standard_200k"}


def digest(name: str) -> dict[str, Any]:
    """Run one stream through a fresh Exchange: its event digest, counts and state hash."""
    instruments, engine, cmds = STREAMS[name]()
    ex = Exchange(instruments, **engine)
    h = hashlib.sha256()
    counts: Counter[str] = Counter()
    for cmd in cmds:
        for ev in ex.handle(cmd):
            h.update(repr(ev).encode())
            h.update(b"\n")
            counts[type(ev).__name__] += 1
    return {
        "commands": len(cmds),
        "events": sum(counts.values()),
        "events_sha256": h.hexdigest(),
        "state_hash": ex.state_hash(),
        "counts": dict(sorted(counts.items())),
    }


def load_expected() -> dict[str, Any]:
    return dict(json.loads(EXPECTED.read_text())) if EXPECTED.exists() else {}


def main(argv: list[str]) -> None:
    names = argv or list(STREAMS)
    unknown = [n for n in names if n not in STREAMS]
    if unknown:
        raise SystemExit(f"unknown streams {unknown}; known: {', '.join(STREAMS)}")
    expected = load_expected()
    for name in names:
        expected[name] = digest(name)
        print(name, expected[name]["events"], expected[name]["state_hash"][:16], flush=True)
    ordered = {n: expected[n] for n in STREAMS if n in expected}
    EXPECTED.write_text(json.dumps(ordered, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
