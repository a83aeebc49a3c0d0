"""Recording a live session (`replay.record`, `margincall record`) and replaying the recording:
a real server in-process, trades, mark moves, book deltas, a liquidation, a bookSeq gap."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clients import Client
from exchange import units
from exchange.cli import app
from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import events as E
from exchange.core.instruments import Instrument
from exchange.testing import Stack, running_stack
from replay import BookUpdate, Liquidation, Ticker, Trade, detect_format, read, read_merged
from replay.player import PlayerConfig, play
from replay.record import EXCHANGE, Recorder, RecordError, record

SYM = "BTCUSDT"
S = 10**9


def instruments() -> list[Instrument]:
    """The shipped instruments, marked at the index: the replay can then give back both the
    recorded index and the recorded mark (see docs/replay.md, "Index, and so mark")."""
    return [dataclasses.replace(i, mark_method="index") for i in load_instruments()]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(instruments(), clock="stepped") as st:
        yield st


class Session:
    """An admin, a market maker and a taker on a running server, and a watcher that keeps
    what the server published (the ground truth the recording is compared with)."""

    def __init__(self, st: Stack) -> None:
        self.st = st

    async def __aenter__(self) -> Session:
        url = self.st.url
        self.admin = await Client(url, admin_token=self.st.admin_token).connect()
        mk = await self.admin.create_account(deposit="10000000")
        tk = await self.admin.create_account(deposit="10000000")
        lv = await self.admin.create_account(deposit="1500")
        await self.admin.set_index(SYM, "50000")
        self.maker = await Client(url, api_key=mk["apiKey"], secret=mk["secret"]).connect()
        self.taker = await Client(url, api_key=tk["apiKey"], secret=tk["secret"]).connect()
        self.lev = await Client(url, api_key=lv["apiKey"], secret=lv["secret"]).connect()
        for p in ("49900.0", "49950.0"):
            await self.maker.place_order(SYM, "BUY", "1", p)
        for p in ("50050.0", "50100.0"):
            await self.maker.place_order(SYM, "SELL", "1", p)
        self.watcher = Client(url)
        return self

    async def watch(self) -> None:
        await self.watcher.connect()
        self.trades, self.marks, self.liqs = await self.watcher.subscribe(
            f"trades.{SYM}", f"mark.{SYM}@raw", f"liquidations.{SYM}"
        )

    async def activity(self) -> None:
        """Trades both ways, index moves, book changes and a 50× long liquidated."""
        adm, mk, tk = self.admin, self.maker, self.taker
        await adm.advance_clock(by=S)
        await tk.place_order(SYM, "BUY", "0.4")  # market: lifts 50050
        await adm.advance_clock(by=S)
        await adm.set_index(SYM, "50020")
        await mk.place_order(SYM, "BUY", "0.7", "50000.0")
        await adm.advance_clock(by=S)
        await tk.place_order(SYM, "SELL", "0.3", "49990.0", time_in_force="IOC")
        await adm.advance_clock(by=S)
        await self.lev.set_leverage(SYM, 50)
        await self.lev.place_order(SYM, "BUY", "0.5", "50050.0")  # fills at 50050
        await adm.advance_clock(by=S)
        await mk.place_order(SYM, "SELL", "0.2", "50080.0")
        await adm.set_index(SYM, "49000")  # the 50× long is liquidated into the bids
        await adm.advance_clock(by=S)
        await adm.set_index(SYM, "49300")
        await mk.place_order(SYM, "BUY", "0.8", "49600.0")
        await adm.advance_clock(by=S)

    async def published(self, rec: Recorder) -> tuple[list[Any], list[Any], list[Any]]:
        """What the watcher received, once it has as many messages as the recorder wrote."""
        out: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        streams = (self.trades, self.marks, self.liqs)

        def caught_up() -> bool:
            for stream, into in zip(streams, out, strict=True):
                while (m := stream.get_nowait()) is not None:
                    into.append(m)
            n = rec.stats.counts
            return [len(x) for x in out] == [n["trade"], n["ticker"], n["liquidation"]]

        await until(caught_up)
        return out

    async def __aexit__(self, *exc: object) -> None:
        for c in (self.watcher, self.lev, self.taker, self.maker, self.admin):
            await c.close()


def depth_strings(ex: Exchange, symbol: str = SYM) -> tuple[list[list[str]], list[list[str]]]:
    """An exchange's book as the `depth` answer prints it."""
    inst = ex.instruments[symbol]
    bids, asks = ex.depth(symbol)
    fmt = [[units.ticks_to_str(inst, p), units.lots_to_str(inst, q)] for p, q in bids]
    return fmt, [[units.ticks_to_str(inst, p), units.lots_to_str(inst, q)] for p, q in asks]


def replay_file(path: Path) -> tuple[Exchange, list[E.MarkPriceChanged]]:
    """Replay a recording into a fresh core (index from the tickers, book mirrored)."""
    ex = Exchange(instruments())
    marks: list[E.MarkPriceChanged] = []

    def sink(batch: list[E.Event]) -> None:
        marks.extend(e for e in batch if type(e) is E.MarkPriceChanged)

    player = play(ex, read_merged([path]), PlayerConfig(), sink=sink)
    assert player.stats.unknown_symbol == 0
    return ex, marks


def dedup(xs: list[Any]) -> list[Any]:
    return [x for i, x in enumerate(xs) if i == 0 or x != xs[i - 1]]


async def record_session(
    st: Stack, path: Path, **kw: Any
) -> tuple[Recorder, Any, Session, tuple[list[Any], list[Any], list[Any]], dict[str, Any]]:
    async with Session(st) as s:
        rec = Recorder(st.url, [SYM], path, **kw)
        stop = asyncio.Event()
        task = asyncio.create_task(rec.run(stop=stop))
        await asyncio.wait_for(rec.ready.wait(), 5)
        await s.watch()
        await s.activity()
        final_seq = st.exchange.book_seq(SYM)
        # the last book delta comes after every trade and mark change of the session
        await until(lambda: rec.book_seq.get(SYM) == final_seq)
        published = await s.published(rec)
        depth = await s.admin.depth(SYM)
        stop.set()
        stats = await asyncio.wait_for(task, 5)
    return rec, stats, s, published, depth


async def test_a_recorded_session_reads_back_and_matches_what_the_server_published(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "session.jsonl.gz"
    rec, stats, _, (trades, marks, liqs), depth = await record_session(stack, path)
    assert stats.reason == "stopped"

    assert detect_format(path) == "events"
    events = list(read(path))
    assert len(events) == stats.events == len(list(read_merged([path])))
    assert all(e.exchange == EXCHANGE and e.symbol == SYM for e in events)
    assert all(e.local_ts > 10**18 for e in events)  # wall time in ns
    assert [e.local_ts for e in events] == sorted(e.local_ts for e in events)
    by_type = {t: [e for e in events if isinstance(e, t)] for t in (Trade, Ticker, Liquidation)}
    assert {k: v for k, v in stats.counts.items()} == {
        "trade": len(by_type[Trade]),
        "ticker": len(by_type[Ticker]),
        "liquidation": len(by_type[Liquidation]),
        "book": sum(isinstance(e, BookUpdate) for e in events),
    }

    # trades: price, quantity, aggressor side and engine time, as published
    assert len(trades) >= 4  # two taker orders, the 50× long's entry, its liquidation
    assert {t["takerSide"] for t in trades} == {"BUY", "SELL"}
    assert [(t.price, t.amount, t.side, t.exchange_ts, t.trade_id) for t in by_type[Trade]] == [
        (D(t["price"]), D(t["qty"]), t["takerSide"].lower(), t["ts"], str(t["tradeId"]))
        for t in trades
    ]
    assert str(by_type[Trade][0].price) == trades[0]["price"]  # the digits as sent ("50050.0")

    # tickers: mark, index, last, funding as the mark stream had them
    assert len(marks) >= 4
    assert [
        (k.mark_price, k.index_price, k.last_price, k.funding_rate, k.funding_ts, k.exchange_ts)
        for k in by_type[Ticker]
    ] == [
        (
            D(m["mark"]),
            D(m["index"]),
            D(m["last"]) if D(m["last"]) else None,
            D(m["fundingRate"]),
            m["nextFundingTs"],
            m["ts"],
        )
        for m in marks
    ]

    # the liquidation: a long, so the liquidation order sells
    assert len(liqs) == 1 and liqs[0]["side"] == "LONG"
    (liq,) = by_type[Liquidation]
    assert (liq.side, liq.amount, liq.price, liq.exchange_ts, liq.liquidation_id) == (
        "sell",
        D(liqs[0]["qty"]),
        D(liqs[0]["bankruptcyPrice"]),
        liqs[0]["ts"],
        str(liqs[0]["liquidationId"]),
    )

    # the book: a snapshot first, then deltas in bookSeq order without a hole
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert books[0].snapshot and not any(b.snapshot for b in books[1:])
    assert books[0].bids == ((D("49950.0"), D("1.000")), (D("49900.0"), D("1.000")))
    assert books[0].asks == ((D("50050.0"), D("1.000")), (D("50100.0"), D("1.000")))
    ids = [b.update_id for b in books]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # type: ignore[operator]
    assert ids[-1] == depth["bookSeq"] and stats.gaps == stats.resyncs == 0


async def test_replaying_a_recording_gives_back_its_index_mark_path_and_book(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "session.jsonl.gz"
    _, _, _, (_, marks, _), depth = await record_session(stack, path)
    ex, replayed = replay_file(path)
    inst = ex.instruments[SYM]

    recorded = dedup([(m["index"], m["mark"]) for m in marks])
    assert len(recorded) >= 4
    path_back = dedup(
        [(units.ticks_to_str(inst, m.index), units.ticks_to_str(inst, m.mark)) for m in replayed]
    )
    assert path_back == recorded
    assert [m.ts for m in replayed] == dedup([m["ts"] for m in marks])
    # the book at the end: the server's, level for level
    assert depth_strings(ex) == (depth["bids"], depth["asks"])
    assert depth["bids"] and depth["asks"]


async def test_a_bookseq_gap_writes_a_fresh_depth_snapshot(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "gap.jsonl"
    lost: list[int] = []

    def lose_one(msg: dict[str, Any]) -> bool:
        d = msg["data"]
        if msg["stream"] == f"book.{SYM}@raw" and d["type"] == "delta" and not lost:
            lost.append(d["bookSeq"])
            return True
        return False

    _, stats, _, _, depth = await record_session(stack, path, drop=lose_one)
    assert lost and stats.gaps == 1 and stats.resyncs == 1 and stats.snapshots == 2
    books = [e for e in read(path) if isinstance(e, BookUpdate)]
    snaps = [i for i, b in enumerate(books) if b.snapshot]
    assert snaps[0] == 0 and len(snaps) == 2
    fresh = books[snaps[1]]
    assert fresh.update_id is not None and fresh.update_id >= lost[0]
    # no delta of the lost one's run before the fresh snapshot; after it, a sequence again
    before = [b.update_id for b in books[1 : snaps[1]]]
    assert lost[0] not in before and all(u < lost[0] for u in before)  # type: ignore[operator]
    after = [b.update_id for b in books[snaps[1] :]]
    assert after == list(range(after[0], after[0] + len(after)))  # type: ignore[operator]
    assert after[-1] == depth["bookSeq"]
    ex, _ = replay_file(path)
    assert depth_strings(ex) == (depth["bids"], depth["asks"])


async def test_without_the_book_only_prices_trades_and_liquidations_are_recorded(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "nobook.jsonl.gz"
    async with Session(stack) as s:
        rec = Recorder(stack.url, [SYM, "ETHUSDT"], path, book=False)
        task = asyncio.create_task(rec.run(duration=60))
        await asyncio.wait_for(rec.ready.wait(), 5)
        await s.taker.place_order(SYM, "BUY", "0.1")
        await until(lambda: rec.stats.counts["trade"] == 1)
        rec.stop()
        stats = await asyncio.wait_for(task, 5)
    assert stats.reason == "stopped" and stats.counts["book"] == 0
    events = list(read(path))
    assert {type(e) for e in events} == {Ticker, Trade}
    assert [e.symbol for e in events if isinstance(e, Trade)] == [SYM]


async def test_the_recording_ends_on_its_duration_and_when_the_server_closes(
    tmp_path: Path,
) -> None:
    async with running_stack(instruments()) as st:
        async with Client(st.url, admin_token=st.admin_token) as adm:
            await adm.set_index(SYM, "50000")
        stats = await record(st.url, [SYM], tmp_path / "short.jsonl.gz", duration=0.3)
        assert stats.reason == "duration" and 0.3 <= stats.seconds < 3
        assert stats.counts == {"ticker": 1, "book": 1}

        rec = Recorder(st.url, [SYM], tmp_path / "cut.jsonl.gz")
        task = asyncio.create_task(rec.run())
        await asyncio.wait_for(rec.ready.wait(), 5)
        await until(lambda: rec.stats.events == 2)
    # the stack is stopped: the server closed the connection
    stats = await asyncio.wait_for(task, 5)
    assert stats.reason == "server closed"
    for name in ("short.jsonl.gz", "cut.jsonl.gz"):
        gzip.decompress((tmp_path / name).read_bytes())  # a complete gzip member
        events = list(read(tmp_path / name))
        assert [type(e) for e in events] == [Ticker, BookUpdate]
        assert events[0].index_price == D("50000.0") and events[0].last_price is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_server_is_a_clean_error(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    out = tmp_path / "never.jsonl.gz"
    with pytest.raises(RecordError, match=f"cannot connect to {url}"):
        await record(url, [SYM], out, duration=1)
    assert not out.exists()

    r = await asyncio.to_thread(
        CliRunner().invoke, app, ["record", "--url", url, "--symbol", SYM, "--out", str(out)]
    )
    assert r.exit_code == 1
    assert f"error: cannot connect to {url}" in r.output
    assert "Traceback" not in r.output and not out.exists()


async def test_an_unknown_symbol_is_refused_without_writing(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    with pytest.raises(RecordError, match="refused the subscription: Unknown symbol"):
        await record(stack.url, ["NOPEUSDT"], out, duration=1)
    assert not out.exists()


async def test_the_record_command_writes_a_file_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl.gz"
    async with running_stack(instruments()) as st, Session(st) as s:
        args = ["record", "--url", st.url, "--symbol", SYM, "--out", str(out), "--duration", "1.5"]
        run = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, app, args))
        await until(lambda: out.exists())
        await asyncio.sleep(0.2)
        await s.taker.place_order(SYM, "BUY", "0.2")
        r = await asyncio.wait_for(run, 10)
    assert r.exit_code == 0, r.output
    assert "recording BTCUSDT" in r.output and "(duration)" in r.output
    assert "trade" in r.output and "book: 1 snapshot (0 after a bookSeq gap)" in r.output
    events = list(read(out))
    assert [e for e in events if isinstance(e, Trade)][0].amount == D("0.200")
    assert isinstance(events[0], Ticker) and events[1].snapshot  # type: ignore[attr-defined]


async def test_the_record_command_is_listed() -> None:
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "record" in r.output
    r = CliRunner().invoke(app, ["record", "--out", "x.jsonl"])
    assert r.exit_code == 2  # --symbol is required


async def test_margincall_replay_serves_a_recording(stack: Stack, tmp_path: Path) -> None:
    """`margincall replay session.jsonl.gz`: the replay server ends with the recorded index,
    mark and book."""
    path = tmp_path / "session.jsonl.gz"
    _, stats, _, (_, marks, _), depth = await record_session(stack, path)
    port = free_port()
    args = ["replay", str(path), "--speed", "0", "--port", str(port), "--no-progress"]
    args += ["--start-delay", "0.3", "--linger", "3"]
    run = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, app, args))
    want = (marks[-1]["index"], marks[-1]["mark"], depth["bids"], depth["asks"])
    seen: tuple[Any, ...] = ()
    client = None
    for _ in range(100):
        try:
            client = await Client(f"ws://127.0.0.1:{port}", reconnect=False).connect()
            break
        except OSError:
            await asyncio.sleep(0.05)
    assert client is not None
    async with client:
        for _ in range(100):
            t, d = await client.ticker(SYM), await client.depth(SYM)
            seen = (t["index"], t["mark"], d["bids"], d["asks"])
            if seen == want:
                break
            await asyncio.sleep(0.05)
    assert seen == want
    r = await asyncio.wait_for(run, 30)
    assert r.exit_code == 0, r.output
    assert f"replayed {stats.events} events" in r.output
