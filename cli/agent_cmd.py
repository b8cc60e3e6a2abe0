"""`natsfleet agent run` and `natsfleet agents`."""

import asyncio
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import click
import msgspec

from natsfleet.cli.connect import bus_config as bus_config_from
from natsfleet.cli.connect import connect_timeout_option
from natsfleet.protocols import AgentInfo, NatsFleetError

if TYPE_CHECKING:
    from natsfleet.agents import Agent
    from natsfleet.bus import BusConfig


@click.group("agent")
def agent_group() -> None:
    """Run agent instances (each one its own process)."""


@agent_group.command("run")
@click.argument("spec")
@click.option("--nats", "nats_url", help="NATS URL(s), comma-separated [env NATS_URL].")
@click.option("--prefix", help="Fleet subject prefix [env NATSFLEET_PREFIX].")
@click.option("--instance", "instance_id", help="Instance id (default: NAME-<random>).")
@click.option("--capacity", type=click.IntRange(min=1), help="Most tasks at once.")
@click.option("--heartbeat-s", type=click.FloatRange(min=0.01), help="Heartbeat interval.")
@click.option("--grace-s", type=click.FloatRange(min=0.0), help="Drain grace period on SIGTERM.")
@click.option("--name", "agent_name", help="a2a: the proxy's agent name (default a2a-<card name>).")
@click.option("--skill-prefix", default="", help="a2a: put this before each remote skill's id.")
@click.option(
    "--key-env",
    default="NATSFLEET_A2A_KEY",
    show_default=True,
    help="a2a: the environment variable holding the remote agent's API key.",
)
def run_command(
    spec: str,
    nats_url: str | None,
    prefix: str | None,
    instance_id: str | None,
    capacity: int | None,
    heartbeat_s: float | None,
    grace_s: float | None,
    agent_name: str | None,
    skill_prefix: str,
    key_env: str,
) -> None:
    """Run one instance of SPEC: a built-in name, module:Class, or an entry point name.

    module:Class is imported from the current directory or PYTHONPATH.

    a2a:URL runs a proxy of the remote A2A agent at URL: its card's skills
    join the fleet, each task forwarded to it (docs/interop.md). Its API key
    comes from the environment (--key-env), more headers from
    NATSFLEET_A2A_HEADERS (a JSON object); a card that cannot be fetched
    exits 1.

    SIGTERM or Ctrl-C drains it: running tasks get the grace period, the rest
    are handed back, and it exits 0. A second signal hands back at once.
    """
    from natsfleet.agents import default_instance_id, load_agent, run_agent
    from natsfleet.telemetry.logs import setup_logging, setup_process

    setup_logging("natsfleet-agent")  # until the agent's own name is known
    # Like uvicorn's --app-dir: `module:Class` imports from the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if spec.startswith("a2a:"):
            agent_cls = _a2a_proxy(spec.removeprefix("a2a:"), agent_name, skill_prefix, key_env)
        else:
            if agent_name or skill_prefix:
                raise click.UsageError("--name and --skill-prefix are for a2a:URL specs only")
            agent_cls = load_agent(spec)
        # Chosen before telemetry starts: `service.instance.id` is the instance id.
        instance_id = instance_id or default_instance_id(agent_cls.name)
        # Each agent type is its own service in traces: natsfleet-agent-<name>.
        setup_process(f"natsfleet-agent-{agent_cls.name}", instance_id)
        overrides = {
            "capacity": capacity,
            "heartbeat_interval_s": heartbeat_s,
            "drain_grace_s": grace_s,
        }
        config = msgspec.structs.replace(
            agent_cls.config, **{k: v for k, v in overrides.items() if v is not None}
        )
        bus_config = bus_config_from(nats_url, prefix, name=f"agent {spec}")  # bad: exit 2
        code = run_agent(agent_cls(), bus_config=bus_config, instance_id=instance_id, config=config)
    except (NatsFleetError, ValueError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    sys.exit(code)


def _a2a_proxy(url: str, name: str | None, skill_prefix: str, key_env: str) -> "type[Agent]":
    """The proxy class of the A2A agent at `url` (its card fetched now); the
    `a2a` SDK is imported only here, for this kind of agent."""
    from natsfleet.agents.a2a import ProxySettings, load_proxy

    raw = os.environ.get("NATSFLEET_A2A_HEADERS", "")
    try:
        headers = msgspec.json.decode(raw, type=dict[str, str]) if raw else {}
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise click.BadParameter(
            f"NATSFLEET_A2A_HEADERS must be a JSON object of strings: {exc}"
        ) from None
    settings = ProxySettings(url=url, api_key=os.environ.get(key_env) or None, headers=headers)
    return load_proxy(settings, name=name or "", skill_prefix=skill_prefix)


@click.command("agents")
@click.option("--nats", "nats_url", help="NATS URL(s), comma-separated [env NATS_URL].")
@click.option("--prefix", help="Fleet subject prefix [env NATSFLEET_PREFIX].")
@click.option("--agent", "agent_name", help="Only instances of this agent.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout-s", type=float, default=3.0, show_default=True, help="For the reply.")
@connect_timeout_option
def agents_command(
    nats_url: str | None,
    prefix: str | None,
    agent_name: str | None,
    as_json: bool,
    timeout_s: float,
) -> None:
    """List live agent instances, as the supervisor's registry knows them."""
    from natsfleet.bus import NoResponders, RequestTimeout
    from natsfleet.cli.connect import NATS_ERRORS, bus_config, report
    from natsfleet.telemetry import tracing

    # The connection's retry warnings would bury the one line that matters here.
    logging.getLogger("natsfleet.bus").setLevel(logging.ERROR)
    config = bus_config(nats_url, prefix, name="natsfleet agents")
    # Traced like the task verbs: the request carries its trace context.
    tracing.configure("natsfleet-client")
    try:
        agents = asyncio.run(_fetch_agents(config, agent_name, timeout_s))
    except NATS_ERRORS as exc:
        sys.exit(report(exc))
    except (NoResponders, RequestTimeout):
        click.echo(
            f"no supervisor answered on {config.prefix}.ctl.agents at {config.url}: "
            "is one running for this fleet (prefix)?",
            err=True,
        )
        sys.exit(2)
    except (NatsFleetError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    finally:
        tracing.uninstall()  # flush spans before exiting
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(agents)).decode())
        return
    _print_table(agents)


async def _fetch_agents(
    config: "BusConfig", agent_name: str | None, timeout_s: float
) -> tuple[AgentInfo, ...]:
    from natsfleet.cli.connect import run_connected
    from natsfleet.client import FleetClient

    return await run_connected(
        config,
        lambda bus: FleetClient(bus).agents(agent_name, timeout_s=timeout_s),
        instance=str(os.getpid()),
    )


def _print_table(agents: tuple[AgentInfo, ...]) -> None:
    from rich.table import Column, Table

    from natsfleet.cli.console import console as make_console

    table = Table(
        "agent", Column("instance", overflow="fold"), "skills", "load", "last heartbeat", "state"
    )
    now_ms = time.time() * 1000
    for info in sorted(agents, key=lambda a: (a.agent, a.instance_id)):
        state = "draining" if info.draining else ("alive" if info.alive else "silent")
        table.add_row(
            info.agent,
            info.instance_id,
            ", ".join(s.name for s in info.skills),
            f"{info.load}/{info.capacity}",
            f"{max(0.0, now_ms - info.last_seen_ms) / 1000:.1f} s ago",
            state,
        )
    console = make_console()
    if not agents:
        console.print("no live agent instances")
        return
    console.print(table)
