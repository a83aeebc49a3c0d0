"""The connection: connect, one session (subscribe, republish, publish, receive),
reconnect with backoff; QoS 1 through paho, QoS 0 through the `FastPublisher`.

A part of `MqttBridge` (see `exchange.mqtt.bridge`): it owns the aiomqtt client, the
session's paho client and fast path, and the publisher, refresher and receiver tasks.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from exchange.mqtt.config import Outgoing
from exchange.mqtt.fast import FastPublisher
from exchange.protocol.wire import encode_plain

log = logging.getLogger("margincall.mqtt")


class Connection:
    """`MqttBridge`'s connection to the broker and the tasks of one session."""

    def _online(self, online: bool) -> bytes:
        return encode_plain({"type": "bridge", "online": online, "venue": self.config.venue})

    def _make_client(self) -> aiomqtt.Client:
        cfg = self.config
        bridge = self

        class IndexQueue(asyncio.Queue):  # type: ignore[type-arg]
            """aiomqtt's incoming queue, bounded: overflow is counted, not logged each."""

            def put_nowait(self, item: Any) -> None:
                if self.full():
                    bridge.index_overflow += 1
                    return
                super().put_nowait(item)

        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(cfg.bridge_topic, self._online(False), qos=1, retain=True),
            keepalive=cfg.keepalive,
            timeout=5.0,
            queue_type=IndexQueue,
            max_queued_incoming_messages=cfg.index_queue_size,
            max_inflight_messages=cfg.max_inflight,
        )

    async def _connection_loop(self) -> None:
        """Connect, run a session, and reconnect with exponential backoff (with jitter)
        until stopped. The backoff starts over only after a session that lasted at least
        `backoff_max` s, so a broker that drops us right after CONNACK is not hammered."""
        cfg = self.config
        delay = cfg.backoff_min
        while not self._stopping:
            up_since: float | None = None
            try:
                async with self._make_client() as client:
                    self._client = client
                    self.connects += 1
                    up_since = time.monotonic()
                    log.info("MQTT connected to %s:%s", cfg.host, cfg.port)
                    await self._session(client)
            except (aiomqtt.MqttError, OSError) as e:
                self.connect_failures += 1
                self.last_error = str(e)[:200]
                log.warning("MQTT %s:%s: %s", cfg.host, cfg.port, e)
            except Exception as e:  # a bug here must not end the bridge for good
                self.connect_failures += 1
                self.last_error = repr(e)[:200]
                log.exception("MQTT session failed")
            finally:
                self._client = None
                self.connected.clear()
            if self._stopping:
                return
            if up_since is not None and time.monotonic() - up_since >= cfg.backoff_max:
                delay = cfg.backoff_min
            wait = delay * (0.5 + random.random() / 2)
            log.info("MQTT reconnecting in %.2fs", wait)
            await asyncio.sleep(wait)
            delay = min(cfg.backoff_max, delay * 2)

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: subscribe to the feed, go online, republish the retained state,
        then publish and receive until either connection fails. At the end, QoS 1
        messages paho still held (unacknowledged) are counted as dropped."""
        cfg = self.config
        paho = client._client
        self._paho = paho
        inner = paho.on_publish

        def on_publish(*args: Any) -> None:
            # paho calls this when a QoS 0 packet is written or a QoS 1 PUBACK arrives
            if inner is not None:
                inner(*args)
            self.published += 1
            self._wake.set()  # the held count went down: the publisher may go on

        paho.on_publish = on_publish
        fast = FastPublisher(cfg)
        try:
            topic = cfg.index_feed_topic
            if topic:
                # retain handling 2: a retained (possibly hours-old) price is never sent
                opts = SubscribeOptions(qos=1, retainHandling=2)
                await client.subscribe(topic, options=opts)
            # whatever of the retained topics is still queued is older than `retained`
            before = len(self._out) + len(self._out1)
            self._out = deque(m for m in self._out if not m.retain)
            self._out1 = deque(m for m in self._out1 if not m.retain)
            self.discarded_stale_retained += before - len(self._out) - len(self._out1)
            sub = self._sub
            drops = sub.dropped_batches if sub is not None else 0
            if drops != self._seeded_drops:  # our copies may have missed events: rebuild
                self._seed(self.runtime.exchange.instruments)
                self._seeded_drops = drops
            else:  # symbols we have nothing for yet
                missing = [
                    s
                    for s in self.runtime.exchange.instruments
                    if cfg.topic(s, "ticker") not in self.retained
                ]
                self._seed(missing)
            await client.publish(cfg.bridge_topic, self._online(True), qos=1, retain=True)
            for msg in list(self.retained.values()):
                await self._publish(client, msg)
                self.republished += 1
            self._fast = fast
            try:
                await fast.connect()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                raise aiomqtt.MqttError(f"fast path: {e!r}") from None
            self.connected.set()
            tasks = [
                asyncio.create_task(self._publisher(client, fast)),
                asyncio.create_task(self._refresher()),
                asyncio.create_task(self._receiver(client)),  # also notices a disconnect
                asyncio.create_task(fast.run()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                t.result()  # re-raise what ended the session
        finally:
            self.connected.clear()
            await fast.aclose()  # always, also when connect() itself failed
            lost = len(paho._out_messages)
            if lost:  # not acknowledged: not resent by the next session (at most once)
                self.dropped_messages += lost
                self.dropped_qos1 += lost
                log.warning("MQTT session ended with %d QoS 1 messages unacknowledged", lost)
            self._paho = None
            self._fast = None

    def _props(self, expiry: int) -> Properties | None:
        """Shared, never mutated after creation."""
        if not expiry:
            return None
        props = self._props_cache.get(expiry)
        if props is None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
            self._props_cache[expiry] = props
        return props

    async def _publish(self, client: aiomqtt.Client, msg: Outgoing) -> None:
        """Publish and wait for the broker (retained state at connect time)."""
        await client.publish(
            msg.topic,
            msg.payload,
            qos=msg.qos,
            retain=msg.retain,
            properties=self._props(msg.expiry),
        )

    async def _publisher(self, client: aiomqtt.Client, fast: FastPublisher) -> None:
        """Drain the outgoing queues: QoS 0 through `fast`, QoS 1 through paho.

        `await client.publish()` costs a loop turn per message (~150 µs); paho's own
        `publish` only queues the packet and aiomqtt's socket writer sends it, so QoS 1
        uses that (aiomqtt's `_client` escape hatch). paho would hold any number of QoS 1
        messages beyond its in-flight window, outside our bound and uncounted, so a QoS 1
        message is handed over only while paho holds fewer than `_held_limit`; the rest
        wait in `_out1` (bounded, drops counted). Every `burst` messages the fast path's
        buffer is handed to the socket and the loop gets a turn; while either connection
        holds more than `socket_backlog` unsent packets (×256 bytes) the bridge waits.
        `published` counts QoS 0 messages written here and (through paho's on_publish)
        QoS 1 messages the broker acknowledged.
        """
        paho = client._client
        held = paho._out_messages
        limit = self._held_limit
        burst = 256
        high = self.config.socket_backlog
        ok = MQTT_ERR_SUCCESS
        while True:
            out, out1 = self._out, self._out1
            n = 0
            while True:
                if len(getattr(paho, "_out_packet", ())) >= high or fast.backlog() >= high * 256:
                    fast.flush()
                    await asyncio.sleep(0.002)
                    continue
                if out1 and len(held) < limit:  # the few reliable messages first
                    msg = out1.popleft()
                    info = paho.publish(
                        msg.topic, msg.payload, msg.qos, msg.retain, self._props(msg.expiry)
                    )
                    if len(held) > self.max_held:
                        self.max_held = len(held)
                    if info.rc != ok:  # paho keeps it; counted as dropped at session end
                        raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
                elif out:
                    fast.add(out.popleft())
                    self.published += 1
                else:
                    break
                n += 1
                if n >= burst:
                    n = 0
                    fast.flush()
                    await asyncio.sleep(0)
            fast.flush()
            self._wake.clear()
            # woken by _enqueue, or by an acknowledgement when QoS 1 waits for the window
            await self._wake.wait()

    async def _refresher(self) -> None:
        """Re-offer the retained state every half expiry, so that while the exchange runs
        (even idle) the retained values stay; they expire only when it is gone."""
        expiries = [e for e in (self.config.mark_expiry, self.config.status_expiry) if e]
        if not expiries:
            return
        period = max(1.0, min(expiries) / 2)
        while True:
            await asyncio.sleep(period)
            for msg in list(self.retained.values()):
                self._enqueue(msg)
            self.refreshed += 1

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode() if payload is not None else b""
            self.on_index_payload(bytes(payload), retain=message.retain)
