"""MCP servers as declared: in Python, in the fleet file (checked by deploy, read
by the agent process), on every deploy target; and an agent that declares none
never imports the `mcp` SDK."""

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from natsfleet.agents import AgentConfig
from natsfleet.agents.mcp import (
    HttpServer,
    MCPConfigError,
    MCPServer,
    MCPServers,
    StdioServer,
    decode_servers,
)
from natsfleet.agents.mcp.config import expand
from natsfleet.agents.mcp.fleetfile import entry_label, fleet_file_servers, with_fleet_file_servers
from natsfleet.agents.mcp.tools import model_name
from natsfleet.deploy import FleetFileError, load_fleet
from natsfleet.deploy.fleetfile import MCPHttpSection, MCPStdioSection, derive_label, parse_fleet
from natsfleet.deploy.plan import AGENT_LABEL_ENV, plan
from natsfleet.deploy.targets import generate
from tests.procs import REPO_ROOT

APP = str(Path(__file__).with_name("server_app.py"))

FLEET = """
[[agents]]
agent = "echo"

[[agents]]
agent = "tests.mcp_agents:MCPAgent"

[[agents.mcp_servers]]
name = "files"
transport = "stdio"
command = "mcp-server-filesystem"
args = ["/srv/data"]
env = { ROOT = "/srv" }
call_timeout_s = 30

[[agents.mcp_servers]]
name = "search"
transport = "http"
url = "https://search.example/mcp"
headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
tool_prefix = "web_"
"""


def test_servers_in_python() -> None:
    files = MCPServer.stdio("files", "server", ["a"], env={"K": "v"}, call_timeout_s=5)
    assert isinstance(files, StdioServer) and files.args == ("a",) and files.call_timeout_s == 5
    web = MCPServer.http("web", "https://x.example/mcp", headers={"A": "b"})
    assert isinstance(web, HttpServer) and web.headers == {"A": "b"}
    for bad in (
        lambda: MCPServer.stdio("bad name", "x"),
        lambda: MCPServer.stdio("ok", " "),
        lambda: MCPServer.http("ok", "ftp://x"),
        lambda: MCPServer.http("ok", "http://x", call_timeout_s=0),
        lambda: MCPServer.stdio("ok", "x", tool_prefix="a.b"),
    ):
        with pytest.raises(MCPConfigError):
            bad()
    with pytest.raises(ValueError, match="two MCP servers share a name"):
        AgentConfig(mcp_servers=(files, MCPServer.http("files", "http://x")))


def test_decoding_and_variables() -> None:
    (server,) = decode_servers(b'[{"transport": "http", "name": "a", "url": "http://h/mcp"}]')
    assert server == MCPServer.http("a", "http://h/mcp")
    with pytest.raises(MCPConfigError, match="unknown field `bogus`"):
        decode_servers(b'[{"transport": "http", "name": "a", "url": "http://h", "bogus": 1}]')
    with pytest.raises(MCPConfigError, match="not JSON"):
        decode_servers(b"[")
    assert expand("s", "Bearer ${TOKEN}!", {"TOKEN": "t0k"}) == "Bearer t0k!"
    with pytest.raises(MCPConfigError, match="environment variable MISSING is not set"):
        expand("s", "${MISSING}", {})


def test_tool_names_fit_every_provider() -> None:
    assert model_name("web_", "search") == "web_search"
    assert model_name("", "files/read.all") == "files_read_all"
    assert len(model_name("p_", "x" * 100)) == 64


async def test_an_undeclared_server_is_a_typed_error() -> None:
    servers = MCPServers([MCPServer.stdio("files", "x")])
    with pytest.raises(MCPConfigError, match=r"not declared by this agent \(declared: files\)"):
        await servers.tools("nope")
    with pytest.raises(MCPConfigError, match="two MCP servers have this name"):
        MCPServers([MCPServer.stdio("a", "x"), MCPServer.stdio("a", "y")])
    await servers.aclose()


def test_the_fleet_file_declares_them_and_the_agent_process_reads_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    fleet = load_fleet(path).fleet
    _, user = fleet.agents
    assert [s.name for s in user.mcp_servers] == ["files", "search"]
    # Only the agent that has servers is told its entry's label (by every target).
    specs = {spec.name: spec for spec in plan(load_fleet(path))}
    assert AGENT_LABEL_ENV not in specs["echo-1"].env
    assert specs["mcpagent-1"].env[AGENT_LABEL_ENV] == "mcpagent"
    for target in ("supervisord", "systemd", "procfile", "compose", "kubernetes"):
        text = "\n".join(generate(target, load_fleet(path)).values())
        assert AGENT_LABEL_ENV in text and "mcpagent" in text, target
    # The agent process finds its entry by that label and reads the same servers.
    env = {"NATSFLEET_FLEET_FILE": str(path), AGENT_LABEL_ENV: "mcpagent"}
    files, search = fleet_file_servers(env)
    assert files == MCPServer.stdio(
        "files", "mcp-server-filesystem", ["/srv/data"], env={"ROOT": "/srv"}, call_timeout_s=30
    )
    assert search == MCPServer.http(
        "search",
        "https://search.example/mcp",
        headers={"Authorization": "Bearer ${SEARCH_TOKEN}"},  # expanded when started
        tool_prefix="web_",
    )
    own = AgentConfig(mcp_servers=(MCPServer.stdio("mine", "x"),))
    merged = with_fleet_file_servers(own, env)
    assert [s.name for s in merged.mcp_servers] == ["mine", "files", "search"]
    with pytest.raises(MCPConfigError, match="declared twice"):
        with_fleet_file_servers(AgentConfig(mcp_servers=(files,)), env)
    with pytest.raises(MCPConfigError, match="no \\[\\[agents\\]\\] entry labelled 'other'"):
        fleet_file_servers({**env, AGENT_LABEL_ENV: "other"})
    assert fleet_file_servers({}) == ()


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        (
            'name = "files"\ntransport = "stdio"\ncommand = "y"',
            "agents[0].mcp_servers[1].name",
            "used twice",
        ),
        (
            'name = "b"\ntransport = "carrier-pigeon"',
            "agents[0].mcp_servers[1].transport",
            "invalid value",
        ),
        ('name = "b"\ntransport = "http"\nurl = "ftp://x"', "agents[0].mcp_servers[1].url", ""),
        (
            'name = "b"\ntransport = "stdio"\ncommand = "x"\nport = 1',
            "agents[0].mcp_servers[1].port",
            "unknown key",
        ),
    ],
)
def test_the_fleet_file_refuses_bad_servers(extra: str, key: str, problem: str) -> None:
    text = f"""
[[agents]]
agent = "echo"

[[agents.mcp_servers]]
name = "files"
transport = "stdio"
command = "x"

[[agents.mcp_servers]]
{extra}
"""
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(text)
    assert caught.value.key == key and problem.lower() in str(caught.value).lower()


def test_deploy_and_the_agent_agree_on_the_keys() -> None:
    """deploy cannot import the agents package: its sections restate the keys."""
    for section, struct in ((MCPStdioSection, StdioServer), (MCPHttpSection, HttpServer)):
        assert {f.name for f in msgspec.structs.fields(section)} == {
            f.name for f in msgspec.structs.fields(struct)
        }
        assert section.__struct_config__.tag == struct.__struct_config__.tag
    for spec in ("echo", "my_pkg.mod:TravelAgent", "x.y:Some_Thing2", "::", "A-b.C"):
        assert entry_label({"agent": spec}) == derive_label(spec)


def test_an_agent_without_mcp_servers_never_imports_the_sdk() -> None:
    """Idle memory matters: the runtime, the CLI and a built agent load no `mcp`."""
    code = """
import sys
from natsfleet.agents import AgentRuntime
from natsfleet.agents.builtin import EchoAgent
from natsfleet.cli.main import main
from natsfleet.agents.mcp import MCPServer
runtime = AgentRuntime(EchoAgent())
loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "httpx2")))
assert not loaded, loaded
assert "natsfleet.agents.mcp.connection" not in sys.modules
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("NATSFLEET_AGENT_LABEL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
