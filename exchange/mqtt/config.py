"""The bridge's settings (`MqttConfig`, from a URL), its topic scheme, and `Outgoing`,
a message ready to publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

PREFIX = "margincall/v1"


@dataclass
class MqttConfig:
    """Where the broker is and how the bridge behaves (see docs/mqtt.md).

    `validate()` (run on construction, by `from_url` and by `MqttBridge`) raises
    `ValueError` for values the broker or the topic scheme cannot take."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    venue: str = "margincall"
    prefix: str = PREFIX
    index_topic: str | None = None  # None: <prefix>/<venue>/index-feed; "": no index feed
    client_id: str | None = None
    mark_expiry: int = 60  # s, message expiry of the retained mark, ticker and depth
    status_expiry: int = 86_400  # s, of the retained status
    queue_size: int = 10_000  # outgoing messages buffered per QoS (oldest dropped beyond)
    subscription_size: int = 1024  # event batches buffered between engine and bridge
    backoff_min: float = 0.1
    backoff_max: float = 5.0
    max_index_age: float | None = None  # s; feed messages with an older `ts` are stale
    max_index_skew: float = 5.0  # s a feed `ts` may be ahead of our clock (else bad)
    index_queue_size: int = 1000  # index messages received and not yet validated
    keepalive: int = 10
    max_inflight: int = 20  # QoS 1 messages sent and not yet acknowledged
    socket_backlog: int = 2000  # packets paho may hold unsent before the bridge pauses
    depth_levels: int = 20  # per side in the retained `depth`
    depth_interval: float = 1.0  # s; at most one `depth` per symbol per interval
    publisher_process: bool = True  # `book` and `trades` formatted/published by a child
    process_backlog: int = 100_000  # events handed to that child and not yet processed
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ValueError` naming the first bad setting."""
        v = self.venue
        if not isinstance(v, str) or not v or any(c in v for c in "/+#\0"):
            raise ValueError(
                f"MQTT venue must be one non-empty topic level (no '/', '+', '#'), not {v!r}"
            )
        for name in ("mark_expiry", "status_expiry"):
            x = getattr(self, name)
            if type(x) is not int or not 0 <= x < 2**32:
                raise ValueError(f"MQTT {name} must be an integer in 0..2**32-1 s, not {x!r}")
        if type(self.keepalive) is not int or not 1 <= self.keepalive <= 65535:
            raise ValueError(f"MQTT keepalive must be 1..65535 s, not {self.keepalive!r}")
        for name in ("queue_size", "subscription_size", "index_queue_size", "max_inflight"):
            x = getattr(self, name)
            if type(x) is not int or x < 1:
                raise ValueError(f"MQTT {name} must be a positive integer, not {x!r}")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise ValueError("MQTT backoff must satisfy 0 < backoff_min <= backoff_max")
        if not self.max_index_skew >= 0:
            raise ValueError("MQTT max_index_skew must be >= 0")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.venue}"

    @property
    def bridge_topic(self) -> str:
        """The bridge's own online/offline topic, one level under the venue (so it never
        matches ``<venue>/+/<kind>``)."""
        return f"{self.base}/bridge"

    @property
    def index_feed_topic(self) -> str:
        if self.index_topic is None:
            return f"{self.base}/index-feed"
        return self.index_topic

    def topic(self, symbol: str, kind: str) -> str:
        return f"{self.base}/{symbol}/{kind}"

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttConfig:
        """``mqtt://[user[:password]@]host[:port]``; keyword arguments override.
        Raises `ValueError` for a bad URL or setting."""
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"MQTT URL must start with mqtt://, not {url!r}")
        try:
            port = u.port or 1883
        except ValueError as e:
            raise ValueError(f"MQTT URL {url!r}: {e}") from None
        cfg = cls(host=u.hostname or "127.0.0.1", port=port)
        if u.username:
            cfg.username = unquote(u.username)
        if u.password:
            cfg.password = unquote(u.password)
        for k, v in kw.items():
            if v is not None:
                setattr(cfg, k, v)
        cfg.validate()
        return cfg


class Outgoing(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    expiry: int  # s; 0: none
