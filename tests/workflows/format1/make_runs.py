"""Run with the format-1 code (before step kinds): writes runs as KV WORKFLOWS holds them."""
import sys
from pathlib import Path
import msgspec
from natsfleet.protocols import TaskRecord, TaskState, Timeouts, encode, to_raw, Usage
from natsfleet.supervisor.workflows import load, parse_toml
from natsfleet.supervisor.workflows.planner import Planner
from natsfleet.supervisor.workflows.state import new_run
from natsfleet.supervisor.workflows.validate import build_graph

catalog = load(["examples/workflows"])
FAN = parse_toml('''
[steps.split]
skill = "split"
input = "${input}"
[steps.each]
skill = "summarize"
for_each = "${steps.split.output.parts}"
concurrency = 2
input = { text = "${item}", n = "${index}" }
[steps.gate]
approval = true
prompt = "Publish ${steps.each.output.0}?"
on_reject = "redo"
[steps.redo]
skill = "redo"
input = { why = "${steps.gate.output.note}" }
[steps.publish]
skill = "publish"
after = ["gate"]
input = "${steps.each.output}"
''', default_name="fan")

def done(task_id, output):
    return TaskRecord(task_id=task_id, skill="x", input=to_raw(None), state=TaskState.COMPLETED,
                      attempts=1, output=to_raw(output), usage=Usage(cost_usd=0.01), created_ms=1, updated_ms=2)

def run_of(defn, run_id, inp, outputs):
    run = new_run(run_id=run_id, definition=defn, input=to_raw(inp), budget_usd=5.0, deadline_ms=10**13,
                  step_timeouts=Timeouts(), retry=None, priority=0, now_ms=1000)
    graph = build_graph(defn)
    p = Planner(run, graph)
    p.advance()
    run = p.result(2000)
    pending = list(p.launches)
    for output in outputs:
        launch = pending.pop(0)
        p = Planner(run, graph)
        assert p.task_ended(done(launch.item.task_id, output))
        p.advance()
        run = p.result(3000)
        pending += p.launches
    return run

travel = run_of(catalog.get("travel"), "run-travel", {"request": "BOS to NYC"},
    [{"email": "a@b"}, {"offers": [1, 2]}, {"summary": "flight 1"}])
content = run_of(catalog.get("content"), "run-content", {"question": "why?"},
    [{"sources": ["s"]}, "draft 1", {"verdict": "revise", "notes": "more", "draft": "d1"}])
fan = run_of(FAN, "run-fan", {"parts": ["a", "b", "c"]}, [{"parts": ["a", "b", "c"]}, "A"])
out = Path(sys.argv[1])
out.write_bytes(b"\n".join(encode(r) for r in (travel, content, fan)) + b"\n")
for r in (travel, content, fan):
    print(r.run_id, r.state, {n: s.phase.value for n, s in r.steps.items()})

# What the format-1 code does next with each run: the replay a test compares against.
import json
from natsfleet.protocols import is_terminal
from natsfleet.supervisor.workflows.state import Approval
from natsfleet.supervisor.workflows.status import waiting

def finish(run):
    graph = build_graph(run.definition)
    log = []
    p = Planner(run, graph); p.advance(); run = p.result(4000)
    pending = [(t, None) for t in p.open_tasks() if t not in {l.item.task_id for l in p.launches}]
    new = [(l.item.task_id, msgspec.json.decode(l.input)) for l in p.launches]
    log += new; pending += new
    for _ in range(100):
        if is_terminal(run.state):
            break
        p = Planner(run, graph)
        if pending:
            task_id, _ = pending.pop(0)
            assert p.task_ended(done(task_id, {"done": task_id, "verdict": "approve", "draft": "d", "summary": "s"}))
        else:
            (name,) = waiting(run)
            p.decide(name, Approval(approved=name != "gate", note="no", at_ms=5))
        p.advance(); run = p.result(5000)
        new = [(l.item.task_id, msgspec.json.decode(l.input)) for l in p.launches]
        log += new; pending += new
    final = msgspec.json.decode(encode(run))
    del final["definition"]
    return {"launches": log, "final": final}

Path(sys.argv[2]).write_text(json.dumps([finish(r) for r in (travel, content, fan)], indent=1) + "\n")
