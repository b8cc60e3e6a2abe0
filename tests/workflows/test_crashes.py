"""kill -9 of an agent and of the supervisor mid-workflow: each step's effect happens once."""

from pathlib import Path

from natsfleet.protocols import TaskState, decode_raw
from tests.supervisor.helpers import effects, terminal_events
from tests.workflows.conftest import WfFleet, task_working

CHAIN = """
name = "chain"

[steps.first]
skill = "effect"
input = { name = "first", dir = "${input.dir}" }

[steps.second]
skill = "effect"
input = { name = "second", dir = "${input.dir}", ms = "${input.second_ms}" }
after = ["first"]

[steps.fan]
skill = "effect"
for_each = "${input.names}"
concurrency = 2
input = { name = "${item}", dir = "${input.dir}", ms = 300 }
after = ["second"]

[steps.last]
skill = "effect"
input = { name = "last", dir = "${input.dir}", extra = { count = "${steps.fan.output.1.name}" } }
"""


def _chain_input(root: Path, second_ms: int) -> dict[str, object]:
    root.mkdir()
    return {"dir": str(root), "second_ms": second_ms, "names": ["x", "y", "z"]}


async def _check_once(wf: WfFleet, run_id: str, root: Path) -> list[str]:
    """Every step task completed once, with one side effect; returns the raw executions."""
    status = await wf.steps(run_id)
    task_ids = [t.task_id for s in status.steps for t in s.tasks]
    assert len(task_ids) == 6, status
    raw, done = effects(root)
    assert done == sorted(task_ids), (done, task_ids)
    finals = await terminal_events(wf.bus)
    for task_id in task_ids:
        assert len(finals[task_id]) == 1, finals[task_id]
        record = await wf.client.status(task_id)
        assert record.state == TaskState.COMPLETED
        assert sum(1 for a in record.history if a.outcome == "completed") == 1
    assert len(finals[run_id]) == 1
    return [line.split()[0] for line in raw]


async def test_agent_killed_mid_workflow(wf: WfFleet) -> None:
    wf.workflow("chain", CHAIN)
    await wf.supervisor()
    agents = {name: await wf.agent(name) for name in ("wf-1", "wf-2")}
    root = wf.tmp / "fx"
    run_id = await wf.client.submit(workflow="chain", input=_chain_input(root, 1500))
    status = await wf.until(run_id, lambda _, s: task_working(s, "second") is not None, 20)
    task_id = task_working(status, "second")
    holder = (await wf.client.status(str(task_id))).instance_id
    await agents[str(holder)].kill()
    event = await wf.client.wait(run_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event
    assert decode_raw(event.output, dict)["extra"] == {"count": "y"}
    raw = await _check_once(wf, run_id, root)
    assert raw.count(str(task_id)) == 2  # run twice (the first died) ...
    record = await wf.client.status(str(task_id))
    assert record.attempts == 2 and record.history[0].outcome == "lost"
    assert record.instance_id != holder


async def test_supervisor_killed_mid_workflow_resumes(wf: WfFleet) -> None:
    wf.workflow("chain", CHAIN)
    sup = await wf.supervisor("sup-a")
    await wf.agent("wf-1")
    root = wf.tmp / "fx"
    run_id = await wf.client.submit(workflow="chain", input=_chain_input(root, 800))
    await wf.until(run_id, lambda _, s: task_working(s, "second") is not None, 20)
    await sup.kill()
    await wf.supervisor("sup-b")
    event = await wf.client.wait(run_id, timeout_s=40)
    assert event.state == TaskState.COMPLETED, event
    raw = await _check_once(wf, run_id, root)
    assert len(raw) == 6, raw  # no step ran twice, not even the one running at the kill
    record = await wf.client.status(run_id)
    assert record.epoch >= 2 and record.workflow == "chain"
