"""Test helpers: write small files in the exact published layouts, plain, gzip or zip."""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
"""The shared folder of real samples beside the repository (may be absent)."""

COMPRESSIONS = ("plain", "gz", "zip")


def csv_text(header: str | Sequence[str] | None, rows: Iterable[Sequence[object]]) -> str:
    """CSV text with LF line ends, as the vendors publish it (cells are never quoted here).

    ``header`` is the header line verbatim (a string), its columns, or ``None`` for none.
    """
    if header is None:
        lines = []
    else:
        lines = [header if isinstance(header, str) else ",".join(header)]
    lines += [",".join(str(c) for c in row) for row in rows]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str, compression: str = "plain") -> Path:
    """Write ``text`` to ``path`` (+ ``.gz`` / ``.zip`` as asked); return the file written.

    The zip holds one member named like ``path`` (as data.binance.vision zips do).
    """
    data = text.encode()
    if compression == "plain":
        path.write_bytes(data)
        return path
    if compression == "gz":
        out = path.with_name(path.name + ".gz")
        out.write_bytes(gzip.compress(data, mtime=0))
        return out
    if compression == "zip":
        out = path.with_name(path.stem + ".zip")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.name, data)
        return out
    raise ValueError(compression)
