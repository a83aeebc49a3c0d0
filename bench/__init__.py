"""Benchmarks, run by hand or as `python -m bench NAME --json` (see bench/__main__.py)."""

from __future__ import annotations

import os


def load_1min() -> float | None:
    """The 1-minute load average, where the platform has one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
