"""Funding (issue 3, item 8): at each funding time the rate is
premium + clamp(interest − premium, ±0.05 %), with the premium averaged over the
index samples of the interval; longs pay shorts when it is positive, from isolated
margin, zero-sum to the quantum; a payment can trigger a liquidation.

Markets start at engine time 0, so the first funding time is 8 h (`INTERVAL`).
"""

from __future__ import annotations

import pytest

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.margin import is_liquidatable
from exchange.core.numbers import ceil_div
from tests.core.helpers_margin import (
    BTC,
    FUND,
    FUNDS,
    HOUR,
    INTERVAL,
    LV,
    RATE_ONE,
    SYM,
    Sim,
    first,
    of,
    px,
    usdt,
)

INTEREST = 10_000  # 0.01 %
CLAMP = 50_000  # 0.05 %


def rate_of(premium: int) -> int:
    return premium + max(-CLAMP, min(CLAMP, INTEREST - premium))


def premium_of(index: int, bid: int | None = None, ask: int | None = None) -> int:
    p = 0
    if bid is not None and bid > index:
        p += (bid - index) * RATE_ONE // index
    if ask is not None and ask < index:
        p -= (index - ask) * RATE_ONE // index
    return p


def long_short(index: int | None = None) -> Sim:
    """1 long 1 BTC, 2 short 1 BTC, both at 50,000; 3 can quote; no index yet."""
    s = Sim(index=index, accounts={1: FUNDS, 2: FUNDS, 3: FUNDS})
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    return s


@pytest.mark.parametrize(
    ("quote", "want"),
    [
        (None, 10_000),  # no premium: the interest rate
        (("BUY", px(50_100)), 150_000),  # premium 0.2 %: 0.2 − 0.05
        (("BUY", px(50_015)), 10_000),  # premium 0.03 %: within the clamp → interest
        (("BUY", px(50_040)), 30_000),  # premium 0.08 %: 0.08 − 0.05
        (("SELL", px(49_950)), -50_000),  # premium −0.1 %: −0.1 + 0.05
        (("SELL", px(49_990)), 10_000),  # premium −0.02 %: → interest
        (("SELL", px(49_700)), -550_000),  # premium −0.6 %
    ],
)
def test_rate_is_premium_plus_clamped_interest_minus_premium(
    quote: tuple[str, int] | None, want: int
) -> None:
    s = long_short()
    if quote is not None:
        s.limit(3, quote[0], 10, quote[1])
    bid = quote[1] if quote and quote[0] == "BUY" else None
    ask = quote[1] if quote and quote[0] == "SELL" else None
    assert rate_of(premium_of(px(50_000), bid, ask)) == want
    s.index(px(50_000))
    assert s.ex.market_view(SYM).funding_rate == want  # the running estimate
    m1, m2 = s.pos(1).margin, s.pos(2).margin
    evs = s.clock(INTERVAL)
    fs = first(evs, E.FundingSettled)
    assert (fs.symbol, fs.rate, fs.funding_ts, fs.next_funding_ts) == (
        SYM,
        want,
        INTERVAL,
        2 * INTERVAL,
    )
    due = ceil_div(usdt(50_000) * abs(want), RATE_ONE)
    paid = {e.account: e.amount for e in of(evs, E.FundingPaid)}
    sign = 1 if want > 0 else -1  # positive: the long pays
    assert paid == {1: -sign * due, 2: sign * due}
    assert fs.total == due
    # paid from and into isolated margin
    assert (s.pos(1).margin, s.pos(2).margin) == (m1 - sign * due, m2 + sign * due)
    for e in of(evs, E.FundingPaid):
        assert (e.rate, e.mark, e.position_qty) == (want, px(50_000), s.qty(e.account))
    mv = s.ex.market_view(SYM)
    assert (mv.next_funding_ts, mv.funding_rate) == (2 * INTERVAL, INTEREST)


def test_premium_is_averaged_over_the_interval_samples() -> None:
    s = long_short()
    oid = first(s.limit(3, "BUY", 10, px(50_100)), E.OrderAccepted).order_id
    s.index(px(50_000))  # premium 0.2 %
    s.ok(C.CancelOrder(account=3, symbol=SYM, order_id=oid))
    s.index(px(50_000), ts=HOUR)  # premium 0
    s.limit(3, "BUY", 10, px(50_010))
    s.index(px(50_000), ts=2 * HOUR)  # premium 0.02 %
    avg = (200_000 + 0 + 20_000) // 3
    evs = s.clock(INTERVAL)
    assert first(evs, E.FundingSettled).rate == rate_of(avg) == 73_333 - 50_000


def test_every_funding_time_passed_is_settled_and_the_window_restarts() -> None:
    s = long_short()
    s.limit(3, "BUY", 10, px(50_100))
    s.index(px(50_000))
    evs = s.clock(3 * INTERVAL + HOUR)
    fs = of(evs, E.FundingSettled)
    assert [f.funding_ts for f in fs] == [INTERVAL, 2 * INTERVAL, 3 * INTERVAL]
    # the premium samples belong to the first interval only; then the interest rate
    assert [f.rate for f in fs] == [150_000, INTEREST, INTEREST]
    assert s.ex.market_view(SYM).next_funding_ts == 4 * INTERVAL


def test_no_positions_no_payments() -> None:
    s = Sim(accounts={1: FUNDS})
    s.limit(1, "BUY", 10, px(49_000))
    evs = s.clock(INTERVAL)
    assert not of(evs, E.FundingPaid)
    assert s.ex.market_view(SYM).next_funding_ts == 2 * INTERVAL


@pytest.mark.parametrize("quote_side", ["BUY", "SELL"])
def test_funding_is_zero_sum_to_the_quantum_across_uneven_positions(quote_side: str) -> None:
    longs = {1: 7, 2: 13, 3: 1_001}
    shorts = {4: 333, 5: 688}
    s = Sim(index=None, accounts={a: FUNDS for a in range(1, 7)})
    s.limit(4, "SELL", 333, px(50_000))
    s.limit(5, "SELL", 688, px(50_050))
    s.limit(1, "BUY", 7, px(50_000))
    s.limit(2, "BUY", 13, px(50_000))
    s.limit(3, "BUY", 1_001, px(50_050))
    assert {a: s.qty(a) for a in range(1, 6)} == {**longs, **{a: -q for a, q in shorts.items()}}
    index = 500_037
    quote = px(50_100) if quote_side == "BUY" else px(49_900)
    s.limit(6, quote_side, 10, quote)
    s.index(index)
    prem = premium_of(index, quote, None) if quote_side == "BUY" else premium_of(index, None, quote)
    rate = rate_of(prem)
    assert rate not in (INTEREST, 0)
    margins = {a: s.pos(a).margin for a in range(1, 6)}
    evs = s.clock(INTERVAL)
    paid = {e.account: e.amount for e in of(evs, E.FundingPaid)}
    assert sum(paid.values()) == 0
    payers, receivers = (longs, shorts) if rate > 0 else (shorts, longs)
    # payers: ceil(notional × |rate|); receivers: pro rata, floored, the remainder a
    # quantum each by largest remainder (then account id)
    due = {a: ceil_div(q * index * LV * abs(rate), RATE_ONE) for a, q in payers.items()}
    total = sum(due.values())
    weight = sum(q * index * LV for q in receivers.values())
    parts = {a: divmod(total * q * index * LV, weight) for a, q in receivers.items()}
    left = total - sum(p for p, _ in parts.values())
    assert 0 < left < len(receivers)  # the uneven sizes leave a remainder to hand out
    bonus = sorted(parts, key=lambda a: (-parts[a][1], a))[:left]
    want = {a: -d for a, d in due.items()}
    want.update({a: p + (a in bonus) for a, (p, _) in parts.items()})
    assert paid == want
    assert first(evs, E.FundingSettled).total == total
    for a in range(1, 6):
        assert s.pos(a).margin == margins[a] + paid[a]


def test_funding_payment_can_trigger_a_liquidation() -> None:
    # the worked example's long (liquidated at ≤ 45,180.7) sits at a mark of 45,190:
    # equity 190 against a maintenance margin of 180.76; a 0.08 % funding tips it
    s = Sim(index=None, accounts={1: usdt(10_000), 2: FUNDS, 3: FUNDS})
    s.leverage(1, 10)
    s.leverage(3, 2)
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    s.limit(3, "BUY", 10, px(45_250))
    s.index(px(45_190))
    st = s.seat(1)
    assert not is_liquidatable(s.inst, st.qty, st.cost, st.margin, px(45_190))
    rate = s.ex.market_view(SYM).funding_rate
    assert rate == rate_of(premium_of(px(45_190), px(45_250)))
    due = ceil_div(BTC * px(45_190) * LV * rate, RATE_ONE)
    assert is_liquidatable(s.inst, st.qty, st.cost, st.margin - due, px(45_190))
    evs = s.clock(INTERVAL)
    names = [type(e).__name__ for e in evs]
    paid = [e for e in of(evs, E.FundingPaid) if e.account == 1]
    assert [p.amount for p in paid] == [-due]
    pl = first(evs, E.PositionLiquidated)
    assert (pl.account, pl.trigger_mark, pl.generation) == (1, px(45_190), 0)
    assert names.index("FundingSettled") < names.index("PositionLiquidated")
    assert s.qty(1) == 0


def test_insurance_fund_position_pays_funding_without_going_negative() -> None:
    # the fund takes over the worked example's long at 45,000 with nothing left over
    # (no bids, mark above bankruptcy), then owes funding on it as a long
    s = Sim(accounts={1: usdt(10_000), 2: FUNDS})
    s.leverage(1, 10)
    s.trade(buyer=1, seller=2, qty=BTC, price=px(50_000))
    evs = s.index(px(45_100))
    assert first(evs, E.PositionLiquidated).fund_takeover_qty == BTC
    assert s.qty(FUND) == BTC and s.fund() == 0
    evs = s.ex.handle(C.AdvanceClock(ts=INTERVAL))
    assert of(evs, E.FundingSettled)
    assert s.fund() >= 0, f"insurance fund balance {s.fund()} after paying funding"
    s.check()
