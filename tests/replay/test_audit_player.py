"""Replay audit findings on the player: windows of bar open times, steps stamped at their end,
unknown symbols refused with what to do, book-only data driving the index."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exchange.config import load_instruments
from exchange.core import Exchange
from exchange.core import events as E
from replay import BookLevel, BookUpdate, Trade, read
from replay.player import PlayerConfig, UnknownSymbol, play
from replay.testdata import ohlcv_bars, write_text

SYM = "BTCUSDT"
S = 10**9
MIN = 60 * S
T0 = 1_599_999_960 * S  # on the minute: 2020-09-13 12:26:00 UTC
assert T0 % MIN == 0


def exchange(**changes: object) -> Exchange:
    insts = [dataclasses.replace(i, **changes) for i in load_instruments()]  # type: ignore[arg-type]
    return Exchange(insts)


def bars_file(tmp_path: Path, n: int) -> Path:
    return write_text(tmp_path / "btc_1m.csv", ohlcv_bars(n, T0 // S))


def test_a_window_selects_bars_by_open_time(tmp_path: Path) -> None:
    f = bars_file(tmp_path, 10)
    ex = exchange(mark_method="index")
    seen: list[int] = []
    cfg = PlayerConfig(start_ns=T0 + 2 * MIN, end_ns=T0 + 5 * MIN)

    def on_step(step: int, ts: int, ex: Exchange) -> None:
        seen.append(ts)

    p = play(ex, read(f, symbol=SYM), cfg, step_ns=MIN, on_step=on_step)
    # bars opening 12:28, 12:29, 12:30 — not the one opening 12:27 (which ends at start),
    # and not the one opening at the end
    # 2 before the window, and the first at its end, after which reading stops
    assert p.stats.out_of_window == 3 and p.stats.events == 6
    assert p.first_ts == T0 + 2 * MIN
    assert seen == [T0 + 3 * MIN, T0 + 4 * MIN, T0 + 5 * MIN]


def test_b_a_step_and_its_fills_are_stamped_at_the_step_end(tmp_path: Path) -> None:
    from exchange.core import commands as C

    f = bars_file(tmp_path, 5)
    ex = exchange(mark_method="index")
    times: list[int] = []
    fills: list[E.OrderFilled] = []

    def on_step(step: int, ts: int, ex: Exchange) -> list[C.Command]:
        times.append(ts)
        if step == 2:  # a market order decided at the close of the second bar
            return [C.PlaceOrder(ts=ts, account=1, symbol=SYM, side="BUY", type="MARKET", qty=1)]
        return []

    from replay.player import SyntheticBook

    events: list[E.Event] = []
    ex.handle(C.CreateAccount(account=1))
    ex.handle(C.Deposit(account=1, asset="USDT", amount=10**6 * 10**8))
    play(
        ex,
        read(f, symbol=SYM),
        PlayerConfig(synthetic=SyntheticBook()),
        step_ns=MIN,
        on_step=on_step,
        sink=events.extend,
    )
    assert times == [T0 + (k + 1) * MIN for k in range(5)]  # on the minute, never second 40
    fills = [e for e in events if type(e) is E.OrderFilled and e.taker_account == 1]
    assert fills and {e.ts for e in fills} == {T0 + 2 * MIN}
    assert ex.now == T0 + 5 * MIN


def test_b_tick_steps_close_at_their_own_time() -> None:
    from decimal import Decimal

    ex = exchange(mark_method="index")
    trades = [
        Trade(T0 + k * S // 2, T0 + k * S // 2, SYM, Decimal("40000"), Decimal(1), "buy", str(k))
        for k in range(3)
    ]
    times: list[int] = []

    def on_step(step: int, ts: int, ex: Exchange) -> None:
        times.append(ts)

    play(ex, trades, step_ns=1, on_step=on_step)
    assert times == [T0, T0 + S // 2, T0 + S]


@pytest.mark.parametrize("symbol", ["XBTUSD", "BTC-PERPETUAL", "btc_1m"])
def test_c_an_unknown_symbol_fails_with_what_to_do(symbol: str) -> None:
    from decimal import Decimal

    ev = Trade(T0, T0, symbol, Decimal("40000"), Decimal("1"), "buy", "1", "bitmex")
    ex = exchange()
    with pytest.raises(UnknownSymbol) as err:
        play(ex, [ev], PlayerConfig(unknown_symbols="error"))
    msg = str(err.value)
    assert symbol in msg and "--symbol" in msg and "BTCUSDT" in msg
    # mapped, it replays
    ex = exchange()
    p = play(ex, [ev], PlayerConfig(symbols={symbol: SYM}, unknown_symbols="error"))
    assert p.stats.index_updates == 1 and ex.market_view(SYM).index == 400_000


def test_e_book_only_data_gets_a_mark_under_the_index_method() -> None:
    from decimal import Decimal as D

    ex = exchange(mark_method="index")
    books = [
        BookUpdate(
            T0,
            T0,
            SYM,
            True,
            (BookLevel(D("39999.0"), D("1")),),
            (BookLevel(D("40001.0"), D("1")),),
        ),  # fmt: skip
        BookUpdate(
            T0 + S,
            T0 + S,
            SYM,
            False,
            (BookLevel(D("40005.0"), D("2")),),
            (BookLevel(D("40001.0"), D("0")), BookLevel(D("40011.0"), D("2"))),
        ),  # fmt: skip
    ]
    play(ex, books)
    mv = ex.market_view(SYM)
    assert mv.index == 400_080 and mv.mark == 400_080  # the mid of the recorded best levels
    assert mv.best_bid == 400_050 and mv.best_ask == 400_110  # and mirrored


def test_e_a_better_reference_wins_over_the_book_mid() -> None:
    from decimal import Decimal as D

    ex = exchange(mark_method="index")
    evs = [
        Trade(T0, T0, SYM, D("41000"), D("0.001"), "buy", "1"),
        BookUpdate(
            T0 + S,
            T0 + S,
            SYM,
            True,
            (BookLevel(D("39999.0"), D("1")),),
            (BookLevel(D("40001.0"), D("1")),),
        ),  # fmt: skip
    ]
    play(ex, evs)
    assert ex.market_view(SYM).index == 410_000
