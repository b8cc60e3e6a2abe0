"""systemd: template units for agents, supervisors and gateways, one target that wants them all.

`natsfleet-agent@.service` runs any agent instance: the instance name
(`researcher-2`) picks `/etc/natsfleet/agents/researcher-2.env`, which says
which agent it is. Install: copy `*.service`/`*.target` to
/etc/systemd/system, `natsfleet.env`, `fleet.toml`, `agents/` and
`workflows/` (if the fleet has workflows) and `gateways/` (if it has
gateways: `natsfleet-gateway@<replica>.service`) to /etc/natsfleet, then
`systemctl enable --now natsfleet.target`.
"""

import shlex

from natsfleet.deploy.fleetfile import AgentSection, Fleet, FleetFile, GatewaySection
from natsfleet.deploy.plan import (
    agent_args,
    agent_stop_timeout_s,
    gateway_args,
    gateway_keys_path,
    gateway_replicas,
    label_env,
    supervisor_config_json,
    supervisor_ids,
    workflow_sources,
)
from natsfleet.deploy.targets.common import Files, Options, fleet_copy, fleet_env, header

ETC = "/etc/natsfleet"

_SECURITY = """NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
StateDirectory=natsfleet
WorkingDirectory=/var/lib/natsfleet
"""

# More than 5 starts in 60 s stops restarting (like `natsfleet up`'s intensity).
# systemd reads these two in [Unit] only: in [Service] they are ignored.
_START_LIMIT = """StartLimitIntervalSec=60
StartLimitBurst=5
"""


def _env_file(env: dict[str, str]) -> str:
    # systemd EnvironmentFile: KEY="value" with backslash escapes.
    lines = []
    for key, value in env.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def _agent_template(fleet: Fleet, fleet_file: FleetFile, options: Options) -> str:
    stop_s = max((agent_stop_timeout_s(a, fleet) for a in fleet.agents), default=15.0)
    return (
        header("systemd", fleet_file) + "[Unit]\n"
        "Description=natsfleet agent instance %i\n"
        "PartOf=natsfleet.target\n"
        "After=network-online.target nats-server.service\n"
        "Wants=network-online.target\n" + _START_LIMIT + "\n"
        "[Service]\n"
        "Type=exec\n"
        f"EnvironmentFile={ETC}/natsfleet.env\n"
        f"EnvironmentFile={ETC}/agents/%i.env\n"
        f"ExecStart={options.command} agent run ${{NATSFLEET_AGENT}} --instance %i "
        "$NATSFLEET_AGENT_ARGS\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        f"TimeoutStopSec={stop_s:g}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        "DynamicUser=yes\n" + _SECURITY + "\n[Install]\nWantedBy=natsfleet.target\n"
    )


def _supervisor_template(fleet: Fleet, fleet_file: FleetFile, options: Options) -> str:
    config = supervisor_config_json(fleet.supervisor)
    config_arg = f" --config-json {shlex.quote(config)}" if config != "{}" else ""
    workflows = workflow_sources(fleet_file).bundled_args(options.workflows_path)
    config_arg += "".join(f" {shlex.quote(arg)}" for arg in workflows)
    stop_s = fleet.supervisor.stop_timeout_s + fleet.up.stop_margin_s
    return (
        header("systemd", fleet_file) + "[Unit]\n"
        "Description=natsfleet supervisor %i (one active per partition, others standby)\n"
        "PartOf=natsfleet.target\n"
        "After=network-online.target nats-server.service\n"
        "Wants=network-online.target\n" + _START_LIMIT + "\n"
        "[Service]\n"
        "Type=exec\n"
        f"EnvironmentFile={ETC}/natsfleet.env\n"
        f"ExecStart={options.command} supervisor --id supervisor-%i{config_arg}\n"
        "KillSignal=SIGTERM\n"
        f"TimeoutStopSec={stop_s:g}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        "DynamicUser=yes\n" + _SECURITY + "\n[Install]\nWantedBy=natsfleet.target\n"
    )


def _gateway_template(fleet: Fleet, fleet_file: FleetFile, options: Options) -> str:
    stop_s = max((g.stop_timeout_s for g in fleet.gateways), default=10.0) + fleet.up.stop_margin_s
    return (
        header("systemd", fleet_file) + "[Unit]\n"
        "Description=natsfleet gateway replica %i\n"
        "PartOf=natsfleet.target\n"
        "After=network-online.target nats-server.service\n"
        "Wants=network-online.target\n" + _START_LIMIT + "\n"
        "[Service]\n"
        "Type=exec\n"
        f"EnvironmentFile={ETC}/natsfleet.env\n"
        f"EnvironmentFile={ETC}/gateways/%i.env\n"
        f"ExecStart={options.command} gateway $NATSFLEET_GATEWAY_ARGS\n"
        "KillSignal=SIGTERM\n"
        f"TimeoutStopSec={stop_s:g}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        "DynamicUser=yes\n" + _SECURITY + "\n[Install]\nWantedBy=natsfleet.target\n"
    )


def _gateway_env(
    gateway: GatewaySection, replica_id: str, port: int, keys_file: str | None
) -> dict[str, str]:
    # The API keys file is read by the service (keep it root-readable only;
    # NATSFLEET_GATEWAY_KEYS in this file works too, mode 0600).
    args = gateway_args(gateway, replica_id, port, keys_file)
    # `$NATSFLEET_GATEWAY_ARGS` is split on white space by systemd (no quoting).
    return {"NATSFLEET_GATEWAY_ARGS": " ".join(args[1:]), **gateway.env}


def _agent_env(agent: AgentSection) -> dict[str, str]:
    # Everything after `--instance ID` in the command line `natsfleet up` uses.
    args = agent_args(agent, "X")
    rest = args[args.index("--instance") + 2 :]
    return {
        "NATSFLEET_AGENT": agent.agent,
        "NATSFLEET_AGENT_ARGS": " ".join(rest),
        **label_env(agent),
        **agent.env,
    }


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    files: Files = {
        "natsfleet-agent@.service": _agent_template(fleet, fleet_file, options),
        "natsfleet-supervisor@.service": _supervisor_template(fleet, fleet_file, options),
        "natsfleet.env": header("systemd", fleet_file)
        + _env_file(fleet_env(fleet_file, url=fleet.nats.url, fleet_path=options.fleet_path)),
    }
    units = [f"natsfleet-supervisor@{sid.split('-')[-1]}.service" for sid in supervisor_ids(fleet)]
    for agent in fleet.agents:
        for instance_id in agent.instance_ids():
            files[f"agents/{instance_id}.env"] = header("systemd", fleet_file) + _env_file(
                _agent_env(agent)
            )
            units.append(f"natsfleet-agent@{instance_id}.service")
    if fleet.gateways:
        files["natsfleet-gateway@.service"] = _gateway_template(fleet, fleet_file, options)
    for gateway in fleet.gateways:
        # Absolute on this machine; the unit's dynamic user must be able to read it.
        keys = gateway_keys_path(gateway, fleet_file.path.parent.resolve())
        for replica_id, port in gateway_replicas(gateway):
            files[f"gateways/{replica_id}.env"] = header("systemd", fleet_file) + _env_file(
                _gateway_env(gateway, replica_id, port, keys)
            )
            units.append(f"natsfleet-gateway@{replica_id}.service")
    files["natsfleet.target"] = (
        header("systemd", fleet_file)
        + "[Unit]\nDescription=natsfleet: supervisors and agent instances\n"
        f"Wants={' '.join(units)}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    files.update(fleet_copy(fleet_file))
    files.update(workflow_sources(fleet_file).bundle())  # to /etc/natsfleet/workflows
    return files
