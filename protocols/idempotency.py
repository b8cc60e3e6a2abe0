"""Idempotency keys in the IDEM bucket: who may write where, and the key's hash.

An entry is `<scope>.<sha256(key)>` -> task id. The scope is the writer's
role (`client` for every client role, `agent.<type>` for an agent type,
`supervisor` for workflow steps), so the generated permissions let each NATS
user write only its own scope (`$KV.<IDEM>.<scope>.>`): an agent cannot
point a client's key at another task. Users sharing a scope can still write
each other's entries, so a client also checks that the task an entry names
was submitted with that key: every `TaskEvent` of a keyed task carries
`key_hash` = `idempotency_digest(key)` (docs/protocol.md, "Idempotency").
"""

import hashlib

#: The Bus roles of client processes (CLI, FleetClient, gateways): one scope.
CLIENT_ROLES = ("client", "cli")
CLIENT_SCOPE = "client"
#: The Bus role of gateway processes (natsfleet.gateway): its own NATS user
#: and its own scope, so a gateway cannot touch the CLI's keys or the reverse.
GATEWAY_ROLE = "gateway"


def idempotency_digest(key: str) -> str:
    """The key's sha256, hex: KV keys allow few characters, and events carry it."""
    return hashlib.sha256(key.encode()).hexdigest()


def idempotency_scope(role: str) -> str:
    """The IDEM key prefix a process of Bus role `role` writes under."""
    return CLIENT_SCOPE if role in CLIENT_ROLES else role
