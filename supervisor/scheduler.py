"""Assignment: queued tasks to live instances, by request, with a fresh token each time.

The dispatcher walks each skill's queue (priority, then FIFO) while some
routable instance with the skill has a free slot, least loaded first and
preferring one this task has not tried. Each Assign runs as its own task, so
many are in flight at once; the record is written `assigned` (with the token)
before the Assign is sent, so a crash in between leaves a token on record.
While the fleet is busy, an accepted attempt's `working` event waits
`working_event_delay_s`: one that ends sooner stores no event but its end's.
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from natsfleet.bus import Bus, NoResponders, RequestTimeout
from natsfleet.bus.payloads import bounded_error
from natsfleet.protocols import (
    Accept,
    Assign,
    ErrorInfo,
    Reject,
    RejectCode,
    RemoteError,
    TaskRecord,
    TaskState,
    Usage,
    new_token,
)
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.assigner import Assigner
from natsfleet.supervisor.attempts import Attempt, AttemptTable
from natsfleet.supervisor.deadlines import Deadlines
from natsfleet.supervisor.queue import ReadyQueue
from natsfleet.supervisor.registry import Instance, Registry
from natsfleet.supervisor.store import TaskStore, Tracked, event_for, now_ms
from natsfleet.supervisor.telemetry import AttemptSpans
from natsfleet.telemetry.redact import redact

log = logging.getLogger(__name__)


class DispatchHost(Protocol):
    """The task engine as its dispatcher sees it: the term's shared state and
    the few engine actions an Assign's answer may call for."""

    wake: asyncio.Event
    queue: ReadyQueue
    store: TaskStore
    attempts: AttemptTable
    registry: Registry
    spans: AttemptSpans
    deadlines: Deadlines

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def enqueue(self, record: TaskRecord) -> None: ...

    def new_attempt(self, record: TaskRecord, *, reserved: bool) -> Attempt: ...

    async def cancel_on_instance(self, record: TaskRecord, reason: str) -> None: ...

    async def end_attempt(
        self,
        tracked: Tracked,
        *,
        outcome: str,
        error: ErrorInfo,
        usage: Usage = ...,
        counts: bool,
        backoff: bool,
    ) -> None: ...


class Dispatcher:
    """Built by the engine it dispatches for (`Engine.dispatcher`)."""

    def __init__(
        self,
        engine: DispatchHost,
        bus: Bus,
        assign_timeout_s: float,
        *,
        working_event_delay_s: float = 0.0,
        working_event_busy_attempts: int = 0,
    ) -> None:
        self.engine = engine
        self.assign_timeout_s = assign_timeout_s
        self.working_event_delay_s = working_event_delay_s
        self.working_event_busy_attempts = working_event_busy_attempts
        self.assigner = Assigner(bus, assign_timeout_s)

    async def run(self) -> None:
        engine = self.engine
        while True:
            await engine.wake.wait()
            engine.wake.clear()
            self.dispatch_once()

    def dispatch_once(self) -> None:
        engine = self.engine
        for skill in engine.queue.skills():
            while (task_id := engine.queue.peek(skill)) is not None:
                tracked = engine.store.get(task_id)
                if tracked is None or tracked.record.state not in tr.WAITING_STATES:
                    engine.queue.pop(skill)
                    continue
                instance = self._pick(skill, tracked.record)
                if instance is None:
                    break  # no free slot for this skill until something changes
                engine.queue.pop(skill)
                engine.attempts.reserve(instance.instance_id)
                engine.spawn(self.assign(tracked, instance))

    def _pick(self, skill: str, record: TaskRecord) -> Instance | None:
        """Least loaded first, one this task has not tried if there is one."""
        if not record.history:  # a first attempt: nothing to steer away from
            return self.engine.registry.pick(skill)
        return self.engine.registry.pick(skill, avoid={a.instance_id for a in record.history})

    async def assign_at_once(self, record: TaskRecord) -> bool:
        """Admit a new (queued) task straight to a free instance; False if none is free.

        Only when nothing of its skill waits (priority and FIFO still hold).
        The record is created `assigned`, with the token, before the Assign is
        sent, exactly as `assign` writes it over a queued record: recovery
        sees the same thing whichever way it got there.
        """
        engine = self.engine
        skill = record.skill
        if skill is None or engine.queue.peek(skill) is not None:
            return False
        instance = self._pick(skill, record)
        if instance is None:
            return False
        engine.attempts.reserve(instance.instance_id)
        token = new_token()
        new = tr.assigned(
            record,
            token=token,
            instance_id=instance.instance_id,
            agent=instance.agent,
            now_ms=record.updated_ms,
            assign_timeout_s=self.assign_timeout_s,
        )
        try:
            tracked = await engine.store.create(new)
        except BaseException:
            engine.attempts.unreserve(instance.instance_id)
            raise
        if tracked is None:  # a duplicate submit: the task exists already
            engine.attempts.unreserve(instance.instance_id)
            return True
        new = tracked.record
        engine.new_attempt(new, reserved=True)
        engine.spans.start(new)
        engine.spawn(self._send(tracked, new, instance))
        return True

    async def assign(self, tracked: Tracked, instance: Instance) -> None:
        engine = self.engine
        token = new_token()
        async with tracked.lock:
            record = tracked.record
            if record.state not in tr.WAITING_STATES:
                engine.attempts.unreserve(instance.instance_id)
                return
            new = tr.assigned(
                record,
                token=token,
                instance_id=instance.instance_id,
                agent=instance.agent,
                now_ms=now_ms(),
                assign_timeout_s=self.assign_timeout_s,
            )
            try:
                await engine.store.write(tracked, new)
            except BaseException:
                engine.attempts.unreserve(instance.instance_id)
                raise
            engine.new_attempt(new, reserved=True)
            engine.spans.start(new)
        await self._send(tracked, new, instance)

    async def _send(self, tracked: Tracked, record: TaskRecord, instance: Instance) -> None:
        assert record.token is not None
        now = now_ms()
        s2c = record.timeouts.start_to_close_s
        assign = Assign(
            task_id=record.task_id,
            token=record.token,
            attempt=record.attempts,
            skill=record.skill or "",
            input=record.input,
            input_ref=record.input_ref,
            remaining_ms=None
            if record.close_deadline_ms is None
            else record.close_deadline_ms - now,
            start_to_close_ms=None if s2c is None else int(s2c * 1000),
            parent_id=record.parent_id,
            workflow_id=record.workflow_id,
            budget_usd=record.budget_usd,
            approval=record.approval,
            session_id=record.session_id,
            tenant=record.tenant,
        )
        try:
            with self.engine.spans.current(record.token):
                reply = await self.assigner.send(instance, assign)
        except RemoteError as exc:
            await self._rejected(tracked, record, instance, None, redact(str(exc)))
            return
        except (RequestTimeout, NoResponders, Exception) as exc:
            await self._unanswered(tracked, record, instance, redact(str(exc)))
            return
        if isinstance(reply, Accept):
            await self._accepted(tracked, record, instance)
        elif isinstance(reply, Reject):
            await self._rejected(tracked, record, instance, reply.code, reply.detail)

    async def _accepted(self, tracked: Tracked, record: TaskRecord, instance: Instance) -> None:
        engine = self.engine
        attempt = engine.attempts.get(record.token)
        if attempt is None or tracked.record.token != record.token:
            return  # it already ended (a fast result, a cancel)
        attempt.accepted = True
        attempt.accept_seq = instance.seq
        s2c = record.timeouts.start_to_close_s
        if s2c is not None:
            attempt.deadline_ms = now_ms() + int(s2c * 1000)
            engine.deadlines.arm(tracked.record, attempt)  # the exact one, from Accept
        tracked.accepted = True
        # The attempt's one event: `assigned` is a record state (status shows
        # it) but not published; `working` names the instance once it runs.
        # In a busy fleet only if it still runs after the delay: a short
        # attempt's end event follows at once, and each stored event is an
        # fsync under `sync_interval: always` (SupervisorConfig).
        delay_s = self.working_event_delay_s
        if delay_s <= 0 or len(engine.attempts) < self.working_event_busy_attempts:
            await engine.store.emit(event_for(record, state=TaskState.WORKING))
            return
        loop = asyncio.get_running_loop()
        loop.call_later(delay_s, self._working_later, tracked, record)

    def _working_later(self, tracked: Tracked, record: TaskRecord) -> None:
        if self._still_working(tracked, record):
            self.engine.spawn(self._emit_working(tracked, record))

    async def _emit_working(self, tracked: Tracked, record: TaskRecord) -> None:
        # Checked again where it is published (nothing awaits in between), so
        # it never follows the attempt's end event.
        if self._still_working(tracked, record):
            await self.engine.store.emit(event_for(record, state=TaskState.WORKING))

    def _still_working(self, tracked: Tracked, record: TaskRecord) -> bool:
        """The attempt is the task's current one and has not ended (a term whose
        lease lapsed publishes nothing more)."""
        current = tracked.record
        return (
            current.token == record.token
            and current.state in tr.RUNNING_STATES
            and self.engine.attempts.get(record.token) is not None
            and self.engine.store.lease.valid()
        )

    async def _unanswered(
        self, tracked: Tracked, record: TaskRecord, instance: Instance, why: str
    ) -> None:
        log.info("assign of %s to %s unanswered: %s", record.task_id, instance.instance_id, why)
        self.engine.registry.pause(instance.instance_id)
        await self.engine.cancel_on_instance(record, "assign unanswered")
        await self._give_back(tracked, record)

    async def _rejected(
        self,
        tracked: Tracked,
        record: TaskRecord,
        instance: Instance,
        code: RejectCode | None,
        detail: str,
    ) -> None:
        engine = self.engine
        if code == RejectCode.BAD_INPUT:
            async with tracked.lock:
                if tracked.record.token != record.token:
                    return
                error = bounded_error("bad_input", detail, retryable=False)
                await engine.end_attempt(
                    tracked, outcome="bad_input", error=error, counts=True, backoff=False
                )
            return
        if code == RejectCode.UNKNOWN_SKILL and record.skill is not None:
            engine.registry.drop_skill(instance.instance_id, record.skill)
        elif code != RejectCode.DUPLICATE:
            engine.registry.pause(instance.instance_id)
        await self._give_back(tracked, record)

    async def _give_back(self, tracked: Tracked, record: TaskRecord) -> None:
        """The Assign never became an attempt: back to the queue, uncounted."""
        engine = self.engine
        async with tracked.lock:
            if (
                tracked.record.token != record.token
                or tracked.record.state not in tr.RUNNING_STATES
            ):
                return
            new = tr.unassigned(tracked.record, now_ms())
            await engine.store.write(tracked, new)
            engine.spans.end(record.token, "not accepted", then="requeue")
            engine.attempts.release(record.token)
            # A paused instance is skipped until its next heartbeat, so this
            # does not spin on an instance that keeps refusing.
            engine.enqueue(new)
