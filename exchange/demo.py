"""`margincall bots` and `margincall demo`: example bots against a server, and a server
with bots, a scripted index crash and a live view of the cascade.

Plain typer command functions, registered in `exchange/cli.py`; they assemble a stack
with `exchange.stack` and talk to it with `clients` (imported when they run).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import typer

from exchange.stack import ServeOptions, start_stack, stop_stack

# ------------------------------------------------------------------ bots


@dataclass
class BotFleet:
    """Accounts and bots on one symbol: a market maker, noise traders, momentum traders."""

    url: str
    admin_token: str
    symbol: str = "BTCUSDT"
    noise: int = 4
    momentum: int = 16
    seed: int = 7
    pace: float = 1.0  # multiplies every bot interval
    bots: list[Any] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)

    async def start(
        self, stop: asyncio.Event, *, long_bias: bool = True
    ) -> list[asyncio.Task[None]]:
        from clients import Client
        from clients.bots import MarketMaker, MomentumTrader, NoiseTrader

        admin = await Client(self.url, admin_token=self.admin_token).connect()
        self.clients.append(admin)
        rng = __import__("random").Random(self.seed)

        async def account(deposit: str) -> Client:
            k = await admin.create_account(deposit=deposit)
            c = await Client(self.url, api_key=k["apiKey"], secret=k["secret"]).connect()
            self.clients.append(c)
            return c

        p = self.pace
        self.bots.append(
            MarketMaker(
                await account("5000000"),
                self.symbol,
                refresh=0.25 * p,
                size=Decimal("0.04"),
                seed=rng.randrange(2**32),
            )
        )
        for _ in range(self.noise):
            self.bots.append(
                NoiseTrader(
                    await account("200000"),
                    self.symbol,
                    mean_interval=0.3 * p,
                    seed=rng.randrange(2**32),
                )
            )
        for i in range(self.momentum):
            lev = 15 + 2 * i  # dense liquidation prices: one fill reaches the next
            size = Decimal("0.15") + Decimal(i % 4) / 20
            bot = MomentumTrader(
                await account(str(8000 + 1000 * (i % 5))),
                self.symbol,
                leverage=lev,
                size=size,
                interval=0.4 * p,
                lookback=4,
                long_only=long_bias,
                exit_on_reversal=not long_bias,
                seed=rng.randrange(2**32),
            )
            self.bots.append(bot)
        return [asyncio.create_task(b.run(stop)) for b in self.bots]

    async def open_longs(self) -> None:
        """Momentum traders start long (the story: a rally everyone levered into)."""
        from clients.bots import MomentumTrader

        for b in self.bots:
            if isinstance(b, MomentumTrader):
                await b.setup()
                await b.call(b.client.place_order(self.symbol, "BUY", b.size))

    async def close(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                await c.close()


def rally_drift(duration: float) -> float:
    """The index's upward drift per step of the demo's rally (the step's drift is half
    of it): the same for every duration up to 60 s, and smaller beyond, so the rally
    before the crash stays about the size of the 60-second demo's (+3.6 %) however long
    the demo runs. (From 60 s on a step is 0.15 s, so a fixed drift grew the rally with
    the duration: +19 % in 180 s, and the crash of six -1.5 % steps then liquidated
    almost none of the longs opened at the start.)"""
    return 0.0004 * min(1.0, 60.0 / duration)


def bots_command(
    url: Annotated[str, typer.Option(help="Server URL.")] = "ws://127.0.0.1:8765",
    admin_token: Annotated[
        str, typer.Option(envvar="MARGINCALL_ADMIN_TOKEN", help="Admin token.")
    ] = "",
    symbol: Annotated[str, typer.Option(help="Symbol to trade.")] = "BTCUSDT",
    noise: Annotated[int, typer.Option(help="Noise traders.")] = 4,
    momentum: Annotated[int, typer.Option(help="Leveraged momentum traders.")] = 16,
    index: Annotated[
        str | None, typer.Option(help="Set this index price first (if the symbol has none).")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds to run (0: until Ctrl-C).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Run example bots (market maker, noise, momentum) against a running server."""
    if not admin_token:
        raise typer.BadParameter("the admin token is needed to create the bots' accounts")

    async def main() -> None:
        from clients import Client

        if index is not None:
            async with Client(url, admin_token=admin_token) as adm:
                await adm.set_index(symbol, index)
        fleet = BotFleet(url, admin_token, symbol, noise, momentum, seed)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        tasks = await fleet.start(stop, long_bias=False)
        typer.echo(f"{len(fleet.bots)} bots trading {symbol} on {url}", err=True)
        if duration:
            loop.call_later(duration, stop.set)
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
        for b in fleet.bots:
            typer.echo(f"{b.name}: {b.stats.orders} orders, {b.stats.errors} errors", err=True)
        await fleet.close()

    asyncio.run(main())


# ------------------------------------------------------------------ demo


@dataclass
class DemoState:
    mark: str = "-"
    index: str = "-"
    last: str = "-"
    funding: str = "-"
    trades: int = 0
    liquidations: int = 0
    liquidated_qty: Decimal = Decimal(0)
    generations: int = 0  # of the deepest cascade so far (generation numbers start at 0)
    cascades: list[dict[str, Any]] = field(default_factory=list)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=256))  # newest first
    phase: str = "warming up"
    insurance: str = "0"
    marks: deque[Decimal] = field(default_factory=lambda: deque(maxlen=60))


def demo_instruments() -> list[Any]:
    """The shipped instruments, BTCUSDT marked at the last trade so fills move the mark."""
    from exchange.config import load_instruments

    return [
        dataclasses.replace(i, mark_method="last") if i.symbol == "BTCUSDT" else i
        for i in load_instruments()
    ]


def render(state: DemoState, url: str, token: str, left: float) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_row("[b]connect[/b]", url, "[b]admin token[/b]", token)
    head.add_row("[b]phase[/b]", state.phase, "[b]time left[/b]", f"{left:5.1f} s")
    market = Table(title="BTCUSDT", expand=True)
    for col in (
        "mark",
        "index",
        "last",
        "funding",
        "trades",
        "liquidations",
        "liq. qty",
        "generations",
        "insurance fund",
    ):
        market.add_column(col, justify="right")
    market.add_row(
        state.mark,
        state.index,
        state.last,
        state.funding,
        str(state.trades),
        str(state.liquidations),
        str(state.liquidated_qty),
        str(state.generations),
        state.insurance,
    )
    casc = Table(title="cascades", expand=True)
    for col in ("id", "liquidations", "volume", "generations", "price path", "fund before → after"):
        casc.add_column(col)
    for c in state.cascades[-5:]:
        path = c["pricePath"]
        span = (f"{path[0]} → {path[-1]}" if len(path) > 1 else path[0]) if path else "-"
        casc.add_row(
            str(c["cascadeId"]),
            str(c["liquidations"]),
            c["volume"],
            str(c["generations"]),
            span,
            f"{c['insuranceBefore']} → {c['insuranceAfter']}",
        )
    recent = "\n".join(list(state.recent)[:8]) or "(no liquidation yet)"
    return Group(
        Panel(head, title="margincall demo"),
        market,
        casc,
        Panel(recent, title="latest liquidations"),
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def run_demo(
    host: str, port: int, duration: float, seed: int, live: bool, http_port: int = 8766
) -> DemoState:
    from rich.console import Console
    from rich.live import Live

    from clients import Client

    # lines stay whole (keys to copy, liquidations to grep) when output is not a terminal
    console = Console(stderr=False, soft_wrap=True)
    token = secrets.token_urlsafe(12)
    from exchange.web.app import setup as web_app

    opts = ServeOptions(host=host, port=port, clock="realtime", admin_token=token, rate_limit=None)
    opts.http_port, opts.http_setup = http_port, [web_app]
    opts.extra["instrument_list"] = demo_instruments()
    stack = await start_stack(opts)
    server = stack.server
    state = DemoState()
    console.print(f"watch it in a browser: [b]{stack.http_url}/#liquidations[/b]")
    console.print(f"margincall demo: server on [b]{server.url}[/b]  (admin token {token})")
    console.print(
        "BTCUSDT marks at the last trade here, so liquidation fills move the mark: "
        "that feedback is the cascade."
    )
    stop = asyncio.Event()
    admin = await Client(server.url, admin_token=token).connect()
    await admin.set_index("BTCUSDT", "50000")
    yours = await admin.create_account(deposit="100000")
    console.print("an account for you (100,000 USDT), for clients/example_strategy.py:")
    console.print(f"  MC_KEY={yours['apiKey']} MC_SECRET={yours['secret']}")
    session = await admin.request(
        "admin.createSession", {"account": yours["account"], "label": "you"}
    )
    console.print(f"and to trade it in the browser ({stack.http_url}/#trade), this session token:")
    console.print(f"  {session['token']}")
    pace = max(0.25, min(1.0, duration / 60))
    fleet = BotFleet(server.url, token, seed=seed, pace=pace)
    watcher = await Client(server.url).connect()
    streams = await watcher.subscribe(
        "mark.BTCUSDT", "liquidations.BTCUSDT", "cascades", "trades.BTCUSDT"
    )

    async def watch_marks() -> None:
        async for m in streams[0]:
            state.mark, state.index, state.last = m["mark"], m["index"], m["last"]
            state.funding = m["fundingRate"]
            state.marks.append(Decimal(m["mark"]))

    async def watch_liqs() -> None:
        async for liq in streams[1]:
            state.liquidations += 1
            state.liquidated_qty += Decimal(liq["qty"])
            state.generations = max(state.generations, liq["generation"] + 1)
            state.recent.appendleft(
                f"#{liq['liquidationId']} cascade {liq['cascadeId']} gen {liq['generation']}: "
                f"{liq['side']} {liq['qty']} at mark {liq['triggerMark']} "
                f"(bankruptcy {liq['bankruptcyPrice']}; closed: {liq['filledQty']} in the book, "
                f"{liq['fundTakeoverQty']} by the fund, {liq['adlQty']} by ADL; "
                f"fund Δ {liq['insuranceDelta']})"
            )

    async def watch_cascades() -> None:
        async for c in streams[2]:
            state.cascades.append(c)

    async def watch_trades() -> None:
        async for _ in streams[3]:
            state.trades += 1

    async def script() -> None:
        """The story: a rally, everyone levers up long, then the index crashes."""
        import random

        rng = random.Random(seed)
        t0 = time.monotonic()
        index = Decimal(50000)
        crash_at = duration * 0.45
        steps = 6  # the crash comes in steps of -1.5 %, each inside the ±5 % price band
        step_gap = 0.3
        done_steps = 0
        state.phase = "rally: momentum traders lever up"
        await fleet.open_longs()
        while not stop.is_set():
            t = time.monotonic() - t0
            if t >= crash_at and done_steps < steps:
                if t >= crash_at + done_steps * step_gap:
                    done_steps += 1
                    state.phase = f"CRASH: index step {done_steps}/{steps} (-1.5 % each)"
                    index = (index * Decimal("0.985")).quantize(Decimal("0.1"))
            else:
                drift = rally_drift(duration) if t < crash_at else 0.0
                index *= Decimal(str(1 + rng.uniform(-0.0003, 0.0003) + drift / 2))
                index = index.quantize(Decimal("0.1"))
                if done_steps == steps:
                    state.phase = "after the crash"
            with contextlib.suppress(Exception):
                await admin.set_index("BTCUSDT", index)
                state.insurance = (await admin.stats())["insuranceFund"]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.25 * pace, step_gap / 2))

    watchers = [
        asyncio.create_task(f()) for f in (watch_marks, watch_liqs, watch_cascades, watch_trades)
    ]
    bot_tasks = await fleet.start(stop)
    script_task = asyncio.create_task(script())
    t_end = time.monotonic() + duration
    try:
        if live:
            with Live(
                render(state, server.url, token, duration),
                console=console,
                refresh_per_second=4,
                transient=False,
            ) as view:
                while time.monotonic() < t_end:
                    await asyncio.sleep(0.25)
                    view.update(
                        render(state, server.url, token, max(0.0, t_end - time.monotonic()))
                    )
        else:
            shown = 0  # liquidations already printed
            while time.monotonic() < t_end:
                await asyncio.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
                console.print(
                    f"({state.phase}) mark {state.mark} index {state.index} last {state.last} "
                    f"| liquidations {state.liquidations} cascades {len(state.cascades)}",
                    markup=False,
                )
                new = min(state.liquidations - shown, len(state.recent))
                for line in reversed(list(state.recent)[:new]):
                    console.print(f"  {line}", markup=False, highlight=False)
                shown = state.liquidations
    finally:
        stop.set()
        await asyncio.gather(*bot_tasks, script_task, return_exceptions=True)
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await fleet.close()
        await watcher.close()
        await admin.close()
        await stop_stack(stack)
    console.print(
        f"demo over: {state.trades} trades, {state.liquidations} liquidations "
        f"({state.liquidated_qty} BTC) in {len(state.cascades)} cascades, up to "
        f"{_count(state.generations, 'generation')} deep; insurance fund {state.insurance} USDT"
    )
    chains = [c for c in state.cascades if c["liquidations"] > 1]
    if chains:
        console.print(f"the {_count(len(chains), 'cascade')} with more than one liquidation:")
    for c in chains:
        console.print(
            f"  cascade {c['cascadeId']}: {c['liquidations']} liquidations over "
            f"{_count(c['generations'], 'generation')}, mark path "
            f"{' → '.join(c['pricePath'][:6])}{' …' if len(c['pricePath']) > 6 else ''}"
        )
    return state


def demo_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8765,
    duration: Annotated[float, typer.Option(help="Seconds before the demo ends by itself.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed of the bots and the price path.")] = 7,
    live: Annotated[bool, typer.Option(help="Live rich view (else one line a second).")] = True,
    http_port: Annotated[
        int, typer.Option(help="The web app's HTTP port (0: any free port).")
    ] = 8766,
) -> None:
    """Start a server with bots and a scripted index crash; watch the cascade live, in the
    terminal and in the web app (its URL is printed first)."""
    if duration <= 0:
        raise typer.BadParameter("must be positive", param_hint="--duration")
    logging.basicConfig(level=logging.WARNING)
    live = live and sys.stdout.isatty()
    asyncio.run(run_demo(host, port, duration, seed, live, http_port))
