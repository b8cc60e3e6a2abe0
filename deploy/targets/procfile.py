"""Procfile (honcho, foreman): one line per process, plus `.env`.

Honcho and foreman stop every process when one exits, so with an embedded
server the other lines first wait until NATS answers (`natsfleet wait-nats`).
Run from the generated directory: `honcho start` (lines use `$PWD`).
"""

from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.plan import plan, workflow_sources
from natsfleet.deploy.targets.common import (
    Files,
    Options,
    fleet_copy,
    fleet_env,
    header,
    shell_join,
)

_FLEET_ENV = 'NATSFLEET_FLEET_FILE="$PWD/fleet.toml"'


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    cmd = options.command
    lines = [header("procfile", fleet_file).rstrip()]
    wait = ""
    if fleet.nats.embedded:
        port = fleet.nats.url.rsplit(":", 1)[-1]
        lines.append(
            f"nats: exec {cmd} server --port {port} --store {shell_join([fleet.nats.store_dir])}"
        )
        wait = f"{cmd} wait-nats && "
    for spec in plan(fleet_file):
        env = " ".join(f"{k}={shell_join([v])}" for k, v in spec.env.items())
        prefix = f"env {_FLEET_ENV} {env}".rstrip()
        lines.append(f"{spec.name}: {wait}exec {prefix} {cmd} {shell_join(list(spec.args))}")
    shared = fleet_env(fleet_file, url=fleet.nats.url, fleet_path="")
    shared.pop("NATSFLEET_FLEET_FILE")  # absolute, so set per line from $PWD
    dotenv = [header("procfile", fleet_file).rstrip(), *(f"{k}={v}" for k, v in shared.items())]
    return {
        "Procfile": "\n".join(lines) + "\n",
        ".env": "\n".join(dotenv) + "\n",
        **fleet_copy(fleet_file),
        # The supervisors' `--workflows workflows`, relative to this directory.
        **workflow_sources(fleet_file).bundle(),
    }
