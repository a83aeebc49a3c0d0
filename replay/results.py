"""A backtest's results as pandas DataFrames, its statistics, its charts.

`BacktestResult` (what `replay.inprocess.backtest` returns) holds the run and offers:

* DataFrames (pandas, the `[analysis]` extra): `fills()`, `orders()`, `positions()`,
  `equity()`, `prices()`, `liquidations()`, `cascades()`, `funding()` — times as UTC
  `Timestamp`s, prices and quantities as floats in the instrument's units, money in USDT;
* `stats(risk_free=0.0)`: a `pandas.Series` of the statistics defined in docs/backtest.md
  (every formula there; `compute_stats` is the same on any equity series and fills);
* `plot()`: the report's plotly figures (`replay.charts`), `report(folder)`: the report
  folder (CSV, summary.json, the interactive report.html).

The DataFrames and the statistics are views for people: floats are fine here. The run itself
(`result.run`: the player, the recorder, the exchange) stays integer-exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from exchange.core.numbers import MONEY_DECIMALS
from replay.recorder import Recorder

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BacktestResult", "Trade", "compute_stats", "round_trips", "YEAR_S"]

Q = 10**MONEY_DECIMALS
YEAR_S = 365 * 86400  # crypto perpetuals trade every day: a year is 365 days of seconds


def _pd() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "results as DataFrames need pandas: pip install 'margincall[analysis]'"
        ) from None
    return pandas


def _times(ts: Sequence[int]) -> Any:
    return _pd().to_datetime(list(ts), unit="ns", utc=True)


@dataclass(frozen=True)
class Trade:
    """One round trip: from a flat (or flipped) position back to flat (or the next flip)."""

    symbol: str
    side: str  # LONG | SHORT
    open_ts: int
    close_ts: int
    qty: int  # the largest size held, lots
    pnl: int  # realized PnL minus every fee of its fills, money quanta


def round_trips(fills: Sequence[tuple[Any, ...]], lot_value: dict[str, int]) -> list[Trade]:
    """Split one account's fills (report rows: ts, account, symbol, trade id, side, price,
    qty, role, fee, liquidation) into round trips. A fill that flips the position closes
    the trade (with its whole fee) and opens the next. Average-cost entry, exact integers."""
    out: list[Trade] = []
    state: dict[str, list[int]] = {}  # symbol -> [qty, cost, pnl, open_ts, peak]
    for ts, _a, sym, _tid, side, price, qty, _role, fee, _liq in fills:
        lv = lot_value[sym]
        st = state.setdefault(sym, [0, 0, 0, ts, 0])
        signed = qty if side == "BUY" else -qty
        pos, cost = st[0], st[1]
        st[2] -= fee
        if pos == 0 or (pos > 0) == (signed > 0):
            if pos == 0:
                st[3] = ts
            st[0] = pos + signed
            st[1] = cost + signed * price * lv
            st[4] = max(st[4], abs(st[0]))
            continue
        closed = min(abs(signed), abs(pos))
        entry_part = cost * closed // abs(pos)  # cost share of the closed lots
        sgn = 1 if pos > 0 else -1
        st[2] += sgn * closed * price * lv - entry_part
        st[0] = pos + signed
        st[1] = cost - entry_part
        if st[0] == 0 or (st[0] > 0) != (pos > 0):
            out.append(Trade(sym, "LONG" if pos > 0 else "SHORT", st[3], ts, st[4], st[2]))
            left = st[0]
            st[1] = left * price * lv
            st[2] = 0
            st[3] = ts
            st[4] = abs(left)
    return out


def compute_stats(
    times: Sequence[int],
    equity: Sequence[float],
    trades: Sequence[Trade] = (),
    *,
    deposit: float | None = None,
    exposure_ns: int = 0,
    fees: float = 0.0,
    funding: float = 0.0,
    liquidations: int = 0,
    adl: int = 0,
    risk_free: float = 0.0,
    periods_per_year: float | None = None,
) -> dict[str, float | int]:
    """The statistics of docs/backtest.md from an equity series sampled at `times` (ns)
    and the round trips. `risk_free` is an annual rate; `periods_per_year` defaults to a
    year (365 days) over the median sampling interval."""
    n = len(equity)
    if n < 2:
        raise ValueError("statistics need an equity curve of at least two samples")
    e0 = float(deposit) if deposit is not None else float(equity[0])
    curve = [e0, *[float(x) for x in equity]] if deposit is not None else list(map(float, equity))
    ts = [times[0], *times] if deposit is not None else list(times)
    span_s = (ts[-1] - ts[0]) / 1e9
    rets = [curve[i] / curve[i - 1] - 1.0 for i in range(1, len(curve))]
    if periods_per_year is None:
        steps = sorted(ts[i] - ts[i - 1] for i in range(1, len(ts)) if ts[i] > ts[i - 1])
        dt = steps[len(steps) // 2] / 1e9 if steps else 1.0
        periods_per_year = YEAR_S / dt
    ppy = periods_per_year
    rf = (1.0 + risk_free) ** (1.0 / ppy) - 1.0
    m = len(rets)
    mean = sum(rets) / m
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / (m - 1)) if m > 1 else 0.0
    down = math.sqrt(sum(min(0.0, r - rf) ** 2 for r in rets) / m)
    total = curve[-1] / curve[0] - 1.0
    years = span_s / YEAR_S
    cagr = (1.0 + total) ** (1.0 / years) - 1.0 if years > 0 and total > -1.0 else -1.0
    peak, peak_t, mdd, dd_len, longest = curve[0], ts[0], 0.0, 0, 0
    for t, x in zip(ts, curve, strict=True):
        if x >= peak:
            peak, peak_t = x, t
            dd_len = 0
        else:
            mdd = max(mdd, 1.0 - x / peak)
            dd_len = t - peak_t
            longest = max(longest, dd_len)
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl <= 0]
    nan = float("nan")
    return {
        "total_return": total,
        "annual_return": cagr,
        "volatility": sd * math.sqrt(ppy),
        "sharpe": (mean - rf) / sd * math.sqrt(ppy) if sd > 0 else nan,
        "sortino": (mean - rf) / down * math.sqrt(ppy) if down > 0 else nan,
        "calmar": cagr / mdd if mdd > 0 else nan,
        "max_drawdown": mdd,
        "max_drawdown_duration_s": longest / 1e9,
        "trades": len(trades),
        "win_rate": len(wins) / len(trades) if trades else nan,
        "profit_factor": sum(wins) / -sum(losses) if losses and sum(losses) < 0 else nan,
        "avg_trade": sum(t.pnl for t in trades) / len(trades) / Q if trades else nan,
        "exposure": exposure_ns / (ts[-1] - ts[0]) if ts[-1] > ts[0] else 0.0,
        "fees": fees,
        "funding": funding,
        "liquidations": liquidations,
        "adl_hits": adl,
        "periods_per_year": ppy,
        "risk_free": risk_free,
    }


class Run(Protocol):
    """What a result is made from: `replay.inprocess.InprocessRun` (declared here by its
    shape, so this module does not depend on the one that builds it)."""

    recorder: Recorder
    strategy: Any
    strategy_account: int | None
    state_hash: str
    warnings: list[str]


class BacktestResult:
    """See the module docstring. `run` is the `replay.inprocess.InprocessRun`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.recorder = run.recorder
        self.account = run.strategy_account
        self.state_hash = run.state_hash
        self.warnings = run.warnings
        self.strategy = run.strategy
        insts = run.recorder.instruments
        self._tick = {s: float(i.tick_size) for s, i in insts.items()}
        self._step = {s: float(i.step_size) for s, i in insts.items()}

    def __repr__(self) -> str:
        r = self.recorder
        return (
            f"<BacktestResult account={self.account} fills={len(r.fills)} "
            f"liquidations={len(r.liquidations)} state_hash={self.state_hash[:12]}>"
        )

    # -- helpers

    def _curve(self, a: int | None) -> list[tuple[int, int, int, int]]:
        """(ts, equity, wallet, uPnL) of account `a`, one per time (the last sample wins:
        the final sample may repeat the last step's time)."""
        rows: dict[int, tuple[int, int, int, int]] = {}
        for t, acct, eq, wallet, upnl in self.recorder.equity:
            if acct == a:
                rows[t] = (t, eq, wallet, upnl)
        return list(rows.values())

    def _inst(self, sym: str) -> Any:
        return self.recorder.instruments[sym]

    def _price(self, sym: str, ticks: int) -> float:
        return ticks * self._tick[sym] if ticks else math.nan

    def _qty(self, sym: str, lots: int) -> float:
        return lots * self._step[sym]

    # -- DataFrames

    def fills(self) -> pd.DataFrame:
        rows = self.recorder.fills
        pd_ = _pd()
        df = pd_.DataFrame(
            {
                "account": [r[1] for r in rows],
                "symbol": [r[2] for r in rows],
                "trade_id": [r[3] for r in rows],
                "side": [r[4] for r in rows],
                "price": [self._price(r[2], r[5]) for r in rows],
                "qty": [self._qty(r[2], r[6]) for r in rows],
                "role": [r[7] for r in rows],
                "fee": [r[8] / Q for r in rows],
                "liquidation": [bool(r[9]) for r in rows],
            },
            index=_times([r[0] for r in rows]),
        )
        df.index.name = "time"
        return df

    def orders(self) -> pd.DataFrame:
        rows = self.recorder.orders
        df = _pd().DataFrame(
            {
                "account": [r[1] for r in rows],
                "symbol": [r[2] for r in rows],
                "order_id": [r[3] for r in rows],
                "client_id": [r[4] for r in rows],
                "side": [r[5] for r in rows],
                "type": [r[6] for r in rows],
                "time_in_force": [r[7] for r in rows],
                "price": [self._price(r[2], r[8]) for r in rows],
                "qty": [self._qty(r[2], r[9]) for r in rows],
                "stop_price": [self._price(r[2], r[10]) for r in rows],
                "reduce_only": [r[11] for r in rows],
            },
            index=_times([r[0] for r in rows]),
        )
        df.index.name = "time"
        return df

    def positions(self) -> pd.DataFrame:
        rows = self.recorder.positions
        df = _pd().DataFrame(
            {
                "account": [r[1] for r in rows],
                "symbol": [r[2] for r in rows],
                "qty": [self._qty(r[2], r[3]) for r in rows],
                "entry_price": [
                    r[4] / (r[3] * self._inst(r[2]).lot_value) * self._tick[r[2]]
                    if r[3]
                    else math.nan
                    for r in rows
                ],
                "isolated_margin": [r[5] / Q for r in rows],
                "leverage": [r[6] for r in rows],
                "liquidation_price": [self._price(r[2], r[7]) for r in rows],
                "bankruptcy_price": [self._price(r[2], r[8]) for r in rows],
                "realized_pnl": [r[9] / Q for r in rows],
            },
            index=_times([r[0] for r in rows]),
        )
        df.index.name = "time"
        return df

    def equity(self, account: int | None = None) -> pd.DataFrame:
        a = self.account if account is None else account
        rows = self._curve(a)
        df = _pd().DataFrame(
            {
                "equity": [r[1] / Q for r in rows],
                "wallet": [r[2] / Q for r in rows],
                "unrealized_pnl": [r[3] / Q for r in rows],
            },
            index=_times([r[0] for r in rows]),
        )
        peak = df["equity"].cummax()
        df["drawdown"] = df["equity"] / peak - 1.0
        df.index.name = "time"
        return df

    def prices(self) -> pd.DataFrame:
        rows = self.recorder.prices
        df = _pd().DataFrame(
            {
                "symbol": [r[1] for r in rows],
                "mark": [self._price(r[1], r[2]) for r in rows],
                "index": [self._price(r[1], r[3]) for r in rows],
                "last": [self._price(r[1], r[4]) for r in rows],
            },
            index=_times([r[0] for r in rows]),
        )
        df.index.name = "time"
        return df

    def liquidations(self) -> pd.DataFrame:
        rec = self.recorder
        evs = rec.liquidations
        pop = rec.population

        def who(a: int) -> str:
            return "population" if a in pop else "subject" if a in rec.subjects else "other"

        df = _pd().DataFrame(
            {
                "liquidation_id": [e.liquidation_id for e in evs],
                "cascade_id": [e.cascade_id for e in evs],
                "generation": [e.generation for e in evs],
                "parent_id": [e.parent_id for e in evs],
                "account": [e.account for e in evs],
                "who": [who(e.account) for e in evs],
                "symbol": [e.symbol for e in evs],
                "side": [e.side for e in evs],
                "qty": [self._qty(e.symbol, e.qty) for e in evs],
                "trigger_mark": [self._price(e.symbol, e.trigger_mark) for e in evs],
                "liquidation_price": [self._price(e.symbol, e.liquidation_price) for e in evs],
                "bankruptcy_price": [self._price(e.symbol, e.bankruptcy_price) for e in evs],
                "filled_qty": [self._qty(e.symbol, e.filled_qty) for e in evs],
                "fund_takeover_qty": [self._qty(e.symbol, e.fund_takeover_qty) for e in evs],
                "adl_qty": [self._qty(e.symbol, e.adl_qty) for e in evs],
                "leverage": [rec.leverage.get(e.account) for e in evs],
            },
            index=_times([e.ts for e in evs]),
        )
        df.index.name = "time"
        return df

    def cascades(self) -> pd.DataFrame:
        evs = self.recorder.cascades
        df = _pd().DataFrame(
            {
                "cascade_id": [e.cascade_id for e in evs],
                "symbol": [e.symbol for e in evs],
                "liquidations": [e.liquidations for e in evs],
                "volume": [self._qty(e.symbol, e.volume) for e in evs],
                "generations": [e.generations for e in evs],
                "adl_count": [e.adl_count for e in evs],
                "insurance_before": [e.insurance_before / Q for e in evs],
                "insurance_after": [e.insurance_after / Q for e in evs],
            },
            index=_times([e.ts for e in evs]),
        )
        df.index.name = "time"
        return df

    def funding(self) -> pd.DataFrame:
        evs = self.recorder.funding
        df = _pd().DataFrame(
            {
                "symbol": [e.symbol for e in evs],
                "rate": [e.rate / 10**8 for e in evs],
                "funding_ts": _times([e.funding_ts for e in evs]),
                "total": [e.total / Q for e in evs],
            },
            index=_times([e.ts for e in evs]),
        )
        df.index.name = "time"
        return df

    # -- statistics

    def trades(self, account: int | None = None) -> list[Trade]:
        a = self.account if account is None else account
        lv = {s: i.lot_value for s, i in self.recorder.instruments.items()}
        return round_trips([f for f in self.recorder.fills if f[1] == a], lv)

    def stats(self, risk_free: float = 0.0, account: int | None = None) -> pd.Series:
        """The statistics of docs/backtest.md, as a `pandas.Series`."""
        rec = self.recorder
        a = self.account if account is None else account
        if a is None:
            raise ValueError("no strategy account in this run: stats() needs a subject")
        curve = [(t, eq) for t, eq, _, _ in self._curve(a)]
        exposure = 0
        open_since: dict[str, int] = {}
        for r in rec.positions:
            if r[1] != a:
                continue
            sym, qty, t = r[2], r[3], r[0]
            if qty and sym not in open_since:
                open_since[sym] = t
            elif not qty and sym in open_since:
                exposure += t - open_since.pop(sym)
        end = curve[-1][0] if curve else 0
        exposure += sum(end - t for t in open_since.values())
        s = compute_stats(
            [t for t, _ in curve],
            [eq / Q for _, eq in curve],
            self.trades(a),
            deposit=rec.deposits.get(a, 0) / Q or None,
            exposure_ns=exposure,
            fees=rec.fees.get(a, 0) / Q,
            funding=rec.funding_paid.get(a, 0) / Q,
            liquidations=sum(1 for e in rec.liquidations if e.account == a),
            adl=sum(1 for e in rec.adl if e.account == a),
            risk_free=risk_free,
        )
        return _pd().Series(s, name=f"account {a}")

    # -- charts and report

    def plot(self) -> Any:
        """The report's charts as plotly figures (a list; each shows itself in a notebook)."""
        from replay.charts import figures

        return figures(self.recorder, self.account)

    def report(self, folder: str | Path, title: str = "margincall backtest") -> dict[str, Any]:
        from replay.report import write_report

        return write_report(folder, self.recorder, title=title)
