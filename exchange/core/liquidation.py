"""Liquidation policies: how a position that crossed its liquidation price is closed.

This module is the seam between the cascade loop (`cascade.py`, which finds the
positions due, in order, and keeps the cascade's tally) and the policy that closes
each one. A policy is any object with `liquidate` (`LiquidationPolicy`), called once
per position due with the `LiquidationVenue` — the only things a policy may do to the
exchange: cancel the position's orders, send a liquidation order into the book (or
rest one for the fund), move lots of a position to another seat (the insurance fund,
an ADL counterparty), read the fund, rank ADL candidates, close the position, hand
what is left of its margin back, and emit events. It must leave the position either
flat or open and re-indexable (a partial liquidation); it never leaves it half-done.

Four policies, by name in `POLICIES` (`make_policy`): `binance` (the default),
`bitmex`, `hyperliquid`, `dydx` — their rules, sources and worked examples are in
docs/liquidation.md. `Exchange(policy=...)` imposes one on every market; without it
each market uses its instrument's `liquidation_policy`. Every policy takes `adl`:
with `adl=False` the fund takes over whatever it cannot bear instead of
auto-deleveraging anyone (a game without ADL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import events as E
from .numbers import RATE_ONE
from .state import Cascade, Market, Seat

SECOND = 10**9  # ns


class LiquidationVenue(Protocol):
    """The exchange as a policy sees it (`cascade.py`; `transfer_position` from
    `positions.py`, `insurance_fund` from `accounts.py`, `now` the engine time)."""

    now: int

    def cancel_orders_of(self, m: Market, seat: Seat, reason: str) -> None: ...
    def liquidation_order(
        self, m: Market, seat: Seat, price: int, lots: int = 0
    ) -> list[tuple[int, int]]: ...
    def rest_liquidation_order(self, m: Market, seat: Seat, price: int, lots: int) -> None: ...
    def transfer_position(self, m: Market, seat: Seat, to: Seat, lots: int, price: int) -> int: ...
    def fund_seat(self, m: Market) -> Seat: ...
    def fund_equity(self, m: Market) -> int: ...
    def close_liquidated(self, m: Market, seat: Seat, keep: int = 0) -> int: ...
    def adl_candidates(
        self, m: Market, long_liquidated: bool, exclude: int, lots: int = 0
    ) -> list[Seat]: ...
    def insurance_fund(self, asset: str = "USDT") -> int: ...
    def emit(self, cls: Any, *args: Any) -> None: ...


class LiquidationPolicy(Protocol):
    adl: bool

    def liquidate(
        self,
        ex: LiquidationVenue,
        m: Market,
        seat: Seat,
        cascade: Cascade,
        liquidation_id: int,
        generation: int,
        parent: int | None,
        trigger_mark: int,
    ) -> None: ...


def _backstop(
    ex: LiquidationVenue,
    m: Market,
    seat: Seat,
    cascade: Cascade,
    liquidation_id: int,
    left: int,
    price: int,
    adl: bool,
) -> tuple[int, int]:
    """Take `left` lots of the position over into the fund at `price` as far as the
    fund's equity at the mark bears the loss of `price` against the mark; deleverage
    the rest at `price` against opposite positions ranked by `adl_candidates` (or, with
    `adl` off, the fund takes all). Returns (lots taken over, lots deleveraged)."""
    long = seat.qty > 0
    fund = ex.fund_seat(m)  # (it opens the fund's seat on the symbol: part of the state)
    lv = m.inst.lot_value
    per_lot_loss = (price - m.mark) * lv if long else (m.mark - price) * lv
    if per_lot_loss <= 0 or not adl:
        takeover = left
    else:
        equity = ex.fund_equity(m)
        takeover = equity // per_lot_loss if equity > 0 else 0
        if takeover > left:
            takeover = left
    if takeover:
        ex.transfer_position(m, seat, fund, takeover, price)
    remaining = deleveraged = left - takeover
    if remaining:
        for other in ex.adl_candidates(m, long, seat.account, remaining):
            aq = other.qty if other.qty > 0 else -other.qty
            n = remaining if remaining < aq else aq
            if other.orders:  # they were sized against a position about to shrink
                ex.cancel_orders_of(m, other, "ADL")
            realized = ex.transfer_position(m, seat, other, n, price)
            remaining -= n
            cascade.adl += 1
            ex.emit(
                E.PositionAutoDeleveraged,
                liquidation_id,
                cascade.cid,
                other.account,
                m.inst.symbol,
                n,
                price,
                realized,
            )
            if not remaining:
                break
    return takeover, deleveraged


def _filled(fills: list[tuple[int, int]]) -> int:
    filled = 0
    for _, q in fills:
        filled += q
    return filled


def _liquidated(
    ex: LiquidationVenue,
    m: Market,
    seat: Seat,
    cascade: Cascade,
    liquidation_id: int,
    generation: int,
    parent: int | None,
    long: bool,
    qty: int,
    trigger_mark: int,
    liq_price: int,
    bk: int,
    fills: list[tuple[int, int]],
    filled: int,
    takeover: int,
    adl: int,
    fund_delta: int,
) -> None:
    """Announce a liquidation (`PositionLiquidated`), the same way for every policy."""
    ex.emit(
        E.PositionLiquidated, liquidation_id, cascade.cid, generation, parent,
        seat.account, m.inst.symbol, "LONG" if long else "SHORT", qty, trigger_mark,
        liq_price, bk, tuple(fills), filled, takeover, adl, fund_delta,
    )  # fmt: skip


class BinanceLiquidation:
    """Binance USDⓈ-M's default: cancel the position's orders; send one IOC order for
    the whole position at the bankruptcy price into the book as a taker; what fills
    better than bankruptcy leaves margin that goes to the insurance fund; what does not
    fill is taken over by the fund at the bankruptcy price as far as the fund's equity
    at the mark can bear it; the rest is auto-deleveraged against opposite positions
    ranked by profit % × leverage, at the bankruptcy price. With `adl=False` the fund
    takes over all of what does not fill, even past its equity (a game without ADL)."""

    name = "binance"
    adl = True

    def __init__(self, *, adl: bool = True) -> None:
        self.adl = adl

    def liquidate(
        self,
        ex: LiquidationVenue,
        m: Market,
        seat: Seat,
        cascade: Cascade,
        liquidation_id: int,
        generation: int,
        parent: int | None,
        trigger_mark: int,
    ) -> None:
        if seat.orders:
            ex.cancel_orders_of(m, seat, "LIQUIDATION")
        qty = seat.qty
        long = qty > 0
        if not long:
            qty = -qty
        liq_price = seat.liq
        bk = seat.bk
        quote = m.inst.quote_asset
        fund_before = ex.insurance_fund(quote)
        fills = ex.liquidation_order(m, seat, bk)
        filled = _filled(fills) if fills else 0
        left = qty - filled
        takeover = adl = 0
        if left:
            takeover, adl = _backstop(ex, m, seat, cascade, liquidation_id, left, bk, self.adl)
        self.settle(ex, m, seat, bk)
        _liquidated(
            ex, m, seat, cascade, liquidation_id, generation, parent, long, qty,
            trigger_mark, liq_price, bk, fills, filled, takeover, adl,
            ex.insurance_fund(quote) - fund_before,
        )  # fmt: skip

    def settle(self, ex: LiquidationVenue, m: Market, seat: Seat, bk: int) -> None:
        """Close the flat position: all that is left of its margin goes to the fund."""
        ex.close_liquidated(m, seat)


class BitmexLiquidation(BinanceLiquidation):
    """BitMEX: the liquidation engine takes the position over at the bankruptcy price
    and works it with a limit order at that price. The part the book takes at once is
    the position's own IOC at bankruptcy (the same money as the engine taking over and
    selling: the gain over bankruptcy goes to the fund either way); the rest is taken
    over by the fund — as far as its equity at the mark bears the loss to the mark,
    the remainder auto-deleveraged — and **rests in the book** as the fund's
    reduce-only GTC limit order at the bankruptcy price, until filled (at the fund's
    entry: no loss realized) or until the fund's position is gone. A mark moving
    further leaves the order where it is; the fund's unrealized loss lowers its equity
    and so how much of the next liquidation it can take over."""

    name = "bitmex"

    def settle(self, ex: LiquidationVenue, m: Market, seat: Seat, bk: int) -> None:
        ex.close_liquidated(m, seat)
        fund = ex.fund_seat(m)
        # what the fund holds on this symbol beyond what its resting orders already offer
        side = 1 if fund.qty > 0 else 0  # the side that reduces it (SELL for a long)
        offer = abs(fund.qty) - fund.pending[side]
        if offer > 0:
            ex.rest_liquidation_order(m, fund, bk, offer)


class HyperliquidLiquidation:
    """Hyperliquid: a position whose notional at the mark exceeds `large_notional`
    (100,000 quote units) is liquidated in slices: an IOC into the book for
    `slice_rate` (20 %) of it, bounded by the bankruptcy price, after which it stays
    open (its collateral stays with it) and a cooldown of `cooldown_ns` (30 s of
    engine time) starts; a position due again during its cooldown, or not large, goes
    whole. Whatever a whole liquidation's IOC leaves, and the whole position when its
    equity at the mark is below 2/3 of its maintenance margin, goes to the backstop
    vault (the insurance fund): taken over at the mark (at bankruptcy if the mark is
    past it) with the margin left, as far as the vault bears the loss, the rest
    auto-deleveraged. A book liquidation that closes all leaves the remaining
    collateral to the user (no clearance fee)."""

    name = "hyperliquid"
    adl = True

    def __init__(
        self,
        *,
        adl: bool = True,
        large_notional: int = 100_000 * 10**8,
        slice_rate: int = RATE_ONE // 5,
        cooldown_ns: int = 30 * SECOND,
    ) -> None:
        self.adl = adl
        self.large_notional = large_notional
        self.slice_rate = slice_rate
        self.cooldown_ns = cooldown_ns

    def liquidate(
        self,
        ex: LiquidationVenue,
        m: Market,
        seat: Seat,
        cascade: Cascade,
        liquidation_id: int,
        generation: int,
        parent: int | None,
        trigger_mark: int,
    ) -> None:
        ex.cancel_orders_of(m, seat, "LIQUIDATION")
        inst = m.inst
        mark = m.mark
        qty = abs(seat.qty)
        long = seat.qty > 0
        liq_price = seat.liq
        bk = seat.bk
        quote = inst.quote_asset
        fund_before = ex.insurance_fund(quote)
        notional = qty * mark * inst.lot_value
        equity = seat.margin + seat.qty * mark * inst.lot_value - seat.cost
        mm = inst.maintenance_margin(notional)
        fills: list[tuple[int, int]] = []
        filled = takeover = adl = 0
        lots = qty
        if 3 * equity < 2 * mm:  # the backstop: no book liquidation at all
            price = max(mark, bk) if long else min(mark, bk)
            takeover, adl = _backstop(ex, m, seat, cascade, liquidation_id, qty, price, self.adl)
            ex.close_liquidated(m, seat)
        else:
            part = -((-qty * self.slice_rate) // RATE_ONE)  # 20 %, rounded up to a lot
            if notional > self.large_notional and seat.partial_until <= ex.now and part < qty:
                lots = part
                fills = ex.liquidation_order(m, seat, bk, part)
                filled = _filled(fills)
                seat.partial_until = ex.now + self.cooldown_ns
            else:
                fills = ex.liquidation_order(m, seat, bk)
                filled = _filled(fills)
                left = qty - filled
                if left:
                    price = max(mark, bk) if long else min(mark, bk)
                    takeover, adl = _backstop(
                        ex, m, seat, cascade, liquidation_id, left, price, self.adl
                    )
                    ex.close_liquidated(m, seat)
                else:
                    ex.close_liquidated(m, seat, seat.margin)  # the collateral stays
        _liquidated(
            ex, m, seat, cascade, liquidation_id, generation, parent, long, lots,
            trigger_mark, liq_price, bk, fills, filled, takeover, adl,
            ex.insurance_fund(quote) - fund_before,
        )  # fmt: skip


class DydxLiquidation:
    """dYdX v4: an IOC for the whole position at the fillable price, bounded by the
    bankruptcy price; the gain over bankruptcy goes to the insurance fund as a
    liquidation fee of at most `max_fee_rate` (1.5 %) of the filled notional, the rest
    of the margin back to the user; what does not fill the insurance fund takes over at
    the bankruptcy price as far as its equity bears it, and the rest is deleveraged
    against opposite positions at the bankruptcy price.

    Fillable price (ticks), with TNC the position's equity and TMMR its maintenance
    margin at the mark, P the mark, PS the size and SMMR `spread_rate` (1.5):
    ABR·TMMR = clamp(TMMR − TNC, 0, TMMR) (bankruptcy adjustment 1), and
    P ∓ SMMR·ABR·TMMR / (PS·lot_value), the offset rounded down (toward the mark)."""

    name = "dydx"
    adl = True

    def __init__(
        self,
        *,
        adl: bool = True,
        spread_rate: int = 3 * RATE_ONE // 2,
        max_fee_rate: int = 1_500_000,
    ) -> None:
        self.adl = adl
        self.spread_rate = spread_rate
        self.max_fee_rate = max_fee_rate

    def fillable_price(self, m: Market, seat: Seat) -> int:
        """The order's limit: the fillable price, never worse than bankruptcy."""
        inst = m.inst
        mark = m.mark
        qf = abs(seat.qty) * inst.lot_value
        equity = seat.margin + seat.qty * mark * inst.lot_value - seat.cost
        mm = inst.maintenance_margin(qf * mark)
        gap = min(max(mm - equity, 0), mm)
        offset = gap * self.spread_rate // (RATE_ONE * qf)
        if seat.qty > 0:
            return max(mark - offset, seat.bk, 1)
        return min(mark + offset, seat.bk)

    def liquidate(
        self,
        ex: LiquidationVenue,
        m: Market,
        seat: Seat,
        cascade: Cascade,
        liquidation_id: int,
        generation: int,
        parent: int | None,
        trigger_mark: int,
    ) -> None:
        ex.cancel_orders_of(m, seat, "LIQUIDATION")
        qty = abs(seat.qty)
        long = seat.qty > 0
        liq_price = seat.liq
        bk = seat.bk
        quote = m.inst.quote_asset
        fund_before = ex.insurance_fund(quote)
        fills = ex.liquidation_order(m, seat, self.fillable_price(m, seat))
        filled = _filled(fills)
        left = qty - filled
        takeover = adl = 0
        if left:
            takeover, adl = _backstop(ex, m, seat, cascade, liquidation_id, left, bk, self.adl)
        value = 0
        for price, q in fills:
            value += price * q
        fee_cap = value * m.inst.lot_value * self.max_fee_rate // RATE_ONE
        ex.close_liquidated(m, seat, max(0, seat.margin - fee_cap))
        _liquidated(
            ex, m, seat, cascade, liquidation_id, generation, parent, long, qty,
            trigger_mark, liq_price, bk, fills, filled, takeover, adl,
            ex.insurance_fund(quote) - fund_before,
        )  # fmt: skip


#: name → the policy's class; each takes the keyword `adl` (and its own parameters)
POLICIES: dict[str, Callable[..., LiquidationPolicy]] = {
    "binance": BinanceLiquidation,
    "bitmex": BitmexLiquidation,
    "hyperliquid": HyperliquidLiquidation,
    "dydx": DydxLiquidation,
}


def make_policy(name: str, *, adl: bool = True) -> LiquidationPolicy:
    """The policy called `name` (a key of `POLICIES`) with its documented parameters;
    ValueError naming the choices for any other name."""
    cls = POLICIES.get(name) if type(name) is str else None
    if cls is None:
        raise ValueError(f"liquidation policy {name!r}: must be one of {', '.join(POLICIES)}")
    return cls(adl=adl)
