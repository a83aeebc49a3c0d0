"""The fast book against a naive list model, over random programs (Hypothesis).

Both see the same place / cancel / amend / market commands; after every step the
fills so far must be identical and every structural invariant must hold.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import commands as C
from exchange.core import events as E

SYM = "BTCUSDT"
MID = 100_000
ACCOUNTS = 4


class NaiveBook:
    """Resting orders in a plain list; matching by sorting the whole list each time."""

    def __init__(self) -> None:
        self.orders: list[list[int]] = []  # [oid, side(0 buy), price, remaining, arrival]
        self.arrival = 0
        self.fills: list[tuple[int, int, int, int]] = []  # (taker, maker, price, qty)

    def _take(self, oid: int, side: int, limit: int, qty: int) -> int:
        opp = [
            o
            for o in self.orders
            if o[1] != side and (o[2] <= limit if side == 0 else o[2] >= limit)
        ]
        opp.sort(key=lambda o: (o[2] if side == 0 else -o[2], o[4]))
        for o in opp:
            if not qty:
                break
            n = min(qty, o[3])
            o[3] -= n
            qty -= n
            self.fills.append((oid, o[0], o[2], n))
        self.orders = [o for o in self.orders if o[3] > 0]
        return qty

    def would_take(self, side: int, price: int) -> bool:
        return any(
            o[1] != side and (o[2] <= price if side == 0 else o[2] >= price) for o in self.orders
        )

    def fillable(self, side: int, price: int) -> int:
        return sum(
            o[3]
            for o in self.orders
            if o[1] != side and (o[2] <= price if side == 0 else o[2] >= price)
        )

    def place(self, oid: int, side: int, price: int, qty: int, tif: str) -> None:
        left = self._take(oid, side, price, qty)
        if left and tif in ("GTC", "GTX"):
            self.arrival += 1
            self.orders.append([oid, side, price, left, self.arrival])

    def cancel(self, oid: int) -> bool:
        before = len(self.orders)
        self.orders = [o for o in self.orders if o[0] != oid]
        return len(self.orders) < before

    def amend(self, oid: int, filled: int, qty: int, price: int) -> None:
        o = next(o for o in self.orders if o[0] == oid)
        new_remaining = qty - filled
        if price == o[2] and new_remaining <= o[3]:
            o[3] = new_remaining
            return
        self.orders.remove(o)
        self.place(oid, o[1], price, new_remaining, "GTC")

    def l3(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted((o for o in self.orders if o[1] == 0), key=lambda o: (-o[2], o[4]))
        asks = sorted((o for o in self.orders if o[1] == 1), key=lambda o: (o[2], o[4]))
        return [(o[0], o[3]) for o in bids], [(o[0], o[3]) for o in asks]


def make_exchange() -> Exchange:
    btc = next(i for i in load_instruments() if i.symbol == SYM)
    ex = Exchange([replace(btc, mark_method="index", max_open_orders=10_000)])
    for a in range(1, ACCOUNTS + 1):
        ex.handle(C.CreateAccount(account=a))
        ex.handle(C.Deposit(account=a, asset="USDT", amount=10**9 * 10**8))
    ex.handle(C.SetIndexPrice(symbol=SYM, price=MID))
    return ex


prices = st.integers(MID - 40, MID + 40)
sizes = st.integers(1, 30)


class BookVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ex = make_exchange()
        self.model = NaiveBook()
        self.fills: list[tuple[int, int, int, int]] = []
        self.qty: dict[int, tuple[int, int]] = {}  # oid -> (ordered, filled)
        self.last_seq = self.ex.seq

    def run(self, cmd: C.Command) -> list[E.Event]:
        events = self.ex.handle(cmd)
        for e in events:
            assert e.seq > self.last_seq, "sequence must only grow"
            self.last_seq = e.seq
            if isinstance(e, E.OrderFilled):
                self.fills.append((e.taker_order_id, e.maker_order_id, e.price, e.qty))
                for oid in (e.taker_order_id, e.maker_order_id):
                    ordered, filled = self.qty[oid]
                    self.qty[oid] = (ordered, filled + e.qty)
            elif isinstance(e, E.OrderAccepted):
                self.qty[e.order_id] = (e.qty, 0)
            elif isinstance(e, E.OrderAmended):
                self.qty[e.order_id] = (e.qty, self.qty[e.order_id][1])
        return events

    def resting(self) -> list[int]:
        bids, asks = self.model.l3()
        return [oid for oid, _ in bids + asks]

    @rule(
        account=st.integers(1, ACCOUNTS),
        buy=st.booleans(),
        price=prices,
        qty=sizes,
        tif=st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTX"]),
    )
    def place(self, account: int, buy: bool, price: int, qty: int, tif: str) -> None:
        side = 0 if buy else 1
        events = self.run(
            C.PlaceOrder(
                account=account,
                symbol=SYM,
                side="BUY" if buy else "SELL",
                qty=qty,
                price=price,
                time_in_force=tif,
            )
        )
        oid = next((e.order_id for e in events if isinstance(e, E.OrderAccepted)), None)
        if tif == "GTX" and self.model.would_take(side, price):
            assert oid is None and events[0].code == -5022  # type: ignore[attr-defined]
            return
        if tif == "FOK" and self.model.fillable(side, price) < qty:
            assert oid is None and events[0].code == -5021  # type: ignore[attr-defined]
            return
        assert oid is not None, events
        self.model.place(oid, side, price, qty, tif)

    @rule(account=st.integers(1, ACCOUNTS), buy=st.booleans(), qty=st.integers(1, 120))
    def market(self, account: int, buy: bool, qty: int) -> None:
        events = self.run(
            C.PlaceOrder(
                account=account, symbol=SYM, side="BUY" if buy else "SELL", qty=qty, type="MARKET"
            )
        )
        oid = next(e.order_id for e in events if isinstance(e, E.OrderAccepted))
        lo, hi = self.ex._band(self.ex.markets[SYM])
        self.model._take(oid, 0 if buy else 1, hi if buy else lo, qty)

    @precondition(lambda self: bool(self.model.orders))
    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick: int) -> None:
        oid = self.resting()[pick % len(self.resting())]
        account = self.ex.orders[oid].account
        events = self.run(C.CancelOrder(account=account, symbol=SYM, order_id=oid))
        assert isinstance(events[0], E.OrderCanceled)
        assert self.model.cancel(oid)

    @rule(oid=st.integers(1, 400))
    def cancel_unknown_or_closed(self, oid: int) -> None:
        if oid in self.resting():
            return
        before = self.ex.state_hash()
        events = self.run(C.CancelOrder(account=1, symbol=SYM, order_id=oid))
        assert len(events) == 1 and events[0].code == -2011  # type: ignore[attr-defined]
        assert self.ex.state_hash() == before

    @precondition(lambda self: bool(self.model.orders))
    @rule(pick=st.integers(0, 10**6), dq=st.integers(-20, 20), dp=st.integers(-6, 6))
    def amend(self, pick: int, dq: int, dp: int) -> None:
        oid = self.resting()[pick % len(self.resting())]
        o = self.ex.orders[oid]
        filled = o.qty - o.remaining
        new_qty = max(filled + 1, o.qty + dq)
        new_price = o.price + dp
        events = self.run(
            C.AmendOrder(account=o.account, symbol=SYM, order_id=oid, qty=new_qty, price=new_price)
        )
        if o.tif == "GTX" and new_price != o.price and self.model.would_take(o.side, new_price):
            assert events[0].code == -5022  # type: ignore[attr-defined]
            return
        assert isinstance(events[0], E.OrderAmended), events
        self.model.amend(oid, filled, new_qty, new_price)

    @invariant()
    def same_fills_and_book(self) -> None:
        assert self.fills == self.model.fills
        bids, asks = self.ex.l3(SYM)
        mb, ma = self.model.l3()
        assert [(o.order_id, o.remaining) for o in bids] == mb
        assert [(o.order_id, o.remaining) for o in asks] == ma

    @invariant()
    def structure(self) -> None:
        self.ex._check()
        bids, asks = self.ex.depth(SYM)
        assert all(q > 0 for _, q in bids + asks), "empty level"
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True), (
            "bids must strictly descend"
        )
        assert [p for p, _ in asks] == sorted({p for p, _ in asks}), "asks must strictly ascend"
        if bids and asks:
            assert bids[0][0] < asks[0][0], "crossed book"
        resting = {o.order_id for side in self.ex.l3(SYM) for o in side}
        live = {oid for oid, o in self.ex.orders.items() if o.status < 2}
        assert resting == live, "id index differs from the resting orders"
        for ordered, filled in self.qty.values():
            assert 0 <= filled <= ordered


BookVersusModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBookVersusModel = BookVersusModel.TestCase
