"""A leveraged population: N accounts holding positions through a replay.

Replaying a crash with a population shows the liquidations and cascades it would have
caused. Every draw comes from one `random.Random(seed)` in a fixed order, and every number
that reaches the core is an integer computed with `Decimal` (correctly rounded, so the same
on every machine): the same spec and the same data give the same accounts, the same orders
and the same liquidations.

Per account (drawn up front, in account order):

* **side**: long with probability `long_share`, else short;
* **leverage**: from `leverage`, a tuple of (leverage, weight); capped at the instrument's
  max leverage;
* **notional** (quote asset): log-uniform in `notional` (lo, hi), then capped so the
  position fits the bracket that allows its leverage;
* **entry offset**: uniform in ±`entry_spread` (a fraction) of the mark at opening time,
  to the millionth;
* **opening time**: the first replayed price of the symbol (`open_over_ns = 0`), or that
  time plus a delay uniform in [0, `open_over_ns`): positions are then opened along the
  way, at the prices of their time.

Opening (all as core commands, stamped with the replay time): the account gets a deposit
covering the initial margin, the taker fee and the open loss (+1 % and 1 USDT), its
leverage is set, the replay account posts a post-only order at the entry price P, the
account takes it with an IOC limit order at P, and the replay account cancels what is left.
The account buys (sells) from the book first wherever the book is better than P, so the
entry is P or better. P is the mark × (1 + offset), rounded down to the tick, clamped into
the price band, and kept off the other side of the book (a long's P is at least one tick
above the best bid, a short's one tick below the best ask) so the replay account's order
never takes. An account whose entry cannot be placed (outside the band) stays flat and is
counted in `failed`. The replay account is the population's counterparty.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Any, Protocol

from exchange.core import commands as C
from exchange.core.engine import Exchange
from exchange.core.numbers import RATE_ONE, ceil_div


class Player(Protocol):
    """What a population needs of the player that drives it (`replay.player.Player`):
    the exchange to read, the replay account (its counterparty), the first replayed
    symbol with an index, and the player's way of emitting commands."""

    ex: Exchange

    def replay_account(self) -> int: ...
    def indexed_symbol(self) -> str | None: ...
    def emit(self, cmd: C.Command, out: list[C.Command]) -> None: ...


__all__ = ["POPULATION_FIRST", "PopulationSpec", "Member", "Population"]

POPULATION_FIRST = 1_000_000_000
"""Account id of the first population member (ids count up from there)."""

USDT = 10**8
_CTX = Context(prec=40)
_PPM = 1_000_000


@dataclass(frozen=True)
class PopulationSpec:
    accounts: int = 100
    seed: int = 1
    symbol: str | None = None  # instrument; None: the first symbol the replay prices
    leverage: tuple[tuple[int, int], ...] = (
        (3, 10),
        (5, 15),
        (10, 25),
        (20, 25),
        (50, 15),
        (100, 10),
    )
    long_share: Decimal = Decimal("0.6")
    notional: tuple[Decimal, Decimal] = (Decimal(1_000), Decimal(100_000))
    entry_spread: Decimal = Decimal("0.005")
    open_over_ns: int = 0
    first_account: int = POPULATION_FIRST

    def __post_init__(self) -> None:
        if self.accounts < 0:
            raise ValueError("accounts must not be negative")
        if not self.leverage or any(lev < 1 or w < 0 for lev, w in self.leverage):
            raise ValueError("leverage: (leverage ≥ 1, weight ≥ 0) pairs, at least one")
        if sum(w for _, w in self.leverage) <= 0:
            raise ValueError("leverage: the weights must not all be 0")
        if not 0 <= self.long_share <= 1:
            raise ValueError("long_share must be in [0, 1]")
        lo, hi = self.notional
        if not 0 < lo <= hi:
            raise ValueError("notional: 0 < lo ≤ hi")
        if not 0 <= self.entry_spread < Decimal("0.05"):
            raise ValueError("entry_spread must be in [0, 0.05)")
        if self.open_over_ns < 0:
            raise ValueError("open_over_ns must not be negative")


@dataclass
class Member:
    account: int
    long: bool
    leverage: int
    notional: Decimal  # quote asset, before bracket capping
    offset_ppm: int  # entry offset from the mark, millionths
    delay_ns: int  # after the first price
    opened_ts: int | None = None
    entry: int = 0  # ticks (the order's limit price)
    qty: int = 0  # lots ordered
    failed: str | None = None


@dataclass
class Population:
    spec: PopulationSpec
    members: list[Member] = field(default_factory=list)
    next_ts: int = -(1 << 63)  # replay time of the next opening (-inf: at the first price)
    start_ts: int | None = None
    symbol: str | None = None
    opened: int = 0
    failed: int = 0
    _queue: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = self.spec
        rng = random.Random(spec.seed)
        weights = [w for _, w in spec.leverage]
        total = sum(weights)
        lo, hi = spec.notional
        ln_ratio = _CTX.ln(_CTX.divide(hi, lo)) if hi != lo else Decimal(0)
        spread_ppm = int(spec.entry_spread * _PPM)
        long_ppm = int(spec.long_share * _PPM)
        for i in range(spec.accounts):
            long = rng.randrange(_PPM) < long_ppm
            pick = rng.randrange(total)
            lev = spec.leverage[-1][0]
            for choice, w in spec.leverage:
                if pick < w:
                    lev = choice
                    break
                pick -= w
            u = Decimal(rng.randrange(_PPM)) / _PPM
            notional = _CTX.multiply(lo, _CTX.exp(_CTX.multiply(ln_ratio, u)))
            notional = notional.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
            offset = rng.randint(-spread_ppm, spread_ppm) if spread_ppm else 0
            delay = rng.randrange(spec.open_over_ns) if spec.open_over_ns else 0
            self.members.append(Member(spec.first_account + i, long, lev, notional, offset, delay))
        self._queue = sorted(self.members, key=lambda m: (m.delay_ns, m.account))

    @property
    def accounts(self) -> list[int]:
        return [m.account for m in self.members]

    def setup(self) -> list[C.Command]:
        return [C.CreateAccount(account=m.account) for m in self.members]

    def poll(self, ts: int, player: Player) -> list[C.Command]:
        """Open every member due by replay time `ts` (once the symbol has a mark)."""
        ex = player.ex
        if self.symbol is None:
            sym = self.spec.symbol
            if sym is None:
                sym = player.indexed_symbol()
            if sym is None:
                return []
            self.symbol = sym
        if ex.market_view(self.symbol).mark <= 0:
            return []
        if self.start_ts is None:
            self.start_ts = ts
        out: list[C.Command] = []
        q = self._queue
        i = 0
        while i < len(q) and self.start_ts + q[i].delay_ns <= ts:
            self._open(q[i], ts, player, out)
            i += 1
        del q[:i]
        self.next_ts = self.start_ts + q[0].delay_ns if q else 1 << 63
        return out

    def _open(self, m: Member, ts: int, player: Player, out: list[C.Command]) -> None:
        ex = player.ex
        sym = self.symbol
        assert sym is not None
        inst = ex.instruments[sym]
        mv = ex.market_view(sym)
        mark = mv.mark
        lo = ceil_div(mark * (RATE_ONE - inst.band_down), RATE_ONE)
        hi = mark * (RATE_ONE + inst.band_up) // RATE_ONE
        price = mark + (mark * m.offset_ppm) // _PPM
        price = max(lo, min(hi, price))
        if m.long and mv.best_bid is not None and price <= mv.best_bid:
            price = mv.best_bid + 1
        if not m.long and mv.best_ask is not None and price >= mv.best_ask:
            price = mv.best_ask - 1
        lev = min(m.leverage, inst.max_leverage)
        lv = inst.lot_value
        cap = max((b.cap for b in inst.brackets if b.max_leverage >= lev), default=0)
        notional_q = min(int(m.notional * USDT), cap)
        qty = min(notional_q // (price * lv) if price > 0 else 0, inst.max_qty)
        m.opened_ts = ts
        m.entry, m.qty = price, qty
        if not lo <= price <= hi or price < inst.min_price:
            m.failed = "entry outside the price band"
        elif qty < inst.min_qty or price * qty * lv < inst.min_notional:
            m.failed = "position below the minimum quantity or notional"
        if m.failed:
            self.failed += 1
            return
        notional = price * qty * lv
        im = ceil_div(notional, lev)
        fee = ceil_div(notional * max(inst.taker_fee, inst.maker_fee, 0), RATE_ONE)
        open_loss = max(0, (price - mark) if m.long else (mark - price)) * qty * lv
        deposit = im + 2 * fee + open_loss + im // 100 + USDT
        acct = m.account
        rep = player.replay_account()
        side, other = ("BUY", "SELL") if m.long else ("SELL", "BUY")
        cid = f"pop{acct}"
        emit = player.emit
        emit(C.Deposit(ts=ts, account=acct, asset=inst.quote_asset, amount=deposit), out)
        emit(C.SetLeverage(ts=ts, account=acct, symbol=sym, leverage=lev), out)
        emit(
            C.PlaceOrder(
                ts=ts,
                account=rep,
                symbol=sym,
                side=other,
                qty=qty,
                price=price,
                time_in_force="GTX",
                client_id=cid,
            ),
            out,
        )
        emit(
            C.PlaceOrder(
                ts=ts,
                account=acct,
                symbol=sym,
                side=side,
                qty=qty,
                price=price,
                time_in_force="IOC",
            ),
            out,
        )
        better = mv.best_ask if m.long else mv.best_bid
        if better is not None and (better <= price if m.long else better >= price):
            # the book may fill part of it first: take back what the replay account has left
            emit(C.CancelOrder(ts=ts, account=rep, symbol=sym, client_id=cid), out)
        self.opened += 1

    def summary(self) -> dict[str, Any]:
        return {
            "accounts": len(self.members),
            "opened": self.opened,
            "failed": self.failed,
            "seed": self.spec.seed,
            "symbol": self.symbol,
        }
