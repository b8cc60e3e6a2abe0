"""`natsfleet compare` without any API key: the offline provider answers, labelled OFFLINE."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
PROMPT = "NATS carries messages between the agents. JetStream keeps them on disk."


def _keyless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("NATSFLEET_LLM_CONFIG", None)
    return env


@pytest.mark.parametrize("models", [["--models", "haiku,gpt-mini"], []])
def test_compare_without_keys_runs_offline(tmp_path: Path, models: list[str]) -> None:
    done = subprocess.run(
        [NATSFLEET, "compare", PROMPT, *models],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no natsfleet.toml here
        env=_keyless_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OFFLINE" in done.stdout, done.stdout
    assert "[offline]" in done.stdout, done.stdout
    if models:
        # Says which models it could not reach and why.
        assert "haiku" in done.stdout and "no API key" in done.stdout, done.stdout
