"""The leaderboard: per account, from the round's start.

For every playing account (a student, or a team sharing one):

* equity = wallet (available + reserved) + Σ over positions (isolated margin + uPnL at
  the mark), in money quanta;
* return % = (equity − equity at the round's start) / equity at the round's start × 100;
* max drawdown % = the largest fall from a running peak of the sampled equity curve,
  as a percentage of that peak (samples are taken about once a second, and at every
  liquidation the account suffers);
* liquidations suffered, ADL hits (positions closed against a liquidated trader),
  fees paid, volume traded (notional of the account's own fills, liquidations excluded).

Ranking (`rank_by` in the game file), ties broken by fewer liquidations, then name:

* ``return`` (default) and ``equity``: higher first (the same order when every account
  starts with the same balance);
* ``return_over_drawdown``: return % ÷ max(max drawdown %, 1 %): a Calmar-like ratio
  that rewards a return earned without deep falls.

Over the whole game (`game_standings`, what the console shows at game over), per
account from each round's result: profit = Σ over the rounds it played (equity at the
round's end − equity at its start); equity = the starting balance + that profit (with
positions kept between rounds: the equity at the end of the game); return % = profit ÷
the starting balance × 100; max drawdown % = the deepest of its rounds'; liquidations,
ADL hits, fees and volume summed. Ranked as above.

`Tracker.observe(events)` counts from the core's events; `Tracker.sample(...)` records
equity; `standings(...)` ranks. All arithmetic on money is integer; percentages are
`Fraction`s, rounded to two decimals only when rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from exchange.core import events as E
from exchange.core.engine import Exchange

USDT_QUANTA = 10**8


def equity_of(ex: Exchange, account: int, asset: str = "USDT") -> int:
    """Wallet plus position margins plus unrealized PnL at the marks (quanta)."""
    view = ex.account_view(account)
    if view is None:
        return 0
    total = 0
    for b in view.balances:
        if b.asset == asset:
            total += b.available + b.reserved
    for p in view.positions:
        if p.qty or p.margin:
            total += p.margin + p.unrealized_pnl
    return total


@dataclass
class AccountStats:
    start: int = 0  # equity at the round's start
    equity: int = 0
    peak: int = 0
    max_drawdown: Fraction = Fraction(0)  # 0..1
    liquidations: int = 0
    adl_hits: int = 0
    fees: int = 0
    volume: int = 0
    curve: list[tuple[int, int]] = field(default_factory=list)  # (engine ns, equity)

    def record(self, ts: int, equity: int, keep_curve: bool = True) -> None:
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        peak, worst = self.peak, self.max_drawdown
        # (peak − equity) / peak > worst, compared in integers: a Fraction only when larger
        if peak > 0 and (peak - equity) * worst.denominator > worst.numerator * peak:
            self.max_drawdown = Fraction(peak - equity, peak)
        if keep_curve:
            self.curve.append((ts, equity))

    @property
    def return_pct(self) -> Fraction:
        if self.start <= 0:
            return Fraction(0)
        return Fraction(self.equity - self.start, self.start) * 100


@dataclass
class Tracker:
    """Counts and samples for the accounts in `accounts` (others are ignored)."""

    lot_values: dict[str, int]
    stats: dict[int, AccountStats] = field(default_factory=dict)

    def begin_round(self, starts: dict[int, int], ts: int) -> None:
        self.stats = {}
        for acct, eq in starts.items():
            self.add(acct, eq, ts)

    def add(self, account: int, equity: int, ts: int) -> None:
        s = self.stats.setdefault(account, AccountStats(start=equity, peak=equity))
        s.record(ts, equity)

    def observe(self, events: Iterable[E.Event]) -> list[int]:
        """Count what the events say; returns the accounts liquidated in them."""
        stats = self.stats
        liquidated: list[int] = []
        for ev in events:
            t = type(ev)
            if t is E.OrderFilled:
                value = ev.price * ev.qty * self.lot_values.get(ev.symbol, 0)  # type: ignore[attr-defined]
                # a liquidation's taker side is the engine's order, not the student's trade
                s = None if ev.liquidation else stats.get(ev.taker_account)  # type: ignore[attr-defined]
                if s is not None:
                    s.volume += value
                    s.fees += ev.taker_fee  # type: ignore[attr-defined]
                s = stats.get(ev.maker_account)  # type: ignore[attr-defined]
                if s is not None:
                    s.volume += value
                    s.fees += ev.maker_fee  # type: ignore[attr-defined]
            elif t is E.PositionLiquidated:
                s = stats.get(ev.account)  # type: ignore[attr-defined]
                if s is not None:
                    s.liquidations += 1
                    liquidated.append(ev.account)  # type: ignore[attr-defined]
            elif t is E.PositionAutoDeleveraged:
                s = stats.get(ev.account)  # type: ignore[attr-defined]
                if s is not None:
                    s.adl_hits += 1
        return liquidated

    def sample(self, ts: int, equity: Callable[[int], int], keep_curve: bool = True) -> None:
        for acct, s in self.stats.items():
            s.record(ts, equity(acct), keep_curve)


def score(s: AccountStats, rank_by: str) -> Fraction:
    if rank_by == "equity":
        return Fraction(s.equity)
    if rank_by == "return_over_drawdown":
        return s.return_pct / max(s.max_drawdown * 100, Fraction(1))
    return s.return_pct


def standings(tracker: Tracker, rank_by: str, label: Callable[[int], str]) -> list[dict[str, Any]]:
    """Rows ranked by the metric (see the module docstring); rank 1 is best.
    O(n log n) for n accounts, a few exact integer-ratio operations per row."""
    rows = []
    for acct, s in tracker.stats.items():
        rows.append((score(s, rank_by), s, acct, label(acct)))
    rows.sort(key=lambda r: (-r[0], r[1].liquidations, r[3].casefold(), r[2]))
    out = []
    for i, (sc, s, acct, name) in enumerate(rows, start=1):
        out.append(
            {
                "rank": i,
                "account": acct,
                "name": name,
                "equity": s.equity,
                "returnPct": _pct(s.return_pct),
                "maxDrawdownPct": _pct(s.max_drawdown * 100),
                "score": _pct(sc) if rank_by != "equity" else _money(s.equity),
                "liquidations": s.liquidations,
                "adlHits": s.adl_hits,
                "fees": s.fees,
                "volume": s.volume,
            }
        )
    return out


def game_standings(
    results: dict[int, list[dict[str, Any]]],
    starts: dict[int, dict[int, int]],
    starting_balance: int,
    rank_by: str,
    label: Callable[[int], str],
) -> list[dict[str, Any]]:
    """The whole game's standings (see the module docstring) from `results` (round →
    its `standings` rows at its end) and `starts` (round → equity per account at its
    start; an account missing there joined during the round, with `starting_balance`).
    Rows as `standings` gives them. A round's max drawdown comes from its row, rounded
    to two decimals."""
    stats: dict[int, AccountStats] = {}
    for rnd in sorted(results):
        for row in results[rnd]:
            acct = row["account"]
            s = stats.setdefault(acct, AccountStats(start=starting_balance, peak=0))
            s.equity += row["equity"] - starts.get(rnd, {}).get(acct, starting_balance)
            s.max_drawdown = max(s.max_drawdown, Fraction(row["maxDrawdownPct"]) / 100)
            s.liquidations += row["liquidations"]
            s.adl_hits += row["adlHits"]
            s.fees += row["fees"]
            s.volume += row["volume"]
    for s in stats.values():
        s.equity += starting_balance  # s.equity held the profit
    return standings(Tracker({}, stats), rank_by, label)


def _pct(f: Fraction) -> str:
    """Two decimals, half away from zero (integer arithmetic on the exact fraction)."""
    num, den = f.numerator, f.denominator
    n = (200 * abs(num) + den) // (2 * den)  # round(|f| × 100), halves away from zero
    sign = "-" if num < 0 and n else ""
    return f"{sign}{n // 100}.{n % 100:02d}"


def _money(q: int) -> str:
    sign = "-" if q < 0 else ""
    q = abs(q)
    return f"{sign}{q // USDT_QUANTA}.{(q % USDT_QUANTA) // 10**6:02d}"
