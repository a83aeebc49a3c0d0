"""A cascade and the cyclic garbage collector: paused while the cascade runs, left as
it was found, the cascade's objects moved into the oldest generation at the end, and
nothing that someone else froze thawed."""

from __future__ import annotations

import gc

from bench.cascade import START, SYMBOL, build
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.engine import Exchange


def crash(ex: Exchange) -> list[E.Event]:
    events = ex.handle(C.SetIndexPrice(symbol=SYMBOL, price=START * 70 // 100))
    assert sum(type(e) is E.PositionLiquidated for e in events) > 100
    return events


def test_a_cascade_leaves_the_collector_on_and_its_objects_in_the_oldest_generation() -> None:
    ex = build(300, "index")
    gc.collect()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    events = crash(ex)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    liquidation_orders = [o for o in ex.orders.values() if o.type == "LIQUIDATION"]
    assert liquidation_orders and all(id(o) in oldest for o in liquidation_orders)
    assert all(id(e) in oldest for e in events[1:-1])  # (the ends are the cascade's frame's)
    ex._check()


def collected_generations() -> set[int]:
    return {id(o) for g in range(3) for o in gc.get_objects(generation=g)}


def test_a_cascade_thaws_nothing_someone_else_froze() -> None:
    ex = build(300, "index")
    held = {"frozen": [1, 2, 3]}  # tracked by the collector
    assert id(held) in collected_generations()
    gc.freeze()
    try:
        assert id(held) not in collected_generations()
        crash(ex)
        assert gc.isenabled() and gc.get_freeze_count() > 0
        assert id(held) not in collected_generations()  # still frozen
    finally:
        gc.unfreeze()
    assert id(held) in collected_generations()


def test_a_cascade_leaves_a_paused_collector_paused() -> None:
    ex = build(300, "index")
    gc.disable()
    try:
        crash(ex)
        assert not gc.isenabled()
    finally:
        gc.enable()
