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

The package imports nothing until a name is used (PEP 562): `import replay.x` for one
module, or the command line's `--help`, does not load the readers and the core.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "ReplayFormatError": "replay.errors",
    "EventLogWriter": "replay.eventlog",
    "event_from_dict": "replay.eventlog",
    "event_from_json": "replay.eventlog",
    "event_to_dict": "replay.eventlog",
    "event_to_json": "replay.eventlog",
    "read_event_log": "replay.eventlog",
    "write_event_log": "replay.eventlog",
    "EVENT_TYPES": "replay.events",
    "BookLevel": "replay.events",
    "BookUpdate": "replay.events",
    "Event": "replay.events",
    "FundingRate": "replay.events",
    "Kline": "replay.events",
    "Liquidation": "replay.events",
    "Quote": "replay.events",
    "Ticker": "replay.events",
    "Trade": "replay.events",
    "EVENTS_FORMAT": "replay.formats",
    "FORMATS": "replay.formats",
    "detect_format": "replay.formats",
    "read": "replay.formats",
    "read_merged": "replay.formats",
    "merge": "replay.merge",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'replay' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """`replay.merge` is the function, as it always was, not the submodule of that name
    that the import system would bind over it when `replay.merge` is first imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
