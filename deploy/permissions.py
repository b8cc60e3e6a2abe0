"""NATS subject permissions per role, derived from `protocols.Subjects`.

Nothing here spells a subject by hand: every fleet subject comes from
`Subjects` (docs/protocol.md, "Subjects"), and JetStream's own API subjects are scoped
to the fleet's streams, buckets and object store by name:

- `$JS.API.<...>.<stream>`: stream info, message get, consumer create/next/
  delete on that stream only (`_read_stream`), or every operation on it
  (`_own_stream`, the supervisor, which provisions them);
- `$KV.<bucket>.>`: writing a key of a KV bucket;
- `$O.<store>.>`: writing an object of the object store;
- `$JS.FC.>` / `$JS.ACK.<stream>.>`: flow control of ordered consumers, acks.

Roles: `supervisor`; one user per agent *type* (the subject name its class
declares, e.g. `researcher`); `client` (CLI, FleetClient); `gateway` (the
MCP gateway replicas: submit, read, cancel, list agents and workflows);
`gateway-a2a` (the A2A gateway replicas: the same Bus role, plus reading the
OUTPUT stream and answering approvals, which an MCP gateway never does). Replies
to requests a role receives are allowed by `allow_responses`, so an agent
can answer an Assign without publishing rights on the supervisor's inbox.
"""

from dataclasses import dataclass, field

from natsfleet.protocols.idempotency import (
    CLIENT_ROLES,
    CLIENT_SCOPE,
    GATEWAY_ROLE,
    idempotency_scope,
)
from natsfleet.protocols.subjects import Bucket, Stream, Subjects

__all__ = [
    "CLIENT_ROLES",
    "GATEWAY_ROLE",
    "Permissions",
    "agent",
    "agent_role",
    "client",
    "gateway",
    "gateway_a2a",
    "supervisor",
]
#: The control verbs a gateway asks (no DLQ, no approvals, no task listing).
GATEWAY_VERBS = ("agents", "workflows", "status", "cancel")
#: What an A2A gateway asks on top: an A2A message answers a task's approval.
A2A_GATEWAY_VERBS = ("approve",)


@dataclass(frozen=True, slots=True)
class Permissions:
    """One user's publish and subscribe allow-lists (everything else is denied)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = True
    notes: tuple[str, ...] = field(default=())


def agent_role(agent_name: str) -> str:
    """The Bus role of an agent of type `agent_name`: its reply inbox is
    `_INBOX.<prefix>.agent.<name>.<instance>`, so per-type users confine it."""
    return f"agent.{agent_name}"


def _kv_stream(s: Subjects, bucket: Bucket) -> str:
    return f"KV_{s.bucket(bucket)}"


def _obj_stream(s: Subjects) -> str:
    return f"OBJ_{s.object_store()}"


def _read_stream(stream: str) -> list[str]:
    """Read one stream: its info, single messages, and ephemeral or ordered consumers."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
    ]


def _own_stream(stream: str) -> list[str]:
    """Every JetStream API operation on one stream (create, update, purge, consumers)."""
    return [
        f"$JS.API.STREAM.*.{stream}",
        f"$JS.API.STREAM.MSG.*.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.*.{stream}",
        f"$JS.API.CONSUMER.*.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.ACK.{stream}.>",
    ]


def _kv_user(s: Subjects, bucket: Bucket) -> list[str]:
    """Read and write keys of one bucket, without the rights to purge or delete it."""
    return [f"$KV.{s.bucket(bucket)}.>", *_read_stream(_kv_stream(s, bucket))]


def _idem_user(s: Subjects, scope: str) -> list[str]:
    """Write idempotency keys of one scope only (protocols/idempotency.py); read any.

    KV subject permissions cannot tell a create from an update or a delete
    (all are publishes to `$KV.<bucket>.<key>`), so the scope is the boundary:
    another role's keys cannot be touched at all.
    """
    return [f"$KV.{s.bucket(Bucket.IDEM)}.{scope}.>", *_read_stream(_kv_stream(s, Bucket.IDEM))]


def _blobs_user(s: Subjects) -> list[str]:
    # Payloads over the max payload travel through the object store both ways.
    return [f"$O.{s.object_store()}.>", *_read_stream(_obj_stream(s))]


def _common_publish(s: Subjects) -> list[str]:
    """What any role may publish: dead letters, spans, flow control replies."""
    return [s.all_dlq(), s.all_spans(), "$JS.FC.>"]


def supervisor(s: Subjects) -> Permissions:
    """Everything under the prefix, and every operation on the fleet's own
    streams, buckets and object store: the only writer of STATE and LEASES."""
    streams = [s.stream(stream) for stream in Stream]
    streams += [_kv_stream(s, bucket) for bucket in Bucket]
    streams.append(_obj_stream(s))
    publish = [f"{s.prefix}.>", "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"]
    for stream in streams:
        publish += _own_stream(stream)
    publish += [f"$KV.{s.bucket(bucket)}.>" for bucket in Bucket]
    publish += [f"$O.{s.object_store()}.>", "$JS.FC.>"]
    subscribe = [f"{s.prefix}.>", f"{s.reply_inbox('supervisor', '*')}.>"]
    return Permissions(tuple(publish), tuple(subscribe))


def agent(s: Subjects, name: str) -> Permissions:
    """An agent type: its own announcements, results and output; sub-tasks;
    the LLM CACHE and GOVERNOR; the events of the sub-tasks it waits for."""
    publish = [
        s.hello(name, "*"),
        s.heartbeat(name, "*"),
        s.bye(name, "*"),
        s.result(name, "*"),
        s.output(name, "*", "*"),
        s.submit(),  # ctx.call: sub-tasks
        *_common_publish(s),
        *_kv_user(s, Bucket.CACHE),
        *_kv_user(s, Bucket.GOVERNOR),  # fleet-wide LLM limits, budgets, health
        # ctx.call's idempotency keys, in this type's own scope
        *_idem_user(s, idempotency_scope(agent_role(name))),
        *_read_stream(s.stream(Stream.EVENTS)),  # waiting for a child's terminal event
        *_read_stream(s.stream(Stream.OUTPUT)),  # following a child's output
        *_blobs_user(s),
        # The agent loop (docs/tools.md): its journal, and the registry's skills as tools.
        *_kv_user(s, Bucket.JOURNAL),
        *_kv_user(s, Bucket.SESSIONS),  # sessions: conversations across tasks
        s.control("agents"),
    ]
    subscribe = [
        s.inbox(name, "*"),  # its own assign and cancel
        s.rollcall(),
        f"{s.reply_inbox(agent_role(name), '*')}.>",
    ]
    return Permissions(tuple(publish), tuple(subscribe))


def client(s: Subjects) -> Permissions:
    """Submit, watch events and output, ask the control API; never write task
    state, results or announcements (no impersonating an agent)."""
    publish = [
        s.submit(),
        s.all_control(),
        *_common_publish(s),
        *_idem_user(s, CLIENT_SCOPE),
        *_read_stream(s.stream(Stream.EVENTS)),
        *_read_stream(s.stream(Stream.SPANS)),  # natsfleet trace
        *_read_stream(s.stream(Stream.OUTPUT)),  # watch, submit --stream
        *_blobs_user(s),
        # natsfleet sessions list|show|delete: read, and purge one session's
        # subjects; never write one (a forged conversation would steer a model).
        *_read_stream(_kv_stream(s, Bucket.SESSIONS)),
        f"$JS.API.STREAM.PURGE.{_kv_stream(s, Bucket.SESSIONS)}",
    ]
    subscribe = [
        s.all_events(),
        s.task_output("*"),
        *(f"{s.reply_inbox(role, '*')}.>" for role in CLIENT_ROLES),
    ]
    return Permissions(tuple(publish), tuple(subscribe))


def gateway(s: Subjects) -> Permissions:
    """A gateway replica: submit and follow tasks, cancel them, read the tool
    list (agents, workflows); its own idempotency scope; nothing else of the
    control API (no DLQ, no approvals), never task state or announcements."""
    publish = [
        s.submit(),
        *(s.control(verb) for verb in GATEWAY_VERBS),
        *_common_publish(s),
        *_idem_user(s, idempotency_scope(GATEWAY_ROLE)),
        *_read_stream(s.stream(Stream.EVENTS)),
        *_blobs_user(s),
    ]
    subscribe = [
        s.all_events(),
        s.task_output("*"),
        f"{s.reply_inbox(GATEWAY_ROLE, '*')}.>",
    ]
    return Permissions(tuple(publish), tuple(subscribe))


def gateway_a2a(s: Subjects) -> Permissions:
    """An A2A gateway replica: a gateway's rights, plus reading the OUTPUT
    stream (a task's streamed text so far, for `GetTask` and a resumed
    stream) and `ctl.approve` (an A2A message answers an approval). Still no
    DLQ, no task listing, never task state or announcements."""
    base = gateway(s)
    publish = [
        *base.publish,
        *(s.control(verb) for verb in A2A_GATEWAY_VERBS),
        *_read_stream(s.stream(Stream.OUTPUT)),
    ]
    return Permissions(tuple(publish), base.subscribe)
