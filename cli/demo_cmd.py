"""`natsfleet demo`: the first thing a new user runs (`make demo`)."""

import asyncio
import tempfile
from pathlib import Path

import click

from natsfleet.bus import Bus, BusConfig, NatsServer
from natsfleet.protocols import Stream

# What the full demo will run once each part exists, and where it is built.
_NOT_YET = (
    ("supervisor", "issue 4: assignment, timeouts, retries, fencing"),
    ("agent processes", "issue 3: researcher, writer, editor, booker as OS processes"),
    ("content and travel workflows", "issue 6: research -> write -> edit; book a flight"),
)


@click.command("demo")
def demo_command() -> None:
    """Start an embedded NATS server and run the demo workflow (no API keys needed)."""
    asyncio.run(_demo())


async def _demo() -> None:
    store = Path(tempfile.mkdtemp(prefix="natsfleet-demo-"))
    async with NatsServer(store_dir=store) as server:
        click.echo(f"embedded nats-server (JetStream) at {server.url}, store {store}")
        async with Bus(BusConfig(url=server.url), role="demo") as bus:
            await bus.provision()
            streams = [bus.subjects.stream(s) for s in Stream]
            click.echo("provisioned streams: " + ", ".join(streams))
        click.echo("\nnot there yet (this demo grows as they land):")
        for part, where in _NOT_YET:
            click.echo(f"  - {part}: {where}")
    click.echo("\nserver stopped cleanly")
