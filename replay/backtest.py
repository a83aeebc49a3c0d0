"""Serve a replay, or run a backtest: the player, the server, strategies and the report.

`run_session(opts)` is what `margincall replay` and `margincall backtest` run:

1. an `Exchange` on the chosen instruments (mark method overridable), a stepped-clock
   runtime and the WebSocket server (`exchange.stack.start_stack`), with the `replay.*`
   lockstep methods installed;
2. the replay account and, optionally, a leveraged population, created through the runtime
   (after the server started, so users' accounts keep the small ids);
3. with `--strategy`: an account for it (over the WebSocket, with `admin.createAccount`) and
   the strategy itself, in this process but talking to the server over a real WebSocket;
4. the player through the runtime (each event's commands applied in place while nobody
   else submits, `Runtime.handle_now`), paced (`speed`), as fast as possible, or in
   lockstep; a rich progress bar, whose total is counted in another process meanwhile;
5. the report folder (`replay.report`) from a runtime subscription and per-step samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument
from replay.events import Event
from replay.formats import read_merged
from replay.lockstep import Lockstep, attach, install_methods, methods_installed, uninstall_methods
from replay.player import REPLAY_ACCOUNT, Pacing, Player, PlayerConfig, SyntheticBook, play_async
from replay.population import Population, PopulationSpec
from replay.report import Recorder, iso, write_report

if TYPE_CHECKING:
    from replay.strategy import StrategyRun

__all__ = [
    "SessionOptions",
    "SessionResult",
    "build_instruments",
    "count_events",
    "parse_duration",
    "parse_time",
    "run_session",
    "session_player_config",
]

_DUR = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
        "d": 86400 * 10**9}  # fmt: skip


def parse_duration(text: str) -> int:
    """`"1s"`, `"250ms"`, `"1m"`, `"4h"`, `"1d"`, `"tick"` (1 ns) → ns."""
    t = text.strip().lower()
    if t == "tick":
        return 1
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)", t)
    if not m:
        raise ValueError(f"bad duration {text!r}: expected e.g. 1s, 250ms, 1m, 4h, tick")
    ns = int(Decimal(m.group(1)) * _DUR[m.group(2)])
    if ns <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return ns


def parse_time(text: str) -> int:
    """An ISO 8601 date-time (UTC unless it says otherwise) or an epoch number → ns."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        v = Decimal(t)
        for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
            if v < limit:
                return int(v * scale)
        return int(v)
    dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def build_instruments(
    path: str | Path | None = None,
    *,
    mark_method: str | None = None,
    liquidation_policy: str | None = None,
    max_open_orders: int | None = None,
    funding: bool = True,
    symbols: list[str] | None = None,
) -> list[Instrument]:
    """The instruments for a replay exchange: the file's (default: the shipped ones), with
    the mark method and the liquidation policy replaced, the per-account open-order limit raised to at least
    `max_open_orders` (the replay account holds one order per mirrored level), and, with
    `funding=False`, interest rate and clamp 0 (funding then only pays the premium, which is
    0 without a book); with `symbols`, only those (an unknown one is an error)."""
    from exchange.config import load_instruments

    out = []
    insts = load_instruments(path)
    if symbols is not None:
        known = {i.symbol for i in insts}
        missing = [s for s in symbols if s not in known]
        if missing:
            raise ValueError(
                f"no instrument {', '.join(missing)} (known: {', '.join(sorted(known))})"
            )
        insts = [i for i in insts if i.symbol in symbols]
    for inst in insts:
        changes: dict[str, Any] = {}
        if mark_method is not None:
            changes["mark_method"] = mark_method
        if liquidation_policy is not None:
            changes["liquidation_policy"] = liquidation_policy
        if max_open_orders is not None and inst.max_open_orders < max_open_orders:
            changes["max_open_orders"] = max_open_orders
        if not funding:
            changes["interest_rate"] = 0
            changes["funding_clamp"] = 0
        out.append(dataclasses.replace(inst, **changes) if changes else inst)
    return out


def count_events(paths: list[str], *, by: str, symbol: str | None, limit_bytes: int) -> int | None:
    """How many events the files hold (for the progress bar), if they are small enough to
    read twice (at most `limit_bytes` on disk, compressed or not); else None."""
    try:
        size = sum(os.path.getsize(p) for p in paths)
    except OSError:
        return None
    if size > limit_bytes:
        return None
    merge_by: Any = by
    return sum(1 for _ in read_merged(paths, by=merge_by, symbol=symbol))


def _count_elsewhere(opts: SessionOptions) -> tuple[Any, Any]:
    """Start counting the events for the progress bar in another process, so that the
    replay does not read its files twice before it starts (nor share the interpreter's
    lock with the count): the bar gets its total when the count is done."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    fut = pool.submit(
        count_events, opts.data, by=opts.by, symbol=opts.symbol, limit_bytes=opts.count_limit_bytes
    )
    return pool, fut


@dataclass
class SessionOptions:
    data: list[str]
    symbol: str | None = None
    by: str = "exchange"
    instruments: Path | None = None
    mark_method: str | None = "index"
    liquidation_policy: str | None = None  # None: each instrument's
    reference: str = "index"
    funding: bool = True
    book: bool = True
    trades: bool = False
    synthetic: SyntheticBook | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    max_open_orders: int = 2000
    population: PopulationSpec | None = None
    # serving
    host: str = "127.0.0.1"
    port: int = 8765
    admin_token: str | None = None
    # pacing
    speed: float | None = None
    lockstep: bool = False
    lockstep_timeout: float = 10.0
    wait_for: int = 0  # strategies to wait for before starting (lockstep)
    start_timeout: float = 30.0
    step_ns: int = 10**9
    # strategy and report
    strategy: str | None = None
    strategy_params: dict[str, str] = field(default_factory=dict)
    deposit: Decimal = Decimal(10_000)
    report: Path | None = None
    sample_ns: int = 60 * 10**9
    title: str = "margincall backtest"
    start_delay: float = 0.0  # seconds between listening and replaying
    linger: float = 0.0  # seconds to keep serving after the replay ends (-1: until stopped)
    progress: bool = True
    count_limit_bytes: int = 64 * 2**20
    unknown_symbols: str = "error"  # a recorded symbol that is no instrument (PlayerConfig)
    keep_events: bool = False  # keep every core event in the result (identity tests)
    # list only these instruments (every command then looks at fewer markets); None: all
    only_symbols: list[str] | None = None


@dataclass
class SessionResult:
    player: Player
    recorder: Recorder
    url: str
    admin_token: str
    summary: dict[str, Any] | None = None
    strategy: StrategyRun | None = None
    strategy_account: int | None = None
    lockstep: dict[str, Any] | None = None
    report_incomplete: bool = False
    state_hash: str = ""
    events: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)


def session_player_config(opts: SessionOptions) -> PlayerConfig:
    """The player's configuration for a session (the lockstep's and the in-process one's)."""
    return PlayerConfig(
        unknown_symbols=opts.unknown_symbols,
        default_symbol=opts.symbol,
        clock="local" if opts.by == "local" else "exchange",
        reference="mark" if opts.reference == "mark" else "index",
        book=opts.book,
        trades=opts.trades,
        start_ns=opts.start_ns,
        end_ns=opts.end_ns,
        synthetic=opts.synthetic,
    )


class _Progress:
    """The rich progress bar: events replayed (of the total when known), replay time."""

    def __init__(self, enabled: bool, total: int | None, label: str, counting: Any = None) -> None:
        self.enabled = enabled
        self._counting = counting  # (executor, future) of the total, counted elsewhere
        self._drawn = 0.0
        self._p: Any = None
        self._task: Any = None
        self.total = total
        self.label = label
        self.liquidations = 0
        self.step = 0  # the last step shown

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
                # redrawn from `update` (every few thousand events), at most 10 times a
                # second: rich's own refresh thread would take the interpreter's lock from
                # the replay ten times a second
                auto_refresh=False,
            )
            self._p.__enter__()
            self._task = self._p.add_task(self.label, total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._counting is not None:
            pool, fut = self._counting
            fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            self._counting = None
        if self._p is not None:
            self._p.__exit__(*exc)

    def update(self, player: Player, step: int, liquidations: int, final: bool = False) -> None:
        self.step = step
        if self._p is None:
            return
        if self._counting is not None and self._counting[1].done():
            fut = self._counting[1]
            self._counting[0].shutdown(wait=False)
            self._counting = None
            if not fut.cancelled() and fut.exception() is None and fut.result() is not None:
                self.total = fut.result()
                self._p.update(self._task, total=self.total)
        ts = player.last_ts
        when = iso(ts)[:19].replace("T", " ") if ts else "-"
        info = f"{when} · step {step} · {liquidations} liquidations"
        self._p.update(self._task, completed=player.stats.events, info=info)
        now = time.monotonic()
        if now - self._drawn >= 0.1 or final:
            self._drawn = now
            self._p.refresh()


async def run_session(
    opts: SessionOptions,
    *,
    on_ready: Callable[[str, str], Any] | None = None,
    events: Iterator[Event] | None = None,
) -> SessionResult:
    """Run a replay session (see the module docstring). `on_ready(url, admin_token)` is
    called once the server listens, before the replay starts."""
    from exchange.stack import ServeOptions, start_stack, stop_stack

    installed_here = not methods_installed()
    install_methods()
    token = opts.admin_token or secrets.token_urlsafe(16)
    instruments = build_instruments(
        opts.instruments,
        mark_method=opts.mark_method,
        liquidation_policy=opts.liquidation_policy,
        max_open_orders=opts.max_open_orders,
        funding=opts.funding,
        symbols=opts.only_symbols,
    )
    ex = Exchange(instruments)
    sopts = ServeOptions(
        host=opts.host,
        port=opts.port,
        clock="stepped",
        admin_token=token,
        rate_limit=None,
        tick_interval=None,
    )
    sopts.extra["exchange"] = ex
    try:
        stack = await start_stack(sopts)
        runtime, server = stack.runtime, stack.server
    except BaseException:
        if installed_here:
            uninstall_methods()
        raise
    lock = Lockstep(opts.lockstep_timeout) if opts.lockstep else None
    attach(runtime, lock)
    population = Population(opts.population) if opts.population is not None else None
    recorder = Recorder(
        ex.instruments,
        replay_accounts={REPLAY_ACCOUNT},
        population=set(population.accounts) if population is not None else set(),
        sample_ns=opts.sample_ns,
    )
    sub = runtime.subscribe("report", maxsize=1_000_000, policy="close")
    kept: list[Any] | None = [] if opts.keep_events else None

    async def consume() -> None:
        async for batch in sub:
            recorder.record(batch)
            if kept is not None:
                kept.extend(batch)

    consumer = asyncio.create_task(consume(), name="margincall-report")
    result_strategy: StrategyRun | None = None
    strat_task: asyncio.Task[StrategyRun] | None = None
    strat_account: int | None = None
    try:
        if on_ready is not None:
            on_ready(server.url, token)
        if opts.start_delay > 0:
            await asyncio.sleep(opts.start_delay)
        if opts.strategy:
            from clients.client import Client
            from replay.strategy import load_strategy, run_strategy

            strategy = load_strategy(opts.strategy, opts.strategy_params)
            async with Client(server.url, admin_token=token, reconnect=False) as admin:
                acct = await admin.create_account(deposit=opts.deposit)
            strat_account = acct["account"]
            recorder.subjects.add(strat_account)
            strat_task = asyncio.create_task(
                run_strategy(server.url, acct["apiKey"], acct["secret"], strategy),
                name="margincall-strategy",
            )
        wait_for = opts.wait_for + (1 if strat_task is not None else 0)
        if lock is not None and wait_for:
            ok = await lock.wait_for(wait_for, opts.start_timeout)
            if not ok and strat_task is not None and strat_task.done():
                strat_task.result()  # raise the strategy's connection error
        counting: Any = None
        if events is None:
            if opts.progress:
                counting = _count_elsewhere(opts)
            events = read_merged(opts.data, by=opts.by, symbol=opts.symbol)  # type: ignore[arg-type]
        with _Progress(opts.progress, None, "replay", counting) as bar:

            def progress(player: Player, step: int) -> None:
                bar.update(player, step, len(recorder.liquidations))

            def sample(step: int, ts: int) -> None:
                recorder.sample(ts, ex)

            player = await play_async(
                runtime,
                events,
                session_player_config(opts),
                population=population,
                pacing=Pacing(opts.speed),
                lockstep=lock,
                step_ns=opts.step_ns,
                on_step=sample,
                progress=progress,
            )
            bar.update(player, bar.step, len(recorder.liquidations), final=True)
        if strat_task is not None:
            result_strategy = await asyncio.wait_for(strat_task, 60)
        await _drain(runtime, sub)
        recorder.sample(ex.now, ex, force=True)
        result = SessionResult(
            player,
            recorder,
            server.url,
            token,
            strategy=result_strategy,
            strategy_account=strat_account,
            lockstep=lock.stats() if lock else None,
            report_incomplete=sub.overflowed,
            state_hash=ex.state_hash(),
            events=kept,
        )
        result.warnings = recorder.warnings(strat_account, player)
        if opts.report is not None:
            meta = {
                "data": " ".join(Path(p).name for p in opts.data),
                "strategy": opts.strategy or "",
                "mark_method": opts.mark_method or "instrument's",
                "liquidation_policy": opts.liquidation_policy or "instrument's",
                "reference": opts.reference,
                "step": f"{opts.step_ns} ns",
                "lockstep": "yes" if opts.lockstep else "no",
                "population": str(opts.population.accounts) if opts.population else "0",
                "seed": str(opts.population.seed) if opts.population else "",
                "player_commands": str(player.stats.commands),
                "replayed_events": str(player.stats.events - player.stats.out_of_window),
            }
            result.summary = write_report(opts.report, recorder, meta=meta, title=opts.title)
        if opts.linger:
            await _linger(opts.linger)
        return result
    finally:
        if strat_task is not None and not strat_task.done():
            strat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await strat_task
        if lock is not None and not lock.done:
            lock.finish({})
        sub.close()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        attach(runtime, None)
        await stop_stack(stack)
        if installed_here:
            uninstall_methods()


async def _drain(runtime: Any, sub: Any) -> None:
    """Wait until the engine is idle and the report subscription has been consumed."""
    for _ in range(2000):
        if runtime.stats()["queued"] == 0 and len(sub) == 0:
            await asyncio.sleep(0)
            if runtime.stats()["queued"] == 0 and len(sub) == 0:
                return
        await asyncio.sleep(0.005)


async def _linger(seconds: float) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), None if seconds < 0 else seconds)
