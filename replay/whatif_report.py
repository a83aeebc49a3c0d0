"""The what-if report page: the branches' table and their mark paths overlaid (plotly,
inlined once by `replay.charts.html`, so the page opens offline). `result` is a
`replay.whatif.WhatIf` (not imported: that module calls this one)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from replay.report import CSS

__all__ = ["mark_figure", "write_report"]

# a branch's row has a column per figure: the table scrolls inside the page, not the page
_SCROLL = ".scroll{overflow-x:auto;max-width:100%}.scroll table{white-space:nowrap}"


def mark_figure(result: Any) -> Any:
    """One plotly figure: every branch's mark path from the fork, as steps."""
    import plotly.graph_objects as go

    from replay.charts import _layout, _t

    fig = go.Figure()
    for b in result.branches:
        inst = b.exchange.instruments[b.symbol]
        tick = float(inst.tick_size)
        path = b.mark_path()
        fig.add_scatter(
            x=_t([t for t, _ in path]),
            y=[m * tick for _, m in path],
            name=b.variation.label,
            mode="lines",
            line={"shape": "hv", "width": 1.4},
        )
    return _layout(fig, f"{result.symbol}: the mark from the fork, per branch", "mark")


def write_report(result: Any, folder: Path) -> Path:
    """Write `whatif.csv` and `report.html` into `folder` (created); the page's path."""
    from replay.charts import html as charts_html

    folder.mkdir(parents=True, exist_ok=True)
    table = result.table()
    table.to_csv(folder / "whatif.csv", index=False)
    title = f"what if: cascade {result.cascade_id} on {result.symbol}"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns if c != "state_hash")
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{html.escape(str(v))}</td>' for c, v in row.items() if c != "state_hash"
        )
        + "</tr>"
        for _, row in table.iterrows()
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}{_SCROLL}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="muted">forked before command {result.fork_index} of the session; '
        "every branch is fed the same commands from there</p>"
        f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>'
        + charts_html([mark_figure(result)])
        + '<p class="muted">Data: whatif.csv.</p></body></html>\n'
    )
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
