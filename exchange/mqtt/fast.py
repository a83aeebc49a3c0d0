"""`FastPublisher`: the bridge's second, publish-only MQTT v5 connection for QoS 0."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiomqtt

from exchange.mqtt.config import MqttConfig, Outgoing


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


class FastPublisher:
    """A second, publish-only MQTT v5 connection for QoS 0 messages.

    paho spends ~30 µs of Python per message (a `MQTTMessageInfo` with a lock, a
    `Properties` and a `ReasonCode` for the callback, one `send` per packet); ticks are
    most of the traffic and need none of that. This writes PUBLISH packets (QoS 0, with
    the message-expiry property when asked) into one buffer per burst and lets asyncio's
    transport send it with one system call. It sends PINGREQ on time and treats EOF or a
    DISCONNECT from the broker as the end of the session. QoS 1 messages, the will, the
    index subscription and reconnection stay with aiomqtt.
    """

    def __init__(self, cfg: MqttConfig) -> None:
        self.cfg = cfg
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._parts: list[bytes] = []
        self._prop_bytes: dict[int, bytes] = {0: b"\x00"}

    async def connect(self) -> None:
        """Open the socket and complete CONNECT/CONNACK; on any failure the socket is
        closed before the exception propagates."""
        try:
            await self._connect()
        except BaseException:
            self.close()
            raise

    async def _connect(self) -> None:
        cfg = self.cfg
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(cfg.host, cfg.port), 5.0
        )
        flags = 0x02  # clean start
        payload = _str((cfg.client_id or "margincall") + "-fast-" + uuid.uuid4().hex[:8])
        if cfg.username is not None:
            flags |= 0x80
            payload += _str(cfg.username)
            if cfg.password is not None:
                flags |= 0x40
                payload += _str(cfg.password)
        var = _str("MQTT") + bytes([5, flags]) + cfg.keepalive.to_bytes(2, "big") + b"\x00"
        body = var + payload
        self.writer.write(b"\x10" + _varint(len(body)) + body)
        kind, body = await asyncio.wait_for(self._read_packet(), 5.0)
        if kind != 0x20 or len(body) < 2:
            raise aiomqtt.MqttError(f"fast path: expected CONNACK, got {kind:#x}")
        if body[1] != 0:
            raise aiomqtt.MqttError(f"fast path: broker refused the connection ({body[1]:#x})")

    async def _read_packet(self) -> tuple[int, bytes]:
        """(first byte, body) of the next packet; raises `MqttError` at EOF."""
        assert self.reader is not None
        try:
            head = await self.reader.readexactly(1)
            n, shift = 0, 0
            while True:
                b = (await self.reader.readexactly(1))[0]
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80 or shift > 21:
                    break
            return head[0], await self.reader.readexactly(n)
        except (OSError, asyncio.IncompleteReadError) as e:
            raise aiomqtt.MqttError(
                f"fast path: the broker closed the connection ({e!r})"
            ) from None

    def add(self, msg: Outgoing) -> None:
        props = self._prop_bytes.get(msg.expiry)
        if props is None:
            props = b"\x05\x02" + msg.expiry.to_bytes(4, "big")
            self._prop_bytes[msg.expiry] = props
        topic = msg.topic.encode()
        n = 2 + len(topic) + len(props) + len(msg.payload)
        self._parts.append(
            b"".join(
                (
                    b"\x31" if msg.retain else b"\x30",
                    _varint(n),
                    len(topic).to_bytes(2, "big"),
                    topic,
                    props,
                    msg.payload,
                )
            )
        )

    def flush(self) -> None:
        if self._parts and self.writer is not None:
            self.writer.write(b"".join(self._parts))
            self._parts.clear()

    def backlog(self) -> int:
        w = self.writer
        return w.transport.get_write_buffer_size() if w is not None else 0

    async def run(self) -> None:
        """Keepalive and read until the broker goes away (then raise `MqttError`)."""
        assert self.reader is not None and self.writer is not None
        period = max(1.0, self.cfg.keepalive / 2)

        async def ping() -> None:
            while True:
                await asyncio.sleep(period)
                assert self.writer is not None
                self.writer.write(b"\xc0\x00")

        pinger = asyncio.create_task(ping())
        try:
            while True:
                kind, body = await self._read_packet()
                if kind & 0xF0 == 0xE0:  # DISCONNECT (e.g. a packet the broker refused)
                    code = body[0] if body else 0
                    raise aiomqtt.MqttError(f"fast path: the broker disconnected ({code:#x})")
        finally:
            pinger.cancel()

    def close(self) -> None:
        """Send DISCONNECT (best effort) and close the socket; safe to call twice."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.write(b"\xe0\x00")
                self.writer.close()
            self.writer = None

    async def aclose(self, timeout: float = 1.0) -> None:
        """`close()`, then wait (bounded) until the transport has flushed and closed."""
        writer = self.writer
        self.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout)
