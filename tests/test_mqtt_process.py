"""The MQTT bridge's child publisher (`exchange.mqtt.process`): what it publishes, its
bound, and that it never outlives its bridge or its parent."""

from __future__ import annotations

import asyncio
import json
import os
import signal

from bench.store import instrument
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.mqtt import MqttBridge
from exchange.mqtt.process import PublisherProcess, getters
from exchange.runtime import Runtime
from tests.test_mqtt import SYM, Broker, bridge_config, broker, until, watching  # noqa: F401


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _trade(rt: Runtime, n: int) -> list[E.Event]:
    out: list[E.Event] = []
    for i in range(n):
        out += await rt.submit(
            C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=1, price=100_000 + i % 3)
        )
        out += await rt.submit(
            C.PlaceOrder(account=2, symbol=SYM, side="BUY", qty=1, type="MARKET")
        )
    return out


async def _runtime() -> Runtime:
    from bench.store import run_through, setup_commands

    rt = Runtime(Exchange([instrument()]), clock="stepped", tick_interval=None)
    await rt.start()
    await run_through(rt, setup_commands())
    return rt


async def test_trades_and_book_come_from_the_child_and_it_exits_on_stop(broker: Broker) -> None:  # noqa: F811
    cfg = bridge_config(broker)
    assert cfg.publisher_process
    rt = await _runtime()
    bridge = MqttBridge(rt, cfg)
    await bridge.start()
    await asyncio.wait_for(bridge.connected.wait(), 5)
    proc = bridge._proc
    assert proc is not None and proc.proc is not None and _alive(proc.proc.pid)
    async with watching(broker, f"{cfg.base}/{SYM}/+") as w:
        evs = await _trade(rt, 20)
        fills = [e for e in evs if type(e) is E.OrderFilled]
        last = fills[-1]
        m = await w.next(f"{cfg.base}/{SYM}/trades", where=lambda d: d["tradeId"] == last.trade_id)
        assert m.payload == bridge.formatter.payload(last)[1]  # type: ignore[index]
        assert m.qos == 0 and not m.retain
        await w.next(f"{cfg.base}/{SYM}/book")
    await until(lambda: bridge.backlog() == 0, what="the child to catch up")
    stats = bridge.stats()
    assert stats["publisherProcess"] and stats["droppedMessages"] == 0
    assert stats["published"] >= len(fills)
    pid = proc.proc.pid
    await bridge.stop()
    assert proc.proc.returncode == 0 and not _alive(pid)
    await rt.stop()


async def test_a_stalled_child_costs_drops_not_waiting(broker: Broker) -> None:  # noqa: F811
    cfg = bridge_config(broker)
    rt = await _runtime()
    proc = await PublisherProcess.start(cfg, rt.exchange.instruments, max_pending=50)
    assert proc.proc is not None
    os.kill(proc.proc.pid, signal.SIGSTOP)
    try:
        code, get = getters()[E.OrderFilled]
        evs = [e for e in await _trade(rt, 80) if type(e) is E.OrderFilled]
        items = [(code, get(e)) for e in evs]
        for i in range(0, len(items), 10):
            proc.send(items[i : i + 10])  # returns at once: the child reads nothing
        assert proc.sent <= 50 and proc.dropped == len(items) - proc.sent > 0
    finally:
        os.kill(proc.proc.pid, signal.SIGCONT)
    await until(lambda: proc.pending == 0, what="the child to catch up")
    await proc.close()
    assert proc.proc.returncode == 0
    await rt.stop()


async def test_the_child_exits_when_its_parent_goes_away(broker: Broker) -> None:  # noqa: F811
    cfg = bridge_config(broker)
    rt = await _runtime()
    proc = await PublisherProcess.start(cfg, rt.exchange.instruments, max_pending=100)
    assert proc.proc is not None and proc.transport is not None
    # what a killed parent leaves: the socket's end closed, nobody waiting for the child
    proc.transport.abort()
    loop = asyncio.get_running_loop()
    rc = await asyncio.wait_for(loop.run_in_executor(None, proc.proc.wait), 5)
    assert rc == 0
    await rt.stop()


async def test_in_process_publishing_remains_available(broker: Broker) -> None:  # noqa: F811
    cfg = bridge_config(broker, publisher_process=False)
    rt = await _runtime()
    bridge = MqttBridge(rt, cfg)
    await bridge.start()
    await asyncio.wait_for(bridge.connected.wait(), 5)
    assert bridge._proc is None
    async with watching(broker, f"{cfg.base}/{SYM}/trades") as w:
        fill = [e for e in await _trade(rt, 3) if type(e) is E.OrderFilled][-1]
        m = await w.next(f"{cfg.base}/{SYM}/trades", where=lambda d: d["tradeId"] == fill.trade_id)
        assert json.loads(m.payload)["tradeId"] == fill.trade_id
    assert not bridge.stats()["publisherProcess"]
    await bridge.stop()
    await rt.stop()
