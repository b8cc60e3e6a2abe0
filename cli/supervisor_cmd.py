"""`natsfleet supervisor`: run one supervisor process until SIGTERM."""

import asyncio
import logging
import signal
import sys

import click
import msgspec

from natsfleet.bus import BadNatsConfig, BusConfig, ConnectionLost, Unreachable
from natsfleet.cli.connect import bus_config
from natsfleet.process.loop import loop_factory
from natsfleet.supervisor import Supervisor, SupervisorConfig
from natsfleet.supervisor.config import default_supervisor_id
from natsfleet.supervisor.workflows import WorkflowError
from natsfleet.telemetry.logs import setup_process
from natsfleet.telemetry.metrics import configure_metrics
from natsfleet.telemetry.redact import redact

log = logging.getLogger(__name__)


@click.command("supervisor")
@click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
@click.option("--prefix", envvar="NATSFLEET_PREFIX", default=None, help="Subject prefix.")
@click.option("--id", "supervisor_id", default="", help="Supervisor id (default: random).")
@click.option("--partition", type=int, default=0, show_default=True)
@click.option("--lease-ttl", type=float, default=None, help="Lease TTL in seconds.")
@click.option("--heartbeat-timeout", type=float, default=None, help="Fleet default, seconds.")
@click.option(
    "--config-json",
    default=None,
    help="SupervisorConfig fields as JSON, e.g. '{\"assign_timeout_s\": 1}'.",
)
@click.option(
    "--workflows",
    "workflow_sources",
    multiple=True,
    help="Workflow folder, .toml file or module:attribute (repeatable).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    envvar="NATSFLEET_METRICS_PORT",
    help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics (off by default).",
)
def supervisor_command(
    url: str | None,
    prefix: str | None,
    supervisor_id: str,
    partition: int,
    lease_ttl: float | None,
    heartbeat_timeout: float | None,
    config_json: str | None,
    workflow_sources: tuple[str, ...],
    verbose: int,
    metrics_port: int | None,
) -> None:
    """Run a supervisor: active while it holds its partition's lease, standby otherwise.

    SIGTERM or Ctrl-C stops it (exit 0), also while NATS is unreachable. Exit 5:
    nats-py gave up connecting (NATS_MAX_RECONNECT_ATTEMPTS); 6: the connection
    was closed for good; 2: a bad configuration (a malformed NATS URL too).
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    fields: dict[str, object] = {}
    if config_json:
        try:
            fields = msgspec.json.decode(config_json.encode(), type=dict[str, object])
        except msgspec.DecodeError as exc:
            raise click.UsageError(f"--config-json: {exc}") from None
    # Chosen before telemetry starts, so `service.instance.id` is this id (the
    # SDK would otherwise invent a UUID nobody can match to the supervisor).
    supervisor_id = supervisor_id or str(fields.get("supervisor_id") or default_supervisor_id())
    fields.update(supervisor_id=supervisor_id)
    # Metrics first: with --metrics-port the one provider must have both readers.
    configure_metrics("natsfleet-supervisor", supervisor_id, prometheus_port=metrics_port)
    setup_process("natsfleet-supervisor", supervisor_id, level=level)
    fields["partition"] = partition
    if lease_ttl is not None:
        fields["lease_ttl_s"] = lease_ttl
    if workflow_sources:
        listed = fields.get("workflows", [])
        fields["workflows"] = [*(listed if isinstance(listed, list) else []), *workflow_sources]
    try:
        cfg = msgspec.convert(fields, SupervisorConfig)
    except msgspec.ValidationError as exc:
        raise click.UsageError(f"bad supervisor config: {exc}") from None
    if heartbeat_timeout is not None:
        timeouts = msgspec.structs.replace(cfg.timeouts, heartbeat_timeout_s=heartbeat_timeout)
        cfg = msgspec.structs.replace(cfg, timeouts=timeouts)
    nats_config = bus_config(url, prefix, name="natsfleet-supervisor")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_run(cfg, nats_config))
    except (BadNatsConfig, ConnectionLost, Unreachable) as exc:
        # Exit for the process manager to restart it, with the reason in the log.
        log.error("supervisor exits with code %d: %s", exc.exit_code, exc)
        sys.exit(exc.exit_code)


async def _run(cfg: SupervisorConfig, bus_config: BusConfig) -> None:
    try:
        supervisor = Supervisor(cfg, bus_config)
    except WorkflowError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        raise SystemExit(2) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.shutdown)
    await supervisor.run()
