"""supervisord: one program per agent type (numprocs = instances), one for the supervisors,
one per gateway (numprocs = replicas, numbered by their ports).

Every path is `%(here)s`-relative (the config file's directory), so the
generated directory runs as is: `supervisord -c DIR/supervisord.conf`.
"""

import shlex

from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.plan import (
    SUPERVISOR_USER,
    agent_args,
    agent_stop_timeout_s,
    agent_user,
    gateway_args,
    gateway_keys_path,
    gateway_user,
    label_env,
    role_env,
    supervisor_args,
    workflow_sources,
)
from natsfleet.deploy.targets.common import Files, Options, fleet_copy, fleet_env, header
from natsfleet.deploy.workflows import BUNDLE_DIR

# `%(process_num)d` counts from 1, like `natsfleet up`'s instance ids.
_NUM = "%(process_num)d"


def _env_line(env: dict[str, str]) -> str:
    # supervisord's syntax: KEY="value",KEY2="value"; '%' must be doubled.
    parts = []
    for key, value in env.items():
        escaped = value.replace("%", "%%").replace('"', '\\"')
        if key == "NATSFLEET_FLEET_FILE":
            escaped = value  # contains %(here)s on purpose
        parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


def _program(
    name: str,
    command: str,
    numprocs: int,
    stopwaitsecs: int,
    env: dict[str, str],
    numprocs_start: int = 1,
) -> str:
    return (
        f"[program:{name}]\n"
        f"command={command}\n"
        f"numprocs={numprocs}\n"
        "process_name=%(program_name)s-%(process_num)d\n"
        f"numprocs_start={numprocs_start}\n"
        "directory=%(here)s\n"
        "autostart=true\n"
        "autorestart=unexpected\n"
        "exitcodes=0\n"
        "startsecs=1\n"
        "startretries=5\n"
        "stopsignal=TERM\n"
        f"stopwaitsecs={stopwaitsecs}\n"
        "stopasgroup=true\n"
        "killasgroup=true\n"
        "redirect_stderr=true\n"
        f"environment={_env_line(env)}\n"
    )


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    env = fleet_env(fleet_file, url=fleet.nats.url, fleet_path="%(here)s/fleet.toml")
    cmd = options.command
    sections = [
        header("supervisord", fleet_file, ";"),
        "[unix_http_server]\nfile=%(here)s/supervisor.sock\nchmod=0700\n",
        "[supervisord]\nlogfile=%(here)s/supervisord.log\npidfile=%(here)s/supervisord.pid\n"
        "childlogdir=%(here)s\nnodaemon=false\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        "[supervisorctl]\nserverurl=unix://%(here)s/supervisor.sock\n",
    ]
    workflows = workflow_sources(fleet_file)
    # Relative to `directory=%(here)s`, where the copies are written.
    sup_argv = supervisor_args(fleet.supervisor, "X", workflows.bundled_args(BUNDLE_DIR))
    sup_args = " ".join(_quote(a) for a in sup_argv)
    sup_args = sup_args.replace("--id X", f"--id supervisor-{_NUM}")
    sections.append(
        "; The supervisors: one active per partition, the others standbys.\n"
        + _program(
            "supervisor",
            f"{cmd} {sup_args}",
            fleet.supervisor.replicas,
            int(fleet.supervisor.stop_timeout_s + fleet.up.stop_margin_s),
            {**env, **role_env(fleet, SUPERVISOR_USER)},
        )
    )
    active = [a for a in fleet.agents if a.instances > 0]
    for agent in active:
        args = agent_args(agent, "X")
        line = " ".join(_quote(a) for a in args).replace(
            "--instance X", f"--instance {agent.label}-{_NUM}"
        )
        stopwait = agent_stop_timeout_s(agent, fleet)
        sections.append(
            f"; {agent.agent}: SIGTERM drains (grace {agent.drain_grace_s:g} s), "
            f"SIGKILL after {stopwait:g} s\n"
            + _program(
                agent.label,
                f"{cmd} {line}",
                agent.instances,
                int(stopwait + 0.999),
                {**env, **role_env(fleet, agent_user(agent)), **label_env(agent), **agent.env},
            )
        )
    for gateway in fleet.gateways:
        # `%(process_num)d` counts from the first port: each replica its own port.
        keys = gateway_keys_path(gateway, fleet_file.path.parent.resolve())
        args = gateway_args(gateway, "X", 0, keys)
        line = " ".join(_quote(a) for a in args)
        line = line.replace("--instance X", f"--instance {gateway.label}-{_NUM}")
        line = line.replace("--port 0", f"--port {_NUM}")
        sections.append(
            f"; {gateway.protocol} gateway replicas, ports {gateway.first_port}.."
            f"{gateway.first_port + gateway.replicas - 1} (process names end in the port)\n"
            + _program(
                gateway.label,
                f"{cmd} {line}",
                gateway.replicas,
                int(gateway.stop_timeout_s + fleet.up.stop_margin_s + 0.999),
                {**env, **role_env(fleet, gateway_user(gateway)), **gateway.env},
                numprocs_start=gateway.first_port,
            )
        )
    group = ",".join(["supervisor", *(a.label for a in active), *(g.label for g in fleet.gateways)])
    sections.append(f"[group:natsfleet]\nprograms={group}\n")
    return {
        "supervisord.conf": "\n".join(sections),
        **fleet_copy(fleet_file),
        **workflows.bundle(),
    }


def _quote(arg: str) -> str:
    # supervisord splits `command` with shlex; '%' starts an expansion.
    return shlex.quote(arg).replace("%", "%%")
