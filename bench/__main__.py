"""`python -m bench NAME [--json] [options]`: run one benchmark.

Each benchmark is a module `bench/<name>.py` with `run(args) -> dict` and, optionally,
`add_arguments(parser)`. The registry below names the known ones; any other module in
bench/ with a `run` function is found too. `--json` prints the result as one JSON
object (for scripts and CI logs); without it, one `key: value` per line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

REGISTRY: dict[str, str] = {
    "engine": "bench.engine",  # the core on the reference order stream
    "monitor": "bench.monitor",  # margin monitor scaling
    "cascade": "bench.cascade",  # a liquidation cascade
    "policies": "bench.policies",  # the same cascade under each liquidation policy
    "ws": "bench.ws",  # the WebSocket server vs a bare websockets floor
    "store": "bench.store",  # journal and snapshots
    "mqtt": "bench.mqtt",  # the MQTT bridge
    "replay": "bench.replay",  # historical data players
    "binance": "bench.binance",  # ccxt through the Binance gateway vs the native API
    "web": "bench.web",  # the web app in Chromium during a 10,000-position cascade
}


def available() -> dict[str, str]:
    """NAME → module for every benchmark whose module exists."""
    here = Path(__file__).resolve().parent
    present = {m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")}
    out = {name: mod for name, mod in REGISTRY.items() if mod.split(".")[-1] in present}
    for name in sorted(present - {m.split(".")[-1] for m in REGISTRY.values()}):
        out.setdefault(name, f"bench.{name}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(__doc__.strip().splitlines()[0])
        print("benchmarks: " + ", ".join(sorted(names)))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown benchmark {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    name = argv.pop(0)
    module = importlib.import_module(names[name])
    if not hasattr(module, "run"):
        print(f"{names[name]} has no run(args)", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=module.__doc__)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    result: dict[str, Any] = module.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
