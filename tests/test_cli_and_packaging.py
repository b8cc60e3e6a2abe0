"""The installed command and distribution, as a user meets them."""

import json
import os
import signal
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nats
import pytest

from natsfleet.protocols import ALL_MESSAGES

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
REPO = Path(__file__).resolve().parent.parent


def test_help_lists_the_commands() -> None:
    out = subprocess.run([NATSFLEET, "--help"], capture_output=True, text=True, check=True).stdout
    for verb in ("server", "schema"):
        assert verb in out


def test_schema_writes_every_message(tmp_path: Path) -> None:
    subprocess.run([NATSFLEET, "schema", "--out", str(tmp_path)], check=True, capture_output=True)
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(index["messages"]) == {m.__name__ for m in ALL_MESSAGES}
    assign = json.loads((tmp_path / "Assign.json").read_text())
    props = assign["$defs"]["Assign"]["properties"]
    assert {"task_id", "token", "attempt", "skill", "input"} <= set(props)


async def test_server_command_serves_until_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [NATSFLEET, "server", "--port", "-1", "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "nats-server ready at nats://127.0.0.1:" in line
        url = line.split(" at ", 1)[1].split()[0]
        nc = await nats.connect(url)
        info = await nc.jetstream().account_info()  # JetStream is on
        assert info.limits is not None
        await nc.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "store" / "jetstream").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_imports_are_namespaced_and_no_bare_top_level_packages(tmp_path: Path) -> None:
    # The dev extra installs supervisord, whose import name is `supervisor`:
    # only bare packages from this repository's sources count (the wheel test
    # below covers what an installed wheel holds).
    code = (
        "import importlib.util, natsfleet.protocols, natsfleet.bus;"
        "specs = [importlib.util.find_spec(n) for n in"
        " ('agents','bus','supervisor','protocols','deploy','cli')];"
        "print([s.name for s in specs if s is not None"
        f" and {str(REPO)!r} in str(s.origin) and 'site-packages' not in str(s.origin)])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.timeout(120)
def test_wheel_holds_only_the_natsfleet_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("natsfleet-*.whl")
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"natsfleet", wheel.name.split("-py3")[0] + ".dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    for package in (
        "protocols",
        "telemetry",
        "process",
        "bus",
        "client",
        "supervisor",
        "agents",
        "gateway",
        "deploy",
        "cli",
    ):
        assert f"natsfleet/{package}/py.typed" in names


def test_the_image_build_copies_every_package_folder() -> None:
    # The Dockerfile's build stage makes the wheel from the folders it copies;
    # one left out fails the build ("package directory 'telemetry' does not
    # exist"), which no other test runs (no Docker daemon needed here).
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {d.split("/")[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    lines = (REPO / "Dockerfile").read_text().splitlines()
    copies = [line.split() for line in lines if line.startswith("COPY ")]
    copied = {words[1] for words in copies if not words[1].startswith("--from")}
    assert folders - copied == set()
