"""The A2A request handler of the gateway: every call answered from the fleet.

Why not the SDK's `DefaultRequestHandler`: it runs each task's executor in
an `ActiveTaskRegistry` in the memory of the replica that took the message;
were that replica killed, no one would carry the task's updates on. Here a
message is a `FleetClient.submit`, and every later read (get, a stream,
resubscribe, cancel) is built by whichever replica is asked from the task's
record, its EVENTS and its OUTPUT stream (gateway/a2a/feed.py).
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler, validate_request_params
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    InternalError,
    InvalidParamsError,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    PushNotificationNotSupportedError,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskNotCancelableError,
    TaskPushNotificationConfig,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length

from natsfleet.client import FleetClient, TaskRejected
from natsfleet.gateway.a2a.feed import (
    Feed,
    events_after,
    last_event,
    snapshot,
    streamed_so_far,
)
from natsfleet.gateway.a2a.mapping import (
    Origin,
    check_client_id,
    metadata_of,
    output_artifact,
    part_value,
    prompt_of,
    result_artifact,
    status_of,
    target_of,
)
from natsfleet.gateway.a2a.store import FleetTaskStore, caller_of, view
from natsfleet.gateway.keys import ApiKeys
from natsfleet.protocols import InvalidValue, NatsFleetError, TaskEvent, is_terminal, new_task_id
from natsfleet.protocols import TaskState as FleetState

log = logging.getLogger(__name__)

#: The namespace of context ids the gateway makes (uuid5 of caller and message id).
_CONTEXTS = uuid.UUID("6b3c1f0e-5a2d-4e8b-9c47-a2a0f1ee7d10")


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    #: The skill a message that names none goes to (None: such a message is refused).
    default_skill: str | None = None
    #: How long a blocking `message/send` waits before answering with the task as it is.
    blocking_timeout_s: float = 60.0
    #: How long a request to the fleet's supervisor may take.
    request_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class _Started:
    """A message taken: the task it started (or answered) and where to follow it from."""

    task: Task
    state: FleetState
    events_seq: int
    output_seq: int
    streamed: bool


class FleetRequestHandler(RequestHandler):
    """A2A's JSON-RPC methods over a `FleetClient` (module doc)."""

    def __init__(self, client: FleetClient, settings: HandlerSettings, keys: ApiKeys) -> None:
        self.client = client
        self.settings = settings
        self.keys = keys
        self.store = FleetTaskStore(client, keys, request_timeout_s=settings.request_timeout_s)

    # -- reading ----------------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        log.info("a2a get by %s: task %s", caller_of(context), params.id)
        task = await self.store.get(params.id, context)
        return None if task is None else apply_history_length(task, params)

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return await self.store.list(params, context)

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        caller = caller_of(context)
        log.info("a2a resubscribe by %s: task %s", caller, params.id)
        reply, origin = await self.store.load_reply(params.id, caller)
        now = await snapshot(self.client, params.id)
        state = now.event.state if now.event else reply.task.state
        if is_terminal(state):
            raise UnsupportedOperationError(message=f"task {params.id} has ended ({state})")
        # The text so far; the feed goes on after it.
        yield view(reply.task, origin, now, prompt_of(reply))
        feed = Feed(self.client, params.id, origin.context_id)
        async for event in feed.events(state, now.events_seq, now.output_seq, bool(now.text)):
            yield event

    # -- cancel -----------------------------------------------------------------------

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        caller = caller_of(context)
        record, _ = await self.store.load(params.id, caller)
        if is_terminal(record.state):
            raise TaskNotCancelableError(message=f"task {params.id} has ended ({record.state})")
        log.info("a2a cancel by %s: task %s", caller, params.id)
        try:
            await self.client.cancel(
                params.id, f"canceled by A2A caller {caller}", timeout_s=self._timeout()
            )
        except NatsFleetError as exc:
            raise TaskNotCancelableError(message=str(exc)) from None
        return await self.store.get(params.id, context)

    # -- messages ---------------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        started = await self._take(params, context)
        task_id = started.task.id
        if params.configuration.return_immediately:
            return apply_history_length(started.task, params.configuration)
        events = events_after(self.client, task_id, started.events_seq)
        ended: TaskEvent | None = None
        try:
            async with asyncio.timeout(self.settings.blocking_timeout_s), aclosing(events):
                async for event in events:
                    if is_terminal(event.state):
                        ended = event
                        break
                    if event.state == FleetState.INPUT_REQUIRED:
                        break
        except TimeoutError:
            log.info("a2a send: task %s still runs after the blocking wait", task_id)
        if ended is None:  # still running, or waiting: as GetTask shows it
            task = await self.store.get(task_id, context)
            assert task is not None
        else:  # ended: its last event says it all, no request to the supervisor
            task = await self._ended(started.task, ended)
        return apply_history_length(task, params.configuration)

    async def _ended(self, task: Task, event: TaskEvent) -> Task:
        output = event.output
        if event.output_ref is not None:
            output = await self.client.bus.payloads.resolve(event.output, event.output_ref)
        text, output_seq = await streamed_so_far(self.client, task.id)
        task.status.CopyFrom(
            status_of(event.state, task.id, task.context_id, detail=event.detail, error=event.error)
        )
        if text:
            task.artifacts.append(output_artifact(text, output_seq))
        if event.state == FleetState.COMPLETED and bytes(output) not in (b"", b"null"):
            task.artifacts.append(result_artifact(output))
        return task

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        started = await self._take(params, context)
        yield apply_history_length(started.task, params.configuration)
        feed = Feed(self.client, started.task.id, started.task.context_id)
        async for event in feed.events(
            started.state, started.events_seq, started.output_seq, started.streamed
        ):
            yield event

    async def _take(self, params: SendMessageRequest, context: ServerCallContext) -> _Started:
        """Start a task for a message, or answer the approval a task waits for."""
        message = params.message
        caller = caller_of(context)
        check_client_id(message.message_id, "messageId")
        if message.task_id:
            return await self._answer(message, caller, context)
        # A new context's id follows from the message, so a retried message
        # (same id, still no context) is the same key, hence the same task.
        context_id = message.context_id or str(
            uuid.uuid5(_CONTEXTS, f"{caller}\n{message.message_id}")
        )
        check_client_id(context_id, "contextId")
        origin = Origin(caller=caller, context_id=context_id, message_id=message.message_id)
        target = target_of(message, self.settings.default_skill)
        tenant = self.keys.tenant_of(caller)
        wanted = new_task_id()
        try:
            task_id = await self.client.submit(
                target.skill,
                target.input,
                workflow=target.workflow,
                key=origin.key(),
                task_id=wanted,
                tenant=tenant,
            )
        except (InvalidValue, ValueError) as exc:
            raise InvalidParamsError(message=str(exc)) from None
        except TaskRejected as exc:
            raise InvalidParamsError(message=f"refused: {exc}") from None
        except NatsFleetError as exc:
            raise InternalError(message=f"the fleet did not take the task: {exc}") from None
        if task_id != wanted:
            # A retried message: its task, unless the key's tenant changed since.
            await self.store.check_retried(task_id, caller)
        log.info(
            "a2a send by %s: task %s %s %s%s",
            caller,
            task_id,
            "workflow" if target.workflow else "skill",
            target.workflow or target.skill,
            f" tenant {tenant}" if tenant else "",
        )
        task = Task(
            id=task_id,
            context_id=context_id,
            status=status_of(FleetState.SUBMITTED, task_id, context_id),
        )
        task.history.append(message)
        # A retried message (same ids) is the task it started: follow it from its start.
        return _Started(task, FleetState.SUBMITTED, 0, 0, False)

    async def _answer(self, message: Message, caller: str, context: ServerCallContext) -> _Started:
        """A message to a task waiting in input-required answers its approval.

        Metadata `approved` (default true) approves or refuses; a data part is
        the approval's input, the text its note.
        """
        record, origin = await self.store.load(message.task_id, caller)
        if message.context_id and message.context_id != origin.context_id:
            raise InvalidParamsError(message="contextId is not the task's context")
        if record.state != FleetState.INPUT_REQUIRED:
            raise UnsupportedOperationError(
                message=f"task {record.task_id} is {record.state}: it takes a message only "
                "while input-required (send one without taskId for a new task)"
            )
        approved = metadata_of(message).get("approved", True)
        if not isinstance(approved, bool):
            raise InvalidParamsError(message="metadata 'approved' must be true or false")
        data = [part_value(p) for p in message.parts if p.WhichOneof("content") == "data"]
        note = "".join(p.text for p in message.parts if p.WhichOneof("content") == "text")
        _, events_seq = await last_event(self.client, record.task_id)
        log.info("a2a approve by %s: task %s approved=%s", caller, record.task_id, approved)
        try:
            await self.client.approve(
                record.task_id,
                approved=approved,
                input=data[0] if data else None,
                note=note,
                timeout_s=self._timeout(),
            )
        except NatsFleetError as exc:
            raise InvalidParamsError(message=f"the approval was refused: {exc}") from None
        now = await snapshot(self.client, record.task_id)
        task = view(record, origin, now)
        task.history.append(message)
        return _Started(task, FleetState.INPUT_REQUIRED, events_seq, now.output_seq, bool(now.text))

    def _timeout(self) -> float:
        return self.settings.request_timeout_s

    # -- not offered ------------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise UnsupportedOperationError(message="there is no extended agent card")
