"""The SDK's `TaskStore`, read from the fleet: no task lives in the gateway.

The fleet's supervisor is the only writer of a task's state (KV STATE, the
EVENTS stream); a gateway replica only reads it, so any replica answers for
any task. A task is visible to the caller whose message started it (its
idempotency key names the caller: gateway/a2a/mapping.py `Origin`) and only
while it is for the caller's tenant (`TaskRecord.tenant`, the key's tenant in
gateway/keys.py: a key moved to another tenant no longer sees the old
tenant's tasks); any other task is "not found" to an A2A client, never
"forbidden", so task ids do not leak.
"""

import logging

from a2a.server.context import ServerCallContext
from a2a.server.tasks import TaskStore
from a2a.types import (
    InternalError,
    InvalidParamsError,
    ListTasksRequest,
    ListTasksResponse,
    Task,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from natsfleet.client import FleetClient
from natsfleet.gateway.a2a.feed import Snapshot, snapshot
from natsfleet.gateway.a2a.mapping import Origin, prompt_of, task_of
from natsfleet.gateway.keys import ApiKeys
from natsfleet.protocols import (
    ErrorCode,
    InvalidValue,
    NatsFleetError,
    RemoteError,
    TaskRecord,
    TaskStatusReply,
    check_id,
)

log = logging.getLogger(__name__)


def view(record: TaskRecord, origin: Origin, now: Snapshot, prompt: str = "") -> Task:
    """The A2A task as `now` (read after `record`) shows it; `prompt`: what it
    asks while input-required."""
    event = now.event
    # The latest event may be newer than the record read just before it.
    fresher = event if event is not None and event.at_ms >= record.updated_ms else None
    return task_of(
        record,
        origin,
        state=fresher.state if fresher else None,
        error=fresher.error if fresher else None,
        output=fresher.output if fresher and fresher.output_ref is None else None,
        streamed=(now.text, now.output_seq),
        prompt=prompt,
    )


def caller_of(context: ServerCallContext) -> str:
    """The name of the key the request came with (the auth middleware set it)."""
    return context.user.user_name or "anonymous"


class FleetTaskStore(TaskStore):
    """A2A tasks as the fleet holds them (read only)."""

    def __init__(
        self, client: FleetClient, keys: ApiKeys, *, request_timeout_s: float = 5.0
    ) -> None:
        self.client = client
        self.keys = keys
        self.request_timeout_s = request_timeout_s

    async def load(self, task_id: str, caller: str) -> tuple[TaskRecord, Origin]:
        """The task's record and origin, if `caller` started it (see `load_reply`)."""
        reply, origin = await self.load_reply(task_id, caller)
        return reply.task, origin

    async def load_reply(self, task_id: str, caller: str) -> tuple[TaskStatusReply, Origin]:
        """The task's status reply and origin, if `caller` started it for its tenant.

        Raises:
            InvalidParamsError: `task_id` is not a task id.
            TaskNotFoundError: no such task, or not the caller's.
            InternalError: the fleet did not answer.
        """
        try:
            check_id(task_id, "task id")
        except InvalidValue as exc:
            raise InvalidParamsError(message=str(exc)) from None
        try:
            reply = await self.client.status_reply(task_id, timeout_s=self.request_timeout_s)
        except RemoteError as exc:
            if exc.code == ErrorCode.UNKNOWN_TASK:
                raise TaskNotFoundError from None
            raise InternalError(message=f"the fleet refused: {exc}") from None
        except NatsFleetError as exc:
            raise InternalError(message=f"the fleet did not answer: {exc}") from None
        origin = Origin.from_key(reply.task.idempotency_key)
        if (
            origin is None
            or origin.caller != caller
            or reply.task.tenant != self.keys.tenant_of(caller)
        ):
            raise TaskNotFoundError
        return reply, origin

    async def check_retried(self, task_id: str, caller: str) -> None:
        """A retried message's task is for the caller's tenant (its key already
        names the caller).

        A task the supervisor does not know yet (the retry raced the first
        submit) passes: its tenant is checked on every later read.

        Raises:
            TaskNotFoundError: the task is another tenant's.
        """
        try:
            reply = await self.client.status_reply(task_id, timeout_s=self.request_timeout_s)
        except NatsFleetError:
            return
        if reply.task.tenant != self.keys.tenant_of(caller):
            raise TaskNotFoundError

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        reply, origin = await self.load_reply(task_id, caller_of(context))
        return view(reply.task, origin, await snapshot(self.client, task_id), prompt_of(reply))

    async def save(self, task: Task, context: ServerCallContext) -> None:
        raise UnsupportedOperationError(
            message="the fleet's supervisor is the only writer of a task's state"
        )

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        raise UnsupportedOperationError(message="listing tasks is not offered over A2A")

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        raise UnsupportedOperationError(message="tasks are kept by the fleet's retention rules")
