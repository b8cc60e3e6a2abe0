"""Budgets, deadlines and an unknown skill at submit time."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from natsfleet.protocols import TaskState
from tests.workflows.conftest import WfFleet, step_state

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")

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


METERED = """
name = "metered"

[steps.a]
skill = "echo"
input = { n = 1, calls = 2, input_tokens = 100, output_tokens = 10, cost_usd = 0.01 }

[steps.b]
skill = "echo"
input = { n = 2, calls = 1, input_tokens = 50, output_tokens = 5, cost_usd = 0.02 }
after = ["a"]
"""


async def test_a_runs_usage_adds_up_calls_and_tokens_not_only_cost(wf: WfFleet) -> None:
    wf.workflow("metered", METERED)
    await wf.supervisor()
    await wf.mini("m1", "echo")
    run = await wf.client.submit(workflow="metered", input={})
    assert (await wf.client.wait(run, timeout_s=20)).state == TaskState.COMPLETED
    status = await wf.steps(run)
    assert [s.usage.calls for s in status.steps] == [2, 1]
    assert status.steps[0].tasks[0].usage.input_tokens == 100
    assert (status.usage.calls, status.usage.input_tokens, status.usage.output_tokens) == (
        3,
        150,
        15,
    )
    assert abs(status.usage.cost_usd - 0.03) < 1e-9
    record = await wf.client.status(run)
    assert (record.usage.calls, record.usage.input_tokens, record.usage.output_tokens) == (
        3,
        150,
        15,
    )
    assert abs(record.usage.cost_usd - 0.03) < 1e-9
    shown = await asyncio.to_thread(
        subprocess.run,
        [NATSFLEET, "status", run, "--nats", wf.server.url, "--prefix", wf.prefix],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert "in 3 calls" in shown.stdout and "110" in shown.stdout, shown.stdout
