"""The report's interactive charts (plotly, the `[analysis]` extra): zoom, hover, offline.

`figures(recorder, account)` returns plotly figures: per symbol the mark, index and last price
with the subject's entries and exits (▲ buy, ▼ sell) and its liquidation price as a line, and
the population's liquidations as markers; the subject's equity and drawdown; cascade sizes over
time; the population liquidated by leverage. `html(figures)` is the self-contained HTML of
them: plotly.min.js from the installed plotly package inlined once (no CDN, opens offline),
fixed element ids so the same run gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from replay.recorder import Recorder

__all__ = ["figures", "html"]

Q = 10**8


def _t(ts: Sequence[int]) -> list[Any]:
    import pandas as pd

    # to the microsecond: what a browser's Date holds, and plotly would drop the rest anyway
    return list(pd.to_datetime(list(ts), unit="ns", utc=True).floor("us"))


def _layout(fig: Any, title: str, ytitle: str) -> Any:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "y": 0.97},
        margin={"t": 60, "l": 70, "r": 20, "b": 40},
        height=380,
        hovermode="x unified",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        template="plotly_white",
    )
    fig.update_yaxes(title_text=ytitle, tickformat=",~r", nticks=8)
    fig.update_xaxes(nticks=10)
    return fig


def figures(rec: Recorder, account: int | None = None) -> list[Any]:
    import plotly.graph_objects as go

    out = []
    tick = {s: float(i.tick_size) for s, i in rec.instruments.items()}
    step = {s: float(i.step_size) for s, i in rec.instruments.items()}
    for sym in sorted({r[1] for r in rec.prices}):
        rows = [r for r in rec.prices if r[1] == sym]
        k = tick[sym]
        fig = go.Figure()
        t = _t([r[0] for r in rows])
        for i, (name, color) in enumerate((("mark", "#1f77b4"), ("index", "#888"), ("last", "#ff7f0e")), 2):  # fmt: skip
            fig.add_scatter(x=t, y=[r[i] * k if r[i] else None for r in rows], name=name,
                            mode="lines", line={"width": 1.2, "color": color})  # fmt: skip
        subj = [f for f in rec.fills if f[2] == sym and (account is None or f[1] == account)]
        for side, symbol, color in (("BUY", "triangle-up", "#2ca02c"), ("SELL", "triangle-down", "#d62728")):  # fmt: skip
            fs = [f for f in subj if f[4] == side]
            if fs:
                fig.add_scatter(x=_t([f[0] for f in fs]), y=[f[5] * k for f in fs], mode="markers",
                                name=f"{side.lower()} fills", marker={"symbol": symbol, "size": 9, "color": color},
                                text=[f"{f[6] * step[sym]:g} @ {f[5] * k:,.1f}" for f in fs])  # fmt: skip
        pos = [p for p in rec.positions if p[2] == sym and (account is None or p[1] == account)]
        accounts = sorted({p[1] for p in pos})
        for a in accounts:
            mine = [p for p in pos if p[1] == a]
            # one line a side, broken where the account holds the other side or nothing
            # (a long's and a short's liquidation prices lie on either side of the price);
            # each stretch is drawn up to the sample that ends it
            for sign, side, color in ((1, "long", "#9467bd"), (-1, "short", "#8c564b")):
                ts: list[int] = []
                y: list[float | None] = []
                held: float | None = None
                for p in mine:
                    v = p[7] * k if p[3] * sign > 0 and p[7] else None
                    if v is None and held is not None:
                        ts.append(p[0])
                        y.append(held)  # the stretch ends here
                    ts.append(p[0])
                    y.append(v)
                    held = v
                if any(v is not None for v in y):
                    who = "" if len(accounts) == 1 else f"account {a} "
                    fig.add_scatter(x=_t(ts), y=y, name=f"{who}liquidation price ({side})", mode="lines",
                                    line={"shape": "hv", "color": color, "width": 2})  # fmt: skip
        liqs = [e for e in rec.liquidations if e.symbol == sym]
        if liqs:
            fig.add_scatter(x=_t([e.ts for e in liqs]), y=[e.trigger_mark * k for e in liqs], mode="markers",
                            name="liquidations", marker={"symbol": "x", "size": 6, "color": "#000", "opacity": 0.6},
                            text=[f"{e.side} gen {e.generation} cascade {e.cascade_id}" for e in liqs])  # fmt: skip
        out.append(_layout(fig, f"{sym}: price, fills, liquidations", "price"))
    subjects = sorted(rec.subjects) if account is None else [account]
    for a in subjects:
        curve: dict[int, int] = {}
        for ts, acct, eq, _, _ in rec.equity:
            if acct == a:
                curve[ts] = eq
        if not curve:
            continue
        from plotly.subplots import make_subplots

        ts = list(curve)
        eq = [v / Q for v in curve.values()]
        peak, dd = float("-inf"), []
        for v in eq:
            peak = max(peak, v)
            dd.append(v / peak - 1.0 if peak > 0 else 0.0)
        fig = make_subplots(
            rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06
        )
        fig.add_scatter(x=_t(ts), y=eq, name="equity", mode="lines", row=1, col=1)
        fig.add_scatter(x=_t(ts), y=dd, name="drawdown", mode="lines", fill="tozeroy",
                        line={"color": "#d62728"}, row=2, col=1)  # fmt: skip
        _layout(fig, f"account {a}: equity and drawdown", "USDT")
        fig.update_yaxes(title_text="drawdown", tickformat=".1%", row=2, col=1)
        fig.update_layout(height=480)
        out.append(fig)
    if rec.cascades:
        fig = go.Figure()
        fig.add_bar(x=_t([c.ts for c in rec.cascades]), y=[c.liquidations for c in rec.cascades],
                    name="liquidations per cascade", text=[f"cascade {c.cascade_id}, {c.generations} generations" for c in rec.cascades])  # fmt: skip
        out.append(_layout(fig, "cascades", "liquidations"))
    if rec.population:
        by: dict[int, list[int]] = {}
        liquidated = {e.account for e in rec.liquidations}
        for a in rec.population:
            lev = rec.leverage.get(a)
            if lev is not None and a in rec.deposits:
                row = by.setdefault(lev, [0, 0])
                row[0] += 1
                row[1] += a in liquidated
        if by:
            levs = sorted(by)
            fig = go.Figure()
            fig.add_bar(x=[f"{v}x" for v in levs], y=[by[v][1] / by[v][0] for v in levs],
                        text=[f"{by[v][1]} of {by[v][0]}" for v in levs], name="liquidated")  # fmt: skip
            _layout(fig, "population liquidated, by leverage", "share")
            fig.update_yaxes(tickformat=".0%")
            out.append(fig)
    return out


def html(figs: Sequence[Any]) -> str:
    """The figures as HTML fragments, plotly.js inlined once (from the plotly package)."""
    parts = []
    for k, fig in enumerate(figs):
        parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=(k == 0),
                div_id=f"chart-{k}",
                config={"displaylogo": False, "responsive": True},
            )  # fmt: skip
        )
    return "".join(parts)
