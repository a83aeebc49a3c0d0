"""Command line: ``python -m replay convert IN... -o OUT.jsonl[.gz]`` and ``detect FILE...``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from replay.errors import ReplayFormatError
from replay.eventlog import write_event_log
from replay.formats import FORMATS, detect_format, read
from replay.merge import merge

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m replay``."""
    parser = argparse.ArgumentParser(
        prog="python -m replay", description="Read historical market data files."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    conv = sub.add_parser(
        "convert",
        help="merge files into one canonical event log (JSON lines)",
        description="Read every input, merge them in time order, write one event log "
        "(gzip when OUT ends in .gz).",
    )
    conv.add_argument("inputs", nargs="+", metavar="IN", help="input files (.csv, .gz, .zip)")
    conv.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.jsonl[.gz]")
    conv.add_argument("--format", choices=FORMATS, help="force the input format (default: detect)")
    conv.add_argument(
        "--by",
        choices=("exchange", "local"),
        default="exchange",
        help="merge by exchange time or local arrival time (default: exchange)",
    )
    conv.add_argument("--symbol", help="symbol for files without a symbol column")
    conv.add_argument("--exchange", help="exchange id for files without one")
    conv.add_argument("--kind", choices=("trade", "mark", "index", "premium"), help="OHLCV kind")
    conv.add_argument("--interval", help="OHLCV bar length, e.g. 1m (default: from name or 1m)")

    det = sub.add_parser("detect", help="print the detected format of each file")
    det.add_argument("inputs", nargs="+", metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on a bad input file)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "detect":
            for path in args.inputs:
                print(f"{path}: {detect_format(path)}")
            return 0
        started = time.perf_counter()
        streams = [
            read(
                p,
                args.format,
                symbol=args.symbol,
                exchange=args.exchange,
                kind=args.kind,
                interval=args.interval,
            )
            for p in args.inputs
        ]
        n = write_event_log(args.output, merge(streams, by=args.by))
        elapsed = time.perf_counter() - started
        print(f"wrote {n} events to {args.output} in {elapsed:.2f} s", file=sys.stderr)
        return 0
    except ReplayFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
