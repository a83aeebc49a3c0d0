"""In-process backtests: the same strategy class as the WebSocket lockstep, and the same run —
identical events (every one, seq numbers included), fills, report rows and state hash — on a
real sample and on a crash with a leveraged population; the LocalClient's answers and errors."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from clients.client import ApiError
from replay.backtest import SessionOptions, parse_time, run_session
from replay.inprocess import backtest, run_inprocess
from replay.player import SyntheticBook
from replay.population import PopulationSpec
from replay.strategy import Step, Strategy
from tests.replay.helpers import REAL_DATA

BARS = REAL_DATA / "btc-perp-20211231-20220201_1m.csv"
SYM = "BTCUSDT"
needs_bars = pytest.mark.skipif(not BARS.exists(), reason=f"{BARS.name} is absent")


class Busy(Strategy):
    """Uses most of the client: leverage, market and limit orders, cancels, amends, reads."""

    def __init__(self, qty: str = "0.050") -> None:
        self.qty = Decimal(qty)

    async def on_start(self) -> None:
        await self.client.set_leverage(SYM, 20)

    async def on_step(self, step: Step) -> None:
        bid, ask = step.best_bid(SYM), step.best_ask(SYM)
        phase = step.step % 5
        if phase == 1 and ask is not None:
            await self.client.place_order(SYM, "BUY", self.qty)
        elif phase == 2 and bid is not None and ask is not None:
            o = await self.client.place_order(SYM, "BUY", self.qty, bid - 50)
            await self.client.modify_order(SYM, o["orderId"], price=bid - 40)
            await self.client.place_order(SYM, "SELL", self.qty, ask + 50)
        elif phase == 3:
            await self.client.open_orders(SYM)
            await self.client.depth(SYM, 5)
            await self.client.cancel_all(SYM)
        elif phase == 4:
            pos = await self.client.position(SYM)
            amt = Decimal(pos["positionAmt"]) if pos else Decimal(0)
            if amt:
                side = "SELL" if amt > 0 else "BUY"
                await self.client.place_order(SYM, side, abs(amt), reduce_only=True)
            try:
                await self.client.place_order(SYM, "BUY", "0.0001", "1")  # under min notional
            except ApiError as e:
                self.last_error = e.code


def options(**kw: object) -> SessionOptions:
    opts = SessionOptions(
        data=[str(BARS)],
        symbol=SYM,
        port=0,
        lockstep=True,
        trades=True,
        synthetic=SyntheticBook(),
        step_ns=60 * 10**9,
        strategy="tests.replay.test_inprocess:Busy",
        progress=False,
        keep_events=True,
    )
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def both(opts: SessionOptions) -> tuple[object, object]:
    lock = asyncio.run(run_session(opts))
    local = asyncio.run(run_inprocess(dataclasses.replace(opts, lockstep=False), keep_events=True))
    return lock, local


def assert_identical(lock: object, local: object) -> None:
    assert lock.events is not None and local.events is not None  # type: ignore[attr-defined]
    assert len(lock.events) == len(local.events)  # type: ignore[attr-defined]
    for a, b in zip(lock.events, local.events, strict=True):  # type: ignore[attr-defined]
        assert a == b
    assert lock.recorder.fills == local.recorder.fills  # type: ignore[attr-defined]
    assert lock.recorder.positions == local.recorder.positions  # type: ignore[attr-defined]
    assert lock.recorder.equity == local.recorder.equity  # type: ignore[attr-defined]
    assert lock.state_hash == local.state_hash  # type: ignore[attr-defined]
    assert lock.strategy.steps == local.strategy.steps  # type: ignore[attr-defined]
    assert lock.strategy.errors == local.strategy.errors == []  # type: ignore[attr-defined]


class Late(Strategy):
    """Buys every third step, then reads the step's table (the lockstep test below)."""

    seen: list[object] = []

    async def on_step(self, step: Step) -> None:
        if step.step % 3 == 1:
            await self.client.place_order(SYM, "BUY", "5.000")  # takes the best ask level
        Late.seen.append((step.step, step.best_ask(SYM), step.mark(SYM), dict(step.markets[SYM])))


@needs_bars
def test_identical_to_the_lockstep_on_real_bars() -> None:
    opts = options(start_ns=parse_time("2022-01-05 10:00"), end_ns=parse_time("2022-01-05 12:00"))
    lock, local = both(opts)
    assert len(local.recorder.fills) > 20  # type: ignore[attr-defined]
    assert_identical(lock, local)


@needs_bars
def test_identical_to_the_lockstep_on_a_crash_with_a_population() -> None:
    opts = options(
        start_ns=parse_time("2022-01-21 20:30"),
        end_ns=parse_time("2022-01-21 22:30"),
        population=PopulationSpec(accounts=120, seed=3, leverage=((20, 1), (50, 1), (100, 1))),
    )
    lock, local = both(opts)
    assert len(local.recorder.liquidations) > 20  # type: ignore[attr-defined]
    assert_identical(lock, local)


def test_local_client_answers_like_the_server(tmp_path: Path) -> None:
    from replay.testdata import ohlcv_bars, write_text

    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(30, 1_600_000_020))
    seen: dict[str, object] = {}

    class Probe(Strategy):
        async def on_step(self, step: Step) -> None:
            if step.step == 3:
                seen["order"] = await self.client.place_order(SYM, "BUY", "0.010")
                seen["account"] = await self.client.account_status()
                seen["ticker"] = await self.client.ticker(SYM)
                try:
                    await self.client.place_order("NOPE", "BUY", "1")
                except ApiError as e:
                    seen["error"] = (e.code, e.method)
                try:
                    await self.client.create_account()
                except ApiError as e:
                    seen["admin"] = e.code

    res = backtest(f, Probe(), symbol=SYM, step="1m")
    order = seen["order"]
    assert order["status"] == "FILLED" and order["executedQty"] == "0.010"  # type: ignore[index]
    assert seen["error"] == (-1121, "order.place")
    assert seen["admin"] == -2015
    assert res.account == 1 and len(res.recorder.fills) == 1
    assert res.strategy.steps == 30


def test_the_step_table_says_what_it_said_at_its_close_when_read_after_an_order(
    tmp_path: Path,
) -> None:
    """The in-process table formats its prices when read, but they are the step close's:
    read after the strategy's own order moved the book, they equal the lockstep's."""
    from replay.testdata import ohlcv_bars, write_text

    f = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(12, 1_600_000_020))

    opts = SessionOptions(
        data=[str(f)], symbol=SYM, port=0, lockstep=True, synthetic=SyntheticBook(),
        step_ns=60 * 10**9, strategy="tests.replay.test_inprocess:Late", progress=False, deposit=Decimal(1_000_000),
        keep_events=True,
    )  # fmt: skip
    Late.seen = []
    lock = asyncio.run(run_session(opts))
    from_lockstep = Late.seen
    Late.seen = []
    local = asyncio.run(run_inprocess(dataclasses.replace(opts, lockstep=False), keep_events=True))
    assert len(from_lockstep) >= 6 and from_lockstep == Late.seen
    assert local.recorder.fills  # type: ignore[attr-defined]
    assert lock.state_hash == local.state_hash  # type: ignore[attr-defined]
