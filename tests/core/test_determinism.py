"""The same command log gives byte-identical events and the same state hash, every time,
cascades included; and a rejected command changes nothing."""

from __future__ import annotations

import random
from dataclasses import replace

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C

SYM = "BTCUSDT"
USDT = 10**8


def command_log(seed: int, n: int = 1500) -> list[C.Command]:
    """A seeded mix of funding, orders, cancels, index moves with a crash, clock jumps."""
    rng = random.Random(seed)
    cmds: list[C.Command] = []
    ts = 0
    idx = 300_000
    for a in range(1, 21):
        cmds += [
            C.CreateAccount(account=a),
            C.Deposit(account=a, asset="USDT", amount=rng.randint(500, 50_000) * USDT),
        ]
        cmds.append(
            C.SetLeverage(account=a, symbol=SYM, leverage=rng.choice([2, 5, 10, 20, 50, 100]))
        )
    cmds.append(C.SetIndexPrice(symbol=SYM, price=idx))
    for i in range(n):
        ts += rng.randint(1, 10**9)
        r = rng.random()
        a = rng.randint(1, 20)
        if r < 0.5:
            price = idx + rng.randint(-300, 300)
            cmds.append(
                C.PlaceOrder(
                    ts=ts,
                    account=a,
                    symbol=SYM,
                    side=rng.choice(["BUY", "SELL"]),
                    qty=rng.randint(1, 400),
                    price=price,
                    time_in_force=rng.choice(["GTC", "GTC", "IOC", "GTX"]),
                )
            )
        elif r < 0.65:
            cmds.append(
                C.PlaceOrder(
                    ts=ts,
                    account=a,
                    symbol=SYM,
                    side=rng.choice(["BUY", "SELL"]),
                    qty=rng.randint(1, 200),
                    type="MARKET",
                )
            )
        elif r < 0.8:
            cmds.append(C.CancelOrder(ts=ts, account=a, symbol=SYM, order_id=rng.randint(1, i + 1)))
        elif r < 0.97:
            idx = max(1000, idx + rng.randint(-900, 900))
            cmds.append(C.SetIndexPrice(ts=ts, symbol=SYM, price=idx))
        else:
            idx = idx * rng.choice([60, 70, 85, 115]) // 100
            cmds.append(C.SetIndexPrice(ts=ts, symbol=SYM, price=idx))
        if i == n // 2:
            cmds.append(C.AdvanceClock(ts=ts + 9 * 3600 * 10**9))
            ts += 9 * 3600 * 10**9
    return cmds


def run(cmds: list[C.Command]) -> tuple[bytes, str]:
    btc = next(i for i in load_instruments() if i.symbol == SYM)
    ex = Exchange([replace(btc, mark_method="median")])
    out = []
    for c in cmds:
        out.extend(repr(e) for e in ex.handle(c))
    ex._check()
    return "\n".join(out).encode(), ex.state_hash()


def test_same_log_same_events_and_hash() -> None:
    for seed in (1, 2, 3):
        cmds = command_log(seed)
        first = run(cmds)
        second = run(cmds)
        assert first == second


def test_logs_with_cascades_are_deterministic() -> None:
    cmds = command_log(11, 2500)
    events, h = run(cmds)
    assert b"CascadeEnded" in events, "the seed is meant to include a cascade"
    assert b"FundingSettled" in events
    assert run(cmds) == (events, h)


def test_rejected_commands_leave_the_hash_unchanged() -> None:
    btc = next(i for i in load_instruments() if i.symbol == SYM)
    ex = Exchange([btc])
    for c in command_log(5, 300):
        ex.handle(c)
    before = ex.state_hash()
    bad = [
        C.PlaceOrder(ts=ex.now, account=1, symbol="NOPE", side="BUY", qty=1, price=1),
        C.PlaceOrder(ts=ex.now, account=1, symbol=SYM, side="UP", qty=1, price=300_000),
        C.PlaceOrder(ts=ex.now, account=1, symbol=SYM, side="BUY", qty=0, price=300_000),
        C.PlaceOrder(ts=ex.now, account=1, symbol=SYM, side="BUY", qty=10**9, price=300_000),
        C.CancelOrder(ts=ex.now, account=1, symbol=SYM, order_id=10**9),
        C.Withdraw(ts=ex.now, account=1, asset="USDT", amount=10**30),
        C.Deposit(ts=ex.now, account=999, asset="USDT", amount=1),
        C.SetLeverage(ts=ex.now, account=1, symbol=SYM, leverage=0),
        C.SetIndexPrice(ts=ex.now, symbol=SYM, price=-5),
    ]
    for c in bad:
        events = ex.handle(c)
        assert len(events) == 1 and events[0].code < 0, events  # type: ignore[attr-defined]
        assert ex.state_hash() == before
