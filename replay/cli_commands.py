"""`margincall replay`, `margincall backtest` and `margincall record`: typer command functions.

Registered in `exchange/cli.py` with::

    from replay.cli_commands import backtest_command, record_command, replay_command
    app.command("replay")(replay_command)
    app.command("backtest")(backtest_command)
    app.command("record")(record_command)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from replay.errors import ReplayFormatError

if TYPE_CHECKING:
    from replay.backtest import SessionOptions
    from replay.player import SyntheticBook
    from replay.population import PopulationSpec

# Only typer at import time: `margincall --help` and `margincall replay --help` must not
# load the core, the readers or the server; each command imports what it runs.

__all__ = ["backtest_command", "record_command", "replay_command"]

DataFiles = Annotated[list[Path], typer.Argument(help="Data files (any format replay reads).")]
Symbol = Annotated[
    str | None,
    typer.Option(help="Instrument for files without a symbol column, or whose symbol is unknown."),
]
By = Annotated[str, typer.Option(help="Merge and replay by 'exchange' or 'local' timestamps.")]
Instruments = Annotated[Path | None, typer.Option(help="Instruments TOML (default: shipped).")]
MarkMethod = Annotated[
    str,
    typer.Option(
        help="Mark method for the replay: index (mark = the replayed reference price), last, "
        "mid, median, or 'instrument' (keep the file's)."
    ),
]
Reference = Annotated[
    str, typer.Option(help="Recorded price that drives the index: 'index' or 'mark'.")
]
LiquidationPolicyOpt = Annotated[
    str,
    typer.Option(
        "--liquidation-policy",
        help="Liquidation policy for every instrument: binance, bitmex, hyperliquid, dydx, "
        "or 'instrument' (keep the file's).",
    ),
]
Start = Annotated[str | None, typer.Option(help="Replay from this time (ISO 8601 UTC or epoch).")]
End = Annotated[str | None, typer.Option(help="Replay until this time (exclusive).")]
Trades = Annotated[bool, typer.Option(help="Replay recorded trades as taker flow.")]
Book = Annotated[bool, typer.Option(help="Mirror recorded L2 books / quotes as liquidity.")]
Synthetic = Annotated[
    str | None,
    typer.Option(
        help="Quote liquidity around the index where no book is recorded: "
        "LEVELS,SPREAD_BPS,STEP_BPS,QTY (e.g. 3,2,5,5), or 'none'."
    ),
]
DEFAULT_SYNTHETIC = "3,2,5,5"  # backtests on bars: 3 levels a side, 2 bp spread, 5 BTC each
Funding = Annotated[bool, typer.Option(help="Pay funding (off: interest rate and clamp 0).")]
Population = Annotated[int, typer.Option(help="Leveraged population: number of accounts.")]
Seed = Annotated[int, typer.Option(help="Population seed.")]
LongShare = Annotated[str, typer.Option(help="Population: share of longs (0..1).")]
Leverage = Annotated[
    str, typer.Option(help="Population: leverage:weight list, e.g. '5:1,20:2,100:1'.")
]
Notional = Annotated[str, typer.Option(help="Population: notional range LO:HI (quote asset).")]
Spread = Annotated[str, typer.Option(help="Population: entry spread around the mark (fraction).")]
OpenOver = Annotated[
    str | None, typer.Option(help="Population: open positions along this span (e.g. 6h).")
]
Step = Annotated[str, typer.Option(help="Step length in replay time (e.g. 1s, 1m, tick).")]
Sample = Annotated[str, typer.Option(help="Report sampling interval in replay time.")]
Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="TCP port (0: any free port).")]
Token = Annotated[
    str | None, typer.Option(envvar="MARGINCALL_ADMIN_TOKEN", help="Admin token (default random).")
]
ProgressOpt = Annotated[bool, typer.Option(help="Show the progress bar.")]


def _population(
    n: int, seed: int, long_share: str, leverage: str, notional: str, spread: str, over: str | None
) -> PopulationSpec | None:
    if n <= 0:
        return None
    from replay.backtest import parse_duration
    from replay.population import PopulationSpec

    try:
        levs = tuple(
            (int(a), int(b))
            for a, _, b in (item.partition(":") for item in leverage.split(",") if item)
        )
        lo, _, hi = notional.partition(":")
        return PopulationSpec(
            accounts=n,
            seed=seed,
            long_share=Decimal(long_share),
            leverage=levs,
            notional=(Decimal(lo), Decimal(hi or lo)),
            entry_spread=Decimal(spread),
            open_over_ns=parse_duration(over) if over else 0,
        )
    except (ValueError, InvalidOperation) as e:
        raise typer.BadParameter(f"population: {e}") from None


def _synthetic(text: str | None) -> SyntheticBook | None:
    if not text or text.strip().lower() in ("none", "off", "no", "0"):
        return None
    from replay.player import SyntheticBook

    try:
        levels, spread, step, qty = text.split(",")
        return SyntheticBook(int(levels), int(spread) * 100, int(step) * 100, Decimal(qty))
    except (ValueError, InvalidOperation):
        raise typer.BadParameter(
            "expected LEVELS,SPREAD_BPS,STEP_BPS,QTY", param_hint="--synthetic"
        ) from None


def _common(
    data: list[Path],
    symbol: str | None,
    by: str,
    instruments: Path | None,
    mark_method: str,
    reference: str,
    start: str | None,
    end: str | None,
    trades: bool,
    book: bool,
    synthetic: str | None,
    funding: bool,
    population: PopulationSpec | None,
    step: str,
    sample: str,
    liquidation_policy: str = "instrument",
) -> SessionOptions:
    from exchange.core.instruments import LIQUIDATION_POLICIES
    from replay.backtest import SessionOptions, parse_duration, parse_time

    for p in data:
        if not p.exists():
            raise typer.BadParameter(f"no such file: {p}", param_hint="FILES")
    if by not in ("exchange", "local"):
        raise typer.BadParameter("exchange or local", param_hint="--by")
    if mark_method not in ("index", "last", "mid", "median", "instrument"):
        raise typer.BadParameter(
            "index, last, mid, median or instrument", param_hint="--mark-method"
        )
    if liquidation_policy not in (*LIQUIDATION_POLICIES, "instrument"):
        raise typer.BadParameter(
            f"{', '.join(LIQUIDATION_POLICIES)} or instrument", param_hint="--liquidation-policy"
        )
    if reference not in ("index", "mark"):
        raise typer.BadParameter("index or mark", param_hint="--reference")
    try:
        start_ns = parse_time(start) if start else None
        end_ns = parse_time(end) if end else None
        step_ns = parse_duration(step)
        sample_ns = parse_duration(sample)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return SessionOptions(
        data=[str(p) for p in data],
        symbol=symbol,
        by=by,
        instruments=instruments,
        mark_method=None if mark_method == "instrument" else mark_method,
        liquidation_policy=None if liquidation_policy == "instrument" else liquidation_policy,
        reference=reference,
        funding=funding,
        book=book,
        trades=trades,
        synthetic=_synthetic(synthetic),
        start_ns=start_ns,
        end_ns=end_ns,
        population=population,
        step_ns=step_ns,
        sample_ns=sample_ns,
    )


def _run(opts: SessionOptions, on_ready: Any) -> Any:
    from replay.backtest import run_session
    from replay.player import UnknownSymbol
    from replay.strategy import StrategyLoadError

    logging.basicConfig(level=logging.WARNING)
    # What is alive now (the modules, their functions and classes) outlives the session:
    # frozen, the cyclic collector's full passes over a long replay skip it (thawed after,
    # so a caller in the same process, a test, loses nothing to the collector).
    gc.freeze()
    try:
        return asyncio.run(run_session(opts, on_ready=on_ready))
    except (ReplayFormatError, UnknownSymbol, StrategyLoadError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        gc.unfreeze()


def replay_command(
    data: DataFiles,
    symbol: Symbol = None,
    by: By = "exchange",
    instruments: Instruments = None,
    mark_method: MarkMethod = "index",
    liquidation_policy: LiquidationPolicyOpt = "instrument",
    reference: Reference = "index",
    start: Start = None,
    end: End = None,
    trades: Trades = False,
    book: Book = True,
    synthetic: Synthetic = None,
    funding: Funding = True,
    population: Population = 0,
    seed: Seed = 1,
    long_share: LongShare = "0.6",
    leverage: Leverage = "3:10,5:15,10:25,20:25,50:15,100:10",
    notional: Notional = "1000:100000",
    entry_spread: Spread = "0.005",
    open_over: OpenOver = None,
    speed: Annotated[
        float, typer.Option(help="Replay time per wall time (60: a minute a second; 0: max).")
    ] = 0.0,
    lockstep: Annotated[
        bool, typer.Option(help="Wait after each step for every registered strategy.")
    ] = False,
    wait_for: Annotated[
        int, typer.Option(help="Lockstep: strategies to wait for before starting.")
    ] = 0,
    lockstep_timeout: Annotated[
        float, typer.Option(help="Lockstep: seconds per step at most.")
    ] = 10.0,
    step: Step = "1s",
    start_delay: Annotated[
        float, typer.Option(help="Seconds to wait after listening, before replaying.")
    ] = 0.0,
    linger: Annotated[
        float, typer.Option(help="Keep serving this many seconds after the end (-1: until Ctrl-C).")
    ] = 0.0,
    report: Annotated[Path | None, typer.Option(help="Also write a report folder here.")] = None,
    sample: Sample = "1m",
    host: Host = "127.0.0.1",
    port: Port = 8765,
    admin_token: Token = None,
    progress: ProgressOpt = True,
) -> None:
    """Serve a replay of FILES that clients can connect to and watch (stepped clock)."""
    pop = _population(population, seed, long_share, leverage, notional, entry_spread, open_over)
    opts = _common(data, symbol, by, instruments, mark_method, reference, start, end, trades,
                   book, synthetic, funding, pop, step, sample, liquidation_policy)  # fmt: skip
    opts.speed = speed or None
    opts.lockstep = lockstep
    opts.wait_for = wait_for
    opts.lockstep_timeout = lockstep_timeout
    opts.linger = linger
    opts.report = report
    opts.title = "margincall replay"
    opts.host, opts.port, opts.admin_token = host, port, admin_token
    opts.progress = progress and sys.stderr.isatty()

    opts.start_delay = start_delay

    def ready(url: str, token: str) -> None:
        note = "" if admin_token else f" (admin token {token})"
        pace = f"at {speed:g}x real time" if speed else "as fast as possible"
        wait = f", waiting for {wait_for} lockstep strategies" if lockstep and wait_for else ""
        end = (
            "then serving until Ctrl-C" if linger < 0
            else f"then serving {linger:g} s more" if linger else "then exiting"
        )  # fmt: skip
        typer.echo(f"margincall replay on {url}{note}", err=True)
        typer.echo(
            f"replaying {', '.join(p.name for p in data)} {pace}{wait}, {end} "
            "(--speed 60: a minute a second; --linger -1: keep serving)",
            err=True,
        )

    res = _run(opts, ready)
    st = res.player.stats
    typer.echo(
        f"replayed {st.events - st.out_of_window} events ({st.commands} commands), "
        f"{len(res.recorder.liquidations)} liquidations in {len(res.recorder.cascades)} cascades",
        err=True,
    )
    if report is not None:
        typer.echo(f"report: {report / 'report.html'}", err=True)


def backtest_command(
    data: Annotated[
        list[Path],
        typer.Option("--data", help="Data file (repeat, or comma-separate, for several)."),
    ],
    strategy: Annotated[str, typer.Option(help="The strategy, as module:Class.")],
    param: Annotated[
        list[str] | None, typer.Option(help="Strategy keyword argument key=value (repeatable).")
    ] = None,
    deposit: Annotated[str, typer.Option(help="The strategy account's deposit (USDT).")] = "10000",
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("backtest-report"),
    symbol: Symbol = None,
    by: By = "exchange",
    instruments: Instruments = None,
    mark_method: MarkMethod = "index",
    liquidation_policy: LiquidationPolicyOpt = "instrument",
    reference: Reference = "index",
    start: Start = None,
    end: End = None,
    trades: Trades = True,
    book: Book = True,
    synthetic: Synthetic = DEFAULT_SYNTHETIC,
    funding: Funding = True,
    population: Population = 0,
    seed: Seed = 1,
    long_share: LongShare = "0.6",
    leverage: Leverage = "3:10,5:15,10:25,20:25,50:15,100:10",
    notional: Notional = "1000:100000",
    entry_spread: Spread = "0.005",
    open_over: OpenOver = None,
    step: Step = "1s",
    sample: Sample = "1m",
    timeout: Annotated[float, typer.Option(help="Seconds a step waits for the strategy.")] = 10.0,
    host: Host = "127.0.0.1",
    port: Port = 0,
    progress: ProgressOpt = True,
    engine: Annotated[
        str,
        typer.Option(
            help="inprocess: the strategy against the core in this process (fast); "
            "websocket: through a lockstep server over a real WebSocket (same fills)."
        ),
    ] = "inprocess",
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help="Sweep a strategy parameter: name=v1,v2,... (repeat for a grid); runs every "
            "combination in parallel worker processes and writes OUT/sweep.csv."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Sweep: worker processes (0: CPU count).")] = 0,
) -> None:
    """Run STRATEGY over the data (in-process, or in lockstep over a WebSocket); write a
    report, or with --sweep a table of statistics per parameter combination."""
    if engine not in ("inprocess", "websocket"):
        raise typer.BadParameter("inprocess or websocket", param_hint="--engine")
    pop = _population(population, seed, long_share, leverage, notional, entry_spread, open_over)
    data = [Path(part) for p in data for part in str(p).split(",") if part]
    opts = _common(data, symbol, by, instruments, mark_method, reference, start, end, trades,
                   book, synthetic, funding, pop, step, sample, liquidation_policy)  # fmt: skip
    params: dict[str, str] = {}
    for item in param or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--param")
        params[k] = v
    try:
        opts.deposit = Decimal(deposit)
    except InvalidOperation:
        raise typer.BadParameter("a decimal amount", param_hint="--deposit") from None
    from replay.strategy import StrategyLoadError, load_strategy

    try:
        load_strategy(strategy, params)  # fail before starting anything
    except StrategyLoadError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    opts.strategy = strategy
    opts.strategy_params = params
    opts.lockstep = True
    opts.lockstep_timeout = timeout
    opts.report = out
    opts.host, opts.port = host, port
    opts.progress = progress and sys.stderr.isatty()
    if sweep:
        _sweep(opts, sweep, workers, out)
        return
    if engine == "inprocess":
        res = _run_inprocess(opts)
    else:
        res = _run(opts, None)
    s = res.summary or {}
    subj = s.get("subjects", {}).get(str(res.strategy_account), {})
    typer.echo(
        f"strategy {strategy}: {res.strategy.steps if res.strategy else 0} steps, "
        f"{subj.get('fills', 0)} fills, return {subj.get('return', '-')}, "
        f"max drawdown {subj.get('max_drawdown', '-')}",
        err=True,
    )
    if res.strategy and res.strategy.errors:
        typer.echo(
            f"strategy errors ({len(res.strategy.errors)}): {res.strategy.errors[0]}", err=True
        )
    lock = getattr(res, "lockstep", None)
    if lock and lock["timeouts"]:
        typer.echo(f"warning: {lock['timeouts']} steps timed out waiting", err=True)
    for w in res.warnings:
        typer.echo(f"WARNING: {w}", err=True)
    typer.echo(f"report: {out / 'report.html'}", err=True)


def record_command(
    symbol: Annotated[
        list[str], typer.Option("--symbol", help="Symbol to record (repeat for several).")
    ],
    out: Annotated[Path, typer.Option(help="Event log to write (gzip when it ends in .gz).")],
    url: Annotated[str, typer.Option(help="Server URL.")] = "ws://127.0.0.1:8765",
    duration: Annotated[
        float, typer.Option(help="Seconds to record (0: until Ctrl-C or the server closes).")
    ] = 0.0,
    book: Annotated[bool, typer.Option(help="Record the order book (snapshot, deltas).")] = True,
) -> None:
    """Record a running server's trades, marks, book and liquidations into an event log."""
    from rich.console import Console
    from rich.table import Table

    from replay.record import Recorder, RecordError

    if duration < 0:
        raise typer.BadParameter("must be 0 or positive", param_hint="--duration")
    symbols = [s for item in symbol for s in item.split(",") if s]
    if not symbols:
        raise typer.BadParameter("at least one symbol", param_hint="--symbol")
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True, soft_wrap=True)

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        rec = Recorder(url, symbols, out, book=book)
        task = asyncio.create_task(rec.run(duration or None, stop))
        ready = asyncio.create_task(rec.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            until = f" for {duration:g} s" if duration else " until Ctrl-C"
            console.print(f"recording {', '.join(symbols)} from {url} into {out}{until}")
        ready.cancel()
        return await task

    try:
        stats = asyncio.run(main())
    except RecordError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # only before the handlers are installed
        raise typer.Exit(130) from None
    table = Table(title=f"{out}: {stats.events} events in {stats.seconds:.1f} s ({stats.reason})")
    table.add_column("event")
    table.add_column("written", justify="right")
    for name in ("ticker", "trade", "book", "liquidation"):
        table.add_row(name, str(stats.counts.get(name, 0)))
    console.print(table)
    if book:
        console.print(
            f"book: {stats.snapshots} snapshot{'' if stats.snapshots == 1 else 's'} "
            f"({stats.resyncs} after a bookSeq gap)"
        )
    if stats.bad:
        console.print(f"[yellow]{stats.bad} messages could not be converted (skipped)[/yellow]")


def _run_inprocess(opts: SessionOptions) -> Any:
    from replay.inprocess import run_inprocess
    from replay.player import UnknownSymbol
    from replay.strategy import StrategyLoadError

    try:
        return asyncio.run(run_inprocess(opts))
    except (ReplayFormatError, UnknownSymbol, StrategyLoadError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _sweep(opts: SessionOptions, items: list[str], workers: int, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from replay.player import UnknownSymbol
    from replay.sweep import parse_sweep, sweep

    try:
        grid = parse_sweep(items)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--sweep") from None
    opts.report = None
    try:
        table = sweep(opts, None, grid, workers=workers or None)
    except (ReplayFormatError, UnknownSymbol, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sweep.csv", index=False)
    shown = [*grid, "total_return", "sharpe", "max_drawdown", "trades", "win_rate", "fees"]
    t = Table(title=f"sweep of {opts.strategy}: {len(table)} combinations")
    for col in shown:
        t.add_column(col, justify="right")
    for _, row in table.iterrows():
        t.add_row(*(_cell(row[c]) for c in shown))
    Console(stderr=False, soft_wrap=True).print(t)
    typer.echo(f"table: {out / 'sweep.csv'}", err=True)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
