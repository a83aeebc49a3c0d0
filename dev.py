#!/usr/bin/env python3
"""The two set-up commands: `python3 dev.py demo` and `python3 dev.py test`.

Standard library only, so it runs on a fresh machine with nothing but Python ≥ 3.11:
it creates `.venv` beside this file (once), installs margincall with its test extras
into it, then runs the demo or the whole test suite (lint, format, types, tests).
Extra arguments are passed on (`python3 dev.py test -k book`, `python3 dev.py demo --port 9000`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    rc = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if rc:
        sys.exit(rc)


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run under an older python3
        sys.exit(f"margincall needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != want:
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "--quiet", "-e", ".[test]")
        STAMP.write_text(want)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        sys.exit("usage: python3 dev.py demo|test [args...]")
    what, extra = sys.argv[1], sys.argv[2:]
    ensure_env()
    if what == "demo":
        run(BIN / "margincall", "demo", *extra)
        return
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy", "--strict", "exchange/core")
    run(PY, "-m", "pytest", *extra)


if __name__ == "__main__":
    main()
