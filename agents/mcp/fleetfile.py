"""An agent process's MCP servers from the fleet file (`[[agents.mcp_servers]]`).

`natsfleet up` and every generated target give an agent whose entry declares
MCP servers `NATSFLEET_AGENT_LABEL` (the entry's process label) beside
`NATSFLEET_FLEET_FILE`; the process reads its entry's servers here and adds
them to its `AgentConfig.mcp_servers`. The file was checked by deploy
(deploy/fleetfile.py) before anything started; the servers are checked again
as this package's Structs, which deploy does not import.
"""

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from natsfleet.agents.mcp.config import AnyServer
from natsfleet.agents.mcp.errors import MCPConfigError

if TYPE_CHECKING:
    from natsfleet.agents.agent import AgentConfig

LABEL_ENV = "NATSFLEET_AGENT_LABEL"
FLEET_FILE_ENV = "NATSFLEET_FLEET_FILE"


def entry_label(entry: Mapping[str, Any]) -> str:
    """An `[[agents]]` entry's process label: its `name`, else derived from its
    `agent` spec as deploy derives it (`deploy.fleetfile.derive_label`)."""
    name = entry.get("name")
    if isinstance(name, str) and name:
        return name
    spec = str(entry.get("agent", ""))
    base = spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:40] or "agent"


def fleet_file_servers(environ: Mapping[str, str] | None = None) -> tuple[AnyServer, ...]:
    """The servers of this process's entry; none without both variables.

    Raises:
        MCPConfigError: the file cannot be read, has no such entry, or its
            servers are not valid.
    """
    env = os.environ if environ is None else environ
    label, path = env.get(LABEL_ENV), env.get(FLEET_FILE_ENV)
    if not label or not path:
        return ()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MCPConfigError(label, f"cannot read the fleet file {path}: {exc}") from None
    agents = data.get("agents", [])
    for index, entry in enumerate(agents if isinstance(agents, list) else []):
        if isinstance(entry, dict) and entry_label(entry) == label:
            try:
                return msgspec.convert(
                    entry.get("mcp_servers", []), tuple[AnyServer, ...], strict=True
                )
            except msgspec.ValidationError as exc:
                where = f"{path}: agents[{index}].mcp_servers"
                raise MCPConfigError(label, f"{where}: {exc}") from None
    raise MCPConfigError(label, f"{path} has no [[agents]] entry labelled {label!r}")


def with_fleet_file_servers(
    config: "AgentConfig", environ: Mapping[str, str] | None = None
) -> "AgentConfig":
    """`config` with the fleet file's servers after its own.

    Raises:
        MCPConfigError: see `fleet_file_servers`; or two servers share a name.
    """
    servers = fleet_file_servers(environ)
    if not servers:
        return config
    merged = (*config.mcp_servers, *servers)
    names = [server.name for server in merged]
    for name in names:
        if names.count(name) > 1:
            raise MCPConfigError(name, "declared twice (agent class and fleet file)")
    return msgspec.structs.replace(config, mcp_servers=merged)
