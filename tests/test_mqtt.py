"""The MQTT bridge against a real Mosquitto (see docs/mqtt.md).

The `broker` fixture starts `mosquitto` on free ports with the shipped mosquitto.conf and
mosquitto.acl (ports and paths templated into a tmp dir, a password file made with
`mosquitto_passwd`). Without the binary it falls back to 127.0.0.1:1883 (the tests that
need our ACL or a broker restart are then skipped); under CI=true a missing broker fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from exchange.config import load_instruments
from exchange.core import commands as C
from exchange.core.engine import Exchange
from exchange.mqtt import MqttBridge, MqttConfig, Outgoing
from exchange.protocol import dumps
from exchange.runtime import Runtime
from exchange.testing import Probe, fund_accounts, running_stack

ROOT = Path(__file__).resolve().parents[1]
SYM = "BTCUSDT"
CI = os.environ.get("CI", "").lower() == "true"
USERS = {"margincall": "bridge-" + uuid.uuid4().hex, "oracle": "oracle-" + uuid.uuid4().hex}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def find_tool(name: str) -> str | None:
    """On PATH, or where Debian installs it (/usr/sbin is often not on a user's PATH)."""
    found = shutil.which(name)
    if found is not None:
        return found
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return None


@dataclass
class Broker:
    port: int
    own: bool  # started here with the shipped configuration (ACL, passwords)
    binary: str | None = None  # the mosquitto the fixture found
    conf: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        assert self.own and self.conf is not None and self.binary is not None
        logf = open(self.conf.parent / "mosquitto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            cwd=self.conf.parent,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        logf.close()
        deadline = time.monotonic() + 5
        while not reachable(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.conf.parent / "mosquitto.log").read_text()[-2000:])
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def creds(self, user: str | None) -> dict[str, Any]:
        if user is None:
            return {}
        return {"username": user, "password": USERS[user]}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    binary = find_tool("mosquitto")
    passwd = find_tool("mosquitto_passwd")
    if binary is None or passwd is None:
        if reachable(1883):
            yield Broker(1883, own=False)
            return
        msg = "no mosquitto binary and nothing listening on 127.0.0.1:1883"
        if CI:
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("mosquitto")
    port, ws_port = free_port(), free_port()
    conf = (ROOT / "mosquitto.conf").read_text()
    conf = re.sub(r"^listener 1883 ", f"listener {port} ", conf, flags=re.M)
    conf = re.sub(r"^listener 9001 ", f"listener {ws_port} ", conf, flags=re.M)
    conf = conf.replace("password_file mosquitto.passwd", f"password_file {d / 'passwd'}")
    conf = conf.replace("acl_file mosquitto.acl", f"acl_file {d / 'acl'}")
    assert f"listener {port} " in conf and str(d / "acl") in conf
    conf += f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to `mosquitto`
    (d / "mosquitto.conf").write_text(conf)
    shutil.copy(ROOT / "mosquitto.acl", d / "acl")
    for i, (user, pw) in enumerate(USERS.items()):
        args = [passwd, "-b"] + (["-c"] if i == 0 else []) + [str(d / "passwd"), user, pw]
        subprocess.run(args, check=True, capture_output=True)
    os.chmod(d / "passwd", 0o600)
    b = Broker(port, own=True, binary=binary, conf=d / "mosquitto.conf")
    b.start()
    try:
        yield b
    finally:
        b.kill()


def bridge_config(broker: Broker, **kw: Any) -> MqttConfig:
    cfg = MqttConfig(
        host="127.0.0.1",
        port=broker.port,
        venue="t" + uuid.uuid4().hex[:10],
        backoff_min=0.05,
        backoff_max=0.3,
        **broker.creds("margincall"),
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


class Watcher:
    """An anonymous MQTT v5 subscriber that collects messages by topic."""

    def __init__(self) -> None:
        self.messages: list[aiomqtt.Message] = []
        self.event = asyncio.Event()

    async def next(self, topic: str, timeout: float = 5.0, where: Any = None) -> aiomqtt.Message:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.messages[seen:]:
                seen += 1
                if m.topic.value == topic and (where is None or where(json.loads(m.payload))):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no MQTT message on {topic}")
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), left)


@contextlib.asynccontextmanager
async def watching(broker: Broker, topic: str, user: str | None = None) -> AsyncIterator[Watcher]:
    w = Watcher()
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, **broker.creds(user)
    ) as client:
        await client.subscribe(topic, qos=1)

        async def read() -> None:
            async for m in client.messages:
                w.messages.append(m)
                w.event.set()

        task = asyncio.create_task(read())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def logged_in(url: str, key: dict[str, Any]) -> Probe:
    p = await Probe(url).__aenter__()
    await p.logon(key["apiKey"], key["secret"])
    return p


async def test_order_on_websocket_reaches_mqtt_with_the_same_payload(broker: Broker) -> None:
    cfg = bridge_config(broker)
    base = cfg.base
    async with running_stack() as st, MqttBridge(st.runtime, cfg) as bridge:
        bridge.attach_stats(st.server)
        await asyncio.wait_for(bridge.connected.wait(), 5)
        async with watching(broker, f"{base}/#") as w:
            adm = await Probe(st.url).__aenter__()
            await adm.call("session.logon", adminToken=st.admin_token)
            ka, kb = await fund_accounts(adm, 2)
            a, b = await logged_in(st.url, ka), await logged_in(st.url, kb)
            ws = await Probe(st.url).__aenter__()
            await ws.call("subscribe", streams=[f"trades.{SYM}", f"mark.{SYM}", f"book.{SYM}@raw"])
            await a.call(
                "order.place",
                symbol=SYM,
                side="SELL",
                type="LIMIT",
                quantity="0.5",
                price="50000",
                timeInForce="GTC",
            )
            await b.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.5")
            trade = await ws.next(f"trades.{SYM}")
            m = await w.next(f"{base}/{SYM}/trades")
            assert m.payload == dumps(trade).encode()  # byte for byte the WS stream's data
            assert json.loads(m.payload) == trade and m.qos == 0
            await ws.next(f"book.{SYM}@raw")  # the snapshot
            delta = await ws.next(f"book.{SYM}@raw")
            m = await w.next(f"{base}/{SYM}/book", where=lambda d: d["seq"] == delta["seq"])
            assert json.loads(m.payload) == delta
            tick = await w.next(f"{base}/{SYM}/ticker", where=lambda d: d["bestBid"] is None)
            assert json.loads(tick.payload)["type"] == "ticker"
            for p in (a, b, ws, adm):
                await p.close()
        # a late subscriber gets the retained mark and ticker, with a message expiry
        async with watching(broker, f"{base}/+/+") as late:
            for kind in ("mark", "ticker"):
                m = await late.next(f"{base}/{SYM}/{kind}")
                assert m.retain
                assert 0 < m.properties.MessageExpiryInterval <= cfg.mark_expiry  # type: ignore[union-attr]
            mark = json.loads((await late.next(f"{base}/{SYM}/mark")).payload)
            assert mark["mark"] == "50000.00"
        assert bridge.stats()["published"] > 0 and bridge.stats()["droppedMessages"] == 0


async def test_index_from_mqtt_moves_the_mark_and_liquidates(broker: Broker) -> None:
    cfg = bridge_config(broker)
    base, feed = cfg.base, cfg.index_feed_topic
    oracle_user = "oracle" if broker.own else None
    async with running_stack() as st, MqttBridge(st.runtime, cfg) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        adm = await Probe(st.url).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        keys = await fund_accounts(adm, 3)
        mm, lo, short = [await logged_in(st.url, k) for k in keys]
        await mm.call(
            "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="1", price="50000"
        )
        await lo.call("leverage.set", symbol=SYM, leverage=50)
        await lo.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="1")
        await short.call("leverage.set", symbol=SYM, leverage=2)
        await short.call(
            "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="2", price="50000"
        )
        await mm.call(
            "order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="1", price="50000"
        )
        async with (
            watching(broker, f"{base}/#") as w,
            aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                protocol=aiomqtt.ProtocolVersion.V5,
                **broker.creds(oracle_user),
            ) as oracle,
        ):
            bad = [
                b"not json",
                b"[1,2]",
                b'{"symbol":"NOPE","price":"1"}',
                b'{"symbol":"BTCUSDT","price":"-5"}',
                b'{"symbol":"BTCUSDT","price":true}',
                b'{"symbol":"BTCUSDT"}',
                b'{"symbol":"BTCUSDT","price":"1","x":1}',
                b'{"symbol":"BTCUSDT","price":"NaN"}',
                b'{"symbol":"BTCUSDT","price":"1e999"}',
                b'{"symbol":"BTCUSDT","price":"50000","ts":"soon"}',
                b"\xff\xfe",
            ]
            index_before = st.exchange.market_view(SYM).index
            for payload in bad:
                await oracle.publish(feed, payload, qos=1)
            t0 = time.monotonic()
            while bridge.index_bad < len(bad) and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.01)
            assert bridge.index_bad == len(bad) and bridge.index_accepted == 0
            assert st.exchange.market_view(SYM).index == index_before  # nothing reached the core
            # a good one (-8 %): the mark moves and the 50x long is liquidated
            await oracle.publish(feed, json.dumps({"symbol": SYM, "price": 46000}), qos=1)
            mark = await w.next(f"{base}/{SYM}/mark", where=lambda d: d["index"] == "46000.00")
            assert json.loads(mark.payload)["mark"] != "50000.00"
            liq = json.loads((await w.next(f"{base}/{SYM}/liquidations")).payload)
            assert liq["side"] == "LONG" and liq["generation"] == 0 and liq["cascadeId"] >= 1
            for k in ("parentId", "triggerMark", "fills", "insuranceDelta", "bankruptcyPrice"):
                assert k in liq
            casc = await w.next(f"{base}/{SYM}/cascades")
            assert casc.qos == 1 and json.loads(casc.payload)["cascadeId"] == liq["cascadeId"]
            assert (await lo.call("account.status"))["positions"] == []
            # stale (older ts than the last accepted) is counted, not applied
            now = time.time_ns()
            await oracle.publish(feed, json.dumps({"symbol": SYM, "price": "46010", "ts": now}))
            await oracle.publish(feed, json.dumps({"symbol": SYM, "price": "1", "ts": now - 1}))
            t0 = time.monotonic()
            while bridge.index_received < len(bad) + 3 and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.01)
            assert bridge.index_stale == 1 and bridge.index_accepted == 2
        for p in (mm, lo, short, adm):
            await p.close()


async def test_anonymous_client_cannot_publish_an_index_price(broker: Broker) -> None:
    if not broker.own:
        (pytest.fail if CI else pytest.skip)("needs the shipped ACL (no mosquitto binary)")
    cfg = bridge_config(broker)
    async with running_stack() as st, MqttBridge(st.runtime, cfg) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        msg = json.dumps({"symbol": SYM, "price": "12345"})
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as anon:
            await anon.publish(cfg.index_feed_topic, msg, qos=1)  # acked, denied by the ACL
            await anon.publish(f"{cfg.base}/{SYM}/mark", "{}", qos=1, retain=True)
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, **broker.creds("oracle")
        ) as oracle:
            await oracle.publish(
                cfg.index_feed_topic, json.dumps({"symbol": SYM, "price": "5"}), qos=1
            )
        t0 = time.monotonic()
        while bridge.index_received < 1 and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert bridge.index_received == 1 and bridge.index_accepted == 1
        assert st.exchange.market_view(SYM).index == 50  # the oracle's 5.0, not 12345
        async with watching(broker, f"{cfg.base}/#") as w:  # nor could it write a mark
            with pytest.raises(TimeoutError):
                await w.next(f"{cfg.base}/{SYM}/mark", timeout=0.3, where=lambda d: d == {})


async def trade_loop(a: Probe, b: Probe, stop: asyncio.Event, acks: list[float], sym: str) -> None:
    """Pairs of orders that trade (a rests, b takes) until `stop`; ack times in `acks`."""
    price = "50000" if sym == SYM else "3000"
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.wait_for(
            a.call("order.place", symbol=sym, side="SELL", type="LIMIT", quantity="0.01",
                   price=price),
            2,
        )  # fmt: skip
        await asyncio.wait_for(
            b.call("order.place", symbol=sym, side="BUY", type="MARKET", quantity="0.01"), 2
        )
        acks.append(t)
        await asyncio.sleep(0.002)


async def until(cond: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """A bounded wait for a condition the test cannot await as an event."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_broker_restart_republishes_the_retained_state(broker: Broker) -> None:
    if not broker.own:
        (pytest.fail if CI else pytest.skip)("needs a broker this test can kill and restart")
    cfg = bridge_config(broker, queue_size=50)
    base = cfg.base
    kinds = ("mark", "ticker", "status", "depth")
    async with running_stack(clock="realtime", tick_interval=None) as st:
        bridge = MqttBridge(st.runtime, cfg)
        bridge.attach_stats(st.server)
        await bridge.start()
        await asyncio.wait_for(bridge.connected.wait(), 5)
        adm = await Probe(st.url).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        ka, kb = await fund_accounts(adm, 2)
        await adm.call("admin.setIndex", symbol="ETHUSDT", price="3000")
        a, b = await logged_in(st.url, ka), await logged_in(st.url, kb)
        # BTCUSDT trades, then its order flow stops before the broker dies
        acks: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(trade_loop(a, b, stop, acks, SYM))
        await until(lambda: len(acks) >= 20, what="20 BTCUSDT trades")
        stop.set()
        await task
        await until(lambda: not bridge.backlog() and not (bridge._sub and len(bridge._sub)))
        await asyncio.sleep(cfg.depth_interval + 0.1)  # the depth of the last book change
        await until(lambda: not bridge.backlog())
        pre = {k: bridge.retained[cfg.topic(SYM, k)].payload for k in kinds}
        assert json.loads(pre["mark"])["seq"] > 0  # from the stream, not a seeded copy
        async with watching(broker, f"{base}/{SYM}/+") as w:  # the broker has them
            for k in kinds:
                await w.next(f"{base}/{SYM}/{k}", where=lambda d, k=k: d == json.loads(pre[k]))
        broker.kill()
        await asyncio.wait_for(until(lambda: not bridge.connected.is_set()), 5)
        # matching goes on (ETHUSDT) while the broker is down; the bridge sheds, counted
        acks.clear()
        stop = asyncio.Event()
        task = asyncio.create_task(trade_loop(a, b, stop, acks, "ETHUSDT"))
        try:
            await asyncio.sleep(0.8)
            assert len(acks) > 20, f"matching stalled during the outage: {len(acks)}"
            assert len(bridge._out) <= cfg.queue_size and len(bridge._out1) <= cfg.queue_size
            assert bridge.stats()["droppedMessages"] > 0
            broker.start()
            await asyncio.wait_for(bridge.connected.wait(), 10)
            n = len(acks)
            await until(lambda: len(acks) > n, what="a trade after the restart")
        finally:
            stop.set()
            await task
        # the restarted broker kept nothing (persistence off): all of it is a republish,
        # byte for byte what was retained before the kill
        async with watching(broker, f"{base}/{SYM}/+") as late:
            for k in kinds:
                m = await late.next(f"{base}/{SYM}/{k}")
                assert m.retain and m.payload == pre[k], k
            await a.call(
                "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.01", price="50000"
            )
            await b.call("order.place", symbol=SYM, side="BUY", type="MARKET", quantity="0.01")
            await late.next(f"{base}/{SYM}/trades")  # and live data flows again
        stats = (await adm.call("admin.stats"))["server"]["mqtt"]
        assert stats["droppedMessages"] > 0 and stats["connected"] is True
        assert stats["republishedRetained"] >= 2 * len(kinds) and stats["connects"] >= 2
        for p in (a, b, adm):
            await p.close()
        await bridge.stop()


async def test_halt_and_resume_set_the_retained_status(broker: Broker) -> None:
    cfg = bridge_config(broker)
    topic = cfg.topic(SYM, "status")
    async with running_stack() as st, MqttBridge(st.runtime, cfg) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        adm = await Probe(st.url).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        ws = await Probe(st.url).__aenter__()
        await ws.call("subscribe", streams=[f"status.{SYM}"])
        async with watching(broker, topic) as w:
            m = await w.next(topic)  # retained since the bridge started, without any halt
            assert m.retain and json.loads(m.payload)["status"] == "TRADING"
            await adm.call("admin.halt", symbol=SYM)
            halted = await ws.next(f"status.{SYM}")
            m = await w.next(topic, where=lambda d: d["status"] == "HALTED")
            assert m.payload == dumps(halted).encode() and m.qos == 1
        async with watching(broker, topic) as late:
            m = await late.next(topic)
            assert m.retain and m.payload == dumps(halted).encode()
            assert 0 < m.properties.MessageExpiryInterval <= cfg.status_expiry  # type: ignore[union-attr]
            await adm.call("admin.resume", symbol=SYM)
            await late.next(topic, where=lambda d: d["status"] == "TRADING")
        async with watching(broker, topic) as late:
            m = await late.next(topic)
            assert m.retain and json.loads(m.payload)["status"] == "TRADING"
        # the bridge's own topic is not one of the symbols' (`+/status` does not match it)
        async with watching(broker, f"{cfg.base}/+/status") as w2:
            await w2.next(topic)
            assert all(x.topic.value != cfg.bridge_topic for x in w2.messages)
        async with watching(broker, cfg.bridge_topic) as w3:
            m = await w3.next(cfg.bridge_topic)
            assert m.retain and json.loads(m.payload)["online"] is True
        for p in (adm, ws):
            await p.close()


async def test_a_late_watcher_gets_mark_ticker_status_and_depth_without_trading(
    broker: Broker,
) -> None:
    cfg = bridge_config(broker, depth_interval=0.2)
    base = cfg.base
    async with running_stack() as st:
        adm = await Probe(st.url).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        (ka,) = await fund_accounts(adm, 1)  # sets the BTCUSDT index: a mark, no trade
        a = await logged_in(st.url, ka)
        for price in ("49990", "49980"):
            await a.call(
                "order.place", symbol=SYM, side="BUY", type="LIMIT", quantity="0.1", price=price
            )
        async with MqttBridge(st.runtime, cfg) as bridge:
            await asyncio.wait_for(bridge.connected.wait(), 5)
            async with watching(broker, f"{base}/+/+") as late:
                for kind in ("mark", "ticker", "status", "depth"):
                    m = await late.next(f"{base}/{SYM}/{kind}")
                    assert m.retain and m.properties.MessageExpiryInterval > 0  # type: ignore[union-attr]
                for kind in ("ticker", "status", "depth"):  # no index yet: no mark
                    assert (await late.next(f"{base}/ETHUSDT/{kind}")).retain
                mark = json.loads((await late.next(f"{base}/{SYM}/mark")).payload)
                assert mark["mark"] == "50000.00" and mark["type"] == "mark"
                ticker = json.loads((await late.next(f"{base}/{SYM}/ticker")).payload)
                assert ticker["bestBid"] == "49990.00" and ticker["status"] == "TRADING"
                depth = await late.next(f"{base}/{SYM}/depth")
                answer = await a.call("depth", symbol=SYM, limit=cfg.depth_levels)
                assert depth.payload == dumps(answer).encode()  # the `depth` answer's JSON
                assert depth.qos == 0
                # a book change gives a new depth (at most one per depth_interval)
                await a.call(
                    "order.place", symbol=SYM, side="SELL", type="LIMIT", quantity="0.1",
                    price="50100",
                )  # fmt: skip
                m = await late.next(
                    f"{base}/{SYM}/depth", where=lambda d: d["bookSeq"] > answer["bookSeq"]
                )
                answer = await a.call("depth", symbol=SYM, limit=cfg.depth_levels)
                assert json.loads(m.payload) == answer and answer["asks"] == [["50100.00", "0.100"]]
        for p in (a, adm):
            await p.close()


async def test_realtime_seed_carries_the_clock_and_the_real_next_funding_time(
    broker: Broker,
) -> None:
    """In realtime mode an engine that has handled no command is still at time 0 with its
    first funding time in 1970: the retained ticker (and mark) built at bridge start must
    carry the clock's time and the funding time the engine will really settle next."""
    cfg = bridge_config(broker)
    interval = 8 * 3600 * 10**9
    async with running_stack(clock="realtime", tick_interval=None) as st:
        assert st.exchange.now == 0  # nothing happened yet
        before = time.time_ns()
        async with MqttBridge(st.runtime, cfg) as bridge:
            await asyncio.wait_for(bridge.connected.wait(), 5)
            async with watching(broker, f"{cfg.base}/+/+") as late:
                ticker = json.loads((await late.next(cfg.topic(SYM, "ticker"))).payload)
        after = time.time_ns()
        assert before <= ticker["ts"] <= after
        nxt = ticker["nextFundingTs"]
        assert nxt % interval == 0 and before < nxt <= after + interval


async def test_retained_index_messages_are_ignored(broker: Broker) -> None:
    cfg = bridge_config(broker)
    feed = cfg.index_feed_topic
    creds = broker.creds("oracle" if broker.own else None)
    async with (
        running_stack() as st,
        aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, **creds
        ) as oracle,
    ):
        # an hours-old price, retained on the broker before the bridge starts
        old = json.dumps({"symbol": SYM, "price": "123"})
        await oracle.publish(feed, old, qos=1, retain=True)
        try:
            async with MqttBridge(st.runtime, cfg) as bridge:
                await asyncio.wait_for(bridge.connected.wait(), 5)
                await oracle.publish(feed, json.dumps({"symbol": SYM, "price": "456"}), qos=1)
                await until(lambda: st.exchange.market_view(SYM).index == 4560, what="index")
                # retain handling 2: the broker never sent the retained one
                assert bridge.index_received == 1 and bridge.index_accepted == 1
                # and one carrying the retain flag anyway is counted and ignored
                bridge.on_index_payload(old.encode(), retain=True)
                stats = bridge.stats()
                assert stats["indexRetainedIgnored"] == 1 and stats["indexAccepted"] == 1
                await st.runtime.submit(C.SetIndexPrice(symbol="ETHUSDT", price=300000))
                assert st.exchange.market_view(SYM).index == 4560
        finally:
            await oracle.publish(feed, b"", qos=1, retain=True)  # clear it


async def test_index_ts_checks_and_coalescing() -> None:
    """No broker needed: the index-feed path from payload to the runtime's queue."""
    rt = Runtime(Exchange(load_instruments()), clock="stepped", tick_interval=None)
    bridge = MqttBridge(rt, MqttConfig(venue="t", max_index_skew=5.0))
    await rt.start()
    try:

        def send(price: str, ts: int | None = None) -> None:
            obj: dict[str, Any] = {"symbol": SYM, "price": price}
            if ts is not None:
                obj["ts"] = ts
            bridge.on_index_payload(json.dumps(obj).encode())

        # a ts from the future is a bad payload (it would make every later one stale)
        send("100", 2**62)
        send("101", time.time_ns() + 60 * 10**9)
        assert bridge.index_bad == 2 and bridge.index_accepted == 0
        send("102", time.time_ns() + 10**9)  # within the skew: fine
        send("103", time.time_ns() + 2 * 10**9)  # not blocked by the future ts
        assert bridge.index_accepted == 2 and bridge.index_bad == 2
        # a burst: one SetIndexPrice waits in the runtime, the latest price behind it
        for i in range(100):
            send(str(200 + i))
        assert len(bridge._index_pending) == 1 and len(bridge._index_next) == 1
        assert bridge.index_accepted == 102 and bridge.index_coalesced == 100
        await until(lambda: rt.exchange.market_view(SYM).index == 2990, what="last price")
        assert not bridge._index_pending and not bridge._index_next
    finally:
        await rt.stop()
    send("500")  # nothing runs it: neither accepted nor queued
    assert bridge.index_not_running == 1 and bridge.index_accepted == 102


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("venue", "a/b"),
        ("venue", "+"),
        ("venue", "x#"),
        ("venue", ""),
        ("mark_expiry", 2**32),
        ("status_expiry", -1),
        ("keepalive", 0),
        ("keepalive", 65536),
        ("queue_size", 0),
    ],
)
def test_invalid_config_is_rejected(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=key.split("_")[0]):
        MqttConfig(**{key: value})
    with pytest.raises(ValueError, match=key.split("_")[0]):
        MqttConfig.from_url("mqtt://127.0.0.1:1883", **{key: value})
    cfg = MqttConfig()
    setattr(cfg, key, value)
    with pytest.raises(ValueError):
        MqttBridge(Runtime(Exchange(load_instruments())), cfg)


def test_serve_rejects_a_bad_mqtt_venue() -> None:
    from typer.testing import CliRunner

    from exchange.cli import app

    r = CliRunner().invoke(
        app, ["serve", "--store", "off", "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-venue", "a/b"]
    )
    assert r.exit_code == 2 and "venue" in r.output


async def test_serve_with_mqtt_option(broker: Broker) -> None:
    """What `margincall serve --mqtt URL --mqtt-user U` sets up (without the process)."""
    from exchange.mqtt import install
    from exchange.stack import ServeOptions, start_stack, stop_stack

    opts = ServeOptions(port=0, admin_token="t", tick_interval=None)
    venue = "t" + uuid.uuid4().hex[:10]
    creds = broker.creds("margincall")
    install(opts, f"mqtt://127.0.0.1:{broker.port}", venue=venue, **creds)
    stack = await start_stack(opts)
    server = stack.server
    bridge = opts.extra["mqtt"]["bridge"]
    try:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        async with watching(broker, f"margincall/v1/{venue}/#") as w:
            adm = await Probe(server.url).__aenter__()
            await adm.call("session.logon", adminToken="t")
            await adm.call("admin.setIndex", symbol=SYM, price="50000")
            await w.next(f"margincall/v1/{venue}/{SYM}/mark")
            stats = (await adm.call("admin.stats"))["server"]["mqtt"]
            assert stats["connected"] is True and stats["published"] >= 1
            await adm.close()
    finally:
        await stop_stack(stack)
        for hook in opts.extra["after_stop"]:
            await hook()
    assert not bridge.connected.is_set()


async def test_a_frozen_broker_never_slows_matching(broker: Broker) -> None:
    """SIGSTOP: the broker reads nothing but the connections stay up (a 'slow' broker).
    Trades go on; ticks and QoS 1 messages (liquidation-sized) pile up to the bridge's
    bounds and are then dropped and counted; paho never holds more than its limit."""
    if not broker.own:
        (pytest.fail if CI else pytest.skip)("needs a broker this test can pause")
    import signal

    cfg = bridge_config(broker, queue_size=200, socket_backlog=5, process_backlog=200)
    base = cfg.base
    async with running_stack() as st, MqttBridge(st.runtime, cfg) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        adm = await Probe(st.url).__aenter__()
        await adm.call("session.logon", adminToken=st.admin_token)
        ka, kb = await fund_accounts(adm, 2)
        a, b = await logged_in(st.url, ka), await logged_in(st.url, kb)
        limit = bridge.stats()["qos1HeldLimit"]
        big = b"x" * 20_000
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        acks: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(trade_loop(a, b, stop, acks, SYM))
        worst = {"out": 0, "out1": 0, "held": 0}
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:
                for _ in range(50):  # more and bigger traffic than the trades alone
                    bridge._enqueue(Outgoing(f"{base}/{SYM}/liquidations", big, 1, False, 0))
                    bridge._enqueue(Outgoing(f"{base}/{SYM}/trades", big, 0, False, 0))
                worst["out"] = max(worst["out"], len(bridge._out))
                worst["out1"] = max(worst["out1"], len(bridge._out1))
                worst["held"] = max(worst["held"], bridge.held())
                await asyncio.sleep(0.01)
            stats = bridge.stats()
            assert len(acks) > 50, f"only {len(acks)} trades while the broker was frozen"
        finally:
            broker.proc.send_signal(signal.SIGCONT)
            stop.set()
            await task
        assert worst["out"] <= cfg.queue_size and worst["out1"] <= cfg.queue_size
        assert 0 < worst["held"] <= limit and bridge.max_held <= limit
        assert stats["droppedMessages"] > 0 and stats["droppedQos1Messages"] > 0
        # both queues, the held QoS 1, and what the publisher process has not yet sent
        assert stats["queued"] <= 2 * cfg.queue_size + limit + cfg.process_backlog
        # once thawed, the same connection drains everything still queued
        await until(lambda: bridge.backlog() == 0, timeout=10, what="the queues to drain")
        assert bridge.connects == 1
        for p in (a, b, adm):
            await p.close()


def test_bench_mqtt_reports_every_figure(broker: Broker) -> None:
    """A short smoke run of `python -m bench mqtt` (the real figures are by hand)."""
    if shutil.which("mosquitto_sub") is None:
        (pytest.fail if CI else pytest.skip)("bench mqtt needs mosquitto_sub")
    import argparse

    from bench import mqtt as bench_mqtt

    creds = broker.creds("margincall")
    r = bench_mqtt.run(
        argparse.Namespace(
            host="127.0.0.1", port=broker.port, ops=2000, rounds=1, latency_orders=30, **creds
        )
    )
    for k in (
        "msgs_per_s",
        "p50_us",
        "p99_us",
        "engine_ops_per_s_bridge_off",
        "engine_ops_per_s_bridge_on",
    ):
        assert r[k] > 0, (k, r)
    assert r["latency_samples"] == 30
