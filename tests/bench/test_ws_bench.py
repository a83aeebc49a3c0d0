"""`python -m bench ws` runs end to end (a short smoke run; the real figures are by hand)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench import ws
from bench.__main__ import available

ROOT = Path(__file__).resolve().parents[2]


def test_ws_bench_reports_every_figure() -> None:
    r = ws.run(argparse.Namespace(clients=2, seconds=0.5, warmup=0.2))
    for k in ("acks_per_s", "p50_us", "p99_us", "floor_acks_per_s", "floor_p50_us",
              "floor_p99_us", "ratio_vs_floor"):  # fmt: skip
        assert r[k] > 0, (k, r)
    assert r["ratio_vs_floor"] == round(r["acks_per_s"] / r["floor_acks_per_s"], 3)


def test_dispatcher_lists_and_runs_benchmarks() -> None:
    assert "ws" in available()
    out = subprocess.run([sys.executable, "-m", "bench"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "ws" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bench", "nope"], capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode == 2
    res = subprocess.run(
        [sys.executable, "-m", "bench", "ws", "--json", "--clients", "1", "--seconds", "0.3",
         "--warmup", "0.1"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-1000:]
    assert json.loads(res.stdout)["acks_per_s"] > 0
