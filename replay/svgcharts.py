"""The report's SVG charts: the hand-drawn fallback when plotly is not installed (equity;
price with mark, index and liquidation markers; cascade sizes; population liquidations by
leverage). Floats appear only as SVG coordinates, formatted to one decimal."""

from __future__ import annotations

import html
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exchange.core.numbers import MONEY_DECIMALS
from replay.recorder import Recorder, iso

Q = 10**MONEY_DECIMALS

__all__ = ["cascade_chart", "equity_chart", "population_chart", "price_chart"]

W, H = 900, 260
PAD_L, PAD_R, PAD_T, PAD_B = 70, 15, 15, 30


def _f(x: float) -> str:
    return f"{x:.1f}"


class _Axes:
    def __init__(self, x0: int, x1: int, y0: float, y1: float) -> None:
        self.x0, self.x1 = x0, max(x1, x0 + 1)
        if y1 <= y0:
            y0, y1 = y0 - 1, y1 + 1
        pad = (y1 - y0) * 0.05
        self.y0, self.y1 = y0 - pad, y1 + pad
        self.integer = False

    def x(self, t: int) -> float:
        return PAD_L + (t - self.x0) * (W - PAD_L - PAD_R) / (self.x1 - self.x0)

    def y(self, v: float) -> float:
        return PAD_T + (self.y1 - v) * (H - PAD_T - PAD_B) / (self.y1 - self.y0)

    def frame(self, label: str) -> list[str]:
        out = [
            f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" '
            f'height="{H - PAD_T - PAD_B}" fill="#fff" stroke="#ccc"/>'
        ]
        for i in range(5):
            v = self.y0 + (self.y1 - self.y0) * (i + 0.5) / 5
            if self.integer:
                v = round(v)
            y = self.y(v)
            out.append(
                f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{_f(y)}" y2="{_f(y)}" stroke="#eee"/>'
                f'<text x="{PAD_L - 5}" y="{_f(y + 4)}" text-anchor="end">{_num(v)}</text>'
            )
        for i in range(5):
            t = self.x0 + (self.x1 - self.x0) * i // 4
            x = self.x(t)
            anchor = ("start", "middle", "middle", "middle", "end")[i]
            out.append(
                f'<text x="{_f(x)}" y="{H - 10}" text-anchor="{anchor}">'
                f"{iso(t)[:16].replace('T', ' ')}</text>"
            )
        out.append(
            f'<text x="{PAD_L + 5}" y="{PAD_T + 14}" class="lbl">{html.escape(label)}</text>'
        )
        return out


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v:.0f}"
    return f"{v:.2f}"


def _thin(points: list[tuple[int, float]], buckets: int = 1200) -> list[tuple[int, float]]:
    """At most ~2 points per bucket (its min and max, in time order): keeps every spike."""
    if len(points) <= 2 * buckets:
        return points
    t0, t1 = points[0][0], points[-1][0]
    span = max(1, t1 - t0)
    out: list[tuple[int, float]] = []
    cur: list[tuple[int, float]] = []
    cur_b = -1
    for p in points:
        b = (p[0] - t0) * buckets // span
        if b != cur_b and cur:
            lo = min(cur, key=lambda q: q[1])
            hi = max(cur, key=lambda q: q[1])
            out.extend(sorted({lo, hi}))
            cur = []
        cur_b = b
        cur.append(p)
    if cur:
        lo = min(cur, key=lambda q: q[1])
        hi = max(cur, key=lambda q: q[1])
        out.extend(sorted({lo, hi}))
    return out


def _polyline(ax: _Axes, pts: list[tuple[int, float]], color: str, width: str = "1.2") -> str:
    coords = " ".join(f"{_f(ax.x(t))},{_f(ax.y(v))}" for t, v in pts)
    return f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{coords}"/>'


def _svg(body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%">'
        + "".join(body)
        + "</svg>"
    )


def _legend(items: list[tuple[str, str]]) -> str:
    return " ".join(
        f'<span class="key"><span style="background:{c}"></span>{html.escape(n)}</span>'
        for n, c in items
    )


def _price_chart(rec: Recorder, sym: str) -> str:
    inst = rec.instruments[sym]
    tick = float(Decimal(inst.tick_size))
    rows = [r for r in rec.prices if r[1] == sym]
    if not rows:
        return "<p>No prices were sampled.</p>"
    mark = _thin([(t, m * tick) for t, _, m, _, _ in rows if m])
    index = _thin([(t, i * tick) for t, _, _, i, _ in rows if i])
    liqs = [e for e in rec.liquidations if e.symbol == sym]
    vals = [v for _, v in mark + index] + [e.trigger_mark * tick for e in liqs]
    t0 = min([rows[0][0]] + [e.ts for e in liqs])
    t1 = max([rows[-1][0]] + [e.ts for e in liqs])
    ax = _Axes(t0, t1, min(vals), max(vals))
    body = ax.frame(f"{sym}: mark, index and liquidations")
    if index:
        body.append(_polyline(ax, index, "#9aa5b1", "2.2"))
    if mark:
        body.append(_polyline(ax, mark, "#1f4e9c"))
    for e in liqs:
        x, y = ax.x(e.ts), ax.y(e.trigger_mark * tick)
        if e.side == "LONG":
            body.append(
                f'<path d="M{_f(x - 4)},{_f(y - 4)}L{_f(x + 4)},{_f(y - 4)}L{_f(x)},{_f(y + 3)}Z" '
                f'fill="#d62728" opacity="0.7"/>'
            )
        else:
            body.append(
                f'<path d="M{_f(x - 4)},{_f(y + 4)}L{_f(x + 4)},{_f(y + 4)}L{_f(x)},{_f(y - 3)}Z" '
                f'fill="#2ca02c" opacity="0.7"/>'
            )
    legend = _legend(
        [
            ("mark", "#1f4e9c"),
            ("index", "#9aa5b1"),
            ("long liquidated", "#d62728"),
            ("short liquidated", "#2ca02c"),
        ]  # fmt: skip
    )
    return _svg(body) + f"<p>{legend}</p>"


def _equity_chart(rec: Recorder) -> str:
    if not rec.equity:
        return "<p>No subject account: no equity curve.</p>"
    colors = ["#1f4e9c", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    series: dict[int, list[tuple[int, float]]] = {}
    for ts, a, eq, _, _ in rec.equity:
        series.setdefault(a, []).append((ts, eq / Q))
    allv = [v for pts in series.values() for _, v in pts]
    allt = [t for pts in series.values() for t, _ in pts]
    ax = _Axes(min(allt), max(allt), min(allv), max(allv))
    body = ax.frame("equity (USDT)")
    keys = []
    for i, (a, pts) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        body.append(_polyline(ax, _thin(pts), c, "1.6"))
        keys.append((f"account {a}", c))
    return _svg(body) + f"<p>{_legend(keys)}</p>"


def _cascade_chart(rec: Recorder) -> str:
    cs = rec.cascades
    if not cs:
        return "<p>No cascade.</p>"
    t0, t1 = min(c.ts for c in cs), max(c.ts for c in cs)
    if rec.first_ts is not None:
        t0 = min(t0, rec.first_ts)
        t1 = max(t1, rec.last_ts)
    top = max(c.liquidations for c in cs)
    ax = _Axes(t0, t1, 0, top)
    ax.y0 = 0
    ax.integer = True
    body = ax.frame("liquidations per cascade")
    base = ax.y(0)
    for c in cs:
        x = ax.x(c.ts)
        y = ax.y(c.liquidations)
        color = "#d62728" if c.generations > 1 else "#ff9896"
        body.append(
            f'<rect x="{_f(x - 1.5)}" y="{_f(y)}" width="3" height="{_f(max(1.0, base - y))}" '
            f'fill="{color}"><title>cascade {c.cascade_id}: {c.liquidations} liquidations, '
            f"{c.generations} generation(s), {iso(c.ts)}</title></rect>"
        )
    legend = _legend([("one generation", "#ff9896"), ("feedback (2+ generations)", "#d62728")])
    return _svg(body) + f"<p>{legend}</p>"


def _population_chart(summary: Mapping[str, Any]) -> str:
    pop = summary.get("population")
    if not pop:
        return ""
    rows = sorted(pop.items(), key=lambda kv: int(kv[0]))
    bw = (W - PAD_L - PAD_R) / max(1, len(rows))
    top = max(r["accounts"] for _, r in rows) or 1
    body = [
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
        f'fill="#fff" stroke="#ccc"/>',
        f'<text x="{PAD_L + 5}" y="{PAD_T + 14}" class="lbl">population: accounts and '
        f"liquidated, by leverage</text>",
    ]
    inner = H - PAD_T - PAD_B - 40  # room for the title and the labels above the bars
    for i, (lev, r) in enumerate(rows):
        x = PAD_L + i * bw + bw * 0.2
        w = bw * 0.6
        h_all = inner * r["accounts"] / top
        h_liq = inner * r["liquidated"] / top
        yb = H - PAD_B
        body.append(
            f'<rect x="{_f(x)}" y="{_f(yb - h_all)}" width="{_f(w)}" height="{_f(h_all)}" '
            f'fill="#c6dbef"/>'
            f'<rect x="{_f(x)}" y="{_f(yb - h_liq)}" width="{_f(w)}" height="{_f(h_liq)}" '
            f'fill="#d62728"/>'
            f'<text x="{_f(x + w / 2)}" y="{H - 12}" text-anchor="middle">{lev}×</text>'
            f'<text x="{_f(x + w / 2)}" y="{_f(yb - h_all - 4)}" text-anchor="middle">'
            f"{r['liquidated']}/{r['accounts']}</text>"
        )
    legend = _legend([("accounts", "#c6dbef"), ("liquidated", "#d62728")])
    return _svg(body) + f"<p>{legend}</p>"


price_chart = _price_chart
equity_chart = _equity_chart
cascade_chart = _cascade_chart
population_chart = _population_chart
