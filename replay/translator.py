"""The replay player's translation: one recorded event in, the core commands that replay
it out (`Player.translate`). What is replayed, per event type, is described in
`replay.player`'s docstring and docs/replay.md ("The player")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from exchange.core import commands as C
from exchange.core.engine import Exchange
from exchange.core.numbers import RATE_ONE
from replay.builders import set_index_price
from replay.convert import NEAREST
from replay.events import (
    BookUpdate,
    Event,
    FundingRate,
    Kline,
    Liquidation,
    Quote,
    Ticker,
    Trade,
)
from replay.mirror import BOOK_RANK, SymbolState
from replay.playerconfig import PlayerConfig, PlayerStats, UnknownSymbol

if TYPE_CHECKING:
    from replay.population import Population

_KLINE_RANK = {"index": 1, "mark": 2, "trade": 3}
_KLINE_RANK_MARK = {"mark": 1, "index": 2, "trade": 3}


class Player:
    """Translate canonical events into core commands; see the module docstring.

    `ex` is read (market views, order views), never mutated: the driver applies the
    commands. In the server the reads happen between two runtime turns, after the player's
    previous commands were applied (`play_async` awaits them).
    """

    def __init__(
        self,
        exchange: Exchange,
        config: PlayerConfig | None = None,
        population: Population | None = None,
    ) -> None:
        self.ex = exchange
        self.cfg = config or PlayerConfig()
        self.population = population
        self._stats = PlayerStats()
        self._n = 0  # events (hot counters, copied into `stats` when read)
        self._ncmd = 0
        self._nskip = 0
        self._taker = self.cfg.trades
        self._bba = exchange.best_bid_ask
        self._syms: dict[str, SymbolState | None] = {}
        self._by_local = self.cfg.clock == "local"
        self._ref_mark = self.cfg.reference == "mark"
        self._kline_rank = _KLINE_RANK_MARK if self._ref_mark else _KLINE_RANK
        syn = self.cfg.synthetic
        self._walk_quotes = syn is None or not syn.per_bar
        self._funding_clock = self.cfg.funding_clock
        self._start = self.cfg.start_ns if self.cfg.start_ns is not None else -(1 << 63)
        self._end = self.cfg.end_ns if self.cfg.end_ns is not None else 1 << 63
        self._next_funding = 1 << 63
        self._ids = 0
        # orders the mirror placed or amended in the current translation (not applied yet):
        # client id → (remaining, filled) as they will be
        self.fresh: dict[str, tuple[int, int]] = {}
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.step_ts = 0  # the replay time the last event belongs to, for stepping
        self.done = False  # an event at or after the window's end was seen: stop reading
        self._handlers: dict[type, Callable[[Any, SymbolState, int], Sequence[C.Command]]] = {
            Ticker: self._ticker,
            Kline: self._kline,
            Trade: self._trade,
            BookUpdate: self._book,
            Quote: self._quote,
            FundingRate: self._funding,
            Liquidation: self._ignore,
        }

    # ------------------------------------------------------------------ setup

    def setup(self) -> list[C.Command]:
        """Commands to run once before the first event: the replay account, funded, at
        `leverage` on every symbol; then the population's accounts."""
        cfg = self.cfg
        out: list[C.Command] = [
            C.CreateAccount(account=cfg.account),
            C.Deposit(account=cfg.account, asset="USDT", amount=cfg.deposit),
        ]
        for sym in sorted(self.ex.instruments):
            out.append(C.SetLeverage(account=cfg.account, symbol=sym, leverage=cfg.leverage))
        if self.population is not None:
            out.extend(self.population.setup())
        return out

    def symbol(self, recorded: str) -> SymbolState | None:
        """The instrument state for a recorded symbol (None: not replayed)."""
        s = self._syms.get(recorded, _MISSING)
        if s is not _MISSING:
            return s  # type: ignore[return-value]
        name = self.cfg.symbols.get(recorded)
        if name is None:
            if recorded in self.ex.instruments:
                name = recorded
            elif recorded.replace("-", "").replace("_", "").upper() in self.ex.instruments:
                name = recorded.replace("-", "").replace("_", "").upper()
            else:
                name = self.cfg.default_symbol
        found = None
        if name is not None and name in self.ex.instruments:
            found = next(
                (v for v in self._syms.values() if v is not None and v.symbol == name), None
            )
            if found is None:
                found = SymbolState(self, name)
        self._syms[recorded] = found
        return found

    def client_id(self, kind: str, tick: int) -> str:
        self._ids += 1
        return f"r{kind}{tick}.{_b36(self._ids)}"

    # ------------------------------------------------------------------ translation

    def replay_account(self) -> int:
        """The account the replayed market trades from (the population's counterparty)."""
        return self.cfg.account

    def indexed_symbol(self) -> str | None:
        """The first replayed symbol that has had an index price, if any."""
        return next((s.symbol for s in self._syms.values() if s is not None and s.index), None)

    def emit(self, cmd: C.Command, out: list[C.Command]) -> None:
        """Append `cmd`, preceded by an AdvanceClock for each funding boundary it passes."""
        if cmd.ts >= self._next_funding and self.cfg.funding_clock:
            self._boundaries(cmd.ts, out)
        out.append(cmd)

    def _boundaries(self, ts: int, out: list[C.Command]) -> None:
        while self._next_funding <= ts:
            b = self._next_funding
            out.append(C.AdvanceClock(ts=b))
            self._next_funding = self._following_boundary(b)

    def _following_boundary(self, ts: int) -> int:
        """The first funding time strictly after `ts` over every replayed symbol."""
        best = 1 << 63
        for s in self._syms.values():
            if s is not None:
                iv = s.inst.funding_interval_ns
                best = min(best, (ts // iv + 1) * iv)
        return best

    def translate(self, ev: Event) -> Sequence[C.Command]:
        """The commands that replay `ev` (possibly none)."""
        self._n += 1
        ts = ev.local_ts if self._by_local else ev.exchange_ts
        kline = type(ev) is Kline
        # a window is [start, end) of what the data is about: for a bar, its open time
        wts = ts - (ev.exchange_ts - ev.open_ts) if kline else ts  # type: ignore[attr-defined]
        if wts < self._start or wts >= self._end:
            self._stats.out_of_window += 1
            if wts >= self._end:
                self.done = True  # merged data is in time order: nothing after this is in
            return _NONE
        s = self._syms.get(ev.symbol, _MISSING)
        if s is _MISSING:
            s = self.symbol(ev.symbol)
            if s is not None:
                self._next_funding = min(self._next_funding, self._following_boundary(ts - 1))
            elif self.cfg.unknown_symbols == "error":
                raise UnknownSymbol(ev.symbol, ev.exchange, self.ex.instruments)
        if s is None:
            self._stats.unknown_symbol += 1
            return _NONE
        if self.first_ts is None:
            self.first_ts = wts
        self.last_ts = ts
        # a bar's last command is at its last nanosecond: its step is the one it closes
        self.step_ts = ts - 1 if kline else ts
        if self.fresh:
            self.fresh.clear()
        out = self._handlers[type(ev)](ev, s, ts)
        if out:
            self._ncmd += len(out)
        return out

    @property
    def stats(self) -> PlayerStats:
        st = self._stats
        st.events = self._n
        st.commands = self._ncmd
        st.taker_skipped = self._nskip
        return st

    def _index(
        self,
        s: SymbolState,
        rank: int,
        ticks: int,
        ts: int,
        out: list[C.Command],
        quote: bool = True,
    ) -> None:
        if rank > s.rank:
            return
        s.rank = rank
        if ticks == s.index or ticks <= 0:
            # the walk ended where it was: the close still re-centres the book (per_bar)
            syn = quote and self.cfg.synthetic is not None
            if syn and s.quoted != s.index and s.book_src is None and s.index > 0:
                s.quoted = s.index
                s.mirror.synthetic(s.index, ts, out)
            return
        s.index = ticks
        self._stats.index_updates += 1
        self.emit(set_index_price(ts, s.symbol, ticks), out)
        if quote and self.cfg.synthetic is not None and s.book_src is None:
            s.quoted = ticks
            s.mirror.synthetic(ticks, ts, out)

    def _ticker(self, ev: Ticker, s: SymbolState, ts: int) -> Sequence[C.Command]:
        price = ev.mark_price if self._ref_mark else ev.index_price
        if not self.cfg.index or price is None:
            self._stats.ignored += 1
            return _NONE
        out: list[C.Command] = []
        self._index(s, 0, s.units.price(price, NEAREST), ts, out)
        return out

    def _kline(self, ev: Kline, s: SymbolState, ts: int) -> Sequence[C.Command]:
        rank = self._kline_rank.get(ev.kind)
        if rank is None or not self.cfg.index or rank > s.rank:
            self._stats.ignored += 1
            return _NONE
        u = s.units
        near = s.near
        o = near.get(ev.open)
        if o is None:
            o = u.price(ev.open, NEAREST)
        h = near.get(ev.high)
        if h is None:
            h = u.price(ev.high, NEAREST)
        lo = near.get(ev.low)
        if lo is None:
            lo = u.price(ev.low, NEAREST)
        c = near.get(ev.close)
        if c is None:
            c = u.price(ev.close, NEAREST)
        first, second = (lo, h) if c >= o else (h, lo)
        iv = ev.exchange_ts - ev.open_ts
        t0 = ts - iv
        out: list[C.Command] = []
        if self._walk_quotes:  # quote at every point of the walk
            index = self._index
            index(s, rank, o, t0, out)
            index(s, rank, first, t0 + iv // 3, out)
            index(s, rank, second, t0 + 2 * iv // 3, out)
            index(s, rank, c, ts - 1, out)
            return out
        # the four `_index` calls, when only the close quotes, in one pass
        s.rank = rank
        sym = s.symbol
        last = s.index
        moves = 0
        closed = False  # the close moved the index
        walk = ((o, t0), (first, t0 + iv // 3), (second, t0 + 2 * iv // 3), (c, ts - 1))
        for k, (tick, t) in enumerate(walk):
            if tick != last and tick > 0:
                last = tick
                moves += 1
                if t >= self._next_funding and self._funding_clock:
                    self._boundaries(t, out)
                out.append(set_index_price(t, sym, tick))
                closed = k == 3
        # a close that did not move the index re-centres only if not centred there yet
        recentre = closed or (s.quoted != last and last > 0)
        if moves:
            s.index = last
            self._stats.index_updates += moves
        if recentre and s.book_src is None:
            s.quoted = last
            s.mirror.synthetic(last, t, out)
        return out

    def _trade(self, ev: Trade, s: SymbolState, ts: int) -> Sequence[C.Command]:
        out: list[C.Command] = []
        if s.rank >= 4 and self.cfg.index:
            self._index(s, 4, s.units.price(ev.price, NEAREST), ts, out)
        if not self._taker:
            return out
        side = ev.side
        if side == "buy":
            best = self._bba(s.symbol)[1]
            if best is None:
                self._nskip += 1
                return out
            price = s.units.down(ev.price)
            if best > price:
                self._nskip += 1
                return out
        elif side == "sell":
            best = self._bba(s.symbol)[0]
            if best is None:
                self._nskip += 1
                return out
            price = s.units.up(ev.price)
            if best < price:
                self._nskip += 1
                return out
        else:
            self._nskip += 1
            return out
        inst = s.inst
        qty = min(s.units.lots(ev.amount), inst.max_qty)
        if qty < inst.min_qty or price * qty * s.lv < inst.min_notional:
            self._nskip += 1
            return out
        self._stats.taker_orders += 1
        self.emit(
            C.PlaceOrder(
                ts=ts,
                account=self.cfg.account,
                symbol=s.symbol,
                side="BUY" if side == "buy" else "SELL",
                qty=qty,
                price=price,
                time_in_force="IOC",
            ),
            out,
        )
        return out

    def _book_source(self, s: SymbolState, src: type) -> bool:
        """Whether `src` (BookUpdate or Quote) drives the symbol's book: the first kind
        seen does; the other is then counted as ignored, as is any with `book` off."""
        if self.cfg.book and (s.book_src is None or s.book_src is src):
            s.book_src = src
            return True
        self._stats.ignored += 1
        return False

    def _book(self, ev: BookUpdate, s: SymbolState, ts: int) -> Sequence[C.Command]:
        if not self._book_source(s, BookUpdate):
            return _NONE
        out: list[C.Command] = []
        idx = self.cfg.index and s.rank >= BOOK_RANK
        s.mirror.apply(ev.snapshot, ev.bids, ev.asks, ts, out, index=idx)
        return out

    def _quote(self, ev: Quote, s: SymbolState, ts: int) -> Sequence[C.Command]:
        if not self._book_source(s, Quote):
            return _NONE
        bids = [] if ev.bid_price is None else [(ev.bid_price, ev.bid_amount or Decimal(0))]
        asks = [] if ev.ask_price is None else [(ev.ask_price, ev.ask_amount or Decimal(0))]
        out: list[C.Command] = []
        s.mirror.apply(True, bids, asks, ts, out, index=self.cfg.index and s.rank >= BOOK_RANK)
        return out

    def _funding(self, ev: FundingRate, s: SymbolState, ts: int) -> Sequence[C.Command]:
        """A recorded funding rate is imposed for the funding time it was settled at (the
        boundary nearest its timestamp), if the replay has not passed that time yet."""
        self._stats.recorded_funding.append((ts, s.symbol, str(ev.rate)))
        iv = s.inst.funding_interval_ns
        boundary = (ts + iv // 2) // iv * iv
        if boundary < self._next_funding:
            self._stats.late_funding += 1  # that funding time was already settled
            return _NONE
        rate = int((ev.rate * RATE_ONE).to_integral_value(ROUND_HALF_EVEN))
        # stamped just before its funding time: emitting it must not settle that time first
        return [C.SetFundingRate(ts=min(ts, boundary - 1), symbol=s.symbol, rate=rate)]

    def _ignore(self, ev: Event, s: SymbolState, ts: int) -> Sequence[C.Command]:
        self._stats.ignored += 1
        return _NONE

    # ------------------------------------------------------------------ population

    def due(self, ts: int) -> list[C.Command]:
        """Population commands due at replay time `ts` (after the event's commands ran)."""
        pop = self.population
        if pop is None or ts < pop.next_ts:
            return []
        return pop.poll(ts, self)


_MISSING: Any = object()
_NONE: tuple[C.Command, ...] = ()


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out
