"""Opening (plain, gzip, zip) files as text, and the shared row-checking helpers of the readers.

Compression is detected from the file's first bytes, not its name. A zip archive must hold a
single CSV (or JSON lines) member. Nothing here reads more than one buffer ahead.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from replay.errors import ReplayFormatError

PathLike = str | os.PathLike[str]

MAX_NS = 2**63 - 1
"""Largest timestamp accepted (int64 nanoseconds, year 2262)."""

ZERO = Decimal(0)
INF = Decimal("Infinity")
NEG_INF = Decimal("-Infinity")

# Exceptions the fast paths of the readers can raise on bad input.
ROW_ERRORS = (ValueError, ArithmeticError, KeyError, TypeError, IndexError)

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_TEXT_MEMBER_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".txt")


class _BadRow(Exception):
    """Raised inside a reader's fast path when a value check fails; never escapes a reader."""


BAD_ROW = _BadRow


@contextmanager
def open_text(path: PathLike) -> Iterator[tuple[TextIO, str]]:
    """Open ``path`` (plain, gzip or zip) for reading text; yield ``(stream, inner_name)``.

    ``inner_name`` is the file name that tells the format apart: the member's name for a zip,
    otherwise the file's own name without compression suffix. Newlines are left for ``csv`` to
    handle (``newline=""``); a UTF-8 byte-order mark is dropped.
    """
    display = str(path)
    p = Path(path)
    with open(p, "rb") as probe:  # a missing file raises FileNotFoundError, as usual
        magic = probe.read(4)
    name = p.name
    if magic.startswith(_GZIP_MAGIC):
        if name.lower().endswith(".gz"):
            name = name[:-3]
        raw = gzip.open(p, "rb")  # noqa: SIM115 - closed with the wrapper
        text: TextIO = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            yield text, name
        finally:
            text.close()
    elif magic.startswith(_ZIP_MAGIC):
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile as exc:
            raise ReplayFormatError(display, None, f"not a readable zip archive: {exc}") from exc
        with zf:
            member = _pick_member(zf, display)
            text = io.TextIOWrapper(zf.open(member), encoding="utf-8-sig", newline="")
            try:
                yield text, Path(member.filename).name
            finally:
                text.close()
    else:
        text = open(p, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
        try:
            yield text, name
        finally:
            text.close()


def _pick_member(zf: zipfile.ZipFile, display: str) -> zipfile.ZipInfo:
    """The single data member of a zip archive (a lone file, or the lone ``.csv``/``.jsonl``)."""
    files = [i for i in zf.infolist() if not i.is_dir()]
    if len(files) == 1:
        return files[0]
    data = [i for i in files if i.filename.lower().endswith(_TEXT_MEMBER_SUFFIXES)]
    if len(data) == 1:
        return data[0]
    names = ", ".join(i.filename for i in files) or "none"
    raise ReplayFormatError(
        display, None, f"zip archive must hold exactly one CSV member, found: {names}"
    )


class CsvInput:
    """A CSV file being read: its rows, where we are in it, and how to report a problem."""

    __slots__ = ("path", "name", "reader", "rows", "header")

    def __init__(
        self,
        path: str,
        name: str,
        reader: Iterator[list[str]],
        rows: Iterator[list[str]],
        header: list[str] | None,
    ) -> None:
        self.path = path
        self.name = name
        self.reader = reader  # the csv.reader, for line_num
        self.rows = rows  # remaining data rows (may start with a peeked row)
        self.header = header

    @property
    def line(self) -> int:
        """Physical line number of the row most recently returned by :attr:`rows`."""
        return self.reader.line_num  # type: ignore[attr-defined,no-any-return]

    def error(self, problem: str, line: int | None = -1) -> ReplayFormatError:
        """A :class:`ReplayFormatError` at the current line (or the given one)."""
        return ReplayFormatError(self.path, self.line if line == -1 else line, problem)


def make_reader(lines: Iterator[str]) -> Iterator[list[str]]:
    """A ``csv.reader`` over text lines, comma-separated, standard quoting."""
    return csv.reader(lines)


# ---------------------------------------------------------------------------------------------
# Diagnosis: readers parse rows on a fast path with no per-cell error handling. When that path
# fails, they call ``diagnose`` to find the first problem in the row and describe it.
# ---------------------------------------------------------------------------------------------

Check = Callable[[str], str | None]


def _decimal(cell: str) -> Decimal | None:
    try:
        d = Decimal(cell)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def check_number(cell: str) -> str | None:
    """Any finite decimal number."""
    return None if _decimal(cell) is not None else "is not a finite decimal number"


def check_positive(cell: str) -> str | None:
    """A finite decimal number > 0."""
    d = _decimal(cell)
    if d is None:
        return "is not a finite decimal number"
    return None if d > 0 else "must be > 0"


def check_nonneg(cell: str) -> str | None:
    """A finite decimal number >= 0."""
    d = _decimal(cell)
    if d is None:
        return "is not a finite decimal number"
    return None if d >= 0 else "must be >= 0"


def check_int(cell: str) -> str | None:
    """A non-negative integer written with digits only."""
    return None if cell.isascii() and cell.isdigit() else "is not a non-negative integer"


def check_any(cell: str) -> str | None:  # noqa: ARG001 - uniform signature
    """Anything."""
    return None


def optional(check: Check) -> Check:
    """``check``, but an empty cell is fine too."""

    def inner(cell: str) -> str | None:
        return None if cell == "" else check(cell)

    return inner


def one_of(*values: str) -> Check:
    """Exactly one of ``values``."""
    allowed = ", ".join(values)

    def inner(cell: str) -> str | None:
        return None if cell in values else f"must be one of {allowed}"

    return inner


def timestamp(unit: int) -> Check:
    """An integer count of ``unit`` nanoseconds that fits in int64 nanoseconds."""

    def inner(cell: str) -> str | None:
        if not (cell.isascii() and cell.isdigit()):
            return "is not a non-negative integer timestamp"
        if int(cell) * unit > MAX_NS:
            return "is out of range (too large for its unit)"
        return None

    return inner


Spec = tuple[tuple[str, Check], ...]


def diagnose(row: list[str], spec: Spec) -> str | None:
    """Describe the first problem of ``row`` against ``spec`` (column name, check), if any."""
    if len(row) != len(spec):
        names = ",".join(name for name, _ in spec)
        return f"expected {len(spec)} columns ({names}), got {len(row)}"
    for i, ((name, check), cell) in enumerate(zip(spec, row, strict=True)):
        problem = check(cell)
        if problem is not None:
            return f"column {i + 1} ({name}) {cell!r} {problem}"
    return None


def order_problem(name: str, value_ns: int, previous_ns: int) -> str:
    """Message for a timestamp that goes backwards."""
    return (
        f"{name} goes backwards: {value_ns} ns is before the previous row's {previous_ns} ns "
        "(the file must be sorted by time)"
    )


def unit_of(value: int) -> int:
    """Nanoseconds per unit of an epoch timestamp, told from its magnitude.

    < 10¹¹ → seconds, < 10¹⁴ → milliseconds, < 10¹⁷ → microseconds, else nanoseconds; i.e. any
    timestamp from 1973 to 5138 is read correctly.
    """
    if value < 10**11:
        return 1_000_000_000
    if value < 10**14:
        return 1_000_000
    if value < 10**17:
        return 1_000
    return 1


UNIT_NAMES = {1_000_000_000: "s", 1_000_000: "ms", 1_000: "us", 1: "ns"}


def explain(
    row: list[str],
    spec: Spec,
    order: tuple[int, str, int, int] | None = None,
    extra: Callable[[list[str]], str | None] | None = None,
) -> str:
    """Describe why ``row`` was rejected: cell problems first, then ordering, then ``extra``.

    ``order`` is ``(column index, column name, ns per unit, previous value in ns)``.
    """
    problem = diagnose(row, spec)
    if problem is not None:
        return problem
    if order is not None:
        idx, name, unit, previous = order
        value = int(row[idx]) * unit
        if value < previous:
            return order_problem(name, value, previous)
    if extra is not None:
        problem = extra(row)
        if problem is not None:
            return problem
    return "malformed row"


class ReadOptions:
    """Per-call reader options (see :func:`replay.read`); readers ignore what they do not use."""

    __slots__ = ("symbol", "exchange", "kind", "interval_ns", "carry_forward")

    def __init__(
        self,
        symbol: str | None = None,
        exchange: str | None = None,
        kind: str | None = None,
        interval_ns: int | None = None,
        carry_forward: bool = True,
    ) -> None:
        self.symbol = symbol
        self.exchange = exchange
        self.kind = kind
        self.interval_ns = interval_ns
        self.carry_forward = carry_forward


def peek_unit(
    src: CsvInput, column: int, default: int = 1_000_000
) -> tuple[int, Iterator[list[str]]]:
    """Tell the timestamp unit from ``column`` of the first data row, without losing that row.

    Returns ``(ns per unit, rows)``; ``rows`` yields every data row, the peeked one first, and
    :attr:`CsvInput.line` stays right. If the first row has no integer there, ``default`` is
    returned and the row fails later with a precise message.
    """
    rows = iter(src.rows)
    first = next(rows, None)
    if first is None:
        return default, iter(())
    unit = default
    if len(first) > column:
        cell = first[column]
        if cell.isascii() and cell.isdigit():
            unit = unit_of(int(cell))
    return unit, itertools.chain((first,), rows)
