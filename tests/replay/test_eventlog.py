"""The canonical event log: exact round trip, deterministic bytes, clear errors."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import (
    BookLevel,
    BookUpdate,
    EventLogWriter,
    FundingRate,
    Kline,
    Liquidation,
    Quote,
    ReplayFormatError,
    Ticker,
    Trade,
    detect_format,
    event_from_json,
    event_to_json,
    read,
    read_event_log,
    write_event_log,
)
from tests.replay.helpers import write

T = 1_600_000_000_123_456_789

EVENTS = [
    Ticker(T, T + 1, "BTCUSDT", D("11650.10"), None, D("1E+4"), D("-0.0001"), None, T + 9, D("0")),
    Kline(T + 60, T + 60, "BTCUSDT", "mark", T, D("1.0"), D("2.00"), D("-0.5"), D("1.5"), D("0")),
    FundingRate(T + 61, T + 61, "BTCUSDT", D("0.00037409"), 8, "binance-futures"),
    FundingRate(T + 62, T + 62, "ETHUSDT", D("-1E-8"), None),
    Trade(T + 70, T + 71, "XBTUSD", D("8531.5"), D("2152"), "sell", "ccc3c1fa", "bitmex"),
    Trade(T + 70, T + 71, "XBTUSD", D("8531.50"), D("0.000"), "unknown"),
    Liquidation(T + 72, T + 73, "XBTUSD", D("8000"), D("1"), "buy", "", "bitmex"),
    BookUpdate(
        T + 80,
        T + 81,
        "BTC-PERPETUAL",
        True,
        (BookLevel(D("6421"), D("2000")), BookLevel(D("6420.5"), D("0"))),
        (),
        2098021528332,
        "deribit",
    ),
    BookUpdate(T + 82, T + 82, "ÉTH/€", False, (), (BookLevel(D("1"), D("2")),)),
    Quote(T + 90, T + 91, "X", D("1.1"), D("2"), None, None, "e"),
]


def _same_text(a: object, b: object) -> bool:
    """Equal and every Decimal written with the same digits (1.0 vs 1.00 differ here)."""
    return repr(a) == repr(b)


def test_one_event_round_trip() -> None:
    for ev in EVENTS:
        line = event_to_json(ev)
        back = event_from_json(line)
        assert back == ev and _same_text(back, ev) and type(back) is type(ev)
        assert "\n" not in line


def test_json_layout() -> None:
    obj = json.loads(event_to_json(EVENTS[4]))
    assert obj == {
        "type": "trade",
        "exchange_ts": T + 70,
        "local_ts": T + 71,
        "symbol": "XBTUSD",
        "price": "8531.5",
        "amount": "2152",
        "side": "sell",
        "trade_id": "ccc3c1fa",
        "exchange": "bitmex",
    }
    assert list(obj)[0] == "type"
    book = json.loads(event_to_json(EVENTS[7]))
    assert book["bids"] == [["6421", "2000"], ["6420.5", "0"]] and book["asks"] == []
    assert book["snapshot"] is True and book["update_id"] == 2098021528332


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz"])
def test_file_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_event_log(path, iter(EVENTS)) == len(EVENTS)
    back = list(read_event_log(path))
    assert back == EVENTS and all(map(_same_text, back, EVENTS))
    # read() detects the log too
    assert detect_format(path) == "events"
    assert list(read(path)) == EVENTS


def test_output_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_event_log(a, EVENTS)
    write_event_log(b, EVENTS)
    assert a.read_bytes() == b.read_bytes()
    text = gzip.decompress(a.read_bytes()).decode()
    assert text.splitlines()[0] == '{"format":"margincall-events","version":1}'
    assert len(text.splitlines()) == len(EVENTS) + 1


def test_writer_on_a_stream_and_flush() -> None:
    buf = io.StringIO()
    with EventLogWriter(buf) as w:
        w.write(EVENTS[0])
        w.flush()
        assert w.count == 1
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and event_from_json(lines[1]) == EVENTS[0]


def test_headerless_log_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(event_to_json(e) for e in EVENTS) + "\n\n")
    assert list(read_event_log(path)) == EVENTS


BAD = [
    ('{"type":"trade"', "not valid JSON"),
    ('{"type":"nope"}', "unknown event type 'nope'"),
    ("[1, 2]", "must be a JSON object"),
    (
        '{"type":"funding","exchange_ts":1,"local_ts":1,"symbol":"X","rate":0.0001,'
        '"interval_hours":8,"exchange":""}',
        "JSON number 0.0001 is not allowed",
    ),
    (
        '{"type":"funding","exchange_ts":1,"local_ts":1,"symbol":"X","rate":"abc",'
        '"interval_hours":8,"exchange":""}',
        "field rate 'abc' is not a decimal number",
    ),
    (
        '{"type":"funding","exchange_ts":"1","local_ts":1,"symbol":"X","rate":"1",'
        '"interval_hours":8,"exchange":""}',
        "field exchange_ts must be a JSON integer",
    ),
    (
        '{"type":"funding","exchange_ts":1,"local_ts":1,"symbol":"X","rate":"1","extra":1,'
        '"exchange":""}',
        "missing interval_hours; unknown extra",
    ),
    (
        '{"type":"trade","exchange_ts":1,"local_ts":1,"symbol":"X","price":"1","amount":"1",'
        '"side":"long","trade_id":"","exchange":""}',
        "field side must be one of buy, sell, unknown",
    ),
]


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_bad_lines_are_named(tmp_path: Path, line: str, problem: str) -> None:
    good = event_to_json(EVENTS[2])
    path = write(tmp_path / "log.jsonl", "\n".join([good, good, line, good]) + "\n", "gz")
    it = read_event_log(path)
    assert next(it) == EVENTS[2]
    next(it)
    with pytest.raises(ReplayFormatError) as err:
        next(it)
    assert err.value.line == 3 and problem in err.value.problem


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"format":"margincall-events","version":99}\n')
    with pytest.raises(ReplayFormatError, match=r"log\.jsonl:1: unsupported .* version 99"):
        list(read_event_log(path))
