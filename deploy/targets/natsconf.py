"""nats-server configs for a JetStream cluster, one file per node (`[nats.cluster]`).

Each node routes to every other; `sync_interval: always` makes JetStream
fsync each write, so an acknowledged task survives a power loss of a
majority of nodes at once (the default fsyncs every 2 minutes and relies
on replication). Streams should then use 3 replicas
(`[supervisor] stream_replicas = 3`).
"""

import json

from natsfleet.deploy.fleetfile import ClusterNode, FleetFile
from natsfleet.deploy.targets.common import Files, Options, header


def _q(value: str) -> str:
    return json.dumps(value)  # nats.conf accepts JSON-style quoted strings


def node_config(fleet_file: FleetFile, node: ClusterNode) -> str:
    cluster = fleet_file.fleet.nats.cluster
    routes = [f"nats-route://{n.host}:{n.cluster_port}" for n in cluster.nodes if n is not node]
    store = node.store_dir or f"/var/lib/nats/{node.name}"
    lines = [
        header("nats-cluster", fleet_file).rstrip(),
        f"server_name: {_q(node.name)}",
        f"listen: {_q(f'{node.host}:{node.client_port}')}",
    ]
    if node.monitor_port is not None:
        lines.append(f"http: {_q(f'{node.host}:{node.monitor_port}')}")
    lines += [
        "",
        "jetstream {",
        f"  store_dir: {_q(store)}",
        "  # fsync every write (durability over throughput); the default is 2m.",
        "  sync_interval: always",
        "}",
        "",
        "cluster {",
        f"  name: {_q(cluster.name)}",
        f"  listen: {_q(f'{node.host}:{node.cluster_port}')}",
        "  routes: [",
        *(f"    {_q(route)}" for route in routes),
        "  ]",
        "}",
        "",
    ]
    return "\n".join(lines)


def generate(fleet_file: FleetFile, options: Options) -> Files:
    nodes = fleet_file.fleet.nats.cluster.nodes
    files = {f"{node.name}.conf": node_config(fleet_file, node) for node in nodes}
    urls = ",".join(f"nats://{n.host}:{n.client_port}" for n in nodes)
    files["README.txt"] = (
        f"One config per node: `nats-server -c <node>.conf` on each host.\n"
        f"Clients (NATS_URL / [nats] url): {urls}\n"
        "Check a config without starting it: `nats-server -t -c <node>.conf`.\n"
    )
    return files
