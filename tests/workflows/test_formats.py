"""Definition formats: format 2 (explicit step kinds) and format 1 (kinds implied), and
runs that the format-1 code left in KV WORKFLOWS (a run in flight across an upgrade).

`format1/runs.jsonl` and `format1/replay.json` were written by the format-1 code
(`format1/make_runs.py.txt`): three runs in flight (travel waiting for an
approval, content in loop round 2, a fan-out with a branch half done), and the
launches and final state that code planned for them from there.
"""

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from natsfleet.bus import Bus
from natsfleet.protocols import (
    Bucket,
    ProtocolError,
    TaskRecord,
    TaskState,
    Usage,
    encode,
    is_terminal,
    to_raw,
)
from natsfleet.supervisor.lease import Lease
from natsfleet.supervisor.workflows import (
    ApprovalStep,
    FanOutStep,
    TaskStep,
    WorkflowDefinitionError,
    check,
    format1,
    load_file,
    parse_toml,
)
from natsfleet.supervisor.workflows.planner import Planner
from natsfleet.supervisor.workflows.runstore import RunStore
from natsfleet.supervisor.workflows.state import Approval, WorkflowRun, decode_run
from natsfleet.supervisor.workflows.status import waiting
from natsfleet.supervisor.workflows.validate import build_graph
from tests.procs import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "workflows"
FORMAT1 = Path(__file__).parent / "format1"

#: The fan-out workflow of format1/runs.jsonl (written there in format 1), in format 2.
FAN_V2 = """
format = 2
[steps.split]
kind = "task"
skill = "split"
input = "${input}"
[steps.each]
kind = "fan_out"
skill = "summarize"
for_each = "${steps.split.output.parts}"
concurrency = 2
input = { text = "${item}", n = "${index}" }
[steps.gate]
kind = "approval"
prompt = "Publish ${steps.each.output.0}?"
on_reject = "redo"
[steps.redo]
kind = "task"
skill = "redo"
input = { why = "${steps.gate.output.note}" }
[steps.publish]
kind = "task"
skill = "publish"
after = ["gate"]
input = "${steps.each.output}"
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(WorkflowDefinitionError) as err:
        check(parse_toml(text, default_name="w"))
    return err.value.problems


def test_every_example_loads_equal_in_both_formats() -> None:
    examples = sorted(EXAMPLES.glob("*.toml"))
    twins = {p.name for p in FORMAT1.glob("*.toml")}
    assert twins and twins <= {p.name for p in examples}
    for current in examples:
        old = FORMAT1 / current.name
        if current.name not in twins:  # only a kind format 1 cannot express excuses it
            kinds = {type(s) for s in load_file(current).steps}
            assert not kinds <= set(format1.KINDS), f"{current.name} needs a format-1 twin"
            continue
        assert "\nformat = 2" in current.read_text(), current  # examples show format 2
        assert "format =" not in old.read_text(), old
        assert load_file(current) == load_file(old), current.name
    travel = load_file(EXAMPLES / "travel.toml")
    kinds = {s.name: type(s) for s in travel.steps}
    assert kinds["approve"] is ApprovalStep and kinds["book"] is TaskStep


def test_format1_steps_become_the_same_kinds() -> None:
    v1 = """
    [steps.split]\nskill = "split"\ninput = "${input}"
    [steps.each]\nskill = "summarize"\nfor_each = "${steps.split.output.parts}"\nconcurrency = 2
    input = { text = "${item}", n = "${index}" }
    [steps.gate]\napproval = true\nprompt = "Publish ${steps.each.output.0}?"\non_reject = "redo"
    [steps.redo]\nskill = "redo"\ninput = { why = "${steps.gate.output.note}" }
    [steps.publish]\nskill = "publish"\nafter = ["gate"]\ninput = "${steps.each.output}"
    """.replace("    ", "")
    assert parse_toml(v1, default_name="f") == parse_toml(FAN_V2, default_name="f")
    assert isinstance(parse_toml(FAN_V2, default_name="f").step("each"), FanOutStep)


def test_format2_names_each_kind_and_refuses_what_another_kind_has() -> None:
    missing = _problems('format = 2\n[steps.a]\nskill = "s"\n')
    assert missing == ["step 'a': Object missing required field `kind`"]
    unknown = _problems('format = 2\n[steps.a]\nkind = "timer"\nskill = "s"\n')
    assert unknown == ["step 'a': Invalid value 'timer' - at `$.kind`"]
    foreign = _problems('format = 2\n[steps.a]\nkind = "approval"\nskill = "s"\n')
    assert foreign == ["step 'a': Object contains unknown field `skill`"]
    fan = _problems(
        'format = 2\n[steps.a]\nkind = "task"\nskill = "s"\n'
        '[steps.b]\nkind = "fan_out"\nskill = "s"\nfor_each = "x"\nconcurrency = 0\n'
    )
    assert fan == [
        "step 'b': for_each must be one reference, like ${steps.x.output}",
        "step 'b': concurrency must be >= 1, on a for_each step",
    ]
    for bad in ("3", '"2"', "true"):
        problems = _problems(f'format = {bad}\n[steps.a]\nkind = "task"\nskill = "s"\n')
        assert problems == [f"format = {json.loads(bad)!r}: this version reads formats (1, 2)"]


def test_format1_steps_without_one_kind_are_refused_with_every_reason() -> None:
    problems = _problems(
        '[steps.a]\napproval = true\nfor_each = "${input.x}"\ninput = { y = 1 }\n'
        '[steps.b]\nskill = "s"\non_reject = "a"\nprompt = "?"\n'
        '[steps.c]\nskill = "s"\nconcurrency = 2\n'
        "[steps.d]\n"
    )
    assert problems == [
        "step 'a': an approval step cannot fan out",
        "step 'a': input has no meaning on an approval step",
        "step 'b': on_reject belongs to approval steps",
        "step 'b': prompt belongs to approval steps",
        "step 'c': concurrency must be >= 1, on a for_each step",
        "step 'd': give either skill = ... or approval = true",
    ]


def _old_runs() -> list[bytes]:
    return (FORMAT1 / "runs.jsonl").read_bytes().splitlines()


def _done(task_id: str, output: Any) -> TaskRecord:
    return TaskRecord(
        task_id=task_id, skill="x", input=to_raw(None), state=TaskState.COMPLETED, attempts=1,
        output=to_raw(output), usage=Usage(cost_usd=0.01), created_ms=1, updated_ms=2,
    )  # fmt: skip


def _finish(run: WorkflowRun) -> dict[str, Any]:
    """What make_runs.py.txt did with the format-1 code, done by this code."""
    graph = build_graph(run.definition)
    planner = Planner(run, graph)
    planner.advance()
    run = planner.result(4000)
    launched = {launch.item.task_id for launch in planner.launches}
    pending: list[str] = [t for t in planner.open_tasks() if t not in launched]
    log = [[launch.item.task_id, msgspec.json.decode(launch.input)] for launch in planner.launches]
    pending += [task_id for task_id, _ in log]
    for _ in range(100):
        if is_terminal(run.state):
            break
        planner = Planner(run, graph)
        if pending:
            task_id = pending.pop(0)
            output = {"done": task_id, "verdict": "approve", "draft": "d", "summary": "s"}
            assert planner.task_ended(_done(task_id, output))
        else:
            (name,) = waiting(run)
            planner.decide(name, Approval(approved=name != "gate", note="no", at_ms=5))
        planner.advance()
        run = planner.result(5000)
        new = [
            [launch.item.task_id, msgspec.json.decode(launch.input)] for launch in planner.launches
        ]
        log += new
        pending += [task_id for task_id, _ in new]
    final = msgspec.json.decode(encode(run))
    del final["definition"]
    return {"launches": log, "final": final}


def _known(value: Any, old: Any) -> Any:
    """`value` with only the dict keys that `old` (what older code wrote) has."""
    if isinstance(value, dict) and isinstance(old, dict):
        return {k: _known(v, old[k]) for k, v in value.items() if k in old}
    if isinstance(value, list) and isinstance(old, list) and len(value) == len(old):
        return [_known(v, o) for v, o in zip(value, old, strict=True)]
    return value


def test_runs_written_by_the_format1_code_decode_and_finish_as_that_code_planned() -> None:
    runs = [decode_run(data) for data in _old_runs()]
    assert [r.run_id for r in runs] == ["run-travel", "run-content", "run-fan"]
    assert runs[0].definition == load_file(EXAMPLES / "travel.toml")
    assert runs[1].definition == load_file(EXAMPLES / "content.toml")
    assert runs[2].definition == parse_toml(FAN_V2, default_name="fan")
    assert [r.state for r in runs] == [
        TaskState.INPUT_REQUIRED,
        TaskState.WORKING,
        TaskState.WORKING,
    ]
    expected = json.loads((FORMAT1 / "replay.json").read_text())
    # Fields added to run state since the format-1 code (e.g. `usage`) are additive:
    # every field that code wrote is compared, the newer ones are not.
    assert [_known(_finish(run), old) for run, old in zip(runs, expected, strict=True)] == expected
    # Written again, a run is in format 2 and reads back equal.
    assert decode_run(encode(runs[2])) == runs[2]
    with pytest.raises(ProtocolError):
        decode_run(b'{"run_id": "r", "workflow": "w"}')


async def test_a_run_in_flight_across_the_upgrade_is_adopted_from_kv(bus: Bus) -> None:
    """The bytes the format-1 code left in KV WORKFLOWS: loaded, advanced, written by CAS."""
    kv = await bus.kv(Bucket.WORKFLOWS)
    for data in _old_runs():
        await kv.put(msgspec.json.decode(data)["run_id"], data)
    lease = Lease(await bus.kv(Bucket.LEASES), key="p0", partition=0, holder="s", ttl_s=30)
    assert await lease.try_acquire()
    store = RunStore(kv, lease)
    loaded = {t.run.run_id: t for t in await store.load_all()}
    assert sorted(loaded) == ["run-content", "run-fan", "run-travel"]
    travel = loaded["run-travel"]
    planner = Planner(travel.run, build_graph(travel.run.definition))
    planner.decide("approve", Approval(approved=True, at_ms=5))
    planner.advance()
    assert [launch.item.task_id for launch in planner.launches] == ["run-travel-book-0"]
    async with travel.lock:
        await store.write(travel, planner.result(6000))
    entry = await kv.get("run-travel")
    assert entry.value is not None and b'"kind":"approval"' in entry.value
    assert decode_run(entry.value).steps["book"].phase == "running"
