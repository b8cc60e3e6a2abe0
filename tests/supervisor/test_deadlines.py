"""Deadlines as one concept: one table of timeout kinds, one place that arms them."""

import ast
from pathlib import Path

import msgspec

from natsfleet.protocols import NULL_RAW, TaskRecord, TaskState, Timeouts
from natsfleet.supervisor.attempts import Attempt
from natsfleet.supervisor.deadlines import TIMEOUTS, Deadlines, TimerKind, WakeUp
from natsfleet.supervisor.timers import Timer

SUPERVISOR = Path(__file__).resolve().parents[2] / "supervisor"
FAR = 4_000_000_000_000  # epoch ms, in 2096: nothing fires during a test


def _record(state: TaskState, **fields: object) -> TaskRecord:
    return TaskRecord(task_id="t1", state=state, input=NULL_RAW, **fields)


def _armed(deadlines: Deadlines) -> set[tuple[str, int, str | None]]:
    return {(t.kind, t.at_ms, t.token) for _, _, t in deadlines.timers._heap if t.seq in
            deadlines.timers._live}  # fmt: skip


def test_the_table_covers_every_timeout_setting_and_names_real_record_fields() -> None:
    settings = [row.setting for row in TIMEOUTS]
    assert sorted(settings) == sorted(f.name for f in msgspec.structs.fields(Timeouts))
    assert sorted(row.kind for row in TIMEOUTS) == sorted(TimerKind)
    record_fields = {f.name for f in msgspec.structs.fields(TaskRecord)}
    for row in TIMEOUTS:
        assert row.field is None or row.field in record_fields, row
        assert (row.field is None) == (row.fire is None), row  # a persisted one fires
    assert WakeUp.RETRY not in {row.kind for row in TIMEOUTS}  # a wake-up, not a timeout


def test_arm_follows_the_state_and_is_idempotent() -> None:
    deadlines = Deadlines()
    queued = _record(TaskState.QUEUED, schedule_deadline_ms=FAR + 1, close_deadline_ms=FAR + 9)
    deadlines.arm(queued)
    deadlines.arm(queued)  # written again: nothing armed twice
    assert _armed(deadlines) == {
        (TimerKind.SCHEDULE, FAR + 1, None),
        (TimerKind.CLOSE, FAR + 9, None),
    }
    assigned = msgspec.structs.replace(
        queued, state=TaskState.ASSIGNED, token="tok", attempt_deadline_ms=FAR + 5
    )
    deadlines.arm(assigned)
    assert (TimerKind.ATTEMPT, FAR + 5, "tok") in _armed(deadlines)
    # Accept: the exact deadline, in memory, fenced by the same token.
    attempt = Attempt(task_id="t1", token="tok", instance_id="i1", agent="a", hb_timeout_s=1)
    attempt.deadline_ms = FAR + 3
    deadlines.arm(assigned, attempt)
    assert (TimerKind.ATTEMPT, FAR + 3, "tok") in _armed(deadlines)
    assert len(deadlines) == 4
    retrying = msgspec.structs.replace(
        queued, state=TaskState.RETRYING, not_before_ms=FAR + 2, schedule_deadline_ms=FAR + 7
    )
    deadlines.arm(retrying)
    assert {(WakeUp.RETRY, FAR + 2, None), (TimerKind.SCHEDULE, FAR + 7, None)} <= _armed(deadlines)
    deadlines.arm(msgspec.structs.replace(retrying, state=TaskState.COMPLETED))
    assert len(deadlines) == 0  # a final record: every timer of the task forgotten


def test_again_rearms_a_timer_whose_firing_failed() -> None:
    deadlines = Deadlines()
    deadlines.again(Timer(at_ms=1, seq=0, kind=TimerKind.ATTEMPT, task_id="t1", token="k"), FAR)
    assert _armed(deadlines) == {(TimerKind.ATTEMPT, FAR, "k")}


def test_only_deadlines_py_arms_timers() -> None:
    """`Timers.add` has one caller: a new timeout is a row of the table, not a new call site."""
    callers = []
    for path in sorted(SUPERVISOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add"
                and "timers" in ast.unparse(node.func.value)
            ):
                callers.append(path.name)
    assert set(callers) == {"deadlines.py"}, callers
