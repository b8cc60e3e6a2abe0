"""`natsfleet gateway a2a`: serve the fleet as an A2A agent.

It serves the fleet as an A2A agent (docs/interop.md). A gateway keeps no
task of its own, so several replicas may serve one fleet behind any load
balancer.
"""

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from natsfleet.bus import BadNatsConfig, Bus, ConnectionLost, Unreachable
from natsfleet.cli.connect import bus_config
from natsfleet.client import FleetClient
from natsfleet.process.loop import loop_factory
from natsfleet.telemetry.logs import setup_process
from natsfleet.telemetry.redact import redact

if TYPE_CHECKING:
    from natsfleet.gateway import ApiKeys

log = logging.getLogger(__name__)


def _http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The same rule as the fleet file's `public_url`: the card must name a usable URL."""
    from natsfleet.deploy.fleetfile import is_http_url

    if value is not None and not is_http_url(value):
        raise click.BadParameter("must be an http(s) URL with a host", ctx=ctx, param=param)
    return value


@click.command("a2a")
@click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
@click.option("--prefix", envvar="NATSFLEET_PREFIX", default=None, help="Subject prefix.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True,
              help="Port to listen on (0: any free port, logged at start).")  # fmt: skip
@click.option("--public-url", default=None, callback=_http_url,
              help="The URL clients reach this gateway at, for the Agent Card "
              "(default: http://HOST:PORT/; for 0.0.0.0 or :: the loopback address).")  # fmt: skip
@click.option("--keys-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="API keys, one NAME[:TENANT]=SECRET a line "
              "(default: $NATSFLEET_GATEWAY_KEYS).")  # fmt: skip
@click.option("--default-skill", default=None,
              help="The skill a message that names none goes to.")  # fmt: skip
@click.option("--name", default="natsfleet", show_default=True, help="The Agent Card's name.")
@click.option("--blocking-timeout-s", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Longest wait of a blocking message/send before it answers "
              "with the task as it is.")  # fmt: skip
@click.option("--instance", "--id", "gateway_id", default="a2a", show_default=True,
              help="This replica's name, in logs and its NATS inbox.")  # fmt: skip
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
def a2a_command(
    url: str | None,
    prefix: str | None,
    host: str,
    port: int,
    public_url: str | None,
    keys_file: Path | None,
    default_skill: str | None,
    name: str,
    blocking_timeout_s: float,
    gateway_id: str,
    verbose: int,
) -> None:
    """Serve the fleet as an A2A agent (JSON-RPC, SSE streaming) until SIGTERM.

    Exit 0 on SIGTERM/Ctrl-C; 2: bad settings (no API key, a malformed URL);
    5: NATS unreachable; 6: the NATS connection closed for good.
    """
    from natsfleet.gateway import ApiKeys, GatewayError
    from natsfleet.gateway.keys import KEYS_ENV
    from natsfleet.protocols.idempotency import GATEWAY_ROLE

    try:
        keys = ApiKeys.load(os.environ.get(KEYS_ENV), keys_file)
    except GatewayError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    setup_process("natsfleet-gateway-a2a", gateway_id, level=logging.INFO - 10 * min(verbose, 1))
    config = bus_config(url, prefix, name=f"natsfleet-gateway-{gateway_id}")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(
                _run(
                    Bus(config, role=GATEWAY_ROLE, instance=gateway_id),
                    host,
                    port,
                    public_url,
                    keys,
                    default_skill,
                    name,
                    blocking_timeout_s,
                )
            )
    except (BadNatsConfig, ConnectionLost, Unreachable) as exc:
        log.error("a2a gateway exits with code %d: %s", exc.exit_code, exc)
        sys.exit(exc.exit_code)


async def _run(
    bus: Bus,
    host: str,
    port: int,
    public_url: str | None,
    keys: "ApiKeys",
    default_skill: str | None,
    name: str,
    blocking_timeout_s: float,
) -> None:
    from natsfleet.gateway.a2a import CardSettings, HandlerSettings, build_app, serve
    from natsfleet.gateway.a2a.app import bind
    from natsfleet.gateway.a2a.card import default_card_url

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    url = public_url or default_card_url(host, bound)
    if public_url is None and url != f"http://{host}:{bound}/":
        log.warning("no --public-url: the Agent Card names %s, usable on this machine only", url)
    await bus.connect()
    try:
        client = FleetClient(bus)
        card = CardSettings(
            name=name, description=f"The natsfleet fleet {bus.subjects.prefix}", url=url
        )
        settings = HandlerSettings(
            default_skill=default_skill, blocking_timeout_s=blocking_timeout_s
        )
        app = build_app(client, card, settings, keys)
        log.info(
            "a2a gateway listening on http://%s:%d/ (card: %s) with %d key(s)",
            host,
            bound,
            url,
            len(keys),
        )
        await bus.guard(serve(app, sock))
    finally:
        sock.close()
        await bus.close()
