"""The what-if fork at the start of a cascade: the 30 % crash forked under every policy and
variation, each branch checked against its own brute force; the baseline continuation is
the original run exactly; the CLI end to end on a small recorded file; bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exchange.cli import app
from exchange.core import commands as C
from exchange.core import events as E
from exchange.core.liquidation import POLICIES
from exchange.core.margin import is_liquidatable
from replay.whatif import Session, Variation, WhatIf, WhatIfError, parse_variations, whatif
from tests.core.test_crash_scenario import LONGS, MAKERS, SYM, Story

USDT = 10**8


class Recording(Story):
    """The crash story, keeping the commands it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.cmds: list[C.Command] = []
        self.instruments = list(self.ex.instruments.values())

    def do(self, cmd: C.Command) -> list[E.Event]:
        self.ts += 1_000_000
        cmd = replace(cmd, ts=self.ts)
        self.cmds.append(cmd)
        out = self.ex.handle(cmd)
        self.events.extend(out)
        return out


@pytest.fixture(scope="module")
def crash() -> Recording:
    s = Recording()
    start = 300_000
    for mk in MAKERS:
        s.do(C.CreateAccount(account=mk))
        s.do(C.Deposit(account=mk, asset="USDT", amount=10**9 * USDT))
        s.do(C.SetLeverage(account=mk, symbol=SYM, leverage=2))
    s.do(C.SetIndexPrice(symbol=SYM, price=start))
    s.quote(start)
    for i, a in enumerate(LONGS):
        s.do(C.CreateAccount(account=a))
        s.do(C.Deposit(account=a, asset="USDT", amount=1_000 * USDT))
        s.do(C.SetLeverage(account=a, symbol=SYM, leverage=2 + i * 48 // (len(LONGS) - 1)))
        s.do(C.PlaceOrder(account=a, symbol=SYM, side="BUY", qty=1 + i % 20,
                          price=start * 1002 // 1000, time_in_force="IOC"))  # fmt: skip
        if i % 50 == 49:
            s.quote(s.ex.markets[SYM].index)
    for k in range(1, 16):
        idx = start - start * 2 * k // 100
        s.do(C.SetIndexPrice(symbol=SYM, price=idx))
        s.quote(idx, size=30)
    return s


def session(s: Recording) -> Session:
    return Session.from_commands(s.instruments, s.cmds)


def brute_force(result: WhatIf, i: int) -> None:
    """Which longs must go in branch i: those whose position at the fork is liquidatable
    at some mark of the branch's own mark path; each goes at the first such mark (its
    trigger); the others keep their position untouched."""
    b = result.branches[i]
    inst = b.exchange.instruments[SYM]
    path = [m for _, m in b.mark_path()]
    at_fork = {a: (s.qty, s.cost, s.margin) for a, s in fork_seats(result).items()}
    must = {}
    for a, (qty, cost, margin) in at_fork.items():
        first = next((mk for mk in path if is_liquidatable(inst, qty, cost, margin, mk)), None)
        if first is not None:
            must[a] = first
    liqs = [e for e in b.liquidations() if e.account in at_fork]
    first_liq: dict[int, E.PositionLiquidated] = {}
    for e in liqs:
        first_liq.setdefault(e.account, e)
    assert set(first_liq) == set(must), b.variation.label
    for a, e in first_liq.items():
        assert e.trigger_mark == must[a]
    seats = b.exchange.markets[SYM].seats
    for a, pos in at_fork.items():
        if a not in must:
            s = seats[a]
            assert (s.qty, s.cost, s.margin) == pos
        elif b.variation.policy in (None, "binance"):
            assert a not in seats or seats[a].qty == 0


def fork_seats(result: WhatIf) -> dict[int, Any]:
    """The longs' seats at the fork (every branch starts from these positions)."""
    return result.fork_longs  # type: ignore[attr-defined, no-any-return]


def run(s: Recording, variations: list[Variation], cascade: int | str = "first") -> WhatIf:
    from replay.whatif import _fork_at

    result = whatif(session(s), variations, cascade=cascade)
    fork = _fork_at(session(s), result.fork_index)
    seats = fork.markets[SYM].seats
    result.fork_longs = {  # type: ignore[attr-defined]
        a: seats[a] for a in LONGS if a in seats and seats[a].qty > 0
    }
    return result


@pytest.mark.slow
def test_the_crash_forked_under_every_policy_goes_as_its_brute_force_says(
    crash: Recording,
) -> None:
    result = run(crash, [Variation(policy=p) for p in sorted(POLICIES)])
    assert len(result.branches) == 1 + len(POLICIES)
    for i in range(len(result.branches)):
        brute_force(result, i)
    assert result.branches[0].liquidations()


def test_the_baseline_branch_is_the_original_run(crash: Recording) -> None:
    result = run(crash, [], cascade="largest")
    base = result.branches[0]
    assert base.events == result.baseline_events
    assert base.exchange.state_hash() == crash.ex.state_hash()
    largest = max(
        (e for e in crash.events if type(e) is E.CascadeEnded), key=lambda e: e.liquidations
    )
    assert result.cascade_id == largest.cascade_id


def test_mark_and_band_variations(crash: Recording) -> None:
    result = run(crash, parse_variations(["mark=index", "band=0.002"]))
    for i in range(3):
        brute_force(result, i)
    idx = result.branches[1]
    assert all(e.mark == e.index for e in idx.events if type(e) is E.MarkPriceChanged)
    band = result.branches[2]
    marks = [e for e in band.events if type(e) is E.MarkPriceChanged]
    assert marks and all(abs(e.mark - e.index) * 10**8 <= e.index * 200_000 for e in marks)
    assert band.exchange.instruments[SYM].mark_band == 200_000
    assert idx.exchange.state_hash() != result.branches[0].exchange.state_hash()


def test_fund_and_adl_variations(crash: Recording) -> None:
    result = run(crash, parse_variations(["fund=0,1000000", "adl=off"]), cascade="largest")
    base, zero, big, no_adl = result.branches
    assert zero.fund_at_fork == 0 and big.fund_at_fork == 1_000_000 * USDT
    assert base.fund_at_fork > 0  # the largest cascade comes after the fund gained
    for b in result.branches:
        b.exchange._check()  # money conserved with the fund raised or lowered
        ends = [e for e in b.events if type(e) is E.CascadeEnded]
        quote = "USDT"
        assert b.exchange.insurance_fund(quote) - b.fund_at_fork == sum(
            e.insurance_after - e.insurance_before for e in ends
        )
    assert not [e for e in no_adl.events if type(e) is E.PositionAutoDeleveraged]
    for i in range(4):
        brute_force(result, i)


def test_bad_variations_are_refused_with_one_clear_error() -> None:
    for bad in (["policy=nosuch"], ["fund=-1"], ["band=2"], ["mark=vwap"], ["speed=1"],
                ["fund"], ["adl=maybe"], ["fund=1", "fund=2"]):  # fmt: skip
        with pytest.raises(WhatIfError):
            parse_variations(bad)
    assert parse_variations(["policy=binance", "adl=off"], grid=True) == [
        Variation(policy="binance", adl=False)
    ]


def test_a_session_without_liquidations_has_nothing_to_fork(crash: Recording) -> None:
    with pytest.raises(WhatIfError, match="no liquidation"):
        whatif(Session.from_commands(crash.instruments, crash.cmds[:50]), [])
    with pytest.raises(WhatIfError, match="no cascade 999999"):
        whatif(session(crash), [], cascade=999999)


def _bars(path: Path) -> Path:
    """A small recorded OHLCV file: flat for 20 minutes, then a 25 % fall."""
    lines = ["timestamp,open,high,low,close,volume"]
    p = 40_000.0
    for i in range(40):
        o = p
        if i >= 20:
            p = p * 0.985
        t = f"2022-01-21 00:{i:02d}:00"
        lines.append(f"{t},{o:.1f},{max(o, p):.1f},{min(o, p):.1f},{p:.1f},10.5")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_cli_end_to_end_on_a_small_recorded_file(tmp_path: Path) -> None:
    data = _bars(tmp_path / "BTCUSDT-1m.csv")
    out = tmp_path / "rep"
    res = CliRunner().invoke(
        app,
        [
            "whatif",
            str(data),
            "--symbol",
            "BTCUSDT",
            "--vary",
            "fund=0,1000000",
            "--vary",
            "adl=off",
            "--vary",
            "mark=median",
            "--out",
            str(out),
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    assert "baseline" in res.output and "fund=1000000" in res.output
    page = (out / "report.html").read_text()
    assert page.count("adl=off") >= 2 and "plotly" in page  # in the table and the chart
    rows = (out / "whatif.csv").read_text().splitlines()
    assert len(rows) == 1 + 5


def test_the_cli_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    data = _bars(tmp_path / "BTCUSDT-1m.csv")
    for args in (
        ["whatif", str(tmp_path / "missing.csv")],
        ["whatif", str(data), "--symbol", "BTCUSDT", "--vary", "policy=nosuch"],
        ["whatif", str(data), "--symbol", "BTCUSDT", "--cascade", "nope"],
        ["whatif", str(tmp_path / "x.db")],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1


async def test_a_store_journal_is_a_session(tmp_path: Path) -> None:
    from exchange.store import Store
    from tests.store.scenario import build, drive, instruments

    url = f"sqlite:///{tmp_path}/store.db"
    cmds = build(3)
    st = Store(url, snapshot_every=0, snapshot_interval=0, query_tables=False)
    ex, _ = st.recover(instruments())
    await drive(st, ex, cmds)
    await st.flush()
    st.close_sync()
    s = Session.from_store(url)
    assert s.commands == cmds and s.instruments == instruments()
    result = whatif(s, parse_variations(["fund=0", "mark=index"]), cascade="first")
    assert result.branches[0].exchange.state_hash() == ex.state_hash()
    assert result.branches[0].events == result.baseline_events
    assert len(result.table()) == 3


def _deleveraging_session() -> Session:
    """A 50x long whose only counterparty is a short, and an empty book: a 10 % index fall
    takes the mark past its bankruptcy price, nothing fills, and a fund of 0 cannot take
    the loss over, so the short is auto-deleveraged."""
    from exchange.config import load_instruments

    btc = replace(next(i for i in load_instruments() if i.symbol == SYM), mark_method="index")
    cmds: list[C.Command] = [
        C.SetIndexPrice(symbol=SYM, price=300_000),
        C.CreateAccount(account=1),
        C.Deposit(account=1, asset="USDT", amount=100_000 * USDT),
        C.CreateAccount(account=2),
        C.Deposit(account=2, asset="USDT", amount=1_000 * USDT),
        C.SetLeverage(account=2, symbol=SYM, leverage=50),
        C.PlaceOrder(account=1, symbol=SYM, side="SELL", qty=100, price=300_000),
        C.PlaceOrder(
            account=2, symbol=SYM, side="BUY", qty=100, price=300_000, time_in_force="IOC"
        ),  # fmt: skip
        C.SetIndexPrice(symbol=SYM, price=270_000),
    ]
    return Session.from_commands([btc], [replace(c, ts=k * 10**6) for k, c in enumerate(cmds, 1)])


def test_adl_off_and_a_bigger_fund_spare_the_counterparty() -> None:
    result = whatif(
        _deleveraging_session(), parse_variations(["adl=off", "fund=1000000"]), cascade="first"
    )
    base, no_adl, big = result.branches
    adl = [e for e in base.events if type(e) is E.PositionAutoDeleveraged]
    assert [e.account for e in adl] == [1] and base.row()["adl_hits"] == 1
    assert base.exchange.accounts[1].seats[SYM].qty == 0  # the short was closed against it
    for b in (no_adl, big):
        assert b.row()["adl_hits"] == 0
        (liq,) = b.liquidations()
        assert liq.account == 2 and liq.fund_takeover_qty == 100 and liq.adl_qty == 0
        assert b.exchange.accounts[1].seats[SYM].qty == -100  # the short is untouched
        b.exchange._check()
    assert big.fund_at_fork == 1_000_000 * USDT and no_adl.fund_at_fork == 0
