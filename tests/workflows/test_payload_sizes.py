"""The size rule for workflow runs: a run keeps its input and step outputs in
one KV value, so what cannot fit fails the run with `too_large` (or is refused
at submit) instead of leaving it `working` forever."""

import pytest

from natsfleet.client import TaskRejected
from natsfleet.protocols import ErrorCode, TaskRecord, TaskState, WorkflowStatus
from tests.workflows.conftest import WfFleet

BIG_STEP = """
name = "big_step"

[steps.a]
skill = "echo"
input = { output_bytes = 1_500_000 }
"""

# Each output is under the inline threshold (256 KiB); together they are not.
MANY = """
name = "many"

[steps.a]
skill = "echo"
input = { output_bytes = 200_000 }

[steps.b]
skill = "echo"
input = { output_bytes = 200_000 }

[steps.c]
skill = "echo"
input = { output_bytes = 200_000 }

[steps.d]
skill = "echo"
input = { output_bytes = 200_000 }

[steps.e]
skill = "echo"
input = { output_bytes = 200_000 }

[steps.f]
skill = "echo"
input = { output_bytes = 200_000 }
"""


def _failed(record: TaskRecord, _: WorkflowStatus) -> bool:
    return record.state == TaskState.FAILED


async def test_runs_that_cannot_hold_their_outputs_fail_too_large(wf: WfFleet) -> None:
    wf.workflow("big_step", BIG_STEP)
    wf.workflow("many", MANY)
    await wf.supervisor()
    await wf.mini("m1", "echo")
    big = await wf.client.submit(workflow="big_step")
    many = await wf.client.submit(workflow="many")
    for run_id, words in ((big, "step 'a'"), (many, "run state")):
        await wf.until(run_id, _failed, timeout_s=30)
        record = await wf.client.status(run_id)
        assert record.error is not None and record.error.error_type == "too_large", record.error
        assert words in record.error.detail
        event = await wf.client.wait(run_id, timeout_s=5)
        assert event.state == TaskState.FAILED


async def test_a_workflow_input_over_the_inline_threshold_is_refused(wf: WfFleet) -> None:
    wf.workflow("big_step", BIG_STEP)
    with pytest.raises(TaskRejected) as caught:
        await wf.client.submit(workflow="big_step", input={"text": "x" * 300_000})
    assert caught.value.code == ErrorCode.TOO_LARGE
