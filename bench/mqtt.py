"""`python -m bench mqtt --json`: the MQTT bridge through a real Mosquitto.

* Engine throughput with the bridge off and on, in the same run (alternating rounds,
  best of each): the reference order stream (`bench.store.stream`) through a `Runtime`
  (stepped clock); with the bridge on, every public event is formatted and published
  from the same process and event loop, as in `serve --mqtt`. No subscriber runs during
  these rounds (on a 2-core machine it would take the engine's CPU, not the bridge).
* msgs_per_s: market-data messages a subscriber in another process (`mosquitto_sub`,
  QoS 0 subscription to the venue's `#`) receives per second, first to last, while one more
  bridge-on round floods it; the subscriber stops once the broker has gone quiet.
* Every bridge round uses a fresh venue (its own topics) and the bridge's default queue
  sizes, as `serve --mqtt` does; what the bridge dropped is reported, not hidden.
* engine_cpu_s_*: CPU seconds of the engine's own process per round (best of each);
  `bridge_cpu_cost_pct` is what the bridge adds to them. With `publisher_process` (the
  default) the child that formats `book` and `trades` is another process: its CPU is not in
  these, but on a loaded 2-core machine it competes with the engine for a core.
* p50_us / p99_us: from an order's acknowledgement (its `submit` returning, in-process)
  to the subscriber receiving the trade on `<SYMBOL>/trades`, orders paced 1 ms apart;
  the subscriber is `mosquitto_sub` in another process; both sides read the wall clock
  of the same machine.

Needs a broker: 127.0.0.1:1883 by default (`--port`, `--username`, `--password`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any

from bench.store import instrument, run_through, setup_commands, stream
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.mqtt import MqttBridge, MqttConfig
from exchange.runtime import Runtime

SYMBOL = "BTCUSDT"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username", default=os.environ.get("MARGINCALL_MQTT_USER"))
    p.add_argument("--password", default=os.environ.get("MARGINCALL_MQTT_PASSWORD"))
    p.add_argument("--ops", type=int, default=100_000, help="commands per engine round")
    p.add_argument("--rounds", type=int, default=2, help="rounds of off/on each")
    p.add_argument("--latency-orders", type=int, default=1000)


# ---------------------------------------------------------------- subscriber


class Subscriber:
    """`mosquitto_sub` (C, from mosquitto-clients) writing `<unix ns> <topic> <payload>`
    lines to a file: a subscriber fast enough not to be what is measured."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        exe = shutil.which("mosquitto_sub")
        if exe is None:
            raise SystemExit("bench mqtt needs mosquitto_sub (Debian: mosquitto-clients)")
        self.out = tempfile.NamedTemporaryFile(suffix=".mqtt", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, "-h", host, "-p", str(port), "-t", topic, "-q", "0", "-F", "%U %t %p"],
            stdout=self.out,
        )
        time.sleep(0.5)  # subscribed by then (it has no readiness signal)
        if self.proc.poll() is not None:
            raise SystemExit("mosquitto_sub could not connect to the broker")

    def report(self, quiet: float = 0.5, limit: float = 15.0) -> dict[str, Any]:
        """Stop once the broker is idle (nothing received for `quiet` s, at most `limit`
        s); count, first and last receipt (ns), trades' receipt."""
        wait_quiet(self.out.name, quiet, limit)
        self.proc.terminate()
        self.proc.wait(5)
        self.out.close()
        state: dict[str, Any] = {"count": 0, "first": 0, "last": 0, "trades": {}}
        with open(self.out.name, encoding="utf-8") as f:
            for line in f:
                ts, topic, payload = line.rstrip("\n").split(" ", 2)
                t = int(ts.replace(".", ""))
                if not state["count"]:
                    state["first"] = t
                state["count"] += 1
                state["last"] = t
                if topic.endswith("/trades"):
                    state["trades"][json.loads(payload)["tradeId"]] = t
        os.unlink(self.out.name)
        return state


def wait_quiet(path: str, quiet: float, limit: float) -> None:
    """Until the file has not grown for `quiet` s (or `limit` s have passed)."""
    t_end = time.monotonic() + limit
    size, since = -1, time.monotonic()
    while time.monotonic() < t_end:
        now_size = os.path.getsize(path)
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


# ---------------------------------------------------------------- rounds


async def engine_round(ops: int, cfg: MqttConfig | None) -> tuple[float, dict[str, Any]]:
    cmds = stream(ops)
    rt = Runtime(Exchange([instrument()]), clock="stepped", tick_interval=None)
    bridge = MqttBridge(rt, cfg) if cfg is not None else None
    if bridge is not None:
        await bridge.start()
        await asyncio.wait_for(bridge.connected.wait(), 5)
    await rt.start()
    await run_through(rt, setup_commands())
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    await run_through(rt, cmds)
    dt = time.perf_counter() - t
    stats: dict[str, Any] = {"cpu_s": time.process_time() - c}
    if bridge is not None:
        t1 = time.perf_counter()
        while (bridge._sub and len(bridge._sub)) or bridge.backlog():
            await asyncio.sleep(0.005)
        stats.update(bridge.stats())
        stats["drain_s_after_engine"] = round(time.perf_counter() - t1, 3)
        await bridge.stop()
    await rt.stop()
    return ops / dt, stats


async def latency_round(n: int, cfg: MqttConfig) -> dict[int, int]:
    """Trades paced 1 ms apart; tradeId → monotonic ns of the taker's acknowledgement."""
    rt = Runtime(Exchange([instrument()]), clock="stepped", tick_interval=None)
    bridge = MqttBridge(rt, cfg)
    await bridge.start()
    await asyncio.wait_for(bridge.connected.wait(), 5)
    await rt.start()
    await run_through(rt, setup_commands())
    acks: dict[int, int] = {}
    for i in range(n):
        await rt.submit(
            C.PlaceOrder(account=1, symbol=SYMBOL, side="SELL", qty=1, price=100_000 + i % 5)
        )
        evs = await rt.submit(
            C.PlaceOrder(account=2, symbol=SYMBOL, side="BUY", qty=1, type="MARKET")
        )
        t = time.time_ns()
        for ev in evs:
            if type(ev) is E.OrderFilled:
                acks[ev.trade_id] = t
        await asyncio.sleep(0.001)
    while bridge.backlog():
        await asyncio.sleep(0.005)
    await bridge.stop()
    await rt.stop()
    return acks


def clear_retained(args: argparse.Namespace, topics: list[str]) -> None:
    """Leave nothing of the run retained on the broker."""
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        return
    auth = ["-u", args.username, "-P", args.password or ""] if args.username else []
    for t in topics:
        subprocess.run(
            [exe, "-h", args.host, "-p", str(args.port), *auth, "-t", t, "-r", "-n"],
            check=False,
            capture_output=True,
        )


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    if args is None:
        args = argparse.Namespace()
        add_arguments(p := argparse.ArgumentParser())
        args = p.parse_args([])
    venues: list[str] = []

    def config(process: bool = True) -> MqttConfig:
        """A fresh venue per round (no round sees another's messages), and the bridge's
        default queue sizes, so "bridge on" is what `serve --mqtt` runs."""
        venues.append("bench" + uuid.uuid4().hex[:8])
        return MqttConfig(
            host=args.host,
            port=args.port,
            username=args.username,
            password=args.password,
            venue=venues[-1],
            index_topic="",
            publisher_process=process,
        )

    off: list[float] = []
    on: list[float] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    inproc: list[float] = []
    cpu_inproc: list[float] = []
    dropped = batches = 0
    last_stats: dict[str, Any] = {}
    for _ in range(args.rounds):  # no subscriber: the bridge's own cost in this process
        rate, st = asyncio.run(engine_round(args.ops, None))
        off.append(rate)
        cpu_off.append(st["cpu_s"])
        rate, last_stats = asyncio.run(engine_round(args.ops, config()))
        on.append(rate)
        cpu_on.append(last_stats["cpu_s"])
        rate, st = asyncio.run(engine_round(args.ops, config(process=False)))
        inproc.append(rate)
        cpu_inproc.append(st["cpu_s"])
        dropped += last_stats["droppedMessages"]
        batches += last_stats["droppedBatches"]
    cfg = config()
    sub = Subscriber(args.host, args.port, f"{cfg.base}/#")
    _, flood = asyncio.run(engine_round(args.ops, cfg))
    rep = sub.report()  # returns once the broker has delivered all it will
    delivered, published = rep["count"], flood["published"]
    span = (rep["last"] - rep["first"]) / 1e9
    msgs_per_s = delivered / span if delivered > 1 else 0.0
    cfg = config()
    sub = Subscriber(args.host, args.port, f"{cfg.base}/+/trades")
    acks = asyncio.run(latency_round(args.latency_orders, cfg))
    rep = sub.report()
    lat = sorted((rep["trades"][tid] - t) / 1000 for tid, t in acks.items() if tid in rep["trades"])
    kinds = ("mark", "ticker", "status", "depth")
    clear_retained(
        args,
        [f"margincall/v1/{v}/bridge" for v in venues]
        + [f"margincall/v1/{v}/{SYMBOL}/{k}" for v in venues for k in kinds],
    )
    best_off, best_on = max(off), max(on)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else float("nan")

    return {
        "msgs_per_s": round(msgs_per_s),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "engine_ops_per_s_bridge_off": round(best_off),
        "engine_ops_per_s_bridge_on": round(best_on),
        "bridge_cost_pct": round(100 * (1 - best_on / best_off), 1),
        # CPU seconds of the engine's own process (a child publisher's are not in it)
        "engine_cpu_s_bridge_off": round(min(cpu_off), 3),
        "engine_cpu_s_bridge_on": round(min(cpu_on), 3),
        "bridge_cpu_cost_pct": round(100 * (1 - min(cpu_off) / min(cpu_on)), 1),
        "publisher_process": bool(flood.get("publisherProcess")),
        # the same bridge with `publisher_process=False`: everything in this process
        "engine_ops_per_s_bridge_in_process": round(max(inproc)),
        "bridge_cost_pct_in_process": round(100 * (1 - max(inproc) / best_off), 1),
        "engine_cpu_s_bridge_in_process": round(min(cpu_inproc), 3),
        "bridge_cpu_cost_pct_in_process": round(100 * (1 - min(cpu_off) / min(cpu_inproc)), 1),
        "messages_published": published,
        "messages_delivered": delivered,
        "bridge_queue_size": cfg.queue_size,
        "bridge_subscription_size": cfg.subscription_size,
        "bridge_dropped_messages_on_rounds": dropped,
        "bridge_dropped_batches_on_rounds": batches,
        "bridge_dropped_messages_flood": flood["droppedMessages"],
        "bridge_dropped_batches_flood": flood["droppedBatches"],
        "bridge_drain_s_after_engine": last_stats["drain_s_after_engine"],
        "latency_samples": len(lat),
        "latency_mean_us": round(statistics.fmean(lat), 1) if lat else float("nan"),
        "ops_per_round": args.ops,
    }
