"""The client verbs as a user meets them when something is wrong: a NATS_URL where
nothing listens, a missing --input file, a busy port for `natsfleet server`.
One clear line, a documented exit code, never a traceback (docs/supervisor.md, CLI)."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
EXIT_USAGE, EXIT_NATS_UNREACHABLE = 2, 5
#: Process start (imports) on a loaded 2-core machine, on top of the timeout itself.
START_SLACK_S = 2.0

#: Every verb that talks to a fleet as a client, with the arguments it needs.
CLIENT_VERBS: list[tuple[str, ...]] = [
    ("submit", "echo", "--input", "{}"),
    ("submit", "echo", "--wait"),
    ("tasks",),
    ("status", "T-1"),
    ("cancel", "T-1"),
    ("watch",),
    ("watch", "T-1"),
    ("dlq", "list"),
    ("dlq", "show", "1"),
    ("dlq", "retry", "1"),
    ("trace", "T-1"),
    ("agents",),
    ("approve", "R-1"),
    ("approve", "R-1/ask"),  # RUN/STEP: the step waiting, when several do
]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _run(args: tuple[str, ...], env: dict[str, str] | None = None, timeout_s: float = 20):
    started = time.monotonic()
    try:
        done = subprocess.run(
            [NATSFLEET, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"natsfleet {' '.join(args)} still running after {timeout_s} s: {exc}")
    return done, time.monotonic() - started


@pytest.mark.parametrize("verb", CLIENT_VERBS, ids=lambda v: " ".join(v))
def test_client_verbs_fail_fast_on_an_unreachable_nats_url(
    verb: tuple[str, ...], closed_port: int
) -> None:
    url = f"nats://127.0.0.1:{closed_port}"
    done, elapsed = _run((*verb, "--connect-timeout", "1"), {"NATS_URL": url})
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_NATS_UNREACHABLE, output
    assert elapsed < 1 + START_SLACK_S + 1, elapsed
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [f"error: cannot reach NATS at {url} within 1 s (connection refused)"], output


def test_the_connect_timeout_is_what_the_verb_waits(closed_port: int) -> None:
    env = {"NATS_URL": f"nats://127.0.0.1:{closed_port}"}
    done, elapsed = _run(("tasks",), env)  # the default: 3 s
    assert done.returncode == EXIT_NATS_UNREACHABLE and "within 3 s" in done.stderr
    assert 3 <= elapsed < 3 + START_SLACK_S, elapsed
    done, elapsed = _run(("tasks", "--connect-timeout", "0.2"), env)
    assert done.returncode == EXIT_NATS_UNREACHABLE and "within 0.2 s" in done.stderr
    assert elapsed < 0.2 + START_SLACK_S, elapsed
    env["NATSFLEET_CONNECT_TIMEOUT"] = "0.3"
    done, _ = _run(("status", "T-1"), env)
    assert done.returncode == EXIT_NATS_UNREACHABLE and "within 0.3 s" in done.stderr


def test_an_unreachable_url_with_credentials_does_not_print_them(closed_port: int) -> None:
    env = {"NATS_URL": f"nats://fleet:s3cr3t-pw@127.0.0.1:{closed_port}"}
    done, _ = _run(("tasks", "--connect-timeout", "0.2"), env)
    assert done.returncode == EXIT_NATS_UNREACHABLE
    assert "s3cr3t-pw" not in done.stdout + done.stderr
    assert f"nats://127.0.0.1:{closed_port}" in done.stderr


@pytest.mark.parametrize("verb", [("submit", "echo"), ("approve", "R-1")], ids=" ".join)
def test_input_from_a_missing_file_is_a_usage_error(verb: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    done, _ = _run((*verb, "--input", f"@{missing}", "--connect-timeout", "0.2"))
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, output
    assert "Traceback" not in output
    assert f"--input: cannot read {missing}" in output and "No such file" in output


def test_input_from_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    done, _ = _run(("submit", "echo", "--input", f"@{tmp_path}"))
    assert done.returncode == EXIT_USAGE and "Traceback" not in done.stderr
    assert f"--input: cannot read {tmp_path}" in done.stderr


async def test_server_on_a_busy_port_says_why(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done, elapsed = await asyncio.to_thread(
            _run, ("server", "--port", str(port), "--store", str(tmp_path / "store"))
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert f"127.0.0.1:{port}" in output and "address already in use" in output, output
    assert elapsed < 10


@pytest.mark.parametrize("url", ["nats://", "127.0.0.1:notaport"])
@pytest.mark.parametrize(
    "verb", [("tasks",), ("supervisor",), ("agent", "run", "echo")], ids=" ".join
)
def test_a_malformed_nats_url_is_a_usage_error(verb: tuple[str, ...], url: str) -> None:
    # No retry can fix it: every command says so at once, client verbs and processes alike.
    done, elapsed = _run(verb, {"NATS_URL": url})
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, output
    assert "Traceback" not in output and f"cannot connect to NATS at '{url}'" in output
    assert elapsed < START_SLACK_S + 1


@pytest.mark.parametrize("prefix", [">", "*", "a b"])
@pytest.mark.parametrize(
    "verb",
    [("tasks",), ("status", "X"), ("submit", "echo"), ("supervisor",), ("agent", "run", "echo")],
    ids=" ".join,
)
def test_a_malformed_prefix_is_a_usage_error(verb: tuple[str, ...], prefix: str) -> None:
    done, elapsed = _run(verb, {"NATSFLEET_PREFIX": prefix})
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, output
    assert "Traceback" not in output and f"subject prefix {prefix!r} is not a valid" in output
    assert elapsed < START_SLACK_S + 1


#: Every verb taking a task or run id, each with one kind of malformed id.
BAD_IDS = [
    ("status", "a" * 100_000),
    ("cancel", "a b"),
    ("watch", "x.>"),
    ("trace", "a" * 100_000),
    ("approve", "run\n1"),
    ("approve", "R-1/a b"),
    ("approve", "R-1/"),
]


@pytest.mark.parametrize(("verb", "bad"), BAD_IDS, ids=lambda v: v if len(v) < 10 else "100KB")
def test_a_malformed_id_is_a_usage_error_before_connecting(
    verb: str, bad: str, closed_port: int
) -> None:
    done, _ = _run((verb, bad), {"NATS_URL": f"nats://127.0.0.1:{closed_port}"})
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, output
    assert "is not 1 to 128 characters" in output
    assert "cannot reach NATS" not in output  # refused before any connection
    assert "Traceback" not in output and len(output) < 2000
