"""Generated configs parse and say what the fleet file says; nats-server accepts its config."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from natsfleet.deploy import FleetFile, load_fleet
from natsfleet.deploy.targets import TARGETS, Options, generate, write_files
from natsfleet.process.server import find_nats_server
from tests.deploy.helpers import AGENT_ENV, write_fleet

FLEET = f"""
[nats]
url = "nats://127.0.0.1:4222"
prefix = "acme"

[supervisor]
replicas = 2
stream_replicas = 3
[supervisor.timeouts]
heartbeat_timeout_s = 5

[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 3
capacity = 2
drain_grace_s = 7
{AGENT_ENV}

[[agents]]
agent = "tests.fleet_agents:ConcurrencyAgent"
instances = 1

[llm]
default_model = "offline"
"""


@pytest.fixture
def fleet_file(tmp_path: Path) -> FleetFile:
    return load_fleet(write_fleet(tmp_path, FLEET))


def test_compose(fleet_file: FleetFile) -> None:
    doc = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])
    services: dict[str, Any] = doc["services"]
    assert set(services) == {"nats", "jaeger", "supervisor", "echo", "concurrencyagent"}
    assert "--jetstream" in services["nats"]["command"]
    assert doc["volumes"] == {"nats-data": {}}
    assert {"4317:4317", "4318:4318", "16686:16686"} <= set(services["jaeger"]["ports"])
    assert services["supervisor"]["deploy"]["replicas"] == 2
    echo = services["echo"]
    assert echo["deploy"]["replicas"] == 3
    assert echo["command"][:3] == ["agent", "run", "tests.fleet_agents:EchoAgent"]
    assert echo["command"][echo["command"].index("--capacity") + 1] == "2"
    assert echo["stop_grace_period"] == "12s"  # grace 7 + margin 5
    env = echo["environment"]
    assert env["NATS_URL"] == "nats://nats:4222"
    assert env["NATSFLEET_PREFIX"] == "acme"
    assert env["NATSFLEET_FLEET_FILE"] == "/etc/natsfleet/fleet.toml"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_kubernetes(fleet_file: FleetFile) -> None:
    files = generate("kubernetes", fleet_file)
    docs = list(yaml.safe_load_all(files["natsfleet.yaml"]))
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert by_name["natsfleet-fleet"]["data"]["fleet.toml"] == fleet_file.text
    supervisor = by_name["natsfleet-supervisor"]
    assert supervisor["spec"]["replicas"] == 2
    echo = by_name["natsfleet-agent-echo"]
    assert echo["spec"]["replicas"] == 3
    pod = echo["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 12
    container = pod["containers"][0]
    assert container["args"][:5] == [
        "agent",
        "run",
        "tests.fleet_agents:EchoAgent",
        "--instance",
        "$(POD_NAME)",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NATSFLEET_PREFIX"] == "acme"
    assert by_name["natsfleet-agent-concurrencyagent"]["spec"]["replicas"] == 1
    values = yaml.safe_load(files["nats-values.yaml"])
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["merge"] == {"sync_interval": "always"}
    sup_args = supervisor["spec"]["template"]["spec"]["containers"][0]["args"]
    assert '"storage":{"replicas":3}' in sup_args[sup_args.index("--config-json") + 1]


def test_nats_server_accepts_the_cluster_configs(tmp_path: Path) -> None:
    body = FLEET.replace("[supervisor]", "[supervisor]", 1) + "\n".join(
        f"""
[[nats.cluster.nodes]]
name = "n{i}"
client_port = {14220 + i}
cluster_port = {16220 + i}
monitor_port = {18220 + i}
store_dir = "{tmp_path}/n{i}"
"""
        for i in (1, 2, 3)
    )
    files = generate("nats-cluster", load_fleet(write_fleet(tmp_path, body)))
    out = tmp_path / "nats"
    write_files(files, out)
    for i in (1, 2, 3):
        text = files[f"n{i}.conf"]
        assert "sync_interval: always" in text
        assert f'"nats-route://127.0.0.1:{16220 + (i % 3) + 1}"' in text
        result = subprocess.run(
            [find_nats_server(), "-t", "-c", str(out / f"n{i}.conf")],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_default_cluster_config_is_accepted(tmp_path: Path, fleet_file: FleetFile) -> None:
    write_files(generate("nats-cluster", fleet_file), tmp_path)
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(tmp_path / "nats-1.conf")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_supervisord_config(fleet_file: FleetFile) -> None:
    # (tests/deploy/test_process_managers.py runs it under the real supervisord.)
    conf = generate("supervisord", fleet_file, Options(command="/opt/nf"))["supervisord.conf"]
    echo = conf[conf.index("[program:echo]") :].split("\n\n")[0]
    assert "numprocs=3" in echo
    assert (
        "command=/opt/nf agent run tests.fleet_agents:EchoAgent --instance echo-%(process_num)d"
        in echo
    )
    assert "stopsignal=TERM" in echo and "stopwaitsecs=12" in echo
    assert 'NATSFLEET_FLEET_FILE="%(here)s/fleet.toml"' in echo
    assert "numprocs=2" in conf[conf.index("[program:supervisor]") :]


def test_systemd_and_procfile(fleet_file: FleetFile) -> None:
    systemd = generate("systemd", fleet_file)
    assert "natsfleet-agent@.service" in systemd
    assert "--instance %i" in systemd["natsfleet-agent@.service"]
    assert (
        "TimeoutStopSec=15"
    )  # the longest agent: 10 s grace + 5 in systemd["natsfleet-agent@.service"]
    wants = systemd["natsfleet.target"]
    for unit in ("natsfleet-supervisor@2.service", "natsfleet-agent@echo-3.service"):
        assert unit in wants
    assert 'NATSFLEET_AGENT="tests.fleet_agents:EchoAgent"' in systemd["agents/echo-1.env"]
    procfile = generate("procfile", fleet_file)["Procfile"]
    names = [line.split(":")[0] for line in procfile.splitlines() if not line.startswith("#")]
    assert names[:5] == ["supervisor-1", "supervisor-2", "echo-1", "echo-2", "echo-3"]
    assert names[5:] == ["concurrencyagent-1"]


def test_every_target_writes_the_fleet_file_or_node_configs(fleet_file: FleetFile) -> None:
    for target in TARGETS:
        files = generate(target, fleet_file)
        assert files, target
        if target not in ("nats-cluster", "nats-auth"):
            assert files["fleet.toml"] == fleet_file.text


def test_dev_compose_runs_jaeger_v2_with_nats() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "compose.yaml"
    services = yaml.safe_load(path.read_text())["services"]
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2")
    assert {"4317:4317", "4318:4318", "16686:16686"} <= set(services["jaeger"]["ports"])
    assert "-js" in services["nats"]["command"]


def _unit_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            sections.setdefault(current, []).append(line.split("=", 1)[0])
    return sections


def test_systemd_start_limits_are_in_the_unit_section(fleet_file: FleetFile) -> None:
    # systemd reads StartLimitIntervalSec/StartLimitBurst in [Unit] only; in
    # [Service] they are ignored (with a warning) and restarts are unlimited.
    files = generate("systemd", fleet_file)
    for name in ("natsfleet-agent@.service", "natsfleet-supervisor@.service"):
        sections = _unit_sections(files[name])
        assert {"StartLimitIntervalSec", "StartLimitBurst"} <= set(sections["Unit"]), name
        assert not {"StartLimitIntervalSec", "StartLimitBurst"} & set(sections["Service"]), name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_units(fleet_file: FleetFile, tmp_path: Path) -> None:
    out = tmp_path / "systemd"
    files = generate("systemd", fleet_file, Options(command=sys.executable))
    write_files(files, out)
    # A template is verified through an instance of it.
    units = []
    for template in ("natsfleet-agent@.service", "natsfleet-supervisor@.service"):
        instance = out / template.replace("@.", "@1.")
        instance.write_text(files[template])
        units.append(str(instance))
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = verify.stdout + verify.stderr
    assert "Unknown key" not in report and "ignoring" not in report, report
