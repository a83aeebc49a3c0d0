"""The `margincall` command: demo (bounded, smoke-tested), serve, bots."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from clients import Client
from exchange.cli import app
from exchange.stack import load_master_key

ROOT = Path(__file__).resolve().parents[1]


def margincall(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exchange.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def test_demo_runs_a_crash_and_ends_by_itself() -> None:
    t0 = time.monotonic()
    r = margincall("demo", "--port", "0", "--http-port", "0", "--duration", "6", "--no-live",
                   timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.monotonic() - t0 < 40
    out = r.stdout
    # the web app's URL comes first, then a session token to trade in it
    assert re.match(r"watch it in a browser: http://127\.0\.0\.1:\d+/#liquidations", out)
    assert re.search(r"\n  mcs_[A-Za-z0-9_-]{43}\n", out)
    assert re.search(r"server on ws://127\.0\.0\.1:\d+", out)
    assert "CRASH" in out and "MC_KEY=" in out
    m = re.search(r"(\d+) liquidations .* in (\d+) cascades", out)
    assert m and int(m.group(1)) >= 1, out[-1500:]


def test_the_demos_rally_is_the_same_size_however_long_it_runs() -> None:
    from exchange.demo import rally_drift

    # from 60 s on the script steps every 0.15 s until the crash at 45 % of the duration:
    # the rally (drift/2 a step) must not grow with the duration, or the crash's six
    # -1.5 % steps no longer reach the longs opened at the start
    def rally(duration: float) -> float:
        return rally_drift(duration) / 2 * (0.45 * duration / 0.15)

    assert abs(rally(60) - 0.036) < 1e-9
    for duration in (120, 300, 3600):
        assert abs(rally(duration) - rally(60)) < 1e-9
    assert rally_drift(6) == rally_drift(60)  # shorter demos as before


def _serve(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "MARGINCALL_ADMIN_TOKEN": "tok"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli", "serve", "--port", "0", "--clock", "stepped",
         "--db", db, "--no-http"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    line = ""
    for _ in range(40):
        line = proc.stderr.readline()
        m = re.search(r"listening on (ws://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError(line)


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`serve` answers, stops cleanly on SIGTERM, and its store keeps what it acknowledged:
    a restart on the same database carries on where it stopped."""
    db = f"sqlite:///{tmp_path / 'mc.db'}"
    proc, url = _serve(db)
    try:

        async def talk() -> None:
            async with Client(url, admin_token="tok") as c:
                assert (await c.time())["clock"] == "stepped"
                assert (await c.create_account())["account"] == 1

        asyncio.run(talk())
        made = margincall("account", "--url", url, "--admin-token", "tok", "--deposit", "5")
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["account"] == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, url = _serve(db)
    try:

        async def again() -> None:
            async with Client(url, admin_token="tok") as c:
                assert (await c.create_account())["account"] == 3

        asyncio.run(again())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_arguments() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "serve" in r.output and "demo" in r.output and "bots" in r.output
    r = runner.invoke(app, ["serve", "--clock", "sideways"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["demo", "--duration", "0"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["bots"])
    assert r.exit_code != 0  # needs the admin token


def test_master_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    p = tmp_path / "keys" / "master.key"
    k1 = load_master_key(p)
    assert k1 is not None and len(k1) == 32
    assert (p.stat().st_mode & 0o777) == 0o600
    assert load_master_key(p) == k1
    assert load_master_key(None) is None


def test_the_cli_imports_no_database_or_analysis_code_until_a_command_needs_it() -> None:
    # SQLModel/SQLAlchemy alone took most of a second: `margincall --help` must not pay it
    probe = (
        "import sys, exchange.cli, exchange.store\n"
        "heavy = ('sqlmodel', 'sqlalchemy', 'pandas', 'plotly', 'aiohttp')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
    # and the lazy names still resolve to the real classes
    import exchange.store as store

    assert store.Store.__name__ == "Store" and store.export.__name__ == "export"
    from exchange.store.tables import EXPORTABLE
    from exchange.store.urls import EXPORTABLE_NAMES

    assert EXPORTABLE == EXPORTABLE_NAMES


def test_help_of_the_replay_commands_loads_no_readers_server_or_analysis_code() -> None:
    """`margincall replay --help` and `backtest --help` print their options from typer
    alone: the readers, the player, the server and the report stay unloaded."""
    probe = (
        "import sys\n"
        "from exchange.cli import app\n"
        "sys.argv = ['margincall', *sys.argv[1:]]\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlmodel', 'sqlalchemy', 'pandas', 'plotly', 'aiohttp', 'replay.formats',\n"
        "         'replay.backtest', 'replay.player', 'replay.report', 'exchange.server',\n"
        "         'exchange.runtime', 'websockets', 'clients.client')\n"
        "print('LOADED:' + ','.join(m for m in heavy if m in sys.modules))"
    )
    for argv, shown in (
        (["--help"], "backtest"),
        (["replay", "--help"], "--speed"),
        (["backtest", "--help"], "--strategy"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
        )
        assert shown in done.stdout  # the help itself was printed
        assert done.stdout.strip().splitlines()[-1] == "LOADED:", (argv, done.stdout[-300:])


def test_the_replay_package_resolves_its_names_lazily() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, replay\n"
            "assert 'replay.events' not in sys.modules\n"
            "import replay.formats\n"
            "from replay import merge, read, Trade\n"
            "from replay.merge import merge as m2\n"
            "assert merge is m2 and replay.merge is m2 and callable(read)\n"
            "assert Trade.__module__ == 'replay.events'\n"
            "print('ok')",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "ok"
