"""Random programs over the margin half of the core (Hypothesis stateful).

Orders, cancels, leverage and isolated-margin changes, index moves including crashes
and spikes of 10-60 %, funding times. After every command: money is conserved to the
quantum, no balance is negative, no open position is below maintenance margin, the
book invariants hold, and the margin monitor agrees with a full scan, exactly, at the
mark and at every position's liquidation tick and the ticks beside it. Under the
`median` mark, time also passes in steps of seconds to minutes (so the time-weighted
basis and premium fill their window), quotes far off the index rest for a moment, and
the mark stays inside its band around the index. Every machine runs under each
liquidation policy (`binance`, `bitmex`, `hyperliquid`, `dydx`), chosen by the
instrument; Hyperliquid's also with a threshold low enough that most positions are
liquidated in slices, and BitMEX's also without ADL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import FUND
from exchange.core.liquidation import HyperliquidLiquidation
from exchange.core.margin import is_liquidatable
from exchange.core.numbers import RATE_ONE, ceil_div

SYM = "BTCUSDT"
USDT = 10**8
MAKER = 1
TRADERS = (2, 3, 4, 5, 6)
SPOOFER = 7
START = 300_000  # 30,000.0 USDT


class MarginMachine(RuleBasedStateMachine):
    mark_method = "index"
    band_up = band_down = 5_000_000  # the shipped 5 %
    liquidation_policy = "binance"
    engine: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        btc = next(i for i in load_instruments() if i.symbol == SYM)
        inst = replace(
            btc,
            mark_method=self.mark_method,
            max_open_orders=1000,
            band_up=self.band_up,
            band_down=self.band_down,
            liquidation_policy=self.liquidation_policy,
        )
        self.ex = Exchange([inst], **self.engine)
        self.now = 1
        self.do(C.CreateAccount(account=MAKER))
        self.do(C.Deposit(account=MAKER, asset="USDT", amount=10**9 * USDT))
        for a in TRADERS:
            self.do(C.CreateAccount(account=a))
            self.do(C.Deposit(account=a, asset="USDT", amount=(2_000 + 3_000 * a) * USDT))
        self.do(C.CreateAccount(account=SPOOFER))
        self.do(C.Deposit(account=SPOOFER, asset="USDT", amount=10**8 * USDT))
        self.do(C.SetIndexPrice(symbol=SYM, price=START))
        self.quote()

    def do(self, cmd: C.Command) -> list[E.Event]:
        self.now += 1_000_000
        return self.ex.handle(replace(cmd, ts=self.now))

    @property
    def market(self):  # type: ignore[no-untyped-def]
        return self.ex.markets[SYM]

    @rule()
    def quote(self) -> None:
        """The maker replaces its ladder around the index: 6 levels a side, 0.3 % apart."""
        self.do(C.CancelAllOrders(account=MAKER, symbol=SYM))
        idx = self.market.index
        for k in range(1, 7):
            step = idx * 3 * k // 1000
            self.do(
                C.PlaceOrder(account=MAKER, symbol=SYM, side="BUY", qty=300 * k, price=idx - step)
            )
            self.do(
                C.PlaceOrder(account=MAKER, symbol=SYM, side="SELL", qty=300 * k, price=idx + step)
            )

    @rule(
        a=st.sampled_from(TRADERS),
        buy=st.booleans(),
        qty=st.integers(1, 3000),
        market=st.booleans(),
        off=st.integers(-30, 30),
        reduce=st.booleans(),
    )
    def trade(self, a: int, buy: bool, qty: int, market: bool, off: int, reduce: bool) -> None:
        side = "BUY" if buy else "SELL"
        if market:
            self.do(
                C.PlaceOrder(
                    account=a, symbol=SYM, side=side, qty=qty, type="MARKET", reduce_only=reduce
                )
            )
        else:
            price = self.market.mark * (1000 + off) // 1000
            self.do(
                C.PlaceOrder(
                    account=a, symbol=SYM, side=side, qty=qty, price=price, reduce_only=reduce
                )
            )

    @rule(a=st.sampled_from(TRADERS), lev=st.integers(1, 130))
    def leverage(self, a: int, lev: int) -> None:
        self.do(C.SetLeverage(account=a, symbol=SYM, leverage=lev))

    @rule(a=st.sampled_from(TRADERS), amount=st.integers(-2_000 * USDT, 2_000 * USDT).filter(bool))
    def adjust_margin(self, a: int, amount: int) -> None:
        self.do(C.AdjustIsolatedMargin(account=a, symbol=SYM, amount=amount))

    @rule(a=st.sampled_from(TRADERS), pick=st.integers(0, 100))
    def cancel(self, a: int, pick: int) -> None:
        opens = self.ex.open_orders(a, SYM)
        if opens:
            self.do(
                C.CancelOrder(account=a, symbol=SYM, order_id=opens[pick % len(opens)].order_id)
            )

    @rule(a=st.sampled_from(TRADERS), pct=st.integers(1, 8))
    def stop_loss(self, a: int, pct: int) -> None:
        seat = self.ex.accounts[a].seats.get(SYM)
        if seat is None or seat.qty == 0:
            return
        mark = self.market.mark
        long = seat.qty > 0
        stop = mark * (100 - pct) // 100 if long else mark * (100 + pct) // 100
        self.do(
            C.PlaceOrder(
                account=a,
                symbol=SYM,
                side="SELL" if long else "BUY",
                qty=abs(seat.qty),
                type="STOP_MARKET",
                stop_price=stop,
                reduce_only=True,
            )
        )

    @rule(pct=st.integers(-5, 5))
    def drift(self, pct: int) -> None:
        self.do(C.SetIndexPrice(symbol=SYM, price=self.market.index * (100 + pct) // 100))

    @rule(a=st.sampled_from(TRADERS), past=st.integers(0, 3))
    def to_the_edge(self, a: int, past: int) -> None:
        """The index moves to just past one position's liquidation tick: a liquidation
        with equity near its maintenance margin (a slice, not a backstop)."""
        seat = self.ex.accounts[a].seats.get(SYM)
        if seat is None or seat.qty == 0 or seat.liq <= past:
            return
        price = seat.liq - past if seat.qty > 0 else seat.liq + past
        self.do(C.SetIndexPrice(symbol=SYM, price=price))

    @rule(pct=st.integers(10, 60), down=st.booleans())
    def shock(self, pct: int, down: bool) -> None:
        f = 100 - pct if down else 100 + pct
        self.do(C.SetIndexPrice(symbol=SYM, price=self.market.index * f // 100))

    @precondition(lambda self: any(s.qty for s in self.market.seats.values()))
    @rule()
    def funding_time(self) -> None:
        events = self.do(C.AdvanceClock(ts=self.market.next_funding_ts))
        del events  # replaced below: the clock moved inside `do`; settle explicitly
        self.now = max(self.now, self.market.next_funding_ts)
        evs = self.ex.handle(C.AdvanceClock(ts=self.now))
        paid = [e.amount for e in evs if isinstance(e, E.FundingPaid)]
        assert sum(paid) == 0, "funding must be zero-sum to the quantum"

    @invariant()
    def invariants(self) -> None:
        self.ex._check()  # books, orders, reservations, conservation, no negative balance

    @invariant()
    def nobody_below_maintenance(self) -> None:
        m = self.market
        if m.queued:
            return
        inst = m.inst
        for a, seat in m.seats.items():
            if a != FUND and seat.qty:
                assert not is_liquidatable(inst, seat.qty, seat.cost, seat.margin, m.mark), (
                    f"account {a} below maintenance"
                )

    @invariant()
    def monitor_agrees_with_full_scan(self) -> None:
        m = self.market
        inst = m.inst
        seats = {a: s for a, s in m.seats.items() if a != FUND and s.qty and not s.liquidating}
        probes = {m.mark, m.mark * 99 // 100, m.mark * 101 // 100}
        for s in seats.values():
            probes.update((s.liq - 1, s.liq, s.liq + 1))
        for p in probes:
            if p <= 0:
                continue
            exact = {
                a for a, s in seats.items() if is_liquidatable(inst, s.qty, s.cost, s.margin, p)
            }
            assert set(m.monitor.due_scan(p)) == exact, f"monitor and scan disagree at {p}"


class LastPriceMarginMachine(MarginMachine):
    """The same with the mark following the last trade: liquidation fills move the mark."""

    mark_method = "last"


class MedianMarginMachine(MarginMachine):
    mark_method = "median"

    @rule(seconds=st.integers(1, 400))
    def wait(self, seconds: int) -> None:
        """Time passes; the index feed ticks once at the end of it."""
        self.now += seconds * 10**9
        self.do(C.SetIndexPrice(symbol=SYM, price=self.market.index))

    @invariant()
    def mark_within_band(self) -> None:
        m = self.market
        if m.index <= 0 or m.mark <= 0:
            return
        band = m.inst.mark_band
        lo = ceil_div(m.index * (RATE_ONE - band), RATE_ONE)
        hi = m.index * (RATE_ONE + band) // RATE_ONE
        assert lo <= m.mark <= hi, f"mark {m.mark} outside the band around {m.index}"


class MedianSpoofMachine(MedianMarginMachine):
    """The median mark with a price band wide enough to rest quotes at 2-10× the index
    (or a tenth of it): a spoofer rests one, the next commands sample it, it cancels."""

    band_up = 990_000_000  # orders may reach 10.9× the mark
    band_down = 95_000_000  # and 5 % of it

    @rule(factor=st.integers(2, 10), up=st.booleans(), linger=st.integers(0, 3))
    def spoof(self, factor: int, up: bool, linger: int) -> None:
        idx = self.market.index
        price = idx * factor if up else max(1, idx // factor)
        self.do(
            C.PlaceOrder(
                account=SPOOFER, symbol=SYM, side="BUY" if up else "SELL", qty=1, price=price
            )
        )
        self.now += linger * 10**9
        self.do(C.SetIndexPrice(symbol=SYM, price=idx))
        self.do(C.CancelAllOrders(account=SPOOFER, symbol=SYM))


def _under(base: type[MarginMachine], policy: str, **engine: Any) -> type[MarginMachine]:
    """`base` with its positions liquidated by another policy."""
    name = f"{base.__name__}_{policy}" + ("_" + "_".join(engine) if engine else "")
    return type(name, (base,), {"liquidation_policy": policy, "engine": engine})


class HyperliquidSlicesMachine(MarginMachine):
    """Hyperliquid's rules with every position over 1,000 USDT "large": partial
    liquidations (slices, cooldowns that `wait` lets run out, backstops) on most."""

    engine = {"policy": HyperliquidLiquidation(large_notional=1_000 * USDT)}

    @rule(seconds=st.integers(1, 60))
    def wait(self, seconds: int) -> None:
        self.now += seconds * 10**9
        self.do(C.AdvanceClock())


_settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MarginMachine.TestCase.settings = _settings
LastPriceMarginMachine.TestCase.settings = _settings
MedianMarginMachine.TestCase.settings = _settings
MedianSpoofMachine.TestCase.settings = _settings
TestMarginIndexMark = MarginMachine.TestCase
TestMarginLastMark = LastPriceMarginMachine.TestCase
TestMarginMedianMark = MedianMarginMachine.TestCase
TestMarginMedianMarkSpoofed = MedianSpoofMachine.TestCase

_policy_settings = settings(_settings, max_examples=25)
TestMarginIndexMarkBitmex = _under(MarginMachine, "bitmex").TestCase
TestMarginLastMarkBitmex = _under(LastPriceMarginMachine, "bitmex").TestCase
TestMarginLastMarkBitmexNoAdl = _under(LastPriceMarginMachine, "bitmex", adl=False).TestCase
TestMarginIndexMarkHyperliquid = _under(MarginMachine, "hyperliquid").TestCase
TestMarginLastMarkHyperliquid = _under(LastPriceMarginMachine, "hyperliquid").TestCase
TestMarginIndexMarkDydx = _under(MarginMachine, "dydx").TestCase
TestMarginLastMarkDydx = _under(LastPriceMarginMachine, "dydx").TestCase
for _case in (
    TestMarginIndexMarkBitmex,
    TestMarginLastMarkBitmex,
    TestMarginLastMarkBitmexNoAdl,
    TestMarginIndexMarkHyperliquid,
    TestMarginLastMarkHyperliquid,
    TestMarginIndexMarkDydx,
    TestMarginLastMarkDydx,
):
    _case.settings = _policy_settings
# slices need a position, a move to its edge and a cooldown running out: longer programs
TestMarginIndexMarkHyperliquidSlices = HyperliquidSlicesMachine.TestCase
TestMarginIndexMarkHyperliquidSlices.settings = settings(
    _settings, max_examples=100, stateful_step_count=60
)
