"""The `margincall` command: `serve`, `demo`, `bots` (and the store's `export`, `verify`; replay's
`replay`, `backtest`, `record`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from exchange.demo import bots_command, demo_command
from exchange.stack import ServeOptions, start_stack, stop_stack

app = typer.Typer(
    name="margincall",
    help="A paper-trading exchange for perpetual futures, over WebSocket.",
    no_args_is_help=True,
    add_completion=False,
)


# ------------------------------------------------------------------ serve


async def _serve(opts: ServeOptions) -> None:
    stack = await start_stack(opts)
    token_note = "" if opts.admin_token else f"  admin token: {stack.admin_token}"
    http_note = f", HTTP on {stack.http_url}" if stack.http is not None else ""
    typer.echo(
        f"margincall listening on {stack.url}{http_note} (clock {opts.clock}){token_note}",
        err=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    typer.echo("shutting down", err=True)
    await stop_stack(stack)
    for hook in opts.extra.get("after_stop", []):
        await hook()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8765,
    http_port: Annotated[
        int, typer.Option(help="HTTP port of the web app and REST API (0: no HTTP).")
    ] = 8766,
    no_http: Annotated[bool, typer.Option("--no-http", help="Serve no HTTP at all.")] = False,
    instruments: Annotated[
        Path | None, typer.Option(help="Instruments TOML file (default: the shipped one).")
    ] = None,
    clock: Annotated[str, typer.Option(help="realtime | stepped")] = "realtime",
    start_ts: Annotated[
        int | None, typer.Option(help="Stepped clock: engine time (ns) to start at.")
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="MARGINCALL_ADMIN_TOKEN", help="Admin token (default: random, printed)."
        ),
    ] = None,
    master_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="MARGINCALL_MASTER_KEY_FILE",
            help="File holding the key API secrets are derived from (created if missing).",
        ),
    ] = None,
    rate_limit: Annotated[
        float, typer.Option(help="Messages per second per connection (0: no limit).")
    ] = 5000.0,
    max_connections: Annotated[int, typer.Option(help="Connections at most.")] = 1000,
    compression: Annotated[bool, typer.Option(help="permessage-deflate (off: faster).")] = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
    db: Annotated[
        str,
        typer.Option(
            envvar="MARGINCALL_DB",
            help="Store database: sqlite:///path.db or postgresql+psycopg://user@host/db.",
        ),
    ] = "sqlite:///data/margincall.db",
    store: Annotated[
        str,
        typer.Option(
            help="durable (answer after commit), fast (answers do not wait), or off (no store)."
        ),
    ] = "durable",
    snapshot_every: Annotated[
        int, typer.Option(help="Snapshot every N commands (0: not by count).")
    ] = 50_000,
    snapshot_interval: Annotated[
        float, typer.Option(help="Snapshot every T seconds (0: not by time).")
    ] = 300.0,
    mqtt: Annotated[
        str | None, typer.Option(help="MQTT bridge to this broker: mqtt://host:port.")
    ] = None,
    mqtt_user: Annotated[
        str | None, typer.Option(envvar="MARGINCALL_MQTT_USER", help="MQTT username.")
    ] = None,
    mqtt_password: Annotated[
        str | None, typer.Option(envvar="MARGINCALL_MQTT_PASSWORD", help="MQTT password.")
    ] = None,
    mqtt_venue: Annotated[
        str | None,
        typer.Option(help="MQTT topic level after margincall/v1/ (default: margincall)."),
    ] = None,
    mqtt_index_topic: Annotated[
        str | None,
        typer.Option(
            help="MQTT topic of the index feed (default: margincall/v1/<venue>/index-feed; "
            "empty: no index feed)."
        ),
    ] = None,
) -> None:
    """Run the exchange server."""
    if clock not in ("realtime", "stepped"):
        raise typer.BadParameter("clock must be realtime or stepped", param_hint="--clock")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    opts = ServeOptions(
        host=host,
        port=port,
        instruments=instruments,
        clock=clock,
        start_ts=start_ts,
        admin_token=admin_token,
        master_key_file=master_key_file,
        rate_limit=rate_limit,
        max_connections=max_connections,
        compression=compression,
        http_port=None if no_http or http_port == 0 else http_port,
    )
    from exchange.binance import setup as binance_setup
    from exchange.web.app import setup as web_app

    # the web app (docs/web.md) and the Binance USDⓈ-M gateway (docs/binance.md)
    opts.http_setup += [web_app, binance_setup]
    if store not in ("durable", "fast", "off"):
        raise typer.BadParameter("store must be durable, fast or off", param_hint="--store")
    if store != "off":
        from exchange.store.serving import install as install_store

        journal = install_store(
            opts, db, store, snapshot_every=snapshot_every, snapshot_interval=snapshot_interval
        )

        async def close_store() -> None:
            runtime = opts.extra.get("runtime")
            await journal.close(runtime.exchange if runtime is not None else None)

        opts.extra.setdefault("after_stop", []).append(close_store)
    if mqtt:
        from exchange.mqtt import install as install_mqtt

        try:
            install_mqtt(
                opts,
                mqtt,
                username=mqtt_user,
                password=mqtt_password,
                venue=mqtt_venue,
                index_topic=mqtt_index_topic,
            )
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--mqtt") from None
    asyncio.run(_serve(opts))


app.command("bots")(bots_command)


@app.command("account")
def create_account(
    url: Annotated[str, typer.Option(help="Server URL.")] = "ws://127.0.0.1:8765",
    admin_token: Annotated[
        str, typer.Option(envvar="MARGINCALL_ADMIN_TOKEN", help="Admin token.")
    ] = "",
    deposit: Annotated[str, typer.Option(help="USDT to deposit.")] = "10000",
) -> None:
    """Create an account on a running server; print its id, API key and secret (JSON)."""
    import json

    if not admin_token:
        raise typer.BadParameter("the admin token is needed", param_hint="--admin-token")

    async def main() -> dict[str, Any]:
        from clients import Client

        async with Client(url, admin_token=admin_token, reconnect=False) as c:
            return dict(await c.create_account(deposit=deposit))

    typer.echo(json.dumps(asyncio.run(main())))


app.command("demo")(demo_command)


def _register_store_commands() -> None:
    try:
        from exchange.store.cli import export_command, verify_command
    except ImportError:  # the store's optional dependencies are missing
        return
    app.command("export")(export_command)
    app.command("verify")(verify_command)


_register_store_commands()


def _register_replay_commands() -> None:
    from replay.cli_commands import backtest_command, record_command, replay_command

    app.command("replay")(replay_command)
    app.command("backtest")(backtest_command)
    app.command("record")(record_command)
    from replay.whatif_cli import whatif_command

    app.command("whatif")(whatif_command)


_register_replay_commands()


def _register_class_commands() -> None:
    from exchange.classroom.cli import app as class_app

    app.add_typer(class_app, name="class")


_register_class_commands()


if __name__ == "__main__":
    app()
