"""`export`: any query table to CSV (and Parquet when pyarrow is installed), and the
`margincall export` command."""

from __future__ import annotations

import builtins
import csv
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from exchange.store import ExportError, Store, export
from exchange.store.cli import export_command, verify_command
from exchange.store.tables import EXPORTABLE

from .scenario import build, drive, instruments


@pytest.fixture
async def filled(db_url: str) -> str:
    st = Store(db_url, snapshot_every=300)
    ex, _ = st.recover(instruments())
    await drive(st, ex, build(5))
    await st.close(ex)
    return db_url


async def test_csv_of_every_table(filled: str, tmp_path: Path) -> None:
    counts = {}
    for table in EXPORTABLE:
        out = tmp_path / f"{table}.csv"
        counts[table] = export(filled, table, out)
        with out.open() as f:
            rows = list(csv.reader(f))
        assert len(rows) == counts[table] + 1  # header
    for table in ("journal", "orders", "fills", "liquidations", "cascades", "positions"):
        assert counts[table] > 0, table
    with (tmp_path / "liquidations.csv").open() as f:
        liq = list(csv.DictReader(f))
    assert {"cascade_id", "generation", "parent_id", "insurance_delta"} <= set(liq[0])
    assert [int(r["seq"]) for r in liq] == sorted(int(r["seq"]) for r in liq)


async def test_bad_requests_are_clear(filled: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown table"):
        export(filled, "secrets", tmp_path / "x.csv")
    with pytest.raises(ExportError, match="unknown format"):
        export(filled, "fills", tmp_path / "x.xls", format="xls")


def test_parquet_without_pyarrow_says_so(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = builtins.__import__

    def no_pyarrow(name: str, *a: Any, **k: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: no_pyarrow(n))
    with pytest.raises(ExportError, match="pip install pyarrow"):
        export(sqlite_url, "fills", tmp_path / "f.parquet", format="parquet")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
async def test_parquet(filled: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-not-found]

    n = export(filled, "fills", tmp_path / "fills.parquet", format="parquet")
    t = pq.read_table(tmp_path / "fills.parquet")
    assert t.num_rows == n > 0
    assert str(t.schema.field("price").type) == "int64"


async def test_cli_export_and_verify(filled: str, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("export")(export_command)
    app.command("verify")(verify_command)
    runner = CliRunner()
    out = tmp_path / "o.csv"
    r = runner.invoke(app, ["export", "orders", "--db", filled, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("order_id,")
    r = runner.invoke(app, ["export", "nope", "--db", filled])
    assert r.exit_code == 2 and "unknown table" in r.output
    r = runner.invoke(app, ["verify", "--db", filled])
    assert r.exit_code == 0 and r.output.strip().endswith("ok"), r.output
