"""Bounded loops (approved in round 2; out of rounds) and human approval steps."""

import asyncio

from natsfleet.protocols import ErrorCode, RemoteError, TaskState, decode_raw
from tests.workflows.conftest import WfFleet, step_state

LOOP = """
name = "loop"

[output]
draft = "${steps.review.output.draft}"
round = "${steps.review.output.round}"
notes_seen = "${steps.draft.output.notes_seen}"

[steps.draft]
skill = "draft"
input = { brief = "${input.brief}", round = "${round}", notes = "${steps.review.output.notes?}" }

[steps.review]
skill = "review"

[steps.review.input]
draft = "${steps.draft.output.draft}"
round = "${round}"
approve_at = "${input.approve_at}"

[loops.revise]
steps = ["draft", "review"]
max_rounds = 3
until = { ref = "${steps.review.output.verdict}", equals = "approve" }
"""

APPROVAL = """
name = "gate"

[steps.prepare]
skill = "draft"
input = { brief = "${input.brief}", round = 1 }

[steps.ask]
approval = true
prompt = "Publish ${steps.prepare.output.draft}?"
on_reject = "${input.on_reject}"

[steps.publish]
skill = "effect"
input = { name = "publish", dir = "${input.dir}", extra = "${steps.ask.output.input}" }
"""

BRANCH = """
name = "branch"

[steps.ask]
approval = true
prompt = "Go?"
on_reject = "apologise"

[steps.go]
skill = "draft"
input = { brief = "went", round = 1 }
after = ["ask"]

[steps.apologise]
skill = "draft"
input = { brief = "sorry: ${steps.ask.output.note}", round = 1 }
"""


async def test_loop_approves_in_round_two_and_one_runs_out(wf: WfFleet) -> None:
    wf.workflow("loop", LOOP)
    await wf.supervisor()
    await wf.agent("wf-1")
    approved = await wf.client.submit(workflow="loop", input={"brief": "b", "approve_at": 2})
    exhausted = await wf.client.submit(workflow="loop", input={"brief": "x", "approve_at": 9})
    event = await wf.client.wait(approved, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event
    output = decode_raw(event.output, dict)
    # Round 2's draft saw round 1's notes: the editor's notes flow back.
    assert output == {"draft": "b (draft 2)", "round": 2, "notes_seen": "tighten round 1"}
    status = await wf.steps(approved)
    assert [t.key for t in status.steps[0].tasks] == [f"{approved}/draft/1", f"{approved}/draft/2"]
    failed = await wf.client.wait(exhausted, timeout_s=30)
    assert failed.state == TaskState.FAILED and failed.error is not None
    assert failed.error.error_type == "loop_exhausted"
    assert "ran 3 rounds" in failed.error.detail and "'revise'" in failed.error.detail
    assert len((await wf.steps(exhausted)).steps[1].tasks) == 3


async def test_approval_resumed_refused_and_branch(wf: WfFleet) -> None:
    wf.workflow("gate", APPROVAL.replace('"${input.on_reject}"', '"fail"'))
    wf.workflow("branch", BRANCH)
    await wf.supervisor()
    await wf.agent("wf-1")
    effects = str(wf.tmp / "fx")
    (wf.tmp / "fx").mkdir()
    yes = await wf.client.submit(workflow="gate", input={"brief": "post", "dir": effects})
    no = await wf.client.submit(workflow="gate", input={"brief": "post", "dir": effects})
    branch = await wf.client.submit(workflow="branch", input={})

    def waiting(task: object, status: object) -> bool:
        return getattr(task, "state", None) == TaskState.INPUT_REQUIRED

    status = await wf.until(yes, waiting, 20)
    assert status.waiting == ("ask",)
    assert next(s.detail for s in status.steps if s.name == "ask") == "Publish post (draft 1)?"
    assert step_state(status, "publish") == "pending"
    ack = await wf.client.approve(yes, input={"channel": "blog"}, note="ok")
    assert ack.detail == "step ask approved"
    event = await wf.client.wait(yes, timeout_s=20)
    assert event.state == TaskState.COMPLETED
    assert decode_raw(event.output, dict)["extra"] == {"channel": "blog"}
    try:  # nothing waits any more
        await wf.client.approve(yes)
        raise AssertionError("approved twice")
    except RemoteError as exc:
        assert exc.code == ErrorCode.CONFLICT

    await wf.until(no, waiting, 20)
    await wf.client.approve(no, approved=False, note="not today")
    refused = await wf.client.wait(no, timeout_s=20)
    assert refused.state == TaskState.FAILED and refused.error is not None
    assert refused.error.detail == "approval refused at step 'ask': not today"
    assert step_state(await wf.steps(no), "publish") == "pending"

    await wf.until(branch, waiting, 20)
    await wf.client.approve(f"{branch}/ask", approved=False, note="rain")
    took = await wf.client.wait(branch, timeout_s=20)
    assert took.state == TaskState.COMPLETED, took
    assert decode_raw(took.output, dict)["draft"] == "sorry: rain (draft 1)"
    steps = await wf.steps(branch)
    assert step_state(steps, "go") == "skipped" and step_state(steps, "apologise") == "completed"
    await asyncio.sleep(0)
