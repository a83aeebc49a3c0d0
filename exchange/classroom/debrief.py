"""The debrief: what happened in each round, for the class to look at afterwards.

`debrief_data(records, game)` turns the game journal into one JSON document per game:
per round the price path (mark, index, last as sampled), every cascade with who was
in it, every student's equity curve, every liquidation they suffered with the mark
that triggered it, and the final leaderboard; and the standings over the whole game
(`leaderboard.game_standings`, as the console shows them at game over).
`debrief_html(data)` is the report page: charts drawn by plotly.js (the copy inside the
`plotly` Python package: nothing is fetched from the internet), the data in a JSON
block and drawn by `debrief.js` (no inline script, so the app's Content-Security-Policy holds; a classic script, not a module,
because browsers refuse module scripts from `file://`). `write_debrief(folder, data)`
writes the page with its two scripts beside it: a folder that opens offline.

`export_table(...)` gives trades, orders, positions, liquidations or the leaderboard
of one round as CSV or Parquet (pandas), in decimal units, with each account's name.
"""

from __future__ import annotations

import html
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from .gamefile import Game
from .leaderboard import game_standings

STATIC = Path(__file__).resolve().parent / "static"
TABLES = ("trades", "orders", "positions", "liquidations", "leaderboard")
QUANTA = Decimal(10**8)


class ExportError(ValueError):
    pass


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _names(records: list[dict[str, Any]]) -> dict[int, str]:
    names: dict[int, list[str]] = {}
    teams: dict[int, str] = {}
    for r in records:
        if r["kind"] == "joined":
            names.setdefault(r["account"], []).append(r["nickname"])
            if r.get("team"):
                teams[r["account"]] = f"Team {r['team']}"
    return {a: teams.get(a, ", ".join(n)) for a, n in names.items()}


def debrief_data(records: list[dict[str, Any]], game: Game) -> dict[str, Any]:
    tick = {i.symbol: Decimal(i.tick_size) for i in game.instruments}
    step = {i.symbol: Decimal(i.step_size) for i in game.instruments}
    names = _names(records)
    rounds: dict[int, dict[str, Any]] = {}

    def rnd(i: int) -> dict[str, Any]:
        if i not in rounds:
            spec = game.rounds[i] if 0 <= i < len(game.rounds) else None
            rounds[i] = {
                "round": i + 1,
                "name": spec.name if spec else f"Round {i + 1}",
                "symbol": spec.scenario.symbol if spec else game.symbols()[0],
                "prices": {"ts": [], "mark": [], "index": [], "last": []},
                "curves": {},
                "liquidations": [],
                "cascades": {},
                "headlines": [],
                "leaderboard": [],
            }
        return rounds[i]

    def px(sym: str, ticks: int) -> float:
        return float(ticks * tick.get(sym, Decimal(1)))

    for r in records:
        k = r["kind"]
        i = r.get("round", -1)
        if k == "sample" and i >= 0:
            d = rnd(i)
            sym = d["symbol"]
            mark, index, last = r["marks"].get(sym, [0, 0, 0])
            p = d["prices"]
            p["ts"].append(r["ts"] // 10**6)
            p["mark"].append(px(sym, mark))
            p["index"].append(px(sym, index))
            p["last"].append(px(sym, last) if last else None)
            for a, eq in r["equity"].items():
                c = d["curves"].setdefault(int(a), {"ts": [], "equity": []})
                c["ts"].append(r["ts"] // 10**6)
                c["equity"].append(float(Decimal(eq) / QUANTA))
        elif k == "liquidation" and i >= 0:
            d = rnd(i)
            row = {
                "ts": r["ts"] // 10**6,
                "account": r["account"],
                "name": names.get(r["account"], "bot" if not r["student"] else str(r["account"])),
                "student": r["student"],
                "side": r["side"],
                "qty": str(r["qty"] * step.get(r["symbol"], Decimal(1))),
                "triggerMark": px(r["symbol"], r["trigger_mark"]),
                "bankruptcyPrice": px(r["symbol"], r["bankruptcy_price"]),
                "cascade": r["cascade"],
                "generation": r["generation"],
                "closedBy": "book" if r["filled"] == r["qty"] else ("ADL" if r["adl"] else "fund"),
            }
            d["liquidations"].append(row)
            cas = d["cascades"].setdefault(r["cascade"], {"id": r["cascade"], "members": []})
            cas["members"].append(row)
        elif k == "cascade" and i >= 0:
            d = rnd(i)
            cas = d["cascades"].setdefault(r["cascade"], {"id": r["cascade"], "members": []})
            cas.update(
                {
                    "ts": r["ts"] // 10**6,
                    "count": r["count"],
                    "generations": r["depth"],
                    "fundChange": float(Decimal(r["fund_after"] - r["fund_before"]) / QUANTA),
                }
            )
        elif k == "headline" and i >= 0:
            rnd(i)["headlines"].append({"ts": r["ts"] // 10**6, "text": r["text"]})
        elif k == "round_result":
            rnd(i)["leaderboard"] = [
                {**row, "equity": float(Decimal(row["equity"]) / QUANTA)} for row in r["standings"]
            ]
    out_rounds = []
    for i in sorted(rounds):
        d = rounds[i]
        d["curves"] = [
            {"account": a, "name": names.get(a, str(a)), **c}
            for a, c in sorted(d["curves"].items())
        ]
        d["cascades"] = [c for _, c in sorted(d["cascades"].items())]
        out_rounds.append(d)
    results = {r["round"]: r["standings"] for r in records if r["kind"] == "round_result"}
    starts = {
        r["round"]: {int(a): e for a, e in r["equity"].items()}
        for r in records
        if r["kind"] == "round_started"
    }
    start = int(game.starting_balance * QUANTA)
    overall = game_standings(results, starts, start, game.rank_by, lambda a: names.get(a, str(a)))
    standings = [{**row, "equity": float(Decimal(row["equity"]) / QUANTA)} for row in overall]
    return {"game": game.name, "rounds": out_rounds, "standings": standings}


def debrief_html(data: dict[str, Any], script_base: str = "") -> str:
    # no "<" at all in the data block: "</script>" would end it and "<!--<script>" (a
    # nickname can be that) would make the parser swallow the rest of the page
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(f"Debrief: {data['game']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{script_base}class.css">
</head><body class="debrief">
<h1 id="title">{title}</h1>
<p class="error" id="debrief-error"></p>
<p class="hint">Prices, cascades, every student's equity and every liquidation with the mark
that triggered it, round by round.</p>
<div id="rounds"></div>
<script type="application/json" id="debrief-data">{blob}</script>
<script src="{script_base}plotly.min.js"></script>
<script src="{script_base}debrief.js" defer></script>
</body></html>
"""


def write_debrief(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(debrief_html(data), encoding="utf-8")
    (folder / "debrief.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    shutil.copyfile(STATIC / "debrief.js", folder / "debrief.js")
    shutil.copyfile(STATIC / "class.css", folder / "class.css")
    shutil.copyfile(plotly_js(), folder / "plotly.min.js")
    return folder / "index.html"


def live_debrief(cs: Any) -> dict[str, Any]:
    return debrief_data(cs.journal.load(), cs.game)


# ------------------------------------------------------------------ exports


def round_window(records: list[dict[str, Any]], index: int) -> tuple[int, int]:
    """Engine-time [start, end) of round `index` (end: the next round's start, or none)."""
    starts = [r["ts"] for r in records if r["kind"] == "round_started"]
    if not 0 <= index < len(starts):
        raise ExportError(f"round: no round {index + 1} was played")
    end = starts[index + 1] if index + 1 < len(starts) else 2**63 - 1
    return starts[index], end


def frames(records: list[dict[str, Any]], game: Game, db: Any, index: int) -> dict[str, Any]:
    """The round's tables as pandas DataFrames (decimal units, names)."""
    import pandas as pd

    start, end = round_window(records, index)
    names = _names(records)
    tick = {i.symbol: Decimal(i.tick_size) for i in game.instruments}
    step = {i.symbol: Decimal(i.step_size) for i in game.instruments}

    def q(sql: str) -> Any:
        from sqlalchemy import text

        with db.connect() as conn:
            return pd.read_sql_query(text(sql), conn, params={"a": start, "b": end})

    def exact(values: Any, units: list[Decimal]) -> list[Decimal | None]:
        # integer units times an exact unit: no float ever holds a price or an amount
        return [None if pd.isna(v) else int(v) * u for v, u in zip(values, units, strict=True)]

    def scale(df: Any, price_cols: list[str], qty_cols: list[str], money: list[str]) -> Any:
        if df.empty:
            return df
        ticks = [tick[s] for s in df["symbol"]]
        steps = [step[s] for s in df["symbol"]]
        for c in price_cols:
            df[c] = exact(df[c], ticks)
        for c in qty_cols:
            df[c] = exact(df[c], steps)
        for c in money:
            df[c] = [None if pd.isna(v) else Decimal(int(v)) / QUANTA for v in df[c]]
        return df

    out: dict[str, Any] = {}
    f = q("SELECT * FROM fills WHERE ts >= :a AND ts < :b ORDER BY seq")
    f = scale(f, ["price"], ["qty"], ["taker_fee", "maker_fee"])
    if not f.empty:
        f["taker"] = f["taker_account"].map(names)
        f["maker"] = f["maker_account"].map(names)
    out["trades"] = f
    o = q("SELECT * FROM orders WHERE created_ts >= :a AND created_ts < :b ORDER BY order_id")
    out["orders"] = scale(o, ["price", "stop_price"], ["qty", "filled", "remaining"], [])
    p = q("SELECT * FROM positions WHERE ts >= :a AND ts < :b ORDER BY seq")
    p = scale(
        p, ["liquidation_price", "bankruptcy_price"], ["qty"], ["cost", "margin", "realized_pnl"]
    )
    out["positions"] = p
    li = q("SELECT * FROM liquidations WHERE ts >= :a AND ts < :b ORDER BY seq")
    if not li.empty:
        li["fills"] = [
            json.dumps([[str(px * tick[sym]), str(n * step[sym])] for px, n in json.loads(js)])
            for js, sym in zip(li["fills"], li["symbol"], strict=True)
        ]
    li = scale(
        li,
        ["trigger_mark", "liquidation_price", "bankruptcy_price"],
        ["qty", "filled_qty", "fund_takeover_qty", "adl_qty"],
        ["insurance_delta"],
    )
    out["liquidations"] = li
    for frame in (o, p, li):
        if not frame.empty and "account" in frame:
            frame["name"] = frame["account"].map(names)
    results = [r for r in records if r["kind"] == "round_result" and r["round"] == index]
    board = pd.DataFrame(results[-1]["standings"] if results else [])
    if not board.empty:
        for c in ("equity", "fees", "volume"):
            board[c] = [Decimal(int(v)) / QUANTA for v in board[c]]
    out["leaderboard"] = board
    return out


async def export_table(cs: Any, table: str, round_text: str, fmt: str) -> tuple[bytes, str, str]:
    if table not in TABLES:
        raise ExportError(f"table: one of {', '.join(TABLES)}")
    if fmt not in ("csv", "parquet"):
        raise ExportError("format: csv or parquet")
    try:
        index = int(round_text) - 1
    except ValueError:
        raise ExportError("round: a round number (1, 2, ...)") from None
    await cs.store.flush()
    from exchange.store.db import Database

    db = Database(cs.store.url)
    try:
        df = frames(cs.journal.load(), cs.game, db, index)[table]
    finally:
        db.dispose()
    name = f"round{index + 1}-{table}.{fmt}"
    if fmt == "csv":
        return df.to_csv(index=False).encode(), "text/csv", name
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue(), "application/vnd.apache.parquet", name


def write_exports(folder: Path, records: list[dict[str, Any]], game: Game, db: Any) -> list[Path]:
    """Every table of every round as CSV and Parquet into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    n = sum(1 for r in records if r["kind"] == "round_started")
    for i in range(n):
        for table, df in frames(records, game, db, i).items():
            for fmt in ("csv", "parquet"):
                path = folder / f"round{i + 1}-{table}.{fmt}"
                if fmt == "csv":
                    df.to_csv(path, index=False)
                else:
                    df.to_parquet(path, index=False)
                written.append(path)
    return written
