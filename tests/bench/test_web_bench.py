"""`python -m bench web` runs end to end on a small cascade and reports its figures."""

from __future__ import annotations

import argparse

import pytest

from bench.__main__ import available
from tests.web.conftest import need_chromium


@pytest.mark.slow
def test_the_web_bench_reports_a_page_that_saw_the_whole_cascade() -> None:
    need_chromium()
    from bench import web

    assert available()["web"] == "bench.web"
    out = web.run(argparse.Namespace(positions=400, chromium="/usr/bin/chromium"))
    assert out["liquidations_on_page"] > 100 and out["messages"] > out["liquidations_on_page"]
    assert out["seconds_behind_at_end"] is not None and out["seconds_behind_at_end"] >= 0
    assert out["longest_frame_ms"] > 0 and out["slow_consumers_dropped"] == 0
    for k in ("baseline_seconds_behind", "bridge_seconds_behind", "frames"):
        assert k in out
