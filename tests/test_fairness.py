"""Fairness: one connection's flood of frames must not crowd the others out of the engine.

A raw client pipelines order frames as fast as the server reads them while a quiet
client sends one request at a time. The store is durable and each commit takes a few
milliseconds (`SlowDurableLog`): a pipelining server reads on while a batch commits, so
without a bound the flooder's frames pile up in the engine's queue ahead of the quiet
client's (no rate limit here, so nothing but the per-session bound holds them back). The test watches the runtime's command
queue itself rather than timing answers, so a loaded machine cannot make it pass or
fail: every command submitted is tracked until its events come back, and

* the flooder never has more than `Session.MAX_IN_ENGINE` commands queued or running
  in the engine, yet does reach that bound (the flood was real, and the bound is what
  held it back);
* each quiet request enters the queue behind at most `MAX_IN_ENGINE` of the flooder's
  commands, i.e. it waits for a handful of them, not for the whole burst;
* the quiet client's requests are interleaved with the flood: on average more than two
  flood commands reach the engine between one quiet request and the next.

Without the bound the flooder has hundreds of commands queued ahead of every quiet one.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from clients import Client
from exchange.auth import sign
from exchange.protocol import Session
from exchange.server import ServerConfig
from exchange.testing import running_stack

ORDER = json.dumps({"id": 1, "method": "order.place", "params": {
    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": "48000",
    "timeInForce": "GTC"}})  # fmt: skip
CANCEL = json.dumps({"id": 2, "method": "order.cancelAll", "params": {"symbol": "BTCUSDT"}})


class SlowDurableLog:
    """A durable command log whose every commit takes 5 ms."""

    durable = True

    async def append(self, commands: list[Any]) -> None:
        await asyncio.sleep(0.005)


class QueueWatch:
    """Wraps `runtime.submit_future`: for each command, how many of another account's
    commands were queued or running in the engine when it was submitted."""

    def __init__(self, runtime: Any, flooder: int, quiet: int) -> None:
        self.flooder, self.quiet = flooder, quiet
        self.live: list[asyncio.Future[Any]] = []  # the flooder's unanswered commands
        self.flood_max = 0
        self.flood_total = 0
        self.ahead_of_quiet: list[int] = []  # flood commands in the engine per quiet request
        self.flood_at_quiet: list[int] = []  # flood commands submitted so far, per quiet one
        inner = runtime.submit_future

        def submit_future(cmd: Any, *, owned: bool = False) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = inner(cmd, owned=owned)
            account = getattr(cmd, "account", None)
            self.live = [f for f in self.live if not f.done()]
            if account == self.flooder:
                self.live.append(fut)
                self.flood_total += 1
                self.flood_max = max(self.flood_max, len(self.live))
            elif account == self.quiet:
                self.ahead_of_quiet.append(len(self.live))
                self.flood_at_quiet.append(self.flood_total)
            return fut

        runtime.submit_future = submit_future


async def flood(url: str, key: dict[str, Any], stop: asyncio.Event) -> int:
    """Send order frames without waiting for answers, keeping 2,000 unanswered (far more
    than the server takes in flight), until `stop`; the frames sent."""
    sent = answered = 0
    more = asyncio.Event()
    async with connect(url, max_queue=None, compression=None) as ws:
        p: dict[str, Any] = {"apiKey": key["apiKey"], "timestamp": int(time.time() * 1000)}
        p["signature"] = sign(key["secret"], p)
        await ws.send(json.dumps({"id": 0, "method": "session.logon", "params": p}))
        assert json.loads(await ws.recv())["status"] == 200

        async def drain() -> None:
            nonlocal answered
            async for _ in ws:
                answered += 1
                more.set()

        reader = asyncio.create_task(drain())
        while not stop.is_set():
            if sent - answered >= 2000:
                more.clear()
                await more.wait()
                continue
            for _ in range(100):  # a cancel every 100 frames keeps under 200 open orders
                sent += 1
                await ws.send(CANCEL if sent % 100 == 0 else ORDER)
            await asyncio.sleep(0)
        reader.cancel()
    return sent


@pytest.mark.slow
async def test_a_flood_from_one_connection_leaves_the_others_their_share() -> None:
    bound = Session.MAX_IN_ENGINE
    cfg = ServerConfig(pipeline=True, rate_limit=None)
    async with running_stack(config=cfg, clock="realtime", command_log=SlowDurableLog()) as st:
        admin = await Client(st.url, admin_token="test-admin-token").connect()
        await admin.request("admin.setIndex", {"symbol": "BTCUSDT", "price": "50000"})
        quiet_key = await admin.create_account(deposit="100000000")
        flood_key = await admin.create_account(deposit="100000000")
        quiet = await Client(
            st.url, api_key=quiet_key["apiKey"], secret=quiet_key["secret"]
        ).connect()
        watch = QueueWatch(st.runtime, flood_key["account"], quiet_key["account"])
        stop = asyncio.Event()
        flooder = asyncio.create_task(flood(st.url, flood_key, stop))
        while watch.flood_total < 200:  # the flood is on before the quiet client starts
            await asyncio.sleep(0.01)
        for i in range(200):
            await quiet.request(
                "order.place",
                {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.001",
                 "price": "52000", "timeInForce": "GTC"},
            )  # fmt: skip
            if i % 50 == 49:
                await quiet.request("order.cancelAll", {"symbol": "BTCUSDT"})
        stop.set()
        sent = await flooder
        await quiet.close()
        await admin.close()

    assert len(watch.ahead_of_quiet) == 204
    assert watch.flood_max == bound, (watch.flood_max, bound)
    assert max(watch.ahead_of_quiet) <= bound, watch.ahead_of_quiet
    interleaved = watch.flood_at_quiet[-1] - watch.flood_at_quiet[0]
    assert interleaved > 2 * len(watch.ahead_of_quiet), (interleaved, sent)
