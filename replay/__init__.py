"""Historical market data for replays: streaming readers, canonical events, merging.

Read any supported file (Tardis CSV, Binance USDⓈ-M public data, Binance tick-level depth,
plain OHLCV, or the canonical event log), as plain, ``.gz`` or ``.zip``::

    from replay import read, read_merged, write_event_log

    for event in read("binance-futures_trades_2020-09-01_BTCUSDT.csv.gz"):
        ...
    write_event_log("day.jsonl.gz", read_merged(["trades.csv.gz", "ticker.csv.gz"]))

Readers are generators in constant memory; prices and amounts are ``Decimal``; timestamps are
integer nanoseconds. A malformed line raises :class:`ReplayFormatError` (a ``ValueError``)
naming the file, the line and the problem. See ``docs/replay.md``.
"""

from replay.errors import ReplayFormatError
from replay.eventlog import (
    EventLogWriter,
    event_from_dict,
    event_from_json,
    event_to_dict,
    event_to_json,
    read_event_log,
    write_event_log,
)
from replay.events import (
    EVENT_TYPES,
    BookLevel,
    BookUpdate,
    Event,
    FundingRate,
    Kline,
    Liquidation,
    Quote,
    Ticker,
    Trade,
)
from replay.formats import EVENTS_FORMAT, FORMATS, detect_format, read, read_merged
from replay.merge import merge

__all__ = [
    "EVENTS_FORMAT",
    "EVENT_TYPES",
    "FORMATS",
    "BookLevel",
    "BookUpdate",
    "Event",
    "EventLogWriter",
    "FundingRate",
    "Kline",
    "Liquidation",
    "Quote",
    "ReplayFormatError",
    "Ticker",
    "Trade",
    "detect_format",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "merge",
    "read",
    "read_event_log",
    "read_merged",
    "write_event_log",
]
