"""Identifiers and numbers from the wire, checked where a Submit enters a real supervisor.

Each hostile Submit goes straight onto the TASKS stream (no FleetClient, so no
client-side check): it must end as exactly one DLQ entry with a reason, the
supervisor must keep its connection and schedule an ordinary task afterwards,
and nothing may be redelivered in a loop (TASKS ends empty).
"""

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from helpers import dead_letters

from natsfleet.protocols import DlqReason, Stream, TaskState

HOSTILE_IDS = ["x" * 100_000, "*", ">", "a b", "", "\x01", "a.b", "ok\n"]
HOSTILE_NUMBERS: list[dict[str, Any]] = [
    {"timeouts": {"start_to_close_s": 1e308}},
    {"timeouts": {"schedule_to_close_s": -1.0}},
    {"retry": {"initial_interval_s": 1e308, "maximum_interval_s": 1e308}},
    {"retry": {"backoff_coefficient": 1e308, "maximum_attempts": 2}},
    {"priority": 2**62},
    {"priority": -1},
    {"budget_usd": -5.0},
    {"submitted_ms": -1},
]


def _submit(**fields: Any) -> bytes:
    body = {"type": "task.submit", "task_id": "t-ok", "skill": "echo", "input": {}, **fields}
    return msgspec.json.encode(body)


async def _until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_hostile_ids_and_numbers_are_dead_lettered_once(fleet: Any) -> None:
    sup = await fleet.supervisor()
    await fleet.agent("a1")
    bus = fleet.bus
    submit_subject = bus.subjects.submit()
    payloads = [_submit(task_id=task_id) for task_id in HOSTILE_IDS]
    payloads += [_submit(task_id=f"num-{n}", **fields) for n, fields in enumerate(HOSTILE_NUMBERS)]
    payloads.append(_submit(task_id="key-too-long", idempotency_key="k" * 5000))
    payloads.append(_submit(task_id="bad-skill", skill="echo.>"))
    payloads.append(_submit(task_id="bad-parent", parent_id="p q"))
    for payload in payloads:
        await bus.js.publish(submit_subject, payload)

    async def all_dead_lettered() -> bool:
        found = [e for e in await dead_letters(bus) if e.subject == submit_subject]
        return len(found) >= len(payloads)

    await _until(all_dead_lettered, 30, f"{len(payloads)} DLQ entries")

    # Still connected and scheduling.
    task_id = await fleet.client.submit("echo", {"n": 7})
    event = await fleet.client.wait(task_id, timeout_s=20)
    assert event.state == TaskState.COMPLETED, event

    # No loop: every hostile Submit is settled (TASKS is a work queue), so none
    # can come back, and each left exactly one entry with a reason.
    tasks = bus.subjects.stream(Stream.TASKS)

    async def tasks_empty() -> bool:
        return (await bus.js.stream_info(tasks)).state.messages == 0

    await _until(tasks_empty, 10, "TASKS to be empty")
    entries = [e for e in await dead_letters(bus) if e.subject == submit_subject]
    assert len(entries) == len(payloads), Counter(e.error for e in entries)
    assert {e.reason for e in entries} == {DlqReason.DECODE_ERROR}
    for entry in entries:
        assert "$." in entry.error, entry.error  # names the field that broke the rule
    assert sup.proc.returncode is None
    assert "Traceback" not in sup.log(), sup.log()[-3000:]


async def test_the_cli_refuses_a_bad_id_before_sending(fleet: Any) -> None:
    command = [str(Path(sys.executable).parent / "natsfleet"), "submit", "echo echo",
               "--input", "{}", "--nats", fleet.server.url, "--prefix", fleet.prefix]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done.stdout + done.stderr  # usage, not a traceback
    assert "invalid submit" in done.stdout and "$.skill" in done.stdout, done.stdout
    tasks = await fleet.bus.js.stream_info(fleet.bus.subjects.stream(Stream.TASKS))
    assert tasks.state.messages == 0
