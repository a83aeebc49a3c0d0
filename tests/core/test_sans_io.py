"""The core is sans-I/O: it imports only the standard library's pure modules and
sortedcontainers, and never reads a clock or an unseeded random source."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "exchange" / "core"
FORBIDDEN = {
    "asyncio", "websockets", "aiomqtt", "sqlmodel", "sqlalchemy", "socket", "threading",
    "time", "datetime", "random", "json", "os", "io", "subprocess", "select", "selectors",
    "multiprocessing", "concurrent", "urllib", "http", "ssl", "pathlib", "logging",
}  # fmt: skip
ALLOWED_THIRD_PARTY = {"sortedcontainers"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_nothing_with_io_or_clocks() -> None:
    files = sorted(CORE.glob("*.py"))
    assert files
    for f in files:
        mods = imported_modules(f)
        bad = mods & FORBIDDEN
        assert not bad, f"{f.name} imports {bad}"
        for m in mods - ALLOWED_THIRD_PARTY - {"__future__"}:
            assert m in sys.stdlib_module_names, f"{f.name} imports third-party {m}"


def test_core_never_mentions_floats_or_wall_clock() -> None:
    for f in sorted(CORE.glob("*.py")):
        text = f.read_text(encoding="utf-8")
        for needle in ("float(", "time.time", "perf_counter", "monotonic(", "datetime.now"):
            assert needle not in text, f"{f.name} contains {needle}"
