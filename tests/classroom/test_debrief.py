"""The debrief and `margincall class replay`: a finished game played again from its
database gives the same state, and the report and exports hold its liquidation."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd

from exchange.classroom import parse_game
from exchange.classroom.debrief import debrief_html
from exchange.classroom.replaying import replay_game
from exchange.core import commands as C
from tests.classroom.helpers import GAME
from tests.classroom.test_http import class_stack


async def test_replay_a_finished_game(tmp_path: Path) -> None:
    async with class_stack(tmp_path) as cs:
        g = cs.classroom
        ada, _ = await g.join("Ada")
        bob, _ = await g.join("Bob")
        await g.act("start")
        rt = cs.runtime
        await rt.submit(C.SetLeverage(account=ada.account, symbol="BTCUSDT", leverage=50))
        await rt.submit(
            C.PlaceOrder(account=bob.account, symbol="BTCUSDT", side="SELL", qty=500, price=500_000)
        )
        await rt.submit(
            C.PlaceOrder(account=ada.account, symbol="BTCUSDT", side="BUY", qty=500, type="MARKET")
        )
        await g.shock(Decimal(-5), 0)
        for _ in range(200):
            if any(r["account"] == ada.account for r in g.liquidations):
                break
            await asyncio.sleep(0.02)
        t = rt.exchange.now
        while rt.exchange.now == t:  # let the round's clock move on before it ends
            await asyncio.sleep(0.02)
        await g.act("next_round")  # round 1 over
        await g.act("next_round")  # round 2
        await g.act("finish")
        state = cs.runtime.exchange.state_hash()
        db = cs.store.url
    game = parse_game(GAME)
    out = tmp_path / "debrief"
    result = replay_game(game, db, out)
    assert result["matches"] and result["state_hash"] == state and result["commands"] > 10
    page = (out / "index.html").read_text()
    assert "plotly.min.js" in page and "<script>" not in page  # no inline script
    assert 'type="module"' not in page  # browsers refuse module scripts from file://
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    data = (out / "debrief.json").read_text()
    assert '"name": "Ada"' in data and '"triggerMark": 47500.0' in data
    # the whole game's standings: round 1's liquidation counts though round 2 reset it
    overall = {r["name"]: r for r in json.loads(data)["standings"]}
    assert set(overall) == {"Ada", "Bob"} and overall["Ada"]["liquidations"] == 1
    assert overall["Bob"]["rank"] == 1 and float(overall["Ada"]["returnPct"]) < 0
    # every table in decimal units, exact (text as the decimals are, never a float's digits)
    liq = pd.read_csv(out / "exports" / "round1-liquidations.csv", dtype=str)
    assert list(liq["name"]) == ["Ada"] and list(liq["trigger_mark"]) == ["47500.00"]
    assert list(liq["qty"]) == ["0.500"]
    board = pd.read_parquet(out / "exports" / "round1-leaderboard.parquet")
    assert board.loc[board["name"] == "Ada", "liquidations"].item() == 1
    assert isinstance(board["equity"].iloc[0], Decimal)
    trades = pd.read_csv(out / "exports" / "round1-trades.csv", dtype=str)
    assert (trades["price"] == "50000.00").any() and (trades["qty"] == "0.500").any()
    positions = pd.read_csv(out / "exports" / "round1-positions.csv", dtype=str)
    assert all(len(v.split(".")[1]) == 2 for v in positions["bankruptcy_price"].dropna())
    pq = pd.read_parquet(out / "exports" / "round1-liquidations.parquet")
    assert pq["bankruptcy_price"].iloc[0] == Decimal(liq["bankruptcy_price"].iloc[0])


def test_the_report_page_holds_any_text_in_its_data_block() -> None:
    nasty = "</script><!--<script>"
    data = {"game": nasty, "rounds": [{"headlines": [{"ts": 1, "text": nasty}]}]}
    page = debrief_html(data)
    opening = '<script type="application/json" id="debrief-data">'
    start = page.index(opening) + len(opening)
    end = page.index("</script>", start)
    block = page[start:end]
    # nothing in the block can end it or change how the parser reads the rest of the page
    assert "<" not in block and json.loads(block) == data
    assert page.count("<script") == 3 and "&lt;/script&gt;" in page  # the title, escaped
