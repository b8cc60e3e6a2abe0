"""`ctl.dlq` show and retry (and `natsfleet dlq` on top of them)."""

import asyncio
import subprocess
import sys
from typing import Any

import msgspec
import pytest

from natsfleet.protocols import DlqRequest, ErrorCode, RemoteError, TaskState


async def test_dlq_show_and_retry_a_failed_task(fleet: Any) -> None:
    await fleet.supervisor("sup-a")
    await fleet.agent("a1")
    task_id = await fleet.client.submit("echo", {"fail": "Boom", "retryable": False, "n": 7})
    assert (await fleet.client.wait(task_id, 20)).state == TaskState.FAILED
    listed = await fleet.client.dlq(DlqRequest(action="list"))
    entry = next(e for e in listed.entries if e.task_id == task_id)
    shown = await fleet.client.dlq(DlqRequest(action="show", seq=entry.seq))
    assert shown.entry is not None and shown.entry.task_id == task_id
    assert shown.entry.reason.value == "non_retryable" and shown.entry.attempts
    retried = await fleet.client.dlq(DlqRequest(action="retry", seq=entry.seq))
    assert retried.task_id and retried.task_id != task_id
    again = await fleet.client.wait(retried.task_id, 20)
    assert again.state == TaskState.FAILED  # the same input fails the same way
    record = await fleet.client.status(retried.task_id)
    assert msgspec.json.decode(record.input)["n"] == 7
    original = await fleet.client.status(task_id)
    assert original.state == TaskState.FAILED  # the dead-lettered record is untouched
    with pytest.raises(RemoteError):
        await fleet.client.dlq(DlqRequest(action="show", seq=10_000))
    for seq in (0, -1, 10**23):  # not a stream sequence at all: bad_request, not internal
        for action in ("show", "retry"):
            with pytest.raises(RemoteError) as info:
                await fleet.client.dlq(DlqRequest(action=action, seq=seq))
            assert info.value.code == ErrorCode.BAD_REQUEST, (action, seq, info.value)
    # The CLI over the same verbs.
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "natsfleet.cli.main", "dlq", "show", str(entry.seq),
         "--nats", fleet.server.url, "--prefix", fleet.prefix],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert msgspec.json.decode(out.stdout)["task_id"] == task_id
