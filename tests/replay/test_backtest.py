"""Backtests over the real WebSocket server in lockstep: identical fills whether the strategy
answers in 0 ms or 50 ms, identical report bytes for the same files and seed, the lockstep
protocol methods, and the `replay` / `backtest` commands. Every message a client of these
tests sends or receives (the strategies' and the session's own clients included) is checked
against docs/asyncapi.yaml."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import clients.client
import replay.strategy
from clients.client import ApiError, Client
from exchange.protocol import METHODS
from exchange.testing import Schemas, running_stack
from replay.backtest import SessionOptions, parse_duration, parse_time, run_session
from replay.cli_commands import backtest_command, replay_command
from replay.lockstep import Lockstep, attach, protocol_methods
from replay.player import market_info
from replay.population import PopulationSpec
from replay.strategy import Step, Strategy
from replay.testdata import ohlcv_bars, write_tardis_session, write_text

S = Schemas()
SYM = "BTCUSDT"
REPORT_FILES = (
    "fills.csv",
    "positions.csv",
    "equity.csv",
    "prices.csv",
    "liquidations.csv",
    "cascades.csv",
    "funding.csv",
    "summary.json",
    "report.html",
)


def traced(c: Client) -> Client:
    """`c`, checking every message it sends and receives against the schemas. A failure is
    recorded in `S.failures` (checked after each test) and, for a request, also raised."""
    check = S.tracer()

    def trace(direction: str, msg: dict[str, Any]) -> None:
        try:
            check(direction, msg)
        except AssertionError as e:
            S.failures.append(str(e))
            raise

    c.trace = trace
    return c


class TracedClient(Client):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        traced(self)


@pytest.fixture(autouse=True)
def _schema_checked_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the clients `run_session` makes (its admin client, the strategy's) are traced too
    monkeypatch.setattr(clients.client, "Client", TracedClient)
    monkeypatch.setattr(replay.strategy, "Client", TracedClient)
    S.failures.clear()
    yield
    assert not S.failures, S.failures[:3]


class Flipper(Strategy):
    """Trades every step in a 4-step cycle: take, quote both sides, cancel, close. Sleeps
    `delay` seconds first in every step (fills must not depend on it)."""

    def __init__(self, delay: str = "0", qty: str = "0.050") -> None:
        self.delay = float(delay)
        self.qty = Decimal(qty)

    async def on_start(self) -> None:
        await self.client.set_leverage(SYM, 20)

    async def on_step(self, step: Step) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        bid, ask = step.best_bid(SYM), step.best_ask(SYM)
        phase = step.step % 4
        if phase == 1 and ask is not None:
            await self.client.place_order(SYM, "BUY", self.qty)
        elif phase == 2 and bid is not None and ask is not None:
            await self.client.place_order(SYM, "BUY", self.qty, bid)
            await self.client.place_order(SYM, "SELL", self.qty, ask)
        elif phase == 3:
            await self.client.cancel_all(SYM)
        elif phase == 0:
            pos = await self.client.position(SYM)
            amt = Decimal(pos["positionAmt"]) if pos else Decimal(0)
            if amt:
                side = "SELL" if amt > 0 else "BUY"
                await self.client.place_order(SYM, side, abs(amt), reduce_only=True)


def session(data: list[Path], out: Path, delay: str, **kw: object) -> SessionOptions:
    opts = SessionOptions(
        data=[str(p) for p in data],
        trades=True,
        port=0,
        lockstep=True,
        step_ns=10**9,
        strategy="tests.replay.test_backtest:Flipper",
        strategy_params={"delay": delay},
        report=out,
        sample_ns=10**9,
        progress=False,
        population=PopulationSpec(accounts=40, seed=5, leverage=((50, 1), (100, 1))),
        mark_method="median",
    )
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


@pytest.fixture(scope="module")
def tardis(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_tardis_session(tmp_path_factory.mktemp("tardis"), seconds=24, seed=3)


def test_lockstep_fills_do_not_depend_on_how_fast_the_strategy_answers(
    tardis: list[Path], tmp_path: Path
) -> None:
    fast = asyncio.run(run_session(session(tardis, tmp_path / "fast", "0")))
    slow = asyncio.run(run_session(session(tardis, tmp_path / "slow", "0.05")))
    for r in (fast, slow):
        assert r.strategy is not None and r.strategy.errors == []
        assert r.strategy.steps == 25  # seconds 0 … 24 of the session
        assert r.lockstep is not None and r.lockstep["timeouts"] == 0
        assert not r.report_incomplete
    fills = (tmp_path / "fast" / "fills.csv").read_text()
    assert fills.count("\n") > 10  # the strategy really traded (market, maker and closing fills)
    assert "maker" in fills and "taker" in fills
    for name in REPORT_FILES:
        if name != "summary.json":
            assert (tmp_path / "fast" / name).read_bytes() == (
                tmp_path / "slow" / name
            ).read_bytes(), name
    assert fast.state_hash == slow.state_hash


def test_same_files_and_seed_give_a_byte_identical_report(
    tardis: list[Path], tmp_path: Path
) -> None:
    runs = [asyncio.run(run_session(session(tardis, tmp_path / f"r{i}", "0"))) for i in range(2)]
    for name in REPORT_FILES:
        assert (tmp_path / "r0" / name).read_bytes() == (tmp_path / "r1" / name).read_bytes(), name
    html = (tmp_path / "r0" / "report.html").read_text()
    # interactive plotly charts, plotly.js inlined from the package: no external resource
    assert html.count('id="chart-') >= 3 and "<script src=" not in html
    assert html.count("* plotly.js v") == 1  # the library, inlined once
    assert runs[0].summary == runs[1].summary
    other = asyncio.run(
        run_session(
            session(
                tardis,
                tmp_path / "seed6",
                "0",
                population=PopulationSpec(accounts=40, seed=6, leverage=((50, 1), (100, 1))),
            )
        )
    )
    assert other.state_hash != runs[0].state_hash  # the seed matters


async def test_lockstep_protocol_methods_over_the_websocket() -> None:
    with protocol_methods():
        async with running_stack(clock="stepped") as stack:
            lock = Lockstep(timeout=5)
            attach(stack.runtime, lock)
            async with traced(Client(stack.url, admin_token=stack.admin_token)) as admin:
                acct = await admin.create_account(deposit="1000")
            async with traced(
                Client(stack.url, api_key=acct["apiKey"], secret=acct["secret"])
            ) as c:
                st = await c.request("replay.status")
                assert st["lockstep"] is True and st["step"] == 0
                first = await c.request("replay.register")
                assert first["step"] == 0 and first["done"] is False
                waiting = asyncio.ensure_future(c.request("replay.ready", {"step": 0}))
                await asyncio.sleep(0.05)
                assert not waiting.done()  # nothing published yet
                info = market_info(stack.exchange)
                barrier = asyncio.ensure_future(lock.barrier(1, 123, info))
                got = await waiting
                assert got["step"] == 1 and got["ts"] == 123
                assert got["markets"][SYM]["mark"] is None  # no price yet: null
                await asyncio.sleep(0.05)
                assert not barrier.done()  # waits for this strategy's ready(1)
                st = await c.request("replay.status")
                assert st["step"] == 1 and st["participants"] == 1 and st["timeouts"] == 0
                nxt = asyncio.ensure_future(c.request("replay.ready", {"step": 1}))
                await asyncio.wait_for(barrier, 2)
                lock.finish({})
                assert (await nxt)["done"] is True
            attach(stack.runtime, None)
            async with traced(
                Client(stack.url, api_key=acct["apiKey"], secret=acct["secret"])
            ) as c:
                assert await c.request("replay.status") == {"lockstep": False}
                with pytest.raises(ApiError) as err:
                    await c.request("replay.register")
                assert err.value.code == -1130
                with pytest.raises(ApiError) as err:
                    await c.request("replay.ready", {"step": 0})
                assert err.value.code == -1130
            async with traced(Client(stack.url)) as anon:  # not logged on
                assert (await anon.request("replay.status"))["lockstep"] is False
                with pytest.raises(ApiError) as err:
                    await anon.request("replay.register")
                assert err.value.code == -2015
    assert "replay.ready" not in METHODS  # removed again: the protocol's own tests see it clean


def test_a_late_strategy_times_out_and_is_counted() -> None:
    async def main() -> Lockstep:
        lock = Lockstep(timeout=0.05)
        lock.register("slow")
        await lock.barrier(1, 1, {})
        return lock

    lock = asyncio.run(main())
    assert lock.timeouts == 1 and lock.late == {"slow": 1}


def test_liquidation_policy_replaces_every_instruments_or_keeps_them() -> None:
    from replay.backtest import build_instruments

    assert {i.liquidation_policy for i in build_instruments()} == {"binance"}
    got = build_instruments(liquidation_policy="dydx", mark_method="last")
    assert {(i.liquidation_policy, i.mark_method) for i in got} == {("dydx", "last")}


def test_parse_helpers() -> None:
    assert parse_duration("1s") == 10**9
    assert parse_duration("250ms") == 250 * 10**6
    assert parse_duration("tick") == 1
    assert parse_time("2022-01-21T12:00") == 1642766400 * 10**9
    assert parse_time("1642766400000") == 1642766400 * 10**9
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_backtest_and_replay_commands(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("replay")(replay_command)
    app.command("backtest")(backtest_command)
    bars = write_text(tmp_path / "btc_1m.csv", ohlcv_bars(30, 1_640_995_200))
    out = tmp_path / "report"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "backtest",
            "--data",
            str(bars),
            "--symbol",
            SYM,
            "--strategy",
            "replay.strategy:Threshold",
            "--param",
            "band=0.0005",
            "--synthetic",
            "3,2,5,5",
            "--population",
            "50",
            "--step",
            "1m",
            "--out",
            str(out),
            "--no-progress",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    # 30 bars of a minute: one step per bar, closing when its bar ends
    assert "report:" in res.output and "30 steps" in res.output
    assert " 0 fills" not in res.output
    for name in REPORT_FILES:
        assert (out / name).exists(), name
    res = runner.invoke(
        app,
        [
            "replay",
            str(bars),
            "--symbol",
            SYM,
            "--speed",
            "0",
            "--linger",
            "0",
            "--port",
            "0",
            "--population",
            "20",
            "--report",
            str(tmp_path / "r2"),
            "--liquidation-policy",
            "hyperliquid",
            "--no-progress",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    assert "replayed 30 events" in res.output
    assert (tmp_path / "r2" / "report.html").exists()
    assert "hyperliquid" in (tmp_path / "r2" / "report.html").read_text()
    res = runner.invoke(app, ["replay", str(bars), "--liquidation-policy", "ftx"])
    assert res.exit_code != 0 and "--liquidation-policy" in res.output
    res = runner.invoke(app, ["backtest", "--data", str(bars), "--strategy", "nope"])
    assert res.exit_code != 0
