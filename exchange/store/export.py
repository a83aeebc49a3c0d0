"""`export(db_url, table, out_path, format)`: one store table to CSV or Parquet.

Rows stream in primary-key order (by `seq` for event tables), so exporting a large
table needs little memory. Values are the stored integers (ticks, lots, quanta; see
`docs/store.md`); CSV writes booleans as `true`/`false` and NULL as an empty field.
Parquet needs pyarrow (`pip install pyarrow`); it is not a dependency of margincall.
"""

from __future__ import annotations

import csv
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from .db import Database
from .tables import EXPORTABLE, TABLES_BY_NAME

CHUNK = 10_000


class ExportError(Exception):
    """The export cannot be done; the message says why."""


def _chunks(db: Database, table: Any) -> Iterator[list[tuple[Any, ...]]]:
    order = list(table.primary_key.columns) or list(table.columns)[:1]
    with db.connect() as conn:
        result = conn.execution_options(yield_per=CHUNK).execute(select(table).order_by(*order))
        for part in result.partitions(CHUNK):
            yield [tuple(r) for r in part]


def export(db_url: str, table: str, out_path: str | Path, format: str = "csv") -> int:
    """Write `table` of the store at `db_url` to `out_path` ("-" = stdout, CSV only);
    returns the number of rows written."""
    if table not in EXPORTABLE:
        raise ExportError(f"unknown table {table!r}; tables: {', '.join(sorted(EXPORTABLE))}")
    if format not in ("csv", "parquet"):
        raise ExportError(f"unknown format {format!r}: use csv or parquet")
    if format == "parquet":
        try:
            importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise ExportError(
                "Parquet export needs pyarrow, which is not installed: "
                "pip install pyarrow (or export with --format csv)"
            ) from None
    db = Database(db_url, immediate=False, timeout=30.0)
    try:
        if not inspect(db.engine).has_table(table):
            raise ExportError(f"table {table!r} does not exist in {db.url!r} (nothing stored yet)")
        t = TABLES_BY_NAME[table].__table__  # type: ignore[attr-defined]
        if format == "csv":
            return _csv(db, t, out_path)
        return _parquet(db, t, Path(out_path))
    finally:
        db.dispose()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return v


def _csv(db: Database, t: Any, out_path: str | Path) -> int:
    names = [c.name for c in t.columns]
    n = 0
    if str(out_path) == "-":
        f = sys.stdout
        close = False
    else:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        f = open(out_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        close = True
    try:
        w = csv.writer(f)
        w.writerow(names)
        for chunk in _chunks(db, t):
            w.writerows([_cell(v) for v in row] for row in chunk)
            n += len(chunk)
    finally:
        if close:
            f.close()
    return n


def _parquet(db: Database, t: Any, out_path: Path) -> int:
    pa: Any = importlib.import_module("pyarrow")
    pq: Any = importlib.import_module("pyarrow.parquet")
    from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary

    def arrow_type(col: Any) -> Any:
        if isinstance(col.type, BigInteger | Integer):
            return pa.int64()
        if isinstance(col.type, Boolean):
            return pa.bool_()
        if isinstance(col.type, LargeBinary):
            return pa.binary()
        return pa.string()

    schema = pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in t.columns])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with pq.ParquetWriter(str(out_path), schema) as w:
        for chunk in _chunks(db, t):
            cols = list(zip(*chunk, strict=True)) if chunk else [() for _ in t.columns]
            w.write_table(
                pa.table(
                    [pa.array(list(c), type=f.type) for c, f in zip(cols, schema, strict=True)],
                    schema=schema,
                )
            )
            n += len(chunk)
    return n
