"""The task state machine of the active supervisor.

Every change of a task happens here, under the task's lock, as one
compare-and-set write (`TaskStore.write`) followed by its event. Timers,
results, registry news and control requests all end up in these methods.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from msgspec import structs
from nats.aio.msg import Msg

from natsfleet.bus import Bus
from natsfleet.bus.incoming import header
from natsfleet.bus.payloads import bounded_error, offload_output
from natsfleet.protocols import (
    MSG_ID_HEADER,
    NULL_RAW,
    Cancel,
    DlqReason,
    ErrorInfo,
    Failure,
    FailureKind,
    Heartbeat,
    ProtocolError,
    Result,
    Rollcall,
    Submit,
    TaskRecord,
    TaskState,
    Usage,
    encode,
    is_id,
    is_terminal,
)
from natsfleet.supervisor import approvals, recovery, sizes, telemetry
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.attempts import Attempt, AttemptTable
from natsfleet.supervisor.config import SupervisorConfig
from natsfleet.supervisor.deadlines import Deadlines, fire_timer
from natsfleet.supervisor.errors import Backpressure, NotLeader, RevisionConflict
from natsfleet.supervisor.hooks import Late
from natsfleet.supervisor.queue import ReadyQueue
from natsfleet.supervisor.registry import Instance, Registry
from natsfleet.supervisor.scheduler import Dispatcher
from natsfleet.supervisor.store import TaskStore, Tracked, event_for, now_ms
from natsfleet.supervisor.telemetry import AttemptSpans
from natsfleet.supervisor.timers import Timer, Timers
from natsfleet.telemetry.redact import redact

log = logging.getLogger(__name__)

_LOST = "lost"
_NO_USAGE = Usage()


class WorkflowHook(Protocol):
    """The workflow engine as the task engine sees it (docs/architecture.md, "Workflows").

    `admit` takes every Submit with `workflow` set; `task_ended` hears of every
    task that reached a terminal state through this engine (steps and runs).
    """

    async def admit(self, submit: Submit) -> None: ...

    def task_ended(self, record: TaskRecord) -> None: ...


class EngineMetrics(Protocol):
    """The metrics the engine reports to (`SupervisorMetrics`)."""

    def task_ended(self, record: TaskRecord) -> None: ...

    def attempt_ended(self, record: TaskRecord, outcome: str, *, reassigned: bool) -> None: ...


class Engine:
    """Owns the queue, the attempts table, the deadlines and the dispatcher of one active term.

    `deadlines` are the ones `store` arms on every write (`TaskStore(on_write=)`).
    `workflows` is bound to the term's workflow runner once that exists (the
    runner needs this engine): until then a workflow Submit is not run here.
    """

    def __init__(
        self,
        cfg: SupervisorConfig,
        bus: Bus,
        store: TaskStore,
        registry: Registry,
        tg: asyncio.TaskGroup,
        deadlines: Deadlines,
        *,
        metrics: EngineMetrics | None = None,
        workflows: Late[WorkflowHook] | None = None,
    ) -> None:
        self.cfg = cfg
        self.bus = bus
        self.store = store
        self.registry = registry
        self.tg = tg
        self.deadlines = deadlines
        self.metrics = metrics
        self._workflows = workflows if workflows is not None else Late[WorkflowHook]("workflows")
        self.queue = ReadyQueue()
        # This term's attempts are the loads the registry's pick ranks by; a
        # term starts with none taken.
        registry.placement.reset_used()
        self.attempts = AttemptTable(on_load=registry.placement.set_used)
        self.wake = asyncio.Event()
        self.started = time.monotonic()
        self._last_rollcall = 0.0
        self.spans = AttemptSpans()
        # Part of the engine (it shares the queue, the attempts and the store);
        # its shortcut `assign_at_once` makes a new task's first record `assigned`.
        self.dispatcher = Dispatcher(
            self, bus, cfg.assign_timeout_s, working_event_delay_s=cfg.working_event_delay_s,
            working_event_busy_attempts=cfg.working_event_busy_attempts,
        )  # fmt: skip

    @property
    def timers(self) -> Timers:
        """The heap of this term's deadlines (its length: timers armed)."""
        return self.deadlines.timers

    # -- plumbing -------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an action in the term's TaskGroup; NotLeader ends the term.

        Once the term is ending (its TaskGroup shuts down) nothing new starts:
        the next term redoes whatever this one left undone.
        """
        try:
            self.tg.create_task(self._guard(coro))
        except RuntimeError:  # "TaskGroup ... is shutting down" / "is finished"
            coro.close()
            log.debug("term ending: an action was not started")

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except NotLeader:
            raise
        except RevisionConflict as exc:
            log.warning("%s; the record was reloaded", exc)
        except Exception:
            log.exception("supervisor action failed")

    def _ended(self, record: TaskRecord) -> None:
        # (Its timers were forgotten when its final record was written.)
        if self.metrics is not None:
            self.metrics.task_ended(record)
        workflows = self._workflows.get()
        if workflows is not None and (record.workflow_id or record.workflow):
            workflows.task_ended(record)

    def enqueue(self, record: TaskRecord) -> None:
        if record.skill is None:
            return
        self.queue.push(record.task_id, record.skill, record.priority, record.created_ms)
        self.wake.set()

    def _hb_timeout_s(self, record: TaskRecord) -> float:
        return record.timeouts.heartbeat_timeout_s or self.cfg.heartbeat_timeout_s

    def release(self, token: str | None) -> None:
        """Give an ended attempt's slot back (supervisor/approvals.py parks a task)."""
        self._release(token)

    def _release(self, token: str | None) -> None:
        self.spans.end(token)  # no-op when the ending site already ended it
        if self.attempts.release(token) is not None:
            self.wake.set()

    async def cancel_on_instance(self, record: TaskRecord, reason: str) -> None:
        if record.token is None or record.agent is None or record.instance_id is None:
            return
        cancel = Cancel(task_id=record.task_id, token=record.token, reason=reason)
        subject = self.bus.subjects.cancel(record.agent, record.instance_id)
        try:
            await self.bus.publish(subject, cancel)
        except Exception as exc:  # the attempt is over for us either way
            log.debug("cancel %s on %s failed: %s", record.token, record.instance_id, exc)

    # -- admission ----------------------------------------------------------------------

    async def admit(self, submit: Submit) -> None:
        """A submission from TASKS becomes a record (once; a duplicate is ignored)."""
        # Memory only: a task from before this term fails `create` (the CAS
        # on revision 0), which costs no extra round trip for new tasks.
        if self.store.get(submit.task_id) is not None:
            return
        if len(self.queue) >= self.cfg.max_waiting:
            raise Backpressure(len(self.queue))
        submit, oversized = await sizes.admitted(self.bus.payloads, submit)
        workflows = self._workflows.get()
        if submit.workflow is not None and workflows is not None and oversized is None:
            await workflows.admit(submit)
            return
        now = now_ms()
        record = telemetry.with_trace(tr.new_record(submit, self.cfg.timeouts, self.cfg.retry, now))
        if oversized is not None:
            record = tr.rejected(record, oversized, now)
        elif submit.skill is None:
            error = ErrorInfo(
                error_type="unsupported", detail="workflows are not run here", retryable=False
            )
            record = tr.rejected(record, error, now)
        elif await self.dispatcher.assign_at_once(record):
            # (A free instance offers the skill: no need to ask the registry.)
            if self.store.get(record.task_id) is None:  # it was there already
                await self.find(record.task_id)
            return
        elif not submit.queue and not self.registry.offers(submit.skill):
            detail = f"no live agent offers skill {submit.skill!r}"
            error = ErrorInfo(error_type="unknown_skill", detail=detail, retryable=False)
            record = tr.rejected(record, error, now)
        tracked = await self.store.create(record)
        if tracked is None:
            await self.find(record.task_id)
            return
        await self.store.emit(event_for(tracked.record))
        if tracked.record.state == TaskState.REJECTED:
            self._ended(tracked.record)
        if tracked.record.state == TaskState.QUEUED:
            self.enqueue(tracked.record)

    async def unreadable_submit(self, msg: Msg, err: ProtocolError) -> None:
        """A Submit that could not be read (over the blob limit, undecodable): its
        task, named by `Nats-Msg-Id`, is recorded `rejected` so a waiter hears."""
        task_id = header(msg.headers, MSG_ID_HEADER)
        # The header is as hostile as the body: only a valid id becomes a KV key.
        if task_id is None or not is_id(task_id) or self.store.get(task_id) is not None:
            return
        now = now_ms()
        record = TaskRecord(
            task_id=task_id, state=TaskState.REJECTED, input=NULL_RAW, created_ms=now,
            updated_ms=now, error=bounded_error(err.reason.value, err.detail, retryable=False),
        )  # fmt: skip
        tracked = await self.store.create(record)
        if tracked is not None:
            await self.store.emit(event_for(tracked.record))

    async def find(self, task_id: str) -> Tracked | None:
        """The task's record: from memory, else from KV, adopting it if unfinished.

        An unfinished record this term does not track was written after the
        term loaded STATE, by a deposed supervisor that had passed its lease
        check just before it stopped (docs/supervisor.md, "Leases and
        failover"). It is adopted exactly as at take-over. A finished record
        is returned as read, not kept in memory.
        """
        tracked = self.store.get(task_id)
        if tracked is not None:
            return tracked
        tracked = await self.store.load(task_id)
        if tracked is None or is_terminal(tracked.record.state):
            return tracked
        return await recovery.adopt_found(self, tracked)

    # -- outcomes -------------------------------------------------------------------------

    async def unreadable_outcome(self, msg: Msg, err: ProtocolError) -> None:
        """An outcome that could not be read (it breaks the edge rule, e.g. an
        error type over 256 characters from an agent that does not cut it): the
        attempt it names by `Nats-Msg-Id` (`<task>:<token>`) fails, retryably,
        as if the agent had sent a Failure, with the same fencing and binding
        checks. Without this the attempt would hold its task until a timeout
        while its holder still heartbeats the token. A batch that cannot be read
        names no single attempt: its attempts end by their timeouts."""
        task_id, _, token = (header(msg.headers, MSG_ID_HEADER) or "").partition(":")
        source = self.bus.subjects.result_source(msg.subject)
        if source is None or not (is_id(task_id) and is_id(token)):
            return
        tracked = self.store.get(task_id)  # a live attempt is in memory; no KV read
        if tracked is None:
            return
        failure = Failure(
            task_id=task_id, token=token, attempt=tracked.record.attempts,
            instance_id=source[1], agent=source[0], error_type="bad_outcome",
            detail=f"the agent's outcome could not be read: {err.detail}",  # cut in _failure
            retryable=True,
        )  # fmt: skip
        await self.outcome(failure, msg.subject)

    async def outcome(self, outcome: Result | Failure, subject: str) -> None:
        """A Result or Failure from RESULTS, fenced by its token and bound to the
        attempt's instance: `subject` (`result.<type>.<inst>`, what the sender's
        credentials let it publish on) must name the type and instance the
        current attempt was assigned to, and so must the outcome's fields.
        Tokens are not secret enough alone: an agent of another type may have
        learned one (docs/operations.md, "Which role may write what")."""
        tracked = await self.find(outcome.task_id)
        if tracked is None:
            await self._reject(outcome, subject, DlqReason.STALE, "unknown task")
            return
        async with tracked.lock:
            record = tracked.record
            if record.token != outcome.token:
                why = f"token is not the task's current one ({record.state})"
                await self._reject(outcome, subject, DlqReason.STALE, why)
                return
            holder = (record.agent, record.instance_id)
            claimed = (outcome.agent, outcome.instance_id)
            source = self.bus.subjects.result_source(subject)
            if source != holder or claimed != holder:
                why = f"attempt is assigned to {holder}, outcome came from {source} as {claimed}"
                await self._reject(outcome, subject, DlqReason.WRONG_INSTANCE, why)
                return
            if is_terminal(record.state):
                if record.state != TaskState.COMPLETED:
                    why = f"task already {record.state.value}"
                    await self._reject(outcome, subject, DlqReason.STALE, why)
                    return
                # A redelivery of the result we recorded: its terminal event may
                # not have been stored (e.g. the EVENTS stream had no leader
                # while a cluster node died), so publish it again; its Msg-Id
                # `<task>:final` makes a second copy a no-op.
                await self.store.emit_final_again(record)
                return
            if isinstance(outcome, Result):
                await self._complete(tracked, outcome)
            else:
                await self._failure(tracked, outcome)

    async def _reject(
        self, outcome: Result | Failure, subject: str, reason: DlqReason, why: str
    ) -> None:
        log.info("%s outcome for %s token %s: %s", reason, outcome.task_id, outcome.token, why)
        await self.bus.dead_letter(
            reason,
            subject=subject,
            error=why,
            payload=encode(outcome),
            task_id=outcome.task_id,
            # One entry per rejected outcome and sender, however often redelivered.
            msg_id=f"{outcome.task_id}:{outcome.token}:{reason}:{subject}:{type(outcome).__name__}",
        )
        if isinstance(outcome, Result) and outcome.output_ref is not None:
            # Its blob is named for its token: no record will ever refer to it.
            try:
                await self.bus.payloads.discard(outcome.output_ref)
            except Exception as exc:  # it expires with BLOBS' TTL anyway
                log.info("blob of stale result %s not deleted: %s", outcome.token, exc)

    async def _complete(self, tracked: Tracked, result: Result) -> None:
        recorded = await offload_output(self.bus.payloads, result)
        if isinstance(recorded, Failure):
            await self._failure(tracked, recorded)
            return
        result = recorded
        token = tracked.record.token
        new = tr.completed(tracked.record, result, now_ms())
        await self.store.write(tracked, new)
        self.spans.end(token, "completed")
        if self.metrics is not None:
            self.metrics.attempt_ended(new, "completed", reassigned=False)
        self._release(token)
        await self.store.emit(event_for(new))
        self._ended(new)

    async def _failure(self, tracked: Tracked, failure: Failure) -> None:
        # Agents redact their own; an older or foreign agent's detail is redacted here.
        detail = redact(failure.detail)
        error = bounded_error(failure.error_type, detail, failure.retryable)
        if failure.kind == FailureKind.AWAITING_APPROVAL and failure.pending_call is not None:
            await approvals.park(self, tracked, failure)
            return
        if failure.kind == FailureKind.HANDED_BACK:
            await self.end_attempt(
                tracked, outcome=failure.kind.value, error=error, usage=failure.usage,
                counts=False, backoff=False,
            )  # fmt: skip
            return
        if failure.kind == FailureKind.BAD_INPUT:
            error = bounded_error("bad_input", detail, retryable=False)
        await self.end_attempt(
            tracked, outcome=failure.kind.value, error=error, usage=failure.usage,
            counts=True, backoff=True,
        )  # fmt: skip

    async def end_attempt(
        self,
        tracked: Tracked,
        *,
        outcome: str,
        error: ErrorInfo,
        usage: Usage = _NO_USAGE,
        counts: bool,
        backoff: bool,
    ) -> None:
        """Close the current attempt; then retry (after a backoff or at once) or fail."""
        now = now_ms()
        token = tracked.record.token
        record = tr.attempt_ended(
            tracked.record, outcome=outcome, error=error, usage=usage, now_ms=now, counts=counts
        )
        policy = record.retry
        if counts and not policy.is_retryable(error.error_type, error.retryable):
            await self.fail(tracked, record, error, DlqReason.NON_RETRYABLE)
            return
        if counts and not policy.allows_another(record.attempts):
            await self.fail(tracked, record, error, DlqReason.MAX_ATTEMPTS)
            return
        not_before = now + int(policy.delay_s(record.attempts) * 1000) if backoff else None
        new = tr.requeued(record, now, not_before_ms=not_before)
        await self.store.write(tracked, new)
        then = "reassign" if not_before is None else f"retry in {(not_before - now) / 1000:.2f} s"
        self.spans.end(token, outcome, error, then)
        if self.metrics is not None:
            self.metrics.attempt_ended(new, outcome, reassigned=not_before is None)
        self._release(token)
        await self.store.emit(event_for(new, detail=f"attempt {outcome}"))
        if not_before is None:  # else its wake-up (deadlines.py) enqueues it
            self.enqueue(new)

    async def fail(
        self, tracked: Tracked, record: TaskRecord, error: ErrorInfo, reason: DlqReason
    ) -> None:
        """End the task failed; its DLQ entry (with every attempt) goes first, deduplicated."""
        token = tracked.record.token
        new = structs.replace(tr.failed(record, error, now_ms()), dead_letter=reason)
        await self.dead_letter_task(new, reason)
        await self.store.write(tracked, new)
        last = record.history[-1].outcome if record.history else None
        self.spans.end(token, last or "", error, f"fail: {reason.value}")
        if self.metrics is not None:
            self.metrics.attempt_ended(new, last or "failed", reassigned=False)
        self._release(token)
        self.queue.remove(new.task_id)
        await self.store.emit(event_for(new, detail=reason.value))
        self._ended(new)

    async def dead_letter_task(self, record: TaskRecord, reason: DlqReason) -> None:
        error = record.error
        self.store.lease.check()
        await self.bus.dead_letter(
            reason,
            subject=self.bus.subjects.submit(),
            error=f"{error.error_type}: {error.detail}" if error else reason.value,
            payload=bytes(record.input),
            task_id=record.task_id,
            attempts=record.history,
            msg_id=f"{record.task_id}:dlq",
        )

    # -- attempts that end without an outcome ----------------------------------------------

    async def attempt_lost(self, token: str, why: str, *, timed_out: bool = False) -> None:
        """The holder died, went silent, dropped the token, or ran out of time."""
        attempt = self.attempts.get(token)
        tracked = self.store.get(attempt.task_id) if attempt else None
        if attempt is None or tracked is None:
            return
        async with tracked.lock:
            record = tracked.record
            if record.token != token or record.state not in tr.RUNNING_STATES:
                self._release(token)
                return
            log.info("task %s attempt %d on %s ended: %s", record.task_id, record.attempts,
                     attempt.instance_id, why)  # fmt: skip
            await self.cancel_on_instance(record, why)
            error = ErrorInfo(error_type="timeout" if timed_out else _LOST, detail=why)
            await self.end_attempt(
                tracked, outcome="timeout" if timed_out else _LOST, error=error,
                counts=True, backoff=timed_out,
            )  # fmt: skip

    # -- timers ----------------------------------------------------------------------------

    def on_timer(self, timer: Timer) -> None:
        self.spawn(self._fire_or_retry(timer))

    async def _fire_or_retry(self, timer: Timer) -> None:
        try:
            await fire_timer(self, timer)
        except (NotLeader, RevisionConflict):
            raise
        except Exception as exc:  # NATS unreachable: try again in a second
            log.warning("timer %s of %s failed (%s); retrying", timer.kind, timer.task_id, exc)
            self.deadlines.again(timer, now_ms() + 1000)

    # -- control -----------------------------------------------------------------------

    async def cancel(self, tracked: Tracked, reason: str) -> TaskRecord:
        """Cancel a task (idempotent); a running attempt gets a Cancel for its token."""
        async with tracked.lock:
            record = tracked.record
            if is_terminal(record.state):
                return record
            token = record.token
            new = tr.canceled(record, reason or "canceled by request", now_ms())
            await self.store.write(tracked, new)
            await self.cancel_on_instance(record, reason or "canceled")
            self._release(token)
            self.queue.remove(record.task_id)
            await self.store.emit(event_for(new))
            self._ended(new)
            return new

    async def cancel_pending(self, submit: Submit, reason: str) -> TaskRecord | None:
        """Record a not-yet-admitted task as canceled, so its Submit is ignored
        when it is read; None if it was admitted meanwhile."""
        now = now_ms()
        record = tr.new_record(submit, self.cfg.timeouts, self.cfg.retry, now)
        record = tr.canceled(record, reason or "canceled before it started", now)
        tracked = await self.store.create(record)
        if tracked is None:
            await self.find(record.task_id)  # adopted if a deposed term created it
            return None
        await self.store.emit(event_for(tracked.record))
        self._ended(tracked.record)
        return tracked.record

    # -- registry listener -------------------------------------------------------------------

    def _lose(self, attempt: Attempt, why: str) -> None:
        if not attempt.ending:
            attempt.ending = True
            self.spawn(self.attempt_lost(attempt.token, why))

    # A term whose lease lapsed (deposed, or stopped past it) ignores the
    # fleet's news: the term that holds the lease acts on it.

    def instance_gone(self, instance_id: str, reason: str) -> None:
        if not self.store.lease.valid():
            return
        for attempt in self.attempts.on_instance(instance_id):
            self._lose(attempt, f"instance {instance_id} {reason}")

    def heartbeat(self, instance: Instance, heartbeat: Heartbeat) -> None:
        if not heartbeat.in_flight and not self.attempts.holds(instance.instance_id):
            return  # idle, as most of a large fleet is: nothing to confirm or lose
        if not self.store.lease.valid():
            return
        for flight in heartbeat.in_flight:
            if flight.progress is not None or flight.note:
                reporting = self.attempts.get(flight.token)
                if reporting is not None and reporting.instance_id == instance.instance_id:
                    reporting.progress = flight
        held = {f.token for f in heartbeat.in_flight}
        held.update(heartbeat.recent)
        for attempt in self.attempts.on_instance(instance.instance_id):
            if not attempt.accepted or attempt.token in held:
                continue
            if attempt.accept_seq is not None and heartbeat.seq <= attempt.accept_seq + 1:
                continue
            self._lose(attempt, "token missing from heartbeat")

    def capacity_changed(self) -> None:
        # With nothing waiting the dispatcher has nothing to do: no wake-up
        # per heartbeat of every idle instance (enqueue wakes it).
        if self.queue:
            self.wake.set()

    def unknown_instance(self, instance_id: str) -> None:
        if not self.store.lease.valid():
            return
        # At most one rollcall a second, however many strangers heartbeat.
        now = time.monotonic()
        if now - self._last_rollcall >= 1.0:
            self._last_rollcall = now
            self.spawn(self.rollcall())

    async def rollcall(self) -> None:
        rollcall = Rollcall(supervisor_id=self.bus.instance)
        await self.bus.publish(self.bus.subjects.rollcall(), rollcall)

    def sweep(self) -> None:
        """End attempts whose instance has been silent past their heartbeat timeout."""
        now = time.monotonic()
        for attempt in self.attempts.all():
            last = self.registry.last_seen(attempt.instance_id)
            silence_s = now - (last if last is not None else max(attempt.since, self.started))
            if silence_s > attempt.hb_timeout_s:
                self._lose(attempt, f"instance silent for {silence_s:.2f} s")

    def reconcile(self) -> None:
        """Repair what a failed action (e.g. during a NATS outage) left undone.

        A waiting task missing from the queue goes back in; an attempt whose
        end was asked for but did not happen may be asked again; an Assign
        that never got an answer is left to the holder's next heartbeat.
        """
        now = now_ms()
        for tracked in self.store:
            record = tracked.record
            if record.state == TaskState.RETRYING and (record.not_before_ms or 0) > now:
                continue
            if record.state in tr.WAITING_STATES and record.task_id not in self.queue:
                self.enqueue(record)
        stuck_s = 2 * self.cfg.assign_timeout_s + 1.0
        for attempt in self.attempts.all():
            attempt.ending = False
            if not attempt.accepted and time.monotonic() - attempt.since > stuck_s:
                attempt.accepted = True
                attempt.accept_seq = None

    def new_attempt(self, record: TaskRecord, *, reserved: bool) -> Attempt:
        assert record.token is not None and record.instance_id is not None
        attempt = Attempt(
            task_id=record.task_id,
            token=record.token,
            instance_id=record.instance_id,
            agent=record.agent or "",
            hb_timeout_s=self._hb_timeout_s(record),
        )
        self.attempts.add(attempt, reserved=reserved)
        return attempt
