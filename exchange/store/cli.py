"""Typer commands of the store, registered by `exchange.cli`:

app.command("export")(export_command)
app.command("verify")(verify_command)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .urls import DEFAULT_DB_URL, EXPORTABLE_NAMES

_TABLES = ", ".join(sorted(EXPORTABLE_NAMES))


def export_command(
    table: Annotated[str, typer.Argument(help=f"Table to export: {_TABLES}.")],
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Output file ('-' = stdout); default TABLE.FORMAT."),
    ] = None,
    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar="MARGINCALL_DB",
            help="Database URL (sqlite:///path.db or postgresql+psycopg://...) or a SQLite file.",
        ),
    ] = DEFAULT_DB_URL,
    format: Annotated[
        str, typer.Option("--format", "-f", help="csv, or parquet (needs pyarrow).")
    ] = "csv",
) -> None:
    """Write one of the store's tables to CSV (or Parquet)."""
    from . import ExportError, export

    target = out if out is not None else f"{table}.{format}"
    try:
        n = export(db, table, target, format)
    except ExportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if target != "-":
        typer.echo(f"{n} rows of {table} written to {Path(target)}", err=True)


def verify_command(
    db: Annotated[
        str,
        typer.Option("--db", envvar="MARGINCALL_DB", help="Database URL or SQLite file."),
    ] = DEFAULT_DB_URL,
) -> None:
    """Check the store: recovery (snapshot + journal) and a full replay of the journal
    must give the same state hash. Read-only for a healthy store; a damaged journal
    tail is set aside, as at start-up."""
    from . import recover, replay_journal

    ex, info = recover(db, query_tables=False)
    typer.echo(
        f"recovered: journal index {info.last_idx}, snapshot {info.snapshot_idx}, "
        f"{info.replayed} replayed, {info.dropped} dropped, hash {info.state_hash}"
    )
    try:
        full, n = replay_journal(db)
    except ValueError as e:
        typer.echo(f"full replay not possible: {e}")
        raise typer.Exit(1) from None
    h = full.state_hash()
    typer.echo(f"full replay: {n} entries, hash {h}")
    if h != info.state_hash:
        typer.echo("MISMATCH: recovery and full replay disagree", err=True)
        raise typer.Exit(1)
    typer.echo("ok")
