"""FleetClient: submit tasks, wait for them, watch events and output, and call
the supervisor's control API. The CLI, tests and agents' `ctx.call` use it.
"""

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypeVar

import msgspec
from nats.js import api as js_api
from nats.js import errors as js_errors

from natsfleet.bus import tracing
from natsfleet.bus.connection import Bus
from natsfleet.bus.payloads import PayloadTooLarge
from natsfleet.protocols import (
    NULL_RAW,
    Ack,
    AgentInfo,
    AgentsReply,
    AgentsRequest,
    ApproveRequest,
    Bucket,
    CancelRequest,
    Codec,
    DlqReply,
    DlqRequest,
    ErrorCode,
    ErrorReply,
    ListRequest,
    Message,
    NatsFleetError,
    OutputChunk,
    Progress,
    RetryPolicy,
    StatusRequest,
    Stream,
    Submit,
    TaskEvent,
    TaskListReply,
    TaskOutput,
    TaskRecord,
    TaskState,
    TaskStatusReply,
    TaskSummary,
    Timeouts,
    decode_raw,
    is_terminal,
    new_task_id,
    to_raw,
)

T = TypeVar("T")
R = TypeVar("R")

_EVENT = Codec[TaskEvent](TaskEvent)
_OUTPUT = Codec[TaskOutput](TaskOutput)
_STATUS = Codec[TaskStatusReply | ErrorReply](TaskStatusReply | ErrorReply)
_LIST = Codec[TaskListReply | ErrorReply](TaskListReply | ErrorReply)
_ACK = Codec[Ack | ErrorReply](Ack | ErrorReply)
_AGENTS = Codec[AgentsReply | ErrorReply](AgentsReply | ErrorReply)
_DLQ = Codec[DlqReply | ErrorReply](DlqReply | ErrorReply)


class TaskRejected(NatsFleetError):
    """The submission itself was refused (backpressure, unknown skill, ...)."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        self.code = code
        self.detail = detail
        self.retryable = code == ErrorCode.BACKPRESSURE
        super().__init__(f"{code.value}: {detail}")


class WaitTimeout(NatsFleetError):
    """The task did not end within the time the caller was willing to wait."""

    retryable = True

    def __init__(self, task_id: str, timeout_s: float) -> None:
        self.task_id = task_id
        self.timeout_s = timeout_s
        super().__init__(f"task {task_id} not finished after {timeout_s} s")


class TaskFailed(NatsFleetError):
    """`result()` of a task that ended failed, canceled or rejected."""

    def __init__(self, event: TaskEvent) -> None:
        self.event = event
        self.retryable = False
        why = event.error.detail if event.error else event.detail
        super().__init__(f"task {event.task_id} {event.state.value}: {why}")


@contextlib.contextmanager
def _submit_span(task_id: str, skill: str | None, workflow: str | None) -> Iterator[None]:
    """The root of a task's trace (unless the caller is inside a span already)."""
    tracer = tracing.tracer()
    if tracer is None:
        yield
        return
    attributes = {tracing.TASK_ID_ATTRIBUTE: task_id}
    if workflow:
        attributes[tracing.WORKFLOW_ID_ATTRIBUTE] = task_id
    with tracer.start_as_current_span(f"submit {skill or workflow}", attributes=attributes):
        yield


def idempotency_bucket_key(key: str) -> str:
    """KV keys allow few characters; any user key maps to a stable hex digest."""
    return hashlib.sha256(key.encode()).hexdigest()


class FleetClient:
    """A client of one fleet over a connected `Bus`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.subjects = bus.subjects

    async def submit(
        self,
        skill: str | None = None,
        input: Any = None,
        *,
        workflow: str | None = None,
        key: str | None = None,
        priority: int = 0,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        queue: bool = False,
        parent_id: str | None = None,
        workflow_id: str | None = None,
        budget_usd: float | None = None,
        task_id: str | None = None,
    ) -> str:
        """Submit a task (or workflow run) and return its id.

        With `key`, the same key always yields the same task id, however often
        it is submitted (this outlives JetStream's duplicate window).
        """
        if (skill is None) == (workflow is None):
            raise ValueError("give exactly one of skill or workflow")
        task_id = task_id or new_task_id()
        raw = to_raw({} if input is None else input)
        self._check_size(raw, workflow is not None)
        if key is not None:
            task_id = await self._claim_key(key, task_id)
        raw, input_ref = await self.bus.payloads.offload(raw, "input", task_id)
        submit = Submit(
            task_id=task_id,
            skill=skill,
            workflow=workflow,
            input=raw,
            input_ref=input_ref,
            idempotency_key=key,
            priority=priority,
            timeouts=timeouts or Timeouts(),
            retry=retry,
            queue=queue,
            parent_id=parent_id,
            workflow_id=workflow_id,
            budget_usd=budget_usd,
            submitted_ms=int(time.time() * 1000),
            client=self.bus.source,
        )
        try:
            # Msg-Id = task id: a resubmission (same key) is deduplicated by the
            # stream within its window and by the supervisor after it.
            with _submit_span(task_id, skill, workflow):
                await self.bus.publish_js(self.subjects.submit(), submit, msg_id=task_id)
        except js_errors.APIError as exc:
            if exc.err_code == 10077 or "maximum messages" in str(exc.description):
                raise TaskRejected(ErrorCode.BACKPRESSURE, "task queue is full") from None
            raise
        return task_id

    def _check_size(self, raw: msgspec.Raw, workflow: bool) -> None:
        """Refuse, before anything is stored, an input the fleet could not carry."""
        payloads = self.bus.payloads
        try:
            payloads.check("input", len(raw))
        except PayloadTooLarge as exc:
            raise TaskRejected(ErrorCode.TOO_LARGE, str(exc)) from None
        # A workflow run keeps its input in its state (KV WORKFLOWS): inline only.
        if workflow and len(raw) > payloads.inline_max_bytes:
            raise TaskRejected(
                ErrorCode.TOO_LARGE,
                f"a workflow input of {len(raw)} bytes is over the "
                f"{payloads.inline_max_bytes}-byte inline limit",
            )

    async def _claim_key(self, key: str, task_id: str) -> str:
        kv = await self.bus.kv(Bucket.IDEM)
        bucket_key = idempotency_bucket_key(key)
        try:
            await kv.create(bucket_key, task_id.encode())
            return task_id
        except js_errors.KeyWrongLastSequenceError:
            entry = await kv.get(bucket_key)
            # Re-publishing under the existing id is harmless (deduplicated)
            # and covers a client that died between claiming and publishing.
            return (entry.value or b"").decode() or task_id

    # -- waiting and watching -----------------------------------------------------

    async def watch(
        self, task_id: str | None = None, *, replay: bool = True
    ) -> AsyncGenerator[TaskEvent, None]:
        """Events of one task (its history first, when `replay`) or of all tasks (live)."""
        subject = self.subjects.events(task_id) if task_id else self.subjects.all_events()
        policy = js_api.DeliverPolicy.ALL if (replay and task_id) else js_api.DeliverPolicy.NEW
        sub = await self.bus.js.subscribe(
            subject,
            stream=self.subjects.stream(Stream.EVENTS),
            ordered_consumer=True,
            deliver_policy=policy,
        )
        try:
            async for msg in sub.messages:
                try:
                    event, _ = await self.bus.decode_msg(
                        msg, _EVENT, self.bus.config.max_message_bytes
                    )
                except NatsFleetError:
                    continue  # a malformed event is not this watcher's to fix
                yield event
        finally:
            await sub.unsubscribe()

    async def wait(self, task_id: str, timeout_s: float | None = None) -> TaskEvent:
        """The task's terminal event (state, output or error); an output kept in
        BLOBS is read back into `output`."""

        async def first_terminal() -> TaskEvent:
            async with contextlib.aclosing(self.watch(task_id)) as events:
                async for event in events:
                    if is_terminal(event.state):
                        return event
            raise NatsFleetError("event stream ended")  # pragma: no cover

        try:
            event = await asyncio.wait_for(first_terminal(), timeout_s)
        except TimeoutError:
            raise WaitTimeout(task_id, timeout_s or 0.0) from None
        if event.output_ref is None:
            return event
        output = await self.bus.payloads.resolve(event.output, event.output_ref)
        return msgspec.structs.replace(event, output=output)

    async def result(self, task_id: str, output_type: type[T], timeout_s: float | None = None) -> T:
        """Wait and decode the output; raises `TaskFailed` unless it completed."""
        event = await self.wait(task_id, timeout_s)
        if event.state != TaskState.COMPLETED:
            raise TaskFailed(event)
        return decode_raw(event.output, output_type)

    async def output(
        self, task_id: str, ready: asyncio.Event | None = None
    ) -> AsyncIterator[OutputChunk | Progress]:
        """Partial output and progress of a running task, until it ends.

        `ready` is set once subscribed: subscribe before submitting (with a
        task id made beforehand) to miss nothing.
        """
        queue: asyncio.Queue[OutputChunk | Progress | None] = asyncio.Queue()

        async def on_output(message: TaskOutput, _: object) -> Message | None:
            await queue.put(message)
            return None

        sub = await self.bus.subscribe(self.subjects.task_output(task_id), _OUTPUT, on_output)
        if ready is not None:
            ready.set()

        async def until_done() -> None:
            await self.wait(task_id)
            await queue.put(None)

        waiter = asyncio.create_task(until_done())
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            waiter.cancel()
            await self.bus.unsubscribe(sub, drain=False)

    # -- control API --------------------------------------------------------------------

    async def _control(
        self, verb: str, request: Message, codec: Codec[R], timeout_s: float | None
    ) -> R:
        return await self.bus.request(
            self.subjects.control(verb), request, codec, timeout_s=timeout_s
        )

    async def status(self, task_id: str, *, timeout_s: float | None = None) -> TaskRecord:
        return (await self.status_reply(task_id, timeout_s=timeout_s)).task

    async def status_reply(
        self, task_id: str, *, timeout_s: float | None = None
    ) -> TaskStatusReply:
        """The task record and, for a workflow run, its steps (`reply.workflow`)."""
        reply = await self._control("status", StatusRequest(task_id=task_id), _STATUS, timeout_s)
        assert isinstance(reply, TaskStatusReply)
        record = reply.task
        if record.output_ref is None:
            return reply
        # The output is read back here; a referenced input stays a reference.
        output = await self.bus.payloads.resolve(record.output, record.output_ref)
        return msgspec.structs.replace(reply, task=msgspec.structs.replace(record, output=output))

    async def list(
        self, state: TaskState | None = None, limit: int = 100, *, timeout_s: float | None = None
    ) -> tuple[TaskSummary, ...]:
        reply = await self._control("list", ListRequest(state=state, limit=limit), _LIST, timeout_s)
        assert isinstance(reply, TaskListReply)
        return reply.tasks

    async def cancel(
        self, task_id: str, reason: str = "", *, timeout_s: float | None = None
    ) -> Ack:
        reply = await self._control(
            "cancel", CancelRequest(task_id=task_id, reason=reason), _ACK, timeout_s
        )
        assert isinstance(reply, Ack)
        return reply

    async def approve(
        self,
        task_id: str,
        *,
        approved: bool = True,
        input: Any = None,
        note: str = "",
        timeout_s: float | None = None,
    ) -> Ack:
        request = ApproveRequest(
            task_id=task_id,
            approved=approved,
            input=NULL_RAW if input is None else to_raw(input),
            note=note,
        )
        reply = await self._control("approve", request, _ACK, timeout_s)
        assert isinstance(reply, Ack)
        return reply

    async def agents(
        self, agent: str | None = None, *, timeout_s: float | None = None
    ) -> tuple[AgentInfo, ...]:
        reply = await self._control("agents", AgentsRequest(agent=agent), _AGENTS, timeout_s)
        assert isinstance(reply, AgentsReply)
        return reply.agents

    async def dlq(self, request: DlqRequest, *, timeout_s: float | None = None) -> DlqReply:
        reply = await self._control("dlq", request, _DLQ, timeout_s)
        assert isinstance(reply, DlqReply)
        return reply
