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

* command line: `margincall replay FILES --speed 0` on the same files, as a user runs it,
  in a subprocess (interpreter start-up, imports, the server, the runtime and the report
  recorder counted once per run), with the options that make it the player's work
  (`--trades`, the instruments' own mark method, the same synthetic book). Prints
  `cli_events_per_s`, `cli_ratio` (command line / in-process player), `cli_s`, and
  `cli_startup_s` (the same command on an empty window: start-up and shut-down alone),
  with compiled modules cached as an install has them. `--no-cli` leaves it out;
  `--no-ticker` replays the trades file alone (the index then follows every trade: a
  command for most events).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import subprocess
import sys
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
        if getattr(args, "no_ticker", False):  # the index then follows the trades
            paths = [p for p in paths if "_trades_" in p.name]
        gen_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in paths)
        parse_s = play_s = play_cpu = float("inf")
        events = 0
        stats: dict[str, Any] = {}
        core_events = 0
        use_cli = not getattr(args, "no_cli", False)
        argv = _cli_argv(paths, synthetic, taker)
        if use_cli:
            _margincall([*argv, *EMPTY_WINDOW])  # fills the bytecode cache
        runs: list[tuple[float, str, float]] = []
        for _ in range(repeat):  # the command line's runs interleaved with the player's
            if use_cli:
                gc.collect()
                runs.append(_margincall(argv))
            gc.collect()
            t = time.perf_counter()
            events = parse_only(paths)
            parse_s = min(parse_s, time.perf_counter() - t)
            ex = Exchange(load_instruments())
            cfg = PlayerConfig(trades=taker, synthetic=SyntheticBook() if synthetic else None)
            gc.collect()
            t, c = time.perf_counter(), time.process_time()
            player = play(ex, read_merged(paths), cfg)
            play_s = min(play_s, time.perf_counter() - t)
            play_cpu = min(play_cpu, time.process_time() - c)
            stats = player.stats.as_dict()
            core_events = ex.seq
        if stats.get("events") != events:
            raise SystemExit(f"player saw {stats.get('events')} events, parser {events}")
        cli: dict[str, Any] = {}
        if use_cli:
            start_s = min(_margincall([*argv, *EMPTY_WINDOW])[0] for _ in range(repeat))
            cli = _cli_figures(runs, start_s, stats["commands"], events, play_s, play_cpu)
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
        "ticker_file": not getattr(args, "no_ticker", False),
        "taker_flow": taker,
        "files_bytes": size,
        "generate_s": round(gen_s, 3),
        "repeat": repeat,
        **cli,
    }


ROOT = Path(__file__).resolve().parents[1]
_DONE = re.compile(r"replayed (\d+) events \((\d+) commands\)")


def _margincall(argv: list[str]) -> tuple[float, str, float]:
    """Run `margincall ARGV` in a fresh interpreter on this checkout: (wall s, stderr,
    CPU s of the process)."""
    # compiled modules cached as an installed package has them (the first run fills the
    # cache), wherever the environment says not to write bytecode
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "margincall-pyc"))
    code = "import sys; sys.argv[0] = 'margincall'; from exchange.cli import app; app()"
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"margincall {' '.join(argv)} failed: {done.stderr[-2000:]}")
    return wall, done.stderr, cpu


EMPTY_WINDOW = ["--start", "2000-01-01", "--end", "2000-01-02"]  # start-up alone


def _cli_argv(paths: list[Path], synthetic: bool, taker: bool) -> list[str]:
    """`margincall replay` doing the player's work on the same files."""
    argv = ["replay", *map(str, paths), "--speed", "0", "--port", "0", "--no-progress"]
    argv += ["--mark-method", "instrument", "--trades" if taker else "--no-trades"]
    if synthetic:
        sb = SyntheticBook()
        spread, step = sb.spread_ppm // 100, sb.step_ppm // 100  # the option is in bp
        argv += ["--synthetic", f"{sb.levels},{spread},{step},{sb.qty}"]
    return argv


def _cli_figures(
    runs: list[tuple[float, str, float]],
    start_s: float,
    commands: int,
    events: int,
    play_s: float,
    play_cpu_s: float,
) -> dict[str, Any]:
    for _, err, _ in runs:
        m = _DONE.search(err)
        if m is None:
            raise SystemExit(f"margincall replay did not report: {err[-2000:]}")
        if (int(m.group(1)), int(m.group(2))) != (events, commands):
            raise SystemExit(
                f"margincall replay did other work: {m.group(0)}; the player "
                f"replayed {events} events with {commands} commands"
            )
    best = min(w for w, _, _ in runs)
    best_cpu = min(c for _, _, c in runs)
    return {
        "cli_events_per_s": round(events / best),
        "cli_ratio": round(play_s / best, 3),
        "cli_s": round(best, 3),
        "cli_startup_s": round(start_s, 3),
        # CPU time, less sensitive to a loaded machine than wall time
        "cli_cpu_s": round(best_cpu, 3),
        "player_cpu_s": round(play_cpu_s, 3),
        "cli_cpu_ratio": round(play_cpu_s / best_cpu, 3),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trades", type=int, default=200_000, help="trade rows to generate")
    p.add_argument("--tickers", type=int, default=20_000, help="ticker rows to generate")
    p.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    p.add_argument("--synthetic", action="store_true", help="quote a synthetic book")
    p.add_argument("--no-taker", action="store_true", help="do not replay trades as taker flow")
    p.add_argument("--no-cli", action="store_true", help="leave out `margincall replay`")
    p.add_argument(
        "--no-ticker", action="store_true", help="replay the trades file alone (index from trades)"
    )
