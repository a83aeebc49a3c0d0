"""Strategies for `margincall backtest`: written against the Python client, run in lockstep.

A strategy is a class with async hooks; `margincall backtest --strategy module:Class` makes
one (no arguments, or the `--param key=value` pairs as keyword arguments) and runs it over
a real WebSocket against the lockstep server::

    from replay.strategy import Strategy, Step

    class Dip(Strategy):
        symbol = "BTCUSDT"

        async def on_step(self, step: Step) -> None:
            mark = step.mark(self.symbol)
            if mark is not None and self.position == 0 and mark < 37000:
                await self.client.place_order(self.symbol, "BUY", "0.010")   # market
                self.position = 1

Inside the hooks, `self.client` is a connected, logged-on `clients.Client` and
`self.account` its account id. `on_step` runs once per replay step; the replay waits for it
(and for any request it makes) before going on. For identical fills on every run, decide
from what the step and your own requests tell you — not from stream messages, whose arrival
is not synchronised with the steps.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from clients.client import Client
from exchange.units import ticks_to_str

__all__ = [
    "Step",
    "Strategy",
    "StrategyRun",
    "StrategyLoadError",
    "TickRow",
    "load_strategy",
    "run_strategy",
    "Hold",
    "Threshold",
    "MovingAverageCross",
]


@dataclass(frozen=True)
class Step:
    """One replay step as the lockstep server announced it."""

    step: int
    ts: int
    done: bool
    markets: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        return cls(d["step"], d["ts"], d["done"], d.get("markets") or {})

    def _get(self, symbol: str, key: str) -> Decimal | None:
        row = self.markets.get(symbol)
        if row is None:
            return None
        if type(row) is TickRow:
            return row.decimal(key)
        v = row.get(key)
        return None if v is None else Decimal(v)

    def mark(self, symbol: str) -> Decimal | None:
        return self._get(symbol, "mark")

    def index(self, symbol: str) -> Decimal | None:
        return self._get(symbol, "index")

    def last(self, symbol: str) -> Decimal | None:
        return self._get(symbol, "last")

    def best_bid(self, symbol: str) -> Decimal | None:
        return self._get(symbol, "bestBid")

    def best_ask(self, symbol: str) -> Decimal | None:
        return self._get(symbol, "bestAsk")


_FIELDS = {"mark": 0, "index": 1, "last": 2, "bestBid": 3, "bestAsk": 4}
_DECIMALS: dict[str, dict[int, Decimal]] = {}  # per tick size: ticks → the price's Decimal
_DECIMALS_MAX = 1 << 16


class TickRow(Mapping[str, str | None]):
    """One symbol's row of a step's market table as the in-process backtest makes it
    (`replay.player.market_info`'s keys and texts): the prices are taken in ticks when the
    step closes and each formatted as text only when read (a strategy reading the mark
    does not pay for four more); `Step.mark()` and the like take its Decimal without a
    text (the same value, `Decimal(row[key])`, remembered per tick). Read at any later
    time, it still says what it said at its step."""

    __slots__ = ("_inst", "_raw")

    def __init__(self, inst: Any, raw: tuple[int, int, int, int | None, int | None]) -> None:
        self._inst = inst
        self._raw = raw

    def __getitem__(self, key: str) -> str | None:
        t = self._raw[_FIELDS[key]]
        return ticks_to_str(self._inst, t) if t else None

    def get(self, key: str, default: Any = None) -> Any:
        k = _FIELDS.get(key)
        if k is None:
            return default
        t = self._raw[k]
        return ticks_to_str(self._inst, t) if t else None

    def decimal(self, key: str) -> Decimal | None:
        """`Decimal(self[key])`, or None where the price is absent (or `key` unknown)."""
        k = _FIELDS.get(key)
        if k is None:
            return None
        t = self._raw[k]
        if not t:
            return None
        unit = self._inst.tick_size
        cache = _DECIMALS.get(unit)
        if cache is None:
            cache = _DECIMALS[unit] = {}
        d = cache.get(t)
        if d is None:
            d = Decimal(ticks_to_str(self._inst, t))
            if len(cache) >= _DECIMALS_MAX:
                cache.clear()
            cache[t] = d
        return d

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __eq__(self, other: object) -> bool:
        return dict(self) == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(dict(self))


class Strategy:
    """Base class: override `on_start`, `on_step`, `on_finish` (all optional)."""

    client: Client
    account: int

    async def on_start(self) -> None:
        pass

    async def on_step(self, step: Step) -> None:
        pass

    async def on_finish(self) -> None:
        pass


@dataclass
class StrategyRun:
    steps: int = 0
    errors: list[str] = field(default_factory=list)
    done: bool = False


class StrategyLoadError(ValueError):
    """A strategy spec that cannot be loaded; the message is one line saying why."""


def load_strategy(spec: str, params: dict[str, str] | None = None) -> Strategy:
    """`module:Class` or `path/to/file.py:Class` (optionally with keyword arguments) → an
    instance. The working directory is importable (a strategy next to you just works);
    every failure is a `StrategyLoadError` with one clear line."""
    mod_name, sep, cls_name = spec.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise StrategyLoadError(f"strategy must be 'module:Class' or 'file.py:Class', not {spec!r}")
    try:
        if mod_name.endswith(".py"):
            mod = _load_file(mod_name)
        else:
            cwd = os.getcwd()
            if cwd not in sys.path and "" not in sys.path:
                sys.path.insert(0, cwd)
            mod = importlib.import_module(mod_name)
    except StrategyLoadError:
        raise
    except ImportError as e:
        raise StrategyLoadError(f"cannot import strategy module {mod_name!r}: {e}") from None
    except Exception as e:
        raise StrategyLoadError(
            f"strategy module {mod_name!r} failed to import: {type(e).__name__}: {e}"
        ) from None
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise StrategyLoadError(f"{mod_name} has no {cls_name}")
    try:
        obj = cls(**(params or {}))
    except Exception as e:
        raise StrategyLoadError(f"{spec}({_kw(params)}) failed: {type(e).__name__}: {e}") from None
    for hook in ("on_start", "on_step", "on_finish"):
        if hook != "on_step" and not hasattr(obj, hook):
            continue
        if not asyncio.iscoroutinefunction(getattr(obj, hook, None)):
            raise StrategyLoadError(f"{spec}.{hook} must be an async method")
    return obj  # type: ignore[no-any-return]


def _kw(params: dict[str, str] | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (params or {}).items())


def _load_file(path: str) -> Any:
    import importlib.util

    p = Path(path)
    if not p.is_file():
        raise StrategyLoadError(f"no strategy file {path!r}")
    name = f"_margincall_strategy_{p.stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"cannot load {path!r} as Python")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # so dataclasses and pickling inside it work
    spec.loader.exec_module(mod)
    return mod


async def run_strategy(
    url: str, api_key: str, secret: str, strategy: Strategy, *, stop_on_error: bool = False
) -> StrategyRun:
    """Connect, register with the lockstep barrier and run `strategy` until the replay ends.

    An exception in a hook is recorded in `StrategyRun.errors` (the strategy goes on with
    the next step, unless `stop_on_error`).
    """
    run = StrategyRun()
    async with Client(url, api_key=api_key, secret=secret, reconnect=False) as client:
        strategy.client = client
        assert client.account is not None
        strategy.account = client.account
        # on_start before registering: the replay waits for the registration, so what
        # on_start does comes before the replay's first command, every time
        try:
            await strategy.on_start()
        except Exception as e:  # a strategy bug must not hang the replay
            run.errors.append(f"on_start: {type(e).__name__}: {e}")
            if stop_on_error:
                raise
        info = await client.request("replay.register")
        while True:
            if info["done"]:
                break
            if info["step"] > 0:
                run.steps += 1
                try:
                    await strategy.on_step(Step.from_json(info))
                except Exception as e:
                    run.errors.append(f"step {info['step']}: {type(e).__name__}: {e}")
                    if stop_on_error:
                        raise
            info = await client.request("replay.ready", {"step": info["step"]})
        try:
            await strategy.on_finish()
        except Exception as e:
            run.errors.append(f"on_finish: {type(e).__name__}: {e}")
        run.done = True
    return run


# ---------------------------------------------------------------------- examples


class Hold(Strategy):
    """Buy `qty` at the first step and hold it (a baseline)."""

    def __init__(self, symbol: str = "BTCUSDT", qty: str = "0.010", leverage: str = "5") -> None:
        self.symbol = symbol
        self.qty = qty
        self.leverage = int(leverage)
        self.bought = False

    async def on_start(self) -> None:
        await self.client.set_leverage(self.symbol, self.leverage)

    async def on_step(self, step: Step) -> None:
        if not self.bought and step.mark(self.symbol) is not None:
            await self.client.place_order(self.symbol, "BUY", self.qty)
            self.bought = True


class Threshold(Strategy):
    """Mean reversion on the mark: buy `qty` when the mark falls `band` below its running
    anchor, sell it back when it recovers to the anchor; the anchor follows the mark while
    flat. A plain example of a stateful strategy (and of `delay`: seconds to sleep in every
    step, to show that lockstep fills do not depend on how long a strategy thinks)."""

    def __init__(
        self,
        symbol: str = "BTCUSDT",
        qty: str = "0.010",
        band: str = "0.01",
        leverage: str = "10",
        delay: str = "0",
    ) -> None:
        self.symbol = symbol
        self.qty = Decimal(qty)
        self.band = Decimal(band)
        self.leverage = int(leverage)
        self.delay = float(delay)
        self.anchor: Decimal | None = None
        self.long = False

    async def on_start(self) -> None:
        await self.client.set_leverage(self.symbol, self.leverage)

    async def on_step(self, step: Step) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        mark = step.mark(self.symbol)
        if mark is None:
            return
        if self.anchor is None:
            self.anchor = mark
        if not self.long:
            if mark <= self.anchor * (1 - self.band):
                await self.client.place_order(self.symbol, "BUY", self.qty)
                self.long = True
            else:
                self.anchor = max(self.anchor, mark)
        elif mark >= self.anchor:
            pos = await self.client.position(self.symbol)
            if pos is not None and Decimal(pos["positionAmt"]) > 0:
                await self.client.place_order(
                    self.symbol, "SELL", Decimal(pos["positionAmt"]), reduce_only=True
                )
            self.long = False
            self.anchor = mark


class MovingAverageCross(Strategy):
    """Always in the market: long `qty` while the mean of the last `fast` step marks is
    above the mean of the last `slow`, short `qty` while below (market orders, `leverage`).
    The benchmark's strategy (`python -m bench backtest`: 20/60, 0.2 BTC, 10×)."""

    def __init__(
        self,
        symbol: str = "BTCUSDT",
        fast: str = "20",
        slow: str = "60",
        qty: str = "0.2",
        leverage: str = "10",
    ) -> None:
        self.symbol = symbol
        self.fast = int(fast)
        self.slow = int(slow)
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")
        self.qty = Decimal(qty)
        self.leverage = int(leverage)
        self.marks: list[Decimal] = []
        self.fast_sum = Decimal(0)
        self.slow_sum = Decimal(0)
        self.held = Decimal(0)  # signed, from the orders' executed quantities
        self.trades = 0

    async def on_start(self) -> None:
        await self.client.set_leverage(self.symbol, self.leverage)

    async def on_step(self, step: Step) -> None:
        mark = step.mark(self.symbol)
        if mark is None:
            return
        marks = self.marks
        marks.append(mark)
        self.fast_sum += mark
        self.slow_sum += mark
        n = len(marks)
        if n > self.fast:
            self.fast_sum -= marks[n - 1 - self.fast]
        if n > self.slow:
            self.slow_sum -= marks[n - 1 - self.slow]
            del marks[0]
        if n < self.slow:
            return
        # fast mean > slow mean, without dividing: fast_sum * slow > slow_sum * fast
        want = self.qty if self.fast_sum * self.slow > self.slow_sum * self.fast else -self.qty
        delta = want - self.held
        if not delta:
            return
        side = "BUY" if delta > 0 else "SELL"
        res = await self.client.place_order(self.symbol, side, abs(delta))
        done = Decimal(res["executedQty"])
        self.held += done if delta > 0 else -done
        self.trades += 1
