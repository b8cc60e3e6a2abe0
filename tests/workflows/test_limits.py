"""Budgets, deadlines and an unknown skill at submit time."""

import time

from natsfleet.protocols import TaskState
from tests.workflows.conftest import WfFleet, step_state

PAID = """
name = "paid"
budget_usd = 0.05

[steps.a]
skill = "echo"
input = { n = 1, cost_usd = 0.02 }

[steps.b]
skill = "echo"
input = { n = 2, cost_usd = 0.02 }
after = ["a"]

[steps.c]
skill = "echo"
input = { n = 3, cost_usd = 0.02 }
after = ["b"]

[steps.d]
skill = "echo"
input = { n = 4 }
after = ["c"]
"""

SLOW = """
name = "slow"
deadline_s = 1.0

[steps.quick]
skill = "echo"
input = { n = 1 }

[steps.slow]
skill = "echo"
input = { n = 2, sleep_s = 20 }
after = ["quick"]
"""

UNKNOWN = """
name = "unknown"

[steps.a]
skill = "echo"

[steps.b]
skill = "no_such_skill"
after = ["a"]
"""


async def test_budget_deadline_and_unknown_skill(wf: WfFleet) -> None:
    wf.workflow("paid", PAID)
    wf.workflow("slow", SLOW)
    wf.workflow("unknown", UNKNOWN)
    await wf.supervisor()
    await wf.mini("m1", "echo")
    paid = await wf.client.submit(workflow="paid", input={})
    started = time.monotonic()
    slow = await wf.client.submit(workflow="slow", input={})
    unknown = await wf.client.submit(workflow="unknown", input={})

    rejected = await wf.client.wait(unknown, timeout_s=10)
    assert rejected.state == TaskState.REJECTED and rejected.error is not None
    assert rejected.error.error_type == "unknown_skill"
    assert "'no_such_skill' (step 'b')" in rejected.error.detail

    over = await wf.client.wait(paid, timeout_s=20)
    assert over.state == TaskState.FAILED and over.error is not None
    assert over.error.error_type == "budget"
    assert over.error.detail.startswith("budget exceeded: spent $0.0600 of $0.0500")
    status = await wf.steps(paid)
    assert status.spent_usd == 0.06 or abs(status.spent_usd - 0.06) < 1e-9
    assert step_state(status, "d") == "pending"  # nothing ran past the budget
    record = await wf.client.status(paid)
    assert abs(record.usage.cost_usd - 0.06) < 1e-9

    late = await wf.client.wait(slow, timeout_s=20)
    took_s = time.monotonic() - started
    assert late.state == TaskState.FAILED and late.error is not None
    assert late.error.error_type == "deadline", late.error
    assert took_s < 1.0 + 3.0, took_s
    # The running step stops too: canceled by the run, or by its own deadline
    # (a step task never outlives its run's).
    ended = (TaskState.CANCELED, TaskState.FAILED)
    status = await wf.until(
        slow,
        lambda _, s: (
            step_state(s, "slow") == "failed" and all(t.state in ended for t in s.steps[1].tasks)
        ),
        timeout_s=10,
    )
    assert step_state(status, "quick") == "completed"
