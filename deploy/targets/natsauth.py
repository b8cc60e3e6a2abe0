"""`natsfleet deploy nats-auth`: one NATS user per role, with subject permissions.

Writes `auth.conf` (an `authorization` block to `include` in any server
config, the cluster's included), `nats.conf` (a single JetStream server with
file storage, `sync_interval: always` and that block), and one NKey seed per
user under `creds/` (`supervisor.nk`, `agent-<label>.nk`, `client.nk`,
`gateway.nk`, `gateway-a2a.nk`).
The server config holds only public keys. Seeds already present in the fleet
file's `credentials_dir` are reused, so regenerating keeps running processes'
credentials valid.

Point the fleet file at the seeds with `[nats] credentials_dir = "DIR/creds"`:
each process then gets `NATS_NKEY_SEED_FILE` for its own role
(deploy/plan.py); a client sets `NATS_NKEY_SEED_FILE=DIR/creds/client.nk`.
"""

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import nkeys

from natsfleet.deploy import permissions
from natsfleet.deploy.errors import DeployError
from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.plan import (
    CLIENT_USER,
    GATEWAY_A2A_USER,
    GATEWAY_USER,
    SUPERVISOR_USER,
    agent_user,
)
from natsfleet.deploy.resolve import agent_type_name
from natsfleet.deploy.targets.common import Files, Options, header
from natsfleet.protocols.subjects import Subjects

SEED_SUFFIX = ".nk"


def _q(value: str) -> str:
    return json.dumps(value)


def _seed(existing_dir: Path | None, user: str) -> str:
    if existing_dir is not None:
        path = existing_dir / f"{user}{SEED_SUFFIX}"
        if path.exists():
            return path.read_text().strip()
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def public_key(seed: str) -> str:
    """The `U...` public key of a user seed."""
    key: bytes = nkeys.from_seed(seed.encode()).public_key
    return key.decode()


def _list(items: tuple[str, ...], indent: str) -> str:
    return "[\n" + "".join(f"{indent}  {_q(s)}\n" for s in items) + f"{indent}]"


def user_block(user: str, key: str, perms: permissions.Permissions) -> str:
    pad = "      "
    return (
        f"    # {user}\n"
        "    {\n"
        f"      nkey: {_q(key)}\n"
        "      permissions: {\n"
        f"{pad}  publish: {{ allow: {_list(perms.publish, pad + '  ')} }}\n"
        f"{pad}  subscribe: {{ allow: {_list(perms.subscribe, pad + '  ')} }}\n"
        f"{pad}  allow_responses: {str(perms.allow_responses).lower()}\n"
        "      }\n"
        "    }\n"
    )


def role_permissions(fleet_file: FleetFile) -> dict[str, permissions.Permissions]:
    """User name -> permissions, for every role of this fleet.

    Raises:
        DeployError: an agent whose type name cannot be found (it must import).
    """
    fleet = fleet_file.fleet
    subjects = Subjects(fleet.nats.prefix)
    users = {SUPERVISOR_USER: permissions.supervisor(subjects)}
    base = fleet_file.path.parent
    for agent in fleet.agents:
        entries = [p for p in agent.env.get("PYTHONPATH", "").split(":") if p]
        name = agent_type_name(agent.agent, [str(base / p) for p in entries])
        if name is None:
            raise DeployError(f"agent {agent.agent!r} does not resolve to a class with a `name`")
        users[agent_user(agent)] = permissions.agent(subjects, name)
    users[CLIENT_USER] = permissions.client(subjects)
    # Always made, so a gateway can also be run by hand against this fleet.
    users[GATEWAY_USER] = permissions.gateway(subjects)
    users[GATEWAY_A2A_USER] = permissions.gateway_a2a(subjects)
    return users


def generate(fleet_file: FleetFile, options: Options) -> Files:
    fleet = fleet_file.fleet
    existing = None
    if fleet.nats.credentials_dir:
        existing = Path(fleet.nats.credentials_dir)
        if not existing.is_absolute():
            existing = fleet_file.path.parent / existing
    files: Files = {}
    blocks = []
    for user, perms in role_permissions(fleet_file).items():
        seed = _seed(existing, user)
        files[f"creds/{user}{SEED_SUFFIX}"] = seed + "\n"
        blocks.append(user_block(user, public_key(seed), perms))
    files["auth.conf"] = (
        header("nats-auth", fleet_file)
        + "# One NKey user per role; permissions derived from natsfleet's subject table.\n"
        + "authorization {\n  users: [\n"
        + "".join(blocks)
        + "  ]\n}\n"
    )
    files["nats.conf"] = _server_config(fleet_file)
    files["README.txt"] = (
        "nats-server -c nats.conf            # a single JetStream server with these users\n"
        "For a cluster, add `include auth.conf` to each node's config.\n"
        "creds/*.nk are secrets (NKey seeds): keep them mode 0600, one per role.\n"
        "Fleet file: [nats] credentials_dir = '<this dir>/creds' gives every process\n"
        "its own role's seed; clients use NATS_NKEY_SEED_FILE=<this dir>/creds/client.nk.\n"
    )
    return files


def _server_config(fleet_file: FleetFile) -> str:
    fleet = fleet_file.fleet
    url = urlsplit(fleet.nats.url.split(",")[0].strip())
    listen = f"{url.hostname or '127.0.0.1'}:{url.port or 4222}"
    store = Path(fleet.nats.store_dir)
    if not store.is_absolute():  # as `natsfleet up` does: beside the fleet file
        store = fleet_file.path.parent / store
    return "\n".join(
        [
            header("nats-auth", fleet_file).rstrip(),
            f"listen: {_q(listen)}",
            "",
            "jetstream {",
            f"  store_dir: {_q(str(store))}",
            "  # fsync every write: an acknowledged task survives power loss (docs/operations.md)",
            "  sync_interval: always",
            "}",
            "",
            "# TLS: uncomment and point at your certificates; clients then use",
            "# NATS_TLS_CA (and NATS_TLS_CERT/NATS_TLS_KEY with verify: true), or",
            "# tls_ca_file/tls_cert_file/tls_key_file in the fleet file's [nats].",
            "# tls {",
            '#   cert_file: "/etc/nats/server-cert.pem"',
            '#   key_file: "/etc/nats/server-key.pem"',
            '#   ca_file: "/etc/nats/ca.pem"',
            "#   verify: true",
            "# }",
            "",
            "include auth.conf",
            "",
        ]
    )
