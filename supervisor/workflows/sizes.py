"""The size rule for a workflow run's state (docs/protocol.md, "Payload sizes").

A run keeps its input and its steps' outputs in one KV WORKFLOWS value, and
its output is mirrored on its task record: a run whose state would not fit in
one value, or whose output is over the inline threshold, fails with
`too_large` (its outputs dropped, so the failed state itself fits) instead of
failing its KV write again at every change.
"""

from msgspec import structs

from natsfleet.bus.payloads import TOO_LARGE, Payloads
from natsfleet.protocols import ErrorInfo, TaskState, encode, null_raw
from natsfleet.supervisor.workflows.state import WorkflowRun


def oversize(run: WorkflowRun, payloads: Payloads) -> str | None:
    """Why `run` cannot be stored as it is, or None."""
    if len(run.output) > payloads.inline_max_bytes:
        return (
            f"run output of {len(run.output)} bytes is over the "
            f"{payloads.inline_max_bytes}-byte inline threshold"
        )
    size = len(encode(run))
    if size > payloads.record_max_bytes:
        return (
            f"run state of {size} bytes (input and step outputs) is over the "
            f"{payloads.record_max_bytes}-byte limit of one KV value"
        )
    return None


def failed_for_size(run: WorkflowRun, detail: str) -> WorkflowRun:
    """`run` failed with `too_large`, without the outputs that made it too big."""
    steps = {
        name: structs.replace(
            step,
            output=null_raw(),
            elements=null_raw(),
            items=tuple(structs.replace(item, output=null_raw()) for item in step.items),
        )
        for name, step in run.steps.items()
    }
    return structs.replace(
        run,
        state=TaskState.FAILED,
        error=ErrorInfo(error_type=TOO_LARGE, detail=detail, retryable=False),
        output=null_raw(),
        steps=steps,
    )
