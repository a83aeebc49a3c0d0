"""Merging streams: time order, deterministic ties, laziness."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from replay import (
    BookUpdate,
    Event,
    FundingRate,
    Kline,
    Liquidation,
    Quote,
    Ticker,
    Trade,
    merge,
    read_merged,
)
from tests.replay.helpers import csv_text, write

ONE = D(1)


def trade(ts: int, tag: str, local: int | None = None) -> Trade:
    return Trade(ts, ts if local is None else local, "X", ONE, ONE, "buy", tag)


def book(ts: int, tag: str) -> BookUpdate:
    return BookUpdate(ts, ts, "X", False, (), (), None, tag)


def ticker(ts: int, tag: str) -> Ticker:
    return Ticker(ts, ts, "X", ONE, None, None, None, None, None, None, tag)


def funding(ts: int, tag: str) -> FundingRate:
    return FundingRate(ts, ts, "X", ONE, 8, tag)


def tags(events: list[Event]) -> list[str]:
    return [getattr(e, "trade_id", None) or e.exchange for e in events]  # type: ignore[attr-defined]


def test_time_order() -> None:
    a = [trade(1, "a1"), trade(5, "a5"), trade(9, "a9")]
    b = [trade(2, "b2"), trade(3, "b3"), trade(10, "b10")]
    assert tags(list(merge([a, b]))) == ["a1", "b2", "b3", "a5", "a9", "b10"]


def test_ties_by_priority_then_stream_then_sequence() -> None:
    # all at t=5: book (priority 4), trades (2), ticker and kline (0), funding (-1)
    s0 = [book(5, "book0"), book(5, "book1")]
    s1 = [trade(5, "tradeA"), trade(5, "tradeB")]
    s2 = [trade(5, "tradeC")]
    s3 = [funding(5, "fund")]
    s4 = [ticker(5, "tick")]
    s5 = [Kline(5, 5, "X", "index", 0, ONE, ONE, ONE, ONE, ONE, "kline")]
    out = tags(list(merge([s0, s1, s2, s3, s4, s5])))
    assert out == ["fund", "tick", "kline", "tradeA", "tradeB", "tradeC", "book0", "book1"]
    # deterministic: the same inputs always give the same order
    again = tags(list(merge([s0, s1, s2, s3, s4, s5])))
    assert again == out
    # stream order decides between equal priorities
    assert tags(list(merge([s2, s1]))) == ["tradeC", "tradeA", "tradeB"]


def test_type_priorities() -> None:
    order = [FundingRate, Ticker, Kline, Trade, Liquidation, BookUpdate, Quote]
    prios = [cls.priority for cls in order]
    assert prios == sorted(prios)
    assert FundingRate.priority < Ticker.priority == Kline.priority < Trade.priority


def test_priority_override_per_stream() -> None:
    s0 = [book(5, "book")]
    s1 = [trade(5, "trade")]
    assert tags(list(merge([s0, s1]))) == ["trade", "book"]
    assert tags(list(merge([s0, s1], priorities=[0, None]))) == ["book", "trade"]
    with pytest.raises(ValueError, match="priorities"):
        merge([s0, s1], priorities=[0])


def test_by_local_time() -> None:
    a = [trade(10, "a", local=15), trade(11, "a2", local=30)]
    b = [trade(12, "b", local=20)]
    assert tags(list(merge([a, b], by="exchange"))) == ["a", "a2", "b"]
    assert tags(list(merge([a, b], by="local"))) == ["a", "b", "a2"]
    with pytest.raises(ValueError, match="by must be"):
        merge([a], by="wall")  # type: ignore[arg-type]


def test_stream_order_never_changes_when_time_goes_back() -> None:
    # exchange time goes back inside stream a (as in Tardis files, sorted by arrival)
    a = [trade(10, "a10"), trade(8, "a8"), trade(12, "a12")]
    b = [trade(9, "b9"), trade(11, "b11")]
    out = tags(list(merge([a, b])))
    assert out == ["b9", "a10", "a8", "b11", "a12"]
    assert out.index("a10") < out.index("a8")


def test_lazy() -> None:
    pulled: list[str] = []

    def stream(tag: str, step: int) -> Iterator[Event]:
        for i in itertools.count():
            pulled.append(tag)
            yield trade(i * step, f"{tag}{i}")

    merged = merge([stream("a", 2), stream("b", 3)])
    assert pulled == []  # nothing read before the first pull
    first = list(itertools.islice(merged, 5))
    assert tags(first) == ["a0", "b0", "a1", "b1", "a2"]
    # one event of look-ahead per stream at most
    assert pulled.count("a") <= 4 and pulled.count("b") <= 3


def test_empty_and_single_streams() -> None:
    assert list(merge([])) == []
    assert list(merge([[], []])) == []
    one = [trade(3, "x"), trade(1, "y")]
    assert list(merge([one])) == one
    assert tags(list(merge([[], one, []]))) == ["x", "y"]


def test_read_merged_files(tmp_path: Path) -> None:
    header = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    t0 = 1598918403696000
    f1 = write(
        tmp_path / "a_trades.csv",
        csv_text(header, [["e", "X", t0, t0 + 5, "a1", "buy", "1", "1"]]),
        "gz",
    )
    f2 = write(
        tmp_path / "b_trades.csv",
        csv_text(header, [["e", "X", t0 + 1, t0 + 2, "b1", "buy", "1", "1"]]),
        "zip",
    )
    assert tags(list(read_merged([f1, f2]))) == ["a1", "b1"]
    assert tags(list(read_merged([f1, f2], by="local"))) == ["b1", "a1"]
    # equal times: the order of the paths decides
    assert tags(list(read_merged([f2, f1], by="local"))) == ["b1", "a1"]
    liq = Liquidation(1, 1, "X", ONE, ONE, "buy")
    quote = Quote(1, 1, "X", None, None, None, None)
    assert list(merge([[quote], [liq]])) == [liq, quote]
