"""The fleet file (`fleet.toml`): typed sections, loading and validation.

Everything is checked before any process starts: TOML syntax, unknown and
missing keys, types and ranges, agent specs (imported, never instantiated),
duplicate names. Each problem names its key as a TOML path
(`agents[1].instances`) and says what is wrong.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from natsfleet.bus.config import DEFAULT_URL
from natsfleet.deploy.errors import FleetFileError
from natsfleet.deploy.resolve import agent_spec_problem
from natsfleet.deploy.workflows import resolve_workflows
from natsfleet.protocols import DEFAULT_PREFIX, RetryPolicy, Timeouts
from natsfleet.protocols.limits import is_name
from natsfleet.protocols.subjects import Subjects

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
SecondsOrZero = Annotated[float, msgspec.Meta(ge=0)]
# A process label is used as a subject token, a supervisord program, a
# systemd instance and a Kubernetes name: the intersection of those rules.
Label = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")]

_RESERVED_LABELS = frozenset({"supervisor", "nats", "jaeger", "server"})
_URL_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ClusterNode(_Section, frozen=True):
    """One nats-server of a cluster (`natsfleet deploy nats-cluster`)."""

    name: Label
    host: str = "127.0.0.1"
    client_port: Port = 4222
    cluster_port: Port = 6222
    monitor_port: Port | None = None
    store_dir: str | None = None


def _default_nodes() -> tuple[ClusterNode, ...]:
    return tuple(ClusterNode(name=f"nats-{i}", host=f"nats-{i}") for i in (1, 2, 3))


class ClusterSection(_Section, frozen=True):
    name: Label = "natsfleet"
    nodes: tuple[ClusterNode, ...] = msgspec.field(default_factory=_default_nodes)


class NatsSection(_Section, frozen=True):
    """Where NATS is. Secrets (passwords, tokens) come from the environment only."""

    url: str = DEFAULT_URL
    prefix: str = DEFAULT_PREFIX
    # Start a nats-server at `url` (loopback only) when none answers there.
    embedded: bool = False
    store_dir: str = ".natsfleet/jetstream"
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Per-role NKey seeds (`natsfleet deploy nats-auth`): each process gets
    # NATS_NKEY_SEED_FILE=<dir>/<user>.nk for its role (deploy/plan.py).
    credentials_dir: str | None = None
    cluster: ClusterSection = msgspec.field(default_factory=ClusterSection)


def optional_keys(base: type[msgspec.Struct], name: str) -> type[msgspec.Struct]:
    """`base`'s keys as a fleet-file table: the same types and limits (the wire's,
    protocols/limits.py), each key optional (left out: the supervisor's default),
    unknown keys refused. Nothing is restated here: a new field of `base` is a new
    key of the table."""
    fields = [(f.name, f.type | None, None) for f in msgspec.structs.fields(base)]
    return msgspec.defstruct(
        name, fields, bases=(_Section,), module=__name__, frozen=True, kw_only=True,
        forbid_unknown_fields=True,
    )  # fmt: skip


# The fleet defaults of the task timeouts and retries are `protocols.Timeouts`
# and `protocols.RetryPolicy`, key for key; only the keys a file sets are
# passed to the supervisor (plan.py). A timeout default must also be > 0
# (`_check_timeout_defaults`).
if TYPE_CHECKING:  # built from the Structs at import: an opaque table to mypy
    TimeoutDefaults = _Section
    RetryDefaults = _Section
else:
    TimeoutDefaults = optional_keys(Timeouts, "TimeoutDefaults")
    RetryDefaults = optional_keys(RetryPolicy, "RetryDefaults")


class SupervisorSection(_Section, frozen=True):
    """`replicas` supervisor processes: one active per partition, the rest standbys."""

    replicas: PositiveInt = 1
    timeouts: TimeoutDefaults = TimeoutDefaults()
    retry: RetryDefaults = RetryDefaults()
    assign_timeout_s: Seconds | None = None
    lease_ttl_s: Seconds | None = None
    # JetStream replicas of the fleet's streams and buckets (3 on a cluster).
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    # Retention of agents' output for watchers (the OUTPUT stream; docs/operations.md).
    output_max_age_s: Seconds | None = None
    output_max_bytes: Annotated[int, msgspec.Meta(ge=1024 * 1024)] | None = None
    # Seconds the supervisor gets to stop before it is killed.
    stop_timeout_s: Seconds = 10.0


class _MCPServerSection(_Section, frozen=True, kw_only=True, tag_field="transport"):
    """One MCP server of an agent (`[[agents.mcp_servers]]`, docs/interop.md).

    The agent process reads these from the fleet file itself (its entry is
    named by `NATSFLEET_AGENT_LABEL`, plan.py) and checks them again as
    `natsfleet.agents.mcp.config` Structs, which deploy does not import; the
    keys are the same (tests/agents/mcp/test_config.py). `${VAR}` in `env` and
    `headers` values is left as written: the agent expands it from its own
    environment, so secrets stay out of this file and of generated configs.
    """

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")]
    tool_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,32}$")] | None = None
    call_timeout_s: Seconds | None = None
    connect_timeout_s: Seconds | None = None
    backoff_initial_s: Seconds | None = None
    backoff_max_s: Seconds | None = None
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 * 1024 * 1024)] | None = None


class MCPStdioSection(_MCPServerSection, frozen=True, kw_only=True, tag="stdio"):
    command: Annotated[str, msgspec.Meta(min_length=1)]
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    cwd: str | None = None
    stop_grace_s: SecondsOrZero | None = None


class MCPHttpSection(_MCPServerSection, frozen=True, kw_only=True, tag="http"):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    headers: dict[str, str] = {}


class AgentSection(_Section, frozen=True):
    """One agent type: `instances` processes of `natsfleet agent run AGENT`."""

    agent: str  # a built-in or entry-point name, or package.module:Class
    name: Label | None = None  # process label; derived from `agent` when absent
    instances: Count = 1
    capacity: PositiveInt | None = None
    heartbeat_interval_s: Seconds | None = None
    # Running tasks get this long to finish on SIGTERM; process managers wait
    # this plus `up.stop_margin_s` before SIGKILL.
    drain_grace_s: SecondsOrZero = 10.0
    env: dict[str, str] = {}
    # MCP servers whose tools its skills may use (`ctx.mcp_tools`, docs/interop.md).
    mcp_servers: tuple[MCPStdioSection | MCPHttpSection, ...] = ()

    @property
    def label(self) -> str:
        return self.name or derive_label(self.agent)

    def instance_ids(self) -> list[str]:
        return [f"{self.label}-{n}" for n in range(1, self.instances + 1)]


#: Each protocol's port when the fleet file names none (its CLI's default).
GATEWAY_PORTS = {"mcp": 8765, "a2a": 8700}
#: Keys of a `[[gateways]]` entry that only one protocol's gateway takes.
GATEWAY_ONLY = {
    "path": "mcp",
    "refresh_s": "mcp",
    "call_timeout_s": "mcp",
    "default_skill": "a2a",
    "blocking_timeout_s": "a2a",
    "public_url": "a2a",
}


class GatewaySection(_Section, frozen=True):
    """`replicas` processes of `natsfleet gateway PROTOCOL` (docs/interop.md).

    Replicas are stateless: on one machine replica n listens on `port + n - 1`;
    Kubernetes runs them all on `port` behind one Service. API keys are
    secrets: never in this file, but in `keys_file` (a path) or, without it,
    in the environment's `NATSFLEET_GATEWAY_KEYS`.
    """

    protocol: Literal["mcp", "a2a"] = "mcp"
    name: Label | None = None  # process label; `gateway-<protocol>` when absent
    replicas: PositiveInt = 1
    host: str = "127.0.0.1"
    port: Port | None = None  # GATEWAY_PORTS[protocol] when absent
    keys_file: str | None = None
    stop_timeout_s: Seconds = 10.0
    env: dict[str, str] = {}
    # MCP only.
    path: str | None = None  # the MCP endpoint; "/mcp" when absent
    refresh_s: Seconds | None = None
    call_timeout_s: Seconds | None = None
    # A2A only.
    default_skill: str | None = None
    blocking_timeout_s: Seconds | None = None
    public_url: str | None = None  # the Agent Card's URL (the load balancer's)

    @property
    def label(self) -> str:
        return self.name or f"gateway-{self.protocol}"

    @property
    def first_port(self) -> int:
        """The port of replica 1 (Kubernetes: of every replica)."""
        return self.port if self.port is not None else GATEWAY_PORTS[self.protocol]

    def replica_ids(self) -> list[str]:
        return [f"{self.label}-{n}" for n in range(1, self.replicas + 1)]


class UpSection(_Section, frozen=True):
    """How `natsfleet up` restarts children (Erlang one_for_one intensity)."""

    max_restarts: Count = 5  # more than this many restarts ...
    within_s: Seconds = 60.0  # ... within this window stops the child
    backoff_initial_s: SecondsOrZero = 0.5
    backoff_max_s: SecondsOrZero = 30.0
    stop_margin_s: SecondsOrZero = 5.0  # on top of an agent's drain grace
    color: bool = True


class Fleet(_Section, frozen=True):
    nats: NatsSection = msgspec.field(default_factory=NatsSection)
    supervisor: SupervisorSection = SupervisorSection()
    agents: tuple[AgentSection, ...] = ()
    gateways: tuple[GatewaySection, ...] = ()
    up: UpSection = UpSection()
    # Workflows the supervisors load: a folder, a .toml file or module:attribute,
    # or a list of them; paths relative to the fleet file (deploy/workflows.py).
    workflows: str | tuple[str, ...] = ()
    # Passed through to the processes (they read it via NATSFLEET_FLEET_FILE).
    llm: dict[str, Any] = {}
    tracing: dict[str, Any] = {}

    @property
    def workflow_entries(self) -> tuple[str, ...]:
        return (self.workflows,) if isinstance(self.workflows, str) else self.workflows


@dataclass(frozen=True, slots=True)
class FleetFile:
    """A validated fleet file: its absolute path, its text and its content."""

    path: Path
    text: str
    fleet: Fleet


def derive_label(spec: str) -> str:
    """`researcher` -> `researcher`; `my_pkg.mod:TravelAgent` -> `travelagent`."""
    base = spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:40] or "agent"


def load_fleet(path: Path | str, *, check_agents: bool = True) -> FleetFile:
    """Read and validate a fleet file.

    Raises:
        FleetFileError: the first problem found, naming its key.
    """
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetFileError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    fleet = parse_fleet(text, str(path))
    # Paths must exist wherever the file is used; the definitions themselves
    # are checked by `natsfleet up`/`deploy` and by the supervisor at start.
    resolve_workflows(fleet.workflow_entries, path.parent, str(path))
    if check_agents:
        check_agent_specs(fleet, str(path), base_dir=path.parent)
    return FleetFile(path=path, text=text, fleet=fleet)


def parse_fleet(text: str, source: str = "fleet.toml") -> Fleet:
    """Parse and check everything that needs no import (see `load_fleet`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetFileError(source, "", f"not valid TOML: {exc}") from None
    _check_timeout_defaults(data, source)
    try:
        fleet = msgspec.convert(data, Fleet, strict=True)
    except msgspec.ValidationError as exc:
        key, problem = explain_validation_error(str(exc), data)
        raise FleetFileError(source, key, problem) from None
    _check_semantics(fleet, source)
    return fleet


_TIMEOUT_KEYS = frozenset(f.name for f in msgspec.structs.fields(Timeouts))


def _check_timeout_defaults(data: dict[str, Any], source: str) -> None:
    """A fleet default timeout must be > 0, stricter than the wire's >= 0: a
    default of 0 would time out every task at once. Checked before the types,
    so that a negative one is told this rule too."""
    section = data.get("supervisor")
    timeouts = section.get("timeouts") if isinstance(section, dict) else None
    if not isinstance(timeouts, dict):
        return
    for key, value in timeouts.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in _TIMEOUT_KEYS and number and value <= 0:
            raise FleetFileError(
                source, f"supervisor.timeouts.{key}", "must be > 0 (0 times every task out)"
            )


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def explain_validation_error(message: str, data: Any) -> tuple[str, str]:
    """msgspec's `Expected int, got str - at $.agents[0].instances` -> key and problem."""
    match = _AT.match(message)
    assert match is not None  # the pattern matches any string
    msg, path = match["msg"], (match["path"] or "").lstrip(".")
    if unknown := re.match(r"Object contains unknown field `([^`]+)`", msg):
        key = _join(path, unknown[1])
        return key, f"unknown key {unknown[1]!r}{_known_keys_hint(path)}"
    if missing := re.match(r"Object missing required field `([^`]+)`", msg):
        return _join(path, missing[1]), "missing required key"
    if msg.startswith("Expected `object`"):
        return path, "must be a table" + msg[len("Expected `object`") :]
    if msg.startswith("Expected `str` matching regex"):
        return path, (
            "must be lowercase letters, digits and '-' (at most 40, starting and "
            "ending with a letter or digit)"
        )
    # Optional keys are `X | None` to msgspec; a TOML user never writes null.
    msg = msg.replace(" | null`", "`")
    return path, msg[:1].lower() + msg[1:]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _known_keys_hint(path: str) -> str:
    struct: type[msgspec.Struct] | None = Fleet
    for part in re.sub(r"\[\d+\]", "", path).split("."):
        if not part or struct is None:
            continue
        field = next((f for f in msgspec.structs.fields(struct) if f.name == part), None)
        struct = _struct_of(field.type) if field else None
    if struct is None:
        return ""
    return " (known keys: " + ", ".join(f.name for f in msgspec.structs.fields(struct)) + ")"


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    for candidate in (tp, *getattr(tp, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _check_semantics(fleet: Fleet, source: str) -> None:
    try:
        Subjects(fleet.nats.prefix)
    except ValueError as exc:
        raise FleetFileError(source, "nats.prefix", str(exc)) from None
    _check_url(fleet.nats, source)
    seen: dict[str, int] = {}
    for index, agent in enumerate(fleet.agents):
        key = f"agents[{index}]"
        if not agent.agent.strip():
            raise FleetFileError(source, f"{key}.agent", "must not be empty")
        label = agent.label
        if label in _RESERVED_LABELS:
            raise FleetFileError(source, f"{key}.name", f"{label!r} is reserved; choose a name")
        if label in seen:
            raise FleetFileError(
                source,
                f"{key}.name",
                f"{label!r} is already used by agents[{seen[label]}]; give each a distinct name",
            )
        seen[label] = index
        servers = [server.name for server in agent.mcp_servers]
        for n, server in enumerate(agent.mcp_servers):
            if servers.index(server.name) != n:
                raise FleetFileError(
                    source, f"{key}.mcp_servers[{n}].name", f"{server.name!r} is used twice"
                )
    _check_gateways(fleet, source, set(seen))
    up = fleet.up
    if up.backoff_max_s < up.backoff_initial_s:
        raise FleetFileError(source, "up.backoff_max_s", "must be >= up.backoff_initial_s")
    names = [node.name for node in fleet.nats.cluster.nodes]
    if len(set(names)) != len(names):
        raise FleetFileError(source, "nats.cluster.nodes", "node names must be distinct")


def _check_gateways(fleet: Fleet, source: str, agent_labels: set[str]) -> None:
    taken = set(agent_labels)
    ports: dict[int, str] = {}
    for index, gateway in enumerate(fleet.gateways):
        key = f"gateways[{index}]"
        label = gateway.label
        if label in _RESERVED_LABELS or label in taken:
            raise FleetFileError(
                source, f"{key}.name", f"{label!r} is already used or reserved; choose a name"
            )
        taken.add(label)
        for field, protocol in GATEWAY_ONLY.items():
            if getattr(gateway, field) is not None and gateway.protocol != protocol:
                raise FleetFileError(
                    source,
                    f"{key}.{field}",
                    f"is a {protocol} gateway's setting, not {gateway.protocol}'s",
                )
        if gateway.path is not None and (
            not gateway.path.startswith("/") or len(gateway.path) > 200
        ):
            raise FleetFileError(source, f"{key}.path", "must be an absolute URL path")
        if gateway.default_skill is not None and not is_name(gateway.default_skill):
            raise FleetFileError(source, f"{key}.default_skill", "must be a skill name")
        if gateway.public_url is not None and not is_http_url(gateway.public_url):
            raise FleetFileError(source, f"{key}.public_url", "must be an http(s) URL")
        # Replicas on one machine take consecutive ports: none may overlap.
        for port in range(gateway.first_port, gateway.first_port + gateway.replicas):
            if port > 65535 or port in ports:
                where = "beyond 65535" if port > 65535 else f"also used by {ports[port]}"
                raise FleetFileError(source, f"{key}.port", f"replica port {port} is {where}")
            ports[port] = key


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host, of at most 2,000 characters."""
    split = urlsplit(url)
    return split.scheme in ("http", "https") and bool(split.hostname) and len(url) <= 2000


def _check_url(nats: NatsSection, source: str) -> None:
    parts = [p.strip() for p in nats.url.split(",") if p.strip()]
    if not parts:
        raise FleetFileError(source, "nats.url", "must not be empty")
    for part in parts:
        split = urlsplit(part)
        try:
            port = split.port
        except ValueError:
            port = None
        if split.scheme not in _URL_SCHEMES or not split.hostname or port is None:
            raise FleetFileError(source, "nats.url", f"{part!r} is not a URL like nats://host:4222")
    if nats.embedded:
        host = urlsplit(parts[0]).hostname
        if len(parts) != 1 or host not in ("127.0.0.1", "localhost", "::1"):
            raise FleetFileError(
                source,
                "nats.embedded",
                "an embedded server runs on this machine: nats.url must be one "
                "loopback URL (nats://127.0.0.1:PORT)",
            )


def check_agent_specs(fleet: Fleet, source: str, base_dir: Path | None = None) -> None:
    """Every agent spec must resolve (imported with its env's PYTHONPATH, not instantiated).

    Relative PYTHONPATH entries count from `base_dir` (the fleet file's
    directory), which is where `natsfleet up` runs its children.
    """
    base = base_dir or Path.cwd()
    for index, agent in enumerate(fleet.agents):
        entries = [p for p in agent.env.get("PYTHONPATH", "").split(":") if p]
        pythonpath = [str(base / p) for p in entries]
        problem = agent_spec_problem(agent.agent, pythonpath)
        if problem:
            raise FleetFileError(source, f"agents[{index}].agent", problem)
