"""`MqttBridge`: its state, start and stop, stats; and `install` for `serve --mqtt`.

The bridge is assembled from its parts, all on the one state `MqttBridge.__init__` sets
up: `outbound.Outbound` (events → queues, retained state), `connection.Connection` (the
broker session) and `index_feed.IndexFeed` (prices in).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import aiomqtt
from paho.mqtt.properties import Properties

from exchange.mqtt.config import MqttConfig, Outgoing
from exchange.mqtt.connection import Connection
from exchange.mqtt.fast import FastPublisher
from exchange.mqtt.index_feed import IndexFeed
from exchange.mqtt.outbound import Outbound
from exchange.mqtt.process import PublisherProcess, getters
from exchange.protocol.formatter import Formatter
from exchange.runtime import Runtime


class MqttBridge(Outbound, Connection, IndexFeed):
    """Publishes market data to MQTT and feeds index prices from MQTT into the runtime."""

    def __init__(self, runtime: Runtime, config: MqttConfig | None = None) -> None:
        self.runtime = runtime
        self.config = config or MqttConfig()
        self.config.validate()
        self.formatter = Formatter.shared(runtime)
        self.retained: dict[str, Outgoing] = {}
        self._out: deque[Outgoing] = deque()  # QoS 0: ticks, shed first
        self._out1: deque[Outgoing] = deque()  # QoS 1: liquidations, cascades, status
        self._wake = asyncio.Event()
        self._sub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aiomqtt.Client | None = None
        self._paho: Any = None  # the current session's paho client (its held messages)
        self._fast: FastPublisher | None = None
        self._proc: PublisherProcess | None = None
        self._to_child = getters()
        self._stopping = False
        self._last_index_ts: dict[str, int] = {}
        self._index_pending: set[str] = set()  # symbols with a SetIndexPrice in the runtime
        self._index_next: dict[str, int] = {}  # latest accepted price behind that one
        self._props_cache: dict[int, Properties] = {}
        self._routes: dict[str, tuple[str, int, bool, int]] = {}
        self._depth_seq: dict[str, int] = {}  # bookSeq of the last `depth` per symbol
        self._seeded_drops = 0  # subscription drops when the retained state was last built
        self._bad_logged = 0
        self.connected = asyncio.Event()
        # counters
        self.published = 0
        self.enqueued = 0
        self.dropped_messages = 0  # all QoS, including:
        self.dropped_qos1 = 0
        self.discarded_stale_retained = 0
        self.connects = 0
        self.connect_failures = 0
        self.republished = 0
        self.refreshed = 0
        self.max_held = 0  # most QoS 1 messages paho held at once
        self.index_received = 0
        self.index_accepted = 0
        self.index_bad = 0
        self.index_stale = 0
        self.index_retained_ignored = 0
        self.index_coalesced = 0
        self.index_overflow = 0
        self.index_not_running = 0
        self.last_error = ""

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe to the runtime, build the retained state from the engine's current
        market state, and start connecting (returns at once; see `connected`)."""
        if self._tasks:
            return
        self._stopping = False
        cfg = self.config
        if cfg.publisher_process:
            self._proc = await PublisherProcess.start(
                cfg, self.runtime.exchange.instruments, cfg.process_backlog
            )
        self._sub = self.runtime.subscribe("mqtt", cfg.subscription_size, policy="drop")
        # same loop turn as the subscription: no event falls between state and stream
        self._seed(self.runtime.exchange.instruments)
        self._seeded_drops = 0
        self._tasks = [
            asyncio.create_task(self._consume(), name="margincall-mqtt-consume"),
            asyncio.create_task(self._connection_loop(), name="margincall-mqtt-connection"),
            asyncio.create_task(self._depth_loop(), name="margincall-mqtt-depth"),
        ]

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Stop consuming; while connected, wait up to `flush_timeout` s until the queues,
        paho's held messages and both sockets' buffers are empty; mark the bridge offline
        and disconnect. What is still unsent then is counted as dropped."""
        if not self._tasks:
            return
        if self._sub is not None:
            self._sub.close()
        consumer, connection, depth = self._tasks
        depth.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(consumer, 1.0)
        deadline = time.monotonic() + flush_timeout
        while (
            self.connected.is_set()
            and (self.backlog() or self._unsent_bytes())
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.01)
        self._stopping = True
        if self._proc is not None:
            await self._proc.close()
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await client.publish(
                    self.config.bridge_topic, self._online(False), qos=1, retain=True
                )
        connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection
        with contextlib.suppress(asyncio.CancelledError):
            await depth
        self._tasks = []

    async def __aenter__(self) -> MqttBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def attach_stats(self, server: Any) -> None:
        """Add this bridge's counters to `admin.stats` (``result.server.mqtt``)."""
        api = server.api
        previous = api.extra_stats

        def stats() -> dict[str, Any]:
            out = dict(previous()) if previous is not None else {}
            out["mqtt"] = self.stats()
            return out

        api.extra_stats = stats

    def stats(self) -> dict[str, Any]:
        sub, proc = self._sub, self._proc
        return {
            "connected": self.connected.is_set(),
            "broker": f"{self.config.host}:{self.config.port}",
            "connects": self.connects,
            "connectFailures": self.connect_failures,
            "published": self.published + (proc.published if proc else 0),
            "queued": self.backlog(),
            "queueSize": self.config.queue_size,
            "qos1Held": self.held(),
            "qos1HeldLimit": self._held_limit,
            "droppedMessages": self.dropped_messages
            + (proc.dropped + proc.child_dropped if proc else 0),
            "publisherProcess": proc is not None,
            "droppedQos1Messages": self.dropped_qos1,
            "discardedStaleRetained": self.discarded_stale_retained,
            "droppedBatches": sub.dropped_batches if sub is not None else 0,
            "droppedEvents": sub.dropped_events if sub is not None else 0,
            "republishedRetained": self.republished,
            "indexReceived": self.index_received,
            "indexAccepted": self.index_accepted,
            "indexBadPayloads": self.index_bad,
            "indexStale": self.index_stale,
            "indexRetainedIgnored": self.index_retained_ignored,
            "indexCoalesced": self.index_coalesced,
            "indexOverflow": self.index_overflow,
            "indexNotRunning": self.index_not_running,
            "lastError": self.last_error,
        }


# -------------------------------------------------------------------- serve --mqtt


def install(
    opts: Any,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    **config: Any,
) -> MqttConfig:
    """Wire a bridge into `margincall serve` (`ServeOptions.extra` hooks): it starts with
    the stack, reports in `admin.stats`, and is stopped by the ``after_stop`` hook."""
    cfg = MqttConfig.from_url(url, username=username, password=password, **config)
    holder: dict[str, MqttBridge] = {}

    async def before_start(runtime: Runtime, server: Any) -> None:
        bridge = MqttBridge(runtime, cfg)
        holder["bridge"] = bridge
        bridge.attach_stats(server)
        await bridge.start()

    async def after_stop() -> None:
        if "bridge" in holder:
            await holder["bridge"].stop()

    opts.extra.setdefault("before_start", []).append(before_start)
    opts.extra.setdefault("after_stop", []).append(after_stop)
    opts.extra["mqtt"] = holder
    return cfg
