"""`natsfleet deploy TARGET FLEET --out DIR` and `natsfleet wait-nats`."""

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from natsfleet.bus.config import BusConfig
from natsfleet.deploy import DeployError, FleetFile, load_fleet
from natsfleet.deploy.plan import workflow_sources
from natsfleet.deploy.targets import TARGETS, Options, generate, write_files
from natsfleet.supervisor.workflows import WorkflowError, load


def check_workflows(fleet_file: FleetFile) -> None:
    """Validate the fleet file's workflow files as its supervisors will, before anything starts.

    `module:attribute` entries are left to the supervisor: the module may be
    importable only where it runs (a container image).

    Raises:
        DeployError: a definition is invalid (the supervisor would refuse to start).
    """
    try:
        load(workflow_sources(fleet_file).files.values())
    except WorkflowError as exc:
        raise DeployError(f"{fleet_file.path}: workflows: {exc}") from None


@click.command("deploy")
@click.argument("target", type=click.Choice(sorted(TARGETS)))
@click.argument("fleet_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--command",
    default="natsfleet",
    show_default=True,
    help="How the target host runs natsfleet (e.g. /opt/natsfleet/.venv/bin/natsfleet).",
)
@click.option("--image", default="natsfleet:latest", show_default=True, help="Container image.")
@click.option(
    "--fleet-path",
    "fleet_path_opt",
    default="/etc/natsfleet/fleet.toml",
    show_default=True,
    help="Where the fleet file lives on the host (systemd) or in containers.",
)
def deploy_command(
    target: str, fleet_path: Path, out_dir: Path, command: str, image: str, fleet_path_opt: str
) -> None:
    """Write ready-to-use configs for TARGET from the fleet file into --out."""
    try:
        fleet_file = load_fleet(fleet_path)
        check_workflows(fleet_file)
        options = Options(command=command, image=image, fleet_path=fleet_path_opt)
        written = write_files(generate(target, fleet_file, options), out_dir)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(str(path))


@click.command("wait-nats")
@click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
@click.option("--timeout-s", type=float, default=30.0, show_default=True)
def wait_nats_command(url: str | None, timeout_s: float) -> None:
    """Wait until a NATS server answers (for process managers that start all at once)."""
    servers = BusConfig.from_env(url=url).servers
    if not asyncio.run(_wait(servers, timeout_s)):
        raise click.ClickException(f"no NATS server answered at {', '.join(servers)}")


async def _wait(servers: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for server in servers:
            split = urlsplit(server)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(split.hostname, split.port or 4222), 1.0
                )
            except (OSError, TimeoutError):
                continue
            writer.close()
            return True
        await asyncio.sleep(0.1)
    return False
