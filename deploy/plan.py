"""What to run for a fleet: each process's command line and environment.

`natsfleet up` runs these specs; the generators (supervisord, systemd,
Procfile, compose, Kubernetes) write the same command lines in their own
syntax, so every target starts the fleet the same way.
"""

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import msgspec

from natsfleet.deploy.fleetfile import (
    AgentSection,
    Fleet,
    FleetFile,
    GatewaySection,
    SupervisorSection,
)
from natsfleet.deploy.workflows import BUNDLE_DIR, WorkflowSources, resolve_workflows


class Kind(StrEnum):
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One child process: `name` is unique in the fleet (`researcher-2`)."""

    name: str
    kind: Kind
    group: str  # `supervisor` or the agent's label
    args: tuple[str, ...]  # after the `natsfleet` command itself
    env: dict[str, str] = field(default_factory=dict)  # on top of the common env
    stop_timeout_s: float = 10.0


_CREDENTIAL_ENV = {
    "creds_file": "NATS_CREDS",
    "nkey_seed_file": "NATS_NKEY_SEED_FILE",
    "tls_ca_file": "NATS_TLS_CA",
    "tls_cert_file": "NATS_TLS_CERT",
    "tls_key_file": "NATS_TLS_KEY",
}


def common_env(
    fleet: Fleet, *, url: str, fleet_file: str, base_dir: Path | None = None
) -> dict[str, str]:
    """The environment every child gets (BusConfig.from_env reads it).

    `base_dir` makes relative credential paths absolute (for `natsfleet up`);
    generators leave them as written.
    """
    env = {
        "NATS_URL": url,
        "NATSFLEET_PREFIX": fleet.nats.prefix,
        "NATSFLEET_FLEET_FILE": fleet_file,
    }
    for attr, name in _CREDENTIAL_ENV.items():
        value: str | None = getattr(fleet.nats, attr)
        if value:
            env[name] = str(base_dir / value) if base_dir is not None else value
    return env


SUPERVISOR_USER = "supervisor"
CLIENT_USER = "client"
#: Every MCP gateway replica connects as this one NATS user ...
GATEWAY_USER = "gateway"
#: ... every A2A gateway replica as this one (it also reads OUTPUT and approves).
GATEWAY_A2A_USER = "gateway-a2a"


def gateway_user(gateway: GatewaySection) -> str:
    """The NATS user (and seed file stem) of a gateway entry's replicas."""
    return GATEWAY_A2A_USER if gateway.protocol == "a2a" else GATEWAY_USER


def agent_user(agent: AgentSection) -> str:
    """The NATS user (and seed file stem) of one agent entry of the fleet file."""
    return f"agent-{agent.label}"


def role_env(fleet: Fleet, user: str, base_dir: Path | None = None) -> dict[str, str]:
    """`NATS_NKEY_SEED_FILE` of `user` when the fleet file names a `credentials_dir`
    (written by `natsfleet deploy nats-auth`); it wins over a shared seed file."""
    directory = fleet.nats.credentials_dir
    if not directory:
        return {}
    path = Path(directory) / f"{user}.nk"
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return {"NATS_NKEY_SEED_FILE": str(path)}


def supervisor_config_json(section: SupervisorSection) -> str:
    """The `--config-json` for `natsfleet supervisor` (SupervisorConfig fields set in the file)."""
    fields: dict[str, object] = {}
    timeouts = _set_fields(section.timeouts)
    if timeouts:
        fields["timeouts"] = timeouts
    retry = _set_fields(section.retry)
    if retry:
        fields["retry"] = retry
    for name in ("assign_timeout_s", "lease_ttl_s"):
        value = getattr(section, name)
        if value is not None:
            fields[name] = value
    storage = {
        key: value
        for key, value in (
            ("replicas", section.stream_replicas),
            ("output_max_age_s", section.output_max_age_s),
            ("output_max_bytes", section.output_max_bytes),
        )
        if value is not None
    }
    if storage:
        fields["storage"] = storage
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def _set_fields(struct: msgspec.Struct) -> dict[str, object]:
    return {
        name: value for name, value in msgspec.structs.asdict(struct).items() if value is not None
    }


def supervisor_args(
    section: SupervisorSection, supervisor_id: str, workflows: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """`workflows`: `--workflows` options (`WorkflowSources.up_args` or `.bundled_args`)."""
    args = ["supervisor", "--id", supervisor_id]
    config = supervisor_config_json(section)
    if config != "{}":
        args += ["--config-json", config]
    return (*args, *workflows)


def workflow_sources(fleet_file: FleetFile) -> WorkflowSources:
    """The fleet file's `workflows`, resolved from its directory (deploy/workflows.py)."""
    path = fleet_file.path
    return resolve_workflows(fleet_file.fleet.workflow_entries, path.parent, str(path))


#: Names an agent process's `[[agents]]` entry, where it reads its MCP servers.
AGENT_LABEL_ENV = "NATSFLEET_AGENT_LABEL"


def label_env(agent: AgentSection) -> dict[str, str]:
    """`NATSFLEET_AGENT_LABEL` when the agent process must read its own entry
    of the fleet file (it has `mcp_servers`); every target sets it."""
    return {AGENT_LABEL_ENV: agent.label} if agent.mcp_servers else {}


def agent_env(fleet: Fleet, agent: AgentSection, base_dir: Path | None = None) -> dict[str, str]:
    """An agent instance's own environment: its role, its entry's label, its `env`."""
    return {**role_env(fleet, agent_user(agent), base_dir), **label_env(agent), **agent.env}


def agent_args(agent: AgentSection, instance_id: str) -> tuple[str, ...]:
    args = ["agent", "run", agent.agent, "--instance", instance_id]
    if agent.capacity is not None:
        args += ["--capacity", str(agent.capacity)]
    if agent.heartbeat_interval_s is not None:
        args += ["--heartbeat-s", _num(agent.heartbeat_interval_s)]
    # Always passed, so the agent's grace and the process manager's stop
    # timeout (grace + margin) come from the same number.
    args += ["--grace-s", _num(agent.drain_grace_s)]
    return tuple(args)


def gateway_args(
    gateway: GatewaySection,
    replica_id: str,
    port: int,
    keys_file: str | None = None,
    card_url: str | None = None,
) -> tuple[str, ...]:
    """`natsfleet gateway PROTOCOL ...` of one replica; `keys_file` as the target sees it.

    Both protocols take `--instance`, `--host`, `--port` and `--keys-file`;
    the rest is the protocol's own (fleetfile.GATEWAY_ONLY). `card_url`: an
    A2A Agent Card's URL when the fleet file sets no `public_url` (compose and
    Kubernetes: the service's name; elsewhere the gateway's own default,
    `http://HOST:PORT/`, is the address it binds).
    """
    args = ["gateway", gateway.protocol, "--instance", replica_id]
    args += ["--host", gateway.host, "--port", str(port)]
    if gateway.protocol == "mcp":
        args += ["--path", gateway.path or "/mcp"]
    if keys_file is not None:
        args += ["--keys-file", keys_file]
    if gateway.refresh_s is not None:
        args += ["--refresh-s", _num(gateway.refresh_s)]
    if gateway.call_timeout_s is not None:
        args += ["--call-timeout-s", _num(gateway.call_timeout_s)]
    if gateway.default_skill is not None:
        args += ["--default-skill", gateway.default_skill]
    if gateway.blocking_timeout_s is not None:
        args += ["--blocking-timeout-s", _num(gateway.blocking_timeout_s)]
    url = gateway.public_url or card_url
    if gateway.protocol == "a2a" and url is not None:
        args += ["--public-url", url]
    return tuple(args)


def gateway_keys_path(gateway: GatewaySection, base_dir: Path) -> str | None:
    """`keys_file` made absolute against `base_dir` (the fleet file's directory),
    so the command works from any directory (`natsfleet up`, every generated target)."""
    if gateway.keys_file is None:
        return None
    path = Path(gateway.keys_file).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


def gateway_replicas(gateway: GatewaySection) -> list[tuple[str, int]]:
    """(replica id, port) of each replica on one machine: consecutive ports."""
    return [(rid, gateway.first_port + n) for n, rid in enumerate(gateway.replica_ids())]


def agent_stop_timeout_s(agent: AgentSection, fleet: Fleet) -> float:
    """How long a process manager waits after SIGTERM before SIGKILL."""
    return agent.drain_grace_s + fleet.up.stop_margin_s


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def supervisor_ids(fleet: Fleet) -> list[str]:
    return [f"supervisor-{n}" for n in range(1, fleet.supervisor.replicas + 1)]


def plan(fleet_file: FleetFile, base_dir: Path | None = None) -> list[ProcessSpec]:
    """Every child of `natsfleet up`: supervisors first, then agent instances, then gateways.

    Each gets its role's credentials (`role_env`); `base_dir` makes relative
    credential paths absolute and the supervisors load the fleet file's
    workflows where they are (for `natsfleet up`). Without it (a generated
    target run from its own directory) they load the copies in `workflows/`.
    """
    fleet = fleet_file.fleet
    sources = workflow_sources(fleet_file)
    workflows = sources.up_args() if base_dir is not None else sources.bundled_args(BUNDLE_DIR)
    specs = [
        ProcessSpec(
            name=sid,
            kind=Kind.SUPERVISOR,
            group="supervisor",
            args=supervisor_args(fleet.supervisor, sid, workflows),
            env=role_env(fleet, SUPERVISOR_USER, base_dir),
            stop_timeout_s=fleet.supervisor.stop_timeout_s,
        )
        for sid in supervisor_ids(fleet)
    ]
    for agent in fleet.agents:
        for instance_id in agent.instance_ids():
            specs.append(
                ProcessSpec(
                    name=instance_id,
                    kind=Kind.AGENT,
                    group=agent.label,
                    args=agent_args(agent, instance_id),
                    env=agent_env(fleet, agent, base_dir),
                    stop_timeout_s=agent_stop_timeout_s(agent, fleet),
                )
            )
    for gateway in fleet.gateways:
        # Always absolute: a generated target runs from its own directory.
        keys_file = gateway_keys_path(gateway, base_dir or fleet_file.path.parent.resolve())
        for replica_id, port in gateway_replicas(gateway):
            specs.append(
                ProcessSpec(
                    name=replica_id,
                    kind=Kind.GATEWAY,
                    group=gateway.label,
                    args=gateway_args(gateway, replica_id, port, keys_file),
                    env={**role_env(fleet, gateway_user(gateway), base_dir), **gateway.env},
                    stop_timeout_s=gateway.stop_timeout_s,
                )
            )
    return specs
