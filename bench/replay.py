"""`python -m bench replay --json`: historical data through the player into the core.

Writes a gzip Tardis trades + derivative_ticker pair (200,000 trades, 20,000 ticker rows by
default; `replay.testdata.write_tardis_pair`) in a temporary folder, then, in the same run:

* parse only: `replay.bench_parse.parse_only` over both files (read each in full);
* player: `read_merged` of both files → `Player` → `Exchange.handle`, as fast as possible
  (`replay.player.play`, no steps, no sink), trades replayed as taker flow, tickers as
  index updates.

Prints `events_per_s` (player, events per second of wall time, parsing and merging
included), `parse_only_events_per_s` and `ratio_vs_parse` (player rate / parse rate), and
where the player's time goes (`commands`, core events, taker orders sent and skipped).
With `--synthetic`, the replay account also quotes a synthetic book around the index, so
trades that cross it reach the core as IOC orders and fill (a heavier, different workload).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from exchange.config import load_instruments
from exchange.core import Exchange
from replay.bench_parse import parse_only
from replay.formats import read_merged
from replay.player import PlayerConfig, SyntheticBook, play
from replay.testdata import write_tardis_pair


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    trades = getattr(args, "trades", None) or 200_000
    tickers = getattr(args, "tickers", None) or 20_000
    repeat = getattr(args, "repeat", None) or 3
    synthetic = bool(getattr(args, "synthetic", False))
    taker = not getattr(args, "no_taker", False)
    with tempfile.TemporaryDirectory(prefix="margincall-bench-replay-") as tmp:
        t = time.perf_counter()
        paths = write_tardis_pair(Path(tmp), trades, tickers)
        gen_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in paths)
        parse_s = play_s = float("inf")
        events = 0
        stats: dict[str, Any] = {}
        core_events = 0
        for _ in range(repeat):
            gc.collect()
            t = time.perf_counter()
            events = parse_only(paths)
            parse_s = min(parse_s, time.perf_counter() - t)
            ex = Exchange(load_instruments())
            cfg = PlayerConfig(trades=taker, synthetic=SyntheticBook() if synthetic else None)
            gc.collect()
            t = time.perf_counter()
            player = play(ex, read_merged(paths), cfg)
            play_s = min(play_s, time.perf_counter() - t)
            stats = player.stats.as_dict()
            core_events = ex.seq
        if stats.get("events") != events:
            raise SystemExit(f"player saw {stats.get('events')} events, parser {events}")
    return {
        "bench": "replay",
        "events": events,
        "events_per_s": round(events / play_s),
        "parse_only_events_per_s": round(events / parse_s),
        "ratio_vs_parse": round(parse_s / play_s, 3),
        "player_s": round(play_s, 3),
        "parse_s": round(parse_s, 3),
        "commands": stats["commands"],
        "core_events": core_events,
        "index_updates": stats["index_updates"],
        "taker_orders": stats["taker_orders"],
        "taker_skipped": stats["taker_skipped"],
        "levels_placed": stats["levels_placed"],
        "synthetic_book": synthetic,
        "taker_flow": taker,
        "files_bytes": size,
        "generate_s": round(gen_s, 3),
        "repeat": repeat,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trades", type=int, default=200_000, help="trade rows to generate")
    p.add_argument("--tickers", type=int, default=20_000, help="ticker rows to generate")
    p.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    p.add_argument("--synthetic", action="store_true", help="quote a synthetic book")
    p.add_argument("--no-taker", action="store_true", help="do not replay trades as taker flow")
