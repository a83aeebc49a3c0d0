"""Replay audit findings on the commands: unknown symbols fail with what to do, bars get default
liquidity and empty books are warned about, strategies load from the working directory with one
clear line on failure, `replay` finishes by itself and says what it does; sweeps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from replay.cli_commands import backtest_command, replay_command
from replay.testdata import ohlcv_bars, write_text

SYM = "BTCUSDT"


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("replay")(replay_command)
    a.command("backtest")(backtest_command)
    return a


@pytest.fixture
def bars(tmp_path: Path) -> Path:
    return write_text(tmp_path / "btc_1m.csv", ohlcv_bars(40, 1_640_995_200))


def invoke(app: typer.Typer, *args: str) -> object:
    return CliRunner().invoke(app, list(args))


def test_c_a_file_whose_symbol_is_no_instrument_fails_with_what_to_do(
    app: typer.Typer, bars: Path, tmp_path: Path
) -> None:
    for cmd in (
        ["backtest", "--data", str(bars), "--strategy", "replay.strategy:Hold",
         "--out", str(tmp_path / "o")],
        ["replay", str(bars), "--port", "0", "--no-progress"],
    ):  # fmt: skip
        res = invoke(app, *cmd)
        assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
        out = res.output  # type: ignore[attr-defined]
        assert "error: symbol 'btc_1m'" in out and "--symbol" in out
        assert "Traceback" not in out
    assert not (tmp_path / "o" / "report.html").exists()  # no report dated 1970


def test_d_bars_get_default_liquidity_and_an_empty_book_is_warned_about(
    app: typer.Typer, bars: Path, tmp_path: Path
) -> None:
    args = ["backtest", "--data", str(bars), "--symbol", SYM, "--strategy",
            "replay.strategy:Hold", "--step", "1m", "--no-progress"]  # fmt: skip
    res = invoke(app, *args, "--out", str(tmp_path / "a"))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "1 fills" in res.output and "WARNING" not in res.output  # type: ignore[attr-defined]
    res = invoke(app, *args, "--synthetic", "none", "--out", str(tmp_path / "b"))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "0 fills" in res.output  # type: ignore[attr-defined]
    assert "WARNING: 1 order of account 1 found an empty book" in res.output  # type: ignore[attr-defined]


def test_f_a_strategy_next_to_you_loads_and_a_bad_one_is_one_line(
    app: typer.Typer, bars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mystrat_audit.py").write_text(
        "from replay.strategy import Hold\n\nclass Mine(Hold):\n    pass\n"
    )
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(tmp_path / "nowhere"))  # sys.path without the cwd
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    base = ["backtest", "--data", str(bars), "--symbol", SYM, "--step", "1m", "--no-progress",
            "--out", str(tmp_path / "o")]  # fmt: skip
    res = invoke(app, *base, "--strategy", "mystrat_audit:Mine")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    res = invoke(app, *base, "--strategy", str(folder / "mystrat_audit.py") + ":Mine")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    for spec, says in (
        ("nope_module:X", "cannot import strategy module 'nope_module'"),
        ("mystrat_audit:Nope", "mystrat_audit has no Nope"),
        ("nope", "strategy must be 'module:Class'"),
        ("missing.py:X", "no strategy file 'missing.py'"),
    ):
        res = invoke(app, *base, "--strategy", spec)
        assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
        lines = res.output.strip().splitlines()  # type: ignore[attr-defined]
        assert lines == [f"error: {lines[0][7:]}"] and says in lines[0], lines


def test_g_replay_finishes_by_itself_and_says_what_it_does(app: typer.Typer, bars: Path) -> None:
    res = invoke(app, "replay", str(bars), "--symbol", SYM, "--port", "0", "--no-progress")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    out = res.output  # type: ignore[attr-defined]
    assert "as fast as possible, then exiting" in out and "replayed 40 events" in out


def test_sweep_runs_the_grid_in_worker_processes(
    app: typer.Typer, bars: Path, tmp_path: Path
) -> None:
    res = invoke(
        app, "backtest", "--data", str(bars), "--symbol", SYM, "--step", "1m", "--no-progress",
        "--strategy", "replay.strategy:MovingAverageCross", "--param", "qty=0.01",
        "--sweep", "fast=2,3", "--sweep", "slow=5,8", "--workers", "2",
        "--out", str(tmp_path / "s"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    with open(tmp_path / "s" / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["fast"], r["slow"]) for r in rows] == [
        ("2", "5"),
        ("2", "8"),
        ("3", "5"),
        ("3", "8"),
    ]
    assert all(int(float(r["trades"])) >= 1 for r in rows)
    assert len({r["state_hash"] for r in rows}) == 4  # each combination its own run
    assert "4 combinations" in res.output  # type: ignore[attr-defined]
    bad = invoke(app, "backtest", "--data", str(bars), "--strategy", "replay.strategy:Hold",
                 "--sweep", "fast")  # fmt: skip
    assert bad.exit_code == 2
