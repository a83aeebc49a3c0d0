"""The MQTT bridge: market data out through a broker (Mosquitto), an index-price feed in.

One more adapter around the core (see docs/mqtt.md for topics, payloads and QoS):

* **out** — a runtime subscription (`policy="drop"`, bounded) feeds a consumer task that
  takes each public event's payload from the runtime's shared `Formatter` (formatted once for
  the WebSocket streams and the bridge alike), so every payload is the same
  JSON, byte for byte, as the `data` of the matching WebSocket stream message. Messages
  go into two bounded outgoing queues (one per QoS; oldest dropped and counted when
  full) that a publisher task drains while connected; paho is handed a QoS 1 message
  only while it holds fewer than `max_inflight` + a small margin, so nothing escapes the
  bound. The engine never waits for the broker.
* **retained state** — the last `mark`, `ticker`, `status` and `depth` of each symbol
  are kept here too (built from the engine's market state at start, so an idle exchange
  has them), published retained with an MQTT v5 message expiry, and republished after
  every reconnect (queued older copies are discarded first, so the broker never goes
  back to a stale value).
* **in** — messages on the index topic (JSON ``{"symbol": "BTCUSDT", "price": "50000.1",
  "ts": 1700000000000000000}``, `ts` optional) are validated here and become
  `SetIndexPrice` commands through the runtime's queue, at most one waiting per symbol
  (newer prices coalesce behind it); bad payloads are counted and logged and never
  reach the core; retained (replayed) prices are ignored.
* **connection** — one loop: connect, subscribe, republish, publish until the broker goes
  away, then reconnect with exponential backoff (capped, with jitter).

`install(opts, url, ...)` wires the bridge into `margincall serve --mqtt URL`; its
counters appear in `admin.stats` under ``result.server.mqtt``.

The package's modules: `config` (`MqttConfig`, `Outgoing`), `fast` (the QoS 0 fast
path), `outbound`, `connection` and `index_feed` (the bridge's parts) and `bridge`
(`MqttBridge` and `install`).
"""

from __future__ import annotations

from exchange.mqtt.bridge import MqttBridge, install
from exchange.mqtt.config import PREFIX, MqttConfig, Outgoing
from exchange.mqtt.fast import FastPublisher
from exchange.mqtt.index_feed import INDEX_KEYS, MAX_INDEX_PAYLOAD, IndexFeedError

__all__ = [
    "INDEX_KEYS",
    "MAX_INDEX_PAYLOAD",
    "PREFIX",
    "FastPublisher",
    "IndexFeedError",
    "MqttBridge",
    "MqttConfig",
    "Outgoing",
    "install",
]
