"""`natsfleet gateway mcp`: serve the fleet as an MCP server (docs/interop.md).

`natsfleet.gateway` (and the MCP SDK under it) is imported when the command
runs, not with the CLI: it would add seconds to every other verb's start.
"""

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from natsfleet.bus import BadNatsConfig, BusConfig, ConnectionLost, Unreachable
from natsfleet.cli.connect import bus_config
from natsfleet.process.loop import loop_factory
from natsfleet.telemetry.logs import setup_process
from natsfleet.telemetry.redact import redact

if TYPE_CHECKING:
    from natsfleet.gateway import ApiKeys, GatewayConfig

log = logging.getLogger(__name__)

#: Where API keys are read from when no --keys-file is given (gateway/keys.py).
KEYS_ENV = "NATSFLEET_GATEWAY_KEYS"


@click.command("mcp")
@click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
@click.option("--prefix", envvar="NATSFLEET_PREFIX", default=None, help="Subject prefix.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any."
)
@click.option("--path", default="/mcp", show_default=True, help="The MCP endpoint's path.")
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"API keys, one NAME[:TENANT]=SECRET a line (default: ${KEYS_ENV}).",
)
@click.option("--instance", default="", help="Replica id, in logs (default: host-pid).")
@click.option(
    "--refresh-s",
    type=click.FloatRange(0.05, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between reads of the tool list.",
)
@click.option(
    "--call-timeout-s",
    type=click.FloatRange(0.1, 86400),
    default=600.0,
    show_default=True,
    help="Longest a tool call waits for its task.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024, 64 * 1024 * 1024),
    default=1_048_576,
    show_default=True,
    help="Largest request body read (bigger: 413).",
)
@click.option("--json-response", is_flag=True, help="One JSON body per call (no progress).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
def mcp_command(
    url: str | None,
    prefix: str | None,
    host: str,
    port: int,
    path: str,
    keys_file: Path | None,
    instance: str,
    refresh_s: float,
    call_timeout_s: float,
    max_body_bytes: int,
    json_response: bool,
    verbose: int,
) -> None:
    """Serve every skill and loaded workflow as an MCP tool over streamable HTTP.

    Every request must carry an API key (Authorization: Bearer KEY or
    X-API-Key: KEY); without one it is refused 401. Exit 2: bad settings (no
    key, port taken); 5: NATS unreachable; 6: the NATS connection closed for good.
    """
    from natsfleet.gateway import ApiKeys, GatewayConfig, GatewayError

    level = logging.INFO - 10 * min(verbose, 1)
    if not path.startswith("/") or len(path) > 200:
        raise click.UsageError("--path is an absolute URL path of at most 200 characters")
    instance = instance or f"{os.uname().nodename}-{os.getpid()}"
    setup_process("natsfleet-gateway-mcp", instance, level=level)
    try:
        keys = ApiKeys.load(os.environ.get(KEYS_ENV), keys_file)
    except GatewayError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    config = GatewayConfig(
        host=host,
        port=port,
        path=path,
        refresh_s=refresh_s,
        call_timeout_s=call_timeout_s,
        max_body_bytes=max_body_bytes,
        json_response=json_response,
    )
    nats_config = bus_config(url, prefix, name=f"natsfleet-gateway-mcp-{instance}")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_run(config, nats_config, keys, instance))
    except (BadNatsConfig, ConnectionLost, Unreachable, GatewayError) as exc:
        log.error("gateway exits with code %d: %s", exc.exit_code, exc)
        sys.exit(exc.exit_code)


async def _run(config: "GatewayConfig", nats: BusConfig, keys: "ApiKeys", instance: str) -> None:
    from natsfleet.gateway import McpGateway

    gateway = McpGateway(config, nats, keys, instance=instance)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.shutdown)
    await gateway.run()
