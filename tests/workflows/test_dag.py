"""Fan-out with a concurrency limit, fan-in, and what `status` shows of the steps."""

from pathlib import Path

from natsfleet.protocols import TaskState, decode_raw
from tests.workflows.conftest import WfFleet

FAN = """
name = "fan"
output = { merged = "${steps.merge.output}", first = "${steps.work.output.0}" }

[steps.split]
skill = "split"
input = { n = "${input.n}" }

[steps.work]
skill = "work"
for_each = "${steps.split.output.items}"
concurrency = 2
input = { i = "${item}", ms = 250, dir = "${input.dir}" }

[steps.merge]
skill = "merge"
input = { results = "${steps.work.output}" }
"""


async def test_fan_out_fan_in_with_concurrency_limit(wf: WfFleet, tmp_path: Path) -> None:
    wf.workflow("fan", FAN)
    await wf.supervisor()
    await wf.agent("wf-1", capacity=4)
    await wf.agent("wf-2", capacity=4)
    record_dir = tmp_path / "record"
    run_input = {"n": 5, "dir": str(record_dir)}
    run_id = await wf.client.submit(workflow="fan", input=run_input, key="fan-1")
    event = await wf.client.wait(run_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event
    # The same key again is the same run (its events carry the key's hash).
    assert await wf.client.submit(workflow="fan", input=run_input, key="fan-1") == run_id
    output = decode_raw(event.output, dict)
    assert output["merged"] == {"count": 5, "squares": [1, 4, 9, 16, 25]}
    assert output["first"] == {"i": 1, "squared": 1}
    # With 8 free slots, only the workflow's limit keeps it at 2 at a time.
    seen = [int(p.read_text()) for p in record_dir.glob("seen-*")]
    assert len(seen) == 5 and max(seen) <= 2, seen
    status = await wf.steps(run_id)
    assert [(s.name, s.phase, len(s.tasks)) for s in status.steps] == [
        ("split", "completed", 1),
        ("work", "completed", 5),
        ("merge", "completed", 1),
    ]
    work = status.steps[1]
    assert [t.key for t in work.tasks] == [f"{run_id}/work/{i}" for i in range(5)]
    assert all(t.state == TaskState.COMPLETED and t.attempts == 1 for t in work.tasks)
    record = await wf.client.status(run_id)
    assert record.workflow == "fan" and record.state == TaskState.COMPLETED
