"""Seeded command logs for the store's tests: accounts, deposits, market makers,
leveraged traders, cancels and amends, funding, withdrawals, a halt, an added
instrument, rejected commands, and an index crash that sets off a liquidation cascade.

`build(seed)` runs a private `Exchange` while it writes the log, so it can pick real
order ids to cancel; the log's commands carry their `ts`, so any replay of it gives the
same events.
"""

from __future__ import annotations

import random
from dataclasses import replace

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument

BTC = "BTCUSDT"
ETH = "ETHUSDT"
USDT = 10**8
HOUR = 3600 * 10**9
T0 = 1_700_000_000 * 10**9  # engine start, ns


def instruments() -> list[Instrument]:
    """The shipped instruments; ETHUSDT marked by the book's mid, so liquidation fills
    move its mark and a cascade runs several generations."""
    return [
        replace(i, max_open_orders=1000, mark_method="mid" if i.symbol == ETH else i.mark_method)
        for i in load_instruments()
    ]


def extra_instrument() -> Instrument:
    btc = next(i for i in load_instruments() if i.symbol == BTC)
    # another liquidation policy: the journal and recovery must carry it (state_hash has it)
    return replace(
        btc, symbol="SOLUSDT", base_asset="SOL", mark_method="index", liquidation_policy="bitmex"
    )


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ex = Exchange(instruments())
        self.cmds: list[C.Command] = []
        self.events: list[E.Event] = []
        self.ts = T0

    def do(self, cmd: C.Command, dt_ms: int = 1) -> list[E.Event]:
        self.ts += dt_ms * 1_000_000
        cmd = replace(cmd, ts=self.ts)
        self.cmds.append(cmd)
        out = self.ex.handle(cmd)
        self.events.extend(out)
        return out

    def quote(self, sym: str, center: int, makers: tuple[int, ...], size: int, levels: int) -> None:
        for mk in makers:
            self.do(C.CancelAllOrders(account=mk, symbol=sym))
        for k in range(1, levels + 1):
            step = max(1, center * 5 * k // 10_000)
            for mk in makers:
                self.do(
                    C.PlaceOrder(account=mk, symbol=sym, side="BUY", qty=size, price=center - step)
                )
                self.do(
                    C.PlaceOrder(account=mk, symbol=sym, side="SELL", qty=size, price=center + step)
                )


def build(seed: int, traders: int = 40, rounds: int = 3) -> list[C.Command]:
    """A command log with at least one liquidation cascade."""
    b = Builder(seed)
    rng = b.rng
    makers = (1, 2)
    btc0 = 300_000  # 30,000.0
    eth0 = 200_000  # 2,000.00 (tick 0.01)
    b.do(C.SetIndexPrice(symbol=BTC, price=btc0))
    b.do(C.SetIndexPrice(symbol=ETH, price=eth0))
    for mk in makers:
        b.do(C.CreateAccount(account=mk))
        b.do(C.Deposit(account=mk, asset="USDT", amount=10**8 * USDT))
        b.do(C.SetLeverage(account=mk, symbol=BTC, leverage=2))
    b.quote(BTC, btc0, makers, 300, 15)
    b.quote(ETH, eth0, makers, 2000, 5)
    accounts = list(range(100, 100 + traders))
    for a in accounts:
        b.do(C.CreateAccount(account=a))
        b.do(C.Deposit(account=a, asset="USDT", amount=rng.randint(500, 5000) * USDT))
        b.do(C.SetLeverage(account=a, symbol=BTC, leverage=rng.choice((5, 10, 20, 25, 50))))
        side = "BUY" if rng.random() < 0.8 else "SELL"
        b.do(
            C.PlaceOrder(
                account=a,
                symbol=BTC,
                side=side,
                qty=rng.randint(1, 25),
                price=btc0 * (1002 if side == "BUY" else 998) // 1000,
                time_in_force="IOC",
                client_id=f"open-{a}",
            )
        )
    # resting orders, amends and cancels, some rejected on purpose
    for _ in range(rounds * 20):
        a = rng.choice(accounts)
        r = rng.random()
        if r < 0.4:
            px = btc0 + rng.randint(-60, 60) * 10
            b.do(
                C.PlaceOrder(
                    account=a,
                    symbol=BTC,
                    side=rng.choice(("BUY", "SELL")),
                    qty=rng.randint(1, 5),
                    price=px,
                )
            )
        elif r < 0.55:
            opened = b.ex.open_orders(a, BTC)
            if opened:
                b.do(C.CancelOrder(account=a, symbol=BTC, order_id=rng.choice(opened).order_id))
        elif r < 0.65:
            opened = b.ex.open_orders(a, BTC)
            if opened:
                o = rng.choice(opened)
                b.do(
                    C.AmendOrder(account=a, symbol=BTC, order_id=o.order_id, qty=max(1, o.qty - 1))
                )
        elif r < 0.75:
            b.do(
                C.PlaceOrder(account=a, symbol=BTC, side="BUY", qty=1, price=btc0 + 5)
            )  # not a tick multiple? fine either way
        elif r < 0.8:
            b.do(C.CancelOrder(account=a, symbol=BTC, order_id=10**9))  # unknown order
        elif r < 0.85:
            b.do(C.Withdraw(account=a, asset="USDT", amount=rng.randint(1, 50) * USDT))
        elif r < 0.9:
            b.do(
                C.PlaceOrder(
                    account=a,
                    symbol=ETH,
                    side=rng.choice(("BUY", "SELL")),
                    qty=rng.randint(10, 50),
                    type="MARKET",
                )
            )
        else:
            b.do(
                C.PlaceOrder(
                    account=a,
                    symbol=BTC,
                    side="SELL",
                    qty=rng.randint(1, 3),
                    type="STOP_MARKET",
                    stop_price=btc0 - rng.randint(50, 300) * 10,
                    reduce_only=True,
                )
            )
    b.do(C.HaltSymbol(symbol=ETH))
    b.do(C.PlaceOrder(account=accounts[0], symbol=ETH, side="BUY", qty=10, price=eth0))  # halted
    b.do(C.ResumeSymbol(symbol=ETH))
    b.do(C.AddInstrument(instrument=extra_instrument()))
    b.do(C.AddInstrument(instrument=extra_instrument()))  # already exists: rejected
    # funding: cross a funding time
    b.do(C.AdvanceClock(), dt_ms=8 * 3600 * 1000 + 1)
    # the crash: the index falls in steps, the makers follow it down with a thin book
    price = btc0
    for _ in range(rng.randint(8, 14)):
        price = price * (1000 - rng.randint(15, 40)) // 1000
        b.do(C.SetIndexPrice(symbol=BTC, price=price), dt_ms=rng.randint(100, 2000))
        b.quote(BTC, price, makers, rng.randint(20, 60), 8)
    b.do(C.SetIndexPrice(symbol=BTC, price=price * 105 // 100), dt_ms=1000)
    b.quote(BTC, price * 105 // 100, makers, 100, 5)
    # ETH: leveraged longs, then the makers step their quotes down over a thin book;
    # the mid (the mark) falls, liquidation sells eat the bids, the mid falls further
    b.quote(ETH, eth0, makers, 3000, 10)
    for a in accounts[: traders // 2]:
        b.do(C.SetLeverage(account=a, symbol=ETH, leverage=rng.randint(15, 60)))
        b.do(
            C.PlaceOrder(
                account=a,
                symbol=ETH,
                side="BUY",
                qty=rng.randint(50, 200),
                price=eth0 * 1003 // 1000,
                time_in_force="IOC",
            )
        )
    mid = eth0
    for _ in range(6):
        mid = mid * (1000 - rng.randint(5, 12)) // 1000
        b.do(C.SetIndexPrice(symbol=ETH, price=mid), dt_ms=500)
        b.quote(ETH, mid, makers, rng.randint(10, 30), 12)
    return b.cmds


def run(cmds: list[C.Command], instruments_: list[Instrument] | None = None) -> Exchange:
    ex = Exchange(instruments_ if instruments_ is not None else instruments())
    for c in cmds:
        ex.handle(c)
    return ex


def event_counts(cmds: list[C.Command]) -> dict[str, int]:
    ex = Exchange(instruments())
    out: dict[str, int] = {}
    for c in cmds:
        for e in ex.handle(c):
            out[type(e).__name__] = out.get(type(e).__name__, 0) + 1
    return out


async def drive(store: object, ex: Exchange, cmds: list[C.Command], batch: int = 16) -> None:
    """What the runtime does with the store, without the runtime: per batch, journal
    (durable: before applying), apply, hand the events to the query writer, snapshot
    when due."""
    from exchange.store import Store

    assert isinstance(store, Store)
    for i in range(0, len(cmds), batch):
        part = cmds[i : i + batch]
        if store.durable:
            await store.append(part)
        events: list[E.Event] = []
        for c in part:
            events.extend(ex.handle(c))
        if not store.durable:
            await store.append(part)
        if store.config.query_tables:
            store.feed(events)
        if store.snapshot_due():
            await store.snapshot_hook(ex)


def build_synthetic(seed: int, recentres: int = 60) -> list[C.Command]:
    """A replay-like log: one account quotes BTCUSDT with `ReplaceBook` around an index
    that moves (its partly filled quotes withdrawn at each re-centring), traders take
    from the quotes with IOC and resting orders, and one level is sent ill-formed."""
    b = Builder(seed)
    rng = b.rng
    quoter = 7
    px = 300_000
    b.do(C.SetIndexPrice(symbol=BTC, price=px))
    b.do(C.CreateAccount(account=quoter))
    b.do(C.Deposit(account=quoter, asset="USDT", amount=10**7 * USDT))
    traders = list(range(200, 210))
    for a in traders:
        b.do(C.CreateAccount(account=a))
        b.do(C.Deposit(account=a, asset="USDT", amount=rng.randint(2_000, 20_000) * USDT))
        b.do(C.SetLeverage(account=a, symbol=BTC, leverage=rng.choice((5, 10, 20))))
    for k in range(recentres):
        px += rng.randint(-40, 40) * 10
        b.do(C.SetIndexPrice(symbol=BTC, price=px))
        step = 10 * rng.randint(1, 3)
        bids = tuple((px - step * i, rng.randint(5, 40)) for i in range(1, 6))
        asks = tuple((px + step * i, rng.randint(5, 40)) for i in range(1, 6))
        if k == recentres // 2:
            b.do(C.ReplaceBook(account=quoter, symbol=BTC, bids=[bids[0]], asks=asks))  # type: ignore[arg-type]
        b.do(C.ReplaceBook(account=quoter, symbol=BTC, bids=bids, asks=asks))
        for _ in range(rng.randint(1, 4)):
            a = rng.choice(traders)
            side = rng.choice(("BUY", "SELL"))
            qty = rng.randint(1, 60)
            if rng.random() < 0.7:
                far = px + 200 if side == "BUY" else px - 200
                b.do(
                    C.PlaceOrder(
                        account=a, symbol=BTC, side=side, qty=qty, price=far, time_in_force="IOC"
                    )
                )
            else:
                near = px - step if side == "BUY" else px + step
                b.do(C.PlaceOrder(account=a, symbol=BTC, side=side, qty=qty, price=near))
        if k % 10 == 9:
            b.do(C.AdvanceClock(), dt_ms=8 * 3600 * 1000)  # funding on the way
    return b.cmds
