"""`margincall class ...`: run, check and replay classroom games."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .gamefile import Game, GameFileError, load_game

app = typer.Typer(
    name="class", help="Classroom trading games (docs/classroom.md).", no_args_is_help=True
)


def _load(path: Path) -> Game:
    try:
        return load_game(path)
    except GameFileError as e:
        typer.echo(f"{e.source}: the game file has problems:", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(2) from None


@app.command("check")
def check_command(game_file: Annotated[Path, typer.Argument(help="The game file (TOML).")]) -> None:
    """Validate a game file; every problem is named by its field."""
    g = _load(game_file)
    typer.echo(f"{g.name}: {len(g.rounds)} rounds, {', '.join(g.symbols())}, OK")


@app.command("run")
def run_command(
    game_file: Annotated[Path, typer.Argument(help="The game file (TOML).")],
    db: Annotated[str, typer.Option(help="The game's database (resumes the game in it).")] = "",
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 for a classroom).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="WebSocket API port (0: any).")] = 8765,
    http_port: Annotated[int, typer.Option(help="HTTP port of the pages (0: any).")] = 8766,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="MARGINCALL_ADMIN_TOKEN", help="Instructor token (default: random)."),
    ] = None,
    master_key_file: Annotated[
        Path | None,
        typer.Option(envvar="MARGINCALL_MASTER_KEY_FILE", help="Key file for API secrets."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the debrief and exports at game over.")
    ] = None,
    bots: Annotated[bool, typer.Option(help="Run the game file's bots.")] = True,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
) -> None:
    """Run a game: prints the join URL and code, serves the pages, runs the bots."""
    game = _load(game_file)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    slug = "".join(ch if ch.isalnum() else "-" for ch in game.name.lower()).strip("-") or "game"
    from .serving import ClassOptions

    opts = ClassOptions(
        db=db or f"sqlite:///data/class-{slug}.db",
        host=host,
        port=port,
        http_port=http_port,
        admin_token=admin_token,
        master_key_file=master_key_file or Path("data") / "master.key",
    )
    asyncio.run(_run(game, opts, out or Path("data") / f"class-{slug}-debrief", bots))


async def _run(game: Game, opts: Any, out: Path, with_bots: bool) -> None:
    from .serving import reachable_url, start_class, stop_class

    cs = await start_class(game, opts)
    g = cs.classroom
    print(f"margincall class: {game.name}", flush=True)
    print(f"JOIN {cs.join_url or '(no HTTP server)'}  code {g.join_code}", flush=True)
    console = reachable_url(cs.http_url) if cs.http_url else "(no HTTP server)"
    print(f"CONSOLE {console}/class/console  admin token: {cs.admin_token}", flush=True)
    print(f"WS {cs.ws_url}  state: {g.state}, round {g.round + 1}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    from .bots import start_bots

    tasks = await start_bots(cs, stop) if with_bots else []
    wrote = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if g.state == "game_over" and not wrote:
            wrote = True
            path = await write_report(cs, out)
            print(f"DEBRIEF {path}", flush=True)
    stop.set()
    for t in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(t, 3)
    await stop_class(cs)


async def write_report(cs: Any, out: Path) -> Path:
    from exchange.store.db import Database

    from .debrief import debrief_data, write_debrief, write_exports

    records = cs.journal.load()
    await cs.store.flush()
    db = Database(cs.store.url)
    try:
        write_exports(out / "exports", records, cs.game, db)
    finally:
        db.dispose()
    return write_debrief(out, debrief_data(records, cs.game))


@app.command("replay")
def replay_command(
    game_file: Annotated[Path, typer.Argument(help="The game file the game was played with.")],
    db: Annotated[str, typer.Option(help="The finished game's database.")],
    out: Annotated[Path, typer.Option(help="Folder for the debrief and the exports.")] = Path(
        "debrief"
    ),
) -> None:
    """Replay a finished game from its database: every journaled command through a
    fresh exchange (checked against the recovered state), then the debrief and exports."""
    game = _load(game_file)
    from .replaying import replay_game

    result = replay_game(game, db, out)
    typer.echo(
        f"replayed {result['commands']} commands, state {result['state_hash'][:16]}… "
        f"({'matches' if result['matches'] else 'DIFFERS FROM'} the recovered state)"
    )
    typer.echo(f"debrief: {result['debrief']}")
    if not result["matches"]:
        sys.exit(1)
