"""Replaying the 2022-01-21 sell-off (and the 2022-01-24 rebound) from real 1-minute bars with a
leveraged population: every position is liquidated in the minute its liquidation price is
crossed, checked against a brute-force recomputation over the bars from the formulas
(docs/formulas.md), not from the core's liquidation prices.

The population is one-sided in each case, so auto-deleveraging (which would shrink other
members' positions mid-replay) only ever hits the replay account; funding is off (interest
rate and clamp 0, no book: the premium is 0), so isolated margins do not move.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import events as E
from exchange.core.instruments import Instrument
from exchange.core.numbers import RATE_ONE, ceil_div
from replay import Kline, read
from replay.convert import NEAREST, Units
from replay.player import PlayerConfig, play
from replay.population import Population, PopulationSpec
from tests.replay.helpers import REAL_DATA

BARS = REAL_DATA / "btc-perp-20211231-20220201_1m.csv"
SYM = "BTCUSDT"
MIN = 60 * 10**9

pytestmark = pytest.mark.skipif(
    not BARS.exists(), reason=f"{BARS.name} is absent (../shared/data/real is not beside the repo)"
)


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 10**9


def maintenance(inst: Instrument, notional: int) -> int:
    b = inst.brackets[-1]
    for br in inst.brackets:
        if br.floor < notional <= br.cap:
            b = br
            break
    return ceil_div(notional * b.mmr, RATE_ONE) - b.cum


def liquidated_at(inst: Instrument, qty: int, cost: int, margin: int, price: int) -> bool:
    """margin + uPnL ≤ MM at mark `price` (formulas.md, "Liquidation price")."""
    lv = inst.lot_value
    upnl = qty * price * lv - cost
    return margin + upnl <= maintenance(inst, abs(qty) * price * lv)


def replay(
    start: str, end: str, long_share: str, seed: int
) -> tuple[Exchange, list, list[Kline], Population]:
    insts = [
        dataclasses.replace(i, mark_method="index", interest_rate=0, funding_clamp=0)
        for i in load_instruments()
    ]
    ex = Exchange(insts)
    spec = PopulationSpec(
        accounts=300,
        seed=seed,
        long_share=Decimal(long_share),
        leverage=((3, 1), (5, 1), (10, 1), (20, 2), (25, 2), (50, 2), (75, 1), (100, 1)),
        notional=(Decimal(500), Decimal(50_000)),
        entry_spread=Decimal("0.004"),
    )
    pop = Population(spec)
    events: list[E.Event] = []
    cfg = PlayerConfig(start_ns=ns(start), end_ns=ns(end))
    # a window is of bar open times, [start, end)
    bars = [k for k in read(BARS, symbol=SYM) if cfg.start_ns <= k.open_ts < cfg.end_ns]  # type: ignore[operator]
    play(ex, bars, cfg, population=pop, sink=events.extend)
    return ex, events, bars, pop  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("start", "end", "long_share", "seed"),
    [
        ("2022-01-21 12:00", "2022-01-22 00:00", "1", 7),  # the sell-off: longs
        ("2022-01-24 14:00", "2022-01-25 02:00", "0", 8),  # the rebound: shorts
    ],
    ids=["selloff-longs", "rebound-shorts"],
)
def test_each_position_is_liquidated_in_the_minute_its_price_is_crossed(
    start: str, end: str, long_share: str, seed: int
) -> None:
    ex, events, bars, pop = replay(start, end, long_share, seed)
    inst = ex.instruments[SYM]
    units = Units(inst)
    members = {m.account for m in pop.members}
    opened_at = bars[0].exchange_ts  # the population opens after the first bar
    positions: dict[int, tuple[int, int, int]] = {}
    liquidations: dict[int, int] = {}
    for ev in events:
        if type(ev) is E.PositionChanged and ev.account in members and ev.ts == opened_at:
            positions[ev.account] = (ev.qty, ev.cost, ev.margin)
        elif type(ev) is E.PositionLiquidated and ev.account in members:
            assert ev.account not in liquidations, "liquidated twice"
            liquidations[ev.account] = ev.ts
        elif type(ev) is E.PositionAutoDeleveraged:
            assert ev.account not in members, "ADL hit a population member"
    assert len(positions) == pop.opened == 300
    # brute force: the first bar after the opening whose extreme crosses the position's edge
    expected: dict[int, int] = {}
    for account, (qty, cost, margin) in positions.items():
        for k in bars[1:]:
            extreme = units.price(k.low if qty > 0 else k.high, NEAREST)
            if liquidated_at(inst, qty, cost, margin, extreme):
                expected[account] = k.open_ts
                break
    got = {a: ts - ts % MIN for a, ts in liquidations.items()}
    assert got == expected
    # a real sell-off: many, but not all, positions go
    assert 0.2 * len(positions) < len(expected) < len(positions)
    # and every liquidation happened in the bar (not at its end)
    for a, ts in liquidations.items():
        assert expected[a] <= ts < expected[a] + MIN
    ex._check()


def test_the_population_is_deterministic() -> None:
    a = Population(PopulationSpec(accounts=50, seed=3))
    b = Population(PopulationSpec(accounts=50, seed=3))
    c = Population(PopulationSpec(accounts=50, seed=4))
    assert a.members == b.members
    assert a.members != c.members
    levs = {m.leverage for m in a.members}
    assert levs <= {3, 5, 10, 20, 50, 100} and len(levs) > 3
    assert 15 < sum(m.long for m in a.members) < 45
    assert all(Decimal(1000) <= m.notional <= Decimal(100_000) for m in a.members)
    assert all(-5000 <= m.offset_ppm <= 5000 for m in a.members)
