"""The golden set: fixed command streams give byte-identical events and state hashes.

Each stream in `tests/core/golden/streams.py` (the `bench engine` stream, cascades under
every mark method, stops, amends, STP, funding, truncated cascades, ADL and the
insurance fund's takeover, a busy market under every mark method) runs through a fresh
`Exchange`; the SHA-256 of its events' reprs and its final `state_hash()` must equal
`tests/core/golden/expected.json`. A deliberate change of behaviour regenerates the
affected streams with `.venv/bin/python -m tests.core.golden.streams NAME...`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.golden import streams as G

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "bench" / "reference_book.py"
EXPECTED = G.load_expected()


def params() -> list[object]:
    out: list[object] = []
    for name in G.STREAMS:
        marks = [pytest.mark.slow] if name in G.SLOW else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def test_every_stream_has_an_expected_digest() -> None:
    assert sorted(EXPECTED) == sorted(G.STREAMS)


@pytest.mark.parametrize("name", params())
def test_stream_is_byte_identical(name: str) -> None:
    if name in G.NEEDS_REFERENCE and not REFERENCE.exists():
        pytest.skip(f"the reference workload is not at {REFERENCE}")
    got = G.digest(name)
    want = EXPECTED[name]
    assert got["counts"] == want["counts"]
    assert got["events_sha256"] == want["events_sha256"]
    assert got["state_hash"] == want["state_hash"]


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("cascade_last", ("PositionLiquidated", "CascadeEnded")),
        ("cascade_mid", ("PositionLiquidated", "CascadeEnded")),
        ("cascade_median", ("PositionLiquidated", "CascadeEnded")),
        ("stops_and_amends", ("OrderTriggered", "OrderAmended")),
        ("self_trade", ("OrderExpired", "OrderCanceled")),
        ("funding", ("FundingPaid", "FundingSettled")),
        ("adl_and_takeover", ("PositionAutoDeleveraged", "PositionLiquidated")),
        ("busy_median", ("OrderAmended", "OrderTriggered", "FundingPaid", "PositionLiquidated")),
    ],
)
def test_stream_exercises_what_it_is_named_for(name: str, kinds: tuple[str, ...]) -> None:
    counts = EXPECTED[name]["counts"]
    assert all(counts.get(k, 0) > 0 for k in kinds), counts


def test_truncated_streams_truncate_and_takeover_happens() -> None:
    instruments, engine, cmds = G.STREAMS["truncated_median"]()
    ex = G.Exchange(instruments, **engine)
    events = [e for c in cmds for e in ex.handle(c)]
    ends = [e for e in events if type(e).__name__ == "CascadeEnded"]
    assert any(e.truncated for e in ends) and not ends[-1].truncated  # type: ignore[attr-defined]
    instruments, engine, cmds = G.STREAMS["adl_and_takeover"]()
    ex = G.Exchange(instruments, **engine)
    events = [e for c in cmds for e in ex.handle(c)]
    assert any(getattr(e, "fund_takeover_qty", 0) > 0 for e in events)
