"""In-process backtests: the lockstep backtest without a server, a socket or JSON.

    from replay.inprocess import backtest

    result = backtest("bars_1m.csv", "mystrategies:Cross", symbol="BTCUSDT", step="1m")
    result.stats()          # total/annualised return, Sharpe, drawdown ... (pandas)
    result.fills()          # DataFrames: fills, orders, positions, equity, liquidations ...
    result.plot()           # the report's plotly figures, in a notebook
    result.report("out/")   # the report folder (CSV, summary.json, report.html)

The strategy is the same class `margincall backtest` runs over the WebSocket
(`replay.strategy.Strategy`): `self.client` is a `LocalClient`, which has every method of
`clients.Client` and answers each request through the protocol's own method handlers
(`exchange.protocol.params.METHODS`: the same validation, the same commands, the same result
dictionaries, the same error codes as `ApiError`), applied to the core at once.

**Identical to the lockstep.** The driver does what `margincall backtest` does, in the same
order: the strategy's account (`CreateAccount`, `Deposit`, as `admin.createAccount` does),
the strategy's `on_start`, the player's set-up, then the events; at each step close the
clock advances to the step's end, the report samples, and the strategy's `on_step` runs
with the step the lockstep server would have published; its requests are applied at that
step's time, before the replay goes on. Same data, options and seed → the same commands,
so the same events, fills and `state_hash()` as over the WebSocket
(`tests/replay/test_inprocess.py` compares both on real samples and on a crash with a
population).

What it skips, because nobody reads it: the JSON of every message, the WebSocket round trip
of each step (~0.7 ms), the runtime's queue and turns, and the text of the step's market table
(its prices are taken at the step's close and formatted only when the strategy reads them).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.client import ApiError, Client
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from replay.backtest import SessionOptions, build_instruments, session_player_config
from replay.builders import advance_clock
from replay.events import Event
from replay.formats import read_merged
from replay.player import REPLAY_ACCOUNT, Player, Stepper
from replay.population import Population
from replay.report import Recorder, write_report
from replay.strategy import Step, Strategy, StrategyRun, TickRow, load_strategy

if TYPE_CHECKING:
    from replay.results import BacktestResult

__all__ = ["LocalClient", "backtest", "backtest_async", "run_inprocess"]


class _DirectRuntime:
    """What the protocol's handlers need of a runtime: the exchange, a stepped clock and
    `apply_now` (and `submit_future`), which applies the command at once (stamped with
    engine time, as the stepped runtime does) and hands its events to `sink`."""

    clock = "stepped"

    def __init__(self, exchange: Exchange, sink: Any) -> None:
        self.exchange = exchange
        self.sink = sink
        self.requests = 0

    def apply_now(self, cmd: C.Command, *, owned: bool = False) -> list[E.Event]:
        if not cmd.ts:
            object.__setattr__(cmd, "ts", self.exchange.now)
        evs = self.exchange.handle(cmd)
        self.sink(evs)
        return evs

    def submit_future(self, cmd: C.Command, *, owned: bool = False) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(self.apply_now(cmd, owned=owned))
        return fut

    async def submit(self, cmd: C.Command, *, owned: bool = False) -> list[E.Event]:
        return await self.submit_future(cmd, owned=owned)  # type: ignore[no-any-return]


class LocalClient(Client):
    """`clients.Client` without a connection: each request goes through the protocol's
    method handler straight into the core (see the module docstring). Stream
    subscriptions work too (messages are formatted and delivered as the server would)."""

    def __init__(self, api: Any, account: int) -> None:
        super().__init__("inprocess:", reconnect=False)
        from exchange.protocol.session import Session

        self._session = Session(api, sink=self._dispatch)
        self._session.account = account
        self.account = account
        self._ready.set()
        self._connected.set()

    async def connect(self) -> Client:
        return self

    async def close(self) -> None:
        self._session.close()
        for s in self._streams.values():
            s._close()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        from exchange.core.errors import Code
        from exchange.protocol.params import METHODS, validate_params
        from exchange.protocol.wire import ProtocolError
        from exchange.units import UnitError

        s = self._session
        s.api.requests += 1
        m = METHODS.get(method)
        try:
            if m is None:
                raise ProtocolError(Code.INVALID_PARAMETER, f"Unknown method '{method[:64]}'.")
            if m.access == "admin":
                raise ProtocolError(Code.INVALID_KEY_OR_PERMISSION)
            p = validate_params(m, params or {})
            return await m.handler(s, p)
        except ProtocolError as e:
            raise ApiError(e.code, e.msg, e.status, method) from None
        except UnitError as e:
            raise ApiError(int(e.code), e.msg, 400, method) from None


def _markets(ex: Exchange) -> dict[str, TickRow]:
    """The step's market table: the keys and values `market_info` gives, in its order.
    O(symbols) integer reads; the text is made when read."""
    markets = ex.markets
    out: dict[str, TickRow] = {}
    for sym in sorted(markets) if len(markets) > 1 else markets:
        m = markets[sym]
        book = m.book
        out[sym] = TickRow(m.inst, (m.mark, m.index, m.last, book.best_bid(), book.best_ask()))
    return out


@dataclass
class InprocessRun:
    """What `run_inprocess` returns (`replay.results.BacktestResult` wraps it)."""

    options: SessionOptions
    exchange: Exchange
    player: Player
    recorder: Recorder
    strategy: StrategyRun | None
    strategy_account: int | None
    state_hash: str
    events: list[E.Event] | None = None
    summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


async def run_inprocess(
    opts: SessionOptions,
    strategy: Strategy | None = None,
    *,
    events: Iterable[Event] | None = None,
    keep_events: bool = False,
) -> InprocessRun:
    """Run the backtest `opts` describes (`opts.strategy` / `strategy_params`, or an
    instance as `strategy`) against the core directly. See the module docstring."""
    from exchange.protocol.api import Api

    ex = Exchange(
        build_instruments(
            opts.instruments,
            mark_method=opts.mark_method,
            liquidation_policy=opts.liquidation_policy,
            max_open_orders=opts.max_open_orders,
            funding=opts.funding,
            symbols=opts.only_symbols,
        )
    )
    population = Population(opts.population) if opts.population is not None else None
    recorder = Recorder(
        ex.instruments,
        replay_accounts={REPLAY_ACCOUNT},
        population=set(population.accounts) if population is not None else set(),
        sample_ns=opts.sample_ns,
    )
    kept: list[E.Event] | None = [] if keep_events else None
    record = recorder.record
    api: Any = None

    router: Any = None

    def sink(evs: list[E.Event]) -> None:
        record(evs)
        if kept is not None:
            kept.extend(evs)
        if router is not None and (router.topics or router.accounts):
            router.route(evs)

    runtime = _DirectRuntime(ex, sink)
    api = Api(runtime)  # type: ignore[arg-type]
    router = api.router
    handle = ex.handle

    def apply(cmds: Iterable[C.Command]) -> None:
        for cmd in cmds:
            sink(handle(cmd))

    if strategy is None and opts.strategy:
        strategy = load_strategy(opts.strategy, opts.strategy_params)
    run: StrategyRun | None = None
    account: int | None = None
    client: LocalClient | None = None
    if strategy is not None:
        # what admin.createAccount does, with the id the server would give
        account = api.next_account
        api.next_account += 1
        amount = _quanta(opts.deposit)
        apply([C.CreateAccount(ts=ex.now, account=account)])
        if amount:
            apply([C.Deposit(ts=ex.now, account=account, asset="USDT", amount=amount)])
        recorder.subjects.add(account)
        client = LocalClient(api, account)
        strategy.client = client
        strategy.account = account
        run = StrategyRun()
        try:
            await strategy.on_start()
        except Exception as e:
            run.errors.append(f"on_start: {type(e).__name__}: {e}")
    player = Player(ex, session_player_config(opts), population)
    apply(player.setup())
    if events is None:
        events = read_merged(opts.data, by=opts.by, symbol=opts.symbol)  # type: ignore[arg-type]
    await _drive(
        ex, player, events, population, opts.step_ns, recorder, strategy, run, kept, router
    )
    if strategy is not None and run is not None:
        try:
            await strategy.on_finish()
        except Exception as e:
            run.errors.append(f"on_finish: {type(e).__name__}: {e}")
        run.done = True
        assert client is not None
        await client.close()
    recorder.sample(ex.now, ex, force=True)
    out = InprocessRun(opts, ex, player, recorder, run, account, ex.state_hash(), kept)
    out.warnings = recorder.warnings(account, player)
    if opts.report is not None:
        out.summary = write_report(
            opts.report, recorder, meta=_meta(opts, player), title=opts.title
        )
    return out


async def _drive(
    ex: Exchange,
    player: Player,
    events: Iterable[Event],
    population: Population | None,
    step_ns: int,
    recorder: Recorder,
    strategy: Strategy | None,
    run: StrategyRun | None,
    kept: list[E.Event] | None,
    router: Any,
) -> None:
    """`play_async` with a lockstep strategy, minus the runtime: the same commands in the
    same order, each applied at once.

    The replay's events are recorded once a step, in one batch, just before the step is
    sampled (nothing reads the recorder in between; the strategy's own requests, made after
    the sample, are recorded as they are applied): a replayed command costs one `handle`
    and one list extension. Stream subscribers, when there are any, still get each
    command's events at once. A step that ends is seen as one integer comparison per
    command. Awaiting `on_step` never reaches the event loop unless the strategy awaits
    something that really waits (the local client's answers are ready at once)."""
    stepper = Stepper(step_ns)
    handle = ex.handle
    translate = player.translate
    record = recorder.record
    sample = recorder.sample
    on_step = strategy.on_step if strategy is not None else None
    pop_next = population.next_ts if population is not None else 1 << 63
    pending: list[E.Event] = []
    route = router.route
    live = bool(router.topics or router.accounts)

    async def close(ts: int) -> None:
        nonlocal live
        if ts > ex.now:
            evs = handle(advance_clock(ts))
            pending.extend(evs)
            if live:
                route(evs)
        record(pending)
        if kept is not None:
            kept.extend(pending)
        pending.clear()
        stepper.step += 1
        sample(ts, ex)
        if on_step is not None:
            assert run is not None
            run.steps += 1
            try:
                await on_step(Step(stepper.step, ts, False, _markets(ex)))  # type: ignore[arg-type]
            except Exception as e:
                run.errors.append(f"step {stepper.step}: {type(e).__name__}: {e}")
            live = bool(router.topics or router.accounts)  # the strategy may (un)subscribe

    after = -(1 << 63)  # the first instant after the open step: a command there closes it
    for ev in events:
        cmds = translate(ev)
        if player.done:
            break
        for cmd in cmds:
            ts = cmd.ts
            if ts >= after:
                if stepper.bucket is not None:
                    await close(stepper.end())
                after = stepper.open(ts)
            evs = handle(cmd)
            pending += evs
            if live:
                route(evs)
        last = player.last_ts
        if last is not None:
            ts = player.step_ts
            if ts >= after:
                if stepper.bucket is not None:
                    await close(stepper.end())
                after = stepper.open(ts)
            if last >= pop_next:
                assert population is not None
                for cmd in player.due(last):
                    evs = handle(cmd)
                    pending += evs
                    if live:
                        route(evs)
                pop_next = population.next_ts
    if stepper.bucket is not None:
        await close(stepper.end())
    record(pending)
    if kept is not None:
        kept.extend(pending)


def _quanta(amount: Decimal) -> int:
    from exchange import units

    return units.money_to_quanta(format(amount, "f"), "deposit")  # as the client sends it


def _meta(opts: SessionOptions, player: Player) -> dict[str, str]:
    return {
        "data": " ".join(Path(p).name for p in opts.data),
        "strategy": opts.strategy or "",
        "mark_method": opts.mark_method or "instrument's",
        "liquidation_policy": opts.liquidation_policy or "instrument's",
        "reference": opts.reference,
        "step": f"{opts.step_ns} ns",
        "lockstep": "in-process",
        "population": str(opts.population.accounts) if opts.population else "0",
        "seed": str(opts.population.seed) if opts.population else "",
        "player_commands": str(player.stats.commands),
        "replayed_events": str(player.stats.events - player.stats.out_of_window),
    }


# ---------------------------------------------------------------------- the friendly API


def options(
    data: str | Path | Iterable[str | Path],
    strategy: str | None = None,
    **kw: Any,
) -> SessionOptions:
    """`SessionOptions` from friendly arguments: durations and times as text (`step="1m"`,
    `start="2022-01-21"`), `synthetic=True` / `False` / a `SyntheticBook`, `population=` a
    `PopulationSpec` or a number of accounts (with `seed=`), `params=` the strategy's."""
    from replay.backtest import parse_duration, parse_time
    from replay.player import SyntheticBook
    from replay.population import PopulationSpec

    paths = [str(data)] if isinstance(data, str | Path) else [str(p) for p in data]
    opts = SessionOptions(data=paths, progress=False, trades=True, synthetic=SyntheticBook())
    opts.strategy = strategy
    params = kw.pop("params", None)
    if params:
        opts.strategy_params = {k: str(v) for k, v in params.items()}
    for key in ("step", "sample"):
        if key in kw and isinstance(kw[key], str):
            kw[key] = parse_duration(kw[key])
    for key in ("start", "end"):
        if key in kw and isinstance(kw[key], str):
            kw[key] = parse_time(kw[key])
    renames = {"step": "step_ns", "sample": "sample_ns", "start": "start_ns", "end": "end_ns"}
    syn = kw.pop("synthetic", True)
    opts.synthetic = SyntheticBook() if syn is True else (None if syn is False else syn)
    pop = kw.pop("population", None)
    seed = kw.pop("seed", 1)
    if isinstance(pop, int):
        pop = PopulationSpec(accounts=pop, seed=seed) if pop > 0 else None
    opts.population = pop
    if "deposit" in kw:
        kw["deposit"] = Decimal(str(kw["deposit"]))
    if "report" in kw and kw["report"] is not None:
        kw["report"] = Path(kw["report"])
    for key, value in kw.items():
        name = renames.get(key, key)
        if not hasattr(opts, name):
            raise TypeError(f"backtest() got an unexpected option {key!r}")
        setattr(opts, name, value)
    return opts


async def backtest_async(
    data: str | Path | Iterable[str | Path] | SessionOptions,
    strategy: str | Strategy | None = None,
    **kw: Any,
) -> BacktestResult:
    """`backtest` for code already inside an event loop (notebooks: `await`)."""
    from replay.results import BacktestResult

    if isinstance(data, SessionOptions):
        opts = data
        instance = strategy if isinstance(strategy, Strategy) else None
        if isinstance(strategy, str):
            opts.strategy = strategy
    else:
        opts = options(data, strategy if isinstance(strategy, str) else None, **kw)
        instance = strategy if isinstance(strategy, Strategy) else None
    return BacktestResult(await run_inprocess(opts, instance))


def backtest(
    data: str | Path | Iterable[str | Path] | SessionOptions,
    strategy: str | Strategy | None = None,
    **kw: Any,
) -> BacktestResult:
    """Run a strategy (`"module:Class"` or an instance) over `data` in this process and
    return a `BacktestResult`. Keyword options are `SessionOptions` fields, with friendly
    forms (see `options`): `symbol="BTCUSDT"`, `step="1m"`, `start=`, `end=`,
    `deposit=10000`, `params={"fast": 20}`, `population=500, seed=1`, `synthetic=False`,
    `trades=False`, `report="folder"`. Works inside a running event loop too (it then
    runs in a worker thread)."""
    coro = backtest_async(data, strategy, **kw)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as e:  # handed back to the caller's thread
            box["error"] = e

    t = threading.Thread(target=work, name="margincall-backtest")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
