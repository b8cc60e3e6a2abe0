"""`natsfleet demo` runs to completion as a subprocess, offline, and leaves nothing running."""

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.procs import REPO_ROOT


async def test_demo_runs_offline_to_completion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    env.pop("NATSFLEET_FLEET_FILE", None)
    env.pop("NATSFLEET_SMTP_HOST", None)
    env["COLUMNS"] = "120"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "natsfleet.cli.main", "demo", "--dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "OFFLINE" in text and "offline-extractive" in text
    assert "Editor's verdict: approved" in text
    assert "Sources" in text and "[1] " in text and "Cost ledger" in text
    assert "Itinerary SANDBOX" in text and "Calendar file (.ics): " in text
    assert "waiting   for a person's approval" in text and "Book and pay for" in text
    assert "nothing was sent" in text and "nothing left running" in text
    # Part 3: the assistant, labelled offline, its tool calls, the approval, the kill
    # and the journal's replay.
    part3 = text[text.index("3. Assistant") :]
    assert "offline: a tool policy stands in for the model" in part3
    assert "[offline] the model chose: research -> write -> edit" in part3
    assert (
        "[offline] the model chose: parse_trip -> search_flights -> hold_offer -> book -> pay"
        in part3
    )
    assert "[offline] attempt 1: tool parse_trip ok" in part3
    assert re.search(r"\[offline\] attempt \d: tool pay awaits approval", part3)
    assert "waiting for a person's approval: pay" in part3 and "tool pay approved" in part3
    assert "killed  assistant-1 (SIGKILL) mid-run" in part3
    assert "final answer: [offline] Done: Book me a flight" in part3
    replayed = re.search(
        r"Replayed from the journal rather than repeated: (\d+) model calls and (\d+) tool runs",
        part3,
    )
    assert replayed is not None and int(replayed.group(1)) > 0 and int(replayed.group(2)) > 0
    assert "1. attempt 1 on assistant-1 " in part3
    assert "on assistant-2  completed" in part3
    (run_dir,) = tmp_path.iterdir()
    assert list((run_dir / "data" / "calendar").glob("*.ics"))
    assert list((run_dir / "data" / "outbox").glob("*.eml"))
    logs = {p.name for p in (run_dir / "logs").iterdir()}
    assert logs == {
        "supervisor.log",
        "researcher-1.log",
        "writer-1.log",
        "editor-1.log",
        "booker-1.log",
        "assistant-1.log",
        "assistant-2.log",
    }
