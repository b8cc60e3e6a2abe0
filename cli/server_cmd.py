"""`natsfleet server` and `natsfleet schema`."""

import asyncio
import signal
from pathlib import Path

import click

from natsfleet.process.server import NatsServer, ServerError
from natsfleet.protocols.schema import write_schemas


@click.command("server")
@click.option("--port", type=int, default=4222, show_default=True, help="Client port (-1: random).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".natsfleet"),
    show_default=True,
    help="JetStream data directory.",
)
def server_command(port: int, host: str, store: Path) -> None:
    """Run an embedded nats-server (JetStream on) until Ctrl-C or SIGTERM."""
    try:
        asyncio.run(_serve(port, host, store.resolve()))
    except ServerError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(port: int, host: str, store: Path) -> None:
    server = NatsServer(port=None if port < 0 else port, host=host, store_dir=store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    click.echo(f"nats-server ready at {server.url} (JetStream store: {store})", err=False)
    click.echo("export NATS_URL=" + server.url)
    try:
        await stop.wait()
    finally:
        await server.stop()
        click.echo("nats-server stopped")


@click.command("schema")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write <Message>.json files and index.json into.",
)
def schema_command(out_dir: Path) -> None:
    """Write the JSON Schema of every protocol message."""
    paths = write_schemas(out_dir)
    click.echo(f"wrote {len(paths)} files to {out_dir}")
