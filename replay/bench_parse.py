"""Parse-only throughput, the baseline the replay benchmark compares the player against.

``python -m replay.bench_parse FILE...`` prints events, seconds and events per second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from replay._source import PathLike
from replay.formats import read

__all__ = ["parse_only"]


def parse_only(paths: Iterable[PathLike]) -> int:
    """Read every file in full (detected formats) and return how many events were parsed."""
    n = 0
    for path in paths:
        for _ in read(path):
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """Time :func:`parse_only` over the files named on the command line."""
    paths = sys.argv[1:] if argv is None else argv
    started = time.perf_counter()
    n = parse_only(paths)
    elapsed = time.perf_counter() - started
    rate = n / elapsed if elapsed > 0 else float("inf")
    print(f"events={n} seconds={elapsed:.3f} events_per_s={rate:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
