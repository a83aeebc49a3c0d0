"""`margincall class replay`: a finished game, played again from its database.

Every command of the exchange journal goes through a fresh `Exchange` built from the
journal's genesis instruments and the game's liquidation policy — the whole game again,
fill for fill, liquidation for liquidation — and its `state_hash()` is compared with
the state the store recovers (snapshot + journal). Then the debrief and the exports
are written from the game journal and the query tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exchange.core.engine import Exchange
from exchange.core.instruments import Instrument

from .debrief import debrief_data, write_debrief, write_exports
from .gamefile import Game
from .journal import classroom_journal


def replay_game(game: Game, db_url: str, out: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from exchange.store import journal as J
    from exchange.store.codec import from_jsonable
    from exchange.store.db import Database, normalize_url
    from exchange.store.store import Store
    from exchange.store.tables import StoreMeta

    url = normalize_url(db_url)
    db = Database(url)
    try:
        with db.connect() as conn:
            t = StoreMeta.__table__  # type: ignore[attr-defined]
            text = conn.execute(
                select(t.c.value).where(t.c.key == "genesis_instruments")
            ).scalar_one_or_none()
            if text is None:
                raise SystemExit(f"{db_url}: not a margincall game database")
            genesis = from_jsonable(list[Instrument], json.loads(text))
            rows = conn.execute(
                select(classroom_journal.c.payload).order_by(classroom_journal.c.idx)
            ).all()
        records = [json.loads(r[0]) for r in rows]
        ex = Exchange(genesis, adl=game.adl)
        n = 0
        for item in J.read_commands(db):
            if isinstance(item, J.Damage):
                break
            ex.handle(item[1])
            n += 1
        store = Store(url)
        recovered, _ = store.recover(genesis, adl=game.adl)
        store.close_sync()
        write_exports(out / "exports", records, game, db)
        page = write_debrief(out, debrief_data(records, game))
    finally:
        db.dispose()
    return {
        "commands": n,
        "state_hash": ex.state_hash(),
        "matches": ex.state_hash() == recovered.state_hash(),
        "debrief": str(page),
    }
