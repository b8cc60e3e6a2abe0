"""One MCP tools/call as one fleet task: submit, relay progress, map the end.

A call is a `Submit` through `FleetClient` (a skill or a workflow run). While
it runs, the task's `Progress` and partial output reach `report` (the MCP
progress notifications). Its terminal event decides the answer: completed
is the tool result (structured content and its JSON as text), failed,
rejected or canceled a tool error (`isError`) with the reason. Arguments that
break the tool's input schema are a tool error before anything is sent.

With an idempotency key (`_meta["io.natsfleet/idempotency-key"]`), a call
retried on any replica finds the same task (KV IDEM) and waits for it again
instead of running it twice; the key is scoped by the caller's name. A call
of a key with a tenant (gateway/keys.py) submits its task for that tenant,
and a key that names an earlier task of another tenant (the key was moved to
another tenant since) is answered as if there were no such task: nothing of
another tenant's task is shown. Nothing of a call outlives it in the gateway.
"""

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from natsfleet.client import FleetClient, TaskRejected, WaitTimeout
from natsfleet.gateway.catalog import FleetTool
from natsfleet.gateway.progress import ProgressRelay, Report
from natsfleet.gateway.schemas import WRAPPED_ARGUMENT
from natsfleet.protocols import (
    InvalidValue,
    NatsFleetError,
    TaskEvent,
    TaskState,
    new_task_id,
)

log = logging.getLogger(__name__)

#: `_meta` key of a call's idempotency key.
IDEMPOTENCY_META_KEY = "io.natsfleet/idempotency-key"
#: `_meta` key of the task id on every result (success or error).
TASK_ID_META_KEY = "io.natsfleet/task-id"
#: How long progress still queued when the task ends may delay the result.
PROGRESS_DRAIN_S = 1.0


class CallOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a call ended as, before it is shaped into an MCP result."""

    task_id: str | None
    ok: bool
    # Completed: the task's output; else {"state", "error_type", "detail", ...}.
    structured: Any
    text: str


def _error(task_id: str | None, state: str, error_type: str, detail: str) -> CallOutcome:
    structured = {"task_id": task_id, "state": state, "error_type": error_type, "detail": detail}
    where = f"task {task_id} " if task_id else ""
    return CallOutcome(
        task_id=task_id,
        ok=False,
        structured=structured,
        text=f"{where}{state}: {error_type}: {detail}",
    )


def invalid_arguments(tool: FleetTool, reasons: list[str]) -> CallOutcome:
    detail = f"arguments do not match the input schema of {tool.name}: " + "; ".join(reasons)
    return _error(None, "invalid_arguments", "invalid_arguments", detail)


def terminal_outcome(event: TaskEvent) -> CallOutcome:
    """The call's end from the task's terminal event."""
    if event.state == TaskState.COMPLETED:
        output = msgspec.json.decode(event.output)
        text = msgspec.json.encode(output).decode()
        return CallOutcome(task_id=event.task_id, ok=True, structured=output, text=text)
    error_type = event.error.error_type if event.error else event.state.value
    detail = event.error.detail if event.error and event.error.detail else event.detail
    return _error(event.task_id, event.state.value, error_type, detail)


async def _for_tenant(client: FleetClient, task_id: str, tenant: str | None) -> bool:
    """Whether an earlier task named by a key is for `tenant`. One the
    supervisor does not know yet is taken as it: this call raced the first
    one with the same caller's key, seconds ago, so under the same tenant."""
    try:
        record = await client.status(task_id, timeout_s=5.0)
    except NatsFleetError:
        return True
    return record.tenant == tenant


def scoped_key(caller: str, tool: FleetTool, key: str) -> str:
    """The fleet idempotency key of a caller's key: callers cannot collide."""
    return f"mcp/{caller}/{tool.kind}/{tool.target}/{key}"


async def run_call(
    client: FleetClient,
    tool: FleetTool,
    arguments: dict[str, Any],
    *,
    caller: str,
    key: str | None,
    timeout_s: float,
    report: Report,
    tenant: str | None = None,
) -> CallOutcome:
    """Run one tool call to its end (or until `timeout_s`), for `tenant`."""
    reasons = tool.errors(arguments)
    if reasons:
        return invalid_arguments(tool, reasons)
    task_input = arguments[WRAPPED_ARGUMENT] if tool.wrapped else arguments
    fleet_key = scoped_key(caller, tool, key) if key is not None else None
    wanted = new_task_id()
    relay = ProgressRelay(client, report)
    task_id: str | None = None
    drain_s = 0.0
    try:
        # Subscribed to the output before submitting, so no progress is missed.
        await relay.follow(wanted)
        if tool.kind == "skill":
            task_id = await client.submit(
                tool.target, task_input, key=fleet_key, task_id=wanted, tenant=tenant
            )
        else:
            task_id = await client.submit(
                workflow=tool.target, input=task_input, key=fleet_key, task_id=wanted, tenant=tenant
            )
        if task_id != wanted:  # the key named an earlier task: follow that one
            if not await _for_tenant(client, task_id, tenant):
                task_id = None
                return _error(None, "not_found", "unknown_task", "no such task for this caller")
            await relay.follow(task_id)
        event = await client.wait(task_id, timeout_s)
        drain_s = PROGRESS_DRAIN_S
        return terminal_outcome(event)
    except TaskRejected as exc:
        return _error(task_id, "rejected", exc.code.value, exc.detail)
    except InvalidValue as exc:
        return _error(task_id, "rejected", "invalid_value", str(exc))
    except WaitTimeout:
        detail = (
            f"still running after {timeout_s:g} s; call again with the same "
            f"{IDEMPOTENCY_META_KEY} to keep waiting"
        )
        return _error(task_id, "timeout", "wait_timeout", detail)
    except asyncio.CancelledError:
        # The client went away. A keyed task can be picked up again; an
        # unkeyed one has nobody left to hand its result to.
        if task_id is not None and key is None:
            log.info("call of task %s abandoned by its client: canceling the task", task_id)
            with contextlib.suppress(NatsFleetError, asyncio.CancelledError):
                await asyncio.shield(client.cancel(task_id, "MCP call cancelled", timeout_s=5))
        raise
    finally:
        await relay.close(drain_s)
