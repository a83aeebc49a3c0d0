"""The canonical event log: one JSON object per line, every reader's common output.

Layout (see ``docs/replay.md``)::

    {"format":"margincall-events","version":1}
    {"type":"trade","exchange_ts":1583020803145000000,"local_ts":...,"price":"8531.5",...}

Guarantees:

* Round trip is exact: ``read_event_log`` gives back events equal to those written, and every
  Decimal keeps its exact digits (``"8531.50"`` stays ``Decimal("8531.50")``). Decimals are JSON
  strings, timestamps JSON integers (ns); no float is ever written or accepted.
* Output is deterministic: the same events give the same bytes (keys in field order, compact
  separators, gzip header without a timestamp).
* Reading streams line by line in constant memory; a bad line raises
  :class:`~replay.errors.ReplayFormatError` naming the line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from replay._source import PathLike, open_text
from replay.errors import ReplayFormatError
from replay.events import EVENT_TYPES, BookLevel, Event

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "EventLogWriter",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "iter_event_lines",
    "read_event_log",
    "write_event_log",
]

FORMAT_NAME = "margincall-events"
FORMAT_VERSION = 1
HEADER_LINE = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}, separators=(",", ":"))

_SIDES = frozenset({"buy", "sell", "unknown"})
_KLINE_KINDS = frozenset({"trade", "mark", "index", "premium"})


# --- field codecs: (encode or None for identity, decode) -----------------------------------------


def _dec_int(v: Any) -> int:
    if type(v) is not int:
        raise ValueError("must be a JSON integer")
    return v


def _dec_str(v: Any) -> str:
    if type(v) is not str:
        raise ValueError("must be a JSON string")
    return v


def _dec_bool(v: Any) -> bool:
    if type(v) is not bool:
        raise ValueError("must be true or false")
    return v


def _dec_decimal(v: Any) -> Decimal:
    if type(v) is not str:
        raise ValueError("must be a decimal number written as a JSON string")
    try:
        d = Decimal(v)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{v!r} is not a decimal number") from None
    if not d.is_finite() or v != v.strip():
        raise ValueError(f"{v!r} is not a finite decimal number")
    return d


def _optional(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def inner(v: Any) -> Any:
        return None if v is None else decode(v)

    return inner


def _enc_optional_decimal(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _enc_levels(levels: tuple[BookLevel, ...]) -> list[list[str]]:
    return [[str(p), str(a)] for p, a in levels]


def _dec_levels(v: Any) -> tuple[BookLevel, ...]:
    if type(v) is not list:
        raise ValueError("must be a list of [price, amount] pairs")
    out = []
    for item in v:
        if type(item) is not list or len(item) != 2:
            raise ValueError("must be a list of [price, amount] pairs")
        out.append(BookLevel(_dec_decimal(item[0]), _dec_decimal(item[1])))
    return tuple(out)


def _choice(allowed: frozenset[str]) -> Callable[[Any], str]:
    def inner(v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return v  # type: ignore[no-any-return]

    return inner


_Codec = tuple[Callable[[Any], Any] | None, Callable[[Any], Any]]
_CODECS: dict[str, _Codec] = {
    "int": (None, _dec_int),
    "int | None": (None, _optional(_dec_int)),
    "str": (None, _dec_str),
    "bool": (None, _dec_bool),
    "Decimal": (str, _dec_decimal),
    "Decimal | None": (_enc_optional_decimal, _optional(_dec_decimal)),
    "tuple[BookLevel, ...]": (_enc_levels, _dec_levels),
    "Side": (None, _choice(_SIDES)),
    "KlineKind": (None, _choice(_KLINE_KINDS)),
}


def _codecs_for(cls: type[Event]) -> list[tuple[str, Callable[[Any], Any] | None, Any]]:
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        enc, dec = _CODECS[ann]  # KeyError here means a new field type needs a codec
        out.append((f.name, enc, dec))
    return out


_ENCODERS = {cls: [(n, e) for n, e, _ in _codecs_for(cls)] for cls in EVENT_TYPES.values()}
_DECODERS = {name: (cls, _codecs_for(cls)) for name, cls in EVENT_TYPES.items()}
_KEYS = {name: {"type", *(n for n, _, _ in codecs)} for name, (_, codecs) in _DECODERS.items()}


# --- one event ---------------------------------------------------------------------------------


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready dict of an event: ``type`` first, then its fields in declaration order."""
    d: dict[str, Any] = {"type": event.type_name}
    for name, enc in _ENCODERS[type(event)]:
        v = getattr(event, name)
        d[name] = v if enc is None else enc(v)
    return d


def event_from_dict(d: dict[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`; raises ``ValueError`` describing any problem."""
    if type(d) is not dict:
        raise ValueError("an event must be a JSON object")
    type_name = d.get("type")
    entry = _DECODERS.get(type_name)  # type: ignore[arg-type]
    if entry is None:
        raise ValueError(f"unknown event type {type_name!r}")
    cls, codecs = entry
    if d.keys() != _KEYS[type_name]:  # type: ignore[index]
        expected = _KEYS[type_name]  # type: ignore[index]
        missing = sorted(expected - d.keys())
        extra = sorted(d.keys() - expected)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(extra)}")
        raise ValueError(f"{type_name} event: {'; '.join(parts)}")
    args = []
    for name, _, dec in codecs:
        try:
            args.append(dec(d[name]))
        except ValueError as exc:
            raise ValueError(f"{type_name} event: field {name} {exc}") from None
    return cls(*args)


def event_to_json(event: Event) -> str:
    """One event as a compact JSON line (no newline)."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)


def event_from_json(line: str) -> Event:
    """Parse one line written by :func:`event_to_json`; raises ``ValueError`` when bad."""
    try:
        obj = json.loads(line, parse_float=_reject_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    return event_from_dict(obj)


def _reject_float(text: str) -> Any:
    raise ValueError(f"JSON number {text} is not allowed: decimals are written as strings")


# --- files -------------------------------------------------------------------------------------


class EventLogWriter:
    """Write events to a log file (gzip when the name ends in ``.gz``) or an open text stream.

    Use as a context manager; the header line is written on opening. ``write`` appends one
    event; call ``flush`` to make what is written so far visible to readers.
    """

    def __init__(self, target: PathLike | TextIO) -> None:
        self._owned: list[Any] = []
        if isinstance(target, str | os.PathLike):
            path = Path(target)
            if path.name.lower().endswith(".gz"):
                raw = open(path, "wb")  # noqa: SIM115 - closed in close()
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                self._out: TextIO = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
                self._owned = [self._out, gz, raw]
            else:
                self._out = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
                self._owned = [self._out]
        else:
            self._out = target
        self.count = 0
        self._out.write(HEADER_LINE + "\n")

    def write(self, event: Event) -> None:
        """Append one event."""
        self._out.write(event_to_json(event) + "\n")
        self.count += 1

    def write_all(self, events: Iterable[Event]) -> int:
        """Append every event of ``events`` (consumed lazily); return how many."""
        n = 0
        write, dumps, to_dict = self._out.write, json.dumps, event_to_dict
        for ev in events:
            write(dumps(to_dict(ev), separators=(",", ":"), ensure_ascii=False) + "\n")
            n += 1
        self.count += n
        return n

    def flush(self) -> None:
        """Flush buffered lines to the file (a gzip member stays open until ``close``)."""
        self._out.flush()

    def close(self) -> None:
        """Flush and close what this writer opened (an outside stream is only flushed)."""
        if not self._owned:
            self._out.flush()
            return
        for f in self._owned:
            f.close()
        self._owned = []

    def __enter__(self) -> EventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_event_log(path: PathLike | TextIO, events: Iterable[Event]) -> int:
    """Write ``events`` (consumed lazily) as an event log; return how many were written."""
    with EventLogWriter(path) as w:
        return w.write_all(events)


def iter_event_lines(lines: Iterable[str], path: str = "<events>") -> Iterator[Event]:
    """Decode event-log lines (header optional, blank lines skipped), naming bad lines."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            if lineno == 1 and line.startswith('{"format"'):
                _check_header(line)
                continue
            yield event_from_json(line)
        except ValueError as exc:
            raise ReplayFormatError(path, lineno, str(exc)) from None


def _check_header(line: str) -> None:
    header = json.loads(line)
    if header.get("format") != FORMAT_NAME:
        raise ValueError(f"not a {FORMAT_NAME} log: format is {header.get('format')!r}")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported {FORMAT_NAME} version {header.get('version')!r} "
            f"(this reader knows version {FORMAT_VERSION})"
        )


def read_event_log(path: PathLike) -> Iterator[Event]:
    """Stream the events of a log file (plain, gzip or zip), in file order."""
    with open_text(path) as (stream, _name):
        yield from iter_event_lines(stream, str(path))
