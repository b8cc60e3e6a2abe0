"""The fleet file's `workflows`: loaded by `natsfleet up` and by every generated target."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.deploy import FleetFile, FleetFileError, load_fleet, plan
from natsfleet.deploy.targets import Options, generate, write_files
from natsfleet.protocols import TaskState
from tests.deploy.helpers import (
    AGENT_ENV,
    FAST_SUPERVISOR,
    free_port,
    kill_group,
    poll,
    wait_for_instances,
    write_fleet,
)

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")

HELLO = """
name = "hello"

[steps.say]
skill = "echo"
input = { text = "hi from a workflow" }
"""

AGAIN = """
name = "again"

[steps.one]
skill = "echo"
input = { text = "one" }
"""


def fleet_with_workflows(tmp_path: Path, entry: str, body: str = "") -> FleetFile:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "hello.toml").write_text(HELLO)
    (tmp_path / "again.toml").write_text(AGAIN)
    text = f"workflows = {entry}\n{body}\n[[agents]]\nagent = 'tests.fleet_agents:EchoAgent'\n"
    return load_fleet(write_fleet(tmp_path, text + AGENT_ENV + "\n"))


def supervisor_workflows(args: tuple[str, ...] | list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "--workflows"]


def test_workflows_key_is_a_folder_or_a_list_relative_to_the_fleet_file(tmp_path: Path) -> None:
    one = fleet_with_workflows(tmp_path, '"flows"')
    assert one.fleet.workflow_entries == ("flows",)
    many = fleet_with_workflows(tmp_path, '["flows", "again.toml"]')
    sup = plan(many, base_dir=many.path.parent)[0]
    # `natsfleet up`: the supervisor loads the files where they are (absolute paths).
    assert supervisor_workflows(sup.args) == [str(tmp_path / "flows"), str(tmp_path / "again.toml")]
    # Every supervisor replica gets them; agents do not.
    assert all("--workflows" not in s.args for s in plan(many, base_dir=tmp_path)[1:])


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ('"nowhere"', "is not a folder or .toml file"),
        ('["flows", "missing.toml"]', "'missing.toml' is not a folder or .toml file"),
        ('"empty"', "holds no *.toml workflow"),
        ('["flows", "clash"]', "two workflow files are named 'hello.toml'"),
    ],
)
def test_bad_workflows_entries_are_named(tmp_path: Path, entry: str, fragment: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "hello.toml").write_text(HELLO)
    with pytest.raises(FleetFileError) as info:
        fleet_with_workflows(tmp_path, entry)
    assert info.value.key.startswith("workflows["), info.value
    assert fragment in info.value.problem, info.value


def test_every_target_ships_the_workflows_and_points_the_supervisor_at_them(
    tmp_path: Path,
) -> None:
    fleet_file = fleet_with_workflows(tmp_path, '["flows", "again.toml", "my_pkg.flows:ALL"]')
    bundle = {"workflows/hello.toml": HELLO, "workflows/again.toml": AGAIN}
    for target in ("supervisord", "procfile", "systemd", "compose", "kubernetes"):
        files = generate(target, fleet_file)
        if target in ("supervisord", "procfile", "systemd", "compose"):
            assert {k: v for k, v in files.items() if k.startswith("workflows/")} == bundle, target

    conf = generate("supervisord", fleet_file)["supervisord.conf"]
    sup_line = next(line for line in conf.splitlines() if line.startswith("command=natsfleet sup"))
    # Relative to `directory=%(here)s`; the module spec as written.
    assert "--workflows workflows --workflows my_pkg.flows:ALL" in sup_line
    procfile = generate("procfile", fleet_file)["Procfile"]
    assert "--workflows workflows --workflows my_pkg.flows:ALL" in procfile
    unit = generate("systemd", fleet_file)["natsfleet-supervisor@.service"]
    assert "--workflows /etc/natsfleet/workflows --workflows my_pkg.flows:ALL" in unit

    compose = yaml.safe_load(generate("compose", fleet_file)["compose.yaml"])["services"]
    sup = compose["supervisor"]
    assert supervisor_workflows(sup["command"]) == ["/etc/natsfleet/workflows", "my_pkg.flows:ALL"]
    assert "./workflows:/etc/natsfleet/workflows:ro" in sup["volumes"]
    assert not any("workflows" in v for v in compose["echoagent"]["volumes"])

    docs = list(yaml.safe_load_all(generate("kubernetes", fleet_file)["natsfleet.yaml"]))
    config_map = next(d for d in docs if d["metadata"]["name"] == "natsfleet-workflows")
    assert config_map["data"] == {"hello.toml": HELLO, "again.toml": AGAIN}
    deployment = next(d for d in docs if d["metadata"]["name"] == "natsfleet-supervisor")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert supervisor_workflows(container["args"]) == [
        "/etc/natsfleet/workflows",
        "my_pkg.flows:ALL",
    ]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "workflows")
    assert mount["mountPath"] == "/etc/natsfleet/workflows"
    assert {"name": "workflows", "configMap": {"name": "natsfleet-workflows"}} in pod["volumes"]

    # A custom --fleet-path moves the folder beside it.
    moved = generate("systemd", fleet_file, Options(fleet_path="/srv/fleet/fleet.toml"))
    assert "--workflows /srv/fleet/workflows" in moved["natsfleet-supervisor@.service"]


def test_the_written_bundle_is_what_the_supervisor_accepts(tmp_path: Path) -> None:
    fleet_file = fleet_with_workflows(tmp_path, '["flows", "again.toml"]')
    out = tmp_path / "out"
    write_files(generate("supervisord", fleet_file), out)
    check = subprocess.run(
        [NATSFLEET, "workflows", "check", "workflows"],
        cwd=out,  # supervisord runs the supervisor here (directory=%(here)s)
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "again: 1 steps" in check.stdout and "hello: 1 steps" in check.stdout


def test_deploy_refuses_an_invalid_workflow_before_writing(tmp_path: Path) -> None:
    fleet_file = fleet_with_workflows(tmp_path, '"flows"')
    (tmp_path / "flows" / "broken.toml").write_text('name = "broken"\n[steps.a]\nafter = ["zz"]\n')
    out = tmp_path / "out"
    done = subprocess.run(
        [NATSFLEET, "deploy", "procfile", str(fleet_file.path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "workflows" in done.stderr and "broken" in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.timeout(90)
async def test_up_loads_the_fleet_files_workflows(tmp_path: Path, prefix: str) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    body = f'[nats]\nurl = "{url}"\nprefix = "{prefix}"\nembedded = true\nstore_dir = "js"\n'
    fleet_file = fleet_with_workflows(tmp_path, '["flows", "again.toml"]', body + FAST_SUPERVISOR)
    with (tmp_path / "up.out").open("wb") as out:
        up = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "natsfleet.cli.main", "up", str(fleet_file.path),
            "--state-dir", str(tmp_path / "state"),
            stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_for_instances(url, prefix, "echo", 1, timeout_s=45)
        async with Bus(BusConfig(url=url, prefix=prefix), role="test") as bus:
            client = FleetClient(bus)
            for name, text in (("hello", "hi from a workflow"), ("again", "one")):
                run = await client.submit(workflow=name, input={})
                event = await client.wait(run, timeout_s=30)
                assert event.state == TaskState.COMPLETED, (
                    event,
                    (tmp_path / "up.out").read_text(),
                )
                status: Any = (await client.status_reply(run)).workflow
                assert status is not None and status.steps[0].tasks[0].state == "completed"
                step = await client.status(status.steps[0].tasks[0].task_id)
                assert text in bytes(step.output).decode()
    finally:
        up.send_signal(2)
        try:
            await asyncio.wait_for(up.wait(), 30)
        finally:
            kill_group(up.pid)
    await poll(lambda: up.returncode is not None, 5, "up exited")
