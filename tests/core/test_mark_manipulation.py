"""Manipulating the mark with the book: resting quotes far off the index, wash trades.

A thin market: index 20,000, one short of 1 BTC at 20× (liquidated at a mark of about
+4.6 %) against a 2× long, and an attacker whose instrument band lets orders rest up to
10.9× the mark. Under the `median` mark the basis and the premium are time-weighted over
300 one-second samples and each sample is clamped to ±`mark_band` (5 %), the mark itself
too; under `mid` and `last` the same attacks liquidate the short, so each test can fail.
"""

from __future__ import annotations

from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.numbers import RATE_ONE
from tests.core.helpers_margin import BTC, FUNDS, SYM, Sim, btc, of, px

SECOND = 10**9
IDX = px(20_000)
WIDE = 990 * RATE_ONE // 100  # band_up 9.9: orders may reach 10.9× the mark
VICTIM, LONG, ATTACKER = 1, 2, 3


def thin_market(method: str) -> Sim:
    s = Sim(
        btc(mark_method=method, band_up=WIDE),
        index=None,
        accounts={a: FUNDS for a in (VICTIM, LONG, ATTACKER)},
    )
    s.index(IDX)
    s.leverage(VICTIM, 20)
    s.leverage(LONG, 2)
    s.trade(buyer=LONG, seller=VICTIM, qty=BTC, price=IDX)
    assert s.pos(VICTIM).liquidation_price < IDX * 105 // 100
    return s


def within_band(s: Sim, events: list[E.Event]) -> None:
    band = s.inst.mark_band
    for e in of(events, E.MarkPriceChanged):
        assert abs(e.mark - e.index) * RATE_ONE <= e.index * band, (e.mark, e.index)


def rest_quotes_for_one_sample(s: Sim) -> list[E.Event]:
    """The attacker rests an ask at 10× the index and a bid a tick under it, an index
    update samples them, the attacker cancels; then index updates every second for 5 min."""
    out: list[E.Event] = []
    half = SECOND // 2
    out += s.do(s.order(ATTACKER, "SELL", 1, 10 * IDX, ts=half))
    out += s.do(s.order(ATTACKER, "BUY", 1, 10 * IDX - 1, ts=half))
    out += s.do(C.SetIndexPrice(symbol=SYM, price=IDX, ts=SECOND))
    out += s.do(C.CancelAllOrders(account=ATTACKER, symbol=SYM, ts=SECOND + half))
    for k in range(2, 302):
        out += s.do(C.SetIndexPrice(symbol=SYM, price=IDX, ts=k * SECOND))
    return out


def test_quotes_at_ten_times_the_index_for_one_sample_move_the_median_by_a_sliver() -> None:
    s = thin_market("median")
    evs = rest_quotes_for_one_sample(s)
    assert not of(evs, E.OrderRejected)  # the quotes really rested
    assert not of(evs, E.PositionLiquidated)
    within_band(s, evs)
    # one clamped sample of 300: the basis moves p2 by at most band·index/300 (6.67 USDT);
    # the premium sample moves p1 by the funding estimate's share; the median is at most
    # the larger of the two, far inside the clamp
    band_move = IDX * s.inst.mark_band // RATE_ONE // 300
    interest = IDX * s.inst.interest_rate // RATE_ONE
    top = max([IDX] + [e.mark for e in of(evs, E.MarkPriceChanged)])
    assert top - IDX <= band_move + interest + 1
    assert s.qty(VICTIM) == -BTC


def test_the_same_quotes_liquidate_the_short_under_the_mid_mark() -> None:
    s = thin_market("mid")
    evs = rest_quotes_for_one_sample(s)
    assert [e.account for e in of(evs, E.PositionLiquidated)] == [VICTIM]


def pump(s: Sim, factors: tuple[int, ...] = (5, 10, 20)) -> tuple[list[E.Event], list[int]]:
    """Wash trades: the attacker sells to itself at each multiple of the index in turn,
    one second apart (a wash trade leaves it flat). Returns the events and the codes of
    the steps the exchange refused (0 when the trade happened)."""
    out: list[E.Event] = []
    codes: list[int] = []
    for i, f in enumerate(factors, 1):
        ts = i * SECOND
        ask = s.do(s.order(ATTACKER, "SELL", 1, f * IDX, ts=ts))
        out += ask
        rejected = of(ask, E.OrderRejected)
        if rejected:
            codes.append(rejected[0].code)
            continue
        out += s.do(s.order(ATTACKER, "BUY", 1, f * IDX, ts=ts))
        codes.append(0)
        out += s.do(C.SetIndexPrice(symbol=SYM, price=IDX, ts=ts + SECOND // 2))
    return out, codes


def test_wash_trades_pumping_the_last_price_liquidate_nobody_under_median() -> None:
    s = thin_market("median")
    evs, codes = pump(s)
    # 5× and 10× traded; 20× is outside the price band around the (unmoved) mark
    assert codes == [0, 0, -4016]
    assert s.market_state.last == 10 * IDX
    assert s.qty(ATTACKER) == 0
    assert not of(evs, E.PositionLiquidated)
    within_band(s, evs)
    assert s.mark - IDX <= IDX * s.inst.interest_rate // RATE_ONE + 1


def test_the_same_pump_liquidates_the_short_under_the_last_mark() -> None:
    s = thin_market("last")
    evs, codes = pump(s)
    assert codes == [0, 0, 0]  # the band follows the pumped mark: 20× trades too
    assert s.market_state.last == 20 * IDX
    assert VICTIM in {e.account for e in of(evs, E.PositionLiquidated)}
