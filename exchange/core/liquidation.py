"""Liquidation policies: how a position that crossed its liquidation price is closed.

This module is the seam between the cascade loop (`cascade.py`, which finds the
positions due, in order, and keeps the cascade's tally) and the policy that closes
each one. A policy is any object with `liquidate` (`LiquidationPolicy`), called once
per position due with the `LiquidationVenue` — the only things a policy may do to the
exchange: cancel the position's orders, send a liquidation order into the book, move
lots of a position to another seat (the insurance fund, an ADL counterparty), read
the fund, rank ADL candidates, close the position and emit events. It must leave the
position flat. `Exchange(policy=...)` plugs another one in; BitMEX's resting limit at
the bankruptcy price or Hyperliquid's partial slices with a backstop would be new
classes here, touching neither the monitor nor the cascade loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import events as E
from .state import Cascade, Market, Seat


class LiquidationVenue(Protocol):
    """The exchange as a policy sees it (`cascade.py`; `transfer_position` from
    `positions.py`, `insurance_fund` from `accounts.py`)."""

    def cancel_orders_of(self, m: Market, seat: Seat, reason: str) -> None: ...
    def liquidation_order(self, m: Market, seat: Seat, price: int) -> list[tuple[int, int]]: ...
    def transfer_position(self, m: Market, seat: Seat, to: Seat, lots: int, price: int) -> int: ...
    def fund_seat(self, m: Market) -> Seat: ...
    def fund_equity(self, m: Market) -> int: ...
    def close_liquidated(self, m: Market, seat: Seat) -> int: ...
    def adl_candidates(self, m: Market, long_liquidated: bool, exclude: int) -> list[Seat]: ...
    def insurance_fund(self, asset: str = "USDT") -> int: ...
    def emit(self, cls: Any, *args: Any) -> None: ...


class LiquidationPolicy(Protocol):
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


class BinanceLiquidation:
    """Binance USDⓈ-M's default: cancel the position's orders; send one IOC order for
    the whole position at the bankruptcy price into the book as a taker; what fills
    better than bankruptcy leaves margin that goes to the insurance fund; what does not
    fill is taken over by the fund at the bankruptcy price as far as the fund's equity
    at the mark can bear it; the rest is auto-deleveraged against opposite positions
    ranked by profit % × leverage, at the bankruptcy price. With `adl=False` the fund
    takes over all of what does not fill, even past its equity (a game without ADL)."""

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
        ex.cancel_orders_of(m, seat, "LIQUIDATION")
        qty = abs(seat.qty)
        long = seat.qty > 0
        liq_price = seat.liq
        bk = seat.bk
        quote = m.inst.quote_asset
        fund_before = ex.insurance_fund(quote)
        fills = ex.liquidation_order(m, seat, bk)
        filled = 0
        for _, q in fills:
            filled += q
        left = qty - filled
        takeover = 0
        adl = 0
        if left:
            fund = ex.fund_seat(m)
            per_lot_loss = (bk - m.mark) * m.inst.lot_value * (1 if long else -1)
            if per_lot_loss <= 0 or not self.adl:
                takeover = left
            else:
                takeover = min(left, max(0, ex.fund_equity(m)) // per_lot_loss)
            if takeover:
                ex.transfer_position(m, seat, fund, takeover, bk)
            adl = left - takeover
            remaining = adl
            if remaining:
                for other in ex.adl_candidates(m, long, seat.account):
                    if not remaining:
                        break
                    n = min(remaining, abs(other.qty))
                    # its orders were sized against a position that is about to shrink
                    ex.cancel_orders_of(m, other, "ADL")
                    realized = ex.transfer_position(m, seat, other, n, bk)
                    remaining -= n
                    cascade.adl += 1
                    ex.emit(
                        E.PositionAutoDeleveraged,
                        liquidation_id,
                        cascade.cid,
                        other.account,
                        m.inst.symbol,
                        n,
                        bk,
                        realized,
                    )
        ex.close_liquidated(m, seat)
        ex.emit(
            E.PositionLiquidated,
            liquidation_id,
            cascade.cid,
            generation,
            parent,
            seat.account,
            m.inst.symbol,
            "LONG" if long else "SHORT",
            qty,
            trigger_mark,
            liq_price,
            bk,
            tuple(fills),
            filled,
            takeover,
            adl,
            ex.insurance_fund(quote) - fund_before,
        )


def _binance(*, adl: bool = True) -> LiquidationPolicy:
    return BinanceLiquidation(adl=adl)


# the liquidation policies by name: each factory takes `adl` (False: no auto-deleveraging,
# the fund takes over what the book does not fill, even past its equity)
POLICIES: dict[str, Callable[..., LiquidationPolicy]] = {"binance": _binance}


def make_policy(name: str, *, adl: bool = True) -> LiquidationPolicy:
    """The policy registered as `name`, with ADL on or off; ValueError for an unknown name."""
    factory = POLICIES.get(name)
    if factory is None:
        raise ValueError(
            f"unknown liquidation policy {name!r} (known: {', '.join(sorted(POLICIES))})"
        )
    return factory(adl=adl)
