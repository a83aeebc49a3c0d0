"""Example bots, used by `margincall demo` and `margincall bots`.

* `MarketMaker`: quotes a ladder of bids and asks around the index price (as a market
  maker hedging on spot would), refreshed when the index moves or every `refresh` s.
* `NoiseTrader`: random small market orders at random times, its position kept bounded.
* `MomentumTrader`: leveraged trend follower: goes long (or short) when the mark moved
  more than `threshold` over its lookback, with high leverage — the accounts a crash
  liquidates.

Each bot takes a logged-on `Client`, runs until its `stop` event is set, never raises
on an API error (it counts them in `stats`), and is seeded for repeatable behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from .client import ApiError, Client, ConnectionLost


@dataclass
class BotStats:
    orders: int = 0
    errors: int = 0
    last_error: str = ""
    by_code: dict[int, int] = field(default_factory=dict)


class Bot:
    name = "bot"

    def __init__(self, client: Client, symbol: str, *, seed: int | None = None) -> None:
        self.client = client
        self.symbol = symbol
        self.rng = random.Random(seed)
        self.stats = BotStats()
        self.tick = Decimal("0.1")
        self.step = Decimal("0.001")
        self.band: tuple[Decimal, Decimal] | None = None  # PERCENT_PRICE, around the mark

    async def setup(self) -> None:
        info = await self.client.exchange_info(self.symbol)
        sym = info["symbols"][0]
        self.tick = Decimal(sym["tickSize"])
        self.step = Decimal(sym["stepSize"])
        for f in sym.get("filters", ()):
            if f.get("filterType") == "PERCENT_PRICE":
                self.band = (Decimal(f["multiplierDown"]), Decimal(f["multiplierUp"]))

    def price(self, value: Decimal) -> Decimal:
        return (value / self.tick).quantize(Decimal(1), ROUND_HALF_EVEN) * self.tick

    def qty(self, value: Decimal) -> Decimal:
        return max(self.step, (value / self.step).quantize(Decimal(1), ROUND_DOWN) * self.step)

    async def call(self, coro: Any) -> Any:
        """Await an API call; count errors instead of raising."""
        try:
            result = await coro
        except ApiError as e:
            self.stats.errors += 1
            self.stats.by_code[e.code] = self.stats.by_code.get(e.code, 0) + 1
            self.stats.last_error = str(e)
            return None
        except (ConnectionLost, TimeoutError):
            self.stats.errors += 1
            return None
        return result

    async def position(self) -> Decimal:
        acct = await self.call(self.client.account_status())
        if not acct:
            return Decimal(0)
        for p in acct["positions"]:
            if p["symbol"] == self.symbol:
                return Decimal(p["positionAmt"])
        return Decimal(0)

    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        while not stop.is_set():
            try:
                await self.step_once()
            except (ApiError, ConnectionLost, TimeoutError) as e:
                self.stats.errors += 1
                self.stats.last_error = str(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.delay())

    def delay(self) -> float:
        return 1.0

    async def step_once(self) -> None:
        raise NotImplementedError


class MarketMaker(Bot):
    """A ladder of `levels` quotes a side, `spread` apart (relative), around the index."""

    name = "market-maker"

    def __init__(
        self,
        client: Client,
        symbol: str,
        *,
        levels: int = 8,
        spread: Decimal = Decimal("0.0008"),
        size: Decimal = Decimal("0.05"),
        refresh: float = 0.5,
        seed: int | None = None,
    ) -> None:
        super().__init__(client, symbol, seed=seed)
        self.levels = levels
        self.spread = spread
        self.size = size
        self.refresh = refresh
        self.quoted_at: Decimal | None = None

    def delay(self) -> float:
        return self.refresh

    def centre(self, index: Decimal, mark: Decimal) -> Decimal:
        """Where to centre the ladder: the index, pulled inside the price band around the
        mark so that the whole ladder is accepted. After a sudden index move the book then
        walks towards the index band by band as trades move the mark (with the mark taken
        from the last price, quotes at the index itself would all be refused, the book
        would empty and the mark would never follow)."""
        if self.band is None or mark <= 0:
            return index
        reach = self.spread * self.levels + Decimal("0.001")
        lo = mark * (self.band[0] + reach)
        hi = mark * (self.band[1] - reach)
        return min(max(index, lo), hi) if lo < hi else index

    async def step_once(self) -> None:
        t = await self.call(self.client.ticker(self.symbol))
        if not t or t["status"] != "TRADING" or t["index"] in ("0", "0.0", "0.00"):
            return
        ref = self.centre(Decimal(t["index"]), Decimal(t["mark"] or 0))
        if self.quoted_at == ref and self.rng.random() < 0.7:
            return  # nothing moved: keep queue priority most of the time
        await self.call(self.client.cancel_all(self.symbol))
        for i in range(1, self.levels + 1):
            off = self.spread * i
            size = self.qty(self.size * (1 + Decimal(i) / 2))
            for side, px in (("BUY", ref * (1 - off)), ("SELL", ref * (1 + off))):
                r = await self.call(
                    self.client.place_order(self.symbol, side, size, self.price(px))
                )
                if r:
                    self.stats.orders += 1
        self.quoted_at = ref


class NoiseTrader(Bot):
    """Random small market orders; flattens when its position grows past `max_position`."""

    name = "noise"

    def __init__(
        self,
        client: Client,
        symbol: str,
        *,
        size: Decimal = Decimal("0.02"),
        max_position: Decimal = Decimal("0.3"),
        mean_interval: float = 0.4,
        seed: int | None = None,
    ) -> None:
        super().__init__(client, symbol, seed=seed)
        self.size = size
        self.max_position = max_position
        self.mean_interval = mean_interval

    def delay(self) -> float:
        return self.rng.expovariate(1 / self.mean_interval)

    async def step_once(self) -> None:
        pos = await self.position()
        if abs(pos) > self.max_position:
            side = "SELL" if pos > 0 else "BUY"
            r = await self.call(
                self.client.place_order(self.symbol, side, abs(pos), reduce_only=True)
            )
        else:
            side = self.rng.choice(["BUY", "SELL"])
            size = self.qty(self.size * Decimal(str(round(self.rng.uniform(0.5, 2.0), 2))))
            r = await self.call(self.client.place_order(self.symbol, side, size))
        if r:
            self.stats.orders += 1


class MomentumTrader(Bot):
    """Follows the trend with leverage: long above `threshold`, short below, else holds.

    `long_only` never opens a short; without `exit_on_reversal` it also holds its long
    through a fall (the demo's over-confident crowd, the accounts a crash liquidates).
    """

    name = "momentum"

    def __init__(
        self,
        client: Client,
        symbol: str,
        *,
        leverage: int = 50,
        size: Decimal = Decimal("0.1"),
        lookback: int = 5,
        threshold: Decimal = Decimal("0.0005"),
        interval: float = 0.5,
        long_only: bool = False,
        exit_on_reversal: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(client, symbol, seed=seed)
        self.exit_on_reversal = exit_on_reversal
        self.leverage = leverage
        self.size = size
        self.lookback = lookback
        self.threshold = threshold
        self.interval = interval
        self.long_only = long_only
        self.marks: deque[Decimal] = deque(maxlen=lookback)

    async def setup(self) -> None:
        await super().setup()
        await self.call(self.client.set_leverage(self.symbol, self.leverage))

    def delay(self) -> float:
        return self.interval * self.rng.uniform(0.7, 1.3)

    async def step_once(self) -> None:
        t = await self.call(self.client.ticker(self.symbol))
        if not t or t["mark"] in ("0", "0.0", "0.00"):
            return
        self.marks.append(Decimal(t["mark"]))
        if len(self.marks) < self.lookback:
            return
        move = (self.marks[-1] - self.marks[0]) / self.marks[0]
        pos = await self.position()
        if move > self.threshold and pos < self.size:
            r = await self.call(self.client.place_order(self.symbol, "BUY", self.size - max(pos, Decimal(0))))  # fmt: skip
        elif move < -self.threshold and pos > 0 and self.exit_on_reversal:
            r = await self.call(self.client.place_order(self.symbol, "SELL", pos, reduce_only=True))
        elif move < -self.threshold and not self.long_only and pos > -self.size:
            r = await self.call(self.client.place_order(self.symbol, "SELL", self.size))
        else:
            return
        if r:
            self.stats.orders += 1
