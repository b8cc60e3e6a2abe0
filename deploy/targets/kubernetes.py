"""Kubernetes: a ConfigMap with the fleet file, the supervisor Deployment, one per agent,
one per gateway with a Service in front of its replicas.

The fleet's workflow files go in a second ConfigMap, mounted as a folder in
the supervisor pods (`--workflows` points at it).

NATS itself comes from the official Helm chart (nats-io/k8s) with the
generated `nats-values.yaml`: a 3-node cluster with JetStream on volumes.
"""

from typing import Any

import yaml

from natsfleet.deploy.fleetfile import FleetFile, GatewaySection
from natsfleet.deploy.plan import (
    agent_args,
    agent_stop_timeout_s,
    gateway_args,
    label_env,
    supervisor_args,
    workflow_sources,
)
from natsfleet.deploy.targets.common import Files, Options, fleet_copy, fleet_env, header

CONFIGMAP = "natsfleet-fleet"
WORKFLOWS_CONFIGMAP = "natsfleet-workflows"
#: Made by the operator (never generated): `kubectl create secret generic
#: natsfleet-gateway-keys --from-literal=keys=name=SECRET`.
GATEWAY_KEYS_SECRET = "natsfleet-gateway-keys"  # noqa: S105 - a Secret's name, not a secret
# The Helm release `nats` in the same namespace serves clients at this name.
_HELM_URL = "nats://nats:4222"


def _container(
    name: str, image: str, args: list[str], env: dict[str, str], fleet_path: str
) -> dict[str, Any]:
    env_list: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    env_list += [{"name": k, "value": v} for k, v in env.items()]
    return {
        "name": name,
        "image": image,
        "command": ["natsfleet"],
        "args": args,
        "env": env_list,
        "volumeMounts": [
            {"name": "fleet", "mountPath": fleet_path, "subPath": "fleet.toml", "readOnly": True}
        ],
    }


def _with_workflows(deployment: dict[str, Any], mount_path: str) -> dict[str, Any]:
    """The workflows ConfigMap as a folder in the deployment's (one) container."""
    pod = deployment["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "workflows", "configMap": {"name": WORKFLOWS_CONFIGMAP}})
    pod["containers"][0]["volumeMounts"].append(
        {"name": "workflows", "mountPath": mount_path, "readOnly": True}
    )
    return deployment


def _deployment(
    name: str, component: str, replicas: int, grace_s: float, container: dict[str, Any]
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": "natsfleet", "app.kubernetes.io/component": component}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # SIGTERM drains; the kubelet SIGKILLs after this.
                    "terminationGracePeriodSeconds": int(grace_s + 0.999),
                    "containers": [container],
                    "volumes": [{"name": "fleet", "configMap": {"name": CONFIGMAP}}],
                },
            },
        },
    }


def _gateway_docs(
    gateway: GatewaySection, fleet_file: FleetFile, options: Options, env: dict[str, str]
) -> list[dict[str, Any]]:
    """A gateway's Deployment (replicas on `port`, keys from a Secret) and its Service."""
    name = f"natsfleet-{gateway.label}"
    # Pods in the namespace reach the replicas at the Service's name (A2A card).
    card_url = f"http://{name}:{gateway.first_port}/"
    args = list(gateway_args(gateway, "$(POD_NAME)", gateway.first_port, card_url=card_url))
    args[args.index("--host") + 1] = "0.0.0.0"  # noqa: S104 - the pod's address
    container = _container(gateway.label, options.image, args, {**env, **gateway.env}, "")
    container["volumeMounts"] = []  # a gateway reads no fleet file
    container["env"].append(
        {
            "name": "NATSFLEET_GATEWAY_KEYS",
            "valueFrom": {"secretKeyRef": {"name": GATEWAY_KEYS_SECRET, "key": "keys"}},
        }
    )
    container["ports"] = [{"name": "http", "containerPort": gateway.first_port}]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
    container["readinessProbe"] = probe
    container["livenessProbe"] = {**probe, "failureThreshold": 6}
    deployment = _deployment(
        name,
        gateway.label,
        gateway.replicas,
        gateway.stop_timeout_s + fleet_file.fleet.up.stop_margin_s,
        container,
    )
    deployment["spec"]["template"]["spec"]["volumes"] = []
    labels = deployment["spec"]["selector"]["matchLabels"]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            # Stateless replicas: no session affinity needed.
            "ports": [{"name": "http", "port": gateway.first_port, "targetPort": "http"}],
        },
    }
    return [deployment, service]


def nats_values(fleet_file: FleetFile) -> str:
    """Values for `helm install nats nats/nats` (chart 1.x): cluster + JetStream on PVCs."""
    values = {
        "config": {
            "cluster": {
                "enabled": True,
                "replicas": max(3, len(fleet_file.fleet.nats.cluster.nodes)),
            },
            "jetstream": {
                "enabled": True,
                "fileStore": {"pvc": {"size": "10Gi"}},
                # fsync every write: a stored task survives a node's power loss.
                "merge": {"sync_interval": "always"},
            },
            "monitor": {"enabled": True},
        },
    }
    return (
        header("kubernetes", fleet_file)
        + "# helm repo add nats https://nats-io.github.io/k8s/helm/charts/\n"
        + "# helm install nats nats/nats -f nats-values.yaml\n"
        + yaml.safe_dump(values, sort_keys=False)
    )


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    env = fleet_env(fleet_file, url=_HELM_URL, fleet_path=options.fleet_path)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "labels": {"app.kubernetes.io/part-of": "natsfleet"}},
            "data": {"fleet.toml": fleet_file.text},
        }
    ]
    workflows = workflow_sources(fleet_file)
    if workflows.files:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": WORKFLOWS_CONFIGMAP,
                    "labels": {"app.kubernetes.io/part-of": "natsfleet"},
                },
                "data": {
                    path.name: path.read_text(encoding="utf-8") for path in workflows.files.values()
                },
            }
        )
    sup_argv = supervisor_args(
        fleet.supervisor, "$(POD_NAME)", workflows.bundled_args(options.workflows_path)
    )
    supervisor = _deployment(
        "natsfleet-supervisor",
        "supervisor",
        fleet.supervisor.replicas,
        fleet.supervisor.stop_timeout_s + fleet.up.stop_margin_s,
        _container("supervisor", options.image, list(sup_argv), env, options.fleet_path),
    )
    docs.append(
        _with_workflows(supervisor, options.workflows_path) if workflows.files else supervisor
    )
    for agent in fleet.agents:
        args = list(agent_args(agent, "$(POD_NAME)"))
        docs.append(
            _deployment(
                f"natsfleet-agent-{agent.label}",
                agent.label,
                agent.instances,
                agent_stop_timeout_s(agent, fleet),
                _container(
                    agent.label,
                    options.image,
                    args,
                    {**env, **label_env(agent), **agent.env},
                    options.fleet_path,
                ),
            )
        )
    for gateway in fleet.gateways:
        docs += _gateway_docs(gateway, fleet_file, options, env)
    text = header("kubernetes", fleet_file) + yaml.safe_dump_all(docs, sort_keys=False, width=100)
    return {
        "natsfleet.yaml": text,
        "nats-values.yaml": nats_values(fleet_file),
        **fleet_copy(fleet_file),
    }
