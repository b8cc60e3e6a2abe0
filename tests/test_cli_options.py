"""The CLI refuses out-of-range numbers before it connects (exit 2, the option named)."""

import subprocess
import sys
from pathlib import Path

import pytest

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
# Nothing listens here: a command that got past its options would fail to
# connect (exit 1), not exit 2 with the option named.
NOWHERE = "nats://127.0.0.1:1"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--budget", "-1"),
        ("--budget", "nan"),
        ("--budget", "inf"),
        ("--priority", "-1"),
        ("--priority", str(2**31)),
        ("--deadline", "-5"),
        ("--deadline", "0"),
        ("--timeout", "-1"),
    ],
)
def test_submit_refuses_out_of_range_numbers(option: str, value: str) -> None:
    done = subprocess.run(
        [NATSFLEET, "submit", "echo", option, value, "--nats", NOWHERE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert option in done.stderr, done.stderr


@pytest.mark.parametrize("url", ["not a url", "ftp://host/", "http:///nohost", "x" * 3000])
def test_the_a2a_gateway_refuses_a_public_url_its_card_could_not_use(url: str) -> None:
    done = subprocess.run(
        [NATSFLEET, "gateway", "a2a", "--public-url", url, "--nats", NOWHERE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--public-url" in done.stderr, done.stderr
