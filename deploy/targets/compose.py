"""docker compose: NATS (JetStream on a volume), Jaeger v2, the supervisors, the agents,
the gateways (replicas of one service; API keys from `NATSFLEET_GATEWAY_KEYS`).

Agent instances are compose replicas (`deploy.replicas`), so their instance
ids are the runtime's random ones; the fleet file is mounted read-only, and
the fleet's workflow files (copied to `workflows/`) into the supervisors.
"""

from typing import Any

import yaml

from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.plan import (
    agent_args,
    agent_stop_timeout_s,
    gateway_args,
    label_env,
    supervisor_args,
    workflow_sources,
)
from natsfleet.deploy.targets.common import Files, Options, fleet_copy, fleet_env, header
from natsfleet.deploy.workflows import BUNDLE_DIR

NATS_IMAGE = "nats:2.10-alpine"
JAEGER_IMAGE = "jaegertracing/jaeger:2.5.0"
_IN_CONTAINER_URL = "nats://nats:4222"


def _without_instance(args: tuple[str, ...]) -> list[str]:
    # Replicas share one command line: each picks its own random instance id.
    i = args.index("--instance") if "--instance" in args else -1
    return list(args if i < 0 else args[:i] + args[i + 2 :])


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    env = fleet_env(fleet_file, url=_IN_CONTAINER_URL, fleet_path=options.fleet_path)
    # OTLP over HTTP (natsfleet's default protocol) to Jaeger v2's 4318.
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://jaeger:4318"
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    mount = [f"./fleet.toml:{options.fleet_path}:ro"]
    common: dict[str, Any] = {
        "image": options.image,
        "restart": "on-failure",
        "depends_on": {"nats": {"condition": "service_healthy"}},
        "volumes": mount,
        "stop_signal": "SIGTERM",
    }
    services: dict[str, Any] = {
        "nats": {
            "image": NATS_IMAGE,
            "command": ["--jetstream", "--store_dir", "/data", "--http_port", "8222"],
            "ports": ["4222:4222", "8222:8222"],
            "volumes": ["nats-data:/data"],
            "healthcheck": {
                "test": ["CMD", "wget", "-q", "-O-", "http://localhost:8222/healthz"],
                "interval": "2s",
                "retries": 30,
            },
        },
        "jaeger": {
            "image": JAEGER_IMAGE,
            "ports": ["4317:4317", "4318:4318", "16686:16686"],
        },
    }
    workflows = workflow_sources(fleet_file)
    sup_args = list(
        supervisor_args(fleet.supervisor, "X", workflows.bundled_args(options.workflows_path))
    )
    del sup_args[1:3]  # each replica gets a random supervisor id
    sup_mounts = list(mount)
    if workflows.files:
        sup_mounts.append(f"./{BUNDLE_DIR}:{options.workflows_path}:ro")
    services["supervisor"] = {
        **common,
        "volumes": sup_mounts,
        "command": sup_args,
        "environment": {**env, "OTEL_SERVICE_NAME": "natsfleet-supervisor"},
        "stop_grace_period": f"{fleet.supervisor.stop_timeout_s + fleet.up.stop_margin_s:g}s",
        "deploy": {"replicas": fleet.supervisor.replicas},
    }
    for agent in fleet.agents:
        services[agent.label] = {
            **common,
            "command": _without_instance(agent_args(agent, "X")),
            "environment": {
                **env,
                "OTEL_SERVICE_NAME": f"natsfleet-agent-{agent.label}",
                **label_env(agent),
                **agent.env,
            },
            "stop_grace_period": f"{agent_stop_timeout_s(agent, fleet):g}s",
            "deploy": {"replicas": agent.instances},
        }
    for gateway in fleet.gateways:
        # Replicas of one service: in-container port `port` on all interfaces,
        # host ports `port`..`port + replicas - 1`. Keys from the host's env.
        # Other services reach the replicas at the service's name (A2A card).
        card_url = f"http://{gateway.label}:{gateway.first_port}/"
        args = gateway_args(gateway, "X", gateway.first_port, card_url=card_url)
        command = _without_instance(args)
        command[command.index("--host") + 1] = "0.0.0.0"  # noqa: S104 - inside the container
        last = gateway.first_port + gateway.replicas - 1
        host_ports = (
            str(gateway.first_port)
            if last == gateway.first_port
            else f"{gateway.first_port}-{last}"
        )
        services[gateway.label] = {
            **common,
            "command": command,
            "environment": {
                **env,
                "OTEL_SERVICE_NAME": f"natsfleet-{gateway.label}",
                "NATSFLEET_GATEWAY_KEYS": "${NATSFLEET_GATEWAY_KEYS:?API keys of the gateway}",
                **gateway.env,
            },
            "ports": [f"{host_ports}:{gateway.first_port}"],
            "stop_grace_period": f"{gateway.stop_timeout_s + fleet.up.stop_margin_s:g}s",
            "deploy": {"replicas": gateway.replicas},
        }
    doc = {"name": "natsfleet", "services": services, "volumes": {"nats-data": {}}}
    text = header("compose", fleet_file) + yaml.safe_dump(doc, sort_keys=False, width=100)
    return {"compose.yaml": text, **fleet_copy(fleet_file), **workflows.bundle()}
