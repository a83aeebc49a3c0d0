"""Fan-out: event batches -> the sessions subscribed to their streams, and margin calls.

The `Router` keeps who listens to what (topics and account streams) and hands each
stream message to its subscribers; it knows a connection only as a `Subscriber`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from exchange.core import events as E
from exchange.core.numbers import RATE_ONE
from exchange.protocol.formatter import Formatter
from exchange.protocol.wire import _stream_text, encode_plain, stream_message


class Subscriber(Protocol):
    """What the fan-out needs of a connection (`exchange.protocol.session.Session`)."""

    streams: set[str]
    account: int | None
    token_hash: str | None

    def deliver(self, stream: str, text: str, book_seq: int = 0) -> None: ...

    def end_logon(self) -> None: ...


class Hub(Protocol):
    """What the fan-out needs of the shared API (`exchange.protocol.api.Api`)."""

    formatter: Formatter

    @property
    def exchange(self) -> Any: ...


# Sampled streams: the mark moves on every trade of a last-price market (thousands a
# second in a busy class), so `mark.SYM` carries the latest mark at most once per
# `MARK_INTERVAL` (the newest value wins, as Binance's markPrice@1s); `mark.SYM@1s` once a
# second; `mark.SYM@raw` every change. Margin calls driven by mark moves are checked at
# the same cadence (a position change is still checked at once).
# `book.SYM` likewise carries one delta per `BOOK_INTERVAL` (as Binance's depth@100ms): the
# deltas held meanwhile merged into one — levels carry new totals, so the newest total
# of each level wins — with `firstBookSeq`..`bookSeq` the engine deltas it covers, so the
# merged deltas stay gap-free; `book.SYM@raw` gets every engine delta.
MARK_INTERVAL = 0.25
BOOK_INTERVAL = 0.1
SAMPLED = {"": MARK_INTERVAL, "@1s": 1.0}
RAW = "@raw"
MARK_SUFFIXES = ("", "@1s", RAW)
BOOK_SUFFIXES = ("", RAW)


class _HeldBook:
    """Book deltas of one stream name not yet sent, merged (O(levels changed))."""

    __slots__ = ("symbol", "first", "last", "bids", "asks", "ts", "seq", "count", "payload")

    def __init__(self, ev: E.BookUpdated, payload: bytes) -> None:
        self.symbol = ev.symbol
        self.first = ev.book_seq
        self.bids: dict[int, int] = dict(ev.bids)
        self.asks: dict[int, int] = dict(ev.asks)
        self.count = 1
        self.payload = payload  # the one delta as formatted, while there is only one
        self.last, self.ts, self.seq = ev.book_seq, ev.ts, ev.seq

    def add(self, ev: E.BookUpdated) -> None:
        self.bids.update(ev.bids)
        self.asks.update(ev.asks)
        self.count += 1
        self.last, self.ts, self.seq = ev.book_seq, ev.ts, ev.seq


MARGIN_CALL_RATIO = 80 * RATE_ONE // 100  # a margin call at 80 % of the way to liquidation
MARGIN_CALL_REARM = 70 * RATE_ONE // 100  # and again only after falling back under 70 %


class Router:
    """Event batches → stream messages → subscribed sessions (formatted once per stream).

    Margin calls are the edge's own: when a mark or position change takes a position of
    an account with a subscribed `account` stream to a margin ratio (maintenance margin
    / (margin + unrealized PnL)) of 80 % or more, that stream gets one `marginCall`
    message; it re-arms below 70 %. Cost: one position read per subscribed account
    holding the symbol, per mark change — nothing when nobody listens.

    Mark streams are sampled (see `SAMPLED`): a change is held per stream name and the
    newest is sent when that name's interval has passed since it was first held — one
    timer per stream name, not per connection, so the cost is O(subscribers) per interval
    rather than per change. Without a running event loop (direct calls) nothing is held.
    """

    def __init__(self, api: Hub) -> None:
        self.api = api
        self.formatter = api.formatter
        self.topics: dict[str, set[Subscriber]] = {}
        self.accounts: dict[int, set[Subscriber]] = {}
        self.messages = 0
        self.margin_calls = 0
        self._called: set[tuple[int, str]] = set()
        self._held: dict[str, bytes] = {}  # sampled stream name -> newest data not yet sent
        self._held_books: dict[str, _HeldBook] = {}
        self._margin_due: dict[str, tuple[int, int]] = {}  # symbol -> (ts, seq) of its mark
        self.coalesced = 0  # mark messages replaced by a newer one before they were sent

    def add(self, session: Subscriber, stream: str) -> None:
        self.topics.setdefault(stream, set()).add(session)

    def remove(self, session: Subscriber, stream: str) -> None:
        s = self.topics.get(stream)
        if s is not None:
            s.discard(session)
            if not s:
                del self.topics[stream]

    def add_account(self, session: Subscriber, account: int) -> None:
        self.accounts.setdefault(account, set()).add(session)

    def remove_account(self, session: Subscriber, account: int) -> None:
        s = self.accounts.get(account)
        if s is not None:
            s.discard(session)
            if not s:
                del self.accounts[account]

    def drop(self, session: Subscriber) -> None:
        for stream in list(session.streams):
            self.remove(session, stream)
        if session.account is not None:
            self.remove_account(session, session.account)

    def route(self, batch: list[E.Event]) -> None:
        topics, accounts, fmt = self.topics, self.accounts, self.formatter
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for ev in batch:
            if type(ev) is E.MarkPriceChanged:
                self._route_mark(ev, loop)  # type: ignore[arg-type]
                continue
            if type(ev) is E.BookUpdated:
                if topics:
                    self._route_book(ev, loop)  # type: ignore[arg-type]
                continue
            if topics:
                stream = fmt.stream_of(ev)
                if stream is not None and stream in topics:
                    pub = fmt.payload(ev)
                    if pub is not None:
                        text = stream_message(stream, pub[1])
                        seq = ev.book_seq if type(ev) is E.BookUpdated else 0
                        for s in list(topics.get(stream, ())):
                            s.deliver(stream, text, seq)
                            self.messages += 1
            if accounts and fmt.has_private(ev):
                for acct, data in fmt.private(ev):
                    targets = accounts.get(acct)
                    if targets:
                        text = _stream_text("account", data)
                        for s in list(targets):
                            s.deliver("account", text, 0)
                            self.messages += 1
                t = type(ev)
                if t is E.PositionChanged and ev.account in accounts:  # type: ignore[attr-defined]
                    self._margin_check(ev.symbol, ev.ts, ev.seq, [ev.account])  # type: ignore[attr-defined]

    def _route_mark(self, ev: E.MarkPriceChanged, loop: asyncio.AbstractEventLoop | None) -> None:
        topics = self.topics
        stream = "mark." + ev.symbol
        pub = None
        for suffix in MARK_SUFFIXES:
            name = stream + suffix
            if name not in topics:
                continue
            if pub is None:
                pub = self.formatter.payload(ev)
                if pub is None:
                    return
            if suffix == RAW or loop is None:
                self._send(name, pub[1])
            else:
                if name not in self._held:
                    loop.call_later(SAMPLED[suffix], self._flush, name)
                else:
                    self.coalesced += 1
                self._held[name] = pub[1]
        if self.accounts:
            if loop is None:
                self._margin_check(ev.symbol, ev.ts, ev.seq, list(self.accounts))
            else:
                if ev.symbol not in self._margin_due:
                    loop.call_later(MARK_INTERVAL, self._flush_margin, ev.symbol)
                self._margin_due[ev.symbol] = (ev.ts, ev.seq)

    def _route_book(self, ev: E.BookUpdated, loop: asyncio.AbstractEventLoop | None) -> None:
        topics = self.topics
        stream = "book." + ev.symbol
        pub = None
        for suffix in BOOK_SUFFIXES:
            name = stream + suffix
            if name not in topics:
                continue
            if pub is None:
                pub = self.formatter.payload(ev)
                if pub is None:
                    return
            if suffix == RAW or loop is None:
                self._send(name, pub[1], ev.book_seq)
                continue
            held = self._held_books.get(name)
            if held is None:
                self._held_books[name] = _HeldBook(ev, pub[1])
                loop.call_later(BOOK_INTERVAL, self._flush_book, name)
            else:
                held.add(ev)
                self.coalesced += 1

    def _flush_book(self, name: str) -> None:
        held = self._held_books.pop(name, None)
        if held is None:
            return
        if held.count == 1:
            self._send(name, held.payload, held.last)
            return
        data = self.formatter.merged_book(
            held.symbol, held.first, held.last, held.bids, held.asks, held.ts, held.seq
        )
        self._send(name, encode_plain(data), held.last)

    def _send(self, name: str, data: bytes, book_seq: int = 0) -> None:
        text = stream_message(name, data)
        for s in list(self.topics.get(name, ())):
            s.deliver(name, text, book_seq)
            self.messages += 1

    def _flush(self, name: str) -> None:
        data = self._held.pop(name, None)
        if data is not None:
            self._send(name, data)

    def _flush_margin(self, symbol: str) -> None:
        due = self._margin_due.pop(symbol, None)
        if due is not None and self.accounts:
            self._margin_check(symbol, due[0], due[1], list(self.accounts))

    def _margin_check(self, symbol: str, ts: int, seq: int, accounts: list[int]) -> None:
        ex = self.api.exchange
        for acct in accounts:
            view = ex.account_view(acct)
            pos = None
            if view is not None:
                pos = next((p for p in view.positions if p.symbol == symbol), None)
            key = (acct, symbol)
            if pos is None or pos.margin_ratio < MARGIN_CALL_REARM:
                self._called.discard(key)
                continue
            if pos.margin_ratio < MARGIN_CALL_RATIO or key in self._called:
                continue
            self._called.add(key)
            self.margin_calls += 1
            data = self.formatter.margin_call(pos, ts, seq)
            text = _stream_text("account", data)
            for s in list(self.accounts.get(acct, ())):
                s.deliver("account", text, 0)
                self.messages += 1
