"""The backtest report: CSV files and one self-contained HTML page with plots.

`Recorder` (replay/recorder.py) takes every batch of core events (`recorder.record(events)`) and, at step closes,
samples prices and the subjects' equity (`recorder.sample(ts, exchange)`, at most once per
`sample_ns` of replay time). `write_report(folder, recorder, ...)` then writes:

| file | rows |
|---|---|
| `fills.csv` | every fill with a subject account on either side (or, without subjects, every fill not between two replay-owned sides) |
| `positions.csv` | every position change of a subject account (without subjects: of every account but the replay account) |
| `equity.csv` | sampled equity of each subject: wallet + Σ (isolated margin + unrealized PnL) |
| `prices.csv` | sampled mark, index and last price per symbol |
| `liquidations.csv` | every liquidation (population, subjects, anyone) |
| `cascades.csv` | every cascade summary |
| `funding.csv` | every funding settlement |
| `summary.json` | the statistics shown in the HTML page |
| `report.html` | summary tables and plots (plotly, or the inline SVG of `replay.svgcharts` without it): equity; price with mark, index and liquidation markers; cascade sizes; population liquidations by leverage |

Everything is derived from engine events and state, never from wall time: the same command
stream gives byte-identical files. Money is formatted from integers (`exchange.units`);
floats appear only as SVG coordinates, formatted to one decimal.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from exchange.core.instruments import Instrument
from exchange.core.numbers import MONEY_DECIMALS
from exchange.units import lots_to_str, quanta_to_str, rate_to_str, ticks_to_str
from replay.recorder import Recorder, iso
from replay.svgcharts import cascade_chart, equity_chart, population_chart, price_chart

__all__ = ["Recorder", "write_report", "iso"]

Q = 10**MONEY_DECIMALS


# ---------------------------------------------------------------------- CSV


def _csv(rows: Iterable[Iterable[Any]], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _pct(num: int, den: int, places: int = 2) -> str:
    if den == 0:
        return "-"
    q = (Decimal(num) * 100 / Decimal(den)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    return f"{q}%"


def _entry(inst: Instrument, cost: int, qty: int) -> str:
    if not qty:
        return ""
    from fractions import Fraction

    frac = Fraction(abs(cost), abs(qty) * inst.lot_value)
    return _fraction_price(inst, frac)


def _fraction_price(inst: Instrument, frac: Any) -> str:
    from exchange.units import fraction_ticks_to_str

    return fraction_ticks_to_str(inst, frac, 2)


def _tables(rec: Recorder) -> dict[str, str]:
    inst = rec.instruments

    def px(sym: str, t: int) -> str:
        return ticks_to_str(inst[sym], t) if t else ""

    def qty(sym: str, n: int) -> str:
        return lots_to_str(inst[sym], n)

    fills = _csv(
        (
            (
                iso(ts),
                ts,
                a,
                sym,
                tid,
                side,
                px(sym, p),
                qty(sym, q),
                role,
                quanta_to_str(fee),
                "true" if liq else "false",
            )  # fmt: skip
            for ts, a, sym, tid, side, p, q, role, fee, liq in rec.fills
        ),
        [
            "time",
            "ts",
            "account",
            "symbol",
            "trade_id",
            "side",
            "price",
            "qty",
            "role",
            "fee",
            "liquidation",
        ],  # fmt: skip
    )
    positions = _csv(
        (
            (
                iso(ts),
                ts,
                a,
                sym,
                qty(sym, q),
                _entry(inst[sym], cost, q),
                quanta_to_str(margin),
                lev,
                px(sym, lp),
                px(sym, bk),
                quanta_to_str(realized),
            )  # fmt: skip
            for ts, a, sym, q, cost, margin, lev, lp, bk, realized in rec.positions
        ),
        [
            "time",
            "ts",
            "account",
            "symbol",
            "qty",
            "entry_price",
            "isolated_margin",
            "leverage",
            "liquidation_price",
            "bankruptcy_price",
            "realized_pnl",
        ],  # fmt: skip
    )
    equity = _csv(
        (
            (iso(ts), ts, a, quanta_to_str(eq), quanta_to_str(w), quanta_to_str(u))
            for ts, a, eq, w, u in rec.equity
        ),
        ["time", "ts", "account", "equity", "wallet", "unrealized_pnl"],
    )
    prices = _csv(
        (
            (iso(ts), ts, sym, px(sym, m), px(sym, i), px(sym, la))
            for ts, sym, m, i, la in rec.prices
        ),
        ["time", "ts", "symbol", "mark", "index", "last"],
    )
    liqs = _csv(
        (
            (
                iso(e.ts),
                e.ts,
                e.liquidation_id,
                e.cascade_id,
                e.generation,
                "" if e.parent_id is None else e.parent_id,
                e.account,
                "population"
                if e.account in rec.population
                else ("subject" if e.account in rec.subjects else "other"),
                e.symbol,
                e.side,
                qty(e.symbol, e.qty),
                rec.leverage.get(e.account, ""),
                px(e.symbol, e.trigger_mark),
                px(e.symbol, e.liquidation_price),
                px(e.symbol, e.bankruptcy_price),
                qty(e.symbol, e.filled_qty),
                qty(e.symbol, e.fund_takeover_qty),
                qty(e.symbol, e.adl_qty),
                quanta_to_str(e.insurance_delta),
            )  # fmt: skip
            for e in rec.liquidations
        ),
        [
            "time",
            "ts",
            "liquidation_id",
            "cascade_id",
            "generation",
            "parent_id",
            "account",
            "who",
            "symbol",
            "side",
            "qty",
            "leverage",
            "trigger_mark",
            "liquidation_price",
            "bankruptcy_price",
            "filled_qty",
            "fund_takeover_qty",
            "adl_qty",
            "insurance_delta",
        ],  # fmt: skip
    )
    cascades = _csv(
        (
            (
                iso(c.ts),
                c.ts,
                c.cascade_id,
                c.symbol,
                c.liquidations,
                qty(c.symbol, c.volume),
                c.generations,
                " ".join(px(c.symbol, p) for p in c.price_path),
                quanta_to_str(c.insurance_before),
                quanta_to_str(c.insurance_after),
                c.adl_count,
                "true" if c.truncated else "false",
            )  # fmt: skip
            for c in rec.cascades
        ),
        [
            "time",
            "ts",
            "cascade_id",
            "symbol",
            "liquidations",
            "volume",
            "generations",
            "price_path",
            "insurance_before",
            "insurance_after",
            "adl_count",
            "truncated",
        ],  # fmt: skip
    )
    funding = _csv(
        (
            (
                iso(f.ts),
                f.ts,
                f.symbol,
                rate_to_str(f.rate),
                iso(f.funding_ts),
                quanta_to_str(f.total),
            )  # fmt: skip
            for f in rec.funding
        ),
        ["time", "ts", "symbol", "rate", "funding_time", "total_paid"],
    )
    return {
        "fills.csv": fills,
        "positions.csv": positions,
        "equity.csv": equity,
        "prices.csv": prices,
        "liquidations.csv": liqs,
        "cascades.csv": cascades,
        "funding.csv": funding,
    }


# ---------------------------------------------------------------------- statistics


def summarize(rec: Recorder, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report's statistics (all text or integers: deterministic JSON)."""
    out: dict[str, Any] = {"meta": dict(meta or {})}
    first, last = rec.first_ts, rec.last_ts
    out["period"] = {
        "start": iso(first) if first is not None else None,
        "end": iso(last) if first is not None else None,
        "core_events": rec.events,
    }
    subjects = {}
    for a in sorted(rec.subjects):
        curve = [eq for _, acct, eq, _, _ in rec.equity if acct == a]
        start = rec.deposits.get(a, curve[0] if curve else 0)
        end = curve[-1] if curve else start
        peak, dd = start, 0
        dd_base = 1
        for eq in curve:
            if eq > peak:
                peak = eq
            if peak > 0 and (peak - eq) * dd_base > dd * peak:
                dd, dd_base = peak - eq, peak
        fills = [f for f in rec.fills if f[1] == a]
        volume = sum(f[5] * f[6] * rec.instruments[f[2]].lot_value for f in fills)
        subjects[str(a)] = {
            "deposit": quanta_to_str(start),
            "final_equity": quanta_to_str(end),
            "pnl": quanta_to_str(end - start),
            "return": _pct(end - start, start),
            "max_drawdown": _pct(dd, dd_base) if dd else "0.00%",
            "fills": len(fills),
            "volume": quanta_to_str(volume),
            "fees": quanta_to_str(rec.fees.get(a, 0)),
            "funding": quanta_to_str(rec.funding_paid.get(a, 0)),
            "liquidations": sum(1 for e in rec.liquidations if e.account == a),
        }
    out["subjects"] = subjects
    marks = [m for _, _, m, _, _ in rec.prices if m]
    sym = rec.prices[0][1] if rec.prices else None
    if sym is not None and marks:
        inst = rec.instruments[sym]
        out["market"] = {
            "symbol": sym,
            "first_mark": ticks_to_str(inst, marks[0]),
            "last_mark": ticks_to_str(inst, marks[-1]),
            "min_mark": ticks_to_str(inst, min(marks)),
            "max_mark": ticks_to_str(inst, max(marks)),
            "change": _pct(marks[-1] - marks[0], marks[0]),
        }
    liqs = rec.liquidations
    biggest = max(rec.cascades, key=lambda c: (c.liquidations, -c.cascade_id), default=None)
    out["liquidations"] = {
        "count": len(liqs),
        "population": sum(1 for e in liqs if e.account in rec.population),
        "cascades": len(rec.cascades),
        "largest_cascade": biggest.liquidations if biggest else 0,
        "largest_cascade_at": iso(biggest.ts) if biggest else None,
        "deepest_generation": max((e.generation for e in liqs), default=0),
        "filled_in_book": sum(1 for e in liqs if e.filled_qty == e.qty),
        "fund_takeovers": sum(1 for e in liqs if e.fund_takeover_qty),
        "adl": sum(1 for e in liqs if e.adl_qty),
        "insurance_fund_end": quanta_to_str(rec.insurance[-1][1]) if rec.insurance else "0",
    }
    if rec.population:
        by_lev: dict[int, list[int]] = {}
        liquidated = {e.account for e in liqs}
        for a in rec.population:
            lev = rec.leverage.get(a)
            if lev is None or a not in rec.deposits:
                continue
            row = by_lev.setdefault(lev, [0, 0])
            row[0] += 1
            row[1] += a in liquidated
        out["population"] = {
            str(lev): {"accounts": n, "liquidated": k, "share": _pct(k, n, 1)}
            for lev, (n, k) in sorted(by_lev.items())
        }
    return out


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k).replace('_', ' '))}</th>"
        f'<td class="n">{html.escape(str(v))}</td></tr>'
        for k, v in d.items()
    )
    return f"<table>{rows}</table>"


def _plotly_charts(rec: Recorder) -> str | None:
    """The interactive plotly charts (replay.charts), or None when plotly is absent."""
    try:
        import pandas  # noqa: F401
        import plotly  # noqa: F401
    except ImportError:
        return None
    from replay.charts import figures
    from replay.charts import html as charts_html

    return charts_html(figures(rec))


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:960px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg text{font-size:11px;fill:#555}svg text.lbl{font-size:12px;fill:#222;font-weight:600}
.key{margin-right:1.2em}.key span{display:inline-block;width:12px;height:12px;margin-right:4px;
vertical-align:-1px}.muted{color:#777}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:150px}
.card b{display:block;font-size:1.3em}
"""


def _html(summary: Mapping[str, Any], rec: Recorder, title: str) -> str:
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    period = summary["period"]
    parts.append(
        f'<p class="muted">{html.escape(str(period["start"]))} → {html.escape(str(period["end"]))}'
        f" · {period['core_events']} core events</p>"
    )
    cards = []
    for a, s in summary["subjects"].items():
        cards.append(
            f'<div class="card">account {a}<b>{s["return"]}</b>equity {s["final_equity"]} USDT'
            f"<br>max drawdown {s['max_drawdown']}</div>"
        )
    lq = summary["liquidations"]
    cards.append(
        f'<div class="card">liquidations<b>{lq["count"]}</b>in {lq["cascades"]} cascades'
        f"<br>largest {lq['largest_cascade']}</div>"
    )
    if "market" in summary:
        m = summary["market"]
        cards.append(
            f'<div class="card">{m["symbol"]} mark<b>{m["change"]}</b>'
            f"{m['first_mark']} → {m['last_mark']}</div>"
        )
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    interactive = _plotly_charts(rec)
    if interactive is not None:
        parts.append(interactive)
    else:  # without plotly (the [analysis] extra): the static SVG charts
        if rec.subjects:
            parts.append("<h2>Equity</h2>" + equity_chart(rec))
        for sym in sorted({r[1] for r in rec.prices}):
            parts.append(f"<h2>{html.escape(sym)}</h2>" + price_chart(rec, sym))
        parts.append("<h2>Cascades</h2>" + cascade_chart(rec))
        pop = population_chart(summary)
        if pop:
            parts.append("<h2>Population</h2>" + pop)
    parts.append("<h2>Statistics</h2>")
    for a, s in summary["subjects"].items():
        parts.append(f"<h3>Account {a}</h3>" + _kv_table(s))
    if "market" in summary:
        parts.append("<h3>Market</h3>" + _kv_table(summary["market"]))
    parts.append("<h3>Liquidations</h3>" + _kv_table(lq))
    if summary.get("population"):
        rows = "".join(
            f'<tr><td class="n">{lev}×</td><td class="n">{r["accounts"]}</td>'
            f'<td class="n">{r["liquidated"]}</td><td class="n">{r["share"]}</td></tr>'
            for lev, r in sorted(summary["population"].items(), key=lambda kv: int(kv[0]))
        )
        parts.append(
            "<h3>Population by leverage</h3><table><tr><th>leverage</th><th>accounts</th>"
            f"<th>liquidated</th><th>share</th></tr>{rows}</table>"
        )
    if summary.get("meta"):
        parts.append("<h3>Run</h3>" + _kv_table(summary["meta"]))
    parts.append(
        '<p class="muted">Data behind every plot: fills.csv, positions.csv, equity.csv, '
        "prices.csv, liquidations.csv, cascades.csv, funding.csv, summary.json.</p>"
    )
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(
    folder: str | Path,
    rec: Recorder,
    *,
    meta: Mapping[str, Any] | None = None,
    title: str = "margincall backtest",
) -> dict[str, Any]:
    """Write the report folder (created if needed); returns the summary."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in _tables(rec).items():
        (out / name).write_text(text, encoding="utf-8", newline="")
    summary = summarize(rec, meta)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out / "report.html").write_text(_html(summary, rec, title), encoding="utf-8")
    return summary
