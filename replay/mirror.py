"""A replayed symbol's state (`SymbolState`) and its book on the exchange (`Mirror`): the
recorded L2 book mirrored as resting orders of the replay account, or the synthetic
quotes around the index where no book is recorded. Driven by `replay.translator.Player`
through the `Owner` interface below (the player owns the counters, the ids and the
commands it emits)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from sortedcontainers import SortedDict

from exchange.core import commands as C
from exchange.core.engine import Exchange
from exchange.core.numbers import RATE_ONE, ceil_div
from replay.builders import replace_book
from replay.convert import DOWN, NEAREST, UP, Units
from replay.playerconfig import PlayerConfig, PlayerStats

BID, ASK = 0, 1
BOOK_RANK = 5  # the recorded book's mid: the index of last resort (book-only data)
NO_RANK = 99
_PPM = 1_000_000
_QUOTES_MAX = 4096  # synthetic books remembered per symbol (a few hundred kB at most)


class Owner(Protocol):
    """What a mirror needs of the player that drives it."""

    ex: Exchange
    cfg: PlayerConfig
    fresh: dict[str, tuple[int, int]]
    _stats: PlayerStats

    def emit(self, cmd: C.Command, out: list[C.Command]) -> None: ...

    def client_id(self, kind: str, tick: int) -> str: ...

    def _index(
        self,
        s: SymbolState,
        rank: int,
        ticks: int,
        ts: int,
        out: list[C.Command],
        quote: bool = True,
    ) -> None: ...


class SymbolState:
    __slots__ = (
        "symbol", "inst", "units", "near", "rank", "index", "book_src", "mirror", "lv", "quoted"
    )  # fmt: skip

    def __init__(self, player: Owner, symbol: str) -> None:
        self.symbol = symbol
        self.inst = player.ex.instruments[symbol]
        self.units = Units(self.inst)
        self.near = self.units._p[NEAREST]  # its cache of prices to the nearest tick
        self.rank = NO_RANK  # best index source seen so far
        self.index = 0  # last index sent (ticks)
        self.quoted = 0  # the index the synthetic book was last centred on
        self.book_src: type | None = None  # BookUpdate or Quote: the first seen wins
        self.mirror = Mirror(player, self)
        self.lv = self.inst.lot_value


class Mirror:
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

    __slots__ = ("p", "s", "rec", "tgt", "orders", "sweep_mark", "synth", "quoting", "quotes")

    def __init__(self, player: Owner, s: SymbolState) -> None:
        self.p = player
        self.s = s
        self.rec: tuple[dict[Decimal, int], dict[Decimal, int]] = ({}, {})
        self.tgt: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.orders: tuple[Any, Any] = (SortedDict(), SortedDict())  # tick → client id
        self.sweep_mark = 0
        self.synth = False  # synthetic quotes rest in the book (withdrawn for a real one)
        self.quoting: tuple[int, tuple[int, ...], int, int, int] | None = None
        self.quotes: dict[int, Any] = {}  # index → its synthetic levels (`synthetic`)

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
                p._index(self.s, BOOK_RANK, mid, ts, out)
                if self.s.index == mid:
                    mark = mid
        self.reconcile(changed, ts, out, mark=mark)

    def synthetic(self, index: int, ts: int, out: list[C.Command]) -> None:
        """Re-centre the synthetic book (`PlayerConfig.synthetic`) on a new index: one
        `ReplaceBook` command (the core withdraws the previous quotes and rests these).
        The levels around an index are remembered (a bounded cache: replays come back to
        the same prices over and over), so a re-centring costs one look-up."""
        quotes = self.quotes.get(index)
        if quotes is None:
            quotes = self._levels(index)
            if len(self.quotes) >= _QUOTES_MAX:
                self.quotes.clear()
            self.quotes[index] = quotes
        bids, asks, n = quotes
        self.synth = True
        p = self.p
        p._stats.levels_placed += n
        p.emit(replace_book(ts, p.cfg.account, self.s.symbol, bids, asks), out)

    def _levels(
        self, index: int
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]:
        """(bids, asks, how many levels) the synthetic book quotes around `index`."""
        q = self.quoting
        if q is None:
            q = self.quoting = self._quoting()
        lots, offsets, lo_price, hi_price, min_tick = q
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        if lots:
            prev_bid, prev_ask = index, index
            for k, d in enumerate(offsets):
                bid = index * (_PPM - d) // _PPM
                ask = -(-index * (_PPM + d) // _PPM)
                if k:
                    if bid > prev_bid - 1:
                        bid = prev_bid - 1
                    if ask < prev_ask + 1:
                        ask = prev_ask + 1
                else:
                    if bid > prev_bid:
                        bid = prev_bid
                    if ask < prev_ask:
                        ask = prev_ask
                if ask <= bid:
                    ask = bid + 1
                prev_bid, prev_ask = bid, ask
                if lo_price <= bid <= hi_price and bid >= min_tick:
                    bids.append((bid, lots))
                if lo_price <= ask <= hi_price and ask >= min_tick:
                    asks.append((ask, lots))
        return tuple(bids), tuple(asks), len(bids) + len(asks)

    def _quoting(self) -> tuple[int, tuple[int, ...], int, int, int]:
        """What every re-centring of the synthetic book uses: (lots a level, 0 when under
        the minimum quantity; each level's distance from the index in ppm; the lowest and
        highest price; the lowest tick a level's notional allows)."""
        syn = self.p.cfg.synthetic
        assert syn is not None
        inst = self.s.inst
        lots = min(self.s.units.lots(syn.qty), inst.max_qty)
        offsets = tuple(syn.spread_ppm // 2 + k * syn.step_ppm for k in range(syn.levels))
        # t * lots * lv >= min_notional  <=>  t >= ceil(min_notional / (lots * lv))
        per_tick = lots * self.s.lv
        min_tick = ceil_div(inst.min_notional, per_tick) if per_tick > 0 else 1 << 62
        if lots < inst.min_qty:
            lots = 0
        return lots, offsets, inst.min_price, inst.max_price, min_tick

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
