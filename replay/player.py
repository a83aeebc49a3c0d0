"""The replay player: canonical events in, core commands out.

`Player.translate(event)` turns one recorded event into the commands that replay it on an
`Exchange` (reading the exchange's state where it must, never changing it). Two drivers run
it:

* `play(exchange, events, ...)` — synchronous, straight into `Exchange.handle`: as fast as
  the core goes (tests, the benchmark, offline reports);
* `play_async(runtime, events, ...)` — through the runtime's command queue, paced in real
  time × a speed factor, as fast as possible, or in lockstep with strategies
  (`replay.lockstep.Lockstep`): what `margincall replay` and `margincall backtest` use.

What is replayed, per event type (docs/replay.md, "The player", says why):

* **index** (`SetIndexPrice`) from, in order of preference per symbol: `Ticker.index_price`
  (rank 0), index-price klines (1), mark-price klines (2), trade klines / OHLCV (3), recorded
  trades (4); with `reference="mark"`, `Ticker.mark_price` and mark-price klines take the
  place of the index ones (so that, with `mark_method="index"`, the core's mark is the
  recorded mark). The best-ranked source seen so far for a symbol drives its index; worse ones are
  then ignored. A kline is walked open → low → high → close when it closed at or above its
  open, else open → high → low → close, at its start, ⅓ and ⅔ into the bar and its last
  nanosecond. An unchanged index is not re-sent. The mark follows from the instrument's
  `mark_method`.
* **book** from `BookUpdate` (or, for a symbol that never has one, `Quote` as a one-level
  book): mirrored as resting orders of the replay account, one per price level (see
  `_Mirror`).
* **trades**, when `PlayerConfig.trades` is on: each buy/sell trade becomes an IOC limit order
  of the replay account for the recorded amount at the recorded price (taker flow). It is not
  sent when the opposite side of the book has nothing at that price or better.
* **funding** (`FundingRate`): imposed. A recorded rate becomes a `SetFundingRate` for the
  funding time nearest its timestamp, stamped just before it, so the core settles that
  time with the recorded rate (merge puts funding records first on a timestamp tie). A
  record that arrives after its funding time was settled is counted in
  `PlayerStats.late_funding` and not applied. Funding *times* are replayed exactly (an
  `AdvanceClock` at every funding boundary the replay crosses); without a funding file the
  core's own rate (premium + clamped interest) is paid.
* `Liquidation`, premium-index klines: not replayed (counted).

Engine time is the event's timestamp (`exchange_ts` or `local_ts`, `PlayerConfig.clock`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Literal

from sortedcontainers import SortedDict

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange
from exchange.core.numbers import RATE_ONE, ceil_div
from replay.convert import DOWN, NEAREST, UP, Units
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

if TYPE_CHECKING:
    from exchange.runtime import Runtime
    from replay.lockstep import Lockstep
    from replay.population import Population

__all__ = [
    "REPLAY_ACCOUNT",
    "Pacing",
    "PlayerConfig",
    "PlayerStats",
    "Player",
    "SyntheticBook",
    "Stepper",
    "UnknownSymbol",
    "play",
    "play_async",
]

REPLAY_ACCOUNT = 2_000_000_000
"""The replay-liquidity account: mirrored book levels and recorded taker flow."""

USDT = 10**8


class UnknownSymbol(ValueError):
    """A recorded symbol maps to no instrument (`PlayerConfig.unknown_symbols="error"`)."""

    def __init__(self, recorded: str, exchange: str, instruments: Iterable[str]) -> None:
        self.recorded = recorded
        known = ", ".join(sorted(instruments))
        super().__init__(
            f"symbol {recorded!r} ({exchange}) is not an instrument ({known}): map it with "
            f"--symbol (symbol= / PlayerConfig.symbols), e.g. --symbol BTCUSDT, or add it "
            f"with --instruments FILE.toml"
        )


BID, ASK = 0, 1
_KLINE_RANK = {"index": 1, "mark": 2, "trade": 3}
_KLINE_RANK_MARK = {"mark": 1, "index": 2, "trade": 3}
_BOOK_RANK = 5  # the recorded book's mid: the index of last resort (book-only data)
_NO_RANK = 99
_PPM = 1_000_000


@dataclass(frozen=True)
class SyntheticBook:
    """Liquidity for data without a book (OHLCV, tickers): at every index update the replay
    account quotes `levels` levels a side around the index, the best ones `spread_ppm`
    apart (millionths of the index), then every `step_ppm`, `qty` (base asset) each, as one
    `ReplaceBook` command (consumed by fills until the next re-centring). Used only for a
    symbol that has no recorded book or quote. With `per_bar` (the default), bar data
    re-centres once a bar, at its close, not at each point of the walk through it: the
    book is replaced once per step, which is what a bar is (ticker and trade data re-centre
    at every index change)."""

    levels: int = 3
    spread_ppm: int = 200  # 2 bp between the best bid and the best ask
    step_ppm: int = 500
    qty: Decimal = Decimal("5")
    per_bar: bool = True


@dataclass(frozen=True)
class PlayerConfig:
    """What the player replays and how. See the module docstring."""

    symbols: Mapping[str, str] = field(default_factory=dict)  # recorded symbol → instrument
    default_symbol: str | None = None  # instrument for recorded symbols not otherwise known
    clock: Literal["exchange", "local"] = "exchange"  # which timestamp is engine time
    index: bool = True  # replay reference prices as SetIndexPrice
    reference: Literal["index", "mark"] = "index"  # which recorded price feeds the index
    book: bool = True  # mirror recorded L2 books / quotes
    trades: bool = False  # replay recorded trades as taker flow
    start_ns: int | None = None  # skip events before this time
    end_ns: int | None = None  # skip events at or after this time
    account: int = REPLAY_ACCOUNT
    deposit: int = 10**12 * USDT  # the replay account's wallet (money quanta)
    leverage: int = 1  # the replay account's leverage on every symbol
    funding_clock: bool = True  # AdvanceClock at each funding boundary crossed
    synthetic: SyntheticBook | None = None  # quotes around the index where no book is recorded
    # a recorded symbol that maps to no instrument: "error" raises UnknownSymbol (what the
    # CLI and `replay.backtest` use: a replay of nothing is never what was meant), "skip"
    # counts it in `stats.unknown_symbol` (multi-venue files where only some symbols matter)
    unknown_symbols: Literal["skip", "error"] = "skip"


@dataclass
class PlayerStats:
    events: int = 0
    commands: int = 0
    out_of_window: int = 0
    unknown_symbol: int = 0
    ignored: int = 0  # liquidations, premium klines, quotes of a symbol with a book ...
    index_updates: int = 0
    levels_placed: int = 0
    levels_amended: int = 0
    levels_canceled: int = 0
    levels_out_of_band: int = 0
    levels_too_small: int = 0
    levels_uncrossed: int = 0
    taker_orders: int = 0
    taker_skipped: int = 0
    recorded_funding: list[tuple[int, str, str]] = field(default_factory=list)
    late_funding: int = 0  # recorded rates that arrived after their funding time was settled

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["recorded_funding"] = len(self.recorded_funding)
        return d


class _Sym:
    __slots__ = ("symbol", "inst", "units", "rank", "index", "book_src", "mirror", "lv", "quoted")

    def __init__(self, player: Player, symbol: str) -> None:
        self.symbol = symbol
        self.inst = player.ex.instruments[symbol]
        self.units = Units(self.inst)
        self.rank = _NO_RANK  # best index source seen so far
        self.index = 0  # last index sent (ticks)
        self.quoted = 0  # the index the synthetic book was last centred on
        self.book_src: type | None = None  # BookUpdate or Quote: the first seen wins
        self.mirror = _Mirror(player, self)
        self.lv = self.inst.lot_value


class _Mirror:
    """A recorded order book mirrored as resting orders of the replay account.

    The rule: each recorded price level (rounded outward to the tick: bids down, asks up;
    recorded levels landing on one tick add up) is one GTC limit order of the replay
    account. When the recording sets a level to an amount, the order is set to that amount:
    a decrease amends it down (keeping its queue place), an increase amends it up (losing
    it), 0 cancels it. Between two recorded updates of a level, fills by users, strategies,
    liquidations and replayed taker flow consume the order; it is *not* refilled until the
    recording next updates that level (then it is set to the recorded amount, whatever was
    consumed). Levels outside the price band around the mark, or under the instrument's
    minimum quantity or notional, are not mirrored until they qualify at a later update (or a
    band sweep, when the mark has moved a quarter of the band since the last one). A new
    mirrored level never crosses the mirror's own opposite side: mirrored orders it would
    cross are cancelled first (stale levels the recording has not deleted yet). It may cross
    a user's resting order: the recorded market moved through that price, and the user is
    filled there.
    """

    __slots__ = ("p", "s", "rec", "tgt", "orders", "sweep_mark", "synth")

    def __init__(self, player: Player, s: _Sym) -> None:
        self.p = player
        self.s = s
        self.rec: tuple[dict[Decimal, int], dict[Decimal, int]] = ({}, {})
        self.tgt: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.orders: tuple[Any, Any] = (SortedDict(), SortedDict())  # tick → client id
        self.sweep_mark = 0
        self.synth = False  # synthetic quotes rest in the book (withdrawn for a real one)

    def apply(
        self,
        snapshot: bool,
        bids: Iterable[tuple[Decimal, Decimal]],
        asks: Iterable[tuple[Decimal, Decimal]],
        ts: int,
        out: list[C.Command],
        index: bool = False,
    ) -> None:
        """Apply a recorded book message. With `index`, the recorded mid also drives the
        index (book-only data has no better reference price): O(levels) per message."""
        units = self.s.units
        changed: tuple[set[int], set[int]] = (set(), set())
        if self.synth:  # a recorded book takes over from the synthetic quotes
            p = self.p
            p.emit(C.ReplaceBook(ts=ts, account=p.cfg.account, symbol=self.s.symbol), out)
            self.synth = False
        if snapshot:
            for side in (BID, ASK):
                changed[side].update(self.tgt[side])
                changed[side].update(self.orders[side])
                self.rec[side].clear()
                self.tgt[side].clear()
        for side, levels, mode in ((BID, bids, DOWN), (ASK, asks, UP)):
            rec, tgt, ch = self.rec[side], self.tgt[side], changed[side]
            for price, amount in levels:
                t = units.price(price, mode)
                old = rec.pop(price, 0)
                if old:
                    left = tgt[t] - old
                    if left:
                        tgt[t] = left
                    else:
                        del tgt[t]
                lots = units.lots(amount)
                if lots > 0:
                    rec[price] = lots
                    tgt[t] = tgt.get(t, 0) + lots
                ch.add(t)
        mark = None
        if index:
            bids_, asks_ = self.tgt
            if bids_ and asks_:
                mid = (max(bids_) + min(asks_)) // 2
                p = self.p
                p._index(self.s, _BOOK_RANK, mid, ts, out)
                if self.s.index == mid:
                    mark = mid
        self.reconcile(changed, ts, out, mark=mark)

    def synthetic(self, index: int, ts: int, out: list[C.Command]) -> None:
        """Re-centre the synthetic book (`PlayerConfig.synthetic`) on a new index: one
        `ReplaceBook` command (the core withdraws the previous quotes and rests these)."""
        syn = self.p.cfg.synthetic
        assert syn is not None
        inst = self.s.inst
        lots = min(self.s.units.lots(syn.qty), inst.max_qty)
        lv = self.s.lv
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        prev_bid, prev_ask = index, index
        for k in range(syn.levels):
            d = syn.spread_ppm // 2 + k * syn.step_ppm
            bid = min(index * (_PPM - d) // _PPM, prev_bid - (k > 0))
            ask = max(ceil_div(index * (_PPM + d), _PPM), prev_ask + (k > 0))
            if ask <= bid:
                ask = bid + 1
            prev_bid, prev_ask = bid, ask
            for side, t in ((bids, bid), (asks, ask)):
                if inst.min_price <= t <= inst.max_price and t * lots * lv >= inst.min_notional:
                    side.append((t, lots))
        if lots < inst.min_qty:
            bids, asks = [], []
        self.synth = True
        p = self.p
        p._stats.levels_placed += len(bids) + len(asks)
        p.emit(
            C.ReplaceBook(
                ts=ts, account=p.cfg.account, symbol=self.s.symbol, bids=tuple(bids),
                asks=tuple(asks),
            ),
            out,
        )  # fmt: skip

    def _band(self, mark: int | None = None) -> tuple[int, int]:
        ex = self.p.ex
        if mark is None:
            mark = ex.market_view(self.s.symbol).mark
        if mark <= 0:
            return 0, 1 << 62
        inst = self.s.inst
        return (
            ceil_div(mark * (RATE_ONE - inst.band_down), RATE_ONE),
            mark * (RATE_ONE + inst.band_up) // RATE_ONE,
        )

    def _desired(self, side: int, t: int, lo: int, hi: int) -> int:
        a = self.tgt[side].get(t, 0)
        if a == 0:
            return 0
        st = self.p._stats
        if t < lo or t > hi:
            st.levels_out_of_band += 1
            return 0
        inst = self.s.inst
        a = min(a, inst.max_qty)
        if a < inst.min_qty or t < inst.min_price or t * a * self.s.lv < inst.min_notional:
            st.levels_too_small += 1
            return 0
        return a

    def _remaining(self, side: int, t: int) -> tuple[str | None, int, int]:
        """(client id, remaining, filled) of our order at tick t; drops closed orders."""
        cid = self.orders[side].get(t)
        if cid is None:
            return None, 0, 0
        p = self.p
        fresh = p.fresh.get(cid)
        if fresh is not None:  # placed or amended by this translation: not applied yet
            return cid, fresh[0], fresh[1]
        ov = p.ex.order_view(p.cfg.account, self.s.symbol, client_id=cid)
        if ov is None or ov.remaining == 0 or ov.status not in ("NEW", "PARTIALLY_FILLED"):
            del self.orders[side][t]
            return None, 0, 0
        return cid, ov.remaining, ov.filled

    def reconcile(
        self,
        changed: tuple[set[int], set[int]],
        ts: int,
        out: list[C.Command],
        mark: int | None = None,
    ) -> None:
        lo, hi = self._band(mark)
        mark = (lo + hi) // 2
        width = hi - lo
        if self.sweep_mark and abs(mark - self.sweep_mark) * 4 >= width:
            for side in (BID, ASK):
                changed[side].update(self.tgt[side])
        if not self.sweep_mark or abs(mark - self.sweep_mark) * 4 >= width:
            self.sweep_mark = mark
        p = self.p
        st = p._stats
        acct = p.cfg.account
        sym = self.s.symbol
        max_qty = self.s.inst.max_qty
        grow: list[tuple[int, int, int, str | None, int]] = []
        for side in (BID, ASK):
            for t in sorted(changed[side]):
                want = self._desired(side, t, lo, hi)
                cid, rem, filled = self._remaining(side, t)
                if want == rem:
                    continue
                if want == 0:
                    assert cid is not None
                    p.emit(C.CancelOrder(ts=ts, account=acct, symbol=sym, client_id=cid), out)
                    del self.orders[side][t]
                    p.fresh.pop(cid, None)
                    st.levels_canceled += 1
                elif rem and want < rem:
                    assert cid is not None
                    p.emit(
                        C.AmendOrder(
                            ts=ts, account=acct, symbol=sym, client_id=cid, qty=filled + want
                        ),
                        out,
                    )
                    p.fresh[cid] = (want, filled)
                    st.levels_amended += 1
                else:
                    grow.append((side, t, want, cid, filled))
        for side, t, want, cid, filled in grow:
            self._uncross(side, t, ts, out)
            if cid is not None and filled + want <= max_qty:
                p.emit(
                    C.AmendOrder(ts=ts, account=acct, symbol=sym, client_id=cid, qty=filled + want),
                    out,
                )
                p.fresh[cid] = (want, filled)
                st.levels_amended += 1
                continue
            if cid is not None:
                p.emit(C.CancelOrder(ts=ts, account=acct, symbol=sym, client_id=cid), out)
                p.fresh.pop(cid, None)
                st.levels_canceled += 1
            cid = p.client_id("b" if side == BID else "a", t)
            p.emit(
                C.PlaceOrder(
                    ts=ts,
                    account=acct,
                    symbol=sym,
                    side="BUY" if side == BID else "SELL",
                    qty=want,
                    price=t,
                    client_id=cid,
                ),
                out,
            )
            self.orders[side][t] = cid
            p.fresh[cid] = (want, 0)
            st.levels_placed += 1

    def _uncross(self, side: int, t: int, ts: int, out: list[C.Command]) -> None:
        other = self.orders[1 - side]
        if not other:
            return
        crossing = list(other.irange(maximum=t) if side == BID else other.irange(minimum=t))
        if not crossing:
            return
        p = self.p
        for u in crossing:
            cid, rem, _ = self._remaining(1 - side, u)
            if cid is None:
                continue
            p.emit(
                C.CancelOrder(ts=ts, account=p.cfg.account, symbol=self.s.symbol, client_id=cid),
                out,
            )
            del other[u]
            p.fresh.pop(cid, None)
            p._stats.levels_uncrossed += 1


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
        self._syms: dict[str, _Sym | None] = {}
        self._by_local = self.cfg.clock == "local"
        self._ref_mark = self.cfg.reference == "mark"
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
        self._handlers: dict[type, Callable[[Any, _Sym, int], Sequence[C.Command]]] = {
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

    def symbol(self, recorded: str) -> _Sym | None:
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
                found = _Sym(self, name)
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
        self, s: _Sym, rank: int, ticks: int, ts: int, out: list[C.Command], quote: bool = True
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
        self.emit(C.SetIndexPrice(ts=ts, symbol=s.symbol, price=ticks), out)
        if quote and self.cfg.synthetic is not None and s.book_src is None:
            s.quoted = ticks
            s.mirror.synthetic(ticks, ts, out)

    def _ticker(self, ev: Ticker, s: _Sym, ts: int) -> Sequence[C.Command]:
        price = ev.mark_price if self._ref_mark else ev.index_price
        if not self.cfg.index or price is None:
            self._stats.ignored += 1
            return _NONE
        out: list[C.Command] = []
        self._index(s, 0, s.units.price(price, NEAREST), ts, out)
        return out

    def _kline(self, ev: Kline, s: _Sym, ts: int) -> Sequence[C.Command]:
        rank = (_KLINE_RANK_MARK if self._ref_mark else _KLINE_RANK).get(ev.kind)
        if rank is None or not self.cfg.index or rank > s.rank:
            self._stats.ignored += 1
            return _NONE
        u = s.units
        o, h, lo, c = (u.price(x, NEAREST) for x in (ev.open, ev.high, ev.low, ev.close))
        first, second = (lo, h) if c >= o else (h, lo)
        iv = ev.exchange_ts - ev.open_ts
        t0 = ts - iv
        out: list[C.Command] = []
        syn = self.cfg.synthetic
        walk = syn is None or not syn.per_bar  # quote at every point, or only at the close
        for t, price in ((t0, o), (t0 + iv // 3, first), (t0 + 2 * iv // 3, second)):
            self._index(s, rank, price, t, out, walk)
        self._index(s, rank, c, ts - 1, out)
        return out

    def _trade(self, ev: Trade, s: _Sym, ts: int) -> Sequence[C.Command]:
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

    def _book(self, ev: BookUpdate, s: _Sym, ts: int) -> Sequence[C.Command]:
        if not self.cfg.book:
            self._stats.ignored += 1
            return _NONE
        if s.book_src is None:
            s.book_src = BookUpdate
        elif s.book_src is not BookUpdate:
            self._stats.ignored += 1
            return _NONE
        out: list[C.Command] = []
        idx = self.cfg.index and s.rank >= _BOOK_RANK
        s.mirror.apply(ev.snapshot, ev.bids, ev.asks, ts, out, index=idx)
        return out

    def _quote(self, ev: Quote, s: _Sym, ts: int) -> Sequence[C.Command]:
        if not self.cfg.book:
            self._stats.ignored += 1
            return _NONE
        if s.book_src is None:
            s.book_src = Quote
        elif s.book_src is not Quote:
            self._stats.ignored += 1
            return _NONE
        bids = [] if ev.bid_price is None else [(ev.bid_price, ev.bid_amount or Decimal(0))]
        asks = [] if ev.ask_price is None else [(ev.ask_price, ev.ask_amount or Decimal(0))]
        out: list[C.Command] = []
        s.mirror.apply(True, bids, asks, ts, out, index=self.cfg.index and s.rank >= _BOOK_RANK)
        return out

    def _funding(self, ev: FundingRate, s: _Sym, ts: int) -> Sequence[C.Command]:
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

    def _ignore(self, ev: Event, s: _Sym, ts: int) -> Sequence[C.Command]:
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


# ---------------------------------------------------------------------- stepping


class Stepper:
    """Groups replay time into steps of `step_ns` (grid-aligned) and samples state.

    A step closes when replay time reaches the next multiple of `step_ns` (`step_ns=1`:
    at every new timestamp). `on_step(step_no, ts)` runs when a step closes, after its
    commands were applied; the recorder samples there too.
    """

    def __init__(self, step_ns: int) -> None:
        if step_ns < 1:
            raise ValueError("step_ns must be at least 1 ns")
        self.step_ns = step_ns
        self.step = 0  # steps closed so far
        self.bucket: int | None = None
        self.ts = 0  # latest replay time seen

    def end(self) -> int:
        """When the open step closes: its end, the first instant of the next step (with
        `step_ns=1`, the step's own timestamp). Everything in the step happened before."""
        assert self.bucket is not None
        if self.step_ns == 1:
            return self.bucket
        return (self.bucket + 1) * self.step_ns

    def crosses(self, ts: int) -> bool:
        """True when `ts` starts a new step (the open one must close first)."""
        b = ts // self.step_ns
        if self.bucket is None:
            self.bucket = b
            return False
        return b > self.bucket


# ---------------------------------------------------------------------- direct driver

StepHook = Callable[[int, int, Exchange], Iterable[C.Command] | None]
EventSink = Callable[[list[E.Event]], None]


def play(
    exchange: Exchange,
    events: Iterable[Event],
    config: PlayerConfig | None = None,
    *,
    population: Population | None = None,
    sink: EventSink | None = None,
    step_ns: int | None = None,
    on_step: StepHook | None = None,
    setup: bool = True,
) -> Player:
    """Replay `events` straight into `exchange`, as fast as the core goes.

    `sink(events)` receives every batch of core events (the report's recorder); `on_step`
    (with `step_ns`) is called at each step close with (step number, replay time, exchange)
    and may return commands to apply there (an in-process strategy). Returns the player
    (its `stats`).
    """
    player = Player(exchange, config, population)
    handle = exchange.handle

    def apply(cmds: Iterable[C.Command]) -> None:
        for cmd in cmds:
            evs = handle(cmd)
            if sink is not None:
                sink(evs)

    if setup:
        apply(player.setup())
    stepper = Stepper(step_ns) if step_ns else None
    translate = player.translate
    pop_next = population.next_ts if population is not None else 1 << 63

    def close(ts: int) -> None:
        assert stepper is not None
        if ts > exchange.now:
            apply([C.AdvanceClock(ts=ts)])
        stepper.step += 1
        if on_step is not None:
            apply(on_step(stepper.step, ts, exchange) or ())

    def at(ts: int) -> None:
        assert stepper is not None
        if stepper.crosses(ts):
            close(stepper.end())
            stepper.bucket = ts // stepper.step_ns
        if ts > stepper.ts:
            stepper.ts = ts

    if stepper is None and sink is None and population is None:
        # the fast path (benchmark): no steps, nobody listening
        for ev in events:
            for cmd in translate(ev):
                handle(cmd)
            if player.done:
                break
        return player
    if stepper is None and sink is None:
        for ev in events:
            for cmd in translate(ev):
                handle(cmd)
            if player.done:
                break
            last = player.last_ts
            if last is not None and last >= pop_next:
                for cmd in player.due(last):
                    handle(cmd)
                assert population is not None
                pop_next = population.next_ts
        return player

    for ev in events:
        cmds = translate(ev)
        if player.done:
            break
        for cmd in cmds:
            if stepper is not None:
                at(cmd.ts)
            evs = handle(cmd)
            if sink is not None:
                sink(evs)
        last = player.last_ts
        if last is not None:
            if stepper is not None:
                at(player.step_ts)
            if last >= pop_next:
                apply(player.due(last))
                assert population is not None
                pop_next = population.next_ts
    if stepper is not None and stepper.bucket is not None:
        close(stepper.end())
    return player


# ---------------------------------------------------------------------- runtime driver


@dataclass(frozen=True)
class Pacing:
    """How fast the replay runs: `speed` × real time, or as fast as possible (`speed=None`).

    With a `Lockstep`, each step also waits for the registered strategies (both can apply:
    a lockstep replay never runs faster than `speed` either).
    """

    speed: float | None = None

    def delay(self, ts: int, t0: int, wall0: float) -> float:
        if not self.speed:
            return 0.0
        target = wall0 + (ts - t0) / 1e9 / self.speed
        return target - time.monotonic()


Progress = Callable[[Player, int], None]


async def play_async(
    runtime: Runtime,
    events: Iterable[Event],
    config: PlayerConfig | None = None,
    *,
    population: Population | None = None,
    pacing: Pacing | None = None,
    lockstep: Lockstep | None = None,
    step_ns: int = 1,
    on_step: Callable[[int, int], Any] | None = None,
    progress: Progress | None = None,
    setup: bool = True,
    yield_every: int = 2000,
) -> Player:
    """Replay `events` through `runtime`'s command queue (see the module docstring).

    Each event's commands are submitted in order and awaited before the next event is
    translated (the player reads the state its previous commands made). A step closes when
    replay time enters the next `step_ns` bucket: the clock is advanced to the step's last
    time, `on_step(step, ts)` runs (sampling), then a `lockstep` publishes the step and waits
    for every registered strategy (or its timeout). `progress(player, step)` is called at
    each step close and every `yield_every` events.
    """
    pacing = pacing or Pacing()
    ex = runtime.exchange
    player = Player(ex, config, population)
    submit = runtime.submit_future
    if setup:
        for cmd in player.setup():
            await runtime.submit(cmd)
    stepper = Stepper(step_ns)
    t0: int | None = None
    wall0 = 0.0
    translate = player.translate

    async def run(cmds: Sequence[C.Command]) -> None:
        if not cmds:
            return
        futs = [submit(c) for c in cmds]
        await asyncio.gather(*futs)

    async def close(ts: int) -> None:
        if ts > ex.now:
            await runtime.submit(C.AdvanceClock(ts=ts))
        stepper.step += 1
        if on_step is not None:
            on_step(stepper.step, ts)
        if progress is not None:
            progress(player, stepper.step)
        if lockstep is not None:
            await lockstep.barrier(stepper.step, ts, market_info(ex))

    async def at(ts: int) -> None:
        nonlocal t0, wall0
        if stepper.crosses(ts):
            await close(stepper.end())
            stepper.bucket = ts // stepper.step_ns
        if ts > stepper.ts:
            stepper.ts = ts
        if pacing.speed:
            if t0 is None:
                t0, wall0 = ts, time.monotonic()
            d = pacing.delay(ts, t0, wall0)
            if d > 0.001:
                await asyncio.sleep(d)

    for n, ev in enumerate(events, 1):
        cmds = translate(ev)
        if player.done:
            break
        if cmds:
            i = 0
            while i < len(cmds):
                ts = cmds[i].ts
                await at(ts)
                j = i + 1
                while j < len(cmds) and cmds[j].ts == ts:
                    j += 1
                await run(cmds[i:j])
                i = j
        last = player.last_ts
        if last is not None:
            await at(player.step_ts)
            if population is not None and last >= population.next_ts:
                await run(player.due(last))
        if n % yield_every == 0:
            if progress is not None:
                progress(player, stepper.step)
            await asyncio.sleep(0)
    if stepper.bucket is not None:
        await close(stepper.end())
    if lockstep is not None:
        lockstep.finish(market_info(ex))
    return player


def market_info(ex: Exchange) -> dict[str, Any]:
    """What a strategy is told at each step: engine time and each market's prices (text)."""
    from exchange.units import ticks_to_str

    markets: dict[str, Any] = {}
    for sym in sorted(ex.instruments):
        mv = ex.market_view(sym)
        inst = ex.instruments[sym]

        def p(t: int | None, inst: Any = inst) -> str | None:
            return ticks_to_str(inst, t) if t else None

        markets[sym] = {
            "mark": p(mv.mark),
            "index": p(mv.index),
            "last": p(mv.last),
            "bestBid": p(mv.best_bid),
            "bestAsk": p(mv.best_ask),
        }
    return {"engineTime": ex.now, "markets": markets}
