"""FleetClient: submit tasks, wait for them, watch events and output, and call
the supervisor's control API. The CLI, tests and agents' `ctx.call` use it.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypeVar

import msgspec
from nats.js import api as js_api
from nats.js import errors as js_errors

from natsfleet.bus import boundary
from natsfleet.bus.config import BusConfig
from natsfleet.bus.connection import Bus
from natsfleet.bus.payloads import PayloadTooLarge
from natsfleet.client.errors import (
    IdempotencyKeyMismatch,
    TaskFailed,
    TaskRejected,
    WaitTimeout,
)
from natsfleet.client.output import OutputItem, follow
from natsfleet.protocols import (
    BLOB_HEADER,
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
    WorkflowInfo,
    WorkflowsReply,
    WorkflowsRequest,
    check_id,
    check_struct,
    decode_raw,
    idempotency_digest,
    idempotency_scope,
    is_terminal,
    new_task_id,
    to_raw,
)
from natsfleet.telemetry import tracing

T = TypeVar("T")
R = TypeVar("R")

_EVENT = Codec[TaskEvent](TaskEvent)
_OUTPUT = Codec[TaskOutput](TaskOutput)
_STATUS = Codec[TaskStatusReply | ErrorReply](TaskStatusReply | ErrorReply)
_LIST = Codec[TaskListReply | ErrorReply](TaskListReply | ErrorReply)
_ACK = Codec[Ack | ErrorReply](Ack | ErrorReply)
_AGENTS = Codec[AgentsReply | ErrorReply](AgentsReply | ErrorReply)
_DLQ = Codec[DlqReply | ErrorReply](DlqReply | ErrorReply)
_WORKFLOWS = Codec[WorkflowsReply | ErrorReply](WorkflowsReply | ErrorReply)
# What an IDEM entry may name: a task id we can put in a subject (ULIDs,
# workflow step ids `<run>-<step>-<n>`, ids callers chose).
_TASK_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def _check_event(event: TaskEvent, digest: str) -> None:
    if event.key_hash != digest:
        found = "no key" if event.key_hash is None else f"key {event.key_hash[:12]}..."
        raise IdempotencyKeyMismatch(digest, event.task_id, f"submitted with {found}")


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


def idempotency_bucket_key(key: str, role: str = "client") -> str:
    """The IDEM entry of `key` for a process of Bus role `role`: its scope (the
    only part of the bucket that role's NATS user may write) and the key's
    sha256 (KV keys allow few characters)."""
    return f"{idempotency_scope(role)}.{idempotency_digest(key)}"


#: Task ids handed out for a key before their task had any event, checked when
#: one is seen (`FleetClient.watch`); the oldest are forgotten beyond this.
_UNCHECKED_MAX = 10_000


class FleetClient:
    """A client of one fleet over a `Bus`.

    `FleetClient(bus)` uses a bus the caller connected and closes. The client
    can also own its bus, configured like every natsfleet process
    (`NATS_URL`, `NATSFLEET_PREFIX`, credentials: `BusConfig.from_env`):

    ```python
    async with await FleetClient.connect() as client:  # or FleetClient.from_env()
        task_id = await client.submit("summarize", {"text": "..."})
        summary = await client.result(task_id, Summary)
    ```
    Leaving the block (or `await client.close()`) closes a bus the client opened.
    """

    def __init__(self, bus: Bus, *, owns_bus: bool = False) -> None:
        self.bus = bus
        self.subjects = bus.subjects
        self._owns_bus = owns_bus
        self._opened = False
        # task id -> key hash it must show at its first event (`_check_key`).
        self._unchecked: dict[str, str] = {}

    @classmethod
    def from_env(cls, config: BusConfig | None = None, **overrides: Any) -> "FleetClient":
        """A client with its own, not yet connected bus: `async with` connects it.

        `config` defaults to `BusConfig.from_env(**overrides)` (overrides win when not None).
        """
        config = config or BusConfig.from_env(**{"name": "natsfleet-client", **overrides})
        return cls(Bus(config, role="client"), owns_bus=True)

    @classmethod
    async def connect(cls, config: BusConfig | None = None, **overrides: Any) -> "FleetClient":
        """A connected client with its own bus (see `from_env`); close it when done."""
        client = cls.from_env(config, **overrides)
        await client.open()
        return client

    async def open(self) -> None:
        """Connect the bus this client owns (once); a caller's bus is left as it is."""
        if self._owns_bus and not self._opened:
            await self.bus.connect()
            self._opened = True

    async def close(self) -> None:
        """Close the bus if this client opened it; idempotent."""
        if self._owns_bus:
            await self.bus.close()

    async def __aenter__(self) -> "FleetClient":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        session: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """Submit a task (or workflow run) and return its id.

        With `session`, the task's loops continue that conversation
        (docs/tools.md, "Sessions"); an id by the rule of protocols/limits.py.
        With `tenant` (an id too), its model calls and its sub-tasks' count
        against that tenant's limits and budgets (docs/llm.md).

        With `key`, the same key always yields the same task id, however often
        it is submitted (this outlives JetStream's duplicate window).

        Raises:
            InvalidValue: an id, key or number breaks the rule of
                protocols/limits.py (the one the supervisor decodes with);
                nothing was sent.
            TaskRejected: the TASKS stream is full (`backpressure`).
        """
        if (skill is None) == (workflow is None):
            raise ValueError("give exactly one of skill or workflow")
        task_id = task_id or new_task_id()
        raw = to_raw({} if input is None else input)
        self._check_size(raw, workflow is not None)
        submit = Submit(
            task_id=task_id,
            skill=skill,
            workflow=workflow,
            input=raw,
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
            session_id=session,
            tenant=tenant,
        )
        # Checked here, before a key is claimed for it, by the supervisor's own rule.
        check_struct(submit, "submit")
        if key is not None:
            claimed = await self._claim_key(key, task_id)
            if claimed != task_id:
                # Another submit's id, read from KV IDEM: checked like any wire id.
                task_id = check_id(claimed, "task id claimed for the key")
        # Stored only once nothing can refuse it any more, under the final id.
        raw, input_ref = await self.bus.payloads.offload(raw, "input", task_id)
        submit = msgspec.structs.replace(submit, task_id=task_id, input=raw, input_ref=input_ref)
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
        digest = idempotency_digest(key)
        bucket_key = idempotency_bucket_key(key, self.bus.role)
        try:
            await kv.create(bucket_key, task_id.encode())
            return task_id
        except js_errors.KeyWrongLastSequenceError:
            entry = await kv.get(bucket_key)
        # Re-publishing under the existing id is harmless (deduplicated)
        # and covers a client that died between claiming and publishing.
        existing = (entry.value or b"").decode(errors="replace") or task_id
        if existing != task_id:  # a task the caller did not name itself
            await self._check_key(existing, digest)
        return existing

    async def _check_key(self, task_id: str, digest: str) -> None:
        """Refuse a task (from an IDEM entry others may write) not submitted with the key.

        Only the supervisor writes EVENTS, and every event of a keyed task
        carries its key's hash. A task with no event yet (not admitted: its
        Submit may be in TASKS, or was never published) is checked by
        `watch` (so `wait` and `result`) at its first event.
        """
        if not _TASK_ID.match(task_id):
            raise IdempotencyKeyMismatch(digest, task_id, "which is not a task id")
        try:
            raw = await self.bus.js.get_msg(
                self.subjects.stream(Stream.EVENTS),
                seq=1,
                subject=self.subjects.events(task_id),
                next=True,
            )
            event = None if BLOB_HEADER in (raw.headers or {}) else _EVENT.decode(raw.data or b"")
        except (js_errors.NotFoundError, NatsFleetError):
            event = None
        if event is None:
            self._unchecked[task_id] = digest
            while len(self._unchecked) > _UNCHECKED_MAX:
                del self._unchecked[next(iter(self._unchecked))]
            return
        _check_event(event, digest)

    # -- waiting and watching -----------------------------------------------------

    async def watch(
        self, task_id: str | None = None, *, replay: bool = True
    ) -> AsyncGenerator[TaskEvent, None]:
        """Events of one task (its history first, when `replay`) or of all tasks (live).

        Raises:
            InvalidValue: `task_id` is not an id (it would be a bad subject).
        """
        if task_id is not None:
            check_id(task_id, "task id")
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
                    event, _ = await boundary.decode(
                        self.bus, msg, _EVENT, self.bus.config.max_message_bytes
                    )
                except NatsFleetError:
                    continue  # a malformed event is not this watcher's to fix
                digest = self._unchecked.get(event.task_id) if task_id else None
                if digest is not None:
                    _check_event(event, digest)
                    del self._unchecked[event.task_id]
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
        """Partial output and progress of a task, from its start, until it ends.

        What the OUTPUT stream holds is read first, so a late watcher misses
        nothing; `ready` is set once subscribed. `output_stream` gives each
        item's stream sequence, to resume after it.
        """
        async for item in self.output_stream(task_id, ready=ready):
            yield item.message

    def output_stream(
        self, task_id: str, *, after_seq: int = 0, ready: asyncio.Event | None = None
    ) -> AsyncIterator[OutputItem]:
        """The task's output stream (client/output.py) from after `after_seq`
        (0: from the start), following it across attempts until the task ends.

        Raises:
            InvalidValue: `task_id` is not an id (it would be a bad subject).
        """
        return follow(
            self.bus, task_id, lambda: self.wait(task_id), after_seq=after_seq, ready=ready
        )

    # -- control API --------------------------------------------------------------------

    async def _control(
        self,
        verb: str,
        request: Message,
        codec: Codec[R],
        timeout_s: float | None,
        task_id: str | None = None,
    ) -> R:
        # Traced, `control <verb>` (with the task id, if any) is the request's parent.
        with tracing.client_span(f"control {verb}", task_id):
            return await self.bus.request(
                self.subjects.control(verb), request, codec, timeout_s=timeout_s
            )

    async def status(self, task_id: str, *, timeout_s: float | None = None) -> TaskRecord:
        return (await self.status_reply(task_id, timeout_s=timeout_s)).task

    async def status_reply(
        self, task_id: str, *, timeout_s: float | None = None
    ) -> TaskStatusReply:
        """The task record and, for a workflow run, its steps (`reply.workflow`)."""
        request = StatusRequest(task_id=task_id)
        reply = await self._control("status", request, _STATUS, timeout_s, task_id)
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
        """The first page of tasks (see `list_page`)."""
        return (await self.list_page(state, limit, timeout_s=timeout_s)).tasks

    async def list_page(
        self,
        state: TaskState | None = None,
        limit: int = 100,
        before_seq: int | None = None,
        *,
        timeout_s: float | None = None,
    ) -> TaskListReply:
        """One page of tasks, most recently changed first; pass the reply's
        `next_before_seq` as `before_seq` for the next one (`more` says if any)."""
        request = ListRequest(state=state, limit=limit, before_seq=before_seq)
        reply = await self._control("list", request, _LIST, timeout_s)
        assert isinstance(reply, TaskListReply)
        return reply

    async def cancel(
        self, task_id: str, reason: str = "", *, timeout_s: float | None = None
    ) -> Ack:
        reply = await self._control(
            "cancel", CancelRequest(task_id=task_id, reason=reason), _ACK, timeout_s, task_id
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
        reply = await self._control("approve", request, _ACK, timeout_s, task_id)
        assert isinstance(reply, Ack)
        return reply

    async def agents(
        self, agent: str | None = None, *, timeout_s: float | None = None
    ) -> tuple[AgentInfo, ...]:
        """Every instance the supervisor knows (of `agent`), page by page."""
        found: list[AgentInfo] = []
        after: str | None = None
        while True:
            reply = await self.agents_page(agent, after=after, timeout_s=timeout_s)
            found += reply.agents
            if not reply.more or reply.next_after is None:
                return tuple(found)
            after = reply.next_after

    async def agents_page(
        self,
        agent: str | None = None,
        *,
        limit: int = 500,
        after: str | None = None,
        timeout_s: float | None = None,
    ) -> AgentsReply:
        """One page of instances by id; the next starts after `reply.next_after`."""
        request = AgentsRequest(agent=agent, limit=limit, after=after)
        reply = await self._control("agents", request, _AGENTS, timeout_s)
        assert isinstance(reply, AgentsReply)
        return reply

    async def workflows(self, *, timeout_s: float | None = None) -> tuple[WorkflowInfo, ...]:
        """The workflows the active supervisor has loaded."""
        reply = await self._control("workflows", WorkflowsRequest(), _WORKFLOWS, timeout_s)
        assert isinstance(reply, WorkflowsReply)
        return reply.workflows

    async def dlq(self, request: DlqRequest, *, timeout_s: float | None = None) -> DlqReply:
        reply = await self._control("dlq", request, _DLQ, timeout_s)
        assert isinstance(reply, DlqReply)
        return reply
