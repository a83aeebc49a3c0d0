"""`margincall whatif`: fork a recorded session at a cascade's start under variations.

Registered in `exchange/cli.py`; imports nothing heavy until the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["whatif_command"]


def _is_store(source: str) -> bool:
    return "://" in source or source.endswith((".db", ".sqlite", ".sqlite3"))


def whatif_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A store (sqlite:///x.db, postgresql+psycopg://..., or a .db file) or a data "
            "file replay reads (an event log, Tardis, Binance, OHLCV)."
        ),
    ],
    vary: Annotated[
        list[str] | None,
        typer.Option(
            help="A variation kind=v1,v2,... (repeatable): policy=NAME, adl=off, "
            "mark=index|last|mid|median, band=RATE, fund=AMOUNT. One branch per value."
        ),
    ] = None,
    grid: Annotated[
        bool, typer.Option(help="One branch per combination of the variations instead.")
    ] = False,
    cascade: Annotated[
        str, typer.Option(help="The cascade to fork: largest, first, or a cascade id.")
    ] = "largest",
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("whatif-report"),
    symbol: Annotated[str | None, typer.Option(help="Replay: instrument for the file.")] = None,
    mark_method: Annotated[
        str, typer.Option(help="Replay: the baseline's mark method (or 'instrument').")
    ] = "index",
    population: Annotated[int, typer.Option(help="Replay: leveraged accounts.")] = 200,
    seed: Annotated[int, typer.Option(help="Replay: population seed.")] = 1,
) -> None:
    """Find a cascade in SOURCE, fork the state just before it and re-run the same inputs
    under each variation; print the table and write OUT/report.html and OUT/whatif.csv."""
    from replay.whatif import Session, WhatIfError, parse_variations, whatif

    try:
        variations = parse_variations(vary or [], grid=grid)
        pick: int | str = int(cascade) if cascade.isdigit() else cascade
        if pick not in ("largest", "first") and not isinstance(pick, int):
            raise WhatIfError(f"--cascade: largest, first or an id, not {cascade!r}")
        if _is_store(source):
            url = source if "://" in source else f"sqlite:///{source}"
            if "://" not in source and not Path(source).exists():
                raise WhatIfError(f"no such file: {source}")
            session = Session.from_store(url)
        else:
            if not Path(source).exists():
                raise WhatIfError(f"no such file: {source}")
            from replay.errors import ReplayFormatError
            from replay.inprocess import options

            try:
                opts = options(
                    source,
                    symbol=symbol,
                    mark_method=None if mark_method == "instrument" else mark_method,
                    population=population,
                    seed=seed,
                )
                session = Session.from_replay(opts)
            except ReplayFormatError as e:
                raise WhatIfError(str(e)) from None
        result = whatif(session, variations, cascade=pick)
    except (WhatIfError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    table = result.table()
    from rich.console import Console
    from rich.table import Table

    shown = [c for c in table.columns if c != "state_hash"]
    t = Table(title=f"what if: cascade {result.cascade_id} on {result.symbol}")
    for c in shown:
        t.add_column(c, justify="right")
    for _, row in table.iterrows():
        t.add_row(*(f"{row[c]:.10g}" if isinstance(row[c], float) else str(row[c]) for c in shown))
    Console(soft_wrap=True, width=200).print(t)
    page = result.write_report(out)
    typer.echo(f"report: {page}", err=True)
