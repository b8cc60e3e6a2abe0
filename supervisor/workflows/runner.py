"""The workflow engine of one active term: runs as ordinary tasks, state by CAS.

The task engine calls `admit()` for a Submit with `workflow` set and
`task_ended()` for every task that ends (`WorkflowHook`). Each change of a
run is: plan (pure) -> write the run to KV WORKFLOWS -> submit new step tasks
through the normal path (IDEM key `<run>/<step>/<n>`, deterministic task id)
-> mirror the run's state onto its own task record in STATE. A crash between
any two of these is repaired by `resume()`, which replays the plan against
the step tasks' records: the same ids come out, so nothing runs twice.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from msgspec import structs

from natsfleet.bus import Bus
from natsfleet.client import FleetClient
from natsfleet.protocols import (
    Ack,
    ApproveRequest,
    ErrorCode,
    ErrorInfo,
    ErrorReply,
    Submit,
    TaskRecord,
    TaskState,
    Timeouts,
    WorkflowStatus,
    is_terminal,
)
from natsfleet.protocols.limits import PRIORITY_MAX
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.config import SupervisorConfig
from natsfleet.supervisor.errors import NotLeader
from natsfleet.supervisor.registry import Registry
from natsfleet.supervisor.store import TaskStore, Tracked, event_for, now_ms
from natsfleet.supervisor.workflows import sizes
from natsfleet.supervisor.workflows.admission import admission_error, run_deadline_s
from natsfleet.supervisor.workflows.loader import Catalog
from natsfleet.supervisor.workflows.planner import Launch, Planner
from natsfleet.supervisor.workflows.runstore import RunStore, TrackedRun
from natsfleet.supervisor.workflows.state import Approval, WorkflowRun, new_run
from natsfleet.supervisor.workflows.status import summary, waiting, workflow_status
from natsfleet.supervisor.workflows.validate import build_graph

log = logging.getLogger(__name__)

#: A planned step task not yet in STATE after this long is submitted again.
RESUBMIT_AFTER_MS = 3_000


class TaskEngine(Protocol):
    """The task engine as the workflow runner sees it (`Engine`)."""

    cfg: SupervisorConfig
    bus: Bus
    store: TaskStore
    registry: Registry

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    async def find(self, task_id: str) -> Tracked | None: ...

    async def cancel(self, tracked: Tracked, reason: str) -> TaskRecord: ...


class WorkflowRunner:
    """Implements `WorkflowHook` for one engine (one active term)."""

    def __init__(self, engine: TaskEngine, catalog: Catalog, runs: RunStore) -> None:
        self.engine = engine
        self.catalog = catalog
        self.runs = runs
        self.client = FleetClient(engine.bus)
        self._summaries: dict[str, str] = {}

    # -- the hook -------------------------------------------------------------------

    async def admit(self, submit: Submit) -> None:
        """A run's Submit: validate, create the run (WORKFLOWS first), then start it."""
        engine, now = self.engine, now_ms()
        record = tr.new_record(submit, engine.cfg.timeouts, engine.cfg.retry, now)
        defn = self.catalog.get(submit.workflow or "")
        problem = admission_error(submit, self.catalog, engine.registry)
        if problem is not None or defn is None:
            rejected = tr.rejected(record, problem or ErrorInfo(error_type="unknown"), now)
            if (tracked := await engine.store.create(rejected)) is not None:
                await engine.store.emit(event_for(tracked.record))
            return
        deadline_s = run_deadline_s(submit, defn, engine.cfg.timeouts)
        deadline_ms = record.created_ms + int(deadline_s * 1000)
        budget = submit.budget_usd if submit.budget_usd is not None else defn.budget_usd
        step_timeouts = structs.replace(submit.timeouts, schedule_to_close_s=None)
        run = new_run(
            run_id=submit.task_id, definition=defn, input=submit.input, budget_usd=budget,
            deadline_ms=deadline_ms, step_timeouts=step_timeouts, retry=submit.retry,
            priority=submit.priority, now_ms=now, tenant=submit.tenant,
        )  # fmt: skip
        tracked_run = await self.runs.create(run)
        await self._ensure_record(tracked_run.run, record)
        await self._change(tracked_run, None)

    def task_ended(self, record: TaskRecord) -> None:
        if record.workflow is not None and self.runs.get(record.task_id) is not None:
            self.engine.spawn(self._run_record_ended(record))
        elif record.workflow_id is not None and self.runs.get(record.workflow_id) is not None:
            self.engine.spawn(
                self._change_by_id(record.workflow_id, lambda p: p.task_ended(record))
            )

    # -- control --------------------------------------------------------------------

    def status(self, run_id: str) -> WorkflowStatus | None:
        tracked = self.runs.get(run_id)
        return None if tracked is None else workflow_status(tracked.run, self.engine.store)

    async def approve(self, request: ApproveRequest) -> Ack | ErrorReply:
        """Resume (or refuse) the step waiting in `input_required`: `RUN` or `RUN/STEP`."""
        run_id, _, step = request.task_id.partition("/")
        tracked = self.runs.get(run_id)
        if tracked is None:
            return ErrorReply(code=ErrorCode.UNKNOWN_TASK, detail=f"no workflow run {run_id!r}")
        inline_max = self.engine.bus.payloads.inline_max_bytes
        if len(request.input) > inline_max:  # it would be kept in the run's state
            detail = f"approval input of {len(request.input)} bytes is over {inline_max} bytes"
            return ErrorReply(code=ErrorCode.TOO_LARGE, detail=detail)
        async with tracked.lock:
            pending = waiting(tracked.run)
            if not step and len(pending) == 1:
                step = pending[0]
            if step not in pending:
                why = f"steps {', '.join(pending)} wait: name one as {run_id}/STEP"
                if not pending:
                    why = f"no step waits for approval (run is {tracked.run.state.value})"
                return ErrorReply(code=ErrorCode.CONFLICT, detail=f"run {run_id}: {why}")
            decision = Approval(
                approved=request.approved, input=request.input, note=request.note, at_ms=now_ms()
            )
            run = await self._apply(tracked, lambda p: p.decide(step, decision))
        verdict = "approved" if request.approved else "refused"
        return Ack(task_id=run_id, state=run.state, detail=f"step {step} {verdict}")

    # -- changing a run ---------------------------------------------------------------

    async def _change_by_id(self, run_id: str, news: Callable[[Planner], object]) -> None:
        tracked = self.runs.get(run_id)
        if tracked is not None:
            async with tracked.lock:
                await self._apply(tracked, news)

    async def _change(self, tracked: TrackedRun, news: Callable[[Planner], object] | None) -> None:
        async with tracked.lock:
            await self._apply(tracked, news)

    async def _apply(
        self, tracked: TrackedRun, news: Callable[[Planner], object] | None
    ) -> WorkflowRun:
        """Plan, persist, launch, mirror (hold `tracked.lock`)."""
        old = tracked.run
        planner = Planner(old, build_graph(old.definition))
        if news is not None:
            news(planner)
        planner.advance()
        new = planner.result(now_ms())
        launches = planner.launches
        problem = sizes.oversize(new, self.engine.bus.payloads)
        if problem is not None:
            log.warning("workflow run %s fails: %s", new.run_id, problem)
            new, launches = sizes.failed_for_size(new, problem), []
        if structs.replace(new, updated_ms=old.updated_ms) != old:
            await self.runs.write(tracked, new)
        for launch in launches:
            await self._submit(new, launch)
        await self._mirror(new)
        if is_terminal(new.state):
            await self._cancel_open(new, planner.open_tasks())
        return new

    async def _submit(self, run: WorkflowRun, launch: Launch) -> None:
        step = launch.step
        timeouts = (step.timeouts or Timeouts()).merged_over(run.step_timeouts)
        if run.deadline_ms is not None:
            left_s = max(0.001, (run.deadline_ms - now_ms()) / 1000)
            own = timeouts.schedule_to_close_s
            timeouts = structs.replace(timeouts, schedule_to_close_s=min(own or left_s, left_s))
        budget = None if run.budget_usd is None else max(0.0, run.budget_usd - run.spent_usd)
        await self.client.submit(
            step.skill, launch.input, key=launch.item.key, task_id=launch.item.task_id,
            priority=min(run.priority + step.priority, PRIORITY_MAX), timeouts=timeouts,
            retry=step.retry or run.retry, queue=True, workflow_id=run.run_id, budget_usd=budget,
            tenant=run.tenant,
        )  # fmt: skip

    async def _cancel_open(self, run: WorkflowRun, task_ids: list[str]) -> None:
        for task_id in task_ids:
            tracked = self.engine.store.get(task_id)
            if tracked is not None and not is_terminal(tracked.record.state):
                await self.engine.cancel(tracked, f"workflow run {run.run_id} {run.state.value}")

    # -- the run's own task record ------------------------------------------------------

    async def _ensure_record(self, run: WorkflowRun, record: TaskRecord) -> None:
        store = self.engine.store
        started = structs.replace(
            record,
            state=TaskState.WORKING,
            schedule_deadline_ms=None,
            close_deadline_ms=run.deadline_ms,
            timeouts=structs.replace(
                record.timeouts,
                schedule_to_close_s=None
                if run.deadline_ms is None
                else (run.deadline_ms - record.created_ms) / 1000,
            ),
            budget_usd=run.budget_usd,
        )
        tracked = await store.create(started)
        if tracked is not None:
            await store.emit(event_for(tracked.record, detail=f"workflow {run.workflow} started"))
        else:  # a redelivered Submit; or created by a deposed term: adopted
            await self.engine.find(record.task_id)
        # The run's deadline is its record's CLOSE deadline, armed by the write.

    async def _mirror(self, run: WorkflowRun) -> None:
        """Show the run's state, cost, output or error on its task record and events."""
        tracked = await self.engine.find(run.run_id)
        if tracked is None:
            return
        async with tracked.lock:
            record = tracked.record
            if is_terminal(record.state):
                return
            new = structs.replace(
                record,
                state=run.state,
                # Calls and tokens summed over the steps; the cost is the budget's.
                usage=structs.replace(run.usage, cost_usd=run.spent_usd),
                output=run.output,
                error=run.error if run.state != TaskState.COMPLETED else None,
            )
            detail = summary(run)
            if structs.replace(new, updated_ms=0) != structs.replace(record, updated_ms=0):
                new = structs.replace(new, updated_ms=now_ms())
                await self.engine.store.write(tracked, new)
            elif self._summaries.get(run.run_id) == detail:
                return
            self._summaries[run.run_id] = detail
            await self.engine.store.emit(event_for(new, detail=detail))

    async def _run_record_ended(self, record: TaskRecord) -> None:
        """The run's record ended outside the planner (cancel, deadline): end the run."""

        def end(planner: Planner) -> None:
            planner.end(record.state, record.error)

        await self._change_by_id(record.task_id, end)

    # -- taking over and keeping runs honest ---------------------------------------------

    async def resume(self) -> None:
        """After take-over: adopt every unfinished run and catch up with its tasks."""
        loaded = await self.runs.load_all()
        unfinished = [t for t in loaded if not is_terminal(t.run.state)]
        for tracked in unfinished:
            async with tracked.lock:
                await self.runs.write(tracked, tracked.run)  # stamps our epoch
        for tracked in loaded:
            await self.reconcile(tracked, force_resubmit=True)
        log.info("workflows: %d runs, %d unfinished", len(loaded), len(unfinished))

    async def reconcile(self, tracked: TrackedRun, *, force_resubmit: bool = False) -> None:
        """Apply step tasks that ended unseen; resubmit planned tasks missing from STATE."""
        store = self.engine.store
        run = tracked.run
        ended: list[TaskRecord] = []
        for step in run.steps.values():
            for item in step.items:
                if is_terminal(item.state):
                    continue
                task = store.get(item.task_id)
                if (
                    task is None
                    and not is_terminal(run.state)
                    and (force_resubmit or now_ms() - run.updated_ms > RESUBMIT_AFTER_MS)
                ):
                    # Finished tasks are in KV only: look there before resubmitting.
                    task = await self.engine.find(item.task_id)
                    if task is None:
                        await self._resubmit(run, step.name, item.n)
                if task is not None and is_terminal(task.record.state):
                    ended.append(task.record)
        run_record = store.get(run.run_id)
        if run_record is None and not is_terminal(run.state):
            run_record = await store.fetch(run.run_id)
        async with tracked.lock:
            if run_record is not None and is_terminal(run_record.record.state):
                ended.append(run_record.record)
            await self._apply(tracked, lambda p: _news(p, ended, run.run_id))

    async def _resubmit(self, run: WorkflowRun, step_name: str, n: int) -> None:
        planner = Planner(run, build_graph(run.definition))
        step = run.steps[step_name]
        planner.steps[step_name] = structs.replace(
            step, items=tuple(i for i in step.items if i.n != n)
        )
        if planner.launch(run.definition.step(step_name), n):
            await self._submit(run, planner.launches[-1])

    async def tick(self) -> None:
        """Every second: reconcile unfinished runs, forget old finished ones."""
        cutoff = now_ms() - int(self.engine.cfg.retention_s * 1000)
        for tracked in self.runs:
            if not is_terminal(tracked.run.state):
                await self.reconcile(tracked)
            elif tracked.run.updated_ms < cutoff:
                async with tracked.lock:
                    await self.runs.delete(tracked)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.tick()
            except NotLeader:
                raise
            except Exception as exc:  # NATS unreachable, a conflict: next tick tries again
                log.warning("workflow reconcile failed: %s", exc)


def _news(planner: Planner, ended: list[TaskRecord], run_id: str) -> None:
    for record in ended:
        if record.task_id != run_id:
            planner.task_ended(record)
        elif not is_terminal(planner.state):
            planner.end(record.state, record.error)
