"""Gateways in the fleet file: checked, planned for `natsfleet up`, and written into
every generated target (docs/interop.md, "Running gateways")."""

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from natsfleet.deploy import FleetFileError, load_fleet
from natsfleet.deploy.fleetfile import parse_fleet
from natsfleet.deploy.plan import Kind, plan
from natsfleet.deploy.targets import generate
from natsfleet.gateway.a2a.card import default_card_url
from tests.deploy.helpers import AGENT_ENV, write_fleet

FLEET = f"""
[nats]
url = "nats://127.0.0.1:4222"
credentials_dir = "auth/creds"

[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
{AGENT_ENV}

[[gateways]]
protocol = "mcp"
replicas = 2
port = 9100
keys_file = "keys.txt"
refresh_s = 1
"""


def _fleet(tmp_path: Path) -> Any:
    return load_fleet(write_fleet(tmp_path, FLEET))


def test_up_plans_each_replica_on_its_own_port_as_the_gateway_user(tmp_path: Path) -> None:
    fleet_file = _fleet(tmp_path)
    specs = [s for s in plan(fleet_file, base_dir=tmp_path) if s.kind == Kind.GATEWAY]
    assert [s.name for s in specs] == ["gateway-mcp-1", "gateway-mcp-2"]
    first, second = (list(s.args) for s in specs)
    assert first[:2] == ["gateway", "mcp"]
    assert first[first.index("--port") + 1] == "9100"
    assert second[second.index("--port") + 1] == "9101"
    assert first[first.index("--keys-file") + 1] == str(tmp_path / "keys.txt")
    assert first[first.index("--refresh-s") + 1] == "1"
    assert specs[0].env["NATS_NKEY_SEED_FILE"] == str(tmp_path / "auth/creds/gateway.nk")


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('[[gateways]]\nport = 9101\nname = "other"\n', "gateways[1].port", "also used by"),
        ('[[gateways]]\nport = 9300\nname = "echo"\n', "gateways[1].name", "already used"),
        ('[[gateways]]\nport = 9300\nprotocol = "grpc"\n', "gateways[1].protocol", "'grpc'"),
        ('[[gateways]]\nport = 9300\npath = "mcp"\nname = "p"\n', "gateways[1].path", "absolute"),
        ('[[gateways]]\nport = 65535\nreplicas = 2\nname = "hi"\n', "gateways[1].port", "65535"),
    ],
)
def test_a_bad_gateway_entry_names_its_key(extra: str, key: str, problem: str) -> None:
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(FLEET + extra)
    assert caught.value.key == key, caught.value
    assert problem in str(caught.value)


def test_every_target_runs_the_gateways(tmp_path: Path) -> None:
    fleet_file = _fleet(tmp_path)
    procfile = generate("procfile", fleet_file)["Procfile"]
    assert "gateway-mcp-2: exec" in procfile and "--port 9101" in procfile

    conf = generate("supervisord", fleet_file)["supervisord.conf"]
    program = conf[conf.index("[program:gateway-mcp]") :].split("\n\n")[0]
    assert "numprocs=2\n" in program and "numprocs_start=9100\n" in program
    assert "--instance gateway-mcp-%(process_num)d" in program
    assert "--port %(process_num)d" in program
    assert "gateway.nk" in program
    assert "programs=supervisor,echo,gateway-mcp" in conf

    units = generate("systemd", fleet_file)
    assert "gateway $NATSFLEET_GATEWAY_ARGS" in units["natsfleet-gateway@.service"]
    assert "--port 9101" in units["gateways/gateway-mcp-2.env"]
    assert "natsfleet-gateway@gateway-mcp-1.service" in units["natsfleet.target"]

    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    service = compose["services"]["gateway-mcp"]
    assert service["deploy"]["replicas"] == 2
    assert service["ports"] == ["9100-9101:9100"]
    assert service["command"][service["command"].index("--host") + 1] == "0.0.0.0"
    assert "NATSFLEET_GATEWAY_KEYS" in service["environment"]

    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-gateway-mcp")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    keys = next(e for e in container["env"] if e["name"] == "NATSFLEET_GATEWAY_KEYS")
    assert keys["valueFrom"]["secretKeyRef"]["name"] == "natsfleet-gateway-keys"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service_doc = next(d for d in docs if d["kind"] == "Service")
    assert service_doc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service_doc["spec"]["ports"][0]["port"] == 9100

    auth = generate("nats-auth", fleet_file)
    assert "creds/gateway.nk" in auth


A2A = """
[[gateways]]
protocol = "a2a"
replicas = 2
keys_file = "keys.txt"
default_skill = "echo"
blocking_timeout_s = 30
public_url = "https://agents.example.com/"
"""


def test_an_a2a_gateway_is_planned_with_its_own_settings(tmp_path: Path) -> None:
    fleet_file = load_fleet(write_fleet(tmp_path, FLEET + A2A))
    specs = [s for s in plan(fleet_file, base_dir=tmp_path) if s.group == "gateway-a2a"]
    assert [s.name for s in specs] == ["gateway-a2a-1", "gateway-a2a-2"]
    first, second = (list(s.args) for s in specs)
    assert first[:4] == ["gateway", "a2a", "--instance", "gateway-a2a-1"]
    # Its own default port (8700), consecutive per replica; no MCP path.
    assert (first[first.index("--port") + 1], second[second.index("--port") + 1]) == (
        "8700",
        "8701",
    )
    assert "--path" not in first and "--refresh-s" not in first
    assert first[first.index("--default-skill") + 1] == "echo"
    assert first[first.index("--blocking-timeout-s") + 1] == "30"
    assert first[first.index("--public-url") + 1] == "https://agents.example.com/"
    assert first[first.index("--keys-file") + 1] == str(tmp_path / "keys.txt")
    # Its own NATS user (deploy/permissions.py gateway_a2a), not the MCP gateway's.
    assert specs[0].env["NATS_NKEY_SEED_FILE"] == str(tmp_path / "auth/creds/gateway-a2a.nk")


@pytest.mark.parametrize(
    ("entry", "key", "problem"),
    [
        ('protocol = "a2a"\npath = "/x"', "path", "mcp gateway's setting"),
        ('protocol = "a2a"\nrefresh_s = 1', "refresh_s", "mcp gateway's setting"),
        ("default_skill = 'echo'", "default_skill", "a2a gateway's setting"),
        ('protocol = "a2a"\ndefault_skill = "no skill"', "default_skill", "skill name"),
        ('protocol = "a2a"\npublic_url = "ftp://x/"', "public_url", "http(s) URL"),
    ],
)
def test_a_setting_of_the_other_protocol_is_refused(entry: str, key: str, problem: str) -> None:
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(FLEET + f'[[gateways]]\nname = "other"\nport = 9300\n{entry}\n')
    assert caught.value.key == f"gateways[1].{key}", caught.value
    assert problem in str(caught.value)


def test_every_target_runs_an_a2a_gateway(tmp_path: Path) -> None:
    fleet_file = load_fleet(write_fleet(tmp_path, FLEET + A2A))
    procfile = generate("procfile", fleet_file)["Procfile"]
    assert "gateway-a2a-2: exec" in procfile and "gateway a2a" in procfile
    assert "--port 8701" in procfile and "--default-skill echo" in procfile

    conf = generate("supervisord", fleet_file)["supervisord.conf"]
    program = conf[conf.index("[program:gateway-a2a]") :].split("\n\n")[0]
    assert "numprocs=2\n" in program and "numprocs_start=8700\n" in program
    assert "gateway a2a --instance gateway-a2a-%(process_num)d" in program
    assert "gateway-a2a.nk" in program
    assert "programs=supervisor,echo,gateway-mcp,gateway-a2a" in conf

    units = generate("systemd", fleet_file)
    env = units["gateways/gateway-a2a-2.env"]
    assert 'NATSFLEET_GATEWAY_ARGS="a2a --instance gateway-a2a-2' in env and "--port 8701" in env
    assert "natsfleet-gateway@gateway-a2a-1.service" in units["natsfleet.target"]

    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    service = compose["services"]["gateway-a2a"]
    assert service["command"][service["command"].index("a2a") - 1] == "gateway"
    assert service["deploy"]["replicas"] == 2 and service["ports"] == ["8700-8701:8700"]
    assert service["command"][service["command"].index("--host") + 1] == "0.0.0.0"
    assert "NATSFLEET_GATEWAY_KEYS" in service["environment"]

    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-gateway-a2a")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--port") + 1] == "8700"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    keys = next(e for e in container["env"] if e["name"] == "NATSFLEET_GATEWAY_KEYS")
    assert keys["valueFrom"]["secretKeyRef"]["name"] == "natsfleet-gateway-keys"
    service_doc = next(
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"] == "natsfleet-gateway-a2a"
    )
    assert service_doc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service_doc["spec"]["ports"][0]["port"] == 8700

    auth = generate("nats-auth", fleet_file)
    assert "creds/gateway-a2a.nk" in auth and "creds/gateway.nk" in auth


def _keys_arg(command: str) -> str:
    """The `--keys-file` value of a generated command line (shell/supervisord syntax)."""
    tokens = shlex.split(command.replace("%%", "%"))
    return tokens[tokens.index("--keys-file") + 1]


def test_every_local_target_names_the_keys_file_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fleet file's `keys_file` is relative to the fleet file; the generated
    # commands run from another directory, so they must name the real file.
    fleet_dir = tmp_path / "fleet"
    fleet_dir.mkdir()
    keys = fleet_dir / "keys.txt"
    keys.write_text(f"alice={'s' * 32}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # load by a relative path: still resolved
    write_fleet(fleet_dir, FLEET)
    fleet_file = load_fleet(Path("fleet") / "fleet.toml")

    procfile = generate("procfile", fleet_file)["Procfile"]
    line = next(x for x in procfile.splitlines() if x.startswith("gateway-mcp-1:"))
    conf = generate("supervisord", fleet_file)["supervisord.conf"]
    program = conf[conf.index("[program:gateway-mcp]") :].split("\n\n")[0]
    command = next(x for x in program.splitlines() if x.startswith("command="))
    env = generate("systemd", fleet_file)["gateways/gateway-mcp-2.env"]
    args = next(x for x in env.splitlines() if x.startswith("NATSFLEET_GATEWAY_ARGS="))
    spec = next(s for s in plan(fleet_file) if s.name == "gateway-mcp-1")
    found = [
        _keys_arg(line.split("exec ", 1)[1]),
        _keys_arg(command.removeprefix("command=")),
        _keys_arg(args.split("=", 1)[1].strip('"')),
        spec.args[spec.args.index("--keys-file") + 1],
    ]
    for path in found:
        assert Path(path).is_absolute() and Path(path).read_text(encoding="utf-8") == (
            keys.read_text(encoding="utf-8")
        ), found


def test_compose_and_kubernetes_take_keys_from_a_secret_not_the_keys_file(
    tmp_path: Path,
) -> None:
    fleet_file = _fleet(tmp_path)
    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    assert "--keys-file" not in compose["services"]["gateway-mcp"]["command"]
    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-gateway-mcp")
    assert "--keys-file" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


A2A_NO_URL = """
[[gateways]]
protocol = "a2a"
port = 8800
"""


def test_an_a2a_card_names_an_address_clients_can_reach(tmp_path: Path) -> None:
    fleet_file = load_fleet(write_fleet(tmp_path, FLEET + A2A_NO_URL))
    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    command = compose["services"]["gateway-a2a"]["command"]
    # Other services reach it by its service name, not the 0.0.0.0 it binds.
    assert command[command.index("--public-url") + 1] == "http://gateway-a2a:8800/"
    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    service = next(d for d in docs if d["kind"] == "Service" and "a2a" in d["metadata"]["name"])
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-gateway-a2a")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert args[args.index("--public-url") + 1] == f"http://{name}:{port}/"
    # On one machine the gateway's own default (http://HOST:PORT/) is right.
    spec = next(s for s in plan(fleet_file) if s.name == "gateway-a2a-1")
    assert "--public-url" not in spec.args
    assert "--public-url" not in generate("procfile", fleet_file)["Procfile"]
    # The MCP gateway has no card.
    assert "--public-url" not in compose["services"]["gateway-mcp"]["command"]


def test_the_fleet_files_public_url_wins_everywhere(tmp_path: Path) -> None:
    fleet_file = load_fleet(write_fleet(tmp_path, FLEET + A2A))
    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    command = compose["services"]["gateway-a2a"]["command"]
    assert command[command.index("--public-url") + 1] == "https://agents.example.com/"
    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-gateway-a2a")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--public-url") + 1] == "https://agents.example.com/"
    assert (
        "--public-url https://agents.example.com/" in generate("procfile", fleet_file)["Procfile"]
    )


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8700/"),
        ("0.0.0.0", "http://127.0.0.1:8700/"),
        ("::", "http://[::1]:8700/"),
        ("::1", "http://[::1]:8700/"),
        ("gw.example", "http://gw.example:8700/"),
    ],
)
def test_the_gateways_own_card_url_is_a_usable_address(host: str, url: str) -> None:
    assert default_card_url(host, 8700) == url
